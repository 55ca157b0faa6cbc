"""Mean cosine distance between tracks, from per-track sums (ablation baseline)."""
from __future__ import annotations

import numpy as np

from vcn_plugin.clustering.stats.base import EmbeddingSums, per_track_sums, rowdot, validate_face_track
from vcn_plugin.core.arrays import as_float_matrix


class CosineStats(EmbeddingSums):
    """Sums of L2-normalised embeddings; distance = mean over pairs of ``1 - cos``."""

    metric = "cosine"

    @classmethod
    def from_faces(cls, embeddings: np.ndarray, face_track: np.ndarray, n_tracks: int | None = None) -> "CosineStats":
        """Per-track sums of the L2-normalised face embeddings (n_faces, D)."""
        face_track, n_tracks = validate_face_track(face_track, n_tracks)
        emb = as_float_matrix("embeddings", embeddings, face_track.shape[0])
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("an embedding is all zeros; cosine distance is undefined for it (drop or exclude that face)")
        return cls(*per_track_sums(emb / norms, face_track, n_tracks))

    def distances(self, rows: np.ndarray, other: "CosineStats", cols: np.ndarray) -> np.ndarray:
        dots = self.sums[rows] @ other.sums[cols].T
        # the same float64 arithmetic as ``1 - dots / (n_i n_j)``, in one buffer: the elementwise
        # passes cost more than the product itself (the tiles of the agreement's nearest-track search)
        out = np.multiply.outer(self.counts[rows].astype(np.float64), other.counts[cols].astype(np.float64))
        np.divide(dots, out, out=out)
        return np.subtract(1.0, out, out=out)

    def pair_distances(self, i: np.ndarray, other: "CosineStats", j: np.ndarray) -> np.ndarray:
        return 1.0 - rowdot(self.sums[i], other.sums[j]) / (self.counts[i] * other.counts[j])

    def _pair_sums(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return n * (n - 1) - (rowdot(self.sums, self.sums) - self.sumsq)

    def self_distance(self) -> np.ndarray:
        n = self.counts.astype(np.float64)
        return 1.0 - rowdot(self.sums, self.sums) / (n * n)
