"""Real face chips for tests: dlib's HOG detector + 5-point landmarks, as dlib aligns them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def dlib_chips(folder: Path, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """(n, size, size, 3) uint8 RGB chips of the largest face of every ``*.jpg`` in ``folder``
    (photos without a detectable face are skipped)."""
    cv2 = pytest.importorskip("cv2")
    dlib = pytest.importorskip("dlib")
    models = pytest.importorskip("face_recognition_models")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    chips = []
    for path in sorted(folder.glob("*.jpg")):
        image = np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        boxes = detector(image, 1)
        if boxes:
            shape = predictor(image, max(boxes, key=lambda r: r.area()))
            chips.append(dlib.get_face_chip(image, shape, size=size, padding=padding))
    return np.stack(chips) if chips else np.zeros((0, size, size, 3), np.uint8)


def first_photo_face(folder: Path, max_side: int = 480):
    """The first photo of ``folder`` as RGB (downscaled to ``max_side``) and dlib's box of its
    largest face."""
    cv2 = pytest.importorskip("cv2")
    dlib = pytest.importorskip("dlib")
    from PIL import Image

    image = np.asarray(Image.open(sorted(folder.iterdir())[0]).convert("RGB"))
    scale = max_side / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image, max(dlib.get_frontal_face_detector()(image, 1), key=lambda r: r.area())


def arcface5_from_68(p68: np.ndarray) -> np.ndarray:
    """ArcFace's 5 points (eye centres, nose tip, mouth corners) from dlib's 68 landmarks."""
    return np.stack([p68[36:42].mean(0), p68[42:48].mean(0), p68[30], p68[48], p68[54]])
