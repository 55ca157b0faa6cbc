"""Track-level clustering metrics: how well predicted clusters of face tracks recover identities.

Each evaluated item is one face track with a ground-truth identity and a predicted cluster.
Notation used in every definition below (counts are *weights* when ``weights`` is given,
see "Weighting"):

* ``n_ij``: number of tracks of identity ``i`` placed in predicted cluster ``j``
  (the contingency table, identities as rows, clusters as columns);
* ``a_i = sum_j n_ij`` (size of identity ``i``), ``b_j = sum_i n_ij`` (size of cluster ``j``);
* ``N = sum_ij n_ij`` (number of evaluated tracks); ``C2(x) = x (x - 1) / 2`` (pairs).

Metrics (all fractions in [0, 1]; higher is better):

* **WCP** (Weighted Cluster Purity, VideoClusterNet): ``(1/N) sum_j max_i n_ij``. WCP alone
  rewards over-splitting (all singletons give 1.0), so always read it beside ``cluster_ratio``.
* **accuracy**: clusters are matched one-to-one to identities by the Hungarian algorithm
  (``scipy.optimize.linear_sum_assignment`` maximising the matched ``n_ij``); tracks in the
  matched cells are correct, everything else (including every track of a cluster left over
  when there are more clusters than identities) is an error: ``sum_matched n_ij / N``.
* **pairwise** precision / recall / F over unordered pairs of tracks:
  ``TP = sum_ij C2(n_ij)``, precision ``= TP / sum_j C2(b_j)``, recall ``= TP / sum_i C2(a_i)``,
  F = harmonic mean. A zero denominator (no two tracks share a cluster, or no two tracks
  share an identity) means no pair can be wrong and gives 1.0, which is what BCubed gives
  in the same limit.
* **BCubed** precision / recall / F (Bagga & Baldwin 1998; Amigo et al. 2009), averaged
  over tracks: precision ``= (1/N) sum_ij n_ij^2 / b_j``, recall ``= (1/N) sum_ij n_ij^2 / a_i``.
* **NMI**: ``sklearn.metrics.normalized_mutual_info_score`` with ``average_method="arithmetic"``
  (mutual information divided by the arithmetic mean of the two entropies; sklearn's
  convention gives 1.0 when both sides have a single label).
* **cluster_ratio**: ``n_clusters / n_identities`` (1.0 is ideal; > 1 over-splits, < 1 merges).

Unknown predictions (tracks the method declined to assign, labelled ``unknown_label``):

* ``unknown_mode="exclude"``: Unknown tracks are removed; every metric above is computed on
  the remaining tracks, so ``N``, ``n_clusters`` and ``n_identities`` refer to them.
  ``coverage`` says how much was kept.
* ``unknown_mode="singleton"``: every Unknown track becomes a cluster of its own (the
  pessimistic reading: the method did not group it with anything).

In both modes ``n_unknown`` counts Unknown tracks and ``coverage = 1 - unknown weight / total
weight`` (the fraction of tracks, or of faces when weighted, that are not Unknown).

Degenerate cases:

* empty input, or every track Unknown in ``"exclude"`` mode: nothing is evaluated, and every
  score (WCP, accuracy, pairwise, BCubed, NMI, cluster_ratio) is 0.0, so declining to answer
  never looks perfect; ``n_evaluated`` is 0 and ``coverage`` is 0.0.
* one cluster: WCP = share of the largest identity, pairwise/BCubed recall 1.0, NMI 0.0
  (1.0 if there is also only one identity).
* all singletons: WCP, pairwise precision and BCubed precision are 1.0,
  accuracy = ``n_identities / N``.

Weighting: by default each track counts once. With ``weights`` (positive integers, e.g. the
number of faces in each track) a track counts as ``weights[k]`` items with its labels, so
every metric equals the unweighted metric on the list where each track is repeated that many
times (face-level evaluation). Track counts (``n_tracks``, ``n_unknown``, per-identity
``tracks``/``clusters``) stay counts of tracks.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import normalized_mutual_info_score

UNKNOWN_MODES = ("exclude", "singleton")


@dataclass
class IdentityBreakdown:
    """How one ground-truth identity was clustered.

    ``tracks``: all its tracks (Unknown included); ``unknown``: how many were predicted
    Unknown; ``purity``: share (weighted) of its evaluated tracks in its dominant cluster
    (0.0 when none was evaluated); ``dominant_cluster``: that cluster (``None`` when none
    was evaluated; an Unknown singleton is named ``"<unknown_label>#<track index>"``);
    ``clusters``: the predicted, non-Unknown clusters holding its tracks, with track counts,
    largest first.
    """

    identity: str
    tracks: int
    unknown: int
    purity: float
    dominant_cluster: str | None
    clusters: dict[str, int] = field(default_factory=dict)


@dataclass
class ClusteringMetrics:
    """Track-level clustering scores; definitions in the module docstring."""

    n_tracks: int
    n_evaluated: int
    n_unknown: int
    coverage: float
    n_clusters: int
    n_identities: int
    cluster_ratio: float
    wcp: float
    accuracy: float
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    nmi: float
    unknown_mode: str
    weighted: bool
    per_identity: list[IdentityBreakdown] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _UnknownTrack:
    """Internal cluster key of an Unknown track in singleton mode (cannot collide with a label)."""

    index: int
    unknown_label: Hashable

    def __str__(self) -> str:
        return f"{self.unknown_label}#{self.index}"


def evaluate_clustering(
    gt: Sequence[Hashable],
    pred: Sequence[Hashable],
    unknown_label: Hashable = "Unknown",
    unknown_mode: str = "exclude",
    weights: Sequence[int] | None = None,
) -> ClusteringMetrics:
    """Score predicted track clusters ``pred`` against ground-truth identities ``gt``.

    ``gt[k]`` and ``pred[k]`` are the identity and the predicted cluster of track ``k``
    (strings or ints); ``pred[k] == unknown_label`` marks an Unknown track, handled as
    ``unknown_mode`` says. ``weights[k]`` (optional, positive integers such as face counts)
    makes track ``k`` count as that many items. See the module docstring for every definition.
    """
    gt, pred = list(gt), list(pred)
    if len(gt) != len(pred):
        raise ValueError(f"gt and pred must have one entry per track; got {len(gt)} and {len(pred)}")
    if unknown_mode not in UNKNOWN_MODES:
        raise ValueError(f"unknown_mode must be one of {UNKNOWN_MODES}, got {unknown_mode!r}")
    track_weights = _validate_weights(weights, len(gt))
    is_unknown = np.array([p == unknown_label for p in pred], dtype=bool)

    if unknown_mode == "singleton":
        clusters = [_UnknownTrack(k, unknown_label) if u else p for k, (p, u) in enumerate(zip(pred, is_unknown))]
        keep = np.ones(len(gt), dtype=bool)
    else:
        clusters = list(pred)
        keep = ~is_unknown

    total_weight = float(track_weights.sum())
    unknown_weight = float(track_weights[is_unknown].sum())
    coverage = 1.0 - unknown_weight / total_weight if total_weight > 0 else 0.0
    header = dict(
        n_tracks=len(gt),
        n_evaluated=int(keep.sum()),
        n_unknown=int(is_unknown.sum()),
        coverage=coverage,
        unknown_mode=unknown_mode,
        weighted=weights is not None,
    )
    kept = np.flatnonzero(keep)
    kept_gt = [gt[k] for k in kept]
    kept_clusters = [clusters[k] for k in kept]
    kept_weights = track_weights[kept]
    per_identity = _per_identity(gt, is_unknown, kept_gt, kept_clusters, kept_weights)
    if len(kept) == 0:
        return ClusteringMetrics(**header, **_empty_scores(), per_identity=per_identity)
    scores = _scores(kept_gt, kept_clusters, kept_weights)
    return ClusteringMetrics(**header, **scores, per_identity=per_identity)


def _validate_weights(weights: Sequence[int] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n, dtype=np.int64)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"weights must have one entry per track ({n}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 1) or np.any(w != np.round(w)):
        raise ValueError("weights must be positive integers (e.g. the number of faces in each track)")
    return w.astype(np.int64)


def _label_key(label: Hashable) -> tuple[str, str]:
    """Deterministic sort key for mixed labels (str first, then type name to split 1 from '1')."""
    return str(label), type(label).__name__


def _factorize(labels: Sequence[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    names = sorted(set(labels), key=_label_key)
    index = {name: k for k, name in enumerate(names)}
    return np.array([index[x] for x in labels], dtype=np.int64), names


def _contingency(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    table = np.zeros(shape, dtype=np.float64)
    np.add.at(table, (rows, cols), weights)
    return table


def _safe_ratio(num: float, den: float, if_zero: float) -> float:
    return float(num / den) if den > 0 else if_zero


def _harmonic(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _pairs(x: np.ndarray) -> float:
    return float((x * (x - 1) / 2).sum())


def _scores(gt: list[Hashable], clusters: list[Hashable], weights: np.ndarray) -> dict[str, float | int]:
    gt_codes, identities = _factorize(gt)
    cl_codes, cluster_names = _factorize(clusters)
    table = _contingency(gt_codes, cl_codes, weights, (len(identities), len(cluster_names)))
    n = table.sum()
    identity_sizes, cluster_sizes = table.sum(axis=1), table.sum(axis=0)

    rows, cols = linear_sum_assignment(table, maximize=True)
    true_pairs = _pairs(table)
    pair_p = _safe_ratio(true_pairs, _pairs(cluster_sizes), if_zero=1.0)
    pair_r = _safe_ratio(true_pairs, _pairs(identity_sizes), if_zero=1.0)
    squares = table**2
    bc_p = float((squares / cluster_sizes[None, :]).sum() / n)
    bc_r = float((squares / identity_sizes[:, None]).sum() / n)
    nmi = normalized_mutual_info_score(
        np.repeat(gt_codes, weights), np.repeat(cl_codes, weights), average_method="arithmetic"
    )
    return dict(
        n_clusters=len(cluster_names),
        n_identities=len(identities),
        cluster_ratio=len(cluster_names) / len(identities),
        wcp=float(table.max(axis=0).sum() / n),
        accuracy=float(table[rows, cols].sum() / n),
        pairwise_precision=pair_p,
        pairwise_recall=pair_r,
        pairwise_f=_harmonic(pair_p, pair_r),
        bcubed_precision=bc_p,
        bcubed_recall=bc_r,
        bcubed_f=_harmonic(bc_p, bc_r),
        nmi=float(nmi),
    )


def _empty_scores() -> dict[str, float | int]:
    names = ("cluster_ratio", "wcp", "accuracy", "pairwise_precision", "pairwise_recall", "pairwise_f",
             "bcubed_precision", "bcubed_recall", "bcubed_f", "nmi")
    return dict(n_clusters=0, n_identities=0, **{name: 0.0 for name in names})


def _per_identity(
    gt: list[Hashable],
    is_unknown: np.ndarray,
    kept_gt: list[Hashable],
    kept_clusters: list[Hashable],
    kept_weights: np.ndarray,
) -> list[IdentityBreakdown]:
    tracks: dict[Hashable, int] = {}
    unknown: dict[Hashable, int] = {}
    for identity, u in zip(gt, is_unknown):
        tracks[identity] = tracks.get(identity, 0) + 1
        unknown[identity] = unknown.get(identity, 0) + int(u)
    weight_in: dict[Hashable, dict[Hashable, int]] = {identity: {} for identity in tracks}
    tracks_in: dict[Hashable, dict[Hashable, int]] = {identity: {} for identity in tracks}
    for identity, cluster, w in zip(kept_gt, kept_clusters, kept_weights):
        weight_in[identity][cluster] = weight_in[identity].get(cluster, 0) + int(w)
        tracks_in[identity][cluster] = tracks_in[identity].get(cluster, 0) + 1
    return [
        _identity_breakdown(identity, tracks[identity], unknown[identity], weight_in[identity], tracks_in[identity])
        for identity in sorted(tracks, key=_label_key)
    ]


def _identity_breakdown(
    identity: Hashable,
    n_tracks: int,
    n_unknown: int,
    weight_per_cluster: dict[Hashable, int],
    tracks_per_cluster: dict[Hashable, int],
) -> IdentityBreakdown:
    dominant, purity = None, 0.0
    if weight_per_cluster:
        # ties go to the first cluster in label order, so the result is deterministic
        dominant = min(weight_per_cluster, key=lambda c: (-weight_per_cluster[c], _label_key(c)))
        purity = weight_per_cluster[dominant] / sum(weight_per_cluster.values())
    named = {c: t for c, t in tracks_per_cluster.items() if not isinstance(c, _UnknownTrack)}
    return IdentityBreakdown(
        identity=str(identity),
        tracks=n_tracks,
        unknown=n_unknown,
        purity=float(purity),
        dominant_cluster=None if dominant is None else str(dominant),
        clusters={str(c): named[c] for c in sorted(named, key=lambda c: (-named[c], _label_key(c)))},
    )
