"""DINO projection head: MLP -> bottleneck -> L2-normalise -> weight-normalised prototypes.

Architecture as in DINO (Caron et al., ICCV 2021): ``num_layers`` linear layers
(hidden 2048, GELU) down to a 256-d bottleneck, L2 normalisation, then a
weight-normalised linear layer without bias onto K prototypes whose norm
(``g``) is fixed at 1 (DINO's ``norm_last_layer=True``), so the logits are
cosine similarities between the bottleneck and the prototypes.

Choice of K (:data:`DEFAULT_NUM_PROTOTYPES` = 4096). DINO's 65536 prototypes
serve ImageNet-scale data; one video has tens to a few thousand tracks and
VideoClusterNet only needs K comfortably above the number of identities. The
last layer is ``256 x K`` parameters updated by AdamW every step, so K drives
the training cost (clustering reads the teacher's P, K floats per face, but
keeps the student factored as its 256-d bottleneck, see
:meth:`DINOHead.bottleneck`, and per track only 2 x 256 sums). Measured with ``benchmarks/finetune.py`` on this project's shared,
loaded 2-core CPU (head alone, batch 64, forward + backward + AdamW, 1 thread):
K=1024 114 ms, 4096 149 ms, 8192 204 ms, 16384 378 ms, 65536 1426 ms per step,
i.e. 65536 is ~10x the cost of 4096 (which is close to the MLP-only floor).
4096 is ~100x the number of identities in a video. Pass ``num_prototypes``
to change it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

DEFAULT_NUM_PROTOTYPES = 4096
DEFAULT_HIDDEN_DIM = 2048
DEFAULT_BOTTLENECK_DIM = 256
DEFAULT_NUM_LAYERS = 3


class DINOHead(nn.Module):
    """Projection head mapping a backbone embedding (B, in_dim) to K prototype logits (B, K).

    Args:
        in_dim: backbone embedding size.
        num_prototypes: K, the output size.
        hidden_dim: width of the hidden MLP layers.
        bottleneck_dim: output of the MLP, L2-normalised before the prototypes.
        num_layers: linear layers in the MLP (>= 1; GELU between them).
        generator: torch RNG for the initialisation (truncated normal, std 0.02,
            as DINO); ``None`` uses the global RNG.
    """

    def __init__(
        self,
        in_dim: int,
        num_prototypes: int = DEFAULT_NUM_PROTOTYPES,
        hidden_dim: int = DEFAULT_HIDDEN_DIM,
        bottleneck_dim: int = DEFAULT_BOTTLENECK_DIM,
        num_layers: int = DEFAULT_NUM_LAYERS,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("bottleneck_dim", bottleneck_dim)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if num_prototypes < 2:
            raise ValueError(f"num_prototypes must be >= 2, got {num_prototypes}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.in_dim = in_dim
        self.num_prototypes = num_prototypes
        # a fixed affine map of the input, (x - input_mean) / input_scale; identity until
        # :meth:`set_input_normalisation` (see ``FinetuneConfig.head_input``)
        self.register_buffer("input_mean", torch.zeros(in_dim))
        self.register_buffer("input_scale", torch.ones(()))
        self.mlp = _mlp(in_dim, hidden_dim, bottleneck_dim, num_layers)
        self._init_mlp(generator)
        last = nn.Linear(bottleneck_dim, num_prototypes, bias=False)
        _trunc_normal_(last.weight, generator)
        self.last_layer = weight_norm(last)
        magnitude = self.last_layer.parametrizations.weight.original0
        magnitude.data.fill_(1.0)
        magnitude.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(self.bottleneck(x))

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised bottleneck ``z``; the logits are ``prototypes() @ z``."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"head input must be (B, {self.in_dim}), got {tuple(x.shape)}")
        return F.normalize(self.mlp((x - self.input_mean) / self.input_scale), dim=-1, p=2)

    @torch.no_grad()
    def set_input_normalisation(self, embeddings: torch.Tensor) -> None:
        """Centre and scale the head's input on ``embeddings`` (N, in_dim): subtract their mean and
        divide by the root mean square norm of the centred rows, so the rows have unit RMS norm."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.in_dim or embeddings.shape[0] < 2:
            raise ValueError(f"input normalisation needs (N >= 2, {self.in_dim}) embeddings, got {tuple(embeddings.shape)}")
        mean = embeddings.float().mean(dim=0)
        rms = (embeddings.float() - mean).pow(2).sum(dim=1).mean().sqrt()
        if not torch.isfinite(rms) or rms <= 0:
            raise ValueError("input normalisation needs embeddings that are finite and not all equal")
        self.input_mean.copy_(mean.to(self.input_mean))
        self.input_scale.copy_(rms.to(self.input_scale))

    def prototypes(self) -> torch.Tensor:
        """The effective (weight-normalised) last-layer weight, (K, bottleneck_dim)."""
        return self.last_layer.weight

    def last_layer_parameters(self) -> list[nn.Parameter]:
        """The trainable prototype parameters (frozen during the first epoch)."""
        return [p for p in self.last_layer.parameters() if p.requires_grad]

    def _init_mlp(self, generator: torch.Generator | None) -> None:
        for module in self.mlp.modules():
            if isinstance(module, nn.Linear):
                _trunc_normal_(module.weight, generator)
                nn.init.zeros_(module.bias)


def _mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> nn.Sequential:
    if num_layers == 1:
        return nn.Sequential(nn.Linear(in_dim, out_dim))
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
    for _ in range(num_layers - 2):
        layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
    layers.append(nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(*layers)


@torch.no_grad()
def _trunc_normal_(tensor: torch.Tensor, generator: torch.Generator | None, std: float = 0.02) -> None:
    nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std, generator=generator)
