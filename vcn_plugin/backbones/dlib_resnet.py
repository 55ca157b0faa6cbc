"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The network is ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``: a 29-conv
ResNet (batch norm folded into per-channel affine layers) on 150x150 RGB chips
from ``dlib.get_face_chip(img, shape, size=150, padding=0.25)``, global average
pooling to 256-d and a 128-d fc without bias. The output is the raw fc output
(not L2-normalised); dlib's same-person threshold is Euclidean distance 0.6.

Two details decide bit-level agreement with dlib: stride-2 convolutions and
pools never pad (floor mode), and ``add_prev`` of tensors of different shapes
sums over the element-wise maximum shape, each operand zero-extended at the end
of its channel, row and column dimensions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vcn_plugin.backbones.base import Backbone
from vcn_plugin.backbones.dlib_serialization import DlibReader

CHIP_SIZE = 150
EMBED_DIM = 128
FEATURE_DIM = 256
#: (block width, number of blocks, whether the first block downsamples), input to output
RESIDUAL_LEVELS: tuple[tuple[int, int, bool], ...] = (
    (32, 3, False),
    (64, 4, True),
    (128, 3, True),
    (256, 3, True),
    (256, 1, True),
)
#: dlib divides by 256 (not 255) after subtracting the per-channel mean
INPUT_SCALE = 256.0


# --------------------------------------------------------------------------- parsing


@dataclass
class DlibResnetWeights:
    """Everything read from the ``.dat`` file, in network order (input to output)."""

    channel_means: tuple[float, float, float]  # R, G, B
    convs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (OIHW weight, bias)
    affines: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (gamma, beta)
    fc_weight: np.ndarray | None = None  # (128, 256), torch Linear layout
    loss_margin: float = 0.0
    distance_threshold: float = 0.0


@dataclass(frozen=True)
class _Layer:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, tag, skip, fc
    filters: int = 0
    kernel: int = 0
    stride: int = 1


def _block_layers(width: int, down: bool) -> list[_Layer]:
    """One ``ares`` / ``ares_down`` block, input to output (tags and skips included)."""
    stride = 2 if down else 1
    body = [
        _Layer("tag"),
        _Layer("con", width, 3, stride),
        _Layer("affine"),
        _Layer("relu"),
        _Layer("con", width, 3, 1),
        _Layer("affine"),
    ]
    if down:  # add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<tag1<...>>>>>>
        return body + [_Layer("tag"), _Layer("skip"), _Layer("avg_pool", 0, 2, 2), _Layer("add_prev"), _Layer("relu")]
    return body + [_Layer("add_prev"), _Layer("relu")]


def _architecture() -> list[_Layer]:
    """All layers above the input, input to output (the bottom layer is the 7x7 conv)."""
    layers = [_Layer("con", 32, 7, 2), _Layer("affine"), _Layer("relu"), _Layer("max_pool", 0, 3, 2)]
    for width, count, first_down in RESIDUAL_LEVELS:
        for i in range(count):
            layers += _block_layers(width, down=first_down and i == 0)
    return layers + [_Layer("avg_pool", 0, 0, 1), _Layer("fc", EMBED_DIM)]


def _read_layer_state(reader: DlibReader, bottom: bool) -> None:
    """The three bools and cached tensors every add_layer writes after its details."""
    for _ in range(3):
        reader.read_bool()
    reader.read_tensor()  # x_grad
    reader.read_tensor()  # cached_output
    reader.read_tensor()  # params_grad, or grad_final for the bottom layer
    if bottom:
        reader.read_int()  # sample_expansion_factor


def _read_con(reader: DlibReader, layer: _Layer, in_channels: int) -> tuple[np.ndarray, np.ndarray]:
    reader.expect_string("con_4")
    params = reader.read_tensor().ravel()
    expected_padding = layer.kernel // 2 if layer.stride == 1 else 0
    for what, expected in [
        ("num_filters", layer.filters),
        ("nr", layer.kernel),
        ("nc", layer.kernel),
        ("stride_y", layer.stride),
        ("stride_x", layer.stride),
        ("padding_y", expected_padding),
        ("padding_x", expected_padding),
    ]:
        reader.expect_int(expected, f"con {what}")
    filters_shape, biases_shape = reader.read_alias_tensor(), reader.read_alias_tensor()
    for _ in range(4):
        reader.read_float()  # learning-rate / weight-decay multipliers
    weight_shape = (layer.filters, in_channels, layer.kernel, layer.kernel)
    n_weight = int(np.prod(weight_shape))
    if params.size != n_weight + layer.filters or filters_shape.size != n_weight or biases_shape.size != layer.filters:
        raise reader.error(f"con params of size {params.size} do not fit weights {weight_shape} + {layer.filters} biases")
    return params[:n_weight].reshape(weight_shape).copy(), params[n_weight:].copy()


