"""Style normalisation of source cut-outs, so a person cannot be recognised by photo style.

Sources differ in ways unrelated to identity: colour vs grayscale (the Big Bang Theory crops are
grayscale), exposure, contrast, resolution and crop size. Crop size and resolution are removed by
:func:`~vcn_plugin.benchmark.sources.make_cutout` (same face width, same mask shape for every
source). Here every cut-out's face luminance is moved to the same mean and standard deviation
and, in ``gray`` mode, the colour is dropped.

Modes (``EpisodeConfig.style_normalization``):

* ``auto`` (default): ``gray`` when any source photo of the episode (cast or extras) is grayscale,
  or when the episode has a look at severity > 0 (the look then re-colours everything the same
  way); ``colour`` otherwise.
* ``gray``: luminance only, exposure-matched. ``colour``: exposure-matched, colour kept.
* ``none``: photos as they are (style leaks; for ablations only).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from vcn_plugin.benchmark.looks import luminance
from vcn_plugin.benchmark.sources import Cutout

STYLE_MODES = ("auto", "gray", "colour", "none")
TARGET_FACE_MEAN = 0.48
TARGET_FACE_STD = 0.17


def resolve_style(mode: str, any_grayscale: bool, look_severity: int) -> str:
    """The concrete mode (``gray``, ``colour`` or ``none``) an episode uses."""
    if mode not in STYLE_MODES:
        raise ValueError(f"style_normalization must be one of {STYLE_MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    return "gray" if any_grayscale or look_severity > 0 else "colour"


def normalise_cutout(cutout: Cutout, mode: str) -> Cutout:
    """Match the face's luminance statistics to the shared target; drop colour in ``gray`` mode."""
    if mode == "none":
        return cutout
    x1, y1, x2, y2 = cutout.face_box.round().astype(int)
    lum = luminance(cutout.rgb)
    face = lum[max(0, y1) : y2, max(0, x1) : x2]
    mean, std = float(face.mean()), float(face.std()) + 1e-6
    gain = float(np.clip(TARGET_FACE_STD / std, 0.5, 2.0))  # flat or noisy crops stay sane
    if mode == "gray":
        rgb = np.repeat(((lum - mean) * gain + TARGET_FACE_MEAN)[..., None], 3, axis=2)
    else:
        rgb = (cutout.rgb - mean) * gain + TARGET_FACE_MEAN
    return replace(cutout, rgb=np.clip(rgb, 0, 1).astype(np.float32))
