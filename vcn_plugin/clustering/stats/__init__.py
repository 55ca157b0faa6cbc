"""Track-to-track distances and per-track adaptive thresholds from per-track sums.

VideoClusterNet (Kamboj et al., ECCV 2024, arXiv:2407.12214) measures the
distance from track ``a`` to track ``b`` as the mean, over face pairs
``(i in a, j in b)``, of the self-distillation loss ``-p_i . log q_j`` (teacher's
centred, sharpened probabilities ``p``, student's log-probabilities ``log q``).
The mean is bilinear::

    mean_ij(-p_i . log q_j) = -(mean_i p_i) . (mean_j log q_j)

so every distance is a dot product of per-track *sums*, all distances are one
GEMM, and a cluster's statistics are the sums of its tracks' statistics. A
track's threshold is the mean loss over ordered pairs of *different* faces of
the track::

    thr(a) = ((sum_i p_i) . (sum_j -log q_j) - sum_i p_i . (-log q_i)) / (n (n - 1))

The symmetric distance averages both directions. Over *ordered* pairs the two
directions of the intra-track mean are the same sum, so the symmetric threshold
equals the directed one.

Two forms of the same numbers: :class:`LossMetricStats` takes dense K-wide
log-probabilities (any model); :class:`FactoredLossStats` takes the student as
the DINO head produces it (``log q = W z / temp - lse``, z 256-d), which makes
every sum 256-wide and the pairwise search 16x cheaper at K = 4096. The
pipeline uses the factored form.

The ablation variants use the same scheme on backbone embeddings:

- ``cosine``: mean over pairs of ``1 - u_i . u_j`` (``u`` = L2-normalised
  embedding) = ``1 - (sum u)_a . (sum u)_b / (n_a n_b)``.
- ``euclidean``: mean over pairs of the *squared* Euclidean distance, from
  ``||x||^2 + ||y||^2 - 2 x . y`` summed. The mean of the non-squared distance
  has no closed form in per-track sums; the mean squared distance (equivalently
  its root, the RMS distance, which orders pairs and thresholds identically) is
  exact and cheap.

Tracks (clusters) with a single face have no pair of different faces; see
:data:`SINGLETON_POLICIES`.
"""
from __future__ import annotations

import numpy as np

from vcn_plugin.clustering.stats.base import SINGLETON_POLICIES, SingletonPolicy, TrackStats
from vcn_plugin.clustering.stats.cosine import CosineStats
from vcn_plugin.clustering.stats.euclidean import EuclideanStats
from vcn_plugin.clustering.stats.factored_loss import FactoredLossStats
from vcn_plugin.clustering.stats.loss import LossMetricStats, center_student_log_probs
from vcn_plugin.core.student_factors import StudentFactors

METRICS = ("loss", "cosine", "euclidean")


def make_stats(
    metric: str,
    face_track: np.ndarray,
    *,
    probs: np.ndarray | None = None,
    log_probs: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    student: StudentFactors | None = None,
    n_tracks: int | None = None,
    center_student: bool = True,
) -> TrackStats:
    """Per-track statistics for ``metric``: "loss" needs ``probs`` and the student, either
    factored (``student``: :class:`FactoredLossStats`, what the pipeline uses) or dense
    (``log_probs``: :class:`LossMetricStats`); the others need ``embeddings``.
    ``center_student``: see :func:`center_student_log_probs`."""
    if metric == "loss":
        if probs is None or (log_probs is None and student is None):
            raise ValueError("the loss metric needs the teacher probabilities and student log-probabilities (run finetuning first)")
        if log_probs is not None and student is not None:
            raise ValueError("give the student either as log_probs or as factors (student), not both")
        if student is not None:
            return FactoredLossStats.from_faces(probs, student, face_track, n_tracks, center_student=center_student)
        return LossMetricStats.from_faces(probs, log_probs, face_track, n_tracks, center_student=center_student)
    if metric in ("cosine", "euclidean"):
        if embeddings is None:
            raise ValueError(f"the {metric} metric needs face embeddings")
        cls = CosineStats if metric == "cosine" else EuclideanStats
        return cls.from_faces(embeddings, face_track, n_tracks)
    raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")


__all__ = ["METRICS", "SINGLETON_POLICIES", "CosineStats", "EuclideanStats", "FactoredLossStats", "LossMetricStats",
           "SingletonPolicy", "StudentFactors", "TrackStats", "center_student_log_probs", "make_stats"]
