"""VideoClusterNet's parameter-free hierarchical aggregation of tracks.

Every track starts as its own cluster. In each round, clusters ``a`` and ``b``
merge when their distance is below the threshold of either
(``d(a, b) < max(thr_a, thr_b)``); merges are transitive (connected components
of the accepted edges); each merged cluster's statistics and threshold are
recomputed from all its faces (sums of its tracks' sums, see
:mod:`vcn_plugin.clustering.loss_metric`). Rounds repeat until nothing merges
(Kamboj et al., ECCV 2024, arXiv:2407.12214, Sec. 3.3).

Constraints (used for the co-occurrence guard and for user corrections):

- ``must_link``: groups of tracks that start as one cluster.
- ``cannot_link``: pairs of tracks that must end in different clusters (two
  tracks visible in the same frame, or a pair a user separated). With
  constraints the accepted edges of a round are applied one at a time in
  increasing distance (ties by cluster index) with a union-find, and an edge
  that would join two components holding a cannot-link pair is refused;
  without constraints the result is the same as plain connected components.
- ``excluded``: tracks left out (low quality); their label is -1 ("Unknown").

Linkage. ``"transitive"`` (the paper): every accepted edge of a round merges, so one
false edge joins two whole clusters, and the merged cluster's threshold, recomputed over all
its faces, includes the cross-track pairs and grows. ``"mutual"``: of the accepted edges, a
round keeps only those whose two clusters are each other's nearest accepted cluster (each
cluster merges with at most one other per round), and rounds repeat to the same fixpoint rule;
a false edge then joins two clusters only when they prefer each other to everything else.

Neighbours. Where a cluster picks its nearest cluster (the two neighbour starts, and mutual
linkage's choice among accepted edges), "nearest" is by excess distance for the loss metric by
default: ``d(a, b) - (thr_a + thr_b) / 2``, how much further apart two clusters are than each is
from itself (for the loss metric: about half the symmetric KL divergence between the two
predictions); ``neighbour_distance="raw"`` uses ``d(a, b)``, as "auto" does for the embedding
metrics (see :data:`DEFAULT_NEIGHBOUR_DISTANCE`).

Rounds. After the start, ``rounds="silhouette"`` (the default) merges mutually nearest clusters
while the tracks' mean silhouette rises (:mod:`vcn_plugin.clustering.silhouette`, see
:data:`DEFAULT_ROUNDS`); ``rounds="threshold"`` runs the paper's threshold rounds above.

Start. ``"threshold"`` (the paper): the first round is a round like every other. ``"mutual
neighbours"``: a round zero first merges every pair of tracks that are each other's nearest
track (FINCH's first-neighbour relation, Sarfraz et al., CVPR 2019, kept only where it is
mutual; cannot-link pairs are never neighbours), whatever the thresholds say; the threshold
rounds then start from those clusters. Why: a track's threshold is its mean intra-track loss,
which only holds the variation of one shot; two tracks of one person in different shots sit
at 1-1.4x that threshold and are refused. Once two tracks form a cluster, its threshold is
recomputed over all its faces, cross-track pairs included, so it holds exactly the variation
the next merges need. A mutual nearest pair is one person far more often than a pair under
the threshold is (see :data:`DEFAULT_START` for the measurements). ``"first-neighbours"``: round
zero links every track to its nearest track, mutual or not (FINCH's first partition, with the
cannot-link pairs refused as in every round), so chains of nearest tracks merge too. ``"best"``:
the aggregation runs from the first-neighbours start and from single tracks (``"threshold"``,
no round zero), and the result whose clusters have the higher mean silhouette is kept: the two
starts are two initialisations of the same rounds, and the silhouette the rounds raise also
says which of the local optima is better (see :data:`BEST_OF_STARTS`). Agreement: given a
second view of the tracks (``aggregate(..., agreement=)``: the finetuned backbone's cosine for the
loss metric), "best" runs a third start, the first-neighbours links whose two clusters are in one
cluster of that view's own first partition, and a neighbour start chosen by name keeps only those
links (see :data:`DEFAULT_AGREEMENT`).

With transitive linkage only clusters that changed in a round (or whose threshold changed) can create
new edges in the next one: an unchanged pair has the same distance and
thresholds as before, and a pair refused by a cannot-link constraint stays
refused because clusters only grow. Later rounds therefore only search the
rows of changed clusters.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from vcn_plugin.clustering.search import (
    DEFAULT_TILE_ENTRIES, best_two_distances, candidate_edges, nearest_neighbours, nearest_table,
)
from vcn_plugin.clustering.silhouette import NEIGHBOURS_KEPT, mean_silhouette, silhouette_rounds
from vcn_plugin.clustering.stats import SINGLETON_POLICIES, SingletonPolicy, TrackStats
from vcn_plugin.core.types import UNKNOWN


@dataclass
class ClusteringResult:
    """Track -> identity assignment, shared by every method.

    Attributes:
        labels: (n_tracks,) cluster id per track; ids are ordered by cluster size
            (number of tracks) descending, ties by smallest track index; -1 = Unknown.
        n_clusters: number of clusters (Unknown not counted).
        iterations: rounds that merged something (the final round that found no
            merge is not counted; 0 for methods without rounds).
        merges_per_iteration: number of merges (clusters removed) in each of those rounds.
        margins: (n_tracks,) second-best minus best distance from the track to a
            final cluster; small = uncertain. inf when there is one cluster, NaN
            for Unknown tracks and for methods that do not compute it.
        method: name of the method that produced it.
        info: method-specific details (thresholds, partitions, timings).
    """

    labels: np.ndarray
    n_clusters: int
    iterations: int = 0
    merges_per_iteration: list[int] = field(default_factory=list)
    margins: np.ndarray | None = None
    method: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.margins is None:
            self.margins = np.full(self.labels.shape[0], np.nan)

    @property
    def n_unknown(self) -> int:
        return int(np.count_nonzero(self.labels < 0))

    @property
    def names(self) -> list[str]:
        return cluster_names(self.labels)


LINKAGES = ("transitive", "mutual")
#: the product's linkage. With the paper's first round (threshold start) mutual linkage won: .720
#: accuracy (cluster ratio 1.07, WCP .829) against .665 (0.92, .760) on the 10-episode suite of
#: ``benchmarks/finetune_study.py``, .396 -> .660 on the hard episode, where one false edge chained
#: look-alikes into one cluster. With the first-neighbours start by excess (the defaults below), the
#: threshold rounds change five clusters over the 20 suite, held-out and series episodes, and the
#: paper's transitive linkage is as good or better everywhere (``benchmarks/cluster_rules.py``,
#: default finetune): suite .928 both, held out .910 both, series .959 (ratio 1.12) against .922
#: (1.17); equal on the suite on six other finetune points of the study. So the default is the
#: paper's linkage again; "mutual" stays for the threshold start. Linkage applies to the threshold
#: rounds only (``rounds="threshold"``); the default silhouette rounds merge pairs of clusters.
DEFAULT_LINKAGE = "transitive"

STARTS = ("threshold", "mutual-neighbours", "first-neighbours", "best")
#: how the aggregation starts (see the module docstring), chosen by the mean over the 10-episode
#: suite of ``benchmarks/finetune_study.py`` (easy pair, hard look-alike episode, seven sweep cells;
#: default finetune, shipped detector, the default predictor), scored by ``benchmarks/cluster_rules.py``
#: on the same finetunes, and checked on 7 held-out episodes (seed 1) built after the choice:
#:
#: - "first-neighbours": .913 accuracy (cluster ratio 0.93, WCP .925) on the suite, .895 (1.07,
#:   .947) held out; the better of FINCH and HDBSCAN on pretrained embeddings: .908 and .850.
#: - "mutual-neighbours": .896 (1.15, .976) and .803 (1.53, .987): mutual pairs only leave too many
#:   tracks alone (held-out cluster ratio 1.53).
#: - "threshold" (the paper): .748 (1.44, .974) and .695 (1.90, .990): a track's threshold holds
#:   one shot's variation, so tracks of one person in different shots are refused.
#:
#: On four other finetune points of the study first-neighbours gains over mutual-neighbours on three
#: (+.018 to +.031) and loses one (-.015). With the student as predictor it is worse (.819 on the
#: suite): it needs the teacher predictor's neighbours (see ``DEFAULT_PREDICTOR``). The real-photo
#: test is exact with it for finetune seeds 0, 1 and 2. The cost: two people who are each other's
#: nearest track, or a chain of nearest tracks, merge unless a cannot-link pair (seen together)
#: separates them, as in FINCH's first partition. Over finetune seeds 0, 1 and 2 (``cluster_rules.py``
#: on several folders) it stays ahead of "mutual-neighbours": .908 against .882 on the suite, .915
#: against .827 held out, .936 against .825 on the series (these numbers with the threshold rounds
#: after the start). The start alone (rule "first-neighbours start only", same seeds): .920 on the
#: suite, .909 held out, .886 on the series; what follows it is :data:`DEFAULT_ROUNDS`.
#:
#: The default is "best" (see :data:`BEST_OF_STARTS`): it keeps the first-neighbours result
#: wherever that has the higher mean silhouette, and single tracks where chains of nearest tracks
#: joined look-alikes.
DEFAULT_START = "best"

#: the starts ``start="best"`` runs the aggregation from, in the order that wins a tie. The
#: first-neighbours start joins chains of nearest tracks that no later round can undo (look-alikes
#: in the hard episode and the film-look cells); single tracks under the silhouette rounds
#: under-merge where one person has two looks (the rounds join only mutually nearest clusters, and
#: a person's second look is often nearer to a look-alike). Each failure lowers the final mean
#: silhouette, so the better local optimum is kept. Measured with ``benchmarks/cluster_rules.py``
#: over finetune seeds 0, 1 and 2 (default finetune), accuracy / cluster ratio / WCP, "best"
#: against "first-neighbours" (both with silhouette rounds):
#:
#: - suite (10 episodes): .926 / 1.05 / .970 against .912 / 0.90 / .913, 24 against 20 of 30 cells
#:   won or tied (FINCH / HDBSCAN .925); the nine cells with detection recall >= .8: .971 / .945 /
#:   .932 per seed against .962 / .921 / .917 (peers .959), ratios 0.82-1.20 against 0.73-1.00; the
#:   hard episode .887 / .849 / .830 against .849 / .868 / .792;
#: - held out (7 episodes): .949 / 1.02 / .961 against .952 / 1.00 / .958 (peers .870);
#: - single tracks alone: .930 on the suite but .849 held out (ratio 1.38).
#:
#: On the series it picks the first-neighbours start every time (per episode .966 both, across
#: episodes .836 both), where single tracks alone give .841 and .649.
#:
#: Given an agreement view (the default for the loss metric, see :data:`DEFAULT_AGREEMENT`), a
#: third run starts from the first-neighbour links that view agrees with.
#:
#: Cost: the runs share one search for every track's nearest tracks
#: (:func:`~vcn_plugin.clustering.search.nearest_table`), and the silhouette rounds keep each
#: track's and each cluster's nearest clusters across rounds instead of searching them again
#: (:mod:`vcn_plugin.clustering.silhouette`). ``benchmarks/cluster_scale.py`` on the idle machine,
#: 50k synthetic tracks: 57 s for "best" with two starts, 35 s for "first-neighbours" alone (before
#: those two changes: about 220 s and 46 s); 10k: 3-4 s. With the third start see
#: :data:`DEFAULT_AGREEMENT`. A 100-track episode takes well under a second either way.
BEST_OF_STARTS = ("first-neighbours", "agreeing first-neighbours", "threshold")
#: the start of :data:`BEST_OF_STARTS` that keeps only the links an agreement view agrees with (run
#: where :func:`aggregate` is given one and ``config.agreement`` is on; see :data:`DEFAULT_AGREEMENT`)
AGREEING_START = "agreeing first-neighbours"

#: whether the aggregation also tries a start whose links a second view of the tracks agrees with,
#: where the caller gives one (``aggregate(..., agreement=)``; for the loss metric
#: :func:`~vcn_plugin.clustering.cluster_tracks` builds it from the finetuned backbone's embeddings:
#: the mean cosine between two tracks' faces). The second view gets its own first partition (every
#: cluster linked to its nearest by the raw distance, cannot-link pairs refused, connected
#: components), and the agreeing start keeps a first-neighbour link of the loss only if its two
#: clusters are in one cluster of that partition. Under ``start="best"`` it is a third start
#: (:data:`AGREEING_START`) beside the first-neighbours start and single tracks, and the mean
#: silhouette chooses among the three; under ``start="first-neighbours"`` (or "mutual-neighbours")
#: that start itself keeps only the agreed links. No parameter.
#:
#: Why: the first-neighbours start joins chains of nearest tracks that no later round undoes, and a
#: track's nearest track by the loss is sometimes a look-alike; the two views are trained on the
#: same video but measure different things (the head's prototypes against the backbone's
#: geometry), and they rarely put the same look-alikes together. Why a third start and not a
#: filter on the first-neighbours start: where a person has many tracks (a series clustered across
#: its episodes: 91 tracks of 11 people), the backbone's first partition splits them by episode
#: and the filter refuses the loss's correct links across episodes (accuracy .748 against .885
#: over three finetunes, cluster ratio 1.67 against 1.30); as a third start the silhouette
#: leaves it there. Why one cluster of the partition and not the same nearest track in both views:
#: with several tracks a person each view may pick another of them; on the synthetic tracks of
#: ``benchmarks/cluster_scale.py`` (about 5 tracks a person) the filter by the same nearest track
#: gives an adjusted Rand index of .774, by the partition .985 (no agreement: .990).
#:
#: Measured with ``benchmarks/cluster_rules.py`` on the saved finetunes of
#: ``benchmarks/finetune_study.py`` (default finetune, seeds 0 / 1 / 2; accuracy, then the mean
#: cluster ratio / WCP and cells won or tied against the better of FINCH and HDBSCAN), the three
#: starts against the two without the agreeing one:
#:
#: - suite (10 episodes, chooses the defaults): .937 / .936 / .929 (mean .934, 0.97 / .945, 26 of
#:   30) against .937 / .920 / .918 (.925, 0.99 / .946, 24 of 30); the nine cells with detection
#:   recall >= .8: .972 / .957 / .949 against .972 / .952 / .951, ratios 0.89-1.11 against
#:   0.89-1.18 (FINCH / HDBSCAN .946);
#: - held out, ``ho2`` (7 episodes): .910 / .914 / .911 (.912) against .904 / .910 / .879 (.898);
#:   ``ho`` (7): .927 / .947 / .941 (.938) against .927 / .947 / .946 (.940);
#: - the series, per episode and across its episodes: the same clusters (.939 and .885).
#:
#: The agreeing start in place of the first-neighbours one gains more on the suite and ``ho2``
#: (.939, .915) but loses ``ho`` (.925), the series per episode (.927) and across (.748, above).
#: Measured on one machine (AMD EPYC). Cost: all three starts share the nearest-track search of the
#: loss; the agreeing one adds a dense nearest-track search on the view (:func:`agreed_links`) and
#: one more run of the rounds: ``benchmarks/cluster_scale.py``, 50k synthetic tracks, 57-63 s
#: (median 59.3 s of three runs) against 41 s without it (10k: 3.6 s), at the edge of the 60 s
#: target; 1,000 tracks take 0.3 s.
DEFAULT_AGREEMENT = True

#: whether silhouette rounds on the agreement view follow the loss's rounds, from the clusters the
#: loss stopped at (given an agreement view under ``agreement``; for the loss metric the finetuned
#: backbone's cosine). They merge clusters that are each other's nearest by mean cosine while the
#: tracks' mean silhouette on that cosine rises (:func:`~vcn_plugin.clustering.silhouette.silhouette_rounds`
#: unshifted: the cosine distance is already 0 between identical tracks, as sklearn scores it), cannot-link
#: pairs refused. They only merge, so what the loss keeps apart can still be joined but nothing the
#: loss joined is split. No parameter.
#:
#: Why: the loss's own rounds stop where a person's second look (another photo, another grade) is
#: nearer by the loss to a look-alike than to that person; the backbone's cosine, trained on
#: identities, often still puts the two looks nearest each other. Measured with
#: ``benchmarks/cluster_rules.py`` on the defaults' finetunes (``finetune_study.py --points default``,
#: seeds 0, 1 and 2, one machine without AVX-512, 2026-12-07), with against without:
#:
#: - suite (10 episodes, chooses the defaults): .955 / .957 / .946 (mean .953) against .948 / .939 /
#:   .926 (.938); 29 against 28 of 30 cells won or tied (FINCH / HDBSCAN .916); the nine cells with
#:   detection recall >= .8: .977 against .973 (peers .958), cluster ratios 0.91-1.11 against
#:   0.91-1.20. Seven cells change: six gain (teal-orange 1-3 one track each, day-for-night 3
#:   .60-.67 -> .73 for every seed), one loses (the hard episode for seed 2, .887 -> .868);
#: - held out, ``ho3`` (7 episodes): .920 against .912 (peers .844), ratios 0.90-1.27 against
#:   0.90-1.38; three episodes gain (low key 1 .824 -> .941), one loses (its hard episode for seed 0,
#:   .918 -> .878);
#: - the series across its episodes (``benchmarks/series_features.py``): .936 / .885 / .974 (.932)
#:   against .910 / .872 / .872 (.885), FINCH / HDBSCAN .564; per episode (seed 0) .943 against .920
#:   (not reproduced on the later machine below: .962 either way over seeds 0-2);
#: - held out, ``ho2`` (8 episodes, seeds 0-2, rebuilt 2026-12-08 on a machine of the same kind):
#:   .898 against .905 (peers .832), 20 against 22 of 24 won or tied: the cosine merges look-alikes
#:   under bleach bypass 1, tinted mono 2 and no look, and narrows the paper-size episode's
#:   over-split (.793 -> .828); the series per episode, seeds 0-2, there: .962 either way.
#:
#: The suite chooses and gains; held out the rounds gain ``ho3`` and the series across its
#: episodes, leave the series per episode level and lose ``ho2``.
#:
#: The cost: purity, where the cosine joins look-alikes (mean WCP .961 against .974 on the suite,
#: .958 against .971 on ``ho3``), and little time: ``benchmarks/cluster_scale.py``, 10k synthetic
#: tracks, one run each beside two other jobs, 11.2 s of CPU against 10.8 s without (adjusted Rand index .993 against .986).
DEFAULT_VIEW_ROUNDS = True

NEIGHBOUR_DISTANCES = ("auto", "excess", "raw")
#: what "nearest" means when a cluster picks its neighbour (the first-neighbours and
#: mutual-neighbours starts, and the choice among accepted edges of mutual linkage). "excess":
#: ``d(a, b) - (thr_a + thr_b) / 2``, how much further two clusters are from each other than each
#: is from itself (its threshold, the paper's mean intra-cluster distance); "raw": ``d(a, b)``;
#: "auto" (default): excess for the loss metric, raw for the embedding metrics.
#:
#: Why, for the loss metric: the loss is a cross-entropy, ``d(a, b) = (p_a . l_b + p_b . l_a) / 2``
#: with ``p`` a track's mean teacher probabilities and ``l`` its mean ``-log q``, and a track's own
#: loss is ``p_a . l_a`` (its threshold, up to the faces' own pairs; a one-face track's threshold
#: is the median one under the default singleton policy). So the excess is about
#: ``(p_a - p_b) . (l_b - l_a) / 2``: half the symmetric KL (Jeffreys) divergence between the two
#: tracks' predictions, with both entropies gone. The raw loss keeps them, and they dominate
#: (teacher entropy ~7 of ln 4096 = 8.3): a track with a sharp teacher has a low loss to every
#: track, is everybody's nearest track (a hub), and first-neighbour chains run through it. For
#: cosine and Euclidean distances the excess has no such meaning (it is the distance between
#: unnormalised mean embeddings) and measured worse on the suite (cosine .876 against .917), so
#: "auto" keeps them raw.
#:
#: Measured with ``benchmarks/cluster_rules.py`` on the default finetune, first-neighbours start:
#:
#: - nearest-track precision (tracks whose identity has another track): .923 / .873 / .932 on the
#:   suite / held-out / series episodes, against .870 / .842 / .878 with the raw loss and .908 /
#:   .819 / .851 with cosine on pretrained embeddings;
#: - accuracy with the default linkage (transitive): suite .928 (ratio 0.96, WCP .947; 8 of 10 cells
#:   won or tied against the better of FINCH and HDBSCAN, .908), against .913 (0.93, .925; 7 of 10)
#:   with raw neighbours; held out .910 against .895 (peers .850); series .959 against .922 (peers
#:   .899); the hard look-alike episode .830 (ratio 0.90) against .811 (0.80), FINCH .849.
#:
#: On six other finetune points of the study it gains on four (+.004 to +.037), ties one and loses
#: one (-.009). It also wins where the finetuned teacher is sharp (entropy 1.5-3.2 on the easy pair
#: and the series). Where it can lose: the excess inherits the noise of the thresholds, which a
#: track estimates from its own faces. On synthetic tracks of 4 faces whose teachers are one-hot on
#: prototypes drawn mostly by noise (the tests' generator) the excess start is less exact than the
#: raw one, and on the synthetic tracks of ``benchmarks/cluster_scale.py`` its ARI is .966 against
#: .985 for the raw start with mutual linkage (the defaults before) and .998 for the paper's rounds.
#: With MobileFaceNet as the backbone (``finetune_study.py --backbone arcface-onnx:...``) the
#: finetuned teacher is nearly one-hot (entropy 0.4-0.9), a threshold measures how consistently a
#: track's faces pick one prototype, and the excess loses: .868 on the suite against .914 with raw
#: neighbours (FINCH/HDBSCAN .904). The default is chosen with the shipped backbone (dlib). Over
#: finetune seeds 0, 1 and 2 the excess leads by less than one seed's spread: .908 against .904
#: (raw) on the suite, .915 against .910 held out, and it trails on the series (.936 against .961);
#: seed 1 alone prefers raw neighbours on the suite (.920 against .890).
DEFAULT_NEIGHBOUR_DISTANCE = "auto"


ROUNDS = ("silhouette", "threshold")
#: what follows the start round. "threshold" (the paper): rounds merge clusters whose distance is
#: under the larger of their two thresholds, to a fixpoint (``linkage`` applies to them only).
#: "silhouette" (default): rounds merge mutually nearest clusters while the tracks' mean silhouette
#: rises (:mod:`vcn_plugin.clustering.silhouette`: a relative test with no parameter, on the same
#: distances, by excess under "auto" for the loss metric). Why: the threshold test fails both ways.
#: Where the finetuned teacher stays near uniform (film looks, look-alikes), every threshold sits at
#: about ln K and all 13 wrong first-round merges over three seeds joined two such clusters; where
#: the teacher is sharp (the series), one person's clusters from other shots or episodes sit just
#: above both thresholds and are refused (cluster ratio 1.14 per episode, 1.70 across episodes).
#:
#: Measured with ``benchmarks/cluster_rules.py`` over finetune seeds 0, 1 and 2 (default finetune,
#: first-neighbours start by excess), accuracy / cluster ratio / WCP, silhouette against threshold:
#:
#: - suite (10 episodes): .917 / 0.90 / .918 against .908 / 0.90 / .915 (seed means .904-.933
#:   against .890-.938; 23 against 21 of 30 cells won or tied; FINCH/HDBSCAN .908); in the nine
#:   cells with detection recall >= .8: .957 / .926 / .934 per seed against .970 / .909 / .918
#:   (peers .945); hard episode .811 / .868 / .849 against .830 / .868 / .849;
#: - held out (7 episodes, seed 1 builds): .942 / 0.98 / .950 against .915 / 1.03 / .948 (peers .850);
#: - the series, per episode: .966 / 1.04 / .990 against .936 / 1.14 / 1.000 (peers .899);
#: - the series across its three episodes (one finetune over 91 tracks,
#:   ``benchmarks/series_features.py``): .871 / 1.24 / .982 against .742 / 1.70 / 1.000; the
#:   paper-exact rules .804, FINCH / HDBSCAN .533.
#:
#: With the raw loss instead of the excess (``neighbour_distance="raw"``, for the start and the
#: rounds): .876, .916, .986 and .898 on the same four sets, so the excess stays the default. The embedding metrics gain
#: too (same seeds and sets; the cosine on finetuned embeddings): .927 / .883 / .979 / .707 against
#: .922 / .851 / .870 / .564 with threshold rounds, so the default is the same for every metric.
DEFAULT_ROUNDS = "silhouette"


@dataclass
class AggregationConfig:
    """Options of :func:`aggregate`.

    Attributes:
        singleton: threshold of one-face clusters, see ``SINGLETON_POLICIES`` (default "median").
        max_iterations: safety cap on rounds (default 100; the fixpoint is normally reached in < 10).
        compute_margins: compute :attr:`ClusteringResult.margins` (default True).
        tile_entries: entries of one distance tile; bounds the working memory (default 16 Mi).
        linkage: "transitive" (default, the paper, see :data:`DEFAULT_LINKAGE`) or "mutual"; see
            the module docstring.
        start: "best" (default, see :data:`DEFAULT_START` and :data:`BEST_OF_STARTS`): from the
            first-neighbours start, from its agreed links (given an agreement view) and from single
            tracks, keeping the highest mean silhouette;
            "first-neighbours": a round zero merges every track with its nearest track (FINCH's
            first partition) before the rounds; "mutual-neighbours": only mutual nearest tracks;
            "threshold": no round zero (the paper exactly, with threshold rounds).
        neighbour_distance: "auto" (default, see :data:`DEFAULT_NEIGHBOUR_DISTANCE`): "excess" for
            the loss metric, "raw" for the others; "excess": clusters pick their nearest by the
            distance minus the mean of their two thresholds; "raw": by the distance (the paper
            has no neighbour choice). The start round applies its edges under cannot-link pairs
            in that order too. Which pairs may merge in the threshold rounds does not change
            (``d(a, b) < max(thr_a, thr_b)``), nor does the transitive rounds' order of applying
            them under cannot-link pairs (raw distance): with the threshold start, transitive
            linkage and threshold rounds the option has no effect (``info["neighbour_distance"]``
            is then "none"). The silhouette rounds measure every distance this way too.
        rounds: what follows the start: "silhouette" (default, see :data:`DEFAULT_ROUNDS`) or
            "threshold" (the paper's rounds; ``linkage`` applies to these only).
        agreement: use the ``agreement`` view given to :func:`aggregate` (default True, see
            :data:`DEFAULT_AGREEMENT`): "best" adds the start of the first-neighbour links whose two
            clusters are in one cluster of that view's first partition, and a neighbour start keeps
            only those links; without a view, or False, no start uses one.
        view_rounds: after the loss's rounds, silhouette rounds on that view from the clusters
            they stopped at (default True, see :data:`DEFAULT_VIEW_ROUNDS`); only with a view
            under ``agreement``.
    """

    singleton: SingletonPolicy = "median"
    max_iterations: int = 100
    compute_margins: bool = True
    tile_entries: int = DEFAULT_TILE_ENTRIES
    linkage: str = DEFAULT_LINKAGE
    start: str = DEFAULT_START
    neighbour_distance: str = DEFAULT_NEIGHBOUR_DISTANCE
    rounds: str = DEFAULT_ROUNDS
    agreement: bool = DEFAULT_AGREEMENT
    view_rounds: bool = DEFAULT_VIEW_ROUNDS

    def __post_init__(self) -> None:
        if self.linkage not in LINKAGES:
            raise ValueError(f"linkage must be one of {LINKAGES}, got {self.linkage!r}")
        if self.start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {self.start!r}")
        if self.neighbour_distance not in NEIGHBOUR_DISTANCES:
            raise ValueError(f"neighbour_distance must be one of {NEIGHBOUR_DISTANCES}, got {self.neighbour_distance!r}")
        if self.rounds not in ROUNDS:
            raise ValueError(f"rounds must be one of {ROUNDS}, got {self.rounds!r}")
        if self.singleton not in SINGLETON_POLICIES:
            raise ValueError(f"singleton must be one of {SINGLETON_POLICIES}, got {self.singleton!r}")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")
        if self.tile_entries < 1:
            raise ValueError(f"tile_entries must be >= 1, got {self.tile_entries}")


def canonical_groups(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber arbitrary group labels so that groups are ordered by their first (smallest) row."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, np.int64), 0
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()], int(first.size)


def cluster_names(labels: np.ndarray) -> list[str]:
    """``person_01``, ``person_02``, ... for labels 0, 1, ...; "Unknown" for -1.

    The number is zero-padded to at least two digits (more when there are 100+ clusters).
    """
    labels = np.asarray(labels, dtype=np.int64)
    width = max(2, len(str(int(labels.max()) + 1))) if labels.size else 2
    return [UNKNOWN if lab < 0 else f"person_{lab + 1:0{width}d}" for lab in labels]


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters by size descending, ties by the smallest member index; -1 stays -1."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(labels.shape, -1, dtype=np.int64)
    known = np.flatnonzero(labels >= 0)
    if known.size == 0:
        return out
    uniq, first, inverse, sizes = np.unique(labels[known], return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((known[first], -sizes))
    rank = np.empty(uniq.size, dtype=np.int64)
    rank[order] = np.arange(uniq.size)
    out[known] = rank[inverse.ravel()]
    return out


def cooccurring_pairs(track_frames: Sequence[Sequence[int]], track_video: Sequence | None = None) -> np.ndarray:
    """Pairs of tracks that appear in the same frame of the same video, (m, 2) sorted, unique.

    Args:
        track_frames: frame numbers of each track.
        track_video: video id of each track (any hashable); default: all in one video.
    """
    if track_video is not None and len(track_video) != len(track_frames):
        raise ValueError(f"track_video has {len(track_video)} entries but track_frames has {len(track_frames)}")
    videos = np.zeros(len(track_frames), np.int64) if track_video is None else np.unique(np.asarray(track_video, dtype=object).astype(str), return_inverse=True)[1]
    lengths = np.array([len(f) for f in track_frames], dtype=np.int64)
    if lengths.sum() == 0:
        return np.zeros((0, 2), np.int64)
    track = np.repeat(np.arange(len(track_frames)), lengths)
    frame = np.concatenate([np.asarray(f, dtype=np.int64) for f in track_frames if len(f)])
    video = np.repeat(videos, lengths)
    keys = np.unique(np.stack([video, frame, track], axis=1), axis=0)  # sorted by (video, frame), one row per track
    bounds = np.flatnonzero(np.any(np.diff(keys[:, :2], axis=0) != 0, axis=1)) + 1
    pairs = []
    for group in np.split(keys[:, 2], bounds):
        if group.size > 1:
            a, b = np.triu_indices(group.size, 1)
            pairs.append(np.stack([group[a], group[b]], axis=1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(pairs), axis=0)


class _UnionFind:
    """Union-find over clusters with cannot-link sets kept per root."""

    def __init__(self, n: int, cannot: np.ndarray) -> None:
        self.parent = list(range(n))
        self.forbid: dict[int, set[int]] = {}
        for a, b in cannot.tolist():
            self.forbid.setdefault(a, set()).add(b)
            self.forbid.setdefault(b, set()).add(a)

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> bool:
        """Join the components of a and b unless a cannot-link pair forbids it."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if rb in self.forbid.get(ra, ()):
            return False
        if ra > rb:
            ra, rb = rb, ra
        self.parent[rb] = ra
        for x in self.forbid.pop(rb, set()):
            self.forbid[x].discard(rb)
            self.forbid[x].add(ra)
            self.forbid.setdefault(ra, set()).add(x)
        return True

    def labels(self) -> np.ndarray:
        return np.array([self.find(x) for x in range(len(self.parent))], dtype=np.int64)


def mutual_best_edges(n: int, i: np.ndarray, j: np.ndarray, d: np.ndarray,
                      cannot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges whose two ends are each other's nearest neighbour among the edges (ties: the
    smaller index), after dropping edges between cannot-link clusters."""
    if cannot.size and i.size:
        forbidden = set(map(tuple, np.sort(cannot, axis=1).tolist()))
        keep = np.array([(a, b) not in forbidden for a, b in zip(i.tolist(), j.tolist())], dtype=bool)
        i, j, d = i[keep], j[keep], d[keep]
    best = np.full(n, -1, np.int64)
    for e in np.lexsort((j, i, d)):  # increasing distance: the first edge seen at a node is its best
        a, b = int(i[e]), int(j[e])
        if best[a] < 0:
            best[a] = b
        if best[b] < 0:
            best[b] = a
    keep = (best[i] == j) & (best[j] == i)
    return i[keep], j[keep], d[keep]


def first_neighbour_edges(stats: TrackStats, cannot: np.ndarray, mutual: bool,
                          tile_entries: int = DEFAULT_TILE_ENTRIES,
                          offsets: np.ndarray | None = None,
                          table: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs ``(i, j)``, ``i < j``, where one row is the other's nearest row (``mutual``: each
    is the other's), cannot-link pairs never being neighbours, and their distances: the edges of
    the "first-neighbours" (FINCH's first partition) and "mutual-neighbours" starts. With
    ``offsets`` (the rows' thresholds) nearest means the smallest excess ``d - (o_i + o_j) / 2``,
    and the excess is the distance returned."""
    nn, dist = nearest_neighbours(stats, cannot, tile_entries, offsets, table)
    i = np.flatnonzero(nn >= 0)
    if mutual:
        i = i[(nn[nn[i]] == i) & (i < nn[i])]
        return i, nn[i], dist[i]
    a, b = np.minimum(i, nn[i]), np.maximum(i, nn[i])
    _, first = np.unique(a * len(nn) + b, return_index=True)  # a mutual pair is found from both ends
    return a[first], b[first], dist[i][first]


def agreed_links(i: np.ndarray, j: np.ndarray, d: np.ndarray, view: TrackStats, cannot: np.ndarray,
                 tile_entries: int = DEFAULT_TILE_ENTRIES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The links ``(i, j, d)`` whose two rows are in one cluster of ``view``'s first partition (every
    row linked to its nearest row by the raw distance, cannot-link pairs refused, connected components):
    the agreement of :data:`DEFAULT_AGREEMENT`."""
    partition, _ = _apply_edges(len(view), *first_neighbour_edges(view, cannot, False, tile_entries), cannot)
    keep = partition[i] == partition[j]
    return i[keep], j[keep], d[keep]


def _apply_edges(n: int, i: np.ndarray, j: np.ndarray, d: np.ndarray, cannot: np.ndarray) -> tuple[np.ndarray, int]:
    """Merge along edges (transitively), refusing any union that joins a cannot-link pair."""
    if cannot.size == 0:
        graph = sp.csr_matrix((np.ones(i.size, np.int8), (i, j)), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        return canonical_groups(comp)
    uf = _UnionFind(n, cannot)
    for e in np.lexsort((j, i, d)):
        uf.union(int(i[e]), int(j[e]))
    return canonical_groups(uf.labels())


_NO_EDGES = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))


def _carry_edges(i: np.ndarray, j: np.ndarray, d: np.ndarray, groups: np.ndarray,
                 changed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges between two unchanged clusters, renumbered to the clusters after the merge."""
    keep = ~changed[groups[i]] & ~changed[groups[j]]
    a, b = groups[i[keep]], groups[j[keep]]
    return np.minimum(a, b), np.maximum(a, b), d[keep]


def _mask(name: str, value: np.ndarray | Sequence[int] | None, n: int) -> np.ndarray:
    if value is None:
        return np.zeros(n, bool)
    arr = np.asarray(value)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"{name} as a boolean mask needs one entry per track ({n}), got shape {arr.shape}")
        return arr.copy()
    mask = np.zeros(n, bool)
    idx = _indices(name, arr, n)
    mask[idx] = True
    return mask


