"""Detection-to-track association: buffered IoU cost, Hungarian matching (scipy)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from vcn_plugin.core.geometry import elementwise_iou


def _widen(boxes: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Grow (..., 4) boxes on every side by ``fraction`` (broadcast) of their width / height."""
    size = boxes[..., 2:] - boxes[..., :2]
    margin = np.concatenate([-size, size], axis=-1) * fraction[..., None]
    return boxes + margin


def buffered_iou_matrix(track_boxes: np.ndarray, buffers: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
    """IoU after widening row i's track box and every detection by ``buffers[i]``."""
    buffers = np.asarray(buffers, dtype=float).reshape(-1, 1)
    tracks = _widen(np.asarray(track_boxes, dtype=float).reshape(-1, 1, 4), buffers)
    dets = _widen(np.asarray(det_boxes, dtype=float).reshape(1, -1, 4), buffers)
    return elementwise_iou(tracks, dets)


def match_boxes(
    track_boxes: np.ndarray, buffers: np.ndarray, det_boxes: np.ndarray, min_iou: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian matching on 1 - buffered IoU; pairs below ``min_iou`` never match."""
    n_tracks, n_dets = len(track_boxes), len(det_boxes)
    if n_tracks == 0 or n_dets == 0:
        return [], list(range(n_tracks)), list(range(n_dets))
    iou = buffered_iou_matrix(track_boxes, buffers, det_boxes)
    cost = np.where(iou >= min_iou, 1.0 - iou, 1e6)
    rows, cols = linear_sum_assignment(cost)
    matches = [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]
    matched_tracks = {r for r, _ in matches}
    matched_dets = {c for _, c in matches}
    return (
        matches,
        [i for i in range(n_tracks) if i not in matched_tracks],
        [j for j in range(n_dets) if j not in matched_dets],
    )
