"""Box and image geometry shared by every layer: IoU in both box conventions, downscaling.

Boxes are ``x1, y1, x2, y2`` (detector and tracker convention, pixels) or ``x, y, w, h``
(FiftyOne and benchmark convention, relative or pixels); each function says which.
"""
from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np


def elementwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``x1, y1, x2, y2`` boxes in the last axis of two broadcastable arrays."""
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0, None)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) ``x1, y1, x2, y2`` boxes -> (N, M)."""
    a = np.asarray(boxes_a, dtype=float).reshape(-1, 1, 4)
    b = np.asarray(boxes_b, dtype=float).reshape(1, -1, 4)
    return elementwise_iou(a, b)


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), boxes as x, y, w, h."""
    a_x2, a_y2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    b_x2, b_y2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(a_x2[:, None], b_x2[None]) - np.maximum(a[:, 0:1], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a_y2[:, None], b_y2[None]) - np.maximum(a[:, 1:2], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def downscale(
    image: np.ndarray, max_side: int | None = None, width: int | None = None, interpolation: int = cv2.INTER_AREA
) -> tuple[np.ndarray, np.ndarray]:
    """Shrink ``image`` (never enlarge) so its long side is at most ``max_side``, or its width
    at most ``width``; returns the image and the (x, y) factors applied (area interpolation
    unless told otherwise)."""
    h, w = image.shape[:2]
    if width is not None:
        if w <= width:
            return image, np.ones(2, dtype=np.float32)
        size = (width, max(1, round(h * width / w)))
    else:
        if max_side is None or max(h, w) <= max_side:
            return image, np.ones(2, dtype=np.float32)
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # factors per axis: rounding the size makes them differ slightly from one scale
    factors = np.array([size[0] / w, size[1] / h], dtype=np.float32)
    return cv2.resize(image, size, interpolation=interpolation), factors


def resize_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` downscaled so that its longer side is at most ``max_side`` pixels."""
    return downscale(image, max_side=max_side)[0]


def pixel_to_relative(box: Iterable[float], width: int, height: int) -> list[float]:
    """Pixel ``[x, y, w, h]`` -> relative ``[x, y, w, h]`` (not clipped: faces may leave the frame)."""
    x, y, w, h = (float(v) for v in box)
    return [x / width, y / height, w / width, h / height]


def relative_to_pixel(box: Iterable[float], width: int, height: int) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in box)
    return (x * width, y * height, w * width, h * height)
