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
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

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
