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

Cost. Every track keeps its ``_KEEP`` nearest other clusters and every cluster its nearest
clusters, with a bound under which the list is complete (:class:`_Nearest`). A merged cluster's
mean distance to a row is the size-weighted mean of its parts', so after a round only listed
entries of merged clusters are recomputed, one pair each, and only rows left with too few entries
are searched again. From single tracks (every round merges thousands of pairs) that took 50k
synthetic tracks from 177 s to about 20 s (``benchmarks/cluster_scale.py``); the clusters are
the same on all saved finetunes of the study.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vcn_plugin.clustering.search import DEFAULT_TILE_ENTRIES, smallest_per_row, tile_size
from vcn_plugin.clustering.stats import TrackStats

#: nearest other clusters kept per track and per cluster between rounds (see :class:`_Nearest`)
_KEEP = 8
#: the length of a shared nearest-track table (:func:`~vcn_plugin.clustering.search.nearest_table`)
NEIGHBOURS_KEPT = _KEEP
#: listed nearest clusters a track needs: :func:`pair_gains` looks past the two clusters of a merge
_NEED = 3


@dataclass
class _Nearest:
    """Per row (a track, or a cluster), its nearest other clusters by mean track distance, sorted
    (ties: the smaller index), -1 / inf padded, and ``bound``: no cluster left out is nearer. Kept
    across rounds instead of recomputed: a merged cluster's mean distance to a row is the
    size-weighted mean of its parts' (the distances are means over track pairs), so a merged
    cluster with no part listed stays at or above the bound, and a listed entry at or under the
    bound is exactly in place. Only rows left with too few such entries are searched again."""

    idx: np.ndarray
    d: np.ndarray
    bound: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "_Nearest":
        return cls(np.full((n, _KEEP), -1, np.int64), np.full((n, _KEEP), np.inf), np.full(n, np.inf))

    def listed(self) -> np.ndarray:
        return np.count_nonzero(self.idx >= 0, axis=1)


