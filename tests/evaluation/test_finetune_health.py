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
    # a pair given twice, in both orders, counts once
    q = matching_quality([("b1", "b2"), ("b2", "b1")], IDENTITY, SHOT)
    assert (q.pairs, q.correct, q.found, q.precision) == (1, 1, 1, 1.0)


def test_no_pairs_and_no_true_pairs_have_no_rates():
    q = matching_quality([], IDENTITY, SHOT)
    assert q.precision is None and q.recall == 0.0
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
