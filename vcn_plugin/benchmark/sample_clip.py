"""A small sample video built from the photos that the insightface package ships.

Used by ``make demo`` and by the tests that must run without ``../shared``: six people of
insightface's group photo ``t1.jpg``, seen through slowly panning and zooming camera windows,
with hard cuts between shots. Each person appears in several shots.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from vcn_plugin.core.video import H264Writer

#: shot windows over t1.jpg (1280x886): (x, y, width) of the first and the last frame of the shot
SHOT_WINDOWS: list[tuple[tuple[int, int, int], tuple[int, int, int]]] = [
    ((0, 120, 640), (40, 140, 600)),
    ((560, 100, 700), (520, 120, 680)),
    ((200, 80, 560), (260, 60, 520)),
    ((0, 150, 1280), (60, 180, 1160)),
    ((640, 140, 600), (600, 160, 640)),
    ((100, 100, 600), (140, 110, 560)),
]


def insightface_photo(name: str = "t1.jpg") -> np.ndarray:
    """An RGB photo from the installed insightface package."""
    try:
        path = resources.files("insightface") / "data" / "images" / name
    except ModuleNotFoundError as err:
        raise RuntimeError("the sample clip needs the insightface package (pip install insightface)") from err
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"{path} is missing from the insightface package")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def make_sample_clip(
    out_path: str | Path, width: int = 640, height: int = 360, fps: float = 25.0, shot_seconds: float = 1.6
) -> list[tuple[int, int]]:
    """Write the sample clip (H.264) and return its shots as 1-based ``(first, last)`` frames."""
    photo = insightface_photo()
    frames_per_shot = int(round(shot_seconds * fps))
    shots = []
    with H264Writer(out_path, width, height, fps) as writer:
        for i, (start, end) in enumerate(SHOT_WINDOWS):
            for k in range(frames_per_shot):
                t = k / max(frames_per_shot - 1, 1)
                x, y, w = (a + (b - a) * t for a, b in zip(start, end))
                writer.write(_window(photo, x, y, w, width, height))
            shots.append((i * frames_per_shot + 1, (i + 1) * frames_per_shot))
    return shots


def _window(photo: np.ndarray, x: float, y: float, w: float, width: int, height: int) -> np.ndarray:
    """The camera window with top-left (x, y) and width w, resampled to the output size."""
    scale = width / w
    matrix = np.array([[scale, 0, -x * scale], [0, scale, -y * scale]], dtype=np.float64)
    return cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
