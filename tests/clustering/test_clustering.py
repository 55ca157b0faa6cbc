"""Tests of vcn_plugin.clustering: bilinear distances, aggregation, constraints, FINCH, baselines."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from vcn_plugin.clustering.aggregation import DEFAULT_NEIGHBOUR_DISTANCE, DEFAULT_START, ROUNDS, STARTS
from vcn_plugin.clustering import (
    METHODS,
    AggregationConfig,
    CosineStats,
    EuclideanStats,
    FactoredLossStats,
    LossMetricStats,
    StudentFactors,
    aggregate,
    best_threshold_hac,
    cluster_names,
    cluster_tracks,
    cooccurring_pairs,
    finch,
    finch_tracks,
    make_stats,
    track_means,
)
from vcn_plugin.clustering.search import best_two_distances, candidate_edges, nearest_neighbours
from vcn_plugin.clustering.stats import center_student_log_probs


#: the paper's merge rule, for the tests of its mechanics (mutual linkage and the
#: first- and mutual-neighbours starts have their own tests)
PAPER = AggregationConfig(linkage="transitive", start="threshold", rounds="threshold")
#: the threshold rounds alone with mutual linkage
MUTUAL_THRESHOLD_START = AggregationConfig(start="threshold", linkage="mutual", rounds="threshold")


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _head_outputs(rng, n_faces: int, k: int, teacher_temp: float = 0.04, student_temp: float = 0.1, ident=None, centres=None):
    """Teacher probabilities and student log-probabilities like the SSL module's."""
    t = rng.normal(size=(n_faces, k))
    s = rng.normal(size=(n_faces, k))
    if ident is not None:
        t += centres[ident]
        s += centres[ident]
    center = t.mean(axis=0)
    return _softmax((t - center) / teacher_temp), _log_softmax(s / student_temp)


def _random_tracks(rng, n_tracks: int, max_faces: int = 5) -> np.ndarray:
    sizes = rng.integers(1, max_faces + 1, size=n_tracks)
    sizes[0] = 1  # at least one single-face track
    return np.repeat(np.arange(n_tracks), sizes)


def _naive(face_track, n_tracks, pair_fn):
    """Mean of pair_fn over face pairs of two tracks, and over different faces inside one track."""
    members = [np.flatnonzero(face_track == t) for t in range(n_tracks)]
    dist = np.array([[np.mean([pair_fn(i, j) for i in a for j in b]) for b in members] for a in members])
    thr = np.array([np.mean([pair_fn(i, j) for i in a for j in a if i != j]) if len(a) > 1 else np.nan for a in members])
    return dist, thr


# -- bilinear form == double loop ------------------------------------------------------


def test_loss_metric_gemm_equals_double_loop():
    rng = np.random.default_rng(0)
    face_track = _random_tracks(rng, 9)
    p, logq = _head_outputs(rng, face_track.size, 64, teacher_temp=0.5)
    stats = LossMetricStats.from_faces(p, logq, face_track)
    directed, thr = _naive(face_track, 9, lambda i, j: -(p[i] @ logq[j]))
    idx = np.arange(9)
    np.testing.assert_allclose(stats.directed_distances(idx, stats, idx), directed, rtol=1e-10)
    np.testing.assert_allclose(stats.distances(idx, stats, idx), (directed + directed.T) / 2, rtol=1e-10)
    np.testing.assert_allclose(stats.pair_thresholds(), thr, rtol=1e-10)
    # symmetric threshold (both directions over ordered pairs) is the same number
    _, thr_rev = _naive(face_track, 9, lambda i, j: -(p[j] @ logq[i]))
    np.testing.assert_allclose(thr_rev, thr, rtol=1e-10)
    pairs_i, pairs_j = rng.integers(0, 9, 20), rng.integers(0, 9, 20)
    np.testing.assert_allclose(stats.pair_distances(pairs_i, stats, pairs_j), ((directed + directed.T) / 2)[pairs_i, pairs_j], rtol=1e-10)


def _factored_head(rng, n_faces: int, k: int, dim: int, ident=None, centres=None, noise: float = 1.0):
    """Teacher probabilities and a factored student (unit bottleneck, unit prototypes) like the DINO head's."""
    z = noise * rng.normal(size=(n_faces, dim))
    if ident is not None:
        z += centres[ident]
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    w = rng.normal(size=(k, dim))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    t = z @ w.T + 0.1 * rng.normal(size=(n_faces, k))
    return _softmax((t - t.mean(axis=0)) / 0.04), StudentFactors(z, w, 0.1)


@pytest.mark.parametrize("center", [False, True])
def test_factored_loss_metric_equals_double_loop(center):
    rng = np.random.default_rng(3)
    face_track = _random_tracks(rng, 9)
    p, student = _factored_head(rng, face_track.size, 64, 8)
    stats = FactoredLossStats.from_faces(p, student, face_track, center_student=center)
    logq = student.log_probs()
    if center:
        logq = center_student_log_probs(logq)
    sym, thr = _naive(face_track, 9, lambda i, j: -(p[i] @ logq[j] + p[j] @ logq[i]) / 2)
    idx = np.arange(9)
    np.testing.assert_allclose(stats.distances(idx, stats, idx), sym, rtol=1e-9)
    np.testing.assert_allclose(stats.pair_thresholds(), thr, rtol=1e-9)
    pairs_i, pairs_j = rng.integers(0, 9, 20), rng.integers(0, 9, 20)
    np.testing.assert_allclose(stats.pair_distances(pairs_i, stats, pairs_j), sym[pairs_i, pairs_j], rtol=1e-9)


def test_factored_and_dense_loss_cluster_identically():
    """Same faces, student factored or dense: same clusters, thresholds and margins (float32 inputs)."""
    rng = np.random.default_rng(4)
    ident = rng.integers(0, 12, 80)
    face_track = np.repeat(np.arange(80), rng.integers(1, 6, 80))
    centres = 3.0 * rng.normal(size=(12, 16))
    p, student = _factored_head(rng, face_track.size, 256, 16, ident=ident[face_track], centres=centres)
    p = p.astype(np.float32)
    student = StudentFactors(student.bottleneck.astype(np.float32), student.prototypes.astype(np.float32), 0.1)
    cannot = np.array([[0, 1], [2, 3]])
    factored = cluster_tracks("loss", face_track, probs=p, student=student, cannot_link=cannot, config=PAPER)
    dense = cluster_tracks("loss", face_track, probs=p, log_probs=student.log_probs(), cannot_link=cannot, config=PAPER)
    assert factored.n_clusters >= 12 and adjusted_rand_score(ident, factored.labels) > 0.9
    assert np.array_equal(factored.labels, dense.labels)
    assert factored.merges_per_iteration == dense.merges_per_iteration
    np.testing.assert_allclose(factored.margins, dense.margins, rtol=1e-4, atol=1e-4)


