"""OpenCV's YuNet (``cv2.FaceDetectorYN``) from an explicit ``.onnx``."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vcn_plugin.core.types import FaceDetection
from vcn_plugin.stage1.detectors.base import FaceDetector, check_max_side, check_unit_interval, require_file


@dataclass(frozen=True)
class YuNetConfig:
    """Settings of :class:`YuNetDetector`.

    model_path: the YuNet ``.onnx`` (e.g. opencv_zoo ``face_detection_yunet_2023mar.onnx``); required.
    score_threshold: 0.6; nms_threshold: 0.3; top_k: 5000 (candidates kept before NMS).
    max_side: downscale frames whose long side exceeds this; None never does.
    """

    model_path: str | None = None
    score_threshold: float = 0.6
    nms_threshold: float = 0.3
    top_k: int = 5000
    max_side: int | None = 640

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        check_unit_interval("score_threshold", self.score_threshold)
        check_unit_interval("nms_threshold", self.nms_threshold)
        check_max_side(self.max_side)


_MIN_INPUT = 32  # YuNet's largest feature stride


class YuNetDetector(FaceDetector):
    """OpenCV YuNet via ``cv2.FaceDetectorYN``; ``arcface5`` landmarks.

    YuNet's points are (subject's) right eye, left eye, nose tip, right mouth
    corner, left mouth corner: the subject's right is the image's left, so this is
    already insightface's image-left-first ``arcface5`` order (checked against
    SCRFD on the same faces in tests/stage1/test_detect.py).
    """

    name = "yunet"
    landmark_format = "arcface5"
    _ARCFACE5_ORDER = (0, 1, 2, 3, 4)

    def __init__(self, config: YuNetConfig | None = None) -> None:
        self.config = config or YuNetConfig()
        self.max_side = self.config.max_side
        self.model_path = require_file(self.config.model_path, "YuNet")
        self._yunet = cv2.FaceDetectorYN.create(
            str(self.model_path), "", (320, 320),
            self.config.score_threshold, self.config.nms_threshold, self.config.top_k,
        )

    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        h, w = frame.shape[:2]
        if h < _MIN_INPUT or w < _MIN_INPUT:
            # below the network's largest stride OpenCV's anchor grid reads past the output and
            # reports random faces; padding at the bottom/right keeps the coordinates
            frame = np.pad(frame, ((0, max(0, _MIN_INPUT - h)), (0, max(0, _MIN_INPUT - w)), (0, 0)))
        self._yunet.setInputSize((frame.shape[1], frame.shape[0]))
        _, faces = self._yunet.detect(np.ascontiguousarray(frame[..., ::-1]))
        if faces is None:
            return []
        return [self._to_detection(face) for face in faces]

    def _to_detection(self, face: np.ndarray) -> FaceDetection:
        """One row of YuNet's output: x, y, w, h, 5 (x, y) landmarks, score."""
        x, y, w, h = face[:4]
        return FaceDetection(
            box=np.array([x, y, x + w, y + h], dtype=np.float32),
            score=float(face[14]),
            landmarks=face[4:14].reshape(5, 2)[list(self._ARCFACE5_ORDER)].astype(np.float32),
            landmark_format=self.landmark_format,
        )


# --------------------------------------------------------------------------- registry

# --------------------------------------------------------------------------- CenterFace
