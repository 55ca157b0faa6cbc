"""Episode-wide film looks, applied to every rendered frame after compositing.

A look is the same through a whole episode (a consistent domain shift that a model adapted to
the video can learn); only ``low_key``'s light direction changes, once per shot. Each look has a
severity 0-3: 0 returns the frame unchanged, 3 is the strongest. Every look at severity > 0 also
gets a vignette and film grain; the grain is seeded per frame, so a frame renders identically
every time.

Frames are float32 RGB in [0, 1], shape (H, W, 3). Severities were calibrated so that dlib's HOG
face detector (upsample 1) still finds >= 80 % of the ground-truth faces at severity 2
(``tests/benchmark/test_looks.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

SEVERITIES = (0, 1, 2, 3)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class LookContext:
    """What a look may depend on besides the pixels.

    ``seed``: the frame's grain seed (e.g. ``[episode_seed, frame_number]``);
    ``light_angle``: direction the key light comes from, radians (per shot, ``low_key``);
    ``face_boxes``: (x1, y1, x2, y2) of the faces in the frame (``low_key`` shades across them).
    """

    seed: tuple[int, ...] = (0,)
    light_angle: float = 0.0
    face_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)


def luminance(img: np.ndarray) -> np.ndarray:
    return img @ _LUMA


def _mix(a: np.ndarray, b: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    return a + (b - a) * t


def _s_curve(img: np.ndarray, amount: float) -> np.ndarray:
    """Contrast around mid-grey: smoothstep blended in by ``amount`` (0..1)."""
    x = np.clip(img, 0.0, 1.0)
    return _mix(x, x * x * (3 - 2 * x), amount)


def teal_orange(img: np.ndarray, severity: int, ctx: LookContext) -> np.ndarray:
    """Blockbuster split toning: shadows pushed to teal, highlights (skin) to orange, more contrast."""
    k = severity / 3
    lum = luminance(img)[..., None]
    teal = np.array([-0.16, 0.04, 0.14], dtype=np.float32)
    orange = np.array([0.16, 0.03, -0.14], dtype=np.float32)
    shadows = np.clip(1.0 - 2.2 * lum, 0, 1)  # below ~0.45: walls, hair, shade
    highlights = np.clip((lum - 0.25) / 0.75, 0, 1)  # mid-tones and up: skin
    toned = img + k * (shadows * teal + highlights * orange)
    return _s_curve(toned, 0.5 * k)


def bleach_bypass(img: np.ndarray, severity: int, ctx: LookContext) -> np.ndarray:
    """Silver retained: desaturated, harsh contrast (an overlay of the image with its own luminance)."""
    k = severity / 3
    lum = luminance(img)[..., None]
    overlay = np.where(lum < 0.5, 2 * img * lum, 1 - 2 * (1 - img) * (1 - lum))
    desaturated = _mix(overlay, np.repeat(lum, 3, axis=2), 0.6)
    return _mix(img, desaturated, 0.85 * k)


def tinted_mono(img: np.ndarray, severity: int, ctx: LookContext) -> np.ndarray:
    """Monochrome with a sepia tint: colour goes first (severity 1 is already nearly grey)."""
    lum = luminance(img)[..., None]
    sepia = lum * np.array([1.07, 0.95, 0.76], dtype=np.float32) + np.array([0.03, 0.02, 0.0], dtype=np.float32)
    grey_amount = min(1.0, 0.6 + 0.2 * severity)
    mono = _mix(img, np.repeat(lum, 3, axis=2), grey_amount)
    tinted = _mix(mono, sepia, 0.35 * severity)
    return _s_curve(tinted, 0.1 * severity)


def day_for_night(img: np.ndarray, severity: int, ctx: LookContext) -> np.ndarray:
    """Night shot in daylight: underexposed, blue, desaturated, crushed blacks (grain added later)."""
    k = severity / 3
    lum = luminance(img)[..., None]
    desat = _mix(img, np.repeat(lum, 3, axis=2), 0.6 * k)
    exposure = 1.0 - 0.45 * k
    gains = np.array([1.0 - 0.25 * k, 1.0 - 0.08 * k, 1.0 + 0.12 * k], dtype=np.float32)
    dark = desat * exposure * gains
    return np.clip(dark, 0, 1) ** (1.0 + 0.3 * k)


def low_key(img: np.ndarray, severity: int, ctx: LookContext) -> np.ndarray:
    """Low-key lighting: one hard key light from ``ctx.light_angle`` across the frame and across
    every face (the far half of each face falls into shadow), deep blacks."""
    k = severity / 3
    h, w = img.shape[:2]
    direction = np.array([np.cos(ctx.light_angle), np.sin(ctx.light_angle)], dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # +1 on the lit side of the frame, -1 on the far side
    frame_ramp = ((xx - w / 2) * direction[0] + (yy - h / 2) * direction[1]) / (0.5 * np.hypot(w, h))
    light = 1.0 - 0.45 * k * np.clip(0.5 - 0.5 * frame_ramp, 0, 1)
    for x1, y1, x2, y2 in ctx.face_boxes:
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(2.0, 0.5 * (x2 - x1))
        across = ((xx - cx) * direction[0] + (yy - cy) * direction[1]) / half
        near = np.exp(-(((xx - cx) / (1.6 * half)) ** 2 + ((yy - cy) / (2.0 * half)) ** 2))
        shadow = 0.5 * k * np.clip(0.5 - 0.6 * across, 0, 1) * near
        light = light * (1.0 - shadow)
    lit = img * light[..., None]
    return np.clip(lit, 0, 1) ** (1.0 + 0.3 * k)


LOOKS: dict[str, Callable[[np.ndarray, int, LookContext], np.ndarray]] = {
    "teal_orange": teal_orange,
    "bleach_bypass": bleach_bypass,
    "tinted_mono": tinted_mono,
    "day_for_night": day_for_night,
    "low_key": low_key,
}
#: film grain standard deviation per severity step (day-for-night is noisier: pushed film)
GRAIN_PER_STEP = {"day_for_night": 0.014}
DEFAULT_GRAIN_PER_STEP = 0.010
VIGNETTE_PER_STEP = 0.12


def vignette(img: np.ndarray, strength: float) -> np.ndarray:
    """Darken towards the corners: factor 1 - strength * r^2 (r = 1 at the corners)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 * 0.5 + ((yy - h / 2) / (h / 2)) ** 2 * 0.5
    return img * (1.0 - strength * r2)[..., None]


