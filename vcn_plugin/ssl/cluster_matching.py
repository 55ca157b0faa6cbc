"""Coarse matching by the parameter-free clustering of the current teacher (a study option).

Every round, the tracks are clustered with the product's own rule
(:func:`vcn_plugin.clustering.cluster_tracks`, method "loss", default
:class:`~vcn_plugin.clustering.AggregationConfig`) on the teacher as it stands, and every two
tracks of one cluster become a matched pair. Nothing is tuned: the clustering has no
parameter, and cannot-link pairs (two tracks seen in one frame) never share a cluster.

Why it was tried: the per-track Gaussians and mutual neighbours rank pairs by one distance, and
on the hard look-alike episode no distance gate reaches precision .95 at a recall above .02
(``matching_bound``), whereas the final clustering's cross-shot pairs there have precision .90
and recall .77 among the labelled tracks (``finetune_study.py`` features, seed 0): the
silhouette sees each track against every cluster, not one pair at a time.

What it gave (``benchmarks/finetune_study.py --points clusters``, finetune seeds 0, 1 and 2 on
the 10-episode suite): recall .93-.97 of the true cross-shot pairs in the last round, against
.42-.43 for the Gaussians, at precision .62-.69 (.62-.64); most wrong pairs hold an unlabelled
extra or a false detection, which the silhouette joins to its nearest cast member. The loss
metric does not gain (suite .925 against .926, the 7 held-out episodes .937 against .949),
because each round's clustering repeats the one after the head stage: the rounds confirm it
instead of correcting it. So it stays a study point.

``matching="agreed-clusters"`` keeps only the pairs that two views agree on: one cluster of the
loss clustering above (which itself starts from the backbone's agreement,
:data:`~vcn_plugin.clustering.aggregation.DEFAULT_AGREEMENT`) and one cluster of the same rule on
the teacher backbone's track cosine (:func:`meet_of_partitions`). Why: on the saved finetunes of
the 10-episode suite (seeds 0, 1 and 2), the two final clusterings agree on every cross-shot
pair of two labelled tracks of the hard episode (precision 1.00 among labelled pairs, against
.81-.91 for the loss clusters alone) at recall .78-.86; the pairs they share that are wrong
hold unlabelled background extras, whose defocused faces the two views both group.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from vcn_plugin.clustering.aggregation import canonical_groups
from vcn_plugin.ssl.track_gaussians import MatchResult


def pairs_of_clusters(keys: Sequence[Hashable], labels: np.ndarray) -> MatchResult:
    """Every two tracks with one cluster label (labels < 0: Unknown, never matched), as
    ``(a, b)`` in input order."""
    labels = np.asarray(labels)
    if labels.shape != (len(keys),):
        raise ValueError(f"need one label per track: {len(keys)} keys, labels of shape {labels.shape}")
    result = MatchResult(num_tracks=len(keys), num_fitted=len(keys))
    parts = []
    for label in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == label)
        i, j = np.triu_indices(len(members), 1)
        parts.append(np.stack([members[i], members[j]], axis=1))
    pairs = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    result.pairs = [(keys[i], keys[j]) for i, j in pairs.tolist()]
    return result


def meet_of_partitions(*labels: np.ndarray) -> np.ndarray:
    """The coarsest partition finer than each of ``labels`` (tracks share a cluster only where
    every partition puts them together), numbered 0.. in order of first appearance; a track that
    any partition leaves out (label < 0) is left out (-1)."""
    arrays = [np.asarray(x) for x in labels]
    if not arrays or any(a.ndim != 1 for a in arrays) or len({a.shape for a in arrays}) > 1:
        raise ValueError("the partitions must label the same tracks, one 1-D array each")
    stacked = np.stack(arrays)
    out = np.full(stacked.shape[1], -1, np.int64)
    keep = np.all(stacked >= 0, axis=0)
    _, groups = np.unique(stacked[:, keep].T, axis=0, return_inverse=True)  # one group per label tuple
    out[keep] = canonical_groups(groups.ravel())[0]
    return out
