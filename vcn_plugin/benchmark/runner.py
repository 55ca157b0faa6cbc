"""The ablation benchmark: every clustering method on the same detected tracks of a benchmark.

:func:`run_benchmark` imports a benchmark directory (see :mod:`vcn_plugin.evaluation.ground_truth`) into a fresh,
non-persistent FiftyOne dataset and, per episode (one video):

1. runs stage 1 (shots, faces, tracks) once;
2. matches the predicted tracks to the ground-truth tracks once
   (:func:`vcn_plugin.evaluation.track_matching.match_tracks`: frame-wise IoU >= 0.5, majority over the
   track's frames, the ground-truth tracks of one identity pooled), so every row is scored on exactly
   the same tracks; this also gives the
   stage-wise numbers (detection recall/precision, ID switches, fragmentation) of the episode;
3. reads the chips of every track once (:func:`vcn_plugin.fo.track_sets.load_track_set`);
4. embeds the chips with the pretrained backbone, finetunes the backbone to the video once
   (scope "video", as the paper), and embeds them again with the finetuned model;
5. computes every row of :data:`DEFAULT_ROWS` from those features, without rerunning anything.

Scoring. Only predicted tracks matched to a labelled ground-truth track are scored (false
detections have no identity; tracks on unlabelled extras are not identities to recover); they
all appear in the row's ``assignments`` anyway, with ``gt`` None or ``distractor`` True.
Clusters are per video, so each episode is scored on its own with
:func:`vcn_plugin.evaluation.metrics.evaluate_clustering` (``unknown_mode="exclude"`` by default: every
method sees the same low-quality tracks as Unknown, so the modes rank methods alike). The row's
numbers aggregate the episodes as follows:

* fractions (WCP, accuracy, pairwise F, BCubed F, NMI): mean of the per-episode values
  weighted by the episode's evaluated tracks (WCP, accuracy and BCubed are per-track averages,
  so for them this equals pooling the tracks of all episodes with video-prefixed labels);
* ``n_clusters``, ``n_identities``, ``unknown``: sums over episodes;
  ``cluster_ratio = n_clusters / n_identities`` of those sums.

Anyone can recompute a row from its ``assignments`` with the same two steps.

Series. When the episodes share a cast (the builder's ``series`` preset, or ``series=True``),
every row is computed a second time across episodes (``series_rows``): all tracks of all
episodes are clustered together, finetuned rows after one more finetune over every episode
(scope "dataset", as ``vcn finetune --scope dataset``), and scored on the union with the
identities as labels, so a character split between episodes costs accuracy. Their ``linked``
is the share of recurring identities kept in one cluster of their own across all their episodes
(:func:`vcn_plugin.benchmark.rows.linked_share`).

The oracle. ``HAC cosine, oracle threshold`` cuts the average-linkage dendrogram of every
episode at one threshold shared by the whole benchmark, the one with the best aggregated
accuracy (ties: best BCubed F, then the smallest threshold), chosen with the ground truth. It
is an upper bound for HAC, not a method; its row says ``oracle: true``.

Time. A row's ``seconds`` sums over episodes: computing its features (backbone or finetuned
model on the chips), the finetuning when the row is finetuned, the clustering, and for the
oracle the threshold search.
"""
from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcn_plugin.backbones import DEFAULT_BACKBONE
from vcn_plugin.backbones.base import Backbone
from vcn_plugin.benchmark.rows import (
    DEFAULT_ROWS,
    FRACTION_KEYS,
    LOSS_NOT_APPLICABLE,
    BenchmarkResult,
    RowResult,
    RowSpec,
    aggregate_episodes,
    linked_share,
    scored,
)
from vcn_plugin.core.progress import Progress, sub_progress
from vcn_plugin.core.student_factors import DEFAULT_PREDICTOR, PREDICTORS
from vcn_plugin.evaluation.evaluate import MatchedVideo, match_video
from vcn_plugin.evaluation.metrics import evaluate_clustering
from vcn_plugin.evaluation.track_matching import MatchingConfig
from vcn_plugin.fo import schema
from vcn_plugin.fo.frames import read_tracks
from vcn_plugin.ssl import FinetuneConfig, SSLModel
from vcn_plugin.stage1 import Stage1Config

