"""Mean squared Euclidean distance between tracks, from per-track sums (ablation baseline)."""
from __future__ import annotations

import numpy as np

from vcn_plugin.clustering.stats.base import EmbeddingSums, per_track_sums, rowdot, validate_face_track
from vcn_plugin.core.arrays import as_float_matrix


class EuclideanStats(EmbeddingSums):
    """Sums of embeddings and squared norms; distance = mean over pairs of ``||x - y||^2``."""

    metric = "euclidean"

    @classmethod
    def from_faces(cls, embeddings: np.ndarray, face_track: np.ndarray, n_tracks: int | None = None) -> "EuclideanStats":
        """Per-track sums of the face embeddings (n_faces, D), used as given (not normalised)."""
        face_track, n_tracks = validate_face_track(face_track, n_tracks)
        return cls(*per_track_sums(as_float_matrix("embeddings", embeddings, face_track.shape[0]), face_track, n_tracks))

    def distances(self, rows: np.ndarray, other: "EuclideanStats", cols: np.ndarray) -> np.ndarray:
        na, nb = self.counts[rows].astype(np.float64), other.counts[cols].astype(np.float64)
        cross = (self.sums[rows] @ other.sums[cols].T) / (na[:, None] * nb[None, :])
        return (self.sumsq[rows] / na)[:, None] + (other.sumsq[cols] / nb)[None, :] - 2.0 * cross

    def pair_distances(self, i: np.ndarray, other: "EuclideanStats", j: np.ndarray) -> np.ndarray:
        na, nb = self.counts[i].astype(np.float64), other.counts[j].astype(np.float64)
        return self.sumsq[i] / na + other.sumsq[j] / nb - 2.0 * rowdot(self.sums[i], other.sums[j]) / (na * nb)

    def _pair_sums(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return 2.0 * n * self.sumsq - 2.0 * rowdot(self.sums, self.sums)

    def self_distance(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return (2.0 * n * self.sumsq - 2.0 * rowdot(self.sums, self.sums)) / (n * n)
