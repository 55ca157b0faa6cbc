"""Seeded torch augmentations for aligned face chips.

Only changes a face-ID network should be invariant to, kept mild because the
chips are already aligned: horizontal flip, a small rotation, a mild zoom
(crop) and shift (jitter), colour temperature (red/blue gain in opposite
directions) and mild brightness/contrast. The geometric part is one affine
warp per chip (``affine_grid`` + ``grid_sample``, reflection padding), so no
black corners appear. Everything is drawn from the ``torch.Generator`` passed
in, so the same seed gives the same augmented batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random chip augmentations (uniform draws in [-x, x] unless said).

    Attributes:
        flip_prob: probability of a horizontal flip.
        max_rotation_deg: rotation angle range, degrees.
        max_zoom: scale range around 1 (0.08 -> 0.92..1.08; > 1 is a crop).
        max_shift: translation range as a fraction of the chip side.
        max_temperature: colour temperature range: red gain ``1 + t``, blue ``1 - t``.
        max_brightness: brightness gain range around 1.
        max_contrast: contrast gain range around 1 (about each chip's mean).
    """

    flip_prob: float = 0.5
    max_rotation_deg: float = 10.0
    max_zoom: float = 0.08
    max_shift: float = 0.04
    max_temperature: float = 0.12
    max_brightness: float = 0.1
    max_contrast: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")
        for name in ("max_rotation_deg", "max_zoom", "max_shift", "max_temperature", "max_brightness", "max_contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_zoom", "max_temperature", "max_brightness", "max_contrast"):
            if getattr(self, name) >= 1:
                raise ValueError(f"{name} must be < 1, got {getattr(self, name)}")


def augment_chips(chips: torch.Tensor, generator: torch.Generator, config: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """Randomly augment uint8 RGB chips (N, H, W, 3) -> uint8 chips of the same shape.

    Args:
        chips: uint8 tensor (N, H, W, 3), RGB (on any device; the generator
            must live on the same device).
        generator: seeded torch RNG; it is advanced by this call.
        config: augmentation ranges.
    """
    if chips.dtype != torch.uint8 or chips.ndim != 4 or chips.shape[-1] != 3:
        raise ValueError(f"chips must be a uint8 tensor (N, H, W, 3), got {chips.dtype} {tuple(chips.shape)}")
    if chips.shape[0] == 0:
        return chips.clone()
    images = chips.permute(0, 3, 1, 2).float()  # (N, 3, H, W), 0..255
    images = _warp(images, generator, config)
    images = _colour(images, generator, config)
    return images.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _uniform(n: int, half_range: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=generator, device=device) * 2.0 - 1.0) * half_range


def _warp(images: torch.Tensor, generator: torch.Generator, config: AugmentConfig) -> torch.Tensor:
    n, device = images.shape[0], images.device
    angle = _uniform(n, math.radians(config.max_rotation_deg), generator, device)
    scale = 1.0 + _uniform(n, config.max_zoom, generator, device)
    shift = torch.stack([_uniform(n, 2 * config.max_shift, generator, device) for _ in range(2)], dim=1)
    flip = torch.rand(n, generator=generator, device=device) < config.flip_prob
    sign_x = torch.where(flip, -1.0, 1.0)
    # affine_grid maps output coords to input coords: dividing by the scale zooms in
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sign_x, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * sign_x, cos
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _colour(images: torch.Tensor, generator: torch.Generator, config: AugmentConfig) -> torch.Tensor:
    n, device = images.shape[0], images.device
    temperature = _uniform(n, config.max_temperature, generator, device)
    gains = torch.stack([1.0 + temperature, torch.ones_like(temperature), 1.0 - temperature], dim=1)
    images = images * gains[:, :, None, None]
    brightness = 1.0 + _uniform(n, config.max_brightness, generator, device)
    contrast = 1.0 + _uniform(n, config.max_contrast, generator, device)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * contrast[:, None, None, None] + mean) * brightness[:, None, None, None]