def _indices(name: str, arr: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.size == 0:
        return np.zeros(arr.shape, np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer track indices, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(f"{name} refers to track indices outside [0, {n}); got {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)


def _initial_groups(
    n: int, active: np.ndarray, must_link: Sequence[Sequence[int]] | None, cannot: np.ndarray
) -> np.ndarray:
    """Track -> initial group (must-link unions), as labels over all tracks (excluded ones keep their own)."""
    uf = _UnionFind(n, np.zeros((0, 2), np.int64))
    for group in must_link or []:
        idx = _indices("must_link", np.asarray(list(group)), n)
        if np.any(~active[idx]):
            bad = idx[~active[idx]].tolist()
            raise ValueError(f"must_link group {sorted(idx.tolist())} contains excluded tracks {bad}; remove them from the group or un-exclude them")
        for t in idx[1:]:
            uf.union(int(idx[0]), int(t))
    labels = uf.labels()
    if cannot.size:
        clash = labels[cannot[:, 0]] == labels[cannot[:, 1]]
        if clash.any():
            a, b = cannot[np.flatnonzero(clash)[0]]
            raise ValueError(f"tracks {a} and {b} are both must-linked together and cannot-linked; drop one of the two constraints")
    return labels


def aggregate(
    stats: TrackStats,
    *,
    excluded: np.ndarray | Sequence[int] | None = None,
    must_link: Sequence[Sequence[int]] | None = None,
    cannot_link: np.ndarray | Sequence[Sequence[int]] | None = None,
    config: AggregationConfig | None = None,
    agreement: TrackStats | None = None,
) -> ClusteringResult:
    """Cluster tracks with the adaptive-threshold aggregation.

    Args:
        stats: per-track statistics (one row per track), e.g. ``LossMetricStats.from_faces``.
        excluded: tracks left out and labelled Unknown (boolean mask or indices).
        must_link: groups of track indices that start (and so end) in one cluster.
        cannot_link: (m, 2) track pairs that must end in different clusters
            (co-occurrence guard and user separations alike).
        config: options, see :class:`AggregationConfig`.
        agreement: statistics of a second view of the same tracks (one row per track, nearest by
            the raw distance), used under ``config.agreement``: see :data:`DEFAULT_AGREEMENT` and
            :data:`DEFAULT_VIEW_ROUNDS`.
    """
    config = config or AggregationConfig()
    if agreement is not None and len(agreement) != len(stats):
        raise ValueError(f"agreement has {len(agreement)} tracks but stats has {len(stats)}; give one row per track")
    if config.start == "best":
        result = _best_start(stats, excluded, must_link, cannot_link, config, agreement)
    else:
        result = _aggregate(stats, excluded, must_link, cannot_link, config, agreement)
    if agreement is not None and config.agreement and config.view_rounds:
        result = _view_rounds(stats, result, agreement, cannot_link, config)
    return result


def _aggregate(stats: TrackStats, excluded, must_link, cannot_link, config: AggregationConfig,
               agreement: TrackStats | None, _shared: dict | None = None) -> ClusteringResult:
    """One run of the aggregation from ``config.start`` (not "best"); ``_shared``: the runs of one
    ``start="best"`` call share their nearest-track table."""
    start = time.perf_counter()
    n = len(stats)
    excl = _mask("excluded", excluded, n)
    active = ~excl
    cannot = _indices("cannot_link", np.asarray(cannot_link if cannot_link is not None else np.zeros((0, 2)), dtype=np.int64).reshape(-1, 2), n)
    if np.any(cannot[:, 0] == cannot[:, 1]):
        raise ValueError("cannot_link contains a track paired with itself")
    cannot = cannot[active[cannot[:, 0]] & active[cannot[:, 1]]]
    empty = np.flatnonzero(active & (stats.counts < 1))
    if empty.size:
        raise ValueError(f"tracks {empty[:10].tolist()} have no faces; exclude them or give them faces")
    initial = _initial_groups(n, active, must_link, cannot)

    act_idx = np.flatnonzero(active)
    track_stats = stats if act_idx.size == n else stats.subset(act_idx)
    track2cluster, n_clusters = canonical_groups(initial[act_idx])
    cluster_stats = track_stats if n_clusters == act_idx.size else track_stats.grouped(track2cluster, n_clusters)
    cannot_local = _local_pairs(cannot, act_idx, n)

    merges: list[int] = []
    converged = act_idx.size == 0
    final_silhouette = None
    thr = cluster_stats.thresholds(config.singleton) if act_idx.size else np.zeros(0)
    rows: np.ndarray | None = None
    carried = _NO_EDGES  # accepted edges between clusters the last round left unchanged
    start_round = config.start != "threshold" and act_idx.size > 1
    agreeing = _agreement_clusters(agreement, act_idx, track2cluster, n_clusters) if (
        start_round and config.agreement and agreement is not None) else None
    refused = 0
    excess = _uses_excess(config, stats)
    start_merges = 0
    table = None
    if _shared is not None and act_idx.size > 2 and np.array_equal(track2cluster, np.arange(act_idx.size)):
        if "table" not in _shared:  # every track its own cluster: one search serves both starts
            _shared["table"] = nearest_table(track_stats, NEIGHBOURS_KEPT, config.tile_entries, thr if excess else None)
        table = _shared["table"]
    silhouette = config.rounds == "silhouette"
    while not converged and len(merges) < config.max_iterations:
        cannot_clusters = np.unique(np.sort(track2cluster[cannot_local], axis=1), axis=0) if cannot_local.size else cannot_local
        if start_round:  # round zero: first neighbours (mutual ones only, or all), whatever the thresholds
            start_round = False
            i, j, d = first_neighbour_edges(cluster_stats, cannot_clusters, config.start == "mutual-neighbours",
                                            config.tile_entries, thr if excess else None, table)
            if agreeing is not None:
                found = i.size
                i, j, d = agreed_links(i, j, d, agreeing, cannot_clusters, config.tile_entries)
                refused = found - i.size
            all_i, all_j, all_d = i, j, d
            groups, n_groups = _apply_edges(len(cluster_stats), i, j, d, cannot_clusters)
            if n_groups == len(cluster_stats):
                continue
            start_merges = len(cluster_stats) - n_groups
        elif silhouette:
            break  # the silhouette rounds follow the start, below
        else:
            # only pairs touching a changed cluster are searched again: the others' distances and
            # thresholds did not move, so their accepted edges are carried over as they were
            found = candidate_edges(cluster_stats, thr, rows, config.tile_entries)
            all_i, all_j, all_d = (np.concatenate([a, b]) for a, b in zip(carried, found))
            i, j, d = all_i, all_j, all_d
            if config.linkage == "mutual":  # the only neighbour choice of the rounds
                if excess:
                    d = d - (thr[i] + thr[j]) / 2
                i, j, d = mutual_best_edges(len(cluster_stats), i, j, d, cannot_clusters)
            groups, n_groups = _apply_edges(len(cluster_stats), i, j, d, cannot_clusters)
            if n_groups == len(cluster_stats):
                converged = True
                break
        merges.append(len(cluster_stats) - n_groups)
        sizes = np.bincount(groups, minlength=n_groups)
        first = np.full(n_groups, len(cluster_stats), np.int64)
        np.minimum.at(first, groups, np.arange(len(cluster_stats)))
        track2cluster = groups[track2cluster]
        if cluster_stats is track_stats:
            cluster_stats = track_stats.grouped(groups, n_groups)
            track_stats.drop_caches()  # only the cluster statistics are searched from now on
        else:
            cluster_stats = cluster_stats.merge_rows_inplace(groups, n_groups)
        new_thr = cluster_stats.thresholds(config.singleton)
        changed = (sizes > 1) | (new_thr != thr[first])
        if start_merges and len(merges) == 1:
            changed[:] = True  # after round zero every pair is searched against the thresholds
        rows = np.flatnonzero(changed)
        carried = _carry_edges(all_i, all_j, all_d, groups, changed)
        thr = new_thr

    if silhouette and act_idx.size and len(merges) < config.max_iterations:
        cap = config.max_iterations - len(merges)
        track2cluster, n_groups, rounds, final_silhouette = silhouette_rounds(
            track_stats, track2cluster, len(cluster_stats), cannot_local,
            track_stats.thresholds(config.singleton) if excess else None, cap, config.tile_entries,
            table if len(cluster_stats) == act_idx.size else None)
        merges += rounds
        converged = len(rounds) < cap
        if rounds:
            cluster_stats = track_stats.grouped(track2cluster, n_groups)

    labels = np.full(n, -1, np.int64)
    labels[act_idx] = track2cluster
    labels = relabel_by_size(labels)
    margins = track_margins(stats, labels, config.tile_entries) if config.compute_margins else np.full(n, np.nan)
    return ClusteringResult(
        labels=labels,
        n_clusters=int(len(cluster_stats)) if act_idx.size else 0,
        iterations=len(merges),
        merges_per_iteration=merges,
        margins=margins,
        method=stats.metric,
        info={
            "converged": bool(converged),
            "n_excluded": int(excl.sum()),
            "n_cannot_link": int(cannot.shape[0]),
            "singleton": config.singleton,
            "linkage": config.linkage,
            "start": config.start,
            "rounds": config.rounds,
            "neighbour_distance": ("none" if config.start == "threshold" and config.linkage == "transitive"
                                   and not silhouette else "excess" if excess else "raw"),
            "start_merges": start_merges,
            "agreement": agreeing is not None,
            "start_links_refused": refused,
            "seconds": time.perf_counter() - start,
            **({} if final_silhouette is None else {"silhouette": final_silhouette}),
        },
    )


def track_margins(stats: TrackStats, labels: np.ndarray, tile_entries: int = DEFAULT_TILE_ENTRIES) -> np.ndarray:
    """Per track, the distance to its second-nearest cluster less that to its nearest (NaN for
    Unknown tracks, label -1)."""
    margins = np.full(len(stats), np.nan)
    act = np.flatnonzero(labels >= 0)
    if act.size:
        tracks = stats if act.size == len(stats) else stats.subset(act)
        cluster, n_clusters = canonical_groups(labels[act])
        clusters = tracks if n_clusters == act.size else tracks.grouped(cluster, n_clusters)
        best, second = best_two_distances(tracks, clusters, tile_entries)
        margins[act] = second - best
    return margins


def _uses_excess(config: AggregationConfig, stats: TrackStats) -> bool:
    return config.neighbour_distance == "excess" or (config.neighbour_distance == "auto" and stats.metric == "loss")


def result_silhouette(stats: TrackStats, result: ClusteringResult, config: AggregationConfig) -> float:
    """The mean silhouette of ``result``'s clusters over its non-Unknown tracks, on the distances the
    silhouette rounds use under ``config`` (the excess for the loss metric under "auto")."""
    act = np.flatnonzero(result.labels >= 0)
    tracks = stats if act.size == len(stats) else stats.subset(act)
    cluster, n_clusters = canonical_groups(result.labels[act])
    offsets = tracks.thresholds(config.singleton) if _uses_excess(config, stats) else None
    return mean_silhouette(tracks, cluster, n_clusters, offsets, config.tile_entries)


def _local_pairs(pairs: np.ndarray, act: np.ndarray, n: int) -> np.ndarray:
    """Track pairs ``(m, 2)`` renumbered to positions in ``act`` (the active tracks of ``n``); a
    track outside ``act`` becomes -1."""
    local = np.full(n, -1, np.int64)
    local[act] = np.arange(act.size)
    return local[pairs]


def _agreement_clusters(agreement: TrackStats, act_idx: np.ndarray, track2cluster: np.ndarray,
                        n_clusters: int) -> TrackStats:
    """The agreement view's statistics of the clusters the start round begins from."""
    tracks = agreement if act_idx.size == len(agreement) else agreement.subset(act_idx)
    return tracks if n_clusters == act_idx.size else tracks.grouped(track2cluster, n_clusters)


def _best_start(stats: TrackStats, excluded, must_link, cannot_link, config: AggregationConfig,
                agreement: TrackStats | None = None) -> ClusteringResult:
    """``start="best"``: the aggregation from each of :data:`BEST_OF_STARTS` (the same rounds; the
    agreeing start only with an ``agreement`` view under ``config.agreement``); the result whose
    clusters have the highest mean silhouette is kept (ties: the earlier start). A run's
    ``info["silhouette"]`` is that mean where its silhouette rounds computed it on their last round
    (otherwise :func:`result_silhouette` computes it); ``info["start_silhouettes"]`` records each."""
    began = time.perf_counter()
    shared: dict = {}
    names = [s for s in BEST_OF_STARTS if s != AGREEING_START or (agreement is not None and config.agreement)]
    runs = [_aggregate(stats, excluded, must_link, cannot_link,
                       replace(config, start="first-neighbours" if s == AGREEING_START else s, compute_margins=False),
                       agreement if s == AGREEING_START else None, shared)
            for s in names]  # fmt: skip
    # the silhouette rounds report the mean silhouette of the clusters they stopped at
    scores = [r.info["silhouette"] if "silhouette" in r.info else result_silhouette(stats, r, config) for r in runs]
    chosen = int(np.argmax(scores))
    best = runs[chosen]
    if config.compute_margins:
        best.margins = track_margins(stats, best.labels, config.tile_entries)
    best.info.update(start="best", start_chosen=names[chosen], start_silhouettes=dict(zip(names, scores)),
                     seconds=time.perf_counter() - began)
    return best


def _view_rounds(stats: TrackStats, result: ClusteringResult, view: TrackStats, cannot_link,
                 config: AggregationConfig) -> ClusteringResult:
    """Silhouette rounds on the ``view`` (the agreement view) from ``result``'s clusters: see
    :data:`DEFAULT_VIEW_ROUNDS`. Unknown tracks stay Unknown; cannot-link pairs are refused as in
    every round. ``info["view_merges"]``: clusters merged by these rounds."""
    began = time.perf_counter()
    act = np.flatnonzero(result.labels >= 0)
    result.info["view_merges"] = 0
    if act.size < 3:
        return result
    pairs = np.asarray(cannot_link if cannot_link is not None else np.zeros((0, 2)), dtype=np.int64).reshape(-1, 2)
    pairs = _local_pairs(pairs, act, len(stats))
    pairs = pairs[(pairs >= 0).all(axis=1)]
    cluster, n_clusters = canonical_groups(result.labels[act])
    tracks = view if act.size == len(view) else view.subset(act)
    cluster, n_groups, rounds, _ = silhouette_rounds(tracks, cluster, n_clusters, pairs, None,
                                                     config.max_iterations, config.tile_entries, shift=False)
    if rounds:
        labels = np.full(len(stats), -1, np.int64)
        labels[act] = cluster
        result.labels = relabel_by_size(labels)
        result.n_clusters = n_groups
        result.iterations += len(rounds)
        result.merges_per_iteration = [*result.merges_per_iteration, *rounds]
        if config.compute_margins:
            result.margins = track_margins(stats, result.labels, config.tile_entries)
        result.info["view_merges"] = int(sum(rounds))
    result.info["seconds"] = result.info.get("seconds", 0.0) + time.perf_counter() - began
    return result
