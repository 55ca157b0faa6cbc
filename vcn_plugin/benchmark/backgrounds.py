"""Backgrounds ("locations") for episodes.

No face-free real photos ship with the project, so by default backgrounds are generated
textures: a smooth-noise wall with a vertical gradient (light from above), a floor band, and
random rectangles standing in for furniture, doors and windows. When ``backgrounds_dir`` is given,
its photos are used instead, after checking with dlib's HOG detector that they hold no face
(photos with a face are skipped and reported).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vcn_plugin.benchmark.sources import IMAGE_SUFFIXES, detect_largest_face, load_rgb


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Noise in [0, 1] with about ``cells`` features across the width (bicubic upsampling)."""
    ch, cw = max(2, int(cells * h / w) + 2), cells + 2
    grid = rng.random((ch, cw)).astype(np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


def generated_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A synthetic room: float RGB (h, w, 3) in [0, 1]."""
    wall_colour = rng.uniform(0.25, 0.8, 3).astype(np.float32)
    texture = 0.75 + 0.5 * smooth_noise(rng, h, w, int(rng.integers(3, 9)))[..., None]
    gradient = np.linspace(1.1, 0.75, h, dtype=np.float32)[:, None, None]
    img = wall_colour * texture * gradient
    floor_y = int(h * rng.uniform(0.7, 0.9))
    img[floor_y:] = rng.uniform(0.1, 0.5, 3).astype(np.float32) * (0.8 + 0.3 * smooth_noise(rng, h - floor_y, w, 12)[..., None])
    for _ in range(int(rng.integers(3, 9))):
        rw, rh = int(w * rng.uniform(0.05, 0.3)), int(h * rng.uniform(0.1, 0.6))
        x, y = int(rng.integers(0, w - rw)), int(rng.integers(0, h - rh))
        shade = rng.uniform(0.05, 0.9, 3).astype(np.float32)
        img[y : y + rh, x : x + rw] = shade * (0.85 + 0.3 * smooth_noise(rng, rh, rw, 3)[..., None])
    img = cv2.GaussianBlur(img, (0, 0), 1.0 + 0.002 * w)
    return np.clip(img, 0, 1)


def list_background_photos(backgrounds_dir: str | Path, skipped: list[str]) -> list[Path]:
    """Photos in ``backgrounds_dir`` in which dlib's detector finds no face (others go to ``skipped``)."""
    root = Path(backgrounds_dir)
    if not root.is_dir():
        raise ValueError(f"backgrounds directory {root} does not exist")
    usable = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        rgb, _ = load_rgb(path)
        if detect_largest_face(rgb) is None:
            usable.append(path)
        else:
            skipped.append(str(path))
    if not usable:
        raise ValueError(f"no face-free photos in {root}; remove backgrounds_dir to use generated textures")
    return usable


def photo_background(path: Path, h: int, w: int) -> np.ndarray:
    """A photo resized to cover (h, w) and centre-cropped, float RGB in [0, 1]."""
    rgb, _ = load_rgb(path)
    scale = max(h / rgb.shape[0], w / rgb.shape[1])
    resized = cv2.resize(rgb, (max(w, round(rgb.shape[1] * scale)), max(h, round(rgb.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    y0, x0 = (resized.shape[0] - h) // 2, (resized.shape[1] - w) // 2
    return resized[y0 : y0 + h, x0 : x0 + w].astype(np.float32) / 255.0
