"""Silhouette rounds: merge clusters while the tracks' mean silhouette rises.

After the start round (:data:`~vcn_plugin.clustering.aggregation.DEFAULT_START`), the paper's
threshold rounds merge two clusters when their distance is under the larger of their two
thresholds (mean intra-cluster losses). Measured over three finetune seeds
(``benchmarks/cluster_rules.py``), that test fails in two opposite ways: where the finetuned
teacher stays near uniform (the film-look and look-alike episodes) every threshold sits at
about ln K and the test accepts pairs of different people; where the teacher is sharp (a series
of one cast) one person's clusters from different shots or episodes sit just above both
thresholds and are refused. The silhouette (Rousseeuw, J. Comput. Appl. Math. 1987) asks a
relative question instead, with no parameter: is each track nearer, on average, to the tracks of
its own cluster than to those of the nearest other cluster? A merge is made only when it raises
the mean silhouette over all tracks.

Each round takes the pairs of clusters that are each other's nearest by mean track-to-track
distance (average linkage; a pair holding a cannot-link pair is dropped for the round), scores every
such merge alone against the current clusters, and applies all merges that raise the mean
silhouette; rounds repeat until none does (the pairs of one round are disjoint). On every saved
finetune of the study this gives the same clusters as the greedy form (one best merge per
round), which ``benchmarks/cluster_rules.py`` computes with sklearn's ``silhouette_score``.

Distances. Every :class:`~vcn_plugin.clustering.stats.TrackStats` distance is a mean over face
pairs and bilinear in per-track means, so the mean distance from a track to the tracks of a
cluster is one distance to the cluster's *track-averaged* statistics (``per_track_means``
grouped): no track-by-track matrix is ever held. With ``offsets`` (the loss metric's excess, see
:data:`~vcn_plugin.clustering.aggregation.DEFAULT_NEIGHBOUR_DISTANCE`) a pair's distance is
``d(i, j) - (o_i + o_j) / 2``. The silhouette needs distances >= 0 and the loss has an entropy
floor, so every distance is shifted by the smallest self-distance of a track (``d(i, i) - o_i``);
on every saved finetune of the study that is the smallest entry of the whole track matrix.
Conventions follow sklearn: a track alone in its cluster has silhouette 0, and the last two
clusters are never merged (the silhouette of one cluster is undefined).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcn_plugin.clustering.search import DEFAULT_TILE_ENTRIES, nearest_neighbours, smallest_per_row, tile_size
from vcn_plugin.clustering.stats import TrackStats

#: other clusters kept per track: enough to know a track's nearest other cluster after any one merge
_TOP = 3


@dataclass
class _Round:
    """The silhouette state of one round, per track: its mean distance to the other tracks of its
    cluster (``own``), the nearest other clusters and their mean distances (``near``, ``near_d``,
    ``_TOP`` of them, inf-padded), and its silhouette."""

    own: np.ndarray
    near: np.ndarray
    near_d: np.ndarray
    silhouette: np.ndarray


def silhouette_values(a: np.ndarray, b: np.ndarray, alone: np.ndarray) -> np.ndarray:
    """``(b - a) / max(a, b)``, 0 for tracks ``alone`` in their cluster (and where both are 0).
    Mean distances below 0 count as 0: the shift by the smallest self-distance keeps every
    distance >= 0 on all measured data, and the formula is meaningless below it."""
    a, b = np.maximum(a, 0.0), np.maximum(b, 0.0)
    top = np.maximum(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(top > 0, (b - a) / np.where(top > 0, top, 1.0), 0.0)
    return np.where(alone, 0.0, s)


@dataclass
class _Clusters:
    """The clusters of one round: track-averaged statistics (a distance to a row is a mean over
    its tracks), the mean half-offset of their tracks, and their sizes in tracks."""

    cluster: np.ndarray
    stats: TrackStats
    half: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, means: TrackStats, cluster: np.ndarray, n_clusters: int, half: np.ndarray) -> "_Clusters":
        sizes = np.bincount(cluster, minlength=n_clusters).astype(np.float64)
        return cls(cluster, means.grouped(cluster, n_clusters), np.bincount(cluster, weights=half, minlength=n_clusters) / sizes, sizes)

    def mean_distances(self, tracks: TrackStats, half: np.ndarray, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Mean distance (float64) from each track of ``rows`` to the tracks of the paired cluster of ``targets``."""
        return tracks.pair_distances(rows, self.stats, targets) - half[rows] - self.half[targets]


