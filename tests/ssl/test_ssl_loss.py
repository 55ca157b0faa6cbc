"""DINO loss, centering, EMA and gradient flow (vcn_plugin.ssl)."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from vcn_plugin.ssl.head import DINOHead
from vcn_plugin.ssl.loss import DINOLoss
from vcn_plugin.ssl.trainer import cosine_momentum, ema_update

LN2, LN3 = math.log(2.0), math.log(3.0)


def test_loss_equals_hand_computed_value() -> None:
    loss_fn = DINOLoss(out_dim=3, teacher_temp=0.04, student_temp=0.1)
    center = torch.tensor([[0.1, 0.2, 0.3]])
    loss_fn.center.copy_(center)
    # (t_a - c)/0.04 = [ln2, 0, 0] -> p_a = [2, 1, 1]/4 = [1/2, 1/4, 1/4]
    teacher_a = center + 0.04 * torch.tensor([[LN2, 0.0, 0.0]])
    # (t_b - c)/0.04 = 0 -> p_b = [1/3, 1/3, 1/3]
    teacher_b = center.clone()
    # s_a/0.1 = [ln4, 0, 0] -> q_a = [4, 1, 1]/6 = [2/3, 1/6, 1/6]
    student_a = 0.1 * torch.tensor([[2 * LN2, 0.0, 0.0]])
    # s_b/0.1 = [0, ln2, 0] + 5 (a constant shift cancels) -> q_b = [1/4, 1/2, 1/4]
    student_b = 0.1 * torch.tensor([[0.0, LN2, 0.0]]) + 0.5
    # H(p_a, q_b) = -(1/2 ln 1/4 + 1/4 ln 1/2 + 1/4 ln 1/4) = (1 + 1/4 + 1/2) ln2 = 1.75 ln2 = 1.2130076
    # H(p_b, q_a) = -1/3 (ln 2/3 + 2 ln 1/6) = ln2/3 + ln3 = 0.2310491 + 1.0986123 = 1.3296614
    # loss = (1.2130076 + 1.3296614) / 2 = 1.2713345
    expected = 1.2713345
    assert abs(0.5 * (1.75 * LN2 + LN2 / 3 + LN3) - expected) < 1e-6  # the hand arithmetic itself
    loss = loss_fn(student_a, student_b, teacher_a, teacher_b)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_loss_averages_over_pairs_and_does_not_move_center() -> None:
    torch.manual_seed(0)
    loss_fn = DINOLoss(out_dim=5)
    s_a, s_b, t_a, t_b = (torch.randn(4, 5) for _ in range(4))
    whole = loss_fn(s_a, s_b, t_a, t_b)
    per_pair = torch.stack([loss_fn(s_a[i : i + 1], s_b[i : i + 1], t_a[i : i + 1], t_b[i : i + 1]) for i in range(4)])
    assert whole.item() == pytest.approx(per_pair.mean().item(), abs=1e-6)
    assert torch.allclose(loss_fn.pair_losses(s_a, s_b, t_a, t_b), per_pair, atol=1e-6)
    assert torch.equal(loss_fn.center, torch.zeros(1, 5))


def test_centering_update_is_exact() -> None:
    loss_fn = DINOLoss(out_dim=3, center_momentum=0.9)
    loss_fn.update_center(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 4.0, 5.0]]))
    # c = 0.9 * 0 + 0.1 * mean([1,2,3], [3,4,5]) = 0.1 * [2, 3, 4]
    assert torch.allclose(loss_fn.center, torch.tensor([[0.2, 0.3, 0.4]]), atol=1e-7)
    loss_fn.update_center(torch.zeros(2, 3))
    assert torch.allclose(loss_fn.center, torch.tensor([[0.18, 0.27, 0.36]]), atol=1e-7)


def test_gradients_reach_student_not_teacher() -> None:
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(8, 8), DINOHead(8, num_prototypes=16, hidden_dim=32, bottleneck_dim=8))
    teacher = copy.deepcopy(student)
    loss_fn = DINOLoss(out_dim=16)
    x_a, x_b = torch.randn(6, 8), torch.randn(6, 8)
    # teacher outputs computed with autograd on: the loss itself must stop the gradient
    loss = loss_fn(student(x_a), student(x_b), teacher(x_a), teacher(x_b))
    loss.backward()
    trainable = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in trainable)
    assert all(p.grad is None for p in teacher.parameters())


def test_ema_update_is_exact() -> None:
    torch.manual_seed(0)
    student, teacher = nn.Linear(4, 3), nn.Linear(4, 3)
    expected = [0.9 * t.detach().clone() + 0.1 * s.detach() for t, s in zip(teacher.parameters(), student.parameters())]
    ema_update(teacher, student, momentum=0.9)
    for got, want in zip(teacher.parameters(), expected):
        assert torch.allclose(got, want, atol=0, rtol=1e-6)


def test_teacher_momentum_cosine_schedule() -> None:
    assert cosine_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_momentum(50, 100, 0.996) == pytest.approx(0.998)
    assert cosine_momentum(100, 100, 0.996) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "shapes, message",
    [
        (((2, 3), (2, 3), (2, 3), (3, 3)), "one shape"),
        (((2, 4), (2, 4), (2, 4), (2, 4)), "K=3"),
        (((0, 3), (0, 3), (0, 3), (0, 3)), "B>0"),
    ],
)
def test_loss_rejects_bad_shapes(shapes: tuple, message: str) -> None:
    loss_fn = DINOLoss(out_dim=3)
    with pytest.raises(ValueError, match=message):
        loss_fn(*(torch.zeros(s) for s in shapes))


def test_loss_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="temperatures"):
        DINOLoss(out_dim=3, teacher_temp=0.0)
    with pytest.raises(ValueError, match="center_momentum"):
        DINOLoss(out_dim=3, center_momentum=1.0)
    with pytest.raises(ValueError, match="out_dim"):
        DINOLoss(out_dim=1)
