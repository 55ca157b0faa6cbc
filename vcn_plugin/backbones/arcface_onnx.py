"""ArcFace-style recognition ONNX models (insightface packs, MobileFaceNets) as finetunable torch modules.

``onnx2torch`` would do the conversion but imports torchvision, which cannot be
installed beside this CPU torch, so :class:`OnnxGraphModule` is a small
converter for the operator set of face recognition networks: the ONNX graph is
executed node by node in topological order with torch ops; float initializers
become ``nn.Parameter`` (batch-norm running statistics become buffers), so the
result trains like any torch module. Unsupported operators raise
:class:`UnsupportedOnnxOpError` at load time, naming every one of them.

Where ``features`` ends: walking back from the graph output through shape-only
and normalisation ops (Reshape, Flatten, Squeeze, Identity, Dropout,
BatchNormalization), the first Gemm / MatMul / Conv is the embedding layer.
Its input is the feature vector (flattened to (N, D)); that layer and the ops
after it (e.g. iresnet's fc + BatchNorm1d, MobileFaceNet's linear 1x1 conv +
reshape) form ``embed_from_features``. This is where insightface's iresnet has
its dropout, so SER-FIQ's dropout goes to the same place.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vcn_plugin.backbones.base import Backbone

#: op types walked through when looking for the embedding layer from the output
_PASS_THROUGH_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "BatchNormalization"}
_HEAD_OPS = {"Gemm", "MatMul", "Conv"}
#: (op type, input index) whose initializers are constants (shapes, bounds, statistics), never trained
_CONSTANT_SLOTS = {
    ("Clip", 1), ("Clip", 2), ("Reshape", 1), ("Pad", 1), ("Pad", 2), ("Pad", 3),
    ("BatchNormalization", 3), ("BatchNormalization", 4), ("Squeeze", 1), ("Unsqueeze", 1), ("Gather", 1),
}
CHIP_SIZE = 112


class UnsupportedOnnxOpError(ValueError):
    """The ONNX graph uses operators this converter does not implement."""


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _as_ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.flatten().tolist()]


# --------------------------------------------------------------------------- op implementations


def _conv(ctx: "OnnxGraphModule", x, w, b=None, **a):
    spatial = x.dim() - 2
    if spatial != 2:
        raise UnsupportedOnnxOpError(f"Conv with {spatial} spatial dims (only 2-D is supported)")
    strides = a.get("strides", [1, 1])
    dilations = a.get("dilations", [1, 1])
    pads = list(a.get("pads", [0, 0, 0, 0]))
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = _same_pads(x.shape[2:], w.shape[2:], strides, dilations, upper=auto_pad == "SAME_UPPER")
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    if pads[0] == pads[2] and pads[1] == pads[3]:
        padding = (pads[0], pads[1])
    else:
        x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
        padding = (0, 0)
    return F.conv2d(x, w, b, stride=tuple(strides), padding=padding, dilation=tuple(dilations), groups=a.get("group", 1))


def _same_pads(size, kernel, strides, dilations, upper: bool) -> list[int]:
    begins, ends = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        total = max((int(np.ceil(n / s)) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if upper else large)
        ends.append(large if upper else small)
    return begins + ends


def _batch_norm(ctx: "OnnxGraphModule", x, scale, bias, mean, var, **a):
    momentum = 1.0 - float(a.get("momentum", 0.9))  # ONNX weights the running value, torch the batch value
    return F.batch_norm(x, mean, var, scale, bias, training=ctx.training, momentum=momentum, eps=float(a.get("epsilon", 1e-5)))


def _gemm(ctx, a_, b_, c=None, **a):
    if a.get("transA", 0):
        a_ = a_.t()
    if a.get("transB", 0):
        b_ = b_.t()
    y = float(a.get("alpha", 1.0)) * (a_ @ b_)
    return y if c is None else y + float(a.get("beta", 1.0)) * c


def _clip(ctx, x, low=None, high=None, **a):
    low = float(low) if low is not None else a.get("min")
    high = float(high) if high is not None else a.get("max")
    return torch.clamp(x, min=low, max=high)


def _reshape(ctx: "OnnxGraphModule", x, shape, **a):
    target = _as_ints(shape)
    if not a.get("allowzero", 0):
        target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
    if ctx.batch_from_input and target and target[0] == 1 and x.shape[0] != 1:
        target[0] = x.shape[0]  # exporters bake batch 1 into reshapes of fixed-batch models
    return x.reshape(target)


def _flatten(ctx, x, **a):
    axis = a.get("axis", 1)
    axis = axis + x.dim() if axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _pad(ctx, x, pads=None, value=None, *_axes, **a):
    pads = _as_ints(pads) if pads is not None else list(a["pads"])
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    fill = float(value) if value is not None else float(a.get("value", 0.0))
    half = len(pads) // 2
    torch_pads: list[int] = []
    for dim in reversed(range(half)):
        torch_pads += [pads[dim], pads[dim + half]]
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[mode]
    return F.pad(x, torch_pads, mode=torch_mode, value=fill) if torch_mode == "constant" else F.pad(x, torch_pads, mode=torch_mode)


def _pool(kind: str):
    def run(ctx, x, **a):
        kernel = tuple(a["kernel_shape"])
        strides = tuple(a.get("strides", [1] * len(kernel)))
        pads = list(a.get("pads", [0] * 2 * len(kernel)))
        ceil = bool(a.get("ceil_mode", 0))
        if pads[: len(kernel)] != pads[len(kernel) :]:
            fill = float("-inf") if kind == "max" else 0.0
            x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]), value=fill)
            pads = [0] * 2 * len(kernel)
        padding = tuple(pads[: len(kernel)])
        if kind == "max":
            return F.max_pool2d(x, kernel, strides, padding, ceil_mode=ceil)
        return F.avg_pool2d(x, kernel, strides, padding, ceil_mode=ceil, count_include_pad=bool(a.get("count_include_pad", 0)))

    return run


def _axes(a: dict, axes_input) -> list[int]:
    return _as_ints(axes_input) if axes_input is not None else list(a.get("axes", []))


def _squeeze(ctx, x, axes=None, **a):
    dims = _axes(a, axes) or [i for i, s in enumerate(x.shape) if s == 1]
    for d in sorted((d % x.dim() for d in dims), reverse=True):
        x = x.squeeze(d)
    return x


def _unsqueeze(ctx, x, axes=None, **a):
    dims = _axes(a, axes)
    out_rank = x.dim() + len(dims)
    for d in sorted(d % out_rank for d in dims):
        x = x.unsqueeze(d)
    return x


def _prelu(ctx, x, slope, **a):
    return torch.where(x >= 0, x, x * slope)


_OPS: dict[str, Callable] = {
    "Conv": _conv,
    "BatchNormalization": _batch_norm,
    "PRelu": _prelu,
    "Relu": lambda ctx, x, **a: F.relu(x),
    "LeakyRelu": lambda ctx, x, **a: F.leaky_relu(x, float(a.get("alpha", 0.01))),
    "Sigmoid": lambda ctx, x, **a: torch.sigmoid(x),
    "Tanh": lambda ctx, x, **a: torch.tanh(x),
    "Clip": _clip,
    "Add": lambda ctx, x, y, **a: x + y,
    "Sub": lambda ctx, x, y, **a: x - y,
    "Mul": lambda ctx, x, y, **a: x * y,
    "Div": lambda ctx, x, y, **a: x / y,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Gemm": _gemm,
    "MatMul": lambda ctx, x, y, **a: torch.matmul(x, y),
    "GlobalAveragePool": lambda ctx, x, **a: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "GlobalMaxPool": lambda ctx, x, **a: x.amax(dim=tuple(range(2, x.dim())), keepdim=True),
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "Dropout": lambda ctx, x, *rest, **a: x,  # inference graphs: dropout is the identity
    "Identity": lambda ctx, x, **a: x,
    "Transpose": lambda ctx, x, **a: x.permute(*a["perm"]) if "perm" in a else x.permute(*reversed(range(x.dim()))),
    "Pad": _pad,
    "Concat": lambda ctx, *xs, **a: torch.cat(xs, dim=a["axis"]),
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Shape": lambda ctx, x, **a: torch.tensor(x.shape, dtype=torch.int64, device=x.device),
    "Gather": lambda ctx, x, i, **a: torch.index_select(x, a.get("axis", 0), i.flatten().long()).reshape(
        *x.shape[: a.get("axis", 0)], *i.shape, *x.shape[a.get("axis", 0) + 1 :]
    ),
}
SUPPORTED_OPS = tuple(sorted(_OPS) + ["Constant"])


# --------------------------------------------------------------------------- the graph module


@dataclass(frozen=True)
class _Node:
    index: int  # position in the ONNX file: a unique id even when names repeat or are empty
    op_type: str
    name: str
    inputs: tuple[str, ...]  # "" = absent optional input
    outputs: tuple[str, ...]
    attributes: dict


def _topological_order(nodes: list[_Node], available: set[str]) -> list[_Node]:
    producers = {out: i for i, n in enumerate(nodes) for out in n.outputs}
    pending = [sum(1 for t in n.inputs if t and t not in available and t in producers) for n in nodes]
    consumers: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.inputs:
            if t and t not in available and t in producers:
                consumers.setdefault(producers[t], []).append(i)
    queue = deque(i for i, p in enumerate(pending) if p == 0)
    order = []
    while queue:
        i = queue.popleft()
        order.append(nodes[i])
        for j in consumers.get(i, []):
            pending[j] -= 1
            if pending[j] == 0:
                queue.append(j)
    if len(order) != len(nodes):
        raise ValueError("the ONNX graph has a cycle or inputs that no node produces")
    return order


class OnnxGraphModule(nn.Module):
    """An ONNX graph (single input, single output) run with torch ops; float initializers are parameters."""

    def __init__(self, model, batch_from_input: bool | None = None) -> None:
        super().__init__()
        from onnx import numpy_helper

        graph = model.graph
        initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializers]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ValueError(f"expected one input and one output, got {len(inputs)} inputs and {len(graph.output)} outputs")
        self.input_name, self.output_name = inputs[0].name, graph.output[0].name
        self.input_shape = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
        #: read a leading 1 in Reshape targets as "keep the batch size" (model exported with batch fixed to 1)
        self.batch_from_input = self.input_shape[:1] == [1] if batch_from_input is None else batch_from_input

        nodes = [
            _Node(k, n.op_type, n.name or f"{n.op_type}_{k}", tuple(n.input), tuple(n.output), _attributes(n))
            for k, n in enumerate(graph.node)
        ]
        unsupported = sorted({f"{n.op_type} (e.g. node {n.name!r})" for n in nodes if n.op_type not in SUPPORTED_OPS})
        if unsupported:
            raise UnsupportedOnnxOpError(
                f"unsupported ONNX operators: {'; '.join(unsupported)}. Supported: {', '.join(SUPPORTED_OPS)}"
            )
        for n in nodes:
            if n.op_type == "Constant":
                initializers[n.outputs[0]] = _constant_value(n)
        self.nodes = _topological_order([n for n in nodes if n.op_type != "Constant"], {self.input_name, *initializers})
        self._register_initializers(initializers)

    def _register_initializers(self, initializers: dict[str, np.ndarray]) -> None:
        constant_uses = {n.inputs[i] for n in self.nodes for i in range(len(n.inputs)) if (n.op_type, i) in _CONSTANT_SLOTS}
        trained_uses = {n.inputs[i] for n in self.nodes for i in range(len(n.inputs)) if (n.op_type, i) not in _CONSTANT_SLOTS}
        self.params = nn.ParameterDict()
        self._keys: dict[str, str] = {}
        for k, (name, value) in enumerate(initializers.items()):
            key = f"t{k}_{re.sub(r'[^0-9a-zA-Z_]', '_', name)}"[:120]
            self._keys[name] = key
            tensor = torch.from_numpy(np.array(value))
            if tensor.is_floating_point() and name in trained_uses:
                self.params[key] = nn.Parameter(tensor.float())
            else:
                persistent = name in constant_uses or name in trained_uses
                self.register_buffer(key, tensor.float() if tensor.is_floating_point() else tensor, persistent=persistent)

    def value(self, name: str, env: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if not name:
            return None
        if name in env:
            return env[name]
        key = self._keys.get(name)
        if key is None:
            raise KeyError(f"tensor {name!r} is neither computed yet nor an initializer")
        return self.params[key] if key in self.params else getattr(self, key)

    def run(self, nodes: list[_Node], env: dict[str, torch.Tensor], target: str) -> torch.Tensor:
        """Execute ``nodes`` (topologically ordered) on ``env`` and return tensor ``target``."""
        for node in nodes:
            args = [self.value(t, env) for t in node.inputs]
            while args and args[-1] is None:
                args.pop()
            out = _OPS[node.op_type](self, *args, **node.attributes)
            env[node.outputs[0]] = out
        return env[target]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(self.nodes, {self.input_name: x}, self.output_name)

    def parameters_of(self, nodes: list[_Node]) -> list[nn.Parameter]:
        """The trainable initializers that ``nodes`` read, each once."""
        keys = dict.fromkeys(self._keys[t] for n in nodes for t in n.inputs if t in self._keys)
        return [self.params[k] for k in keys if k in self.params]

    def split_at_embedding_layer(self) -> tuple[list[_Node], str, list[_Node]]:
        """(trunk nodes, feature tensor name, head nodes); see the module docstring."""
        producer = {out: n for n in self.nodes for out in n.outputs}
        tensor = self.output_name
        while tensor in producer and producer[tensor].op_type in _PASS_THROUGH_OPS:
            tensor = producer[tensor].inputs[0]
        if tensor not in producer or producer[tensor].op_type not in _HEAD_OPS:
            return self.nodes, self.output_name, []  # no linear last layer: features are the output
        feature = producer[tensor].inputs[0]
        trunk_names = self._ancestors(feature, producer)
        trunk = [n for n in self.nodes if n.index in trunk_names]
        head = [n for n in self.nodes if n.index not in trunk_names]
        computed = {feature, *self._keys}
        for node in head:
            missing = [t for t in node.inputs if t and t not in computed]
            if missing:
                return self.nodes, self.output_name, []  # the head needs more than the features
            computed.update(node.outputs)
        return trunk, feature, head

    def _ancestors(self, tensor: str, producer: dict[str, _Node]) -> set[int]:
        names: set[int] = set()
        stack = [tensor]
        while stack:
            node = producer.get(stack.pop())
            if node is not None and node.index not in names:
                names.add(node.index)
                stack.extend(t for t in node.inputs if t)
        return names


def _constant_value(node: _Node) -> np.ndarray:
    from onnx import numpy_helper

    a = node.attributes
    if "value" in a:
        return numpy_helper.to_array(a["value"])
    for key, dtype in [("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64), ("value_ints", np.int64)]:
        if key in a:
            return np.array(a[key], dtype=dtype)
    raise UnsupportedOnnxOpError(f"Constant node {node.name!r} with attributes {sorted(a)}")


# --------------------------------------------------------------------------- the backbone


@dataclass(frozen=True)
class ArcFacePreprocessing:
    """insightface's ``ArcFaceONNX`` input normalisation: ``(x - input_mean) / input_std``.

    insightface passes BGR images to ``cv2.dnn.blobFromImages(..., swapRB=True)``,
    so the network sees RGB; mean and std are 127.5 / 127.5, or 0 / 1 for
    mxnet-converted models whose first nodes already subtract and scale.
    """

    input_mean: float = 127.5
    input_std: float = 127.5
    channel_order: str = "RGB"


def insightface_preprocessing(model) -> ArcFacePreprocessing:
    """The preprocessing insightface's ``ArcFaceONNX`` would pick for this ONNX model."""
    names = [n.name for n in model.graph.node[:8]]
    has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return ArcFacePreprocessing(0.0, 1.0) if has_sub and has_mul else ArcFacePreprocessing()


