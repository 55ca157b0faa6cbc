"""Tests of vcn_plugin.clustering.silhouette: the silhouette rounds after the start."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from vcn_plugin.clustering import (
    AggregationConfig,
    CosineStats,
    EuclideanStats,
    FactoredLossStats,
    LossMetricStats,
    StudentFactors,
    aggregate,
)
from vcn_plugin.clustering.aggregation import canonical_groups
from vcn_plugin.clustering.silhouette import silhouette_rounds
from tests.scripts import benchmark_script


def _loss_faces(rng: np.random.Generator, ident: np.ndarray, k: int = 64, dim: int = 8):
    """Teacher probabilities and a factored student around one centre per identity."""
    centres = rng.normal(size=(ident.max() + 1, dim))
    z = centres[ident] + 0.6 * rng.normal(size=(ident.size, dim))
    w = rng.normal(size=(k, dim))
    logits = z @ w.T / 0.04 / 8
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), StudentFactors(z, w, 0.1)


def _all_stats(rng: np.random.Generator):
    ident = np.repeat(np.arange(5), 12)
    face_track = np.repeat(np.arange(20), 3)
    x = rng.normal(size=(5, 6))[ident] + 0.5 * rng.normal(size=(60, 6))
    p, student = _loss_faces(rng, ident)
    return face_track, [
        CosineStats.from_faces(x, face_track),
        EuclideanStats.from_faces(x, face_track),
        LossMetricStats.from_faces(p, student.log_probs(), face_track),
        FactoredLossStats.from_faces(p, student, face_track),
    ]


def test_per_track_means_give_mean_distances_to_the_tracks_of_a_group():
    """Grouped per-track means: the distance from a track to a group is the mean of its distances
    to the group's tracks, for every metric (all are means over face pairs, bilinear in the means)."""
    rng = np.random.default_rng(0)
    _, every = _all_stats(rng)
    groups = rng.integers(0, 4, 20)
    groups[:4] = np.arange(4)
    for stats in every:
        idx = np.arange(20)
        full = stats.distances(idx, stats, idx).astype(np.float64)
        grouped = stats.per_track_means().grouped(groups, 4)
        expected = np.stack([full[:, groups == g].mean(axis=1) for g in range(4)], axis=1)
        np.testing.assert_allclose(stats.distances(idx, grouped, np.arange(4)), expected, rtol=1e-5, atol=1e-6)


def _dense(stats, offsets: np.ndarray | None) -> np.ndarray:
    """The shifted track-by-track matrix the rounds work on, with a zero diagonal."""
    idx = np.arange(len(stats))
    d = stats.distances(idx, stats, idx).astype(np.float64)
    o = np.zeros(len(stats)) if offsets is None else offsets
    d = d - (o[:, None] + o[None, :]) / 2
    d -= np.min(stats.self_distance() - o)
    np.fill_diagonal(d, 0.0)
    return d


@pytest.mark.parametrize("which", [0, 1, 2, 3])
def test_silhouette_rounds_match_sklearn_on_the_track_matrix(which: int):
    """Same clusters as the sklearn reference on the dense matrix (``cluster_rules.silhouette_merges``),
    for every metric, from the first-neighbours start and from single tracks, with and without
    offsets and cannot-links."""
    rng = np.random.default_rng(1 + which)
    _, every = _all_stats(rng)
    stats = every[which]
    cannot = np.array([[0, 5], [7, 13]])
    offsets = stats.thresholds() if which >= 2 else None
    start = aggregate(stats, cannot_link=cannot, config=AggregationConfig(start="first-neighbours", max_iterations=1, rounds="threshold")).labels
    for labels in (start, np.arange(len(stats))):
        g, m = canonical_groups(labels)
        got, n, merges, _ = silhouette_rounds(stats, g, m, cannot, offsets)
        expected = canonical_groups(benchmark_script("cluster_rules").silhouette_merges(_dense(stats, offsets), g, cannot))[0]
        np.testing.assert_array_equal(canonical_groups(got)[0], expected)
        assert n == expected.max() + 1 and sum(merges) == m - n
        assert all(len({got[a], got[b]}) == 2 for a, b in cannot)


