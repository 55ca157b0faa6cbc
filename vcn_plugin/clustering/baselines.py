"""Every clustering method behind one interface, for the ablation.

- ``loss``, ``cosine``, ``euclidean``: VideoClusterNet's adaptive aggregation
  (:func:`vcn_plugin.clustering.aggregation.aggregate`) with that metric.
- ``hac-cosine``, ``hac-euclidean``: agglomerative clustering with average
  linkage (scipy) of track mean embeddings, cut at a given distance threshold.
- ``finch``: :func:`vcn_plugin.clustering.finch.finch_tracks` on track means.
- ``hdbscan``: sklearn's HDBSCAN (``min_cluster_size=2``) on L2-normalised
  track means (Euclidean distance between unit vectors orders pairs as cosine
  does). HDBSCAN calls some points noise; by default each noise track becomes
  its own cluster (a track is still an identity guess, and identity-level
  metrics then count it as an over-split rather than losing it);
  ``hdbscan_noise="unknown"`` labels them Unknown (-1) instead.

Track mean embeddings: for cosine methods the mean of L2-normalised face
embeddings, for Euclidean ones the mean of the raw embeddings.
Only the aggregation methods accept must-link / cannot-link constraints.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist
from sklearn.cluster import HDBSCAN

from vcn_plugin.clustering.aggregation import AggregationConfig, ClusteringResult, aggregate, relabel_by_size
from vcn_plugin.clustering.finch import finch_tracks
from vcn_plugin.clustering.stats import make_stats
from vcn_plugin.clustering.stats.base import validate_face_track
from vcn_plugin.core.student_factors import StudentFactors

METHODS = ("loss", "cosine", "euclidean", "hac-cosine", "hac-euclidean", "finch", "hdbscan")
HDBSCAN_NOISE = ("singleton", "unknown")

#: dlib's documented same-person threshold for its 128-D descriptors: Euclidean distance 0.6.
DLIB_EUCLIDEAN_THRESHOLD = 0.6


def track_means(
    embeddings: np.ndarray, face_track: np.ndarray, n_tracks: int | None = None, normalize: bool = True
) -> np.ndarray:
    """(n_tracks, D) mean face embedding of each track (faces L2-normalised first when ``normalize``)."""
    face_track, n_tracks = validate_face_track(face_track, n_tracks)
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != face_track.shape[0]:
        raise ValueError(f"embeddings must be (n_faces={face_track.shape[0]}, D), got shape {emb.shape}")
    if normalize:
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("an embedding is all zeros; it cannot be L2-normalised (drop that face)")
        emb = emb / norms
    counts = np.bincount(face_track, minlength=n_tracks)
    sums = np.zeros((n_tracks, emb.shape[1]))
    np.add.at(sums, face_track, emb)
    with np.errstate(invalid="ignore"):
        return sums / counts[:, None]


def _active(n: int, excluded: np.ndarray | None) -> np.ndarray:
    if excluded is None:
        return np.ones(n, bool)
    excluded = np.asarray(excluded, bool)
    if excluded.shape != (n,):
        raise ValueError(f"excluded must be a boolean mask with one entry per track ({n}), got shape {excluded.shape}")
    return ~excluded


def _check_tracks(x: np.ndarray, active: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"track embeddings must be (n_tracks, d), got shape {x.shape}")
    if not np.isfinite(x[active]).all():
        raise ValueError("a track embedding is NaN/inf (a track without faces?); exclude it")
    return x


def _active_rows(track_embeddings: np.ndarray, excluded: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The mask of tracks taking part and their (checked) rows."""
    active = _active(len(track_embeddings), excluded)
    return active, _check_tracks(track_embeddings, active)[active]


def _result(labels_active: np.ndarray, active: np.ndarray, method: str, info: dict) -> ClusteringResult:
    labels = np.full(active.shape[0], -1, np.int64)
    labels[active] = labels_active
    labels = relabel_by_size(labels)
    info = {"n_excluded": int((~active).sum()), **info}
    return ClusteringResult(labels=labels, n_clusters=int(labels.max()) + 1 if labels.size else 0, method=method, info=info)


