"""FINCH: First Integer Neighbor Clustering Hierarchy.

Sarfraz, Sharma and Stiefelhagen, "Efficient Parameter-free Clustering Using
First Neighbor Relations", CVPR 2019.

Each sample ``i`` links to its first (nearest, cosine) neighbour ``k_i``. The
adjacency ``A(i, j) = 1 if j = k_i or k_j = i or k_i = k_j`` is symmetric, and
its connected components are the clusters of the first partition. The
``k_i = k_j`` case adds nothing to connectivity (both already link to
``k_i``), so the components are those of the undirected graph ``i -- k_i``.
The procedure then recurses on the cluster means (means of the input vectors
of each cluster, as in the paper), giving a hierarchy of ever coarser
partitions until one cluster remains.

Which partition to use: FINCH returns the whole hierarchy and the paper
evaluates the partition nearest to the known number of classes. Without
that number, :func:`finch_tracks` takes the *first* partition by default (the
finest one; every further level at least halves the cluster count, so for
face tracks, where an identity often has only a handful of tracks, later
levels merge different people). ``partition="last"`` takes the coarsest
partition with more than one cluster, an int takes that level, and
``n_clusters`` uses the paper's required-number mode: start from the coarsest
partition with at least that many clusters and merge one pair at a time (the
pair of first neighbours with the highest similarity) until the count is met.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from vcn_plugin.clustering.aggregation import ClusteringResult, canonical_groups, relabel_by_size


@dataclass
class FinchResult:
    """The FINCH hierarchy: ``partitions[0]`` is the finest; labels are per input row."""

    partitions: list[np.ndarray]

    @property
    def n_clusters(self) -> list[int]:
        return [int(p.max()) + 1 if p.size else 0 for p in self.partitions]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a vector is all zeros; cosine similarity is undefined for it")
    return x / norms


def first_neighbours(x: np.ndarray, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Index and cosine similarity of each row's nearest other row (ties: smallest index)."""
    unit = _unit_rows(np.asarray(x, dtype=np.float64))
    n = unit.shape[0]
    nn = np.empty(n, np.int64)
    sim = np.empty(n, np.float64)
    for s in range(0, n, block):
        block_sim = unit[s : s + block] @ unit.T
        rows = np.arange(s, min(n, s + block))
        block_sim[rows - s, rows] = -np.inf
        nn[rows] = np.argmax(block_sim, axis=1)
        sim[rows] = block_sim[rows - s, nn[rows]]
    return nn, sim


def _first_neighbour_partition(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    nn, _ = first_neighbours(x)
    graph = sp.csr_matrix((np.ones(n, np.int8), (np.arange(n), nn)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    return canonical_groups(comp)[0]


def _cluster_means(x: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    sums = np.zeros((n_clusters, x.shape[1]), np.float64)
    np.add.at(sums, labels, x)
    return sums / np.bincount(labels, minlength=n_clusters)[:, None]


def _merge_to_count(x: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Required-number mode: merge the single most similar first-neighbour pair until ``n_clusters`` remain."""
    labels = labels.copy()
    while labels.max() + 1 > n_clusters:
        means = _cluster_means(x, labels, int(labels.max()) + 1)
        nn, sim = first_neighbours(means)
        a = int(np.argmax(sim))
        lo, hi = sorted((a, int(nn[a])))
        labels[labels == hi] = lo
        labels = canonical_groups(labels)[0]
    return labels


def finch(x: np.ndarray, n_clusters: int | None = None) -> FinchResult:
    """Run FINCH on the rows of ``x`` (n, d).

    With ``n_clusters`` the returned hierarchy ends with a partition of exactly
    that many clusters (required-number mode, see the module docstring).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D array (n, d), got shape {x.shape}")
    n = x.shape[0]
    if n_clusters is not None and not 1 <= n_clusters <= max(n, 1):
        raise ValueError(f"n_clusters must be in [1, {n}] for {n} samples, got {n_clusters}")
    if n == 0:
        return FinchResult([])
    if n == 1:
        return FinchResult([np.zeros(1, np.int64)])
    partitions: list[np.ndarray] = []
    labels = np.arange(n)
    reps = x
    while reps.shape[0] > 1:
        level = _first_neighbour_partition(reps)
        labels = level[labels]
        partitions.append(labels)
        reps = _cluster_means(x, labels, int(labels.max()) + 1)
    if n_clusters is not None:
        counts = [int(p.max()) + 1 for p in partitions]
        eligible = [k for k, c in enumerate(counts) if c >= n_clusters]
        start = partitions[eligible[-1]] if eligible else np.arange(n)
        partitions = [p for p, c in zip(partitions, counts) if c > n_clusters]
        partitions.append(_merge_to_count(x, start, n_clusters))
    return FinchResult(partitions)


def finch_tracks(
    track_embeddings: np.ndarray,
    *,
    excluded: np.ndarray | None = None,
    partition: str | int = "first",
    n_clusters: int | None = None,
) -> ClusteringResult:
    """FINCH on track mean embeddings, as a :class:`ClusteringResult`.

    Args:
        track_embeddings: (n_tracks, d) one vector per track.
        excluded: boolean mask of tracks labelled Unknown (-1) and left out.
        partition: "first" (default, finest), "last" (coarsest with > 1 cluster) or a level index.
        n_clusters: required-number mode; overrides ``partition``.
    """
    x = np.asarray(track_embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"track_embeddings must be (n_tracks, d), got shape {x.shape}")
    active = np.ones(x.shape[0], bool) if excluded is None else ~np.asarray(excluded, bool)
    idx = np.flatnonzero(active)
    result = finch(x[idx], n_clusters=n_clusters)
    counts = result.n_clusters
    if not result.partitions:
        chosen, level = np.zeros(0, np.int64), 0
    elif n_clusters is not None or partition == "last":
        multi = [k for k, c in enumerate(counts) if c > 1]
        level = len(counts) - 1 if n_clusters is not None or not multi else multi[-1]
        chosen = result.partitions[level]
    elif partition == "first":
        level, chosen = 0, result.partitions[0]
    elif isinstance(partition, (int, np.integer)) and -len(counts) <= partition < len(counts):
        level, chosen = int(partition), result.partitions[int(partition)]
    else:
        raise ValueError(f"partition must be 'first', 'last' or a level index in [0, {len(counts)}), got {partition!r}")
    labels = np.full(x.shape[0], -1, np.int64)
    labels[idx] = chosen
    labels = relabel_by_size(labels)
    return ClusteringResult(
        labels=labels,
        n_clusters=int(labels.max()) + 1 if idx.size else 0,
        method="finch",
        info={"partition_sizes": counts, "level": level, "n_excluded": int(x.shape[0] - idx.size)},
    )