def test_factored_loss_rejects_bad_inputs():
    rng = np.random.default_rng(5)
    p, student = _factored_head(rng, 6, 32, 8)
    face_track = np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="bottleneck width"):
        StudentFactors(student.bottleneck, student.prototypes[:, :4], 0.1)
    with pytest.raises(ValueError, match="temperature"):
        StudentFactors(student.bottleneck, student.prototypes, 0.0)
    with pytest.raises(ValueError, match="not both"):
        make_stats("loss", face_track, probs=p, log_probs=student.log_probs(), student=student)
    with pytest.raises(ValueError, match="one row per face"):
        FactoredLossStats.from_faces(p, student, face_track[:5])
    with pytest.raises(ValueError, match="prototypes"):
        FactoredLossStats.from_faces(p[:, :16], student, face_track)
    with pytest.raises(ValueError, match="probabilities"):
        FactoredLossStats.from_faces(p * 2, student, face_track)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_embedding_metrics_equal_double_loop(metric):
    rng = np.random.default_rng(1)
    face_track = _random_tracks(rng, 8)
    emb = rng.normal(size=(face_track.size, 16))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    if metric == "cosine":
        pair = lambda i, j: 1.0 - unit[i] @ unit[j]  # noqa: E731
    else:
        pair = lambda i, j: float(np.sum((emb[i] - emb[j]) ** 2))  # noqa: E731
    stats = make_stats(metric, face_track, embeddings=emb)
    dist, thr = _naive(face_track, 8, pair)
    idx = np.arange(8)
    np.testing.assert_allclose(stats.distances(idx, stats, idx), dist, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats.pair_thresholds(), thr, rtol=1e-9)
    np.testing.assert_allclose(stats.self_distance(), np.diag(dist), rtol=1e-9, atol=1e-12)


def test_singleton_threshold_policies():
    rng = np.random.default_rng(2)
    face_track = np.array([0, 1, 1, 2, 2, 2, 3])  # tracks 0 and 3 have one face
    stats = CosineStats.from_faces(rng.normal(size=(7, 8)), face_track)
    pairs = stats.pair_thresholds()
    median = stats.thresholds("median")
    assert np.isnan(pairs[[0, 3]]).all()
    assert median[0] == median[3] == pytest.approx(np.median(pairs[[1, 2]]))
    np.testing.assert_allclose(stats.thresholds("self")[[0, 3]], 0.0, atol=1e-12)  # cos(u, u) = 1
    only_singles = CosineStats.from_faces(rng.normal(size=(3, 8)), np.arange(3))
    np.testing.assert_allclose(only_singles.thresholds("median"), 0.0, atol=1e-12)  # falls back to "self"
    with pytest.raises(ValueError, match="singleton"):
        stats.thresholds("mean")


def test_pruned_search_gives_the_dense_result():
    """The sparse lower bound is a bound, and pruning changes nothing in the clustering."""
    rng = np.random.default_rng(3)
    ident = np.repeat(np.arange(12), 4)  # 12 identities x 4 tracks
    face_track = np.repeat(np.arange(48), 5)
    centres = rng.normal(scale=1.5, size=(12, 512))
    p, logq = _head_outputs(rng, face_track.size, 512, ident=ident[face_track], centres=centres)
    pruned = LossMetricStats.from_faces(p.astype(np.float32), logq.astype(np.float32), face_track, prune=True)
    dense = LossMetricStats.from_faces(p.astype(np.float32), logq.astype(np.float32), face_track, prune=False)
    idx = np.arange(48)
    bound, exact = pruned.lower_bounds(idx, pruned, idx)
    assert not exact and np.all(bound <= dense.distances(idx, dense, idx) + 1e-5)
    for linkage, start, rounds in itertools.product(("transitive", "mutual"), STARTS, ROUNDS):
        config = AggregationConfig(tile_entries=100, linkage=linkage, start=start, rounds=rounds)  # many small tiles
        a, b = aggregate(pruned, config=config), aggregate(dense, config=config)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.merges_per_iteration == b.merges_per_iteration
        np.testing.assert_allclose(a.margins, b.margins, rtol=1e-4)
        if (linkage, start, rounds) == ("transitive", "threshold", "threshold"):  # the paper's rule
            assert adjusted_rand_score(ident, a.labels) == 1.0


def test_candidate_edges_and_margins_match_brute_force():
    rng = np.random.default_rng(4)
    face_track = _random_tracks(rng, 30, max_faces=4)
    stats = CosineStats.from_faces(rng.normal(size=(face_track.size, 6)), face_track)
    thr = stats.thresholds()
    idx = np.arange(30)
    full = stats.distances(idx, stats, idx)
    below = (full < np.maximum(thr[:, None], thr[None, :])) & (idx[:, None] < idx[None, :])
    expected = set(zip(*np.nonzero(below)))
    for tile in (50, 10**6):
        i, j, d = candidate_edges(stats, thr, tile_entries=tile)
        assert set(zip(i.tolist(), j.tolist())) == {(int(a), int(b)) for a, b in expected}
        np.testing.assert_allclose(d, full[i, j])
    rows = np.array([3, 17])
    i, j, _ = candidate_edges(stats, thr, rows=rows, tile_entries=50)
    assert set(zip(i.tolist(), j.tolist())) == {e for e in expected if e[0] in rows or e[1] in rows}
    best, second = best_two_distances(stats, stats, tile_entries=50)
    srt = np.sort(full, axis=1)
    np.testing.assert_allclose(best, srt[:, 0])
    np.testing.assert_allclose(second, srt[:, 1])


def test_merge_rows_inplace_equals_grouped():
    rng = np.random.default_rng(5)
    face_track = _random_tracks(rng, 20)
    p, logq = _head_outputs(rng, face_track.size, 32)
    stats = LossMetricStats.from_faces(p, logq, face_track)
    labels = np.array([0, 1, 0, 2, 3, 1, 4, 5, 5, 6, 7, 8, 9, 9, 9, 10, 11, 12, 13, 0])
    grouped = stats.grouped(labels, 14)
    inplace = LossMetricStats.from_faces(p, logq, face_track).merge_rows_inplace(labels, 14)
    for name in ("counts", "sum_p", "sum_nlogq", "diag"):
        np.testing.assert_allclose(getattr(inplace, name), getattr(grouped, name), rtol=1e-12)
    with pytest.raises(ValueError, match="canonical_groups"):
        LossMetricStats.from_faces(p, logq, face_track).merge_rows_inplace(13 - np.minimum(labels, 13), 14)


