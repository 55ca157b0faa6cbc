"""The constant-velocity Kalman filter on box centre and size (ByteTrack / BoT-SORT)."""
from __future__ import annotations

import numpy as np


def xyxy_to_cxcywh(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = np.asarray(box, dtype=float)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


class BoxKalman:
    """Constant-velocity Kalman filter on (cx, cy, w, h), noise scaled by box size.

    The noise model is BoT-SORT's xywh variant of ByteTrack's filter.
    """

    _POS_STD = 1.0 / 20
    _VEL_STD = 1.0 / 160
    _F = np.eye(8) + np.eye(8, k=4)
    _H = np.eye(4, 8)

    def __init__(self, box: np.ndarray) -> None:
        z = xyxy_to_cxcywh(box)
        self.mean = np.concatenate([z, np.zeros(4)])
        w, h = z[2], z[3]
        std = np.array([2 * self._POS_STD * w, 2 * self._POS_STD * h] * 2 + [10 * self._VEL_STD * w, 10 * self._VEL_STD * h] * 2)
        self.cov = np.diag(std**2)

    def predict(self, freeze_size: bool) -> None:
        if freeze_size:  # ByteTrack: a lost track keeps its size
            self.mean[6:8] = 0.0
        w, h = self.mean[2], self.mean[3]
        std = np.array([self._POS_STD * w, self._POS_STD * h] * 2 + [self._VEL_STD * w, self._VEL_STD * h] * 2)
        self.mean = self._F @ self.mean
        self.mean[2:4] = np.maximum(self.mean[2:4], 1.0)
        self.cov = self._F @ self.cov @ self._F.T + np.diag(std**2)

    def update(self, box: np.ndarray) -> None:
        z = xyxy_to_cxcywh(box)
        w, h = self.mean[2], self.mean[3]
        r = np.diag(np.array([self._POS_STD * w, self._POS_STD * h] * 2) ** 2)
        s = self._H @ self.cov @ self._H.T + r
        gain = np.linalg.solve(s, self._H @ self.cov).T
        self.mean = self.mean + gain @ (z - self._H @ self.mean)
        self.cov = self.cov - gain @ self._H @ self.cov

    @property
    def box(self) -> np.ndarray:
        cx, cy, w, h = self.mean[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
