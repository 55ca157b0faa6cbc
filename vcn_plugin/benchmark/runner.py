"""The ablation benchmark: every clustering method on the same detected tracks of a benchmark.

:func:`run_benchmark` imports a benchmark directory (see :mod:`vcn_plugin.evaluation.ground_truth`) into a fresh,
non-persistent FiftyOne dataset and, per episode (one video):

1. runs stage 1 (shots, faces, tracks) once;
2. matches the predicted tracks to the ground-truth tracks once
   (:func:`vcn_plugin.evaluation.track_matching.match_tracks`: frame-wise IoU >= 0.5, majority over the
   track's frames), so every row is scored on exactly the same tracks; this also gives the
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

The oracle. ``HAC cosine, oracle threshold`` cuts the average-linkage dendrogram of every
episode at one threshold shared by the whole benchmark, the one with the best aggregated
accuracy (ties: best BCubed F, then the smallest threshold), chosen with the ground truth. It
is an upper bound for HAC, not a method; its row says ``oracle: true``.

Time. A row's ``seconds`` sums over episodes: computing its features (backbone or finetuned
model on the chips), the finetuning when the row is finetuned, the clustering, and for the
oracle the threshold search.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcn_plugin.fo import schema
from vcn_plugin.fo.frames import majority_label, read_tracks
from vcn_plugin.backbones import DEFAULT_BACKBONE
from vcn_plugin.backbones.base import Backbone
from vcn_plugin.evaluation.metrics import ClusteringMetrics, evaluate_clustering
from vcn_plugin.ssl import FinetuneConfig, SSLModel
from vcn_plugin.core.progress import Progress, sub_progress
from vcn_plugin.stage1 import Stage1Config
from vcn_plugin.evaluation.track_matching import TrackMatchingResult, match_tracks

#: stage 1 for benchmarks: dlib's HOG detector (its box convention is the one the builder's
#: ground truth uses) upsampled once, so it finds the 40-50 px faces the presets render
BENCHMARK_STAGE1 = Stage1Config(detector="dlib-hog", detector_options={"upsample": 1}, detect_every=2)
#: the scores aggregated as track-weighted means (see the module docstring)
FRACTION_KEYS = ("wcp", "accuracy", "pairwise_f", "bcubed_f", "nmi")
#: every key of a JSON row besides ``assignments``
ROW_KEYS = ("method", "metric", "finetuned", "oracle", "wcp", "accuracy", "pairwise_f", "bcubed_f", "nmi",
            "cluster_ratio", "n_clusters", "n_identities", "unknown", "seconds")  # fmt: skip
LOSS_NOT_APPLICABLE = (
    "not applicable: the loss metric is the finetuned head's own loss; before finetuning the head is "
    "random, so its 'distance' means nothing"
)


@dataclass(frozen=True)
class RowSpec:
    """One row of the ablation table.

    ``method``: a clustering method of :data:`vcn_plugin.clustering.METHODS`; ``finetuned``:
    cluster features of the model finetuned to the video (else the pretrained backbone);
    ``guard``: forbid merging tracks seen in the same frame (aggregation methods only);
    ``oracle``: HAC threshold chosen with the ground truth (``hac-cosine`` only);
    ``threshold``: fixed HAC distance threshold.
    """

    name: str
    method: str
    finetuned: bool
    guard: bool = True
    oracle: bool = False
    threshold: float | None = None

    def __post_init__(self) -> None:
        from vcn_plugin.clustering import METHODS

        if self.method not in METHODS:
            raise ValueError(f"row {self.name!r}: unknown method {self.method!r}; choose one of {METHODS}")
        if self.oracle and self.method != "hac-cosine":
            raise ValueError(f"row {self.name!r}: only 'hac-cosine' has an oracle threshold")
        if self.method.startswith("hac-") and not self.oracle and self.threshold is None:
            raise ValueError(f"row {self.name!r}: HAC needs a threshold or oracle=True")

    @property
    def family(self) -> str:
        """``method`` of the JSON row: hac, finch, hdbscan or ours (VideoClusterNet's aggregation)."""
        return self.method.split("-")[0] if self.method in ("hac-cosine", "hac-euclidean", "finch", "hdbscan") else "ours"

    @property
    def metric(self) -> str:
        """``metric`` of the JSON row (FINCH and HDBSCAN run on L2-normalised track means: cosine)."""
        if self.method in ("loss", "cosine", "euclidean"):
            return self.method
        return "euclidean" if self.method == "hac-euclidean" else "cosine"

    @property
    def applicable(self) -> bool:
        return not (self.method == "loss" and not self.finetuned)


#: the paper-shaped ablation: baselines and ours, un-finetuned vs finetuned, guard on/off
DEFAULT_ROWS: tuple[RowSpec, ...] = (
    RowSpec("HAC cosine, oracle threshold", "hac-cosine", finetuned=False, oracle=True),
    RowSpec("pyannote-video style: HAC Euclidean @ 0.6 (dlib)", "hac-euclidean", finetuned=False, threshold=0.6),
    RowSpec("FINCH", "finch", finetuned=False),
    RowSpec("HDBSCAN", "hdbscan", finetuned=False),
    RowSpec("ours, cosine", "cosine", finetuned=False),
    RowSpec("ours, Euclidean", "euclidean", finetuned=False),
    RowSpec("ours, loss", "loss", finetuned=False),
    RowSpec("ours, cosine, no guard", "cosine", finetuned=False, guard=False),
    RowSpec("HAC cosine, oracle threshold", "hac-cosine", finetuned=True, oracle=True),
    RowSpec("FINCH", "finch", finetuned=True),
    RowSpec("HDBSCAN", "hdbscan", finetuned=True),
    RowSpec("ours, cosine", "cosine", finetuned=True),
    RowSpec("ours, Euclidean", "euclidean", finetuned=True),
    RowSpec("ours, loss", "loss", finetuned=True),
    RowSpec("ours, loss, no guard", "loss", finetuned=True, guard=False),
)  # fmt: skip


# --------------------------------------------------------------------------- results


@dataclass
class RowResult:
    """One row: aggregated metrics (None when not applicable), time, and every track's assignment."""

    spec: RowSpec
    metrics: dict[str, float | int] | None
    seconds: float | None
    assignments: list[dict[str, Any]] = field(default_factory=list)
    per_episode: list[dict[str, Any]] = field(default_factory=list)
    threshold: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        s = self.spec
        metrics = self.metrics or {}
        return {
            "method": s.family,
            "metric": s.metric,
            "finetuned": s.finetuned,
            "oracle": s.oracle,
            **{k: metrics.get(k) for k in (*FRACTION_KEYS, "cluster_ratio", "n_clusters", "n_identities", "unknown")},
            "seconds": self.seconds,
            "name": s.name,
            "guard": s.guard,
            "threshold": self.threshold,
            "note": self.note,
            "per_episode": self.per_episode,
            "assignments": self.assignments,
        }


@dataclass
class BenchmarkResult:
    """``rows`` in :data:`DEFAULT_ROWS` order, ``episodes``: stage-wise numbers per video."""

    rows: list[RowResult]
    episodes: list[dict[str, Any]]
    config: dict[str, Any]
    dataset_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows], "episodes": self.episodes, "config": self.config}

    def to_markdown(self) -> str:
        return format_rows(self.rows) + "\n\n" + format_episodes(self.episodes)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_rows(rows: Sequence[RowResult]) -> str:
    """The ablation table as Markdown."""
    head = ["method", "finetuned", "guard", "WCP", "accuracy", "pairwise F", "BCubed F", "NMI", "cluster ratio",
            "clusters / identities", "Unknown", "seconds"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        s, m = r.spec, r.metrics
        name = s.name + (f" [ORACLE, t={r.threshold:.3f}]" if s.oracle and r.threshold is not None else "")
        guard = ("on" if s.guard else "off") if s.method in ("loss", "cosine", "euclidean") else "-"
        if m is None:
            cells = [name, "yes" if s.finetuned else "no", guard] + [r.note.split(":")[0]] + [""] * 8
        else:
            cells = [name, "yes" if s.finetuned else "no", guard, *(_fmt(m[k]) for k in FRACTION_KEYS),
                     _fmt(m["cluster_ratio"], 2), f"{m['n_clusters']} / {m['n_identities']}", str(m["unknown"]),
                     _fmt(r.seconds, 1)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_episodes(episodes: Sequence[dict[str, Any]]) -> str:
    """Stage-wise numbers per episode as Markdown (where errors come from)."""
    head = ["video", "GT tracks", "identities", "det. recall", "det. precision", "pred tracks", "false-det. tracks",
            "GT tracks missed", "ID switches", "fragmentations", "low-quality", "stage 1 s", "finetune s"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for e in episodes:
        d, t = e["detection"], e["tracking"]
        ft = e["finetune"]
        cells = [e["video"], t["gt_tracks"], e["gt_identities"], _fmt(d["recall"]), _fmt(d["precision"]),
                 t["pred_tracks"], t["false_detection_tracks"], t["gt_tracks_missed"], t["id_switches"],
                 t["fragmentations"], e["low_quality_tracks"], _fmt(e["stage1_seconds"], 1),
                 _fmt(ft.get("seconds"), 1) if "skipped" not in ft else "skipped"]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- per-episode data


@dataclass
class _Episode:
    """Everything the rows share for one video."""

    video: str
    matching: TrackMatchingResult
    gt_identity: dict[int, str]
    gt_distractor: dict[int, bool]
    track_set: Any  # TrackSet of this video
    index_of: dict[int, int]  # predicted track id -> index in track_set
    features: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # "pretrained"/"finetuned"/"loss"
    feature_seconds: dict[str, float] = field(default_factory=dict)
    finetune_seconds: float = 0.0
    finetune_error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

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


def _match_episode(sample, video: str, track_set) -> _Episode:
    pred = read_tracks(sample, schema.FACES, video)
    gt = read_tracks(sample, schema.GT_FACES, video)
    matching = match_tracks({t: tr.boxes for t, tr in pred.items()}, {t: tr.boxes for t, tr in gt.items()})
    gt_identity = {t: majority_label(tr.labels) for t, tr in gt.items()}
    gt_distractor = {t: tr.is_distractor for t, tr in gt.items()}
    index_of = {tf.track: i for i, tf in enumerate(track_set.tracks)}
    return _Episode(video, matching, gt_identity, gt_distractor, track_set, index_of)


def _embed(episode: _Episode, model: SSLModel | None, backbone: Backbone) -> tuple[dict[str, np.ndarray], float]:
    from vcn_plugin.steps.cluster import track_features

    start = time.perf_counter()
    features = track_features(episode.track_set, "cosine", model, backbone)
    return features, time.perf_counter() - start


def _prepare_features(episode: _Episode, backbone: Backbone, finetune_config: FinetuneConfig, progress: Progress | None) -> None:
    """Pretrained embeddings; finetune once; finetuned embeddings and head outputs."""
    from vcn_plugin.steps.finetune import finetune_track_set
    from vcn_plugin.steps.cluster import track_features

    if len(episode.track_set) == 0:
        episode.finetune_error = "no face tracks"
        return
    episode.features["pretrained"], episode.feature_seconds["pretrained"] = _embed(episode, None, backbone)
    start = time.perf_counter()
    try:
        model, result = finetune_track_set(episode.track_set, backbone, finetune_config, progress, label=episode.video)
    except ValueError as err:
        episode.finetune_error = str(err)
        return
    episode.finetune_seconds = time.perf_counter() - start
    episode.info["finetune_result"] = {k: result[k] for k in ("device", "num_tracks", "num_chips", "match_counts",
                                                              "stage_seconds", "stage_steps")}  # fmt: skip
    episode.features["finetuned"], episode.feature_seconds["finetuned"] = _embed(episode, model, backbone)
    start = time.perf_counter()
    episode.features["loss"] = track_features(episode.track_set, "loss", model, backbone)
    episode.feature_seconds["loss"] = time.perf_counter() - start


# --------------------------------------------------------------------------- rows


def _feature_key(spec: RowSpec) -> str:
    if not spec.finetuned:
        return "pretrained"
    return "loss" if spec.method == "loss" else "finetuned"


def _cluster_episode(episode: _Episode, spec: RowSpec, threshold: float | None, backbone: str) -> tuple[dict[int, str], float]:
    """Predicted track id -> cluster name (Unknown when excluded or not clusterable), and seconds."""
    from vcn_plugin.steps.cluster import cluster_track_set

    key = _feature_key(spec)
    if key not in episode.features:  # no tracks, or finetuning impossible on this video
        return {}, 0.0
    start = time.perf_counter()
    result = cluster_track_set(episode.track_set, spec.method, None, backbone, guard=spec.guard,
                               threshold=threshold, features=episode.features[key])  # fmt: skip
    seconds = time.perf_counter() - start
    return {tf.track: name for tf, name in zip(episode.track_set.tracks, result.names)}, seconds


def _assign(episode: _Episode, clusters: dict[int, str]) -> list[dict[str, Any]]:
    rows = episode.assignment_skeleton()
    for a in rows:
        a["pred"] = clusters.get(a["track"], schema.UNKNOWN)
    return rows


def scored(assignments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The assignments that are scored: matched to a ground-truth track that is not a distractor."""
    return [a for a in assignments if a["gt"] is not None and not a.get("distractor", False)]


def aggregate_episodes(per_episode: Sequence[ClusteringMetrics]) -> dict[str, float | int]:
    """Track-weighted mean of the fractions, sums of the counts (see the module docstring)."""
    weights = np.array([m.n_evaluated for m in per_episode], dtype=float)
    out: dict[str, float | int] = {}
    for key in FRACTION_KEYS:
        values = np.array([getattr(m, key) for m in per_episode], dtype=float)
        out[key] = float((values * weights).sum() / weights.sum()) if weights.sum() > 0 else 0.0
    out["n_clusters"] = int(sum(m.n_clusters for m in per_episode))
    out["n_identities"] = int(sum(m.n_identities for m in per_episode))
    out["cluster_ratio"] = out["n_clusters"] / out["n_identities"] if out["n_identities"] else 0.0
    out["unknown"] = int(sum(m.n_unknown for m in per_episode))
    return out


def _score(assignments_per_episode: list[list[dict[str, Any]]], unknown_mode: str) -> tuple[dict, list[dict]]:
    metrics = []
    per_episode = []
    for rows in assignments_per_episode:
        s = scored(rows)
        m = evaluate_clustering([a["gt"] for a in s], [a["pred"] for a in s], schema.UNKNOWN, unknown_mode)
        metrics.append(m)
        per_episode.append({"video": rows[0]["video"] if rows else None, "n_evaluated": m.n_evaluated,
                            **{k: getattr(m, k) for k in (*FRACTION_KEYS, "cluster_ratio", "n_clusters",
                                                          "n_identities", "n_unknown")}})  # fmt: skip
    return aggregate_episodes(metrics), per_episode


def _oracle_threshold(episodes: list[_Episode], spec: RowSpec, unknown_mode: str) -> float:
    """The one HAC cosine threshold for all episodes with the best aggregated accuracy (ties: BCubed F,
    then the smallest threshold). Candidates: 0 and every merge height of every episode's dendrogram."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import pdist

    from vcn_plugin.clustering import cluster_names, hac, track_means

    key = _feature_key(spec)
    prepared = []
    candidates = {0.0}
    for ep in episodes:
        if key not in ep.features:
            continue
        ts = ep.track_set
        means = track_means(ep.features[key]["embeddings"], ts.face_track, len(ts), normalize=True)
        active = ~ts.low_quality
        if active.sum() >= 2:
            candidates.update(float(h) for h in linkage(pdist(means[active], "cosine"), "average")[:, 2])
        prepared.append((ep, means))
    best_t, best = 0.0, (-1.0, -1.0)
    for t in sorted(candidates):
        per_episode = []
        for ep, means in prepared:
            labels = hac(means, "cosine", t, excluded=ep.track_set.low_quality).labels
            clusters = {tf.track: n for tf, n in zip(ep.track_set.tracks, cluster_names(labels))}
            per_episode.append(_assign(ep, clusters))
        agg, _ = _score(per_episode, unknown_mode)
        if (agg["accuracy"], agg["bcubed_f"]) > best:
            best_t, best = t, (agg["accuracy"], agg["bcubed_f"])
    return best_t


def compute_row(episodes: list[_Episode], spec: RowSpec, backbone: str, unknown_mode: str = "exclude") -> RowResult:
    """One ablation row from the prepared episodes (features are never recomputed here)."""
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
    metrics, per_episode = _score(assignments, unknown_mode)
    return RowResult(spec, metrics, seconds, [a for rows in assignments for a in rows], per_episode,
                     threshold, "; ".join(notes))  # fmt: skip


# --------------------------------------------------------------------------- the runner


def _manifest_records(bench_dir: Path) -> dict[str, dict[str, Any]]:
    from vcn_plugin.benchmark.builder import Manifest

    path = bench_dir / "manifest.json"
    if not path.is_file():
        return {}
    keep = ("identities", "n_identities", "n_shots", "n_frames", "n_tracks", "look", "look_severity", "cast_mode",
            "style", "mean_cast_distance", "knobs")  # fmt: skip
    return {Path(e.video).name: {k: getattr(e, k) for k in keep} for e in Manifest.load(path).episodes}


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
        "tracking": asdict(m.tracking),
        "stage1": stage1_stats,
        "stage1_seconds": stage1_stats.get("seconds"),
        "feature_seconds": dict(ep.feature_seconds),
        "finetune": finetune,
        "manifest": manifest,
    }


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
    progress: Progress | None = None,
) -> BenchmarkResult:
    """Run the ablation on the benchmark at ``bench_dir`` (see the module docstring).

    ``finetune_config``: default :class:`FinetuneConfig` (minutes per episode on a CPU; use
    ``FinetuneConfig.tiny()`` for smoke tests). ``stage1_config``: default
    :data:`BENCHMARK_STAGE1`. ``keep_dataset``: keep the (non-persistent) FiftyOne dataset for
    inspection; its name is in :attr:`BenchmarkResult.dataset_name`. Writes the JSON to
    ``json_out`` when given.
    """
    import fiftyone as fo

    from vcn_plugin.steps.detect import detect_faces
    from vcn_plugin.backbones import get_backbone
    from vcn_plugin.evaluation.ground_truth import import_benchmark
    from vcn_plugin.evaluation.metrics import UNKNOWN_MODES
    from vcn_plugin.fo.track_sets import load_track_set

    if unknown_mode not in UNKNOWN_MODES:
        raise ValueError(f"unknown_mode must be one of {UNKNOWN_MODES}, got {unknown_mode!r}")
    if not methods:
        raise ValueError("no rows to compute: pass at least one RowSpec (e.g. DEFAULT_ROWS)")
    bench_dir = Path(bench_dir)
    finetune_config = finetune_config or FinetuneConfig()
    stage1_config = stage1_config or BENCHMARK_STAGE1
    backbone_model = get_backbone(backbone)  # loaded once, shared by every episode
    dataset = fo.Dataset(f"vcn-benchmark-{uuid.uuid4().hex[:10]}")
    try:
        if progress:
            progress(0.0, f"importing {bench_dir}")
        import_benchmark(bench_dir, dataset)
        report = detect_faces(dataset, stage1_config, sub_progress(progress, 0.02, 0.4))
        if report.failed:
            raise RuntimeError(f"stage 1 failed on {report.failed}")
        track_set = load_track_set(dataset, backbone_model, max_faces_per_track, progress=sub_progress(progress, 0.4, 0.45))
        manifest = _manifest_records(bench_dir)
        episodes, summaries_in = [], []
        samples = list(dataset.select_fields([schema.frame_path(schema.FACES), schema.frame_path(schema.GT_FACES)]))
        for i, sample in enumerate(samples):
            video = Path(sample.filepath).name
            ep = _match_episode(sample, video, track_set.subset({sample.id}))
            _prepare_features(ep, backbone_model, finetune_config,
                              sub_progress(progress, 0.45 + 0.5 * i / len(samples), 0.45 + 0.5 * (i + 1) / len(samples)))
            episodes.append(ep)
            summaries_in.append((report.processed.get(sample.filepath, {}), manifest.get(video, {})))
        rows = []
        for j, spec in enumerate(methods):
            if progress:
                progress(0.95 + 0.05 * j / len(methods), f"row {spec.name}")
            rows.append(compute_row(episodes, spec, backbone, unknown_mode))
        result = BenchmarkResult(
            rows=rows,
            episodes=[_episode_summary(ep, st, mf) for ep, (st, mf) in zip(episodes, summaries_in)],
            config={"benchmark": str(bench_dir.resolve()), "backbone": backbone, "unknown_mode": unknown_mode,
                    "aggregation": "fractions: track-weighted mean of per-episode values; counts: sums; "
                                   "cluster_ratio: summed clusters / summed identities",
                    "stage1": stage1_config.to_dict(), "finetune": finetune_config.to_dict(),
                    "max_faces_per_track": max_faces_per_track},  # fmt: skip
            dataset_name=dataset.name if keep_dataset else None,
        )
    finally:
        if not keep_dataset:
            dataset.delete()
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



# --------------------------------------------------------------------------- severity sweeps

#: default looks of a sweep (two contrasting grades keep a full sweep near 40 min on 2 cores)
DEFAULT_SWEEP_LOOKS = ("teal_orange", "day_for_night")
DEFAULT_SWEEP_SEVERITIES = (0, 1, 2, 3)


@dataclass
class SweepCell:
    """One benchmark of a sweep: ``look`` at ``severity`` (severity 0 is the identity look: one
    cell, named ``look="none"``, serves every look)."""

    look: str
    severity: int
    bench_dir: str
    result: BenchmarkResult

    def to_dict(self) -> dict[str, Any]:
        return {"look": self.look, "severity": self.severity, "benchmark": self.bench_dir, **self.result.to_dict()}


@dataclass
class SweepResult:
    cells: list[SweepCell]
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"cells": [c.to_dict() for c in self.cells], "config": self.config}

    def to_markdown(self) -> str:
        parts = []
        for c in self.cells:
            title = "no look (severity 0)" if c.severity == 0 else f"{c.look}, severity {c.severity}"
            parts.append(f"### {title}\n\n{format_rows(c.result.rows)}\n\n{format_episodes(c.result.episodes)}")
        return "\n\n".join(parts)

    def series(self, look: str) -> list[SweepCell]:
        """The cells of ``look`` by severity, the shared severity-0 cell first."""
        return sorted((c for c in self.cells if c.look == look or c.severity == 0), key=lambda c: c.severity)


def _same_build(manifest_path: Path, faces_dir: Path, n_episodes: int, config_dict: dict[str, Any]) -> bool:
    import json

    from vcn_plugin.benchmark.builder import Manifest

    if not manifest_path.is_file():
        return False
    manifest = Manifest.load(manifest_path)
    same_config = json.loads(json.dumps(manifest.config)) == json.loads(json.dumps(config_dict))
    files_there = all((manifest_path.parent / e.video).is_file() and (manifest_path.parent / e.annotation).is_file()
                      for e in manifest.episodes)  # fmt: skip
    return same_config and files_there and len(manifest.episodes) == n_episodes and manifest.faces_dir == str(faces_dir)


def ensure_benchmark(faces_dir: str | Path, out_dir: str | Path, n_episodes: int, config, progress=None,
                     cache_dir: str | Path | None = None) -> bool:
    """Build the benchmark unless ``out_dir`` already holds one built the same way (same faces
    folder, config and episode count); returns True when it was built. A stale benchmark there
    (its ``videos/`` and ``annotations/``) is replaced; the detector cache is kept."""
    import shutil

    from vcn_plugin.benchmark.builder import build_benchmark

    out = Path(out_dir)
    faces = Path(faces_dir).resolve()
    if _same_build(out / "manifest.json", faces, n_episodes, asdict(config)):
        return False
    if (out / "videos").exists() and not (out / "manifest.json").is_file():
        raise ValueError(f"{out} holds videos but no manifest.json; it was not built by the sweep. "
                         "Choose an empty or sweep-owned --out folder")
    for stale in ("videos", "annotations"):
        shutil.rmtree(out / stale, ignore_errors=True)
    build_benchmark(faces, out, n_episodes, config, progress, cache_dir)
    return True


def sweep(
    faces_dir: str | Path,
    out_dir: str | Path,
    looks: Sequence[str] = DEFAULT_SWEEP_LOOKS,
    severities: Sequence[int] = DEFAULT_SWEEP_SEVERITIES,
    episodes: int = 1,
    preset: str = "default",
    json_out: str | Path | None = None,
    plot_out: str | Path | None = None,
    quick: bool = False,
    seed: int = 0,
    config_overrides: dict[str, Any] | None = None,
    finetune_config: FinetuneConfig | None = None,
    stage1_config: Stage1Config | None = None,
    methods: Sequence[RowSpec] = DEFAULT_ROWS,
    progress: Progress | None = None,
) -> SweepResult:
    """Build (or reuse) ``episodes`` episodes per look and severity under ``out_dir`` and run the
    ablation on each. Every cell uses the same seed, so casts, shots and photos are identical
    across cells and only the look changes. ``quick``: the ``quick`` preset, one episode and
    ``FinetuneConfig.tiny()`` (a CI-sized smoke run). Writes the JSON and the plot when asked."""
    from vcn_plugin.benchmark.builder import EpisodeConfig
    from vcn_plugin.benchmark.looks import validate_look

    if quick:
        preset, episodes = "quick", 1
        finetune_config = finetune_config or FinetuneConfig.tiny()
    if not looks or not severities:
        raise ValueError("a sweep needs at least one look and one severity")
    for look in looks:
        for severity in severities:
            validate_look(look, severity)
    cells_todo = sorted({("none", 0) if s == 0 else (look, s) for look in looks for s in severities},
                        key=lambda c: (c[1], c[0]))  # fmt: skip
    out = Path(out_dir)
    cells = []
    for k, (look, severity) in enumerate(cells_todo):
        config = EpisodeConfig.preset(preset, seed=seed, look=look, look_severity=severity, **(config_overrides or {}))
        bench_dir = out / f"{look}-s{severity}"
        cell_progress = sub_progress(progress, k / len(cells_todo), (k + 1) / len(cells_todo))
        label = f"{look} s{severity}"
        if cell_progress:
            cell_progress(0.0, f"{label}: building")
        ensure_benchmark(faces_dir, bench_dir, episodes, config,
                         (lambda d, t, msg: cell_progress(0.0, f"{label}: built {d}/{t}")) if cell_progress else None,
                         cache_dir=out / ".cache")
        result = run_benchmark(bench_dir, None, methods, finetune_config, stage1_config,
                               progress=(lambda f, msg: cell_progress(f, f"{label}: {msg}")) if cell_progress else None)
        cells.append(SweepCell(look, severity, str(bench_dir), result))
    result = SweepResult(cells, {"faces_dir": str(Path(faces_dir).resolve()), "looks": list(looks),
                                 "severities": list(severities), "episodes": episodes, "preset": preset,
                                 "seed": seed, "quick": quick, "config_overrides": config_overrides or {}})  # fmt: skip
    if json_out is not None:
        write_json(result.to_dict(), json_out)
    if plot_out is not None:
        plot_sweep(result, plot_out)
    return result


def _row_label(row: RowResult) -> str:
    return f"{row.spec.name}{' (finetuned)' if row.spec.finetuned else ''}"


def plot_sweep(result: SweepResult, path: str | Path) -> Path:
    """Accuracy and cluster ratio against severity, one line per applicable row (one colour per
    method; dashed: pretrained features, solid: finetuned), one figure row per look."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    looks = list(result.config["looks"])
    fig, axes = plt.subplots(len(looks), 2, figsize=(13, 3.6 * len(looks)), squeeze=False)
    handles = {}
    names = list(dict.fromkeys(r.spec.name for r in result.cells[0].result.rows))  # one colour per method
    for li, look in enumerate(looks):
        cells = result.series(look)
        sev = [c.severity for c in cells]
        for ri, row in enumerate(cells[0].result.rows):
            if row.metrics is None:
                continue
            style = dict(marker="o", linestyle="-" if row.spec.finetuned else "--", linewidth=1.4)
            for ax, key in zip(axes[li], ("accuracy", "cluster_ratio")):
                values = [c.result.rows[ri].metrics[key] for c in cells]
                (line,) = ax.plot(sev, values, label=_row_label(row), color=plt.cm.tab10(names.index(row.spec.name) % 10), **style)
                handles[_row_label(row)] = line
        for ax, key in zip(axes[li], ("accuracy", "cluster ratio")):
            ax.set_title(f"{look}: {key}")
            ax.set_xlabel("look severity")
            ax.set_xticks(sev)
            ax.grid(alpha=0.3)
        axes[li][1].axhline(1.0, color="black", linewidth=0.8)
    fig.legend(handles.values(), handles.keys(), loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.74, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