def _read_affine(reader: DlibReader, channels: int) -> tuple[np.ndarray, np.ndarray]:
    reader.expect_string("affine_")
    params = reader.read_tensor().ravel()
    reader.read_alias_tensor()
    reader.read_alias_tensor()
    reader.read_int()  # mode (conv / fc); both are per-channel here
    if params.size != 2 * channels:
        raise reader.error(f"affine params of size {params.size}, expected 2 x {channels} channels")
    return params[:channels].copy(), params[channels:].copy()


def _read_pool(reader: DlibReader, layer: _Layer) -> None:
    reader.expect_string("max_pool_2" if layer.kind == "max_pool" else "avg_pool_2")
    for what, expected in [
        ("nr", layer.kernel),
        ("nc", layer.kernel),
        ("stride_y", layer.stride),
        ("stride_x", layer.stride),
        ("padding_y", 0),
        ("padding_x", 0),
    ]:
        reader.expect_int(expected, f"{layer.kind} {what}")


def _read_fc(reader: DlibReader) -> np.ndarray:
    reader.expect_string("fc_2")
    reader.expect_int(EMBED_DIM, "fc num_outputs")
    reader.expect_int(FEATURE_DIM, "fc num_inputs")
    params = reader.read_tensor().ravel()
    reader.read_alias_tensor()
    reader.read_alias_tensor()
    reader.read_int()  # bias mode
    for _ in range(4):
        reader.read_float()
    if params.size != FEATURE_DIM * EMBED_DIM:
        raise reader.error(f"fc params of size {params.size}, expected {FEATURE_DIM}x{EMBED_DIM} (no bias)")
    # dlib computes x @ W with W of shape (num_inputs, num_outputs)
    return params.reshape(FEATURE_DIM, EMBED_DIM).T.copy()


def read_dlib_resnet(path: str | Path) -> DlibResnetWeights:
    """Parse ``dlib_face_recognition_resnet_model_v1.dat``, checking it against the known architecture."""
    reader = DlibReader.from_file(path)
    layers = _architecture()

    reader.expect_int(1, "loss layer version")
    reader.expect_string("loss_metric_2")
    margin, threshold = reader.read_float(), reader.read_float()
    # version ints, outermost layer first; the innermost (the 7x7 conv) is the bottom layer
    for depth, layer in enumerate(reversed(layers)):
        expected = 1 if layer.kind in ("tag", "skip") else (3 if depth == len(layers) - 1 else 2)
        reader.expect_int(expected, f"version of {layer.kind} layer {len(layers) - depth} (outermost = {len(layers)})")

    reader.expect_string("input_rgb_image_sized")
    means = (reader.read_float(), reader.read_float(), reader.read_float())
    reader.expect_int(CHIP_SIZE, "input rows")
    reader.expect_int(CHIP_SIZE, "input columns")

    weights = DlibResnetWeights(channel_means=means, loss_margin=margin, distance_threshold=threshold)
    channels = 3
    for index, layer in enumerate(layers):
        if layer.kind in ("tag", "skip"):
            continue
        if layer.kind == "con":
            weights.convs.append(_read_con(reader, layer, channels))
            channels = layer.filters
        elif layer.kind == "affine":
            weights.affines.append(_read_affine(reader, channels))
        elif layer.kind in ("max_pool", "avg_pool"):
            _read_pool(reader, layer)
        elif layer.kind == "fc":
            weights.fc_weight = _read_fc(reader)
        else:  # relu, add_prev: no parameters
            reader.expect_string({"relu": "relu_", "add_prev": "add_prev_"}[layer.kind])
        _read_layer_state(reader, bottom=index == 0)
    if not reader.at_end:
        raise reader.error("trailing bytes after the network")
    return weights


