"""DINO self-distillation loss with teacher centering.

The loss of a positive pair (a, b) in one direction is the cross-entropy between
the teacher's centred, sharpened distribution of ``a`` and the student's
distribution of ``b``::

    H(t_a, s_b) = - softmax((t_a - c) / temp_t) . log_softmax(s_b / temp_s)

and a pair contributes both directions, ``(H(t_a, s_b) + H(t_b, s_a)) / 2``.
``c`` is a running mean of teacher outputs; subtracting it (centering) together
with the low teacher temperature (sharpening) is what prevents collapse without
negative pairs.

References:
    - Caron et al., "Emerging Properties in Self-Supervised Vision Transformers"
      (DINO), ICCV 2021, arXiv:2104.14294.
    - Kamboj et al., "VideoClusterNet: Self-Supervised and Adaptive Clustering
      for Videos", ECCV 2024, arXiv:2407.12214 (the same loss on positive pairs
      of faces from one track or from coarsely matched tracks, and later as the
      clustering distance).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: DINO defaults (Caron et al. 2021), used unchanged by VideoClusterNet.
DEFAULT_TEACHER_TEMP = 0.04
DEFAULT_STUDENT_TEMP = 0.1
DEFAULT_CENTER_MOMENTUM = 0.9


def teacher_probabilities(teacher_out: torch.Tensor, center: torch.Tensor, teacher_temp: float) -> torch.Tensor:
    """Centred, sharpened teacher distribution ``softmax((t - c) / temp_t)``, (B, K)."""
    return F.softmax((teacher_out.float() - center.float()) / teacher_temp, dim=-1)


def student_log_probabilities(student_out: torch.Tensor, student_temp: float) -> torch.Tensor:
    """Student log-distribution ``log_softmax(s / temp_s)``, (B, K)."""
    return F.log_softmax(student_out.float() / student_temp, dim=-1)


def cross_entropy(teacher_probs: torch.Tensor, student_log_probs: torch.Tensor) -> torch.Tensor:
    """Per-row ``-p . log q``, (B,)."""
    return -(teacher_probs * student_log_probs).sum(dim=-1)


class DINOLoss(nn.Module):
    """Symmetric DINO loss over a batch of positive pairs, with teacher centering.

    Row ``i`` of the four inputs belongs to pair ``i``: ``student_a[i]`` and
    ``teacher_a[i]`` are the student's and teacher's head outputs for one face
    (view) of the pair, ``*_b[i]`` for the other. Returns the mean over pairs of
    ``(H(t_a, s_b) + H(t_b, s_a)) / 2``.

    The center is *not* changed by :meth:`forward`; call :meth:`update_center`
    with the teacher outputs after the loss (as DINO does), so the loss of a
    step always uses the center from before that step.

    Args:
        out_dim: number of prototypes K (the head's output size).
        teacher_temp: teacher softmax temperature (sharpening), DINO's 0.04.
        student_temp: student softmax temperature, DINO's 0.1.
        center_momentum: ``c <- m c + (1 - m) mean(teacher outputs)``, DINO's 0.9.
    """

    center: torch.Tensor

    def __init__(
        self,
        out_dim: int,
        teacher_temp: float = DEFAULT_TEACHER_TEMP,
        student_temp: float = DEFAULT_STUDENT_TEMP,
        center_momentum: float = DEFAULT_CENTER_MOMENTUM,
    ) -> None:
        super().__init__()
        if out_dim < 2:
            raise ValueError(f"out_dim (number of prototypes) must be >= 2, got {out_dim}")
        if teacher_temp <= 0 or student_temp <= 0:
            raise ValueError(f"temperatures must be > 0, got teacher {teacher_temp}, student {student_temp}")
        if not 0.0 <= center_momentum < 1.0:
            raise ValueError(f"center_momentum must be in [0, 1), got {center_momentum}")
        self.out_dim = out_dim
        self.teacher_temp = teacher_temp
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(
        self,
        student_a: torch.Tensor,
        student_b: torch.Tensor,
        teacher_a: torch.Tensor,
        teacher_b: torch.Tensor,
    ) -> torch.Tensor:
        return self.pair_losses(student_a, student_b, teacher_a, teacher_b).mean()

    def pair_losses(self, student_a: torch.Tensor, student_b: torch.Tensor, teacher_a: torch.Tensor,
                    teacher_b: torch.Tensor) -> torch.Tensor:
        """Per-pair ``(H(t_a, s_b) + H(t_b, s_a)) / 2``, (B,): the quantity :meth:`forward` averages."""
        self._check_inputs(student_a, student_b, teacher_a, teacher_b)
        t_a = teacher_probabilities(teacher_a.detach(), self.center, self.teacher_temp)
        t_b = teacher_probabilities(teacher_b.detach(), self.center, self.teacher_temp)
        log_s_a = student_log_probabilities(student_a, self.student_temp)
        log_s_b = student_log_probabilities(student_b, self.student_temp)
        return 0.5 * (cross_entropy(t_a, log_s_b) + cross_entropy(t_b, log_s_a))

    @torch.no_grad()
    def update_center(self, *teacher_outputs: torch.Tensor) -> None:
        """EMA of the batch mean of all given teacher outputs (rows of every tensor)."""
        if not teacher_outputs:
            raise ValueError("update_center needs at least one tensor of teacher outputs")
        batch = torch.cat([t.detach().float() for t in teacher_outputs], dim=0)
        if batch.ndim != 2 or batch.shape[1] != self.out_dim or batch.shape[0] == 0:
            raise ValueError(f"teacher outputs must be (B>0, {self.out_dim}), got {tuple(batch.shape)}")
        batch_center = batch.mean(dim=0, keepdim=True)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1.0 - self.center_momentum)

    def _check_inputs(self, *tensors: torch.Tensor) -> None:
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) != 1:
            raise ValueError(f"student/teacher outputs must have one shape, got {sorted(shapes)}")
        shape = shapes.pop()
        if len(shape) != 2 or shape[1] != self.out_dim or shape[0] == 0:
            raise ValueError(f"head outputs must be (B>0, K={self.out_dim}), got {shape}")
