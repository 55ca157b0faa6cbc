"""Track clustering: VideoClusterNet's adaptive aggregation and the ablation baselines.

Pure numpy/scipy/sklearn; no FiftyOne. Entry points:

- :func:`cluster_tracks` (in :mod:`.baselines`): one interface for every method.
- :func:`aggregate` with :class:`FactoredLossStats` (the loss metric on the DINO
  head's factored student, what the pipeline uses) / :class:`LossMetricStats` (the
  same on dense log-probabilities) / :class:`CosineStats` / :class:`EuclideanStats`:
  the parameter-free algorithm on per-track sums.
"""
from vcn_plugin.clustering.aggregation import (
    AggregationConfig,
    ClusteringResult,
    aggregate,
    cluster_names,
    cooccurring_pairs,
    relabel_by_size,
)
from vcn_plugin.clustering.baselines import (
    METHODS,
    OracleResult,
    best_threshold_hac,
    cluster_tracks,
    cut_heights,
    hac,
    hdbscan,
    track_means,
)
from vcn_plugin.clustering.finch import FinchResult, finch, finch_tracks
from vcn_plugin.clustering.stats import (
    SINGLETON_POLICIES,
    CosineStats,
    EuclideanStats,
    FactoredLossStats,
    LossMetricStats,
    StudentFactors,
    TrackStats,
    make_stats,
)
from vcn_plugin.core.types import UNKNOWN

__all__ = [
    "METHODS",
    "SINGLETON_POLICIES",
    "UNKNOWN",
    "AggregationConfig",
    "ClusteringResult",
    "CosineStats",
    "EuclideanStats",
    "FactoredLossStats",
    "FinchResult",
    "LossMetricStats",
    "OracleResult",
    "StudentFactors",
    "TrackStats",
    "aggregate",
    "best_threshold_hac",
    "cluster_names",
    "cluster_tracks",
    "cooccurring_pairs",
    "cut_heights",
    "finch",
    "finch_tracks",
    "hac",
    "hdbscan",
    "make_stats",
    "relabel_by_size",
    "track_means",
]