logger = logging.getLogger(__name__)

#: stage 1 for benchmarks: the product's default (CenterFace on every 3rd frame), what users get
BENCHMARK_STAGE1 = Stage1Config()
#: predicted boxes are calibrated to the ground truth's box convention (dlib's) before pairing,
#: so every detector is scored on the faces it finds, not on where it draws the box edges
BENCHMARK_MATCHING = MatchingConfig(calibrate=True)
#: the coarse-matching precision issue #15 asks for; the health reports the best recall at it
MATCHING_PRECISION = 0.95


# --------------------------------------------------------------------------- per-episode data


@dataclass
class _Episode(MatchedVideo):
    """Everything the rows share for one video: its matched tracks, and features computed once."""

    track_set: Any  # TrackSet of this video
    index_of: dict[int, int]  # predicted track id -> index in track_set
    features: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # "pretrained"/"finetuned"/"loss"/"loss-<predictor>"
    feature_seconds: dict[str, float] = field(default_factory=dict)
    finetune_seconds: float = 0.0
    finetune_error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    video_of: dict[str, str] = field(default_factory=dict)  # sample id -> video file name

    def assignment_skeleton(self) -> list[dict[str, Any]]:
        """One entry per predicted track (sorted by id), without ``pred``."""
        out = []
        for m in sorted(self.matching.pred_tracks, key=lambda m: m.pred_track):
            matched = m.gt_track is not None
            out.append({
                "video": self.video,
                "track": int(m.pred_track),
                "gt": self.gt_identity[m.gt_track] if matched else None,
                "gt_track": int(m.gt_track) if matched else None,
                "distractor": bool(matched and self.gt_distractor[m.gt_track]),
            })
        return out


@dataclass
class _Series:
    """Every episode of a series as one unit: one finetune over all their tracks (scope "dataset"),
    and clusters across episodes, so a character of two episodes must land in one cluster."""

    episodes: list[_Episode]
    track_set: Any  # TrackSet of every video
    features: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    feature_seconds: dict[str, float] = field(default_factory=dict)
    finetune_seconds: float = 0.0
    finetune_error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    video: str = "series"

    @property
    def video_of(self) -> dict[str, str]:
        return {k: v for ep in self.episodes for k, v in ep.video_of.items()}

    def assignment_skeleton(self) -> list[dict[str, Any]]:
        return [a for ep in self.episodes for a in ep.assignment_skeleton()]


def _match_episode(sample, video: str, track_set) -> _Episode:
    matched = match_video(video, read_tracks(sample, schema.FACES, video), read_tracks(sample, schema.GT_FACES, video),
                          BENCHMARK_MATCHING)
    index_of = {tf.track: i for i, tf in enumerate(track_set.tracks)}
    return _Episode(**vars(matched), track_set=track_set, index_of=index_of, video_of={sample.id: video})


def _embed(episode: _Episode | _Series, model: SSLModel | None, backbone: Backbone) -> tuple[dict[str, np.ndarray], float]:
    from vcn_plugin.steps.cluster import track_features

    start = time.perf_counter()
    features = track_features(episode.track_set, "cosine", model, backbone)
    return features, time.perf_counter() - start


def _prepare_features(episode: _Episode | _Series, backbone: Backbone, finetune_config: FinetuneConfig, progress: Progress | None) -> None:
    """Pretrained embeddings; finetune once; finetuned embeddings and head outputs."""
    if len(episode.track_set) == 0:
        episode.finetune_error = "no face tracks"
        return
    episode.features["pretrained"], episode.feature_seconds["pretrained"] = _embed(episode, None, backbone)
    finetune_unit(episode, backbone, finetune_config, progress)


