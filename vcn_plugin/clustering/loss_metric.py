"""Track-to-track distances and per-track adaptive thresholds from per-track sums.

VideoClusterNet (Kamboj et al., ECCV 2024, arXiv:2407.12214) measures the
distance from track ``a`` to track ``b`` as the mean, over face pairs
``(i in a, j in b)``, of the self-distillation loss ``-p_i . log q_j`` (teacher's
centred, sharpened probabilities ``p``, student's log-probabilities ``log q``).
The mean is bilinear::

    mean_ij(-p_i . log q_j) = -(mean_i p_i) . (mean_j log q_j)

so every distance is a dot product of per-track *sums*, all distances are one
GEMM, and a cluster's statistics are the sums of its tracks' statistics. A
track's threshold is the mean loss over ordered pairs of *different* faces of
the track::

    thr(a) = ((sum_i p_i) . (sum_j -log q_j) - sum_i p_i . (-log q_i)) / (n (n - 1))

The symmetric distance averages both directions. Over *ordered* pairs the two
directions of the intra-track mean are the same sum, so the symmetric threshold
equals the directed one.

Two forms of the same numbers: :class:`LossMetricStats` takes dense K-wide
log-probabilities (any model); :class:`FactoredLossStats` takes the student as
the DINO head produces it (``log q = W z / temp - lse``, z 256-d), which makes
every sum 256-wide and the pairwise search 16x cheaper at K = 4096. The
pipeline uses the factored form.

The ablation variants use the same scheme on backbone embeddings:

- ``cosine``: mean over pairs of ``1 - u_i . u_j`` (``u`` = L2-normalised
  embedding) = ``1 - (sum u)_a . (sum u)_b / (n_a n_b)``.
- ``euclidean``: mean over pairs of the *squared* Euclidean distance, from
  ``||x||^2 + ||y||^2 - 2 x . y`` summed. The mean of the non-squared distance
  has no closed form in per-track sums; the mean squared distance (equivalently
  its root, the RMS distance, which orders pairs and thresholds identically) is
  exact and cheap.

Tracks (clusters) with a single face have no pair of different faces; see
:data:`SINGLETON_POLICIES`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

#: How a cluster with one face gets a threshold. ``"median"`` (default): the
#: median threshold of the clusters with at least two faces (a one-face track
#: has no evidence of its own spread, so it borrows the typical one); when no
#: cluster has two faces it falls back to ``"self"``. ``"self"``: the mean over
#: all pairs including ``i == j`` (for the loss: the teacher/student loss of
#: the face with itself; for cosine and Euclidean this is 0, so such a track
#: only merges through the other track's threshold).
SINGLETON_POLICIES = ("median", "self")
SingletonPolicy = Literal["median", "self"]

#: Target number of float32 entries of one distance tile (64 Mi entries = 256 MiB).
DEFAULT_TILE_ENTRIES = 1 << 24


def _as_float_matrix(name: str, x: np.ndarray, n_rows: int | None = None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_faces, dim), got shape {x.shape}")
    if n_rows is not None and x.shape[0] != n_rows:
        raise ValueError(f"{name} has {x.shape[0]} rows but face_track has {n_rows} entries; give one row per face")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; check the model outputs")
    return x


def _validate_face_track(face_track: np.ndarray, n_tracks: int | None) -> tuple[np.ndarray, int]:
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


def _membership(labels: np.ndarray, n_groups: int, dtype: np.dtype) -> sp.csr_matrix:
    """(n_groups, len(labels)) 0/1 matrix; ``M @ X`` sums rows of X per group."""
    n = labels.shape[0]
    return sp.csr_matrix((np.ones(n, dtype=dtype), (labels, np.arange(n))), shape=(n_groups, n))


def _rowdot(a: np.ndarray, b: np.ndarray, block: int = 4096, accumulate: type = np.float64) -> np.ndarray:
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
            member = _membership(labels, n_groups, arr.dtype if arr.dtype.kind == "f" else np.float64)
            summed = member @ arr
            arrays[name] = np.rint(summed).astype(np.int64) if name == "counts" else np.asarray(summed, dtype=arr.dtype)
        return self._replace(**arrays)

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
                member = _membership(local, targets.size, arr.dtype)
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


class LossMetricStats(TrackStats):
    """Sums for the SSL-loss metric: ``sum p``, ``sum -log q``, ``sum p_i . -log q_i``.

    ``prune`` (default: when K >= 256) makes the pairwise search use a sparse
    lower bound: ``p >= 0`` and ``-log q >= 0``, so dropping the small entries of
    ``mean p`` can only lower ``-mean p . mean log q``. The sharpened teacher puts
    nearly all of a track's mass on a few prototypes, so a sparse-dense product
    with a few entries per row bounds the distance tightly, and only pairs whose
    bound is under a threshold are computed exactly. Results are identical to
    the dense computation.
    """

    metric = "loss"
    _fields = ("sum_p", "sum_nlogq", "diag")

    #: a row's sparse bound keeps its largest entries up to this share of its mass ...
    bound_mass: float = 1.0 - 1e-4
    #: ... and at most this many entries
    bound_max_entries: int = 128

    def __init__(
        self,
        sum_p: np.ndarray,
        sum_nlogq: np.ndarray,
        diag: np.ndarray,
        counts: np.ndarray,
        prune: bool | None = None,
    ) -> None:
        self.sum_p = sum_p
        self.sum_nlogq = sum_nlogq
        self.diag = np.asarray(diag, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.int64)
        if not (sum_p.shape == sum_nlogq.shape and sum_p.shape[0] == self.diag.shape[0] == self.counts.shape[0]):
            raise ValueError(
                f"inconsistent shapes: sum_p {sum_p.shape}, sum_nlogq {sum_nlogq.shape}, "
                f"diag {self.diag.shape}, counts {self.counts.shape}"
            )
        self.prune = sum_p.shape[1] >= 256 if prune is None else bool(prune)
        self._invalidate()

    @classmethod
    def from_faces(
        cls,
        probs: np.ndarray,
        log_probs: np.ndarray,
        face_track: np.ndarray,
        n_tracks: int | None = None,
        prune: bool | None = None,
        center_student: bool = False,
    ) -> "LossMetricStats":
        """Per-track sums from per-face teacher probabilities and student log-probabilities.

        Args:
            probs: (n_faces, K) teacher ``softmax((t - c) / temp_t)``; rows sum to 1.
            log_probs: (n_faces, K) student ``log_softmax(s / temp_s)``; all <= 0.
            face_track: (n_faces,) track index of each face.
            n_tracks: number of tracks (default: max index + 1); tracks without faces get zero rows.
            center_student: centre the student over these faces first (see
                :func:`center_student_log_probs`; :func:`make_stats` does by default).
        """
        face_track, n_tracks = _validate_face_track(face_track, n_tracks)
        probs = _as_float_matrix("probs", probs, face_track.shape[0])
        log_probs = _as_float_matrix("log_probs", log_probs, face_track.shape[0])
        if probs.shape != log_probs.shape:
            raise ValueError(f"probs {probs.shape} and log_probs {log_probs.shape} must have the same shape")
        if probs.size:
            if probs.min() < 0 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
                raise ValueError("probs must be probabilities (non-negative, rows sum to 1): pass softmax((t - c) / temp_t)")
            if log_probs.max() > 1e-6:
                raise ValueError("log_probs must be log-probabilities (<= 0): pass log_softmax(s / temp_s)")
        if center_student and log_probs.size:
            log_probs = center_student_log_probs(log_probs)
        dtype = np.result_type(probs.dtype, log_probs.dtype)
        member = _membership(face_track, n_tracks, dtype)
        nlogq = -log_probs.astype(dtype, copy=False)
        return cls(
            sum_p=np.asarray(member @ probs.astype(dtype, copy=False)),
            sum_nlogq=np.asarray(member @ nlogq),
            diag=member.astype(np.float64) @ _rowdot(probs, nlogq),
            counts=np.bincount(face_track, minlength=n_tracks),
            prune=prune,
        )

    def _invalidate(self) -> None:
        self._bound_cache: sp.csr_matrix | None = None
        self._nlogq_t_cache: np.ndarray | None = None

    def _nlogq_t(self, idx: np.ndarray, cache: bool) -> np.ndarray:
        """``sum_nlogq[idx].T`` as a C-contiguous (K, len(idx)) array.

        With ``cache`` the whole transpose is kept (one copy per clustering
        round) and column ranges are sliced from it, which is much cheaper than
        transposing a gathered block for every tile.
        """
        if cache and self._nlogq_t_cache is None:
            self._nlogq_t_cache = np.ascontiguousarray(self.sum_nlogq.T)
        full = self._nlogq_t_cache
        if full is None:
            return np.ascontiguousarray(self.sum_nlogq[idx].T)
        if idx.size and idx[-1] - idx[0] == idx.size - 1 and np.all(np.diff(idx) == 1):
            return np.ascontiguousarray(full[:, idx[0] : idx[-1] + 1])
        return np.ascontiguousarray(full[:, idx])

    # -- directed distances -----------------------------------------------
    def directed_distances(self, rows: np.ndarray, other: "LossMetricStats", cols: np.ndarray) -> np.ndarray:
        """``d(a -> b) = -mean_i p_i . mean_j log q_j`` for a in rows (teacher side), b in cols (student side)."""
        num = self.sum_p[rows] @ other.sum_nlogq[cols].T
        return num / (self.counts[rows, None] * other.counts[None, cols])

    def distances(self, rows: np.ndarray, other: "LossMetricStats", cols: np.ndarray) -> np.ndarray:
        num = self.sum_p[rows] @ other.sum_nlogq[cols].T
        num += self.sum_nlogq[rows] @ other.sum_p[cols].T
        return num / (2.0 * self.counts[rows, None] * other.counts[None, cols])

    def pair_distances(self, i: np.ndarray, other: "LossMetricStats", j: np.ndarray) -> np.ndarray:
        out = np.empty(i.shape[0], dtype=np.float64)
        for s in range(0, i.shape[0], 2048):
            a, b = i[s : s + 2048], j[s : s + 2048]
            # native precision: float32 sums give ~1e-6 relative error, far below any threshold gap
            num = _rowdot(self.sum_p[a], other.sum_nlogq[b], accumulate=self.sum_p.dtype)
            num += _rowdot(self.sum_nlogq[a], other.sum_p[b], accumulate=self.sum_p.dtype)
            out[s : s + 2048] = num / (2.0 * self.counts[a] * other.counts[b])
        return out

    def _pair_sums(self) -> np.ndarray:
        return _rowdot(self.sum_p, self.sum_nlogq) - self.diag

    def self_distance(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return _rowdot(self.sum_p, self.sum_nlogq) / (n * n)

    # -- pruning -------------------------------------------------------------
    def _bound_matrix(self) -> sp.csr_matrix:
        """Sparse (C, K): each row's largest entries of ``mean p``, the rest dropped."""
        if self._bound_cache is not None:
            return self._bound_cache
        n_rows, k = self.sum_p.shape
        m = min(self.bound_max_entries, k)
        indptr, indices, values = [0], [], []
        for s in range(0, n_rows, 4096):
            block = self.sum_p[s : s + 4096] / self.counts[s : s + 4096, None].astype(self.sum_p.dtype)
            top = np.argpartition(-block, m - 1, axis=1)[:, :m] if m < k else np.tile(np.arange(k), (block.shape[0], 1))
            top_vals = np.take_along_axis(block, top, axis=1)
            order = np.argsort(-top_vals, axis=1, kind="stable")
            top, top_vals = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_vals, order, axis=1)
            mass = np.cumsum(top_vals, axis=1, dtype=np.float64)
            keep = np.minimum((mass < self.bound_mass * mass[:, -1:]).sum(axis=1) + 1, m)
            for r in range(block.shape[0]):
                indices.append(top[r, : keep[r]])
                values.append(top_vals[r, : keep[r]])
                indptr.append(indptr[-1] + int(keep[r]))
        mat = sp.csr_matrix(
            (np.concatenate(values) if values else np.zeros(0, self.sum_p.dtype),
             np.concatenate(indices) if indices else np.zeros(0, np.int64), np.asarray(indptr)),
            shape=(n_rows, k),
        )
        self._bound_cache = mat
        return mat

    def lower_bounds(self, rows: np.ndarray, other: "TrackStats", cols: np.ndarray) -> tuple[np.ndarray, bool]:
        if not (self.prune and isinstance(other, LossMetricStats)):
            return self.distances(rows, other, cols), True
        # sparse mean-p rows times dense -log q (transposed to (K, n) for a contiguous sparse-dense product)
        ab = self._bound_matrix()[rows] @ other._nlogq_t(cols, cache=True)
        ab /= other.counts[None, cols].astype(ab.dtype)
        ba = other._bound_matrix()[cols] @ self._nlogq_t(rows, cache=self is other)
        ba /= self.counts[None, rows].astype(ba.dtype)
        ab += ba.T
        ab *= 0.5
        return ab, False


