"""Face chip alignment for the two backbone templates.

* ``"dlib"``: the chip of ``dlib.get_face_chip(img, shape, size, padding=0.25)``,
  what dlib's ResNet was trained on. For ``dlib5`` landmarks dlib itself cuts the
  chip, so the result is dlib's to the pixel.
* ``"arcface"``: insightface's ``norm_crop``: a least-squares similarity transform
  of the five ``arcface5`` points onto insightface's 112x112 template, warped
  with ``cv2.warpAffine`` (bilinear, black border).

Across formats (``arcface5`` -> ``"dlib"``, ``dlib5`` -> ``"arcface"``) the two
landmark sets have only the eyes in common (dlib's nose point is the base of the
nose, insightface's the tip; dlib has no mouth). So each face is first fitted
with all five of its own points onto its own format's template (the same fit
dlib and insightface make), and that template frame is then mapped onto the
other template by the similarity that takes one template's eye centres (the
mean of dlib's two eye corners) onto the other's.
"""
from __future__ import annotations

import numpy as np

from vcn_plugin.core.types import LANDMARK_FORMATS

TEMPLATES = ("dlib", "arcface")
#: dlib's padding for its face recognition chips (``get_face_chip(..., padding=0.25)``)
DLIB_PADDING = 0.25
#: insightface's ``arcface_dst``: left eye, right eye, nose tip, left and right mouth corner at 112x112
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
#: dlib's 5-point mean face (``get_face_chip_details``), unit square before padding: outer and inner
#: corner of the image-right eye, outer and inner corner of the image-left eye, base of the nose
DLIB5_TEMPLATE_UNIT = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)


def template_points(landmark_format: str, chip_size: int) -> np.ndarray:
    """Where ``landmark_format``'s five points go in its own template's chip of side ``chip_size``."""
    _check_choice("landmark_format", landmark_format, LANDMARK_FORMATS)
    if landmark_format == "dlib5":
        return (DLIB_PADDING + DLIB5_TEMPLATE_UNIT) / (2 * DLIB_PADDING + 1) * chip_size
    return ARCFACE_TEMPLATE_112 * (chip_size / 112.0)


def eye_centres(points: np.ndarray, landmark_format: str) -> np.ndarray:
    """(2, 2): image-left eye centre, image-right eye centre."""
    if landmark_format == "dlib5":
        return np.stack([points[2:4].mean(axis=0), points[0:2].mean(axis=0)])
    return points[:2]


def similarity_matrix(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (Umeyama, as insightface and dlib fit) mapping ``source`` onto ``target``."""
    from skimage.transform import SimilarityTransform

    transform = SimilarityTransform.from_estimate(np.asarray(source, float), np.asarray(target, float))
    if not transform:
        raise ValueError("degenerate landmarks: no similarity transform fits them (are the points distinct?)")
    return transform.params[:2]


def alignment_matrix(landmarks: np.ndarray, landmark_format: str, template: str, chip_size: int) -> np.ndarray:
    """(2, 3) affine map from image pixels to chip pixels (see the module docstring)."""
    landmarks = _check_landmarks(landmarks, landmark_format)
    _check_choice("template", template, TEMPLATES)
    own_template = "dlib" if landmark_format == "dlib5" else "arcface"
    to_own = similarity_matrix(landmarks, template_points(landmark_format, chip_size))
    if template == own_template:
        return to_own
    other_format = "arcface5" if landmark_format == "dlib5" else "dlib5"
    between = similarity_matrix(
        eye_centres(template_points(landmark_format, chip_size), landmark_format),
        eye_centres(template_points(other_format, chip_size), other_format),
    )
    return _compose(between, to_own)


def align_face(
    image_rgb: np.ndarray,
    landmarks: np.ndarray,
    landmark_format: str,
    template: str,
    chip_size: int,
    box: np.ndarray | None = None,
) -> np.ndarray:
    """Cut the aligned uint8 RGB chip (chip_size, chip_size, 3) of one face.

    ``box`` (x1, y1, x2, y2) is only used for ``dlib5`` -> ``"dlib"`` where dlib
    wants a detection rectangle beside the points (it does not move the chip);
    the points' bounding box stands in when it is None.
    """
    image_rgb = _check_image(image_rgb)
    landmarks = _check_landmarks(landmarks, landmark_format)
    _check_choice("template", template, TEMPLATES)
    if not isinstance(chip_size, (int, np.integer)) or chip_size < 8:
        raise ValueError(f"chip_size must be an int >= 8, got {chip_size!r}")
    if landmark_format == "dlib5" and template == "dlib":
        return _dlib_face_chip(image_rgb, landmarks, int(chip_size), box)
    import cv2

    matrix = alignment_matrix(landmarks, landmark_format, template, int(chip_size))
    return cv2.warpAffine(image_rgb, matrix, (int(chip_size), int(chip_size)), flags=cv2.INTER_LINEAR, borderValue=0.0)


def align_faces(
    image_rgb: np.ndarray,
    landmarks: np.ndarray,
    landmark_format: str,
    template: str,
    chip_size: int,
    boxes: np.ndarray | None = None,
) -> np.ndarray:
    """All faces of one image: landmarks (N, 5, 2), boxes (N, 4) or None -> chips (N, S, S, 3) uint8."""
    landmarks = np.asarray(landmarks, dtype=float)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must have shape (N, 5, 2), got {landmarks.shape}")
    if boxes is not None and len(boxes) != len(landmarks):
        raise ValueError(f"{len(boxes)} boxes for {len(landmarks)} landmark sets")
    chips = np.zeros((len(landmarks), chip_size, chip_size, 3), dtype=np.uint8)
    for i, points in enumerate(landmarks):
        box = None if boxes is None else boxes[i]
        chips[i] = align_face(image_rgb, points, landmark_format, template, chip_size, box)
    return chips


def _dlib_face_chip(image_rgb: np.ndarray, landmarks: np.ndarray, chip_size: int, box: np.ndarray | None) -> np.ndarray:
    import dlib

    if box is None:
        box = np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)])
    x1, y1, x2, y2 = (int(round(float(v))) for v in np.asarray(box).ravel()[:4])
    points = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in landmarks])
    shape = dlib.full_object_detection(dlib.rectangle(x1, y1, x2, y2), points)
    return np.asarray(dlib.get_face_chip(np.ascontiguousarray(image_rgb), shape, size=chip_size, padding=DLIB_PADDING))


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) matrix of ``outer`` applied after ``inner``."""
    full = lambda m: np.vstack([m, [0.0, 0.0, 1.0]])  # noqa: E731
    return (full(outer) @ full(inner))[:2]


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {image.dtype} {image.shape}")
    return image


def _check_landmarks(landmarks: np.ndarray, landmark_format: str) -> np.ndarray:
    _check_choice("landmark_format", landmark_format, LANDMARK_FORMATS)
    landmarks = np.asarray(landmarks, dtype=float)
    if landmarks.shape != (5, 2) or not np.isfinite(landmarks).all():
        raise ValueError(f"landmarks must be 5 finite (x, y) points, shape (5, 2); got shape {landmarks.shape}")
    return landmarks
