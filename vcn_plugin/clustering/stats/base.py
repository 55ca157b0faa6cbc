"""Per-track statistics: the base class every metric implements (sums over faces).

See :mod:`vcn_plugin.clustering.stats` for the metrics and the paper's formulas.
"""
from __future__ import annotations

import abc
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

#: How a cluster with one face gets a threshold. ``"median"`` (default): the
#: median threshold of the clusters with at least two faces (a one-face track
#: has no evidence of its own spread, so it borrows the typical one); when no
#: cluster has two faces it falls back to ``"self"``. ``"self"``: the mean over
#: all pairs including ``i == j`` (for the loss: the teacher/student loss of
#: the face with itself; for cosine and Euclidean this is 0, so such a track
#: only merges through the other track's threshold).
SINGLETON_POLICIES = ("median", "self")
SingletonPolicy = Literal["median", "self"]

def validate_face_track(face_track: np.ndarray, n_tracks: int | None) -> tuple[np.ndarray, int]:
    face_track = np.asarray(face_track)
    if face_track.ndim != 1:
        raise ValueError(f"face_track must be 1-D (one track index per face), got shape {face_track.shape}")
    if face_track.size and not np.issubdtype(face_track.dtype, np.integer):
        raise ValueError(f"face_track must hold integer track indices, got dtype {face_track.dtype}")
    face_track = face_track.astype(np.int64)
    if face_track.size and face_track.min() < 0:
        raise ValueError("face_track has negative track indices; track indices start at 0")
    needed = int(face_track.max()) + 1 if face_track.size else 0
    if n_tracks is None:
        n_tracks = needed
    elif n_tracks < needed:
        raise ValueError(f"n_tracks={n_tracks} but face_track refers to track {needed - 1}")
    return face_track, int(n_tracks)


def membership(labels: np.ndarray, n_groups: int, dtype: np.dtype) -> sp.csr_matrix:
    """(n_groups, len(labels)) 0/1 matrix; ``M @ X`` sums rows of X per group."""
    n = labels.shape[0]
    return sp.csr_matrix((np.ones(n, dtype=dtype), (labels, np.arange(n))), shape=(n_groups, n))