# -- aggregation ------------------------------------------------------------------------

# 1-D Euclidean chain: A={0,2}, B={1,3}, C={2,4}: every track's threshold is 4 (mean squared
# distance of its two faces); d(A,B) = d(B,C) = 3 < 4, d(A,C) = 6 > 4.
CHAIN_FACES = np.array([[0.0], [2.0], [1.0], [3.0], [2.0], [4.0]])
CHAIN_TRACKS = np.array([0, 0, 1, 1, 2, 2])


def test_merges_are_transitive_and_stop_at_a_fixpoint():
    stats = EuclideanStats.from_faces(CHAIN_FACES, CHAIN_TRACKS)
    i, j, d = candidate_edges(stats, stats.thresholds())
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 2)]  # no direct A-C edge
    np.testing.assert_allclose(d, [3.0, 3.0])
    result = aggregate(stats, config=PAPER)
    np.testing.assert_array_equal(result.labels, [0, 0, 0])
    assert (result.iterations, result.merges_per_iteration, result.n_clusters) == (1, [2], 1)
    assert result.info["converged"]


def test_mutual_linkage_merges_only_mutual_nearest_clusters():
    """The chain A-B-C (edges A-B and B-C at mean squared distance 3, thresholds 4): transitive
    linkage joins all three; mutual linkage joins A and B (B's nearest, ties to the smaller
    index), then AB (threshold 20/6) and C (threshold 4) are 36/8 = 4.5 apart: two clusters."""
    stats = EuclideanStats.from_faces(CHAIN_FACES, CHAIN_TRACKS)
    result = aggregate(stats, config=MUTUAL_THRESHOLD_START)
    np.testing.assert_array_equal(result.labels, [0, 0, 1])
    assert (result.iterations, result.merges_per_iteration) == (1, [1])
    assert result.info["linkage"] == "mutual" and result.info["converged"]
    # the cannot-link A-B leaves B to C, its other nearest
    guarded = aggregate(stats, cannot_link=[[0, 1]], config=MUTUAL_THRESHOLD_START)
    np.testing.assert_array_equal(guarded.labels, [1, 0, 0])
    with pytest.raises(ValueError, match="linkage"):
        AggregationConfig(linkage="single")


def test_fixpoint_on_random_tracks():
    rng = np.random.default_rng(6)
    ident = np.repeat(np.arange(6), 5)
    face_track = np.repeat(np.arange(30), 4)
    emb = rng.normal(size=(6, 32))[ident[face_track]] + 0.6 * rng.normal(size=(120, 32))
    stats = CosineStats.from_faces(emb, face_track)
    result = aggregate(stats)
    assert sum(result.merges_per_iteration) == 30 - result.n_clusters
    assert len(result.merges_per_iteration) == result.iterations >= 1
    clusters = stats.grouped(result.labels, result.n_clusters)
    edges, _, _ = candidate_edges(clusters, clusters.thresholds())
    assert edges.size == 0  # nothing left to merge
    one_round = aggregate(stats, config=AggregationConfig(max_iterations=1))
    assert one_round.iterations == 1 and one_round.n_clusters >= result.n_clusters
    assert np.all(result.margins >= 0)
    np.testing.assert_array_equal(aggregate(stats).labels, result.labels)  # deterministic


def test_cooccurrence_guard_blocks_merges():
    stats = EuclideanStats.from_faces(CHAIN_FACES, CHAIN_TRACKS)
    # tracks 0 (A) and 2 (C) share frame 12 of one video; track 1 is in another video
    guard = cooccurring_pairs([[10, 11, 12], [12, 13], [12, 14]], track_video=["v1", "v2", "v1"])
    np.testing.assert_array_equal(guard, [[0, 2]])
    result = aggregate(stats, cannot_link=guard)
    # A-B (smaller index first at equal distance) is accepted, B-C would join A and C: refused
    np.testing.assert_array_equal(result.labels, [0, 0, 1])
    assert result.labels[0] != result.labels[2]
    assert result.merges_per_iteration == [1] and result.info["n_cannot_link"] == 1


def test_must_link_and_cannot_link_are_honoured():
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(3, 16)) * 4
    face_track = np.repeat(np.arange(6), 3)
    ident = np.array([0, 0, 1, 1, 2, 2])
    emb = centres[ident[face_track]] + 0.3 * rng.normal(size=(18, 16))
    stats = CosineStats.from_faces(emb, face_track)
    free = aggregate(stats, config=PAPER)
    assert adjusted_rand_score(ident, free.labels) == 1.0
    constrained = aggregate(stats, must_link=[[0, 4]], cannot_link=[[2, 3]], config=PAPER)
    assert constrained.labels[0] == constrained.labels[4]  # user placed them together
    assert constrained.labels[2] != constrained.labels[3]  # user separated them
    assert constrained.labels[0] == constrained.labels[1] == constrained.labels[5]
    with pytest.raises(ValueError, match="must-linked together and cannot-linked"):
        aggregate(stats, must_link=[[0, 1, 2]], cannot_link=[[2, 0]])
    with pytest.raises(ValueError, match="excluded"):
        aggregate(stats, must_link=[[0, 1]], excluded=[1])
    with pytest.raises(ValueError, match="itself"):
        aggregate(stats, cannot_link=[[2, 2]])
    with pytest.raises(ValueError, match="outside"):
        aggregate(stats, cannot_link=[[2, 9]])


def test_excluded_tracks_are_unknown():
    rng = np.random.default_rng(8)
    face_track = np.repeat(np.arange(5), 2)
    stats = CosineStats.from_faces(rng.normal(size=(10, 8)), face_track)
    result = aggregate(stats, excluded=np.array([False, True, False, False, True]))
    assert result.labels[1] == result.labels[4] == -1 and result.n_unknown == 2
    assert np.isnan(result.margins[[1, 4]]).all() and not np.isnan(result.margins[[0, 2, 3]]).any()
    assert result.names[1] == "Unknown" and result.info["n_excluded"] == 2


