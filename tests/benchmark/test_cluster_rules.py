"""``benchmarks/cluster_rules.py``: the arbiter between two rules."""
from __future__ import annotations

import numpy as np

from tests.scripts import benchmark_script


def test_arbiter_keeps_the_clustering_the_cosine_silhouette_prefers():
    """Two people, two tracks each, one face per track: the rule that groups them by person wins
    over one that pairs them across people, whichever comes first; a tie keeps the first."""
    rules = benchmark_script("cluster_rules")
    ep = {"finetuned": np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]]), "face_track": np.arange(4)}
    by_person, across = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    pick = rules._arbitrated(lambda e: across, lambda e: by_person)
    np.testing.assert_array_equal(pick(ep), by_person)
    keep = rules._arbitrated(lambda e: by_person, lambda e: across)
    np.testing.assert_array_equal(keep(ep), by_person)
    tie = rules._arbitrated(lambda e: across, lambda e: across.copy() + 5)  # the same partition
    assert tie(ep) is not None and tie(ep)[0] == 0  # the first rule's labels