@dataclass(frozen=True)
class StudentFactors:
    """The student's log-probabilities in the factored form the DINO head gives them.

    The head's logits are ``s = W z`` (``z``: the L2-normalised bottleneck, (N, D);
    ``W``: the prototypes, (K, D)), so ``log q = W z / temp - lse(W z / temp)``:
    every face's ``-log q`` lies in a (D + 1)-dimensional subspace of R^K. With
    D = 256 and K = 4096 the loss metric is then a 512-wide GEMM instead of a
    8192-wide one (see :class:`FactoredLossStats`), with the same values.

    Attributes:
        bottleneck: (N, D) the student head's ``z`` per face.
        prototypes: (K, D) the student head's effective last-layer weight ``W``.
        temperature: the student temperature ``temp_s``.
    """

    bottleneck: np.ndarray
    prototypes: np.ndarray
    temperature: float

    def __post_init__(self) -> None:
        z = _as_float_matrix("bottleneck", self.bottleneck)
        w = _as_float_matrix("prototypes", self.prototypes)
        if z.shape[1] != w.shape[1]:
            raise ValueError(f"bottleneck is (N, {z.shape[1]}) but prototypes are (K, {w.shape[1]}); both need the head's bottleneck width")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        object.__setattr__(self, "bottleneck", z)
        object.__setattr__(self, "prototypes", w)

    def __len__(self) -> int:
        return int(self.bottleneck.shape[0])

    def centered(self) -> "StudentFactors":
        """Logits centred over these faces: ``W (z - mean z)`` = ``s - mean s`` (see :func:`center_student_log_probs`)."""
        z = self.bottleneck
        return StudentFactors(z - z.mean(axis=0, keepdims=True) if len(z) else z, self.prototypes, self.temperature)

    def scaled_logits(self, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
        """``W z / temp`` for the given faces, (n, K)."""
        return self.bottleneck[rows] @ (self.prototypes.T / np.asarray(self.temperature, self.prototypes.dtype))

    def log_normalizers(self, block: int = 4096) -> np.ndarray:
        """``lse(W z / temp)`` per face (float64), blockwise so no (N, K) array exists at once."""
        out = np.empty(len(self), np.float64)
        for s in range(0, len(self), block):
            out[s : s + block] = logsumexp(self.scaled_logits(slice(s, s + block)).astype(np.float64), axis=1)
        return out

    def log_probs(self) -> np.ndarray:
        """The dense ``log_softmax(W z / temp)``, (N, K) (for checks and small inputs)."""
        logits = self.scaled_logits()
        return logits - logsumexp(logits, axis=1, keepdims=True)


class FactoredLossStats(TrackStats):
    """The SSL-loss metric on :class:`StudentFactors`; same distances as :class:`LossMetricStats`.

    With ``a_i = p_i W / temp`` (D-dim) and ``l_j = lse(W z_j / temp)``, and ``sum_k p_ik = 1``::

        -p_i . log q_j = -a_i . z_j + l_j
        sum_{i in A, j in B} -p_i . log q_j = left_A . right_B + n_A L_B

    with ``left = -sum a_i``, ``right = sum z_j`` and ``L = sum l_j``: all
    per-track sums, so everything :class:`TrackStats` needs stays additive and
    the pairwise search is a dense GEMM of width 2D (both directions at once).
    At D = 256, K = 4096 that is 16x fewer operations than the K-wide form
    and per-track state of 2 KiB instead of 32 KiB, which is what lets 50k
    tracks cluster in under a minute.
    """

    metric = "loss"
    _fields = ("left", "right", "sum_lse", "diag")

    def __init__(self, left: np.ndarray, right: np.ndarray, sum_lse: np.ndarray, diag: np.ndarray, counts: np.ndarray) -> None:
        self.left = left
        self.right = right
        self.sum_lse = np.asarray(sum_lse, dtype=np.float64)
        self.diag = np.asarray(diag, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.int64)
        if not (left.shape == right.shape and left.shape[0] == self.sum_lse.shape[0] == self.diag.shape[0] == self.counts.shape[0]):
            raise ValueError(f"inconsistent shapes: left {left.shape}, right {right.shape}, sum_lse {self.sum_lse.shape}, "
                             f"diag {self.diag.shape}, counts {self.counts.shape}")
        self._invalidate()

    @classmethod
    def from_faces(
        cls,
        probs: np.ndarray,
        student: StudentFactors,
        face_track: np.ndarray,
        n_tracks: int | None = None,
        center_student: bool = False,
    ) -> "FactoredLossStats":
        """Per-track sums from teacher probabilities (n_faces, K) and the student's factors.

        ``center_student``: centre the student's logits over these faces first
        (:meth:`StudentFactors.centered`; :func:`make_stats` does by default).
        """
        face_track, n_tracks = _validate_face_track(face_track, n_tracks)
        probs = _as_float_matrix("probs", probs, face_track.shape[0])
        if len(student) != face_track.shape[0]:
            raise ValueError(f"student has {len(student)} faces but face_track has {face_track.shape[0]}; give one row per face")
        if probs.shape[1] != student.prototypes.shape[0]:
            raise ValueError(f"probs have K={probs.shape[1]} but the student has {student.prototypes.shape[0]} prototypes")
        if probs.size and (probs.min() < 0 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)):
            raise ValueError("probs must be probabilities (non-negative, rows sum to 1): pass softmax((t - c) / temp_t)")
        if center_student and len(student):
            student = student.centered()
        dtype = np.result_type(probs.dtype, student.bottleneck.dtype)
        z = student.bottleneck.astype(dtype, copy=False)
        a = probs.astype(dtype, copy=False) @ (student.prototypes.astype(dtype) / np.asarray(student.temperature, dtype))
        lse = student.log_normalizers()
        member = _membership(face_track, n_tracks, dtype)
        member64 = member.astype(np.float64)
        return cls(
            left=-np.asarray(member @ a),
            right=np.asarray(member @ z),
            sum_lse=member64 @ lse,
            diag=member64 @ (lse - _rowdot(a, z)),
            counts=np.bincount(face_track, minlength=n_tracks),
        )

    def _means(self, rows: np.ndarray, swapped: bool) -> np.ndarray:
        """``[left, right] / n`` (or ``[right, left] / n``) for ``rows``, (len(rows), 2D)."""
        first, second = (self.right, self.left) if swapped else (self.left, self.right)
        scale = (1.0 / self.counts[rows]).astype(first.dtype)[:, None]
        return np.concatenate([first[rows], second[rows]], axis=1) * scale

    def distances(self, rows: np.ndarray, other: "FactoredLossStats", cols: np.ndarray) -> np.ndarray:
        # one GEMM for both directions: [left_a, right_a] . [right_b, left_b] / (n_a n_b)
        out = self._means(rows, swapped=False) @ other._means(cols, swapped=True).T
        out *= 0.5
        out += (0.5 * self.sum_lse[rows] / self.counts[rows]).astype(out.dtype)[:, None]
        out += (0.5 * other.sum_lse[cols] / other.counts[cols]).astype(out.dtype)[None, :]
        return out

    def pair_distances(self, i: np.ndarray, other: "FactoredLossStats", j: np.ndarray) -> np.ndarray:
        na, nb = self.counts[i].astype(np.float64), other.counts[j].astype(np.float64)
        cross = _rowdot(self.left[i], other.right[j]) + _rowdot(self.right[i], other.left[j])
        return 0.5 * cross / (na * nb) + 0.5 * (self.sum_lse[i] / na + other.sum_lse[j] / nb)

    def _pair_sums(self) -> np.ndarray:
        return _rowdot(self.left, self.right) + self.counts * self.sum_lse - self.diag

    def self_distance(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return (_rowdot(self.left, self.right) + n * self.sum_lse) / (n * n)


class CosineStats(TrackStats):
    """Sums of L2-normalised embeddings; distance = mean over pairs of ``1 - cos``."""

    metric = "cosine"
    _fields = ("sum_u", "sumsq")

    def __init__(self, sum_u: np.ndarray, sumsq: np.ndarray, counts: np.ndarray) -> None:
        self.sum_u = sum_u
        self.sumsq = np.asarray(sumsq, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.int64)

    @classmethod
    def from_faces(cls, embeddings: np.ndarray, face_track: np.ndarray, n_tracks: int | None = None) -> "CosineStats":
        """Per-track sums of the L2-normalised face embeddings (n_faces, D)."""
        face_track, n_tracks = _validate_face_track(face_track, n_tracks)
        emb = _as_float_matrix("embeddings", embeddings, face_track.shape[0])
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("an embedding is all zeros; cosine distance is undefined for it (drop or exclude that face)")
        unit = emb / norms
        member = _membership(face_track, n_tracks, unit.dtype)
        return cls(np.asarray(member @ unit), member.astype(np.float64) @ _rowdot(unit, unit), np.bincount(face_track, minlength=n_tracks))

    def distances(self, rows: np.ndarray, other: "CosineStats", cols: np.ndarray) -> np.ndarray:
        dots = self.sum_u[rows] @ other.sum_u[cols].T
        return 1.0 - dots / (self.counts[rows, None] * other.counts[None, cols])

    def pair_distances(self, i: np.ndarray, other: "CosineStats", j: np.ndarray) -> np.ndarray:
        return 1.0 - _rowdot(self.sum_u[i], other.sum_u[j]) / (self.counts[i] * other.counts[j])

    def _pair_sums(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return n * (n - 1) - (_rowdot(self.sum_u, self.sum_u) - self.sumsq)

    def self_distance(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return 1.0 - _rowdot(self.sum_u, self.sum_u) / (n * n)


class EuclideanStats(TrackStats):
    """Sums of embeddings and squared norms; distance = mean over pairs of ``||x - y||^2``."""

    metric = "euclidean"
    _fields = ("sum_x", "sumsq")

    def __init__(self, sum_x: np.ndarray, sumsq: np.ndarray, counts: np.ndarray) -> None:
        self.sum_x = sum_x
        self.sumsq = np.asarray(sumsq, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.int64)

    @classmethod
    def from_faces(cls, embeddings: np.ndarray, face_track: np.ndarray, n_tracks: int | None = None) -> "EuclideanStats":
        """Per-track sums of the face embeddings (n_faces, D), used as given (not normalised)."""
        face_track, n_tracks = _validate_face_track(face_track, n_tracks)
        emb = _as_float_matrix("embeddings", embeddings, face_track.shape[0])
        member = _membership(face_track, n_tracks, emb.dtype)
        return cls(np.asarray(member @ emb), member.astype(np.float64) @ _rowdot(emb, emb), np.bincount(face_track, minlength=n_tracks))

    def distances(self, rows: np.ndarray, other: "EuclideanStats", cols: np.ndarray) -> np.ndarray:
        na, nb = self.counts[rows].astype(np.float64), other.counts[cols].astype(np.float64)
        cross = (self.sum_x[rows] @ other.sum_x[cols].T) / (na[:, None] * nb[None, :])
        return (self.sumsq[rows] / na)[:, None] + (other.sumsq[cols] / nb)[None, :] - 2.0 * cross

    def pair_distances(self, i: np.ndarray, other: "EuclideanStats", j: np.ndarray) -> np.ndarray:
        na, nb = self.counts[i].astype(np.float64), other.counts[j].astype(np.float64)
        return self.sumsq[i] / na + other.sumsq[j] / nb - 2.0 * _rowdot(self.sum_x[i], other.sum_x[j]) / (na * nb)

    def _pair_sums(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return 2.0 * n * self.sumsq - 2.0 * _rowdot(self.sum_x, self.sum_x)

    def self_distance(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return (2.0 * n * self.sumsq - 2.0 * _rowdot(self.sum_x, self.sum_x)) / (n * n)


METRICS = ("loss", "cosine", "euclidean")


def center_student_log_probs(log_probs: np.ndarray) -> np.ndarray:
    """The student's log-probabilities recomputed from logits centred over the given faces.

    ``log_softmax(log_q - mean_faces(log_q))`` equals ``log_softmax((s - mean_faces(s)) / temp_s)``
    (the per-face normalisers cancel), so this is DINO's centering, which training applies to the
    teacher, applied at clustering time to the student of one video. Why: after a short
    finetuning the student can keep a mode shared by all faces; a track whose teacher favours
    those prototypes then has a low loss to every other track and, with the merge-when-below-
    either-threshold rule, pulls them all into one cluster. Measured on the 12 real test tracks
    of ``tests/test_loss_metric_real.py`` (6 people) over finetuning seeds 0/1/2: 6/1/6 clusters
    raw, 6/5/6 centred (the 5: two people in one cluster, the rest exact); with a faster teacher
    (momentum 0.97) 6/3/1 raw, 6/6/5 centred; on two benchmark episodes 22 and 13 clusters raw,
    22 and 14 centred (all pure either way).
    """
    x = log_probs - log_probs.mean(axis=0, keepdims=True)
    return x - logsumexp(x, axis=1, keepdims=True)


def make_stats(
    metric: str,
    face_track: np.ndarray,
    *,
    probs: np.ndarray | None = None,
    log_probs: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    student: StudentFactors | None = None,
    n_tracks: int | None = None,
    center_student: bool = True,
) -> TrackStats:
    """Per-track statistics for ``metric``: "loss" needs ``probs`` and the student, either
    factored (``student``: :class:`FactoredLossStats`, what the pipeline uses) or dense
    (``log_probs``: :class:`LossMetricStats`); the others need ``embeddings``.
    ``center_student``: see :func:`center_student_log_probs`."""
    if metric == "loss":
        if probs is None or (log_probs is None and student is None):
            raise ValueError("the loss metric needs the teacher probabilities and student log-probabilities (run finetuning first)")
        if log_probs is not None and student is not None:
            raise ValueError("give the student either as log_probs or as factors (student), not both")
        if student is not None:
            return FactoredLossStats.from_faces(probs, student, face_track, n_tracks, center_student=center_student)
        return LossMetricStats.from_faces(probs, log_probs, face_track, n_tracks, center_student=center_student)
    if metric in ("cosine", "euclidean"):
        if embeddings is None:
            raise ValueError(f"the {metric} metric needs face embeddings")
        cls = CosineStats if metric == "cosine" else EuclideanStats
        return cls.from_faces(embeddings, face_track, n_tracks)
    raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")


def tile_size(n_cols: int, tile_entries: int = DEFAULT_TILE_ENTRIES) -> int:
    """Rows per tile so that a (rows, n_cols) tile holds about ``tile_entries`` entries."""
    return max(1, min(8192, tile_entries // max(n_cols, 1)))


def _round_up(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` in ``dtype``, never below its float64 value."""
    y = x.astype(dtype)
    return np.where(y < x, np.nextafter(y, np.asarray(np.inf, dtype)), y)


def candidate_edges(
    stats: TrackStats,
    thresholds: np.ndarray,
    rows: np.ndarray | None = None,
    tile_entries: int = DEFAULT_TILE_ENTRIES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, with ``d(i, j) < max(thr_i, thr_j)``, and their distances.

    Never materialises the full matrix: it walks square tiles (only the upper
    triangle when ``rows`` is None), keeps the entries whose lower bound is under
    the larger of the two thresholds, then computes those exactly. ``rows``
    restricts the search to pairs with at least one end in ``rows``.
    """
    n = len(stats)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    edges_i, edges_j, edges_d = [], [], []
    side = max(1, int(np.sqrt(tile_entries)))
    all_idx = np.arange(n)
    row_idx = all_idx if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    for rs in range(0, row_idx.size, side):
        r = row_idx[rs : rs + side]
        for cs in range(0, n, side):
            if rows is None and cs + side <= rs:
                continue  # lower triangle: covered by its mirror tile
            c = all_idx[cs : cs + side]
            bound, exact = stats.lower_bounds(r, stats, c)
            # below either threshold; two comparisons avoid a float64 (rows, cols) max matrix, and the
            # thresholds are rounded up to the bound's precision so no candidate is lost (``ok`` decides)
            below = bound < _round_up(thresholds[r], bound.dtype)[:, None]
            below |= bound < _round_up(thresholds[c], bound.dtype)[None, :]
            ii, jj = np.nonzero(below)
            gi, gj = r[ii], c[jj]
            keep = gi != gj
            gi, gj, ii, jj = gi[keep], gj[keep], ii[keep], jj[keep]
            d = bound[ii, jj].astype(np.float64) if exact else stats.pair_distances(gi, stats, gj)
            ok = d < np.maximum(thresholds[gi], thresholds[gj])
            edges_i.append(np.minimum(gi, gj)[ok])
            edges_j.append(np.maximum(gi, gj)[ok])
            edges_d.append(d[ok])
    if not edges_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    i, j, d = np.concatenate(edges_i), np.concatenate(edges_j), np.concatenate(edges_d)
    _, first = np.unique(i * max(n, 1) + j, return_index=True)  # a pair seen from both of its ends
    return i[first], j[first], d[first]


def _two_smallest(top2: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Fold extra (row, value) entries into each row's two smallest values (top2: (n, 2), sorted)."""
    all_rows = np.concatenate([np.repeat(np.arange(top2.shape[0]), 2), rows])
    all_vals = np.concatenate([top2.ravel(), values])
    order = np.lexsort((all_vals, all_rows))
    all_rows, all_vals = all_rows[order], all_vals[order]
    starts = np.searchsorted(all_rows, np.arange(top2.shape[0]))
    return np.stack([all_vals[starts], all_vals[starts + 1]], axis=1)


def best_two_distances(
    stats: TrackStats,
    clusters: TrackStats,
    tile_entries: int = DEFAULT_TILE_ENTRIES,
    n_exact: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """For every row of ``stats``, the smallest and second-smallest distance to a row of ``clusters``.

    With a lower bound, the ``n_exact`` smallest bounds of a row are computed
    exactly, then every further cluster whose bound is under the row's current
    second-best exact distance, until none is left (so the result is exact).
    Second-best is inf when there is one cluster.
    """
    n, c = len(stats), len(clusters)
    best = np.full(n, np.inf)
    second = np.full(n, np.inf)
    if n == 0 or c == 0:
        return best, second
    rows_per = tile_size(c, tile_entries)
    cols = np.arange(c)
    for rs in range(0, n, rows_per):
        r = np.arange(rs, min(n, rs + rows_per))
        bound, exact = stats.lower_bounds(r, clusters, cols)
        bound = bound.astype(np.float64, copy=False)
        k = min(n_exact, c)
        cand = np.argpartition(bound, k - 1, axis=1)[:, :k] if k < c else np.tile(cols, (r.size, 1))
        if exact:
            vals = np.take_along_axis(bound, cand, axis=1)
        else:
            vals = stats.pair_distances(np.repeat(r, k), clusters, cand.ravel()).reshape(r.size, k)
        vals = np.sort(vals, axis=1)
        top2 = np.full((r.size, 2), np.inf)
        top2[:, : min(2, k)] = vals[:, :2]
        if not exact and k < c:
            np.put_along_axis(bound, cand, np.inf, axis=1)
            while True:
                ii, jj = np.nonzero(bound < top2[:, 1:2])
                if ii.size == 0:
                    break
                d = stats.pair_distances(r[ii], clusters, jj)
                bound[ii, jj] = np.inf
                top2 = _two_smallest(top2, ii, d)
        best[r], second[r] = top2[:, 0], top2[:, 1]
    return best, second


def canonical_groups(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber arbitrary group labels so that groups are ordered by their first (smallest) row."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, np.int64), 0
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()], int(first.size)