def test_labels_ordered_by_size_and_named():
    stats = EuclideanStats.from_faces(np.array([[100.0], [101], [0], [1], [0.5], [0.2], [50], [51]]), np.array([0, 0, 1, 1, 2, 2, 3, 3]))
    result = aggregate(stats, config=MUTUAL_THRESHOLD_START)
    np.testing.assert_array_equal(result.labels, [1, 0, 0, 2])  # biggest cluster first, ties by first track
    assert result.names == ["person_02", "person_01", "person_01", "person_03"]
    assert cluster_names(np.array([-1, 0, 120])) == ["Unknown", "person_001", "person_121"]


@pytest.mark.parametrize("method", METHODS)
def test_edge_cases_zero_one_and_all_excluded(method):
    rng = np.random.default_rng(9)
    kwargs = {"threshold": 0.5} if method.startswith("hac") else {}

    def inputs(face_track):
        n = face_track.size
        if method == "loss":
            p, logq = _head_outputs(rng, n, 16)
            return {"probs": p, "log_probs": logq}
        return {"embeddings": rng.normal(size=(n, 8))}

    empty = np.zeros(0, np.int64)
    zero = cluster_tracks(method, empty, **inputs(empty), **kwargs) if method != "loss" else cluster_tracks(
        method, empty, probs=np.zeros((0, 16)), log_probs=np.zeros((0, 16)))
    assert zero.labels.size == 0 and zero.n_clusters == 0
    one_track = np.zeros(3, np.int64)
    one = cluster_tracks(method, one_track, **inputs(one_track), **kwargs)
    np.testing.assert_array_equal(one.labels, [0])
    assert one.n_clusters == 1
    two = np.repeat(np.arange(2), 2)
    none = cluster_tracks(method, two, **inputs(two), excluded=np.array([True, True]), **kwargs)
    np.testing.assert_array_equal(none.labels, [-1, -1])
    assert none.n_clusters == 0 and none.n_unknown == 2 and none.names == ["Unknown", "Unknown"]


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(10)
    p, logq = _head_outputs(rng, 4, 8)
    ft = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="softmax"):
        LossMetricStats.from_faces(p * 2, logq, ft)
    with pytest.raises(ValueError, match="log_softmax"):
        LossMetricStats.from_faces(p, -logq, ft)
    with pytest.raises(ValueError, match="rows but face_track"):
        LossMetricStats.from_faces(p[:3], logq[:3], ft)
    with pytest.raises(ValueError, match="finetuning"):
        cluster_tracks("loss", ft, embeddings=rng.normal(size=(4, 8)))
    with pytest.raises(ValueError, match="unknown method"):
        cluster_tracks("kmeans", ft, embeddings=rng.normal(size=(4, 8)))
    with pytest.raises(ValueError, match="threshold"):
        cluster_tracks("hac-cosine", ft, embeddings=rng.normal(size=(4, 8)))
    with pytest.raises(ValueError, match="constraints"):
        cluster_tracks("finch", ft, embeddings=rng.normal(size=(4, 8)), cannot_link=[[0, 1]])
    with pytest.raises(ValueError, match="no faces"):
        aggregate(CosineStats.from_faces(rng.normal(size=(4, 8)), ft, n_tracks=3))
    with pytest.raises(ValueError, match="all zeros"):
        CosineStats.from_faces(np.zeros((4, 8)), ft)


# -- FINCH and baselines -------------------------------------------------------------


