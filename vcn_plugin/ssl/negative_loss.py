"""Cannot-link negatives for the DINO loss: two faces of tracks seen in one frame are two people.

VideoClusterNet trains on positive pairs only and later clusters with the loss itself: a track
joins another when their cross loss is below its own mean intra-track loss. Tracks seen in one
frame are known to be different people, so for an anchor face ``a`` with a positive ``p`` (same
track or matched track) and a negative ``n`` (a track seen together with ``a``'s), the ranking
the clustering needs is ``L(a, n) > L(a, p)``. This term is the logistic loss of that ranking::

    softplus(L(a, p) - L(a, n)),   L(x, y) = (H(t_x, s_y) + H(t_y, s_x)) / 2

(the triplet form of Hermans et al., "In Defense of the Triplet Loss", 2017, with the soft
margin, on the DINO cross-entropy instead of a Euclidean distance), or its hinge
``max(0, L(a, p) - L(a, n))``, which is zero once the ranking holds. Neither needs a margin
parameter. The soft margin keeps pushing where the ranking already holds: on a near-uniform
teacher, where every ``L`` is close to ``ln K``, its gradient stays at half the difference's, so
it sharpens the head everywhere; the hinge acts only on the anchors the clustering would get wrong.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: "softplus" (the soft margin) or "hinge"
FORMS = ("softplus", "hinge")


def negative_ranking_loss(positive: torch.Tensor, negative: torch.Tensor, form: str = "softplus") -> torch.Tensor:
    """Mean ``softplus(positive - negative)`` (or its hinge) over rows; both (B,) pair losses of
    one anchor each."""
    if positive.shape != negative.shape or positive.ndim != 1 or positive.numel() == 0:
        raise ValueError(f"positive and negative pair losses must be equal non-empty (B,) tensors, "
                         f"got {tuple(positive.shape)} and {tuple(negative.shape)}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    gap = positive - negative
    return (F.softplus(gap) if form == "softplus" else F.relu(gap)).mean()