def _linkage(x: np.ndarray, metric: str) -> np.ndarray:
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    return linkage(pdist(x, metric=metric), method="average")


def hac(
    track_embeddings: np.ndarray, metric: str, threshold: float, *, excluded: np.ndarray | None = None
) -> ClusteringResult:
    """Average-linkage HAC; clusters are merged while their average distance is <= ``threshold``."""
    if threshold is None or not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"HAC needs a non-negative distance threshold (e.g. {DLIB_EUCLIDEAN_THRESHOLD} Euclidean for dlib descriptors), got {threshold}")
    active, x = _active_rows(track_embeddings, excluded)
    if x.shape[0] < 2:
        labels = np.zeros(x.shape[0], np.int64)
    else:
        labels = fcluster(_linkage(x, metric), t=threshold, criterion="distance")
    return _result(labels, active, f"hac-{metric}", {"threshold": float(threshold)})


def hdbscan(
    track_embeddings: np.ndarray,
    *,
    excluded: np.ndarray | None = None,
    min_cluster_size: int = 2,
    noise: str = "singleton",
) -> ClusteringResult:
    """sklearn HDBSCAN on L2-normalised track means; noise handling per ``noise`` (see module docstring)."""
    if noise not in HDBSCAN_NOISE:
        raise ValueError(f"noise must be one of {HDBSCAN_NOISE}, got {noise!r}")
    active, x = _active_rows(track_embeddings, excluded)
    if x.shape[0] < 2:
        raw = np.zeros(x.shape[0], np.int64)
    else:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("a track embedding is all zeros; it cannot be L2-normalised")
        raw = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=None, copy=True).fit_predict(x / norms)
    n_noise = int((raw < 0).sum())
    if noise == "singleton" and n_noise:
        raw = raw.copy()
        raw[raw < 0] = raw.max() + 1 + np.arange(n_noise)
    return _result(raw, active, "hdbscan", {"min_cluster_size": min_cluster_size, "noise": noise, "n_noise": n_noise})


