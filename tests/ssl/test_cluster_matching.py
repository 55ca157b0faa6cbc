"""Coarse matching by the teacher's clustering: pairs of a partition, and the trainer's rounds."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.ssl.test_finetune import make_backbone, tracks  # noqa: F401 (fixture)
from vcn_plugin.ssl import FinetuneConfig, finetune
from vcn_plugin.ssl.cluster_matching import pairs_of_clusters


def test_every_two_tracks_of_a_cluster_pair_and_unknown_never():
    keys = ["a", "b", "c", "d", "e", "f"]
    result = pairs_of_clusters(keys, np.array([0, 1, 0, -1, 1, 0]))
    assert result.pairs == [("a", "c"), ("a", "f"), ("b", "e"), ("c", "f")]
    assert result.num_tracks == 6
    assert pairs_of_clusters(keys, np.arange(6)).pairs == []
    with pytest.raises(ValueError, match="one label per track"):
        pairs_of_clusters(keys, np.zeros(5, np.int64))


def test_cluster_rounds_match_whole_clusters_and_respect_cannot_link(tracks):  # noqa: F811
    """matching="clusters": each round's pairs are closed under chaining (every two tracks of a
    cluster), a cannot-link pair is never among them, and "gaussian+clusters" is the union of
    the two rules (same seed, so round 1 sees the same teacher)."""
    cannot = [(tracks[0][0], tracks[1][0])]
    pairs = {}
    for rule in ("gaussian", "clusters", "gaussian+clusters"):
        _, result = finetune(make_backbone(), tracks, cannot_link=cannot,
                             config=FinetuneConfig.tiny(device="cpu", matching=rule, rounds=2))  # fmt: skip
        pairs[rule] = [{frozenset(p) for p in round_pairs} for round_pairs in result.match_pairs]
    assert pairs["gaussian+clusters"][0] == pairs["gaussian"][0] | pairs["clusters"][0]
    for matched in pairs["clusters"]:
        assert frozenset(cannot[0]) not in matched
        linked = {k for p in matched for k in p}
        for a, b, c in itertools.permutations(linked, 3):
            if {a, b} in matched and {b, c} in matched:
                assert frozenset((a, c)) in matched
    assert any(pairs["clusters"]), "the six tracks of three people never formed a cluster"


def test_meet_of_partitions_keeps_only_what_every_partition_groups():
    from vcn_plugin.ssl.cluster_matching import meet_of_partitions

    loss = np.array([0, 0, 0, 1, 1, -1, 2])
    cosine = np.array([5, 5, 7, 7, 7, 5, 2])
    np.testing.assert_array_equal(meet_of_partitions(loss, cosine), [0, 0, 1, 2, 2, -1, 3])
    np.testing.assert_array_equal(meet_of_partitions(loss, loss), [0, 0, 0, 1, 1, -1, 2])
    first_seen = meet_of_partitions(np.array([1, 1, 0]), np.array([0, 0, 0]))
    np.testing.assert_array_equal(first_seen, [0, 0, 1])  # first seen, first numbered
    with pytest.raises(ValueError, match="same tracks"):
        meet_of_partitions(loss, cosine[:-1])


def test_agreed_cluster_rounds_are_pairs_that_both_views_cluster(tracks):  # noqa: F811
    """matching="agreed-clusters": every round's pairs are closed under chaining (the pairs of one
    partition), never hold a cannot-link pair, and join some of the three people's tracks; a
    misspelt rule is refused."""
    cannot = [(tracks[0][0], tracks[1][0])]
    _, result = finetune(make_backbone(), tracks, cannot_link=cannot,
                         config=FinetuneConfig.tiny(device="cpu", matching="agreed-clusters", rounds=2))  # fmt: skip
    assert len(result.match_pairs) == 2
    for round_pairs in result.match_pairs:
        matched = {frozenset(p) for p in round_pairs}
        assert frozenset(cannot[0]) not in matched
        linked = {k for p in matched for k in p}
        for a, b, c in itertools.permutations(linked, 3):
            if {a, b} in matched and {b, c} in matched:
                assert frozenset((a, c)) in matched
    assert any(result.match_pairs), "the six tracks of three people were never matched"
    with pytest.raises(ValueError, match="matching"):
        FinetuneConfig(matching="agreed")
