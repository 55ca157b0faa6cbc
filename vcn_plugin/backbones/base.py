"""The face-ID backbone interface every stage uses."""
from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np
import torch
from torch import nn


class Backbone(nn.Module, abc.ABC):
    """A pretrained face-ID network that can be finetuned.

    Subclasses set the class attributes and implement :meth:`features` and
    :meth:`embed_from_features`; ``forward(x) == embed_from_features(features(x))``.
    The split is where SER-FIQ puts its dropout: on the features, only the
    last layer is repeated.
    """

    name: ClassVar[str] = ""
    #: side of the square aligned chip, in pixels
    chip_size: ClassVar[int] = 112
    #: alignment template: "dlib" (dlib.get_face_chip, padding 0.25) or "arcface"
    template: ClassVar[str] = "arcface"
    embed_dim: ClassVar[int] = 512

    @abc.abstractmethod
    def preprocess(self, chips: np.ndarray) -> torch.Tensor:
        """uint8 RGB chips (N, H, W, 3) -> float tensor (N, 3, H, W) on this module's device."""

    @abc.abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input to the last layer (where SER-FIQ dropout goes)."""

    @abc.abstractmethod
    def embed_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """The last layer: features -> embedding."""

    @abc.abstractmethod
    def last_layer_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters of :meth:`embed_from_features` (the embedding layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_from_features(self.features(x))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