def _angles(deg):
    rad = np.deg2rad(deg)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_finch_textbook_example():
    """Unit vectors at 0, 10, 25, 90, 100, 180, 185, 200 degrees (hand-computed).

    First neighbours: 0->10, 10->0, 25->10, 90->100, 100->90, 180->185, 185->180,
    200->185: partition 1 = {0,10,25}, {90,100}, {180,185,200}. Their means lie at
    about 11.6, 95 and 188 degrees; first neighbours 11.6->95, 95->11.6 (83 < 93
    degrees), 188->95: partition 2 = one cluster.
    """
    x = _angles([0, 10, 25, 90, 100, 180, 185, 200])
    result = finch(x)
    assert result.n_clusters == [3, 1]
    np.testing.assert_array_equal(result.partitions[0], [0, 0, 0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(result.partitions[1], np.zeros(8))
    # required-number mode: from 3 clusters merge the most similar first-neighbour pair (11.6 and 95 degrees)
    two = finch(x, n_clusters=2)
    np.testing.assert_array_equal(two.partitions[-1], [0, 0, 0, 0, 0, 1, 1, 1])
    tracks = finch_tracks(x)
    np.testing.assert_array_equal(tracks.labels, [0, 0, 0, 2, 2, 1, 1, 1])  # ids by size, ties by first track
    assert finch_tracks(x, partition="last").n_clusters == 3  # coarsest with > 1 cluster
    assert finch_tracks(x, partition=1).n_clusters == 1
    with pytest.raises(ValueError, match="partition"):
        finch_tracks(x, partition="middle")


def _separated(rng, n_ids=5, tracks_per_id=4, faces=3, dim=32, noise=0.1):
    ident = np.repeat(np.arange(n_ids), tracks_per_id)
    face_track = np.repeat(np.arange(ident.size), faces)
    emb = rng.normal(size=(n_ids, dim))[ident[face_track]] + noise * rng.normal(size=(face_track.size, dim))
    return ident, face_track, emb


@pytest.mark.parametrize("method", ["hac-cosine", "hac-euclidean", "hdbscan", "finch"])
def test_baselines_recover_well_separated_tracks(method):
    ident, face_track, emb = _separated(np.random.default_rng(11))
    result = cluster_tracks(method, face_track, embeddings=emb, threshold=0.3 if method == "hac-cosine" else 2.0)
    assert adjusted_rand_score(ident, result.labels) == 1.0
    assert result.n_clusters == 5 and result.method == method


def test_hdbscan_noise_policy():
    rng = np.random.default_rng(12)
    ident, face_track, emb = _separated(rng)
    emb = np.concatenate([emb, 5 * rng.normal(size=(1, 32))])  # one far-away single-face track
    face_track = np.concatenate([face_track, [20]])
    singleton = cluster_tracks("hdbscan", face_track, embeddings=emb)
    unknown = cluster_tracks("hdbscan", face_track, embeddings=emb, hdbscan_noise="unknown")
    assert singleton.info["n_noise"] >= 1 and singleton.labels.min() == 0
    assert unknown.labels[20] == -1 and unknown.n_unknown == unknown.info["n_noise"]


def test_best_threshold_hac_oracle():
    rng = np.random.default_rng(13)
    ident, face_track, emb = _separated(rng, noise=0.5)
    means = track_means(emb, face_track)
    oracle = best_threshold_hac(means, ident, adjusted_rand_score, metric="cosine")
    assert oracle.oracle and oracle.result.info["oracle"]
    assert oracle.score == pytest.approx(adjusted_rand_score(ident, oracle.result.labels))
    worse = [adjusted_rand_score(ident, cluster_tracks("hac-cosine", face_track, embeddings=emb, threshold=t).labels) for t in (0.01, 0.5, 1.5)]
    assert oracle.score >= max(worse)


# -- real data -----------------------------------------------------------------------


LFW_IDENTITIES = ("lfw_Ariel_Sharon", "lfw_Arnold_Schwarzenegger", "lfw_Donald_Rumsfeld", "lfw_Vladimir_Putin")


@pytest.fixture(scope="module")
def dlib_tracks(shared_data: Path):
    """dlib descriptors of 4 LFW identities x 2 pseudo-tracks of 3 faces (faces with exactly one detection)."""
    dlib = pytest.importorskip("dlib")
    models = pytest.importorskip("face_recognition_models")
    detector = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    recognizer = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    embeddings, identity = [], []
    for k, name in enumerate(LFW_IDENTITIES):
        found = 0
        for path in sorted((shared_data / "faces" / name).glob("*.jpg")):
            image = dlib.load_rgb_image(str(path))
            boxes = detector(image, 0)
            if len(boxes) != 1:
                continue
            embeddings.append(np.array(recognizer.compute_face_descriptor(image, landmarks(image, boxes[0]))))
            identity.append(k)
            found += 1
            if found == 6:
                break
        assert found == 6, f"{name}: only {found} single-face images"
    face_track = np.repeat(np.arange(8), 3)
    return np.array(embeddings), face_track, np.repeat(np.arange(4), 2)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_real_faces_tracks_of_one_identity_cluster_together(dlib_tracks, metric):
    embeddings, face_track, track_identity = dlib_tracks
    result = cluster_tracks(metric, face_track, embeddings=embeddings)
    assert adjusted_rand_score(track_identity, result.labels) == 1.0
    assert result.n_clusters == 4 and result.iterations >= 1
    # the co-occurrence guard keeps two tracks of one person apart when told they co-occur
    guarded = cluster_tracks(metric, face_track, embeddings=embeddings, cannot_link=[[0, 1]])
    assert guarded.labels[0] != guarded.labels[1]


def test_centring_the_student_equals_centring_its_logits():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(12, 16))
    from vcn_plugin.clustering.stats import center_student_log_probs

    centred = center_student_log_probs(_log_softmax(s / 0.1))
    assert np.allclose(centred, _log_softmax((s - s.mean(axis=0)) / 0.1), atol=1e-10)


def test_a_student_mode_shared_by_all_faces_does_not_merge_everything():
    """Four people, two tracks each; every face's student keeps a mode on prototypes 0-2 and the
    first person's teacher favours them too. Raw, that track pulls every track into one cluster;
    with the student centred (``make_stats``' default) the other people stay apart."""
    rng = np.random.default_rng(0)
    k, people, faces = 64, 4, 4
    centres = rng.normal(scale=0.5, size=(people, k))
    person = np.repeat(np.arange(people * 2) // 2, faces)
    face_track = np.repeat(np.arange(people * 2), faces)
    t = centres[person] + 0.1 * rng.normal(size=(len(person), k))
    s = centres[person] + 0.1 * rng.normal(size=(len(person), k))
    s[:, :3] += 4.0
    t[person == 0, :3] += 2.0
    probs, log_probs = _softmax((t - t.mean(axis=0)) / 0.04), _log_softmax(s / 0.1)
    raw = aggregate(make_stats("loss", face_track, probs=probs, log_probs=log_probs, center_student=False), config=PAPER)
    centred = aggregate(make_stats("loss", face_track, probs=probs, log_probs=log_probs), config=PAPER)
    assert raw.n_clusters == 1
    assert centred.n_clusters == 4 and len(set(centred.labels[4:])) == 3 and centred.labels[4] == centred.labels[5]


def test_concatenated_chunks_equal_one_pass():
    """Stats built chunk by chunk and stacked equal the stats of all faces at once (any stats class)."""
    rng = np.random.default_rng(6)
    face_track = np.repeat(np.arange(10), 3)
    p, student = _factored_head(rng, face_track.size, 32, 8)
    whole = FactoredLossStats.from_faces(p, student, face_track)
    half = face_track < 5
    first = FactoredLossStats.from_faces(p[half], StudentFactors(student.bottleneck[half], student.prototypes, 0.1), face_track[half])
    second = FactoredLossStats.from_faces(p[~half], StudentFactors(student.bottleneck[~half], student.prototypes, 0.1), face_track[~half] - 5)
    stacked = FactoredLossStats.concatenate([first, second])
    for name in ("counts",) + FactoredLossStats._fields:
        np.testing.assert_allclose(getattr(stacked, name), getattr(whole, name), rtol=1e-12)
    with pytest.raises(ValueError, match="FactoredLossStats"):
        FactoredLossStats.concatenate([first, make_stats("cosine", face_track[:3], embeddings=rng.normal(size=(3, 4)))])


@pytest.mark.parametrize("linkage", ["mutual", "transitive"])
def test_carried_edges_give_the_full_re_search_result(monkeypatch, linkage):
    """Searching only pairs that touch a changed cluster, and carrying the other accepted edges,
    is exact: the same merges, round by round, as searching every pair again each round."""
    from vcn_plugin.clustering import aggregation

    rng = np.random.default_rng(11)
    ident = np.repeat(np.arange(15), 6)
    face_track = np.repeat(np.arange(90), 4)
    emb = rng.normal(size=(15, 16))[ident[face_track]] + 0.9 * rng.normal(size=(360, 16))
    cannot = [[0, 1], [6, 7], [30, 31]]
    configs = [AggregationConfig(linkage=linkage, start=start) for start in STARTS]
    runs = [(c, k) for c in (None, cannot) for k in configs]
    incremental = [aggregate(CosineStats.from_faces(emb, face_track), cannot_link=c, config=k) for c, k in runs]
    full_search = aggregation.candidate_edges
    monkeypatch.setattr(aggregation, "candidate_edges", lambda s, t, rows, tiles: full_search(s, t, None, tiles))
    monkeypatch.setattr(aggregation, "_carry_edges", lambda *args: aggregation._NO_EDGES)
    full = [aggregate(CosineStats.from_faces(emb, face_track), cannot_link=c, config=k) for c, k in runs]
    for a, b in zip(incremental, full):
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.merges_per_iteration == b.merges_per_iteration
    if linkage == "mutual":  # several rounds, so carrying was exercised
        assert max(r.iterations for r in incremental) >= 3


#: four tracks of two faces on a line: A and B are 1.02 apart (mean squared distance) with
#: thresholds 0.04, C is 81.02 from B and 100.02 from A, D is 400 from C
LINE_FACES = np.array([[0.0], [0.2], [1.0], [1.2], [10.0], [10.2], [30.0], [30.2]])
LINE_TRACKS = np.repeat(np.arange(4), 2)


def test_nearest_neighbours_skip_forbidden_pairs_and_match_brute_force():
    stats = EuclideanStats.from_faces(LINE_FACES, LINE_TRACKS)
    nn, dist = nearest_neighbours(stats)
    np.testing.assert_array_equal(nn, [1, 0, 1, 2])
    np.testing.assert_allclose(dist, [1.02, 1.02, 81.02, 400.02])
    nn, dist = nearest_neighbours(stats, forbidden=np.array([[0, 1]]))  # A and B seen together
    np.testing.assert_array_equal(nn, [2, 2, 1, 2])
    # every other row forbidden: no neighbour
    nn, dist = nearest_neighbours(stats, forbidden=np.array([[3, 0], [3, 1], [3, 2]]))
    assert nn[3] == -1 and dist[3] == np.inf
    # the pruned loss metric, in many small tiles, gives the brute-force neighbours
    rng = np.random.default_rng(11)
    ident = np.repeat(np.arange(10), 3)
    face_track = np.repeat(np.arange(30), 4)
    p, logq = _head_outputs(rng, face_track.size, 512, ident=ident[face_track], centres=rng.normal(scale=1.5, size=(10, 512)))
    pruned = LossMetricStats.from_faces(p, logq, face_track, prune=True)
    forbidden = np.array([[0, 1], [5, 4], [12, 29]])
    nn, dist = nearest_neighbours(pruned, forbidden, tile_entries=90)
    full = LossMetricStats.from_faces(p, logq, face_track, prune=False)
    dense = full.distances(np.arange(30), full, np.arange(30))
    np.fill_diagonal(dense, np.inf)
    dense[forbidden[:, 0], forbidden[:, 1]] = dense[forbidden[:, 1], forbidden[:, 0]] = np.inf
    np.testing.assert_array_equal(nn, dense.argmin(axis=1))
    np.testing.assert_allclose(dist, dense.min(axis=1), rtol=1e-6)
    # the exact path (upper-triangle tiles folded into rows and columns) gives the same, in 4 x 4 tiles
    nn, dist = nearest_neighbours(full, forbidden, tile_entries=90)
    np.testing.assert_array_equal(nn, dense.argmin(axis=1))
    np.testing.assert_allclose(dist, dense.min(axis=1), rtol=1e-6)
    # ties go to the smaller index, also across 1 x 1 tiles: B is 1 from A and from C
    line = EuclideanStats.from_faces(np.array([[0.0], [1.0], [2.0]]), np.arange(3))
    for tile_entries in (1, 1 << 24):
        nn, dist = nearest_neighbours(line, tile_entries=tile_entries)
        np.testing.assert_array_equal(nn, [1, 0, 1])


def test_mutual_neighbours_start_merges_mutual_nearest_tracks_before_the_thresholds():
    """A and B are 1.02 apart, far above their thresholds (0.04): the threshold rounds never merge
    them, the mutual-neighbours start does (each is the other's nearest track). C's nearest is B,
    D's nearest is C: not mutual, so they stay. The merged AB has threshold 8.32 / 12 = 0.69 over
    its 4 faces, far below its distance to C (about 90): nothing more merges."""
    stats = EuclideanStats.from_faces(LINE_FACES, LINE_TRACKS)
    paper = aggregate(stats, config=MUTUAL_THRESHOLD_START)
    np.testing.assert_array_equal(paper.labels, [0, 1, 2, 3])
    mutual = AggregationConfig(start="mutual-neighbours", rounds="threshold")
    result = aggregate(stats, config=mutual)
    assert result.info["start"] == "mutual-neighbours"
    np.testing.assert_array_equal(result.labels, [0, 0, 1, 2])
    assert result.info["start_merges"] == 1 and result.merges_per_iteration == [1]
    # seen together, A and B cannot be neighbours: B and C are now each other's nearest
    guarded = aggregate(stats, cannot_link=[[0, 1]], config=mutual)
    np.testing.assert_array_equal(guarded.labels, [1, 0, 0, 2])
    # excluded tracks take no part: without B, A and C are mutual nearest
    excluded = aggregate(stats, excluded=[1], config=mutual)
    np.testing.assert_array_equal(excluded.labels, [0, -1, 0, 1])
    with pytest.raises(ValueError, match="start"):
        AggregationConfig(start="first")


def test_first_neighbours_start_links_every_track_to_its_nearest_track():
    """FINCH's first partition as round zero: A-B (mutual), C -> B and D -> C are all first-neighbour
    edges, so the four tracks form one chain and one cluster whatever their thresholds. A cannot-link
    pair is never an edge, and a union that would join a cannot-link pair is refused: with C and D
    seen together, D's nearest allowed track is B, and D stays apart because C joined B first."""
    stats = EuclideanStats.from_faces(LINE_FACES, LINE_TRACKS)
    config = AggregationConfig(start="first-neighbours")
    result = aggregate(stats, config=config)
    np.testing.assert_array_equal(result.labels, [0, 0, 0, 0])
    assert result.info["start"] == "first-neighbours" and result.info["start_merges"] == 3
    guarded = aggregate(stats, cannot_link=[[2, 3]], config=config)
    np.testing.assert_array_equal(guarded.labels, [0, 0, 0, 1])


def test_agreeing_start_keeps_the_links_inside_one_cluster_of_the_other_view():
    """On the line, the first-neighbour links are A-B, B-C and C-D (one chain). In a second view with
    A at 0, B at 1, C at 50 and D at 60, the first partition is {A, B} and {C, D}: the start keeps A-B
    and C-D and refuses B-C. With A at 0, B at 2, C at 50 and D at 1 the second view links A-D, B-D
    and C-B: no loss link is one of them, but all four tracks are one cluster of that view, so every
    link is kept. With the view itself as its own agreement, or ``agreement=False``, nothing is
    refused."""
    stats = EuclideanStats.from_faces(LINE_FACES, LINE_TRACKS)

    def view(a: float, b: float, c: float, d: float) -> EuclideanStats:
        return EuclideanStats.from_faces(np.repeat([[a], [b], [c], [d]], 2, axis=0), LINE_TRACKS)

    start_only = AggregationConfig(start="first-neighbours", max_iterations=1, view_rounds=False)
    agreed = aggregate(stats, agreement=view(0, 1, 50, 60), config=start_only)
    np.testing.assert_array_equal(agreed.labels, [0, 0, 1, 1])
    assert agreed.info["agreement"] and agreed.info["start_links_refused"] == 1
    chained = aggregate(stats, agreement=view(0, 2, 50, 1), config=start_only)
    np.testing.assert_array_equal(chained.labels, [0, 0, 0, 0])
    assert chained.info["start_links_refused"] == 0
    plain = aggregate(stats, config=start_only)
    np.testing.assert_array_equal(plain.labels, [0, 0, 0, 0])
    assert not plain.info["agreement"] and plain.info["start_links_refused"] == 0
    itself = aggregate(stats, agreement=stats, config=start_only)
    np.testing.assert_array_equal(itself.labels, plain.labels)
    off = aggregate(stats, agreement=view(0, 1, 50, 60),
                    config=AggregationConfig(start="first-neighbours", max_iterations=1, agreement=False))
    np.testing.assert_array_equal(off.labels, plain.labels)
    # both views start from the must-link groups: six tracks, C and D must-linked. The loss links
    # A-B, {C, D}-E and E-F; the second view (A 0, B 1, C 50, D 52, E 2, F 53) has the clusters
    # {A, B, E} and {{C, D}, F}, so only A-B is kept
    six = np.repeat(np.arange(6), 2)
    loss_six = EuclideanStats.from_faces(np.array([[0.0], [0.2], [1.0], [1.2], [10.0], [10.2], [30.0], [30.2],
                                                   [31.0], [31.2], [70.0], [70.2]]), six)
    view_six = EuclideanStats.from_faces(np.repeat([[0.0], [1.0], [50.0], [52.0], [2.0], [53.0]], 2, axis=0), six)
    grouped = aggregate(loss_six, must_link=[[2, 3]], agreement=view_six, config=start_only)
    np.testing.assert_array_equal(grouped.labels, [0, 0, 1, 1, 2, 3])
    assert grouped.info["start_links_refused"] == 2
    np.testing.assert_array_equal(aggregate(loss_six, must_link=[[2, 3]], config=start_only).labels, [1, 1, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="agreement has 3 tracks"):
        aggregate(stats, agreement=stats.subset(np.arange(3)))


def test_loss_clustering_agrees_with_the_embeddings_cosine_when_given():
    """``cluster_tracks("loss", embeddings=...)`` is the aggregation with the embeddings' cosine as the
    agreement view; without embeddings, or with ``agreement=False``, it is the plain aggregation."""
    rng = np.random.default_rng(3)
    ident = np.repeat(np.arange(4), 3)
    face_track = np.repeat(np.arange(12), 4)
    centres = rng.normal(size=(4, 16)) * 1.5
    probs, student = _factored_head(rng, face_track.size, 32, 16, ident[face_track], centres, noise=2.0)
    emb = centres[ident[face_track]] + rng.normal(size=(face_track.size, 16))
    loss = make_stats("loss", face_track, probs=probs, student=student)
    both = cluster_tracks("loss", face_track, probs=probs, student=student, embeddings=emb)
    expected = aggregate(loss, agreement=CosineStats.from_faces(emb, face_track))
    np.testing.assert_array_equal(both.labels, expected.labels)
    alone = cluster_tracks("loss", face_track, probs=probs, student=student)
    off = cluster_tracks("loss", face_track, probs=probs, student=student, embeddings=emb,
                         config=AggregationConfig(agreement=False))
    np.testing.assert_array_equal(off.labels, alone.labels)
    np.testing.assert_array_equal(alone.labels, aggregate(loss).labels)
    first = AggregationConfig(start="first-neighbours", max_iterations=1)
    assert cluster_tracks("loss", face_track, probs=probs, student=student, embeddings=emb, config=first).info["agreement"]
    assert not cluster_tracks("loss", face_track, probs=probs, student=student, config=first).info["agreement"]


#: a tight track H (two faces at 0: threshold 0), A at 2 and 4 (mean 3, threshold 4) and a wide
#: track B at 3 and 13 (mean 8, threshold 100). Mean squared distances: d(A, H) = 10, d(A, B) = 51,
#: d(B, H) = 89. Excess d - (thr_a + thr_b) / 2: A-H 10 - 2 = 8, A-B 51 - 52 = -1, B-H 89 - 50 = 39.
HUB_FACES = np.array([[0.0], [0.0], [2.0], [4.0], [3.0], [13.0]])
HUB_TRACKS = np.repeat(np.arange(3), 2)


def test_nearest_neighbours_by_excess_subtract_both_offsets():
    stats = EuclideanStats.from_faces(HUB_FACES, HUB_TRACKS)
    np.testing.assert_allclose(stats.thresholds(), [0.0, 4.0, 100.0])
    nn, dist = nearest_neighbours(stats)
    np.testing.assert_array_equal(nn, [1, 0, 1])  # the tight track is A's nearest by raw distance
    np.testing.assert_allclose(dist, [10.0, 10.0, 51.0])
    nn, dist = nearest_neighbours(stats, offsets=stats.thresholds())
    np.testing.assert_array_equal(nn, [1, 2, 1])  # by excess, A's nearest is B
    np.testing.assert_allclose(dist, [8.0, -1.0, -1.0])
    with pytest.raises(ValueError, match="offsets"):
        nearest_neighbours(stats, offsets=np.zeros(2))
    # the pruned loss metric (inexact bounds, row tiles) and the exact path give the brute-force excess
    rng = np.random.default_rng(12)
    ident = np.repeat(np.arange(10), 3)
    face_track = np.repeat(np.arange(30), 4)
    p, logq = _head_outputs(rng, face_track.size, 512, ident=ident[face_track], centres=rng.normal(scale=1.5, size=(10, 512)))
    forbidden = np.array([[0, 1], [5, 4], [12, 29]])
    full = LossMetricStats.from_faces(p, logq, face_track, prune=False)
    thr = full.thresholds()
    dense = full.distances(np.arange(30), full, np.arange(30)) - (thr[:, None] + thr[None, :]) / 2
    np.fill_diagonal(dense, np.inf)
    dense[forbidden[:, 0], forbidden[:, 1]] = dense[forbidden[:, 1], forbidden[:, 0]] = np.inf
    assert not np.array_equal(dense.argmin(axis=1), nearest_neighbours(full, forbidden)[0])  # excess changes some
    for stats in (LossMetricStats.from_faces(p, logq, face_track, prune=True), full):
        nn, dist = nearest_neighbours(stats, forbidden, tile_entries=90, offsets=thr)
        np.testing.assert_array_equal(nn, dense.argmin(axis=1))
        np.testing.assert_allclose(dist, dense.min(axis=1), rtol=1e-6, atol=1e-9)


def test_first_neighbours_start_by_excess_follows_the_wide_track_not_the_hub():
    """With H and B seen together, the first-neighbour edges are A-H and A-B either way, and the
    union goes in increasing distance: by raw distance A-H (10) joins first and refuses B; by
    excess A-B (-1) joins first and refuses H. The threshold rounds add nothing (H and AB cannot
    link by excess, HA and B by raw distance)."""
    stats = EuclideanStats.from_faces(HUB_FACES, HUB_TRACKS)
    assert DEFAULT_NEIGHBOUR_DISTANCE == "auto" and AggregationConfig().linkage == "transitive"
    excess = aggregate(stats, cannot_link=[[0, 2]], config=AggregationConfig(neighbour_distance="excess"))
    np.testing.assert_array_equal(excess.labels, [1, 0, 0])
    assert excess.info["neighbour_distance"] == "excess" and excess.info["start_merges"] == 1
    raw = aggregate(stats, cannot_link=[[0, 2]], config=AggregationConfig(neighbour_distance="raw"))
    np.testing.assert_array_equal(raw.labels, [0, 0, 1])
    auto = aggregate(stats, cannot_link=[[0, 2]])  # "auto": raw for an embedding metric
    np.testing.assert_array_equal(auto.labels, raw.labels)
    assert auto.info["neighbour_distance"] == "raw"
    with pytest.raises(ValueError, match="neighbour_distance"):
        AggregationConfig(neighbour_distance="cosine")


def test_mutual_linkage_picks_the_nearest_accepted_cluster_by_excess():
    """Threshold rounds, mutual linkage. A (faces 0, 1; threshold 1), B (1.2, 1.4; .04), C (-0.5,
    1.5; 4): d(A, B) = 0.9, d(A, C) = 1.25, d(B, C) = 1.65, every pair under the larger threshold.
    By raw distance A and B are each other's nearest: A-B merges. By excess (.38, -1.25, -.37) A and
    C are: A-C merges, and B stays apart in that round."""
    faces = np.array([[0.0], [1.0], [1.2], [1.4], [-0.5], [1.5]])
    stats = EuclideanStats.from_faces(faces, np.repeat(np.arange(3), 2))
    thr = stats.thresholds()
    d = stats.distances(np.arange(3), stats, np.arange(3))
    assert d[0, 1] < d[0, 2] and d[0, 1] - (thr[0] + thr[1]) / 2 > d[0, 2] - (thr[0] + thr[2]) / 2
    raw = aggregate(stats, config=AggregationConfig(start="threshold", linkage="mutual", neighbour_distance="raw", rounds="threshold",
                                                    max_iterations=1))
    excess = aggregate(stats, config=AggregationConfig(start="threshold", linkage="mutual", neighbour_distance="excess", rounds="threshold",
                                                       max_iterations=1))
    np.testing.assert_array_equal(raw.labels, [0, 0, 1])
    np.testing.assert_array_equal(excess.labels, [0, 1, 0])


def test_auto_neighbours_are_the_excess_for_the_loss_metric():
    """The loss between two tracks minus their mean threshold is half the symmetric KL divergence
    of their predictions, up to each track's own face pairs: with one face per track exactly
    ``(p_a - p_b) . (log q_a - log q_b) / 2`` (the singleton thresholds are the self-losses). "auto"
    picks neighbours by it for the loss metric, and that changes the start's partition here."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 32)) * 2
    p = np.exp(logits - logits.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    logq = np.log(p)
    stats = LossMetricStats.from_faces(p.astype(np.float32), logq.astype(np.float32), np.arange(6), prune=False)
    thr = stats.thresholds(singleton="self")
    d = stats.distances(np.arange(6), stats, np.arange(6))
    jeffreys = ((p[:, None, :] - p[None, :, :]) * (logq[:, None, :] - logq[None, :, :])).sum(-1) / 2
    np.testing.assert_allclose(d - (thr[:, None] + thr[None, :]) / 2, jeffreys, atol=1e-4)
    # tracks of four faces whose teachers are nearly one-hot on noisy prototypes: excess and raw
    # neighbours give different start partitions, and "auto" gives the excess one
    ident = np.repeat(np.arange(10), 3)
    face_track = np.repeat(np.arange(30), 4)
    rng = np.random.default_rng(18)
    p, logq = _head_outputs(rng, face_track.size, 512, ident=ident[face_track], centres=rng.normal(scale=0.5, size=(10, 512)))
    stats = LossMetricStats.from_faces(p, logq, face_track, prune=True)
    start_only = {"start": "first-neighbours", "max_iterations": 1}
    auto = aggregate(stats, config=AggregationConfig(**start_only))
    excess = aggregate(stats, config=AggregationConfig(neighbour_distance="excess", **start_only))
    raw = aggregate(stats, config=AggregationConfig(neighbour_distance="raw", **start_only))
    assert auto.info["neighbour_distance"] == "excess" and raw.info["neighbour_distance"] == "raw"
    np.testing.assert_array_equal(auto.labels, excess.labels)
    assert adjusted_rand_score(raw.labels, excess.labels) < 1


def test_threshold_start_with_transitive_linkage_ignores_the_neighbour_distance():
    """The paper's rules have no neighbour choice: accepted edges merge in raw-distance order under
    cannot-link pairs whatever ``neighbour_distance`` says (the chain A-B-C with A and C seen
    together: A-B and B-C tie at 3; the smaller index joins first, so C stays apart)."""
    stats = EuclideanStats.from_faces(CHAIN_FACES, CHAIN_TRACKS)
    results = [aggregate(stats, cannot_link=[[0, 2]], config=AggregationConfig(start="threshold", neighbour_distance=nd,
                                                                                                 rounds="threshold"))
               for nd in ("raw", "excess")]
    np.testing.assert_array_equal(results[0].labels, results[1].labels)
    np.testing.assert_array_equal(results[0].labels, [0, 0, 1])
    assert results[1].info["neighbour_distance"] == "none"