# --------------------------------------------------------------------------- torch modules


class Affine(nn.Module):
    """dlib's ``affine_`` layer: per-channel ``gamma * x + beta`` (a folded batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma[:, None, None] + self.beta[:, None, None]


def add_zero_extended(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: sum over the element-wise max shape, zero-extending each operand at the end."""
    shape = [max(sa, sb) for sa, sb in zip(a.shape[1:], b.shape[1:])]

    def extend(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(shape):
            return t
        return F.pad(t, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

    return extend(a) + extend(b)


class ResidualBlock(nn.Module):
    """``ares`` (identity skip) or ``ares_down`` (stride-2 first conv, 2x2/2 average-pooled skip)."""

    def __init__(self, in_channels: int, width: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.affine1 = Affine(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.affine2 = Affine(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_extended(y, skip))


class DlibResnet(Backbone):
    """dlib's face recognition ResNet, finetunable; equals ``compute_face_descriptor`` to float precision.

    Build it with :meth:`from_dlib_file`. ``features`` is the 256-d globally pooled
    vector; ``embed_from_features`` is the 128-d fc (no bias).
    """

    name: ClassVar[str] = "dlib-resnet"
    chip_size: ClassVar[int] = CHIP_SIZE
    template: ClassVar[str] = "dlib"
    embed_dim: ClassVar[int] = EMBED_DIM
    feature_dim: ClassVar[int] = FEATURE_DIM
    #: dlib's same-person cut-off on the Euclidean distance of raw embeddings
    distance_threshold: float = 0.6

    def __init__(self, channel_means: tuple[float, float, float] = (122.782, 117.001, 104.298)) -> None:
        super().__init__()
        self.register_buffer("channel_means", torch.tensor(channel_means, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem_conv = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.stem_affine = Affine(32)
        blocks, channels = [], 32
        for width, count, first_down in RESIDUAL_LEVELS:
            for i in range(count):
                blocks.append(ResidualBlock(channels, width, down=first_down and i == 0))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(FEATURE_DIM, EMBED_DIM, bias=False)

    @classmethod
    def from_dlib_file(cls, path: str | Path) -> "DlibResnet":
        weights = read_dlib_resnet(path)
        model = cls(weights.channel_means)
        model.distance_threshold = weights.distance_threshold
        convs = [model.stem_conv] + [c for b in model.blocks for c in (b.conv1, b.conv2)]
        affines = [model.stem_affine] + [a for b in model.blocks for a in (b.affine1, b.affine2)]
        if len(convs) != len(weights.convs) or len(affines) != len(weights.affines):
            raise ValueError(f"{path}: {len(weights.convs)} convs / {len(weights.affines)} affines, expected 29 / 29")
        with torch.no_grad():
            for conv, (w, b) in zip(convs, weights.convs):
                conv.weight.copy_(torch.from_numpy(w))
                conv.bias.copy_(torch.from_numpy(b))
            for affine, (gamma, beta) in zip(affines, weights.affines):
                affine.gamma.copy_(torch.from_numpy(gamma))
                affine.beta.copy_(torch.from_numpy(beta))
            model.fc.weight.copy_(torch.from_numpy(weights.fc_weight))
        return model.eval()

    def preprocess(self, chips: np.ndarray) -> torch.Tensor:
        chips = _check_chips(chips, self.chip_size)
        x = torch.from_numpy(np.ascontiguousarray(chips)).to(self.device).permute(0, 3, 1, 2).float()
        return (x - self.channel_means) / INPUT_SCALE

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.stem_affine(self.stem_conv(x))), 3, 2)
        return self.blocks(x).mean(dim=(2, 3))

    def embed_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f)

    def last_layer_parameters(self) -> list[nn.Parameter]:
        return list(self.fc.parameters())


def _check_chips(chips: np.ndarray, size: int) -> np.ndarray:
    chips = np.asarray(chips)
    if chips.ndim == 3:
        chips = chips[None]
    if chips.ndim != 4 or chips.shape[1:] != (size, size, 3):
        raise ValueError(f"expected uint8 RGB chips of shape (N, {size}, {size}, 3), got {chips.shape}; align faces first")
    if chips.dtype != np.uint8:
        raise ValueError(f"expected uint8 chips, got {chips.dtype}")
    return chips