def finetune_unit(episode: _Episode | _Series, backbone: Backbone, finetune_config: FinetuneConfig,
                  progress: Progress | None = None) -> None:
    """Finetune on the unit's tracks; record the finetuned embeddings, head outputs and health.
    (The finetuning study calls this once per configuration on episodes prepared once.)"""
    from vcn_plugin.steps.cluster import track_features
    from vcn_plugin.steps.finetune import finetune_track_set

    start = time.perf_counter()
    try:
        model, result = finetune_track_set(episode.track_set, backbone, finetune_config, progress, label=episode.video)
    except ValueError as err:
        episode.finetune_error = str(err)
        return
    episode.finetune_seconds = time.perf_counter() - start
    episode.info["finetune_result"] = {k: result[k] for k in ("device", "num_tracks", "num_chips", "match_counts",
                                                              "stage_seconds", "stage_steps")}  # fmt: skip
    episode.info["finetune_curve"] = {"loss": result["loss_curve"], "stage": result["stage_of_step"]}
    episode.info["teacher"] = result["health"]
    episode.info["match_pairs"] = result["match_pairs"]
    start = time.perf_counter()
    episode.features["loss"] = track_features(episode.track_set, "loss", model, backbone)  # the default predictor
    episode.feature_seconds["loss"] = time.perf_counter() - start
    # the finetuned backbone's embeddings come from the same forward pass
    episode.features["finetuned"] = {"embeddings": episode.features["loss"]["embeddings"]}
    episode.feature_seconds["finetuned"] = episode.feature_seconds["loss"]
    for predictor in PREDICTORS:  # "loss-<predictor>" for every predictor ("loss": the default's, the same dict)
        episode.features[f"loss-{predictor}"] = (
            episode.features["loss"] if predictor == DEFAULT_PREDICTOR
            else track_features(episode.track_set, "loss", model, backbone, predictor)
        )


def finetune_health(unit: _Episode | _Series) -> dict[str, Any]:
    """The unit's finetuning health (:mod:`vcn_plugin.evaluation.finetune_health`): coarse matching
    per round against the ground truth, the teacher's health per stage, the loss curve, and the
    first-round merge ratios of same- and different-identity pairs for each feature space."""
    from vcn_plugin.clustering.stats import make_stats
    from vcn_plugin.evaluation.finetune_health import matching_quality, merge_ratios

    ts, video_of = unit.track_set, unit.video_of
    gt = {(a["video"], a["track"]): None if a["distractor"] else a["gt"] for a in unit.assignment_skeleton()}
    names = [(video_of[tf.video_id], tf.track) for tf in ts.tracks]
    identity = [gt.get(name) for name in names]
    shot = {name: (name[0], ts.shots[i]) for i, name in enumerate(names)}
    took_part = {name: identity[i] for i, name in enumerate(names) if not ts.low_quality[i]}
    rounds = [matching_quality([tuple((video_of[k[0]], k[1]) for k in pair) for pair in pairs], took_part, shot).to_dict()
              for pairs in unit.info.get("match_pairs", [])]  # fmt: skip
    scored_identity = [None if ts.low_quality[i] else g for i, g in enumerate(identity)]
    ratios = {}
    for key, metric in (("pretrained", "cosine"), ("finetuned", "cosine"), ("loss", "loss")):
        if key in unit.features:
            stats = make_stats(metric, ts.face_track, n_tracks=len(ts), **unit.features[key])
            ratios[f"{key} {metric}" if key != "loss" else "loss"] = merge_ratios(stats, scored_identity)
    return {"matching": rounds, "matching_bound": _matching_bounds(unit, identity), "teacher": unit.info.get("teacher", []),
            "merge_ratios": ratios, "loss_curve": unit.info.get("finetune_curve")}  # fmt: skip


def _matching_bounds(unit: _Episode | _Series, identity: list[str | None]) -> dict[str, dict]:
    """Per embedding space, the oracle gate on track-mean cosine distances
    (:func:`vcn_plugin.evaluation.finetune_health.matching_bound`) at the precision issue #15 asks of
    coarse matching, among the tracks that take part in finetuning, seen-together pairs left out."""
    from vcn_plugin.clustering import track_means
    from vcn_plugin.evaluation.finetune_health import matching_bound

    ts = unit.track_set
    took = np.flatnonzero(~ts.low_quality)
    local = {int(t): k for k, t in enumerate(took)}
    cannot = [(local[a], local[b]) for a, b in ts.cooccurring.tolist() if a in local and b in local]
    shots = [(ts.tracks[t].video_id, ts.shots[t]) for t in took]
    out = {}
    for key in ("pretrained", "finetuned"):
        if key in unit.features and took.size > 1:
            u = track_means(unit.features[key]["embeddings"], ts.face_track, len(ts))[took]
            u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
            out[key] = matching_bound(1.0 - u @ u.T, [identity[t] for t in took], shots, MATCHING_PRECISION, cannot).to_dict()
    return out


