"""Stage 3 on a FiftyOne dataset: cluster tracks into identities and write them back.

The default method is VideoClusterNet's: the SSL loss of the finetuned model as the
distance (the teacher's probabilities against the EMA teacher's log-probabilities at the student
temperature by default, the student's in the paper: ``predictor``), each track's own mean
intra-track loss as its threshold, merging to a fixpoint (a first-neighbours round, neighbours
by excess loss, then the paper's transitive threshold rounds; the paper's rules with
``start="threshold"`` and the student predictor).
Baselines (cosine / Euclidean inside the same algorithm, HAC, FINCH, HDBSCAN) run
on backbone embeddings, finetuned when a finetuning run exists and ``finetuned=True``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fiftyone as fo
import numpy as np

from vcn_plugin.backbones import DEFAULT_BACKBONE, get_backbone, resolve_backbone
from vcn_plugin.backbones.base import Backbone
from vcn_plugin.clustering import METHODS, AggregationConfig, ClusteringResult, cluster_tracks
from vcn_plugin.clustering.aggregation import (
    DEFAULT_AGREEMENT, DEFAULT_LINKAGE, DEFAULT_NEIGHBOUR_DISTANCE, DEFAULT_ROUNDS, DEFAULT_START, DEFAULT_VIEW_ROUNDS,
)
from vcn_plugin.core.progress import Progress
from vcn_plugin.core.types import TrackKey
from vcn_plugin.fo import schema
from vcn_plugin.fo.runs import check_run_key, load_run, save_run
from vcn_plugin.fo.track_records import TrackRecord, set_identities, write_face_serfiq, write_track_records
from vcn_plugin.fo.track_sets import TrackSet, load_track_set
from vcn_plugin.ssl import DEFAULT_PREDICTOR, PREDICTORS, SSLModel
from vcn_plugin.steps.finetune import DEFAULT_RUN_KEY as FINETUNE_RUN
from vcn_plugin.steps.finetune import load_finetuned

DEFAULT_RUN_KEY = schema.CLUSTER_RUN
#: default HAC distance thresholds per metric (dlib's same-person cut-off for Euclidean)
DEFAULT_HAC_THRESHOLDS = {"hac-cosine": 0.3, "hac-euclidean": 0.6}


@dataclass
class ClusterSummary:
    run_key: str
    method: str
    identities: dict[TrackKey, str] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return len({v for v in self.identities.values() if v != schema.UNKNOWN})

    @property
    def n_unknown(self) -> int:
        return sum(v == schema.UNKNOWN for v in self.identities.values())

    def summary(self) -> str:
        return (f"{len(self.identities)} tracks -> {self.n_clusters} identities "
                f"({self.n_unknown} Unknown) with method '{self.method}'")


def track_features(
    track_set: TrackSet, method: str, model: SSLModel | None, backbone: str | Backbone,
    predictor: str = DEFAULT_PREDICTOR,
) -> dict[str, np.ndarray]:
    """What ``method`` clusters on, per face: ``probs``, the predictor's factors and the finetuned
    backbone's ``embeddings`` (loss; see :meth:`SSLModel.clustering_features` for ``predictor``; the
    embeddings are the start's agreement view) or ``embeddings``."""
    chips = track_set.chips
    if method == "loss":
        if model is None:
            raise ValueError("the loss metric needs a finetuned model; run finetuning first or choose 'cosine'")
        probs, student, embeddings = model.clustering_features(chips, predictor=predictor)
        return {"probs": probs, "student": student, "embeddings": embeddings}
    if model is not None:
        return {"embeddings": model.embeddings(chips)}
    backbone = resolve_backbone(backbone)
    backbone.eval()
    import torch

    with torch.no_grad():
        parts = [backbone(backbone.preprocess(chips[i : i + 64])).numpy() for i in range(0, len(chips), 64)]
    return {"embeddings": np.concatenate(parts) if parts else np.zeros((0, backbone.embed_dim), np.float32)}