def test_silhouette_rounds_on_a_line():
    """One face per track on a line (squared distances, self-distance 0 so no shift). Two close pairs
    far from a third merge into one cluster; a cannot-link pair stops it; three pairs far apart
    stay apart; the last two clusters never merge."""
    def stats_of(*xs: float) -> EuclideanStats:
        return EuclideanStats.from_faces(np.asarray(xs)[:, None], np.arange(len(xs)))

    pairs = np.array([0, 0, 1, 1, 2, 2])
    none = np.zeros((0, 2), np.int64)
    close = stats_of(0, 0.1, 1.0, 1.1, 10, 10.1)
    np.testing.assert_array_equal(silhouette_rounds(close, pairs, 3, none)[0], [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(silhouette_rounds(close, pairs, 3, np.array([[1, 3]]))[0], pairs)
    apart = stats_of(0, 0.1, 5, 5.1, 10, 10.1)
    np.testing.assert_array_equal(silhouette_rounds(apart, pairs, 3, none)[0], pairs)
    two = stats_of(0, 0.1, 0.2, 0.3)
    np.testing.assert_array_equal(silhouette_rounds(two, np.array([0, 0, 1, 1]), 2, none)[0], [0, 0, 1, 1])


def test_aggregate_runs_silhouette_rounds_by_default_and_threshold_rounds_on_request():
    """The default follows the start with silhouette rounds (recorded in ``info``); "threshold" is
    the paper's rounds; the choice is validated. Cosine, four tracks of three faces for each of five
    people: after the first-neighbours start one person is still in two clusters whose distance
    is above both thresholds; the threshold rounds leave them apart, the silhouette rounds join them."""
    rng = np.random.default_rng(7)
    _, every = _all_stats(rng)
    ident = np.repeat(np.arange(5), 4)
    stats = every[0]
    default = aggregate(stats)
    paper = aggregate(stats, config=AggregationConfig(start="first-neighbours", rounds="threshold"))
    assert default.info["rounds"] == "silhouette" and paper.info["rounds"] == "threshold"
    assert paper.n_clusters == 6 and paper.merges_per_iteration == [14]
    assert adjusted_rand_score(ident, default.labels) == 1.0 and default.merges_per_iteration == [14, 1]
    with pytest.raises(ValueError, match="rounds"):
        AggregationConfig(rounds="fixpoint")


def test_smallest_per_row_is_argpartition_sorted_with_ties_to_the_smaller_column():
    """The k smallest entries of each row in increasing order, ties to the smaller column, and
    those entries set to inf (what the silhouette state and the margins' best-two search use)."""
    from vcn_plugin.clustering.search import smallest_per_row

    rng = np.random.default_rng(3)
    values = rng.integers(0, 6, size=(50, 9)).astype(np.float64)  # many ties
    original = values.copy()
    idx, vals = smallest_per_row(values, 3)
    expected = np.argsort(original, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(vals, np.take_along_axis(original, expected, axis=1))
    assert np.all(np.isinf(np.take_along_axis(values, idx, axis=1)))
    assert np.isfinite(values).sum() == values.size - 150


def test_smallest_per_row_with_spent_rows_and_bad_k():
    """A row with fewer finite entries than k gets its first unchosen columns, never one twice;
    k above the number of columns is refused."""
    from vcn_plugin.clustering.search import smallest_per_row

    idx, vals = smallest_per_row(np.array([[1.0, np.inf, np.inf], [np.inf, np.inf, 2.0]]), 3)
    np.testing.assert_array_equal(idx, [[0, 1, 2], [2, 0, 1]])
    np.testing.assert_array_equal(vals[:, 0], [1.0, 2.0])
    with pytest.raises(ValueError, match="exceeds"):
        smallest_per_row(np.array([[3.0, 1.0]]), 3)


@pytest.mark.parametrize("shape", [(1, 5), (7, 3), (300, 129), (200, 64)])
def test_column_argmin_equals_numpys_with_ties_and_infinities(shape):
    """The nearest-track search's column argmin (a running minimum over row blocks) is numpy's
    argmin down the columns, ties to the first row, on rows in random, decreasing and tied order."""
    from vcn_plugin.clustering.search import _argmin_columns

    rng = np.random.default_rng(shape[0])
    values = rng.integers(0, 4, size=shape).astype(np.float64)  # many ties
    values[rng.random(shape) < 0.2] = np.inf
    values[:, 0] = np.inf  # an all-inf column: row 0, as numpy
    for v in (values, np.sort(values, axis=0)[::-1].copy(), rng.random(shape)):
        assert np.array_equal(_argmin_columns(v, block=16), np.argmin(v, axis=0))
        assert np.array_equal(_argmin_columns(v), np.argmin(v, axis=0))


def test_silhouette_rounds_refuse_bad_clusters_and_handle_negative_distances():
    """Empty or out-of-range clusters are refused. Loss tracks whose cross losses sit below the
    smallest self-loss (shifted distances < 0) are scored as distance 0, not as silhouettes > 1."""
    stats = EuclideanStats.from_faces(np.arange(6.0)[:, None], np.arange(6))
    none = np.zeros((0, 2), np.int64)
    with pytest.raises(ValueError, match="none empty"):
        silhouette_rounds(stats, np.array([0, 0, 2, 2, 3, 3]), 4, none)
    p = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    logq = np.log(np.array([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]]))
    loss = LossMetricStats.from_faces(p, logq, np.arange(4))
    got, n, _, _ = silhouette_rounds(loss, np.arange(4), 4, none)
    assert n >= 2 and got.shape == (4,)
    from vcn_plugin.clustering.silhouette import silhouette_values

    np.testing.assert_allclose(silhouette_values(np.array([-1.0, 1.0]), np.array([1.0, 2.0]), np.zeros(2, bool)), [1.0, 0.5])


@pytest.mark.parametrize("which", [0, 3])
def test_pair_gains_and_mean_silhouette_match_sklearn(which: int):
    """Every candidate merge's gain (also where one cluster is in several candidates) is the change
    of sklearn's summed silhouette on the dense matrix, and ``mean_silhouette`` is sklearn's score."""
    from sklearn.metrics import silhouette_score

    from vcn_plugin.clustering.silhouette import _Clusters, _shifted, _state, mean_silhouette, pair_gains

    rng = np.random.default_rng(11 + which)
    _, every = _all_stats(rng)
    stats = every[which]
    offsets = stats.thresholds() if which >= 2 else None
    cluster = np.array([0, 0, 1, 2, 2, 2, 3, 4, 4, 5, 6, 6, 7, 7, 7, 8, 9, 9, 10, 11])
    dense = _dense(stats, offsets)
    base = silhouette_score(dense, cluster, metric="precomputed")
    assert mean_silhouette(stats, cluster, 12, offsets) == pytest.approx(base, abs=1e-9)
    half, self_d = _shifted(stats, offsets)
    groups = _Clusters.of(stats.per_track_means(), cluster, 12, half)
    state = _state(stats, groups, half, self_d, 1 << 20)
    pa, pb = np.array([0, 0, 1, 2, 5, 10]), np.array([1, 2, 2, 9, 6, 11])
    gains = pair_gains(state, stats, groups, pa, pb, half)
    for k, (a, b) in enumerate(zip(pa, pb)):
        merged = np.where(cluster == b, a, cluster)
        expected = (silhouette_score(dense, merged, metric="precomputed") - base) * len(stats)
        assert gains[k] == pytest.approx(expected, abs=1e-6)


def test_best_start_keeps_the_start_with_the_higher_mean_silhouette():
    """start="best" runs the aggregation from the first-neighbours start, from the same start keeping
    only the links an agreement view agrees with (when one is given), and from single tracks, and
    keeps the result with the higher mean silhouette (recorded in ``info``): it equals the best of
    the runs (clusters and margins), for every metric, under either rounds, with and without
    must-link groups, excluded tracks and an agreement view."""
    from vcn_plugin.clustering.aggregation import AGREEING_START, BEST_OF_STARTS, result_silhouette

    rng = np.random.default_rng(5)
    face_track, every = _all_stats(rng)
    view = CosineStats.from_faces(rng.normal(size=(face_track.size, 6)), face_track)  # a view that disagrees
    constraints = [dict(cannot_link=[[0, 5]]),  # every track its own cluster: the runs share one table
                   dict(cannot_link=[[0, 5]], must_link=[[1, 2]], excluded=[19])]  # no table
    cases = [(s, kw, r, v) for s in every for kw in constraints for r in ("silhouette", "threshold") for v in (None, view)]
    for stats, kw, rounds, agreement in cases:
        config = AggregationConfig(start="best", rounds=rounds, view_rounds=False)
        best = aggregate(stats, config=config, agreement=agreement, **kw)
        names = [s for s in BEST_OF_STARTS if s != AGREEING_START or agreement is not None]
        runs = {s: aggregate(stats, config=AggregationConfig(start="first-neighbours" if s == AGREEING_START else s,
                                                             rounds=rounds, view_rounds=False),
                             agreement=agreement if s == AGREEING_START else None, **kw) for s in names}
        if "excluded" in kw:
            assert best.labels[19] == -1 and np.isnan(best.margins[19]) and best.labels[1] == best.labels[2]
        np.testing.assert_allclose(best.margins, runs[best.info["start_chosen"]].margins, rtol=1e-9)
        scores = {s: result_silhouette(stats, r, config) for s, r in runs.items()}
        chosen = max(names, key=lambda s: (scores[s], -names.index(s)))
        assert best.info["start"] == "best" and best.info["start_chosen"] == chosen
        assert best.info["start_silhouettes"] == pytest.approx(scores)
        np.testing.assert_array_equal(best.labels, runs[chosen].labels)
    # a view that refuses links makes the agreeing start differ from the plain one somewhere
    refused = [aggregate(s, config=AggregationConfig(start="first-neighbours", max_iterations=1), agreement=view)
               .info["start_links_refused"] for s in every]
    assert max(refused) > 0


def _many_tracks(rng: np.random.Generator, n_tracks: int = 240, n_ids: int = 40):
    """More tracks than a round's kept nearest clusters cover: rows drop out of their lists,
    are searched again, and merged clusters gather their parts' lists."""
    ident = rng.integers(0, n_ids, n_tracks)
    ident[:n_ids] = np.arange(n_ids)
    face_track = np.repeat(np.arange(n_tracks), 3)
    p, student = _loss_faces(rng, ident[face_track])
    x = rng.normal(size=(n_ids, 6))[ident[face_track]] + 0.5 * rng.normal(size=(face_track.size, 6))
    return [CosineStats.from_faces(x, face_track), FactoredLossStats.from_faces(p, student, face_track)]


@pytest.mark.parametrize("which", [0, 1])
def test_silhouette_rounds_keep_nearest_lists_exactly_on_many_tracks(which: int):
    """On 240 tracks, with small tiles, the rounds that carry each track's and cluster's nearest
    clusters from round to round give the sklearn reference's clusters, from single tracks (with
    and without the shared nearest-track table) and from the first-neighbours start."""
    from vcn_plugin.clustering.search import nearest_table
    from vcn_plugin.clustering.silhouette import NEIGHBOURS_KEPT

    stats = _many_tracks(np.random.default_rng(40 + which))[which]
    n = len(stats)
    cannot = np.array([[0, 1], [2, 3], [5, 40]])
    offsets = stats.thresholds() if which else None
    dense = _dense(stats, offsets)
    reference = benchmark_script("cluster_rules").silhouette_merges
    table = nearest_table(stats, NEIGHBOURS_KEPT, 1 << 12, offsets)
    start = aggregate(stats, cannot_link=cannot, config=AggregationConfig(start="first-neighbours", max_iterations=1,
                                                                          rounds="threshold")).labels
    for labels, shared in ((np.arange(n), None), (np.arange(n), table), (start, None)):
        g, m = canonical_groups(labels)
        got, k, merges, final = silhouette_rounds(stats, g, m, cannot, offsets, tile_entries=1 << 12, table=shared)
        expected = canonical_groups(reference(dense, g, cannot))[0]
        assert k < m and (len(merges) > 2 or m < n)
        np.testing.assert_array_equal(canonical_groups(got)[0], expected)
        if final is not None:
            from sklearn.metrics import silhouette_score

            assert final == pytest.approx(silhouette_score(dense, got, metric="precomputed"), abs=1e-9)


def test_nearest_table_and_neighbours_from_it():
    """``nearest_table`` lists each row's nearest rows in order (ties: the smaller index), as the
    dense matrix does; ``nearest_neighbours`` from it equals the search without it, also where a
    row's whole list is forbidden."""
    from vcn_plugin.clustering.search import nearest_neighbours, nearest_table

    stats = _many_tracks(np.random.default_rng(3), n_tracks=60, n_ids=10)[1]
    n = len(stats)
    offsets = stats.thresholds()
    idx = np.arange(n)
    dense = stats.distances(idx, stats, idx).astype(np.float64) - (offsets[:, None] + offsets[None, :]) / 2
    np.fill_diagonal(dense, np.inf)
    near, dist = nearest_table(stats, 4, 1 << 10, offsets)
    np.testing.assert_array_equal(near, np.argsort(dense, axis=1, kind="stable")[:, :4])
    np.testing.assert_allclose(dist, np.sort(dense, axis=1)[:, :4], rtol=1e-5)
    forbidden = np.concatenate([np.stack([np.zeros(4, np.int64), near[0]], axis=1), [[7, near[7, 0]]]])
    want, want_d = nearest_neighbours(stats, forbidden, 1 << 10, offsets)
    got, got_d = nearest_neighbours(stats, forbidden, 1 << 10, offsets, table=(near, dist))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-5)
    assert got[0] not in near[0] and got[7] == near[7, 1]


def test_a_second_opinion_only_refuses_merges():
    """``cluster_rules.silhouette_merges(second=...)``: on a line, 0, 0.1 | 1, 1.1 | 10, 10.1 merge
    the two near pairs; a second view in which the first two pairs sit far apart (0, 0.1 | 9, 9.1 |
    10, 10.1) refuses that merge and lets no other through; the view itself as its second opinion
    changes nothing."""
    merges = benchmark_script("cluster_rules").silhouette_merges

    def dense(*xs: float) -> np.ndarray:
        x = np.asarray(xs)
        return np.abs(x[:, None] - x[None, :])

    pairs, none = np.array([0, 0, 1, 1, 2, 2]), np.zeros((0, 2), np.int64)
    first = dense(0, 0.1, 1.0, 1.1, 10, 10.1)
    joined = canonical_groups(merges(first, pairs, none))[0]
    np.testing.assert_array_equal(joined, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(canonical_groups(merges(first, pairs, none, first))[0], joined)
    refused = merges(first, pairs, none, dense(0, 0.1, 9.0, 9.1, 10, 10.1))
    np.testing.assert_array_equal(canonical_groups(refused)[0], pairs)


def test_first_neighbour_start_keeps_the_links_both_views_agree_on():
    """``cluster_rules.first_neighbour_start``: on a line 0, 0.1, 0.3 | 5, 5.2, track 2's nearest is
    track 1 and tracks 3-4 link; a second view that puts track 2 nearest to track 4 drops the 1-2
    link (it agrees with neither), and a cannot-link pair is never linked."""
    start = benchmark_script("cluster_rules").first_neighbour_start

    def dense(*xs: float) -> np.ndarray:
        x = np.asarray(xs)
        return np.abs(x[:, None] - x[None, :])

    none = np.zeros((0, 2), np.int64)
    first = dense(0, 0.1, 0.3, 5, 5.2)
    np.testing.assert_array_equal(canonical_groups(start(first, none))[0], [0, 0, 0, 1, 1])
    other = dense(0, 0.1, 5.3, 5, 5.2)
    np.testing.assert_array_equal(canonical_groups(start(first, none, other))[0], [0, 0, 1, 2, 2])
    np.testing.assert_array_equal(canonical_groups(start(first, np.array([[0, 1]])))[0], [0, 1, 1, 2, 2])


def test_view_rounds_continue_on_the_agreement_view_as_sklearn_does():
    """After the loss's rounds, silhouette rounds on the agreement view (``view_rounds``, the
    default) merge from the clusters the loss stopped at: the clusters equal sklearn's reference
    (``cluster_rules.silhouette_merges``) on the view's dense cosine matrix, unshifted; a cannot-link
    pair and excluded tracks are kept as in every round; ``view_rounds=False``, ``agreement=False``
    or no view leave the loss's clusters as they were. Five people of four tracks, each person in
    two looks of two tracks: the loss's centres are per look, so it keeps a person's looks apart;
    the view's are per person, and it joins them."""
    rng = np.random.default_rng(9)
    ident = np.repeat(np.arange(5), 12)
    look = 2 * ident + np.tile(np.repeat([0, 1], 6), 5)
    face_track = np.repeat(np.arange(20), 3)
    p, student = _loss_faces(rng, look)
    loss = FactoredLossStats.from_faces(p, student, face_track)
    x = rng.normal(size=(5, 16))[ident] + 0.3 * rng.normal(size=(60, 16))
    view = CosineStats.from_faces(x, face_track)
    rules = benchmark_script("cluster_rules")
    paper = AggregationConfig()
    for kw in (dict(), dict(cannot_link=[[0, 2]], excluded=[19])):
        before = aggregate(loss, agreement=view, config=replace(paper, view_rounds=False), **kw)
        after = aggregate(loss, agreement=view, config=paper, **kw)
        act = np.flatnonzero(before.labels >= 0)
        local = np.full(20, -1)
        local[act] = np.arange(act.size)
        cannot = local[np.asarray(kw.get("cannot_link", np.zeros((0, 2), int)))].reshape(-1, 2)
        expected = rules.silhouette_merges(rules._cosine_matrix(x, face_track, act), before.labels[act], cannot)
        np.testing.assert_array_equal(canonical_groups(after.labels[act])[0], canonical_groups(expected)[0])
        assert after.n_clusters < before.n_clusters
        assert after.info["view_merges"] == before.n_clusters - after.n_clusters
        assert all(after.labels[a] != after.labels[b] for a, b in kw.get("cannot_link", []))
        if "excluded" in kw:
            assert after.labels[19] == -1 and np.isnan(after.margins[19])
        assert adjusted_rand_score(ident[::3][act], after.labels[act]) > adjusted_rand_score(ident[::3][act], before.labels[act])
    plain = aggregate(loss, config=replace(paper, view_rounds=False)).labels
    assert adjusted_rand_score(ident[::3], aggregate(loss, agreement=view).labels) > adjusted_rand_score(ident[::3], plain)
    for off in (dict(config=replace(paper, agreement=False), agreement=view), dict(config=paper)):
        np.testing.assert_array_equal(aggregate(loss, **off).labels, plain)
