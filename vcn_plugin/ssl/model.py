"""The finetuned student/teacher pair, its checkpoint format and inference helpers."""
from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vcn_plugin.backbones.base import Backbone
from vcn_plugin.core.student_factors import DEFAULT_PREDICTOR, PREDICTORS, StudentFactors
from vcn_plugin.ssl.config import FinetuneConfig
from vcn_plugin.ssl.head import DINOHead
from vcn_plugin.ssl.loss import student_log_probabilities, teacher_probabilities

CHECKPOINT_FORMAT = "vcn-ssl-v1"
#: head buffers that checkpoints written before them lack (they then load as the identity map)
INPUT_NORMALISATION_KEYS = ("input_mean", "input_scale")


class SSLModel(nn.Module):
    """Student and teacher (backbone + DINO head each), the loss center and the config.

    Inference is in eval mode, without augmentation, in float32:

    - :meth:`head_outputs` gives the teacher's centred, sharpened probabilities
      ``P = softmax((teacher(x) - c) / temp_t)`` and the student's log-probabilities
      ``logQ = log_softmax(student(x) / temp_s)``, the two sides of the SSL loss
      that the paper's clustering uses as its distance.
    - :meth:`loss_features` gives ``P`` and the predictor side in factored form (the teacher's
      head at the student temperature by default, see :data:`DEFAULT_PREDICTOR`).
    - :meth:`embeddings` gives the teacher backbone's embeddings.
    """

    center: torch.Tensor

    def __init__(
        self,
        student_backbone: Backbone,
        student_head: DINOHead,
        teacher_backbone: Backbone,
        teacher_head: DINOHead,
        center: torch.Tensor,
        config: FinetuneConfig,
    ) -> None:
        super().__init__()
        if tuple(center.shape) != (1, config.num_prototypes):
            raise ValueError(f"center must be (1, {config.num_prototypes}), got {tuple(center.shape)}")
        self.student_backbone = student_backbone
        self.student_head = student_head
        self.teacher_backbone = teacher_backbone
        self.teacher_head = teacher_head
        self.register_buffer("center", center.detach().clone().float())
        self.config = config

    @classmethod
    def from_backbone(cls, backbone: Backbone, config: FinetuneConfig, generator: torch.Generator | None = None) -> "SSLModel":
        """A fresh model: student = copy of ``backbone`` + new head, teacher = copy of the student."""
        head = DINOHead(
            backbone.embed_dim, config.num_prototypes, config.hidden_dim, config.bottleneck_dim,
            config.head_layers, generator=generator,
        ).to(backbone.device)
        student_backbone = copy.deepcopy(backbone)
        center = torch.zeros(1, config.num_prototypes, device=backbone.device)
        return cls(student_backbone, head, copy.deepcopy(student_backbone), copy.deepcopy(head), center, config)

    @property
    def device(self) -> torch.device:
        return self.center.device

    @property
    def backbone_name(self) -> str:
        return type(self.student_backbone).name

    @torch.no_grad()
    def embeddings(self, chips: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Teacher backbone embeddings (N, D) float32 of uint8 RGB chips (N, H, W, 3)."""
        return self._batched(chips, lambda x: self.teacher_backbone(x), batch_size, self.teacher_backbone.embed_dim)

    @torch.no_grad()
    def head_outputs(self, chips: np.ndarray, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(P, logQ)``, each (N, K) float32, for uint8 RGB chips (N, H, W, 3)."""
        k = self.config.num_prototypes

        def both(x: torch.Tensor) -> torch.Tensor:
            p = self._teacher_probabilities(self.teacher_backbone(x))
            log_q = student_log_probabilities(self.student_head(self.student_backbone(x)), self.config.student_temp)
            return torch.cat([p, log_q], dim=1)

        out = self._batched(chips, both, batch_size, 2 * k)
        return np.ascontiguousarray(out[:, :k]), np.ascontiguousarray(out[:, k:])

    @torch.no_grad()
    def loss_features(self, chips: np.ndarray, batch_size: int | None = None,
                      predictor: str = DEFAULT_PREDICTOR) -> tuple[np.ndarray, StudentFactors]:
        """``(P, predictor)``: the teacher's ``P`` as in :meth:`head_outputs` and the predictor side's
        log-probabilities in factored form (its head's bottleneck per face, its prototypes, and the
        student temperature), which the clustering uses to compute the loss in 2 x 256 dimensions
        instead of 2 x K (see :class:`~vcn_plugin.clustering.FactoredLossStats`). ``predictor``: the
        network on the predictor side, one of :data:`PREDICTORS` ("student": the student's
        ``log q`` of :meth:`head_outputs`)."""
        probs, factors, _ = self.clustering_features(chips, batch_size, predictor, embeddings=False)
        return probs, factors

    @torch.no_grad()
    def clustering_features(self, chips: np.ndarray, batch_size: int | None = None, predictor: str = DEFAULT_PREDICTOR,
                            embeddings: bool = True) -> tuple[np.ndarray, StudentFactors, np.ndarray | None]:
        """:meth:`loss_features` and, with ``embeddings``, the teacher backbone's embeddings of
        :meth:`embeddings` from the same forward pass (the clustering's agreement view; else None)."""
        if predictor not in PREDICTORS:
            raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
        k = self.config.num_prototypes
        head = self.teacher_head if predictor == "teacher" else self.student_head
        bottleneck = head.prototypes().shape[1]

        def outputs(x: torch.Tensor) -> torch.Tensor:
            features = self.teacher_backbone(x)
            p = self._teacher_probabilities(features)
            z = head.bottleneck(features if predictor == "teacher" else self.student_backbone(x))
            return torch.cat([p, z.float()] + ([features.float()] if embeddings else []), dim=1)

        width = k + bottleneck + (self.teacher_backbone.embed_dim if embeddings else 0)
        out = self._batched(chips, outputs, batch_size, width)
        prototypes = head.prototypes().float().cpu().numpy()
        factors = StudentFactors(np.ascontiguousarray(out[:, k:k + bottleneck]), prototypes, self.config.student_temp)
        emb = np.ascontiguousarray(out[:, k + bottleneck:]) if embeddings else None
        return np.ascontiguousarray(out[:, :k]), factors, emb

    def _teacher_probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """``P`` from the teacher backbone's ``features`` (computed once by callers that reuse them)."""
        return teacher_probabilities(self.teacher_head(features), self.center, self.config.teacher_temp)

    def _batched(
        self, chips: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor], batch_size: int | None, width: int
    ) -> np.ndarray:
        validate_chips(chips, self.student_backbone, "chips")
        batch_size = batch_size or self.config.inference_batch_size
        was_training = self.training
        self.eval()
        try:
            parts = [
                fn(self.teacher_backbone.preprocess(chips[i : i + batch_size]).to(self.device)).float().cpu().numpy()
                for i in range(0, len(chips), batch_size)
            ]
        finally:
            self.train(was_training)
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, width), np.float32)

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint to ``path`` atomically (temporary file in the same folder + ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "backbone": self.backbone_name,
            "config": json.dumps(self.config.to_dict()),
            "student_backbone": self.student_backbone.state_dict(),
            "student_head": self.student_head.state_dict(),
            "teacher_backbone": self.teacher_backbone.state_dict(),
            "teacher_head": self.teacher_head.state_dict(),
            "center": self.center.detach().cpu(),
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, backbone: Backbone | None = None, device: str | torch.device = "cpu") -> "SSLModel":
        """Load a checkpoint written by :meth:`save`.

        Args:
            path: the checkpoint file.
            backbone: an instance of the same backbone architecture (its weights
                are replaced); ``None`` builds it with
                ``vcn_plugin.backbones.get_backbone(<saved name>)``.
            device: where to put the model.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no SSL checkpoint at {path}")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint written by SSLModel.save")
        config = FinetuneConfig.from_dict(json.loads(payload["config"]))
        backbone = backbone if backbone is not None else _build_backbone(payload["backbone"])
        if type(backbone).name != payload["backbone"]:
            raise ValueError(f"checkpoint is for backbone {payload['backbone']!r}, got {type(backbone).name!r}")
        model = cls.from_backbone(backbone, config).to("cpu")
        for part in ("student_backbone", "student_head", "teacher_backbone", "teacher_head"):
            state = payload[part]
            if part.endswith("head"):  # checkpoints from before the head's input normalisation: identity
                fresh = getattr(model, part).state_dict()
                state = {**{k: fresh[k] for k in INPUT_NORMALISATION_KEYS}, **state}
            getattr(model, part).load_state_dict(state)
        model.center.copy_(payload["center"])
        return model.to(device)


def validate_chips(chips: np.ndarray, backbone: Backbone, what: str) -> None:
    """Chips must be uint8 RGB (N, S, S, 3) with S the backbone's chip size."""
    if not isinstance(chips, np.ndarray) or chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[-1] != 3:
        got = f"{chips.dtype} {chips.shape}" if isinstance(chips, np.ndarray) else type(chips).__name__
        raise ValueError(f"{what} must be a uint8 numpy array (N, H, W, 3) of RGB chips, got {got}")
    size = backbone.chip_size
    if chips.shape[1:3] != (size, size):
        raise ValueError(
            f"{what} are {chips.shape[1]}x{chips.shape[2]} but backbone {type(backbone).name!r} expects "
            f"{size}x{size} chips aligned with its {backbone.template!r} template; extract chips at that size"
        )


def _build_backbone(name: str) -> Backbone:
    try:
        from vcn_plugin.backbones import get_backbone  # noqa: PLC0415 - optional until the registry exists
    except ImportError as err:
        raise ValueError(f"pass backbone=<a {name!r} Backbone instance>: no backbone registry to build it ({err})") from err
    return get_backbone(name)