def cluster_track_set(
    track_set: TrackSet,
    method: str = "loss",
    model: SSLModel | None = None,
    backbone: str | Backbone = DEFAULT_BACKBONE,
    guard: bool = True,
    threshold: float | None = None,
    must_link: list[list[int]] | None = None,
    cannot_link: list[tuple[int, int]] | None = None,
    excluded: np.ndarray | None = None,
    features: dict[str, np.ndarray] | None = None,
    keep: np.ndarray | None = None,
    linkage: str = DEFAULT_LINKAGE,
    start: str = DEFAULT_START,
    predictor: str = DEFAULT_PREDICTOR,
    neighbour_distance: str = DEFAULT_NEIGHBOUR_DISTANCE,
    rounds: str = DEFAULT_ROUNDS,
    agreement: bool = DEFAULT_AGREEMENT,
    view_rounds: bool = DEFAULT_VIEW_ROUNDS,
) -> ClusteringResult:
    """Cluster the tracks of ``track_set``; low-quality tracks (and ``excluded``) become Unknown,
    except those in ``keep`` (tracks a user placed in an identity). ``linkage``, ``start``,
    ``neighbour_distance``, ``rounds``, ``agreement``, ``view_rounds``: of the aggregation methods, see
    :class:`~vcn_plugin.clustering.AggregationConfig`; ``predictor``: the
    loss metric's predictor network when ``features`` is not given (:data:`~vcn_plugin.ssl.PREDICTORS`)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if len(track_set) == 0:
        return ClusteringResult(labels=np.zeros(0, np.int64), n_clusters=0, method=method)
    features = features if features is not None else track_features(track_set, method, model, backbone, predictor)
    low = track_set.low_quality if keep is None else (track_set.low_quality & ~keep)
    excl = low.copy() if excluded is None else (low | excluded)
    supports_constraints = method in ("loss", "cosine", "euclidean")
    pairs = []
    if supports_constraints:
        if guard:
            pairs.extend(map(tuple, track_set.cooccurring.tolist()))
        pairs.extend(cannot_link or [])
    if method.startswith("hac-") and threshold is None:
        threshold = DEFAULT_HAC_THRESHOLDS[method]
    return cluster_tracks(
        method,
        track_set.face_track,
        n_tracks=len(track_set),
        excluded=excl,
        must_link=(must_link or None) if supports_constraints else None,
        cannot_link=np.array(pairs, np.int64).reshape(-1, 2) if supports_constraints else None,
        threshold=threshold,
        config=AggregationConfig(linkage=linkage, start=start, neighbour_distance=neighbour_distance, rounds=rounds,
                                 agreement=agreement, view_rounds=view_rounds),
        **features,
    )


def cluster_identities(
    samples: fo.core.collections.SampleCollection,
    method: str = "loss",
    finetune_run: str = FINETUNE_RUN,
    finetuned: bool = True,
    backbone: str | None = None,
    guard: bool = True,
    threshold: float | None = None,
    run_key: str = DEFAULT_RUN_KEY,
    max_faces_per_track: int = 8,
    progress: Progress | None = None,
    linkage: str = DEFAULT_LINKAGE,
    start: str = DEFAULT_START,
    predictor: str = DEFAULT_PREDICTOR,
    neighbour_distance: str = DEFAULT_NEIGHBOUR_DISTANCE,
    rounds: str = DEFAULT_ROUNDS,
    agreement: bool = DEFAULT_AGREEMENT,
    view_rounds: bool = DEFAULT_VIEW_ROUNDS,
) -> ClusterSummary:
    """Cluster every video's tracks into identities; write labels, track records and a run.
    ``linkage``, ``start``, ``neighbour_distance``, ``rounds``, ``agreement``: the aggregation's merge
    rule, first round, what "nearest" means, what follows the start and whether the loss metric uses
    the finetuned backbone's cosine as the agreement view, and whether silhouette rounds on that view
    follow the loss's (``view_rounds``) (:class:`~vcn_plugin.clustering.AggregationConfig`); ``predictor``: the loss metric's predictor
    network ("transitive", "threshold", "threshold" rounds and "student": the paper exactly)."""
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    dataset = samples._dataset
    schema.require_video_dataset(dataset)
    check_run_key(dataset, run_key, "cluster")
    models, scope, backbone = _models_for(dataset, method, finetune_run, finetuned, backbone)
    backbone_model = get_backbone(backbone)
    track_set = load_track_set(samples, backbone_model, max_faces_per_track, progress=progress)
    constraints = _constraints(dataset)
    groups = {"all": track_set} if scope == "dataset" else {
        vid: track_set.subset({vid}) for vid in dict.fromkeys(t.video_id for t in track_set.tracks)
    }
    summary = ClusterSummary(run_key, method)
    records: list[TrackRecord] = []
    names_by_video = _video_names(dataset) if len(groups) > 1 else {}
    began = time.perf_counter()
    for g, (key, subset) in enumerate(groups.items()):
        if progress is not None:
            progress(g / len(groups), f"clustering {key}")
        model = models.get(key) if models else None
        if models and model is None and method == "loss":
            raise ValueError(f"the finetuning run '{finetune_run}' has no model for video {key}; rerun finetuning")
        must, cannot, excluded, placed = _constraint_indices(subset, constraints)
        features = track_features(subset, method, model, backbone_model, predictor)
        result = cluster_track_set(
            subset, method, model, backbone, guard, threshold, must, cannot, excluded, features, keep=placed,
            linkage=linkage, start=start, neighbour_distance=neighbour_distance, rounds=rounds, agreement=agreement,
            view_rounds=view_rounds,
        )
        prefix = f"{names_by_video[key]}/" if key in names_by_video else ""
        labels = {k: (schema.UNKNOWN if n == schema.UNKNOWN else prefix + n) for k, n in zip(subset.keys, result.names)}
        if constraints is not None:
            from vcn_plugin.corrections import apply_names_after_clustering

            labels = apply_names_after_clustering(constraints, labels)
        summary.identities.update(labels)
        summary.results[key] = {
            "tracks": len(subset), "clusters": result.n_clusters, "unknown": result.n_unknown,
            "iterations": result.iterations, "merges_per_iteration": list(result.merges_per_iteration),
            "neighbour_distance": result.info.get("neighbour_distance"),  # the one used ("auto" resolved)
            "rounds": result.info.get("rounds"),
            "start_chosen": result.info.get("start_chosen", result.info.get("start")),  # of start="best"
            "view_merges": result.info.get("view_merges"),  # None where no view rounds ran
        }
        records.extend(_records(dataset, subset, labels, features, result))
    set_identities(dataset, summary.identities)
    if track_set.quality_source == "serfiq":
        write_face_serfiq(dataset, track_set.tracks)
    write_track_records(dataset, records)
    _colour_by_identity(dataset)
    save_run(
        dataset, run_key, method="cluster",
        config={"method": method, "finetune_run": finetune_run if models else None, "backbone": backbone,
                "guard": guard, "threshold": threshold, "scope": scope, "linkage": linkage, "start": start,
                "neighbour_distance": neighbour_distance, "rounds": rounds,
                "agreement": agreement if method == "loss" else None,
                "view_rounds": view_rounds if method == "loss" and agreement else None,
                "predictor": predictor if method == "loss" else None},
        results={"per_group": summary.results, "n_clusters": summary.n_clusters, "unknown": summary.n_unknown,
                 "seconds": time.perf_counter() - began},
    )
    if progress is not None:
        progress(1.0, summary.summary())
    return summary


def _colour_by_identity(dataset: fo.Dataset) -> None:
    """One colour per label value in the App, so each identity keeps its colour across frames."""
    if dataset.app_config.color_scheme is None or dataset.app_config.color_scheme.color_by != "value":
        dataset.app_config.color_scheme = fo.ColorScheme(color_by="value")
        dataset.save()


def _models_for(dataset, method, finetune_run, finetuned, backbone):
    if method == "loss" or finetuned:
        try:
            config, _ = load_run(dataset, finetune_run)
        except KeyError:
            if method == "loss":
                raise ValueError(
                    f"the loss metric needs a finetuned model but dataset '{dataset.name}' has no finetuning run "
                    f"'{finetune_run}'. Run 'vcn finetune --dataset {dataset.name}' first, or use --method cosine"
                ) from None
            return {}, "video", backbone or DEFAULT_BACKBONE
        if backbone not in (None, config["backbone"]):
            raise ValueError(f"finetuning run '{finetune_run}' used backbone {config['backbone']!r}, not {backbone!r}")
        return load_finetuned(dataset, finetune_run), config["scope"], config["backbone"]
    return {}, "video", backbone or DEFAULT_BACKBONE


def _video_names(dataset: fo.Dataset) -> dict[str, str]:
    ids, paths = dataset.values(["id", "filepath"])
    return {i: Path(p).stem for i, p in zip(ids, paths)}


def _constraints(dataset: fo.Dataset):
    try:
        from vcn_plugin.corrections import get_constraints
    except ImportError:
        return None
    return get_constraints(dataset)


def _constraint_indices(subset: TrackSet, constraints):
    """Constraints as track indices of ``subset``: must-link groups, cannot-link pairs, and
    masks of user-excluded and user-placed tracks."""
    excluded = np.zeros(len(subset), bool)
    placed = np.zeros(len(subset), bool)
    if constraints is None:
        return [], [], excluded, placed
    index = {k: i for i, k in enumerate(subset.keys)}
    must = [[index[k] for k in group if k in index] for group in constraints.must_link]
    must = [g for g in must if len(g) > 1]
    cannot = [(index[a], index[b]) for a, b in constraints.cannot_link if a in index and b in index]
    for key in constraints.excluded:
        if key in index:
            excluded[index[key]] = True
    for key in constraints.placed:
        if key in index:
            placed[index[key]] = True
    return must, cannot, excluded, placed


def _records(dataset, subset: TrackSet, labels, features, result: ClusteringResult) -> list[TrackRecord]:
    paths = dict(zip(*dataset.values(["id", "filepath"])))
    face_track = subset.face_track
    # the loss metric's own representation (teacher probabilities), else the embeddings
    emb = features["probs"] if "probs" in features else features["embeddings"]
    records = []
    for i, tf in enumerate(subset.tracks):
        rows = emb[face_track == i]
        mean = rows.mean(axis=0)
        mean = mean / (np.linalg.norm(mean) + 1e-12)
        margin = float(result.margins[i]) if result.margins is not None else float("nan")
        records.append(TrackRecord(
            video_id=tf.video_id, video_path=paths[tf.video_id], track=tf.track, shot=subset.shots[i],
            first_frame=min(subset.track_frames[i]), last_frame=max(subset.track_frames[i]),
            num_faces=len(subset.track_frames[i]), quality=float(subset.quality[i]),
            low_quality=bool(subset.low_quality[i]), thumbnail=tf.chips[int(np.argmax(tf.qualities))],
            embedding=mean, identity=labels[tf.key], margin=margin,
        ))
    return records


def visualize_identities(dataset: fo.Dataset, brain_key: str = schema.UMAP_BRAIN_KEY, method: str = "umap", seed: int = 0):
    """UMAP of the track embeddings in the track dataset (for the App's Embeddings panel)."""
    import fiftyone.brain as fob

    from vcn_plugin.fo.track_records import get_tracks_dataset

    tracks = get_tracks_dataset(dataset)
    if tracks.has_brain_run(brain_key):
        tracks.delete_brain_run(brain_key)
    n = len(tracks)
    if n < 3:
        raise ValueError(f"need at least 3 tracks to draw an embedding map, found {n}")
    kwargs = {"n_neighbors": min(15, n - 1), "seed": seed} if method == "umap" else {"seed": seed}
    return fob.compute_visualization(tracks, embeddings=schema.TRACK_EMBEDDING, method=method, brain_key=brain_key,
                                     num_dims=2, verbose=False, **kwargs)