# --------------------------------------------------------------------------- rows


def _feature_key(spec: RowSpec) -> str:
    if not spec.finetuned:
        return "pretrained"
    if spec.method != "loss":
        return "finetuned"
    return f"loss-{spec.predictor}"


def _cluster_episode(episode: _Episode | _Series, spec: RowSpec, threshold: float | None,
                     backbone: str) -> tuple[dict[tuple[str, int], str], float]:
    """(video, predicted track id) -> cluster name (Unknown when excluded or not clusterable), and seconds."""
    from vcn_plugin.steps.cluster import cluster_track_set

    key = _feature_key(spec)
    if key not in episode.features:  # no tracks, or finetuning impossible on this video
        return {}, 0.0
    start = time.perf_counter()
    result = cluster_track_set(episode.track_set, spec.method, None, backbone, guard=spec.guard,
                               threshold=threshold, features=episode.features[key], linkage=spec.linkage,
                               start=spec.start, neighbour_distance=spec.neighbour_distance, rounds=spec.rounds,
                               agreement=spec.agreement, view_rounds=spec.view_rounds)  # fmt: skip
    seconds = time.perf_counter() - start
    return _keyed(episode, result.names), seconds


def _keyed(unit: _Episode | _Series, names: Sequence[str]) -> dict[tuple[str, int], str]:
    video_of = unit.video_of
    return {(video_of[tf.video_id], tf.track): name for tf, name in zip(unit.track_set.tracks, names)}


def _assign(episode: _Episode | _Series, clusters: dict[tuple[str, int], str]) -> list[dict[str, Any]]:
    rows = episode.assignment_skeleton()
    for a in rows:
        a["pred"] = clusters.get((a["video"], a["track"]), schema.UNKNOWN)
    return rows


def _score(assignments_per_episode: list[list[dict[str, Any]]], unknown_mode: str,
           labels: Sequence[str] | None = None) -> tuple[dict, list[dict]]:
    metrics = []
    per_episode = []
    for i, rows in enumerate(assignments_per_episode):
        s = scored(rows)
        m = evaluate_clustering([a["gt"] for a in s], [a["pred"] for a in s], schema.UNKNOWN, unknown_mode)
        metrics.append(m)
        label = labels[i] if labels is not None else (rows[0]["video"] if rows else None)
        per_episode.append({"video": label, "n_evaluated": m.n_evaluated,
                            **{k: getattr(m, k) for k in (*FRACTION_KEYS, "cluster_ratio", "n_clusters",
                                                          "n_identities", "n_unknown")}})  # fmt: skip
    return aggregate_episodes(metrics), per_episode


def _oracle_threshold(episodes: Sequence[_Episode | _Series], spec: RowSpec, unknown_mode: str) -> float:
    """The one HAC cosine threshold for all episodes with the best aggregated accuracy (ties: BCubed F,
    then the smallest threshold). Candidates: 0 and every merge height of every episode's dendrogram."""
    from vcn_plugin.clustering import cluster_names, cut_heights, hac, track_means

    key = _feature_key(spec)
    prepared = []
    candidates = {0.0}
    for ep in episodes:
        if key not in ep.features:
            continue
        ts = ep.track_set
        means = track_means(ep.features[key]["embeddings"], ts.face_track, len(ts), normalize=True)
        candidates.update(float(h) for h in cut_heights(means, "cosine", excluded=ts.low_quality))
        prepared.append((ep, means))
    best_t, best = 0.0, (-1.0, -1.0)
    for t in sorted(candidates):
        per_episode = []
        for ep, means in prepared:
            labels = hac(means, "cosine", t, excluded=ep.track_set.low_quality).labels
            per_episode.append(_assign(ep, _keyed(ep, cluster_names(labels))))
        agg, _ = _score(per_episode, unknown_mode)
        if (agg["accuracy"], agg["bcubed_f"]) > best:
            best_t, best = t, (agg["accuracy"], agg["bcubed_f"])
    return best_t


