"""Finetuning health against ground truth: did coarse matching find the cross-shot positives,
and does the merge rule separate one person's tracks from two people's?

Two measures, each of one stage of VideoClusterNet:

* :func:`matching_quality`: coarse matching (the positives finetuning learns from) per round,
  as precision (matched pairs whose two tracks show one labelled identity) and recall (of the
  true cross-shot pairs: two tracks of one identity in different shots, among the tracks that
  took part). A wrong pair teaches the head that two people are one; a missed one leaves the
  head with only within-track positives.
* :func:`matching_bound`: the most any coarse matcher that ranks track pairs by one distance can
  do: the best recall of the true cross-shot pairs over every distance gate (chosen with the
  ground truth, i.e. an oracle) whose accepted pairs keep a given precision. When it is low,
  the embedding space puts look-alikes closer than one person's tracks, and no threshold,
  Gaussian radius or neighbour rule on those distances can be both precise and complete.
* :func:`merge_ratios`: the first round of the aggregation merges two tracks when their
  distance is below the larger of their thresholds, i.e. when ``d(a, b) / max(thr_a, thr_b) < 1``.
  The distributions of that ratio over same-identity and different-identity pairs say, before
  any transitive chaining, how many true pairs the rule can merge and how many false ones it
  will; a good metric puts the first below 1 and the second above.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MatchingQuality:
    """One matching round against ground truth (see the module docstring)."""

    pairs: int
    correct: int
    precision: float | None  # None without pairs
    true_pairs: int
    found: int  # true cross-shot pairs among ``pairs``
    recall: float | None  # None without true pairs
    #: precision among the pairs whose two tracks are labelled (None: no such pair). A track
    #: without a label (a false detection, an unlabelled extra) is never a correct pair, so this
    #: says how much of the shortfall of ``precision`` comes from those tracks.
    labelled_precision: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def matching_quality(
    pairs: Sequence[tuple[Hashable, Hashable]],
    identity: Mapping[Hashable, str | None],
    shot: Mapping[Hashable, int],
) -> MatchingQuality:
    """Score matched ``pairs`` of track keys. ``identity``: every track that took part -> its
    ground-truth identity (None: a false detection or an unlabelled extra, never a correct
    pair); ``shot``: track -> shot index (one video; a series: ``(video, shot)`` or any
    hashable would do, so shots of different videos differ)."""
    unknown = [k for pair in pairs for k in pair if k not in identity]
    if unknown:
        raise ValueError(f"matched tracks {unknown[:3]!r} are not among the tracks given with identities")

    def same(a: Hashable, b: Hashable) -> bool:
        return identity[a] is not None and identity[a] == identity[b]

    keys = list(identity)
    true = {frozenset((a, b)) for i, a in enumerate(keys) for b in keys[i + 1:] if same(a, b) and shot[a] != shot[b]}
    matched = {frozenset(p) for p in pairs}
    correct = sum(same(*p) for p in matched)
    labelled = sum(all(identity[k] is not None for k in p) for p in matched)
    found = len(matched & true)
    return MatchingQuality(
        pairs=len(matched),
        correct=correct,
        precision=correct / len(matched) if matched else None,
        true_pairs=len(true),
        found=found,
        recall=found / len(true) if true else None,
        labelled_precision=correct / labelled if labelled else None,
    )


@dataclass(frozen=True)
class MatchingBound:
    """The oracle distance gate of :func:`matching_bound`."""

    precision_target: float
    recall: float | None  # None without true pairs; 0.0 when no gate keeps the precision
    gate: float | None  # the largest distance the best gate accepts (None: no gate)
    pairs: int  # pairs the best gate accepts
    true_pairs: int

    def to_dict(self) -> dict:
        return asdict(self)


def matching_bound(
    distances: np.ndarray,
    identity: Sequence[str | None],
    shot: Sequence[Hashable],
    precision: float = 0.95,
    cannot_link: Sequence[tuple[int, int]] = (),
) -> MatchingBound:
    """Best recall of the true cross-shot pairs that any gate ``d(a, b) <= g`` reaches while
    its accepted pairs keep ``precision`` (see the module docstring).

    ``distances``: (T, T) symmetric track distances (e.g. cosine between track means);
    ``identity``: per track, the ground-truth identity or None (never a correct pair);
    ``shot``: per track, its shot; ``cannot_link``: index pairs no matcher may propose (left
    out). A gate accepts every pair at or below it, so tied distances enter together."""
    d = np.asarray(distances, dtype=np.float64)
    n = len(identity)
    if d.shape != (n, n) or len(shot) != n:
        raise ValueError(f"distances must be ({n}, {n}) with one shot per track; got {d.shape} and {len(shot)} shots")
    if not 0.0 < precision <= 1.0:
        raise ValueError(f"precision must be in (0, 1], got {precision}")
    i, j = np.triu_indices(n, 1)
    ident = np.array([g if g is not None else "" for g in identity], dtype=object)
    _, shots = np.unique(np.array([repr(s) for s in shot]), return_inverse=True)  # any hashable, tuples too
    correct = (ident[i] == ident[j]) & (ident[i] != "")
    true = correct & (shots[i] != shots[j])
    total = int(true.sum())  # as matching_quality counts them, cannot-linked ones included
    if total == 0:
        return MatchingBound(precision, None, None, 0, 0)
    forbidden = {frozenset(map(int, p)) for p in cannot_link}
    allowed = np.array([frozenset((a, b)) not in forbidden for a, b in zip(i.tolist(), j.tolist())], dtype=bool)
    i, j, correct, true = i[allowed], j[allowed], correct[allowed], true[allowed]
    dist = d[i, j]
    order = np.argsort(dist, kind="stable")
    dist, correct, true = dist[order], correct[order], true[order]
    last_of_tie = np.append(dist[1:] != dist[:-1], True)  # a gate ends after the last of equal distances
    accepted = np.arange(1, dist.size + 1)
    keeps = last_of_tie & (np.cumsum(correct) >= precision * accepted - 1e-12)
    if not keeps.any():
        return MatchingBound(precision, 0.0, None, 0, total)
    found = np.cumsum(true)
    best = np.flatnonzero(keeps)[np.argmax(found[keeps])]  # the first gate with the most true pairs
    return MatchingBound(precision, float(found[best] / total), float(dist[best]), int(best + 1), total)


def merge_ratios(stats: Any, identity: Sequence[str | None], singleton: str = "median") -> dict:
    """Distribution of ``d(a, b) / max(thr_a, thr_b)`` over pairs of labelled tracks.

    ``stats``: one row per track, a :class:`vcn_plugin.clustering.stats.TrackStats` (the
    aggregation's statistics; typed loosely: evaluation imports layers 0 and 2 only, see
    docs/architecture.md); ``identity``: per row, the
    ground-truth identity or None (left out). Returns ``{"same": ..., "different": ...}``, each
    with ``pairs``, ``below_1`` (the share the first round would merge), ``median`` and
    quartiles ``q25``/``q75`` (None without pairs)."""
    if len(identity) != len(stats):
        raise ValueError(f"identity has {len(identity)} entries for {len(stats)} tracks")
    rows = np.array([i for i, g in enumerate(identity) if g is not None], dtype=np.int64)
    out = {"same": _summary(np.zeros(0)), "different": _summary(np.zeros(0))}
    if rows.size < 2:
        return out
    a, b = np.triu_indices(rows.size, 1)
    i, j = rows[a], rows[b]
    thr = stats.thresholds(singleton)
    ratio = stats.pair_distances(i, stats, j) / np.maximum(thr[i], thr[j])
    same = np.array([identity[x] == identity[y] for x, y in zip(i, j)], dtype=bool)
    return {"same": _summary(ratio[same]), "different": _summary(ratio[~same])}


def _summary(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"pairs": 0, "below_1": None, "median": None, "q25": None, "q75": None}
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    return {"pairs": int(values.size), "below_1": float(np.mean(values < 1.0)), "median": float(median),
            "q25": float(q25), "q75": float(q75)}  # fmt: skip
