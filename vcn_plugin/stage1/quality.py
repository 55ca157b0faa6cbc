"""Cheap face quality, per-track aggregation and MAD outlier flags.

Per face, three terms in [0, 1] are combined by a weighted geometric mean, so a
face that is bad on any one of them (tiny, blurred, or barely detected) scores
low however good the others are::

    score_term     = clip((score - lo) / (hi - lo), 0, 1)       # lo, hi = score_range
    size_term      = clip(min(w, h) / reference_size, 0, 1)     # 112 = ArcFace chip side
    r              = var(Laplacian(g)) / var(g)                 # g: grey crop resized to side x side
    sharpness_term = 1 - exp(-r / sharpness_scale)
    quality        = exp(sum_i w_i * log(max(term_i, 1e-3)) / sum_i w_i)

Resizing the crop to a fixed side makes ``r`` independent of the crop's pixel
size (an upsampled small face has little high-frequency energy and scores
low); dividing by the grey variance makes it independent of contrast. On the
shared face photos ``r`` is about 0.13-0.65 for sharp faces and 0.02-0.08 after
a Gaussian blur of sigma 2. Pure noise also has a high ``r``: this is a cheap
measure, not SER-FIQ.

Per track, face qualities (from here or from SER-FIQ: the aggregation only
sees numbers) are summarised by their median over the real, non-interpolated
faces, and tracks whose quality is a low outlier among the tracks are flagged
with the modified z-score of Iglewicz and Hoaglin (1993).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vcn_plugin.core.types import FaceDetection

_LOG_FLOOR = 1e-3
#: a crop whose grey standard deviation is below this (0-255 scale) is flat: sharpness 0
_FLAT_STD = 1.0


@dataclass
class QualityConfig:
    """Settings of the cheap face quality (see the module docstring for the formula)."""

    #: detector scores mapped linearly from this range onto [0, 1] (then clipped);
    #: (0, 1) suits SCRFD / YuNet, raw dlib HOG margins need e.g. (-0.5, 2.0)
    score_range: tuple[float, float] = (0.0, 1.0)
    #: face side (pixels, shorter box side) at which the size term reaches 1
    reference_size: float = 112.0
    #: side of the square grey crop the Laplacian is measured on
    sharpness_side: int = 64
    #: ``r`` at which the sharpness term reaches 1 - 1/e (about 0.63)
    sharpness_scale: float = 0.1
    #: weights of (score, size, sharpness) in the geometric mean
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        lo, hi = self.score_range
        if not hi > lo:
            raise ValueError(f"score_range must be (low, high) with high > low, got {self.score_range}")
        if self.reference_size <= 0 or self.sharpness_scale <= 0 or self.sharpness_side < 8:
            raise ValueError("reference_size and sharpness_scale must be > 0 and sharpness_side >= 8")
        if len(self.weights) != 3 or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ValueError(f"weights must be three non-negative numbers, not all zero; got {self.weights}")


@dataclass
class QualityTerms:
    """The three terms of one face and their combination, all in [0, 1]."""

    score: float
    size: float
    sharpness: float
    quality: float


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError("frame must be a uint8 numpy array (H, W, 3) RGB or (H, W) grey, as decoded from video")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3):
        raise ValueError(f"frame must have shape (H, W, 3) or (H, W), got {frame.shape}")


def _grey_crop(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    x1, y1 = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
    x2, y2 = min(int(math.ceil(box[2])), width), min(int(math.ceil(box[3])), height)
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise ValueError(f"face box {np.round(box, 1).tolist()} lies outside the {width}x{height} frame")
    crop = frame[y1:y2, x1:x2]
    return crop if crop.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)


def laplacian_ratio(grey_crop: np.ndarray, side: int = 64) -> float:
    """Contrast-normalised variance of the Laplacian of a grey crop resized to ``side`` x ``side``."""
    shrinking = min(grey_crop.shape[:2]) >= side
    resized = cv2.resize(grey_crop, (side, side), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    grey = resized.astype(np.float64)
    if grey.std() < _FLAT_STD:
        return 0.0
    return float(cv2.Laplacian(grey, cv2.CV_64F).var() / grey.var())


def combine_terms(terms: Sequence[float], weights: Sequence[float]) -> float:
    """Weighted geometric mean of terms in [0, 1] (each floored at 1e-3)."""
    logs = np.log(np.maximum(np.asarray(terms, dtype=float), _LOG_FLOOR))
    w = np.asarray(weights, dtype=float)
    return float(np.exp(np.dot(w, logs) / w.sum()))


def quality_terms(frame_rgb: np.ndarray, detection: FaceDetection, config: QualityConfig | None = None) -> QualityTerms:
    """Score, size and sharpness terms of one face, and their combination."""
    config = config or QualityConfig()
    _check_frame(frame_rgb)
    box = np.asarray(detection.box, dtype=float)
    lo, hi = config.score_range
    score = float(np.clip((detection.score - lo) / (hi - lo), 0.0, 1.0))
    size = float(np.clip(min(detection.width, detection.height) / config.reference_size, 0.0, 1.0))
    ratio = laplacian_ratio(_grey_crop(frame_rgb, box), config.sharpness_side)
    sharpness = 1.0 - math.exp(-ratio / config.sharpness_scale)
    return QualityTerms(score, size, sharpness, combine_terms((score, size, sharpness), config.weights))


def face_quality(frame_rgb: np.ndarray, detection: FaceDetection, config: QualityConfig | None = None) -> float:
    """Cheap quality in [0, 1] of one detected face in an RGB uint8 frame."""
    return quality_terms(frame_rgb, detection, config).quality


def face_qualities(
    frame_rgb: np.ndarray, detections: Sequence[FaceDetection], config: QualityConfig | None = None
) -> np.ndarray:
    """:func:`face_quality` of each detection of one frame -> float array (N,)."""
    return np.array([face_quality(frame_rgb, d, config) for d in detections], dtype=float)


def aggregate_track_quality(
    face_qualities: Sequence[float], interpolated: Sequence[bool] | None = None, method: str = "median"
) -> float:
    """One quality per track from the qualities of its faces, whatever produced them.

    Interpolated faces (``interpolated[i]`` True) and NaN values are left out.
    ``"median"`` (default) ignores a few blurred frames of a good track;
    ``"mean"`` is also available.
    """
    values = np.asarray(face_qualities, dtype=float)
    keep = ~np.isnan(values)
    if interpolated is not None:
        mask = np.asarray(interpolated, dtype=bool)
        if mask.shape != values.shape:
            raise ValueError(f"interpolated has {mask.shape[0]} entries for {values.shape[0]} face qualities")
        keep &= ~mask
    if not keep.any():
        raise ValueError("a track needs at least one real (non-interpolated, non-NaN) face quality")
    if method == "median":
        return float(np.median(values[keep]))
    if method == "mean":
        return float(np.mean(values[keep]))
    raise ValueError(f"method must be 'median' or 'mean', got {method!r}")


def modified_z_scores(values: Sequence[float]) -> np.ndarray:
    """Iglewicz-Hoaglin modified z-scores ``0.6745 * (x - median) / MAD``.

    When MAD is 0 (more than half the values are equal) the mean absolute
    deviation stands in: ``(x - median) / (1.253314 * MeanAD)``, 1.253314 =
    sqrt(pi / 2) making it consistent with the standard deviation for normal
    data. When both are 0 every value equals the median and every score is 0.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("values contain NaN; drop or fill them before outlier detection")
    if x.size == 0:
        return x
    deviation = x - np.median(x)
    mad = np.median(np.abs(deviation))
    if mad > 0:
        return 0.6745 * deviation / mad
    mean_ad = np.mean(np.abs(deviation))
    if mean_ad > 0:
        return deviation / (1.253314 * mean_ad)
    return np.zeros_like(x)


def mad_outliers(values: Sequence[float], threshold: float = 3.5, side: str = "low") -> np.ndarray:
    """Boolean mask of outliers by modified z-score (Iglewicz & Hoaglin recommend 3.5).

    ``side``: ``"low"`` flags z < -threshold, ``"high"`` z > threshold, ``"both"`` |z| > threshold.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    z = modified_z_scores(values)
    if side == "low":
        return z < -threshold
    if side == "high":
        return z > threshold
    if side == "both":
        return np.abs(z) > threshold
    raise ValueError(f"side must be 'low', 'high' or 'both', got {side!r}")


def track_quality_flags(track_qualities: Sequence[float], threshold: float = 3.5) -> np.ndarray:
    """Mask of tracks whose quality is a low outlier among the tracks (of a video or dataset)."""
    return mad_outliers(track_qualities, threshold=threshold, side="low")