def _chips_to_tensor(chips: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) chips -> a float (N, 3, H, W) tensor on ``device``, contiguous.

    Contiguous on purpose: a plain ``permute`` leaves channels-last strides, and the backward
    pass of torch 2.13's oneDNN convolutions in the converted graph on such inputs corrupted
    the heap: 40 training steps of a converted ONNX iresnet crashed in 8 of 9 runs
    (``free(): invalid size``; the backward test segfaulted in 1 of 3 suite runs); contiguous,
    0 of 6 crashed. (The dlib port keeps its layout: 3 x 25 training steps never crashed, and
    its outputs stay bit-identical to the published benchmark runs.)
    """
    x = torch.from_numpy(np.ascontiguousarray(chips)).to(device)
    return x.permute(0, 3, 1, 2).float().contiguous()


class ArcFaceOnnx(Backbone):
    """A recognition ONNX model as a finetunable :class:`Backbone` (template "arcface", 112x112 chips)."""

    name: ClassVar[str] = "arcface-onnx"
    chip_size: ClassVar[int] = CHIP_SIZE
    template: ClassVar[str] = "arcface"

    def __init__(self, graph: OnnxGraphModule, preprocessing: ArcFacePreprocessing, source: str = "") -> None:
        super().__init__()
        if preprocessing.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {preprocessing.channel_order!r}")
        spatial = graph.input_shape[2:]
        if any(s not in (None, CHIP_SIZE) for s in spatial):
            raise ValueError(f"{source}: input shape {graph.input_shape}; ArcFace-style models take 112x112 chips")
        self.graph = graph
        self.preprocessing = preprocessing
        self.source = source
        self._trunk, self.feature_name, self._head = graph.split_at_embedding_layer()
        self.eval()  # the shape probe below has batch 1, which batch norm cannot train on
        with torch.no_grad():
            probe = graph.run(self._trunk, {graph.input_name: torch.zeros(1, 3, CHIP_SIZE, CHIP_SIZE)}, self.feature_name)
            self._feature_shape = tuple(probe.shape[1:])
            self._embed_dim = int(np.prod(self.embed_from_features(probe.reshape(1, -1)).shape[1:]))

    @property
    def embed_dim(self) -> int:  # type: ignore[override]
        return self._embed_dim

    @property
    def feature_dim(self) -> int:
        return int(np.prod(self._feature_shape))

    def preprocess(self, chips: np.ndarray) -> torch.Tensor:
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or chips.dtype != np.uint8:
            raise ValueError(f"expected uint8 RGB chips (N, 112, 112, 3), got {chips.dtype} {chips.shape}; align faces first")
        if self.preprocessing.channel_order == "BGR":
            chips = chips[..., ::-1]
        x = _chips_to_tensor(chips, self.device)
        return (x - self.preprocessing.input_mean) / self.preprocessing.input_std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.graph.run(self._trunk, {self.graph.input_name: x}, self.feature_name)
        return f.reshape(f.shape[0], -1)

    def embed_from_features(self, f: torch.Tensor) -> torch.Tensor:
        if not self._head:
            return f
        env = {self.feature_name: f.reshape(f.shape[0], *self._feature_shape)}
        out = self.graph.run(self._head, env, self.graph.output_name)
        return out.reshape(out.shape[0], -1)

    def last_layer_parameters(self) -> list[nn.Parameter]:
        return self.graph.parameters_of(self._head)


def load_arcface_onnx(
    path: str | Path,
    input_mean: float | None = None,
    input_std: float | None = None,
    channel_order: str = "RGB",
) -> ArcFaceOnnx:
    """Load a recognition ONNX file; mean/std default to what insightface's ``ArcFaceONNX`` picks."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found at {path}")
    model = onnx.load(str(path))
    auto = insightface_preprocessing(model)
    preprocessing = ArcFacePreprocessing(
        auto.input_mean if input_mean is None else float(input_mean),
        auto.input_std if input_std is None else float(input_std),
        channel_order.upper(),
    )
    return ArcFaceOnnx(OnnxGraphModule(model), preprocessing, source=str(path))