def film_grain(img: np.ndarray, sigma: float, seed: tuple[int, ...]) -> np.ndarray:
    """Luminance grain (clumped at 2 px, stronger in the mid-tones), seeded per frame."""
    h, w = img.shape[:2]
    rng = np.random.default_rng(list(seed))
    noise = rng.standard_normal(((h + 1) // 2, (w + 1) // 2), dtype=np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR) * 1.4
    lum = luminance(img)
    weight = 0.5 + 2.0 * lum * (1 - lum)
    return img + (sigma * noise * weight)[..., None]


def validate_look(look: str, severity: int) -> None:
    if look != "none" and look not in LOOKS:
        raise ValueError(f"unknown look {look!r}; choose one of {['none', *LOOKS]}")
    if severity not in SEVERITIES:
        raise ValueError(f"look severity must be one of {SEVERITIES}, got {severity!r}")


def apply_look(img: np.ndarray, look: str, severity: int, ctx: LookContext) -> np.ndarray:
    """Grade ``img`` (float RGB [0, 1]) with ``look`` at ``severity``, then vignette and grain.

    Severity 0 or look ``"none"`` return ``img`` itself (the identity).
    """
    validate_look(look, severity)
    if look == "none" or severity == 0:
        return img
    graded = LOOKS[look](img.astype(np.float32, copy=False), severity, ctx)
    graded = vignette(graded, VIGNETTE_PER_STEP * severity)
    sigma = GRAIN_PER_STEP.get(look, DEFAULT_GRAIN_PER_STEP) * severity
    return np.clip(film_grain(graded.astype(np.float32, copy=False), sigma, ctx.seed), 0.0, 1.0).astype(np.float32, copy=False)