def _state(tracks: TrackStats, groups: _Clusters, half: np.ndarray, self_d: np.ndarray, tile_entries: int,
           previous: _Round | None = None, rows: np.ndarray | None = None) -> _Round:
    """Per track, the mean distances to its own cluster and to its ``_TOP`` nearest other clusters,
    tile by tile. With ``previous`` (renumbered to the current clusters) only ``rows`` are
    recomputed: a track whose cluster and nearest clusters did not merge keeps them, since a merged
    cluster is never nearer to it than the nearer of its two parts."""
    cluster, sizes, clusters, cluster_half = groups.cluster, groups.sizes, groups.stats, groups.half
    n_clusters = sizes.size
    n = len(tracks)
    if previous is None:
        own, near, near_d = np.zeros(n), np.full((n, _TOP), -1, np.int64), np.full((n, _TOP), np.inf)
        rows = np.arange(n)
    else:
        own, near, near_d = previous.own, previous.near, previous.near_d
        near_d[rows], near[rows] = np.inf, -1
    k = min(_TOP, n_clusters - 1)
    cols = np.arange(n_clusters)
    step = tile_size(n_clusters, tile_entries)
    for s in range(0, rows.size, step):
        r = rows[s : s + step]
        d = tracks.distances(r, clusters, cols)  # the stats' precision: the selection needs no more
        mine = cluster[r]
        n_mine = sizes[mine]
        to_own = groups.mean_distances(tracks, half, r, mine)
        with np.errstate(invalid="ignore", divide="ignore"):
            own[r] = np.where(n_mine > 1, (n_mine * to_own - self_d[r]) / (n_mine - 1), 0.0)
        if k > 0:  # k < n_clusters: the own column is among the rest
            d -= cluster_half.astype(d.dtype)[None, :]  # the row's own half-offset does not change its order
            d[np.arange(r.size), mine] = np.inf
            part, _ = smallest_per_row(d, k)
            vals = groups.mean_distances(tracks, half, np.repeat(r, k), part.ravel()).reshape(r.size, k)
            order = np.argsort(vals, axis=1, kind="stable")
            near[r, :k] = np.take_along_axis(part, order, axis=1)
            near_d[r, :k] = np.take_along_axis(vals, order, axis=1)
    return _Round(own, near, near_d, silhouette_values(own, near_d[:, 0], sizes[cluster] < 2))


def _nearest_clusters(groups: _Clusters, rows: np.ndarray, nn: np.ndarray, tile_entries: int) -> np.ndarray:
    """``nn`` with the nearest other cluster (mean track distance; ties to the smaller index)
    recomputed for ``rows``. The other rows keep theirs: a merged cluster is never nearer to a
    cluster than the nearer of its two parts (its mean distance lies between theirs)."""
    n_clusters = groups.sizes.size
    cols = np.arange(n_clusters)
    step = tile_size(n_clusters, tile_entries)
    for s in range(0, rows.size, step):
        r = rows[s : s + step]
        d = groups.stats.distances(r, groups.stats, cols).astype(np.float64)
        d -= groups.half[r, None] + groups.half[None, :]
        d[np.arange(r.size), r] = np.inf
        nn[r] = np.argmin(d, axis=1)
    return nn


def _first_not_in(near: np.ndarray, near_d: np.ndarray, *excluded: np.ndarray) -> np.ndarray:
    """Per row, the first of the sorted nearest clusters not among ``excluded`` (inf if none)."""
    ok = near >= 0
    for e in excluded:
        ok &= near != e[:, None]
    first = np.argmax(ok, axis=1)
    vals = near_d[np.arange(near.shape[0]), first]
    return np.where(ok.any(axis=1), vals, np.inf)