def compute_row(episodes: Sequence[_Episode | _Series], spec: RowSpec, backbone: str, unknown_mode: str = "exclude") -> RowResult:
    """One ablation row from the prepared episodes, or from a series as one unit (features are
    never recomputed here)."""
    if not spec.applicable:
        return RowResult(spec, None, None, note=LOSS_NOT_APPLICABLE)
    start = time.perf_counter()
    threshold = _oracle_threshold(episodes, spec, unknown_mode) if spec.oracle else spec.threshold
    search_seconds = time.perf_counter() - start if spec.oracle else 0.0
    key = _feature_key(spec)
    seconds = search_seconds
    assignments, notes = [], []
    for ep in episodes:
        clusters, cluster_seconds = _cluster_episode(ep, spec, threshold, backbone)
        seconds += cluster_seconds + ep.feature_seconds.get(key, 0.0) + (ep.finetune_seconds if spec.finetuned else 0.0)
        if spec.finetuned and ep.finetune_error:
            notes.append(f"{ep.video}: not finetuned ({ep.finetune_error}); its tracks count as Unknown")
        assignments.append(_assign(ep, clusters))
    metrics, per_episode = _score(assignments, unknown_mode, [ep.video for ep in episodes])
    if len(episodes) == 1 and isinstance(episodes[0], _Series):
        metrics["linked"] = linked_share(assignments[0])
    return RowResult(spec, metrics, seconds, [a for rows in assignments for a in rows], per_episode,
                     threshold, "; ".join(notes))  # fmt: skip


# --------------------------------------------------------------------------- the runner