def cluster_tracks(
    method: str,
    face_track: np.ndarray,
    *,
    embeddings: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    log_probs: np.ndarray | None = None,
    student: StudentFactors | None = None,
    n_tracks: int | None = None,
    excluded: np.ndarray | None = None,
    must_link: Sequence[Sequence[int]] | None = None,
    cannot_link: np.ndarray | None = None,
    threshold: float | None = None,
    config: AggregationConfig | None = None,
    finch_partition: str | int = "first",
    hdbscan_noise: str = "singleton",
) -> ClusteringResult:
    """Cluster tracks with any method of :data:`METHODS`; inputs are per face.

    Args:
        method: one of :data:`METHODS`.
        face_track: (n_faces,) track index of each face.
        embeddings: (n_faces, D) backbone embeddings (all methods but "loss"). For "loss" they are
            optional: the (finetuned) backbone's embeddings of the same faces, whose cosine is the
            aggregation's agreement view (``config.agreement``, see
            :data:`~vcn_plugin.clustering.aggregation.DEFAULT_AGREEMENT`).
        probs, log_probs: (n_faces, K) teacher probabilities and student log-probabilities ("loss").
        student: the student in factored form instead of ``log_probs`` ("loss"; same result, much faster).
        n_tracks: number of tracks (default: max of face_track + 1).
        excluded: boolean mask (n_tracks,) of tracks labelled Unknown.
        must_link, cannot_link: constraints (aggregation methods only).
        threshold: HAC distance threshold (required for the HAC methods).
        config: aggregation options.
        finch_partition, hdbscan_noise: see :func:`finch_tracks` and :func:`hdbscan`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    face_track, n_tracks = validate_face_track(face_track, n_tracks)
    if method in ("loss", "cosine", "euclidean"):
        stats = make_stats(method, face_track, probs=probs, log_probs=log_probs, student=student, embeddings=embeddings,
                           n_tracks=n_tracks)
        agreement = (make_stats("cosine", face_track, embeddings=embeddings, n_tracks=n_tracks)
                     if method == "loss" and embeddings is not None and (config or AggregationConfig()).agreement else None)
        return aggregate(stats, excluded=excluded, must_link=must_link, cannot_link=cannot_link, config=config,
                         agreement=agreement)
    if must_link or (cannot_link is not None and len(cannot_link)):
        raise ValueError(f"{method} does not support must-link/cannot-link constraints; use 'loss', 'cosine' or 'euclidean'")
    if embeddings is None:
        raise ValueError(f"{method} needs face embeddings")
    metric = "euclidean" if method == "hac-euclidean" else "cosine"
    means = track_means(embeddings, face_track, n_tracks, normalize=metric == "cosine")
    if excluded is None:
        excluded = np.zeros(n_tracks, bool)
    empty = np.flatnonzero(~np.asarray(excluded, bool) & (np.bincount(face_track, minlength=n_tracks) == 0))
    if empty.size:
        raise ValueError(f"tracks {empty[:10].tolist()} have no faces; exclude them or give them faces")
    if method.startswith("hac-"):
        return hac(means, metric, threshold, excluded=excluded)
    if method == "finch":
        return finch_tracks(means, excluded=excluded, partition=finch_partition)
    return hdbscan(means, excluded=excluded, noise=hdbscan_noise)


def cut_heights(track_embeddings: np.ndarray, metric: str = "cosine", excluded: np.ndarray | None = None) -> np.ndarray:
    """0 and every merge height of the average-linkage dendrogram of the non-excluded tracks:
    one threshold per distinct HAC partition (the candidates of an oracle search)."""
    active, x = _active_rows(track_embeddings, excluded)
    if x.shape[0] < 2:
        return np.zeros(1)
    return _heights(_linkage(x, metric))


def _heights(link: np.ndarray) -> np.ndarray:
    return np.unique(np.concatenate([[0.0], link[:, 2]]))


@dataclass
class OracleResult:
    """Best HAC cut found with ground truth. ``oracle`` marks it as not a deployable method."""

    threshold: float
    score: float
    result: ClusteringResult
    oracle: bool = True


def best_threshold_hac(
    track_embeddings: np.ndarray,
    gt_labels: np.ndarray,
    score_fn: Callable[[np.ndarray, np.ndarray], float],
    metric: str = "cosine",
    *,
    thresholds: Sequence[float] | None = None,
    excluded: np.ndarray | None = None,
) -> OracleResult:
    """ORACLE: the HAC threshold that maximises ``score_fn(gt_labels, predicted_labels)``.

    Uses the ground truth, so it is an upper bound for HAC, not a method. By
    default every distinct partition is tried (a cut at 0 and at each merge
    height of the dendrogram); ties keep the smallest threshold. ``gt_labels``
    and the predictions passed to ``score_fn`` cover the non-excluded tracks.
    """
    active, x = _active_rows(track_embeddings, excluded)
    gt = np.asarray(gt_labels)
    if gt.shape[0] != len(track_embeddings):
        raise ValueError(f"gt_labels has {gt.shape[0]} entries for {len(track_embeddings)} tracks")
    if x.shape[0] < 2:
        res = hac(track_embeddings, metric, 0.0, excluded=excluded)
        return OracleResult(0.0, float(score_fn(gt[active], res.labels[active])), res)
    link = _linkage(x, metric)
    grid = _heights(link) if thresholds is None else np.asarray(thresholds, float)
    best_t, best_s = None, -np.inf
    for t in grid:
        s = float(score_fn(gt[active], fcluster(link, t=t, criterion="distance")))
        if s > best_s:
            best_t, best_s = float(t), s
    res = hac(track_embeddings, metric, best_t, excluded=excluded)
    res.info["oracle"] = True
    return OracleResult(best_t, best_s, res)