def _grouped(keys: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items (indices into ``keys``) sorted by group, with each group's start and count."""
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(keys, minlength=n_groups)
    return order, np.cumsum(counts) - counts, counts


def _expand(entries: np.ndarray, order: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``entries`` (group ids, repeats allowed) every item of its group: (entry, item) per row."""
    c = counts[entries]
    entry = np.repeat(np.arange(entries.size), c)
    within = np.arange(entry.size) - np.repeat(np.cumsum(c) - c, c)
    return entry, order[starts[entries][entry] + within]


def pair_gains(state: _Round, tracks: TrackStats, groups: _Clusters, pa: np.ndarray, pb: np.ndarray,
               half: np.ndarray) -> np.ndarray:
    """The change of the summed silhouette that each candidate merge (cluster ``pa[k]`` with
    ``pb[k]``) would make on its own, against the current clusters. A cluster may be in several
    candidates: each is scored alone. Only two kinds of track change: the tracks of the pair (their
    own cluster grows) and the other tracks whose nearest other cluster is one of the pair (it
    becomes the pair's union, or the next cluster if that is nearer)."""
    n_pairs = pa.size
    ends, others = np.concatenate([pa, pb]), np.concatenate([pb, pa])
    pair = np.tile(np.arange(n_pairs), 2)
    cluster, sizes, n_clusters = groups.cluster, groups.sizes, groups.sizes.size

    # tracks of a merging cluster: their own cluster grows by the partner's tracks
    entry, rows = _expand(ends, *_grouped(cluster, n_clusters))
    a, b = ends[entry], others[entry]
    to_b = groups.mean_distances(tracks, half, rows, b)
    own = ((sizes[a] - 1) * state.own[rows] + sizes[b] * to_b) / (sizes[a] + sizes[b] - 1)
    nearest = _first_not_in(state.near[rows], state.near_d[rows], b)
    change = silhouette_values(own, nearest, np.zeros(rows.size, bool)) - state.silhouette[rows]
    gain = np.bincount(pair[entry], weights=change, minlength=n_pairs)

    # other tracks whose nearest other cluster merges
    first = state.near[:, 0]
    has = np.flatnonzero(first >= 0)
    order, starts, counts = _grouped(first[has], n_clusters)
    entry, rows = _expand(ends, has[order], starts, counts)
    keep = cluster[rows] != others[entry]
    entry, rows = entry[keep], rows[keep]
    a, b = ends[entry], others[entry]
    union = (sizes[a] * state.near_d[rows, 0] + sizes[b] * groups.mean_distances(tracks, half, rows, b)) / (sizes[a] + sizes[b])
    nearest = np.minimum(_first_not_in(state.near[rows], state.near_d[rows], a, b), union)
    change = silhouette_values(state.own[rows], nearest, sizes[cluster[rows]] < 2) - state.silhouette[rows]
    return gain + np.bincount(pair[entry], weights=change, minlength=n_pairs)


def _candidates(nn: np.ndarray, cluster: np.ndarray, cannot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of clusters that are each other's nearest (``a < b``), less those that hold a
    cannot-link pair."""
    a = np.flatnonzero((nn >= 0) & (nn[np.maximum(nn, 0)] == np.arange(nn.size)))
    a = a[a < nn[a]]
    b = nn[a]
    if len(cannot) and a.size:
        blocked = np.sort(cluster[cannot], axis=1)
        keep = ~np.isin(a * nn.size + b, blocked[:, 0] * nn.size + blocked[:, 1])
        a, b = a[keep], b[keep]
    return a, b


def _take(pa: np.ndarray, pb: np.ndarray, gain: np.ndarray, n_clusters: int) -> np.ndarray:
    """Each cluster's partner in a merge to make (-1 for none): every candidate pair with a
    positive gain (mutually nearest pairs are disjoint, so all of them can merge at once)."""
    partner = np.full(n_clusters, -1, np.int64)
    keep = gain > 0
    partner[pa[keep]], partner[pb[keep]] = pb[keep], pa[keep]
    return partner


def _check_clusters(cluster: np.ndarray, n: int, n_clusters: int) -> np.ndarray:
    cluster = np.asarray(cluster, np.int64)
    if cluster.shape != (n,) or (n and (cluster.min() < 0 or np.bincount(cluster, minlength=n_clusters).min() < 1
                                        or cluster.max() >= n_clusters)):
        raise ValueError(f"cluster must give each of the {n} tracks one of {n_clusters} clusters, none empty")
    return cluster


def _shifted(tracks: TrackStats, offsets: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per track, the half-offset of every distance from it, shifted so that the smallest
    self-distance is 0, and its self-distance after the shift."""
    n = len(tracks)
    half = np.zeros(n) if offsets is None else np.asarray(offsets, np.float64) / 2
    self_d = tracks.self_distance() - 2 * half
    shift = float(self_d.min()) if n else 0.0
    return half + shift / 2, self_d - shift


def mean_silhouette(tracks: TrackStats, cluster: np.ndarray, n_clusters: int, offsets: np.ndarray | None = None,
                    tile_entries: int = DEFAULT_TILE_ENTRIES) -> float:
    """The tracks' mean silhouette under ``cluster`` (track -> cluster, canonical numbering), on the
    distances of :func:`silhouette_rounds`; 0 for fewer than two clusters or all tracks alone (sklearn)."""
    n = len(tracks)
    cluster = _check_clusters(cluster, n, n_clusters)
    if not 1 < n_clusters < n:
        return 0.0
    half, self_d = _shifted(tracks, offsets)
    groups = _Clusters.of(tracks.per_track_means(), cluster, n_clusters, half)
    return float(np.mean(_state(tracks, groups, half, self_d, tile_entries).silhouette))


def silhouette_rounds(
    tracks: TrackStats,
    cluster: np.ndarray,
    n_clusters: int,
    cannot: np.ndarray,
    offsets: np.ndarray | None = None,
    max_rounds: int = 100,
    tile_entries: int = DEFAULT_TILE_ENTRIES,
) -> tuple[np.ndarray, int, list[int]]:
    """Merge the clusters of ``tracks`` (``cluster``: track -> cluster, canonical numbering)
    while the mean silhouette rises (see the module docstring).

    Args:
        tracks: per-track statistics (one row per track).
        cluster: (n,) cluster of each track, 0..n_clusters-1.
        cannot: (m, 2) track pairs that must stay in different clusters.
        offsets: per-track values subtracted, halved, from both ends of every distance (the
            thresholds, for the loss metric's excess); None: the distance itself.
        max_rounds: cap on rounds.
    Returns:
        (cluster, n_clusters, merges per round that merged something).
    """
    from vcn_plugin.clustering.aggregation import canonical_groups

    n = len(tracks)
    cluster = _check_clusters(cluster, n, n_clusters)
    half, self_d = _shifted(tracks, offsets)
    means = tracks.per_track_means()
    merges: list[int] = []
    state: _Round | None = None
    dirty: np.ndarray | None = None
    nn: np.ndarray | None = None
    while n_clusters > 2 and len(merges) < max_rounds:
        groups = _Clusters.of(means, cluster, n_clusters, half)
        if nn is None:
            nn, _ = nearest_neighbours(groups.stats, None, tile_entries, 2 * groups.half)
        else:
            nn = _nearest_clusters(groups, changed, nn, tile_entries)
        pa, pb = _candidates(nn, cluster, cannot)
        if not pa.size:
            break
        state = _state(tracks, groups, half, self_d, tile_entries, state, dirty)
        partner = _take(pa, pb, pair_gains(state, tracks, groups, pa, pb, half), n_clusters)
        take = partner >= 0
        if not take.any():
            break
        target = np.where(take, np.minimum(np.arange(n_clusters), partner), np.arange(n_clusters))
        relabel, n_groups = canonical_groups(target)
        merges.append(n_clusters - n_groups)
        dirty = np.flatnonzero(take[cluster] | np.any(take[np.maximum(state.near, 0)] & (state.near >= 0), axis=1))
        state.near = np.where(state.near >= 0, relabel[np.maximum(state.near, 0)], -1)
        changed = np.unique(relabel[take | take[nn]])  # merged clusters, and those whose nearest merged
        moved = np.empty(n_groups, np.int64)
        moved[relabel] = relabel[nn]  # a merged cluster's entry is recomputed next round
        nn = moved
        cluster, n_clusters = relabel[cluster], n_groups
    return cluster, n_clusters, merges