def per_track_sums(x: np.ndarray, face_track: np.ndarray, n_tracks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per track: the sum of its rows of ``x``, the sum of their squared norms, and its row count."""
    member = membership(face_track, n_tracks, x.dtype)
    return np.asarray(member @ x), member.astype(np.float64) @ rowdot(x, x), np.bincount(face_track, minlength=n_tracks)


def rowdot(a: np.ndarray, b: np.ndarray, block: int = 4096, accumulate: type = np.float64) -> np.ndarray:
    """Row-wise dot products (accumulated in ``accumulate``), blockwise to bound the temporary."""
    out = np.empty(a.shape[0], dtype=np.float64)
    for s in range(0, a.shape[0], block):
        out[s : s + block] = np.einsum("ij,ij->i", a[s : s + block], b[s : s + block], dtype=accumulate)
    return out


class TrackStats(abc.ABC):
    """Per-cluster sufficient statistics: every row array is a sum over faces.

    Subclasses define the distance, the intra-cluster pair mean and, optionally,
    a cheap lower bound on distances used to prune the pairwise search.
    """

    #: name of the metric, as used by :func:`make_stats`
    metric: ClassVar[str] = ""
    #: names of the row-aligned, additive arrays (``counts`` always included)
    _fields: ClassVar[tuple[str, ...]] = ()

    counts: np.ndarray

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    # -- construction -----------------------------------------------------
    def _replace(self, **arrays: np.ndarray) -> "TrackStats":
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(arrays)
        new._invalidate()
        return new

    def _invalidate(self) -> None:
        """Drop caches derived from the row arrays."""

    def drop_caches(self) -> None:
        """Free memory held by caches (they are rebuilt on demand)."""
        self._invalidate()

    def grouped(self, labels: np.ndarray, n_groups: int) -> "TrackStats":
        """Statistics of groups: row ``g`` sums the rows with ``labels == g``."""
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(self),):
            raise ValueError(f"labels must have one entry per row ({len(self)}), got shape {labels.shape}")
        arrays = {}
        for name in ("counts",) + self._fields:
            arr = getattr(self, name)
            member = membership(labels, n_groups, arr.dtype if arr.dtype.kind == "f" else np.float64)
            summed = member @ arr
            arrays[name] = np.rint(summed).astype(np.int64) if name == "counts" else np.asarray(summed, dtype=arr.dtype)
        return self._replace(**arrays)

    def per_track_means(self) -> "TrackStats":
        """Every row divided by its face count, counts set to 1: grouped, a row sums its tracks'
        means, and since every distance here is a mean over face pairs, bilinear in the two rows'
        means, the distance from a track to such a row is the mean of its distances to the row's
        tracks (what :mod:`vcn_plugin.clustering.silhouette` needs without a track-by-track matrix)."""
        scale = 1.0 / np.maximum(self.counts, 1).astype(np.float64)
        arrays = {}
        for name in self._fields:
            arr = getattr(self, name)
            factor = scale.astype(arr.dtype) if arr.dtype.kind == "f" else scale
            arrays[name] = arr * (factor[:, None] if arr.ndim == 2 else factor)
        return self._replace(counts=np.ones_like(self.counts), **arrays)

    @classmethod
    def concatenate(cls, parts: list["TrackStats"]) -> "TrackStats":
        """Stack the rows of several statistics of this class (e.g. computed chunk by chunk)."""
        if not parts:
            raise ValueError("concatenate needs at least one part")
        if any(type(p) is not cls for p in parts):
            raise ValueError(f"every part must be a {cls.__name__}")
        return parts[0]._replace(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in ("counts",) + cls._fields})

    def subset(self, rows: np.ndarray) -> "TrackStats":
        """Statistics of the given rows only (a copy)."""
        rows = np.asarray(rows, dtype=np.int64)
        return self._replace(**{name: getattr(self, name)[rows] for name in ("counts",) + self._fields})

    def merge_rows_inplace(self, labels: np.ndarray, n_groups: int) -> "TrackStats":
        """Like :meth:`grouped`, reusing this object's memory (this object becomes invalid).

        Requires the group numbering to follow the smallest member row (group
        ``g``'s first row is increasing in ``g``), which :func:`canonical_groups`
        guarantees. Peak memory stays at one copy of the statistics, which is
        what lets 50k tracks x 4096 prototypes fit in a few GiB.
        """
        labels = np.asarray(labels, dtype=np.int64)
        first = np.full(n_groups, len(self), dtype=np.int64)
        np.minimum.at(first, labels, np.arange(len(self)))
        if np.any(np.diff(first) <= 0):
            raise ValueError("groups must be numbered in order of their first row (use canonical_groups)")
        rest = np.flatnonzero(first[labels] != np.arange(len(self)))
        targets = np.unique(labels[rest])
        local = np.searchsorted(targets, labels[rest])
        arrays = {}
        for name in ("counts",) + self._fields:
            arr = getattr(self, name)
            if rest.size and arr.ndim == 1:
                np.add.at(arr, first[labels[rest]], arr[rest])
            elif rest.size:
                member = membership(local, targets.size, arr.dtype)
                arr[first[targets]] += np.asarray(member @ arr[rest], dtype=arr.dtype)
            # compact: rows only move towards lower indices, so chunked copies never clobber a later source
            for s in range(0, n_groups, 2048):
                e = min(s + 2048, n_groups)
                arr[s:e] = arr[first[s:e]]
            arrays[name] = arr[:n_groups]
        for name, arr in arrays.items():
            setattr(self, name, arr)
        self._invalidate()
        return self

    # -- metric -------------------------------------------------------------
    @abc.abstractmethod
    def _pair_sums(self) -> np.ndarray:
        """Sum of the distance over ordered pairs (i, j), i != j, inside each row, float64."""

    @abc.abstractmethod
    def self_distance(self) -> np.ndarray:
        """Mean distance over all ordered pairs of a row's faces, ``i == j`` included, float64."""

    @abc.abstractmethod
    def distances(self, rows: np.ndarray, other: "TrackStats", cols: np.ndarray) -> np.ndarray:
        """Exact symmetric distances between ``self[rows]`` and ``other[cols]``, (len(rows), len(cols))."""

    def lower_bounds(self, rows: np.ndarray, other: "TrackStats", cols: np.ndarray) -> tuple[np.ndarray, bool]:
        """``(L, exact)`` with ``L <= distances(rows, other, cols)``; ``exact`` when ``L`` is the distance."""
        return self.distances(rows, other, cols), True

    @abc.abstractmethod
    def pair_distances(self, i: np.ndarray, other: "TrackStats", j: np.ndarray) -> np.ndarray:
        """Exact symmetric distances of the row pairs ``(self[i[k]], other[j[k]])``, float64."""

    def pair_thresholds(self) -> np.ndarray:
        """Mean distance over ordered pairs of different faces; NaN for rows with < 2 faces."""
        n = self.counts.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            thr = self._pair_sums() / (n * (n - 1))
        thr[self.counts < 2] = np.nan
        return thr

    def thresholds(self, singleton: SingletonPolicy = "median") -> np.ndarray:
        """Per-row adaptive threshold; rows with one face follow ``singleton`` (see SINGLETON_POLICIES)."""
        if singleton not in SINGLETON_POLICIES:
            raise ValueError(f"singleton must be one of {SINGLETON_POLICIES}, got {singleton!r}")
        if np.any(self.counts < 1):
            raise ValueError("some rows have no faces; every track needs at least one face (or exclude it)")
        thr = self.pair_thresholds()
        single = self.counts < 2
        if single.any():
            if singleton == "median" and not single.all():
                thr[single] = float(np.median(thr[~single]))
            else:
                thr[single] = self.self_distance()[single]
        return thr


class EmbeddingSums(TrackStats):
    """Statistics of the embedding metrics (cosine, Euclidean): per track, the sum of its face
    embeddings (``sums``, (n, D)), the sum of their squared norms (``sumsq``) and ``counts``."""

    _fields = ("sums", "sumsq")

    def __init__(self, sums: np.ndarray, sumsq: np.ndarray, counts: np.ndarray) -> None:
        self.sums = sums
        self.sumsq = np.asarray(sumsq, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.int64)