def _manifest_records(bench_dir: Path, progress: Progress | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """What the builder's ``manifest.json`` says of each episode, and the build config; a
    benchmark needs none. A manifest from another tool or an older build is ignored with a
    one-line notice."""
    from vcn_plugin.benchmark.builder import Manifest

    path = bench_dir / "manifest.json"
    if not path.is_file():
        return {}, {}
    keep = ("identities", "n_identities", "n_shots", "n_frames", "n_tracks", "look", "look_severity", "cast_mode",
            "style", "mean_cast_distance", "knobs", "guests")  # fmt: skip
    try:
        manifest = Manifest.load(path)
        records = {Path(e.video).name: {k: getattr(e, k) for k in keep} for e in manifest.episodes}
        return records, dict(manifest.config)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        notice = f"ignoring {path}: not a vcn benchmark manifest ({type(err).__name__}: {err})"
        logger.warning(notice)
        if progress is not None:
            progress(0.0, notice)
        return {}, {}


def _series_summary(series: _Series) -> dict[str, Any]:
    videos: dict[str, set[str]] = {}
    for ep in series.episodes:
        for t, identity in ep.gt_identity.items():
            if not ep.gt_distractor[t]:
                videos.setdefault(identity, set()).add(ep.video)
    finetune = {"skipped": series.finetune_error} if series.finetune_error else {
        "seconds": series.finetune_seconds, **series.info.get("finetune_result", {})}
    return {
        "episodes": len(series.episodes),
        "identities": len(videos),
        "recurring_identities": sum(len(v) > 1 for v in videos.values()),
        "episodes_per_identity": {g: sorted(v) for g, v in sorted(videos.items())},
        "finetune": finetune,
        "health": finetune_health(series),
        "feature_seconds": dict(series.feature_seconds),
    }


def _episode_summary(ep: _Episode, stage1_stats: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    m = ep.matching
    gt_ids = {ep.gt_identity[t] for t in ep.gt_identity if not ep.gt_distractor[t]}
    finetune = {"skipped": ep.finetune_error} if ep.finetune_error else {
        "seconds": ep.finetune_seconds, **ep.info.get("finetune_result", {})}
    return {
        "video": ep.video,
        "gt_identities": len(gt_ids),
        "gt_tracks": sum(not d for d in ep.gt_distractor.values()),
        "distractor_gt_tracks": sum(ep.gt_distractor.values()),
        "pred_tracks": len(m.pred_tracks),
        "matched_tracks": len(m.matches),
        "scored_tracks": len(scored(ep.assignment_skeleton())),
        "tracks_with_chips": len(ep.track_set),
        "low_quality_tracks": int(np.count_nonzero(ep.track_set.low_quality)),
        "detection": asdict(m.detection),
        "box_calibration": asdict(m.calibration) if m.calibration else None,
        "tracking": asdict(m.tracking),
        "stage1": stage1_stats,
        "stage1_seconds": stage1_stats.get("seconds"),
        "feature_seconds": dict(ep.feature_seconds),
        "finetune": finetune,
        "health": finetune_health(ep),
        "manifest": manifest,
    }


@dataclass
class PreparedBenchmark:
    """A benchmark up to finetuning: stage 1 run (or reused), predicted tracks matched to the
    ground truth, chips read and pretrained embeddings computed, once for every configuration."""

    bench_dir: Path
    episodes: list[_Episode]
    track_set: Any  # TrackSet of every video
    stage1: list[dict[str, Any]]  # per episode, stage 1's record
    manifest: list[dict[str, Any]]  # per episode, what the builder's manifest says
    build_config: dict[str, Any]  # the builder's config ({} without a vcn manifest)
    dataset_name: str


@contextlib.contextmanager
def prepare_benchmark(
    bench_dir: str | Path,
    stage1_config: Stage1Config | None = None,
    backbone: Backbone | None = None,
    max_faces_per_track: int = 8,
    reuse_stage1: bool = True,
    keep_dataset: bool = False,
    progress: Progress | None = None,
) -> Iterator[PreparedBenchmark]:
    """Import ``bench_dir`` into a fresh non-persistent dataset, run stage 1, match and embed
    (see :func:`run_benchmark`); the dataset is deleted on exit unless ``keep_dataset``."""
    import fiftyone as fo

    from vcn_plugin.backbones import get_backbone
    from vcn_plugin.evaluation.ground_truth import import_benchmark
    from vcn_plugin.fo.storage import vcn_root
    from vcn_plugin.fo.track_sets import load_track_set
    from vcn_plugin.steps.detect import detect_faces

    bench_dir = Path(bench_dir)
    stage1_config = stage1_config or BENCHMARK_STAGE1
    backbone = backbone or get_backbone(DEFAULT_BACKBONE)
    dataset = fo.Dataset(f"vcn-benchmark-{uuid.uuid4().hex[:10]}")
    try:
        if progress:
            progress(0.0, f"importing {bench_dir}")
        manifest, build_config = _manifest_records(bench_dir, progress)
        import_benchmark(bench_dir, dataset)  # validates every annotation before any video is processed
        report = detect_faces(dataset, stage1_config, sub_progress(progress, 0.02, 0.9),
                              cache_dir=vcn_root() / "stage1_cache" if reuse_stage1 else None)
        if report.failed:
            raise RuntimeError(f"stage 1 failed on {report.failed}")
        track_set = load_track_set(dataset, backbone, max_faces_per_track, progress=sub_progress(progress, 0.9, 0.97))
        episodes, stage1, records = [], [], []
        for sample in dataset.select_fields([schema.frame_path(schema.FACES), schema.frame_path(schema.GT_FACES)]):
            video = Path(sample.filepath).name
            ep = _match_episode(sample, video, track_set.subset({sample.id}))
            if len(ep.track_set) == 0:
                ep.finetune_error = "no face tracks"
            else:
                ep.features["pretrained"], ep.feature_seconds["pretrained"] = _embed(ep, None, backbone)
            episodes.append(ep)
            stage1.append(report.processed.get(sample.filepath, {}))
            records.append(manifest.get(video, {}))
        yield PreparedBenchmark(bench_dir, episodes, track_set, stage1, records, build_config, dataset.name)
    finally:
        if not keep_dataset:
            dataset.delete()


def run_benchmark(
    bench_dir: str | Path,
    json_out: str | Path | None = None,
    methods: Sequence[RowSpec] = DEFAULT_ROWS,
    finetune_config: FinetuneConfig | None = None,
    stage1_config: Stage1Config | None = None,
    backbone: str = DEFAULT_BACKBONE,
    max_faces_per_track: int = 8,
    unknown_mode: str = "exclude",
    keep_dataset: bool = False,
    reuse_stage1: bool = True,
    series: bool | None = None,
    progress: Progress | None = None,
) -> BenchmarkResult:
    """Run the ablation on the benchmark at ``bench_dir`` (see the module docstring).

    ``finetune_config``: default :class:`FinetuneConfig` (minutes per episode on a CPU; use
    ``FinetuneConfig.tiny()`` for smoke tests). ``stage1_config``: default
    :data:`BENCHMARK_STAGE1`. ``keep_dataset``: keep the (non-persistent) FiftyOne dataset for
    inspection; its name is in :attr:`BenchmarkResult.dataset_name`. ``reuse_stage1``: take
    stage 1 of videos already processed with the same config from vcn's stage-1 cache
    (``<vcn root>/stage1_cache``), so a rerun of the ablation does not redo detection.
    ``series``: also score every row across episodes (:class:`BenchmarkResult` ``series_rows``:
    all tracks clustered together, finetuned rows after one more finetune over every episode);
    None: when the manifest says the episodes share a cast (the ``series`` preset).
    Writes the JSON to ``json_out`` when given.
    """
    from vcn_plugin.backbones import get_backbone
    from vcn_plugin.evaluation.metrics import UNKNOWN_MODES

    if unknown_mode not in UNKNOWN_MODES:
        raise ValueError(f"unknown_mode must be one of {UNKNOWN_MODES}, got {unknown_mode!r}")
    if not methods:
        raise ValueError("no rows to compute: pass at least one RowSpec (e.g. DEFAULT_ROWS)")
    finetune_config = finetune_config or FinetuneConfig()
    stage1_config = stage1_config or BENCHMARK_STAGE1
    backbone_model = get_backbone(backbone)  # loaded once, shared by every episode
    with prepare_benchmark(bench_dir, stage1_config, backbone_model, max_faces_per_track, reuse_stage1,
                           keep_dataset, sub_progress(progress, 0.0, 0.45)) as prep:  # fmt: skip
        if series is None:
            series = prep.build_config.get("cast_scope") == "series"
        episodes = prep.episodes
        share = 0.25 if series else 0.5  # the series' own finetune takes a share as large as all the episodes'
        for i, ep in enumerate(episodes):
            if not ep.finetune_error:
                span = (0.45 + share * i / len(episodes), 0.45 + share * (i + 1) / len(episodes))
                finetune_unit(ep, backbone_model, finetune_config, sub_progress(progress, *span))
        whole = None
        if series:
            whole = _Series(episodes, prep.track_set)
            _prepare_features(whole, backbone_model, finetune_config, sub_progress(progress, 0.7, 0.95))
        rows, series_rows = [], []
        for j, spec in enumerate(methods):
            if progress:
                progress(0.95 + 0.05 * j / len(methods), f"row {spec.name}")
            rows.append(compute_row(episodes, spec, backbone, unknown_mode))
            if whole is not None:
                series_rows.append(compute_row([whole], spec, backbone, unknown_mode))
        result = BenchmarkResult(
            rows=rows,
            episodes=[_episode_summary(ep, st, mf) for ep, st, mf in zip(episodes, prep.stage1, prep.manifest)],
            config={"benchmark": str(prep.bench_dir.resolve()), "backbone": backbone, "unknown_mode": unknown_mode,
                    "aggregation": "fractions: track-weighted mean of per-episode values; counts: sums; "
                                   "cluster_ratio: summed clusters / summed identities",
                    "stage1": stage1_config.to_dict(), "finetune": finetune_config.to_dict(),
                    "max_faces_per_track": max_faces_per_track, "series": bool(series)},  # fmt: skip
            dataset_name=prep.dataset_name if keep_dataset else None,
            series_rows=series_rows,
            series=_series_summary(whole) if whole is not None else None,
        )
    if json_out is not None:
        write_json(result.to_dict(), json_out)
    if progress:
        progress(1.0, "done")
    return result


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=_json_default))
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Hashable):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
