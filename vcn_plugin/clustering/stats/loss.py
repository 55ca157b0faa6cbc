"""The SSL-loss metric on dense student log-probabilities (any model; see :mod:`.factored_loss`)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from vcn_plugin.clustering.stats.base import TrackStats, membership, rowdot, validate_face_track
from vcn_plugin.core.arrays import as_float_matrix


def center_student_log_probs(log_probs: np.ndarray) -> np.ndarray:
    """The student's log-probabilities recomputed from logits centred over the given faces.

    ``log_softmax(log_q - mean_faces(log_q))`` equals ``log_softmax((s - mean_faces(s)) / temp_s)``
    (the per-face normalisers cancel), so this is DINO's centering, which training applies to the
    teacher, applied at clustering time to the student of one video. Why: after a short
    finetuning the student can keep a mode shared by all faces; a track whose teacher favours
    those prototypes then has a low loss to every other track and, with the merge-when-below-
    either-threshold rule, pulls them all into one cluster. Measured on the 12 real test tracks
    of ``tests/clustering/test_loss_metric_real.py`` (6 people) over finetuning seeds 0/1/2: 6/1/6 clusters
    raw, 6/5/6 centred (the 5: two people in one cluster, the rest exact); with a faster teacher
    (momentum 0.97) 6/3/1 raw, 6/6/5 centred; on two benchmark episodes 22 and 13 clusters raw,
    22 and 14 centred (all pure either way).
    """
    x = log_probs - log_probs.mean(axis=0, keepdims=True)
    return x - logsumexp(x, axis=1, keepdims=True)


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
        face_track, n_tracks = validate_face_track(face_track, n_tracks)
        probs = as_float_matrix("probs", probs, face_track.shape[0])
        log_probs = as_float_matrix("log_probs", log_probs, face_track.shape[0])
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
        member = membership(face_track, n_tracks, dtype)
        nlogq = -log_probs.astype(dtype, copy=False)
        return cls(
            sum_p=np.asarray(member @ probs.astype(dtype, copy=False)),
            sum_nlogq=np.asarray(member @ nlogq),
            diag=member.astype(np.float64) @ rowdot(probs, nlogq),
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
            num = rowdot(self.sum_p[a], other.sum_nlogq[b], accumulate=self.sum_p.dtype)
            num += rowdot(self.sum_nlogq[a], other.sum_p[b], accumulate=self.sum_p.dtype)
            out[s : s + 2048] = num / (2.0 * self.counts[a] * other.counts[b])
        return out

    def _pair_sums(self) -> np.ndarray:
        return rowdot(self.sum_p, self.sum_nlogq) - self.diag

    def self_distance(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return rowdot(self.sum_p, self.sum_nlogq) / (n * n)

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
