"""Mean squared Euclidean distance between tracks, from per-track sums (ablation baseline)."""
from __future__ import annotations

import numpy as np

from vcn_plugin.clustering.stats.base import TrackStats, per_track_sums, rowdot, validate_face_track
from vcn_plugin.core.arrays import as_float_matrix


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
        face_track, n_tracks = validate_face_track(face_track, n_tracks)
        return cls(*per_track_sums(as_float_matrix("embeddings", embeddings, face_track.shape[0]), face_track, n_tracks))

    def distances(self, rows: np.ndarray, other: "EuclideanStats", cols: np.ndarray) -> np.ndarray:
        na, nb = self.counts[rows].astype(np.float64), other.counts[cols].astype(np.float64)
        cross = (self.sum_x[rows] @ other.sum_x[cols].T) / (na[:, None] * nb[None, :])
        return (self.sumsq[rows] / na)[:, None] + (other.sumsq[cols] / nb)[None, :] - 2.0 * cross

    def pair_distances(self, i: np.ndarray, other: "EuclideanStats", j: np.ndarray) -> np.ndarray:
        na, nb = self.counts[i].astype(np.float64), other.counts[j].astype(np.float64)
        return self.sumsq[i] / na + other.sumsq[j] / nb - 2.0 * rowdot(self.sum_x[i], other.sum_x[j]) / (na * nb)

    def _pair_sums(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return 2.0 * n * self.sumsq - 2.0 * rowdot(self.sum_x, self.sum_x)

    def self_distance(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return (2.0 * n * self.sumsq - 2.0 * rowdot(self.sum_x, self.sum_x)) / (n * n)