@dataclass
class _Round:
    """The silhouette state of one round, per track: its mean distance to the other tracks of its
    cluster (``own``), its nearest other clusters (``near``) and its silhouette."""

    own: np.ndarray
    near: _Nearest
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

    def between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Mean track-to-track distance (float64) between the paired clusters ``a`` and ``b`` (a != b)."""
        return self.stats.pair_distances(a, self.stats, b) - self.half[a] - self.half[b]

    def track_tile(self, tracks: TrackStats, r: np.ndarray) -> np.ndarray:
        """Distances from tracks ``r`` to every cluster, at the stats' precision, less the row's own
        half-offset (it does not change a row's order)."""
        d = tracks.distances(r, self.stats, np.arange(self.sizes.size))
        d -= self.half.astype(d.dtype)[None, :]
        return d

    def cluster_tile(self, r: np.ndarray) -> np.ndarray:
        """:meth:`track_tile` from clusters ``r``."""
        return self.track_tile(self.stats, r)


def _search(lists: _Nearest, rows: np.ndarray, tile: Callable[[np.ndarray], np.ndarray],
            exact: Callable[[np.ndarray, np.ndarray], np.ndarray], exclude: np.ndarray, n_clusters: int,
            tile_entries: int) -> None:
    """Fill ``lists`` for ``rows`` with their ``_KEEP`` nearest clusters: candidates chosen on
    ``tile(r)`` (the stats' precision, two spare for near ties), then sorted by ``exact(rows,
    cols)``; the bound is the first spare's exact distance; ``exclude[row]`` (its own cluster) is
    never listed."""
    k = min(_KEEP, n_clusters - 1)
    picks = min(_KEEP + 2, n_clusters - 1)
    lists.idx[rows], lists.d[rows], lists.bound[rows] = -1, np.inf, np.inf
    if k <= 0:
        return
    step = tile_size(n_clusters, tile_entries)
    for s in range(0, rows.size, step):
        r = rows[s : s + step]
        d = tile(r)
        d[np.arange(r.size), exclude[r]] = np.inf
        part, _ = smallest_per_row(d, picks)
        vals = exact(np.repeat(r, picks), part.ravel()).reshape(r.size, picks)
        order = np.lexsort((part, vals), axis=1)
        part, vals = np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
        lists.idx[r, :k], lists.d[r, :k] = part[:, :k], vals[:, :k]
        if k < picks:
            lists.bound[r] = vals[:, k]


def _carry(idx: np.ndarray, d: np.ndarray, bound: np.ndarray, relabel: np.ndarray, fresh: np.ndarray,
           exclude: np.ndarray, exact: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> _Nearest:
    """The rows' lists renumbered to the new clusters (``relabel``): one entry per cluster,
    ``exclude[row]`` dropped, the distances recomputed where ``fresh[row, entry]`` or the cluster
    merged (``relabel`` maps two old clusters to it), entries above the bound dropped, sorted and
    cut to ``_KEEP`` (the bound lowered to the first entry cut)."""
    idx = np.where(idx >= 0, relabel[np.maximum(idx, 0)], -1)
    idx[idx == exclude[:, None]] = -1
    order = np.argsort(idx, axis=1, kind="stable")
    idx, d, fresh = (np.take_along_axis(x, order, axis=1) for x in (idx, d, fresh))
    idx[:, 1:][idx[:, 1:] == idx[:, :-1]] = -1
    merged = np.bincount(relabel, minlength=int(relabel.max()) + 1 if relabel.size else 0) > 1
    fresh = (idx >= 0) & (fresh | merged[np.maximum(idx, 0)])
    rows, cols = np.nonzero(fresh)
    d = np.where(idx >= 0, d, np.inf)
    d[rows, cols] = exact(rows, idx[rows, cols])
    gone = d > bound[:, None]
    idx[gone], d[gone] = -1, np.inf
    order = np.lexsort((idx, d), axis=1)
    idx, d = np.take_along_axis(idx, order, axis=1), np.take_along_axis(d, order, axis=1)
    if idx.shape[1] > _KEEP:
        bound = np.minimum(bound, d[:, _KEEP])
        idx, d = idx[:, :_KEEP], d[:, :_KEEP]
    return _Nearest(np.ascontiguousarray(idx), np.ascontiguousarray(d), bound)


def _own(tracks: TrackStats, groups: _Clusters, half: np.ndarray, self_d: np.ndarray) -> np.ndarray:
    """Per track, its mean distance to the other tracks of its cluster (0 when alone)."""
    cluster = groups.cluster
    n_mine = groups.sizes[cluster]
    to_own = groups.mean_distances(tracks, half, np.arange(len(tracks)), cluster)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_mine > 1, (n_mine * to_own - self_d) / (n_mine - 1), 0.0)


def _round(own: np.ndarray, near: _Nearest, groups: _Clusters) -> _Round:
    return _Round(own, near, silhouette_values(own, near.d[:, 0], groups.sizes[groups.cluster] < 2))


def _state(tracks: TrackStats, groups: _Clusters, half: np.ndarray, self_d: np.ndarray, tile_entries: int) -> _Round:
    """Per track, the mean distances to its own cluster and to its nearest other clusters, searched
    tile by tile."""
    near = _Nearest.empty(len(tracks))
    _search(near, np.arange(len(tracks)), lambda r: groups.track_tile(tracks, r),
            lambda r, c: groups.mean_distances(tracks, half, r, c), groups.cluster, groups.sizes.size, tile_entries)
    return _round(_own(tracks, groups, half, self_d), near, groups)


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
    nearest = _first_not_in(state.near.idx[rows], state.near.d[rows], b)
    change = silhouette_values(own, nearest, np.zeros(rows.size, bool)) - state.silhouette[rows]
    gain = np.bincount(pair[entry], weights=change, minlength=n_pairs)

    # other tracks whose nearest other cluster merges
    first = state.near.idx[:, 0]
    has = np.flatnonzero(first >= 0)
    order, starts, counts = _grouped(first[has], n_clusters)
    entry, rows = _expand(ends, has[order], starts, counts)
    keep = cluster[rows] != others[entry]
    entry, rows = entry[keep], rows[keep]
    a, b = ends[entry], others[entry]
    union = (sizes[a] * state.near.d[rows, 0] + sizes[b] * groups.mean_distances(tracks, half, rows, b)) / (sizes[a] + sizes[b])
    nearest = np.minimum(_first_not_in(state.near.idx[rows], state.near.d[rows], a, b), union)
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


def _shifted(tracks: TrackStats, offsets: np.ndarray | None, shift: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per track, the half-offset of every distance from it, shifted (``shift``) so that the
    smallest self-distance is 0, and its self-distance after the shift. The loss needs the shift
    (its entropy floor); a distance that is already 0 for identical tracks (the cosine distance) does not."""
    n = len(tracks)
    half = np.zeros(n) if offsets is None else np.asarray(offsets, np.float64) / 2
    self_d = tracks.self_distance() - 2 * half
    floor = float(self_d.min()) if n and shift else 0.0
    return half + floor / 2, self_d - floor


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
    table: tuple[np.ndarray, np.ndarray] | None = None,
    shift: bool = True,
) -> tuple[np.ndarray, int, list[int], float | None]:
    """Merge the clusters of ``tracks`` (``cluster``: track -> cluster, canonical numbering)
    while the mean silhouette rises (see the module docstring).

    Args:
        tracks: per-track statistics (one row per track).
        cluster: (n,) cluster of each track, 0..n_clusters-1.
        cannot: (m, 2) track pairs that must stay in different clusters.
        offsets: per-track values subtracted, halved, from both ends of every distance (the
            thresholds, for the loss metric's excess); None: the distance itself.
        max_rounds: cap on rounds.
        table: the tracks' nearest tracks (:func:`~vcn_plugin.clustering.search.nearest_table`,
            same offsets), used for the first round when every track is its own cluster.
        shift: shift every distance so that the smallest self-distance is 0 (default True: the
            loss, whose entropy floor the silhouette must not see); False for a distance that is
            already 0 between identical tracks (the cosine distance), as sklearn computes it.
    Returns:
        (cluster, n_clusters, merges per round that merged something, the tracks' mean silhouette
        under the final clusters where the last round computed it, else None).
    """
    from vcn_plugin.clustering.aggregation import canonical_groups

    n = len(tracks)
    cluster = _check_clusters(cluster, n, n_clusters)
    half, self_d = _shifted(tracks, offsets, shift)
    means = tracks.per_track_means()
    merges: list[int] = []
    between: _Nearest | None = None  # per cluster, its nearest clusters
    merged: _Merged | None = None  # the last round's merges, for carrying ``between``
    near: _Nearest | None = None  # per track, its nearest other clusters
    final: float | None = None
    while n_clusters > 2 and len(merges) < max_rounds:
        groups = _Clusters.of(means, cluster, n_clusters, half)
        if table is not None and table[0].shape[0] != n:
            raise ValueError(f"table must list neighbours for each of the {n} tracks, got {table[0].shape[0]}")
        if between is None and table is not None and n_clusters == n:
            between = _lists_from_table(table, cluster, groups.between, n_clusters)
            _search(between, np.flatnonzero(between.listed() < 1), groups.cluster_tile, groups.between,
                    np.arange(n_clusters), n_clusters, tile_entries)
        elif between is None:
            between = _Nearest.empty(n_clusters)
            _search(between, np.arange(n_clusters), groups.cluster_tile, groups.between, np.arange(n_clusters),
                    n_clusters, tile_entries)
        else:
            between = _carry(*merged.lists(), groups.between)
            _search(between, np.flatnonzero(between.listed() < 1), groups.cluster_tile, groups.between,
                    np.arange(n_clusters), n_clusters, tile_entries)
        pa, pb = _candidates(between.idx[:, 0], cluster, cannot)
        if not pa.size:
            break
        distances = lambda r, c: groups.mean_distances(tracks, half, r, c)  # noqa: E731
        if near is None and n_clusters == n:  # every track alone: its nearest clusters are its cluster's
            near = _Nearest(between.idx[cluster], between.d[cluster], between.bound[cluster])
        elif near is None:
            near = _Nearest.empty(n)
            _search(near, np.arange(n), lambda r: groups.track_tile(tracks, r), distances, cluster, n_clusters, tile_entries)
        else:
            near = _carry(near.idx, near.d, near.bound, relabel, np.zeros(near.idx.shape, bool), cluster, distances)
            _search(near, np.flatnonzero(near.listed() < min(_NEED, n_clusters - 1)),
                    lambda r: groups.track_tile(tracks, r), distances, cluster, n_clusters, tile_entries)
        state = _round(_own(tracks, groups, half, self_d), near, groups)
        partner = _take(pa, pb, pair_gains(state, tracks, groups, pa, pb, half), n_clusters)
        take = partner >= 0
        if not take.any():
            final = float(np.mean(state.silhouette))
            break
        target = np.where(take, np.minimum(np.arange(n_clusters), partner), np.arange(n_clusters))
        relabel, n_groups = canonical_groups(target)
        merges.append(n_clusters - n_groups)
        merged = _Merged(between, relabel, partner, groups.sizes, n_groups)
        cluster, n_clusters = relabel[cluster], n_groups
    return cluster, n_clusters, merges, final


def _lists_from_table(table: tuple[np.ndarray, np.ndarray], cluster: np.ndarray,
                      exact: Callable[[np.ndarray, np.ndarray], np.ndarray], n_clusters: int) -> _Nearest:
    """The clusters' lists from a nearest-track table when every track is its own cluster: the
    listed entries re-sorted on ``exact`` distances, the bound the last of them (none when the
    table lists every other track)."""
    idx, d = table
    k = min(idx.shape[1], _KEEP)
    near = _Nearest.empty(n_clusters)
    rows = cluster
    part = np.where(idx[:, :k] >= 0, cluster[np.maximum(idx[:, :k], 0)], -1)
    vals = np.full(part.shape, np.inf)
    ok = part >= 0
    r, c = np.nonzero(ok)
    vals[r, c] = exact(rows[r], part[r, c])
    order = np.lexsort((np.where(ok, part, np.iinfo(np.int64).max), vals), axis=1)
    near.idx[rows, :k] = np.take_along_axis(part, order, axis=1)
    near.d[rows, :k] = np.take_along_axis(vals, order, axis=1)
    if k < n_clusters - 1:
        near.bound[rows] = np.where(ok.all(axis=1), near.d[rows, k - 1], -np.inf)  # a short list: search it
        near.idx[rows[~ok.all(axis=1)]] = -1
    return near


@dataclass
class _Merged:
    """One round's merges, as :func:`_carry` needs them for the clusters' lists."""

    between: _Nearest
    relabel: np.ndarray
    partner: np.ndarray
    sizes: np.ndarray
    n_groups: int

    def lists(self) -> tuple:
        """:func:`_carry`'s arguments: a merged cluster gathers both parts' lists (all recomputed),
        and its bound is the size-weighted mean of theirs."""
        between, relabel, partner, sizes, n_groups = self.between, self.relabel, self.partner, self.sizes, self.n_groups
        first = np.full(n_groups, relabel.size, np.int64)
        np.minimum.at(first, relabel, np.arange(relabel.size))  # the smaller old cluster of each new one
        second = partner[first]  # the larger, or -1
        both = second >= 0
        two = np.maximum(second, 0)
        idx = np.concatenate([between.idx[first], np.where(both[:, None], between.idx[two], -1)], axis=1)
        d = np.concatenate([between.d[first], np.where(both[:, None], between.d[two], np.inf)], axis=1)
        with np.errstate(invalid="ignore"):
            weighted = (sizes[first] * between.bound[first] + sizes[two] * between.bound[two]) / (sizes[first] + sizes[two])
        bound = np.where(both, weighted, between.bound[first])
        fresh = np.repeat(both[:, None], idx.shape[1], axis=1)
        return idx, d, bound, relabel, fresh, np.arange(n_groups)
