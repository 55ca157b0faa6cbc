"""Clustering metrics against values computed by hand from small contingency tables."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from vcn_plugin.evaluation.metrics import ClusteringMetrics, evaluate_clustering

SCORES = ("wcp", "accuracy", "pairwise_precision", "pairwise_recall", "pairwise_f",
          "bcubed_precision", "bcubed_recall", "bcubed_f", "nmi", "cluster_ratio")


def f(p: float, r: float) -> float:
    return 2 * p * r / (p + r)


def test_three_identities_three_clusters():
    # contingency (rows A B C, cols 1 2 3):  A: 2 1 0 | B: 0 2 0 | C: 0 0 1     N = 6
    m = evaluate_clustering(list("AAABBC"), [1, 1, 2, 2, 2, 3])
    assert m.wcp == pytest.approx(5 / 6)  # column maxima 2 + 2 + 1
    assert m.accuracy == pytest.approx(5 / 6)  # A-1, B-2, C-3
    # pairs: TP = C2(2) + C2(2) = 2; predicted pairs C2(2)+C2(3) = 4; GT pairs C2(3)+C2(2) = 4
    assert m.pairwise_precision == pytest.approx(2 / 4)
    assert m.pairwise_recall == pytest.approx(2 / 4)
    assert m.pairwise_f == pytest.approx(0.5)
    # BCubed precision: (1/6)(2^2/2 + 1^2/3 + 2^2/3 + 1^2/1); recall: (1/6)(2^2/3 + 1^2/3 + 2^2/2 + 1)
    assert m.bcubed_precision == pytest.approx((2 + 1 / 3 + 4 / 3 + 1) / 6)
    assert m.bcubed_recall == pytest.approx((4 / 3 + 1 / 3 + 2 + 1) / 6)
    # NMI by hand: MI over the four non-empty cells, entropies of (3,2,1)/6 and (2,3,1)/6
    mi = (1 / 3) * math.log(2) + (1 / 6) * math.log(2 / 3) + (1 / 3) * math.log(2) + (1 / 6) * math.log(6)
    h = -sum(p * math.log(p) for p in (1 / 2, 1 / 3, 1 / 6))
    assert m.nmi == pytest.approx(mi / h)
    assert (m.n_clusters, m.n_identities, m.cluster_ratio) == (3, 3, 1.0)
    assert (m.n_tracks, m.n_evaluated, m.n_unknown, m.coverage) == (6, 6, 0, 1.0)


GT_U = list("AAABBCC")
PRED_U = ["1", "1", "Unknown", "1", "2", "Unknown", "Unknown"]


def test_unknown_excluded():
    # kept tracks: A->1, A->1, B->1, B->2; table A: 2 0 | B: 1 1   N = 4; C is gone entirely
    m = evaluate_clustering(GT_U, PRED_U, unknown_mode="exclude")
    assert (m.n_tracks, m.n_evaluated, m.n_unknown) == (7, 4, 3)
    assert m.coverage == pytest.approx(4 / 7)
    assert (m.n_clusters, m.n_identities, m.cluster_ratio) == (2, 2, 1.0)
    assert m.wcp == pytest.approx(3 / 4)
    assert m.accuracy == pytest.approx(3 / 4)
    assert m.pairwise_precision == pytest.approx(1 / 3)  # TP 1 of C2(3)+C2(1) = 3
    assert m.pairwise_recall == pytest.approx(1 / 2)  # of C2(2)+C2(2) = 2
    assert m.pairwise_f == pytest.approx(2 / 5)
    assert m.bcubed_precision == pytest.approx((4 / 3 + 1 / 3 + 1) / 4)
    assert m.bcubed_recall == pytest.approx((4 / 2 + 1 / 2 + 1 / 2) / 4)
    assert m.bcubed_f == pytest.approx(12 / 17)
    by_id = {b.identity: b for b in m.per_identity}
    assert (by_id["A"].tracks, by_id["A"].unknown, by_id["A"].purity) == (3, 1, 1.0)
    assert by_id["A"].clusters == {"1": 2}
    assert (by_id["B"].purity, by_id["B"].dominant_cluster, by_id["B"].clusters) == (0.5, "1", {"1": 1, "2": 1})
    assert (by_id["C"].tracks, by_id["C"].unknown, by_id["C"].purity, by_id["C"].dominant_cluster) == (2, 2, 0.0, None)


def test_unknown_as_singletons():
    # clusters 1, 2, U#2, U#5, U#6; table A: 2 0 1 0 0 | B: 1 1 0 0 0 | C: 0 0 0 1 1   N = 7
    m = evaluate_clustering(GT_U, PRED_U, unknown_mode="singleton")
    assert (m.n_evaluated, m.n_unknown, m.n_clusters, m.n_identities) == (7, 3, 5, 3)
    assert m.coverage == pytest.approx(4 / 7)
    assert m.cluster_ratio == pytest.approx(5 / 3)
    assert m.wcp == pytest.approx(6 / 7)
    assert m.accuracy == pytest.approx(4 / 7)  # A-1 (2), B-2 (1), C-U#5 (1)
    assert m.pairwise_precision == pytest.approx(1 / 3)  # TP 1 of C2(3)
    assert m.pairwise_recall == pytest.approx(1 / 5)  # of C2(3)+C2(2)+C2(2)
    assert m.pairwise_f == pytest.approx(1 / 4)
    assert m.bcubed_precision == pytest.approx((4 / 3 + 1 + 1 / 3 + 1 + 1 + 1) / 7)
    assert m.bcubed_recall == pytest.approx((4 / 3 + 1 / 3 + 4 * 1 / 2) / 7)
    by_id = {b.identity: b for b in m.per_identity}
    assert (by_id["C"].purity, by_id["C"].dominant_cluster, by_id["C"].clusters) == (0.5, "Unknown#5", {})
    assert by_id["A"].purity == pytest.approx(2 / 3)


def test_one_cluster():
    m = evaluate_clustering(list("AABC"), [7, 7, 7, 7])
    assert m.wcp == pytest.approx(1 / 2)
    assert m.accuracy == pytest.approx(1 / 2)
    assert m.pairwise_precision == pytest.approx(1 / 6)  # TP C2(2) of C2(4)
    assert m.pairwise_recall == 1.0
    assert m.bcubed_precision == pytest.approx((4 / 4 + 1 / 4 + 1 / 4) / 4)
    assert m.bcubed_recall == 1.0
    assert m.nmi == 0.0
    assert m.cluster_ratio == pytest.approx(1 / 3)


def test_one_cluster_one_identity_is_perfect():
    m = evaluate_clustering(["A"] * 3, ["x"] * 3)
    assert all(getattr(m, name) == pytest.approx(1.0) for name in SCORES)


def test_all_singletons():
    m = evaluate_clustering(list("AABC"), [1, 2, 3, 4])
    assert m.wcp == 1.0
    assert m.accuracy == pytest.approx(3 / 4)  # only one of A's two singletons can be matched
    assert m.pairwise_precision == 1.0  # no predicted pair: nothing wrongly merged
    assert m.pairwise_recall == 0.0
    assert m.pairwise_f == 0.0
    assert m.bcubed_precision == 1.0
    assert m.bcubed_recall == pytest.approx((1 / 2 + 1 / 2 + 1 + 1) / 4)
    # H(gt) = 1.5 ln 2, H(pred) = ln 4, MI = H(gt)  ->  NMI = 1.5 / ((1.5 + 2) / 2)
    assert m.nmi == pytest.approx(6 / 7)
    assert m.cluster_ratio == pytest.approx(4 / 3)


def test_identities_with_single_tracks_have_perfect_pairwise_recall():
    m = evaluate_clustering(["A", "B"], [1, 2])
    assert (m.pairwise_precision, m.pairwise_recall, m.bcubed_f, m.accuracy) == (1.0, 1.0, 1.0, 1.0)


def test_extra_clusters_are_errors():
    m = evaluate_clustering(list("AAAA"), [1, 1, 2, 3])
    assert m.wcp == 1.0
    assert m.accuracy == pytest.approx(2 / 4)
    assert m.cluster_ratio == 3.0


def test_perfect_clustering_with_renamed_labels():
    m = evaluate_clustering(list("AABBBC"), ["z", "z", "y", "y", "y", "x"])
    assert all(getattr(m, name) == pytest.approx(1.0) for name in SCORES)


@pytest.mark.parametrize("mode", ["exclude", "singleton"])
def test_empty_input(mode):
    m = evaluate_clustering([], [], unknown_mode=mode)
    assert (m.n_tracks, m.n_evaluated, m.n_clusters, m.n_identities, m.coverage) == (0, 0, 0, 0, 0.0)
    assert all(getattr(m, name) == 0.0 for name in SCORES)
    assert m.per_identity == []


def test_all_unknown_excluded_scores_zero():
    m = evaluate_clustering(list("AAB"), ["Unknown"] * 3, unknown_mode="exclude")
    assert (m.n_tracks, m.n_evaluated, m.n_unknown, m.coverage) == (3, 0, 3, 0.0)
    assert all(getattr(m, name) == 0.0 for name in SCORES)
    assert [(b.identity, b.tracks, b.unknown, b.purity) for b in m.per_identity] == [("A", 2, 2, 0.0), ("B", 1, 1, 0.0)]


def test_all_unknown_as_singletons_equals_all_singletons():
    unknown = evaluate_clustering(list("AABC"), ["?"] * 4, unknown_label="?", unknown_mode="singleton")
    singletons = evaluate_clustering(list("AABC"), [1, 2, 3, 4])
    assert unknown.coverage == 0.0 and unknown.n_unknown == 4
    for name in SCORES:
        assert getattr(unknown, name) == pytest.approx(getattr(singletons, name))


def test_nmi_matches_sklearn_arithmetic():
    rng = np.random.default_rng(0)
    gt, pred = rng.integers(0, 5, 60), rng.integers(0, 7, 60)
    m = evaluate_clustering(gt, pred)
    assert m.nmi == pytest.approx(normalized_mutual_info_score(gt, pred, average_method="arithmetic"))
    assert m.nmi != pytest.approx(normalized_mutual_info_score(gt, pred, average_method="max"))


def test_weights_equal_repeating_each_track():
    gt, pred, faces = list("AAABBC"), [1, 1, 2, 2, 2, 3], [3, 1, 2, 1, 4, 2]
    weighted = evaluate_clustering(gt, pred, weights=faces)
    repeated = evaluate_clustering(np.repeat(gt, faces), np.repeat(pred, faces))
    for name in SCORES:
        assert getattr(weighted, name) == pytest.approx(getattr(repeated, name)), name
    # by hand: table A: 4 2 0 | B: 0 5 0 | C: 0 0 2, N = 13 -> WCP = (4 + 5 + 2) / 13
    assert weighted.wcp == pytest.approx(11 / 13)
    assert weighted.weighted and weighted.n_tracks == 6  # counts stay track counts
    assert {b.identity: b.clusters for b in weighted.per_identity}["A"] == {"1": 2, "2": 1}


def test_weighted_coverage_counts_faces():
    m = evaluate_clustering(list("AAB"), ["1", "Unknown", "2"], weights=[1, 6, 1])
    assert m.coverage == pytest.approx(2 / 8)


def test_int_and_str_labels_are_not_merged():
    m = evaluate_clustering(list("AAAA"), [1, "1", 1, "1"])
    assert m.n_clusters == 2


def test_to_dict_is_json_ready():
    m = evaluate_clustering(GT_U, PRED_U, unknown_mode="singleton")
    d = json.loads(json.dumps(m.to_dict()))
    assert d["wcp"] == pytest.approx(6 / 7)
    assert d["per_identity"][2]["dominant_cluster"] == "Unknown#5"
    assert isinstance(m, ClusteringMetrics)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(gt=["A", "B"], pred=[1]), "one entry per track"),
        (dict(gt=["A"], pred=[1], unknown_mode="drop"), "unknown_mode"),
        (dict(gt=["A", "B"], pred=[1, 2], weights=[1]), "one entry per track"),
        (dict(gt=["A", "B"], pred=[1, 2], weights=[1, 0]), "positive integers"),
        (dict(gt=["A", "B"], pred=[1, 2], weights=[1, 1.5]), "positive integers"),
    ],
)
def test_bad_input_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_clustering(**kwargs)
