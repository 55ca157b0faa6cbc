"""Coarse-matching quality and first-round merge ratios against hand-made ground truth."""
from __future__ import annotations

import numpy as np
import pytest

from vcn_plugin.clustering.stats import CosineStats
from vcn_plugin.evaluation.finetune_health import matching_quality, merge_ratios

#: tracks a1, a2, a3 of Ann (shots 0, 1, 1), b1, b2 of Bob (shots 0, 2), x a false detection (shot 2)
IDENTITY = {"a1": "Ann", "a2": "Ann", "a3": "Ann", "b1": "Bob", "b2": "Bob", "x": None}
SHOT = {"a1": 0, "a2": 1, "a3": 1, "b1": 0, "b2": 2, "x": 2}


def test_matching_precision_and_recall_count_cross_shot_pairs_of_one_identity():
    # true cross-shot pairs: a1-a2, a1-a3 (a2-a3 share a shot), b1-b2 -> 3
    q = matching_quality([("a1", "a2"), ("a3", "a2"), ("b1", "a1"), ("x", "b2")], IDENTITY, SHOT)
    assert (q.pairs, q.correct, q.true_pairs, q.found) == (4, 2, 3, 1)
    assert q.precision == pytest.approx(0.5) and q.recall == pytest.approx(1 / 3)
    assert q.labelled_precision == pytest.approx(2 / 3)  # x-b2 has an unlabelled track
    # a pair given twice, in both orders, counts once
    q = matching_quality([("b1", "b2"), ("b2", "b1")], IDENTITY, SHOT)
    assert (q.pairs, q.correct, q.found, q.precision) == (1, 1, 1, 1.0)


def test_no_pairs_and_no_true_pairs_have_no_rates():
    q = matching_quality([], IDENTITY, SHOT)
    assert q.precision is None and q.recall == 0.0 and q.labelled_precision is None
    assert matching_quality([("x", "a1")], IDENTITY, SHOT).labelled_precision is None
    q = matching_quality([], {"a": "Ann", "b": "Bob"}, {"a": 0, "b": 1})
    assert q.recall is None and q.true_pairs == 0


def test_unknown_track_in_a_pair_is_an_error():
    with pytest.raises(ValueError, match="not among"):
        matching_quality([("a1", "zz")], IDENTITY, SHOT)


def test_merge_ratios_follow_the_first_round_rule():
    """Cosine stats of 2-face tracks: thresholds are the within-track distances, the ratio is
    the mean cross distance over the larger threshold (hand-computed)."""
    e = lambda deg: [np.cos(np.radians(deg)), np.sin(np.radians(deg))]  # noqa: E731
    faces = np.array([e(0), e(10), e(20), e(30), e(90), e(100)])
    face_track = np.array([0, 0, 1, 1, 2, 2])
    stats = CosineStats.from_faces(faces, face_track)
    out = merge_ratios(stats, ["Ann", "Ann", "Bob"])
    thr = 1 - np.cos(np.radians(10))
    d01 = np.mean([1 - np.cos(np.radians(a - b)) for a in (0, 10) for b in (20, 30)])
    assert out["same"]["pairs"] == 1 and out["same"]["median"] == pytest.approx(d01 / thr)
    assert out["same"]["below_1"] == 0.0  # 20 degrees apart on average: more than the 10 within
    assert out["different"]["pairs"] == 2 and out["different"]["below_1"] == 0.0
    left_out = merge_ratios(stats, ["Ann", None, "Bob"])
    assert left_out["same"]["pairs"] == 0 and left_out["different"]["pairs"] == 1


def test_matching_bound_is_the_best_gate_at_the_precision():
    """Tracks a1, a2 (Ann, shots 0 / 1), b1, b2 (Bob, shots 0 / 2), c1 (Cy, shot 1). Sorted
    distances: a1-a2 .1 (true), a1-b1 .2 (false), b1-b2 .3 (true), the rest 1.0 (hand-made)."""
    from vcn_plugin.evaluation.finetune_health import matching_bound

    d = np.ones((5, 5))
    for (x, y), v in {(0, 1): 0.1, (0, 2): 0.2, (2, 3): 0.3}.items():
        d[x, y] = d[y, x] = v
    identity, shot = ["Ann", "Ann", "Bob", "Bob", "Cy"], [0, 1, 0, 2, 1]
    strict = matching_bound(d, identity, shot, precision=0.95)
    assert (strict.recall, strict.gate, strict.pairs, strict.true_pairs) == (0.5, 0.1, 1, 2)
    loose = matching_bound(d, identity, shot, precision=0.6)  # 2 of 3 right at gate .3
    assert (loose.recall, loose.gate, loose.pairs) == (1.0, 0.3, 3)
    # the false pair is cannot-linked (seen in one frame): no matcher proposes it
    linked = matching_bound(d, identity, shot, precision=0.95, cannot_link=[(2, 0)])
    assert (linked.recall, linked.gate, linked.pairs) == (1.0, 0.3, 2)


def test_matching_bound_admits_tied_distances_together_and_handles_no_true_pairs():
    from vcn_plugin.evaluation.finetune_health import matching_bound

    d = np.ones((4, 4))
    for (x, y), v in {(0, 1): 0.1, (2, 3): 0.1}.items():  # a true and a false pair at one distance
        d[x, y] = d[y, x] = v
    tied = matching_bound(d, ["Ann", "Ann", "Bob", None], [0, 1, 0, 1], precision=0.95)
    assert (tied.recall, tied.gate, tied.pairs) == (0.0, None, 0)
    # shots as (video, shot) tuples, as a series gives them: Ann's two tracks are in one shot
    same_shot = matching_bound(d, ["Ann", "Ann", "Bob", None], [("v", 0), ("v", 0), ("v", 1), ("w", 0)])
    assert same_shot.recall is None and same_shot.true_pairs == 0
    none = matching_bound(d, ["Ann", "Bob", "Cy", None], [0, 1, 0, 1])
    assert none.recall is None and none.true_pairs == 0
    with pytest.raises(ValueError, match="distances must be"):
        matching_bound(np.ones((3, 3)), ["Ann"] * 4, [0, 1, 2, 3])
