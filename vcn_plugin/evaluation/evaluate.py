"""Evaluate predicted face identities against ground truth, stored as a FiftyOne run.

:func:`evaluate_identities` scores one Detections frame field of predictions (default
``faces``: ``index`` = track id, ``label`` = cluster) against a ground-truth field (default
``gt_faces``: ``index`` = ground-truth track id, ``label`` = identity), per video:

1. Predicted and ground-truth tracks are matched with :func:`vcn_plugin.evaluation.track_matching.match_tracks`
   (frame-wise Hungarian pairing at IoU >= 0.5, then a majority vote over each predicted track's
   frames, in which the ground-truth tracks of one identity pool their votes: a predicted track
   that links one person across a gap where the annotation starts a new track is matched).
   Unmatched predicted tracks are *false detections*, reported apart.
2. The cluster of a predicted track is the most common label of its detections, the identity of
   a ground-truth track the most common label of its boxes (ties: first in alphabetical order).
   Labels are dataset-wide on both sides (a cluster such as ``person_01`` may span videos).
3. :func:`vcn_plugin.evaluation.metrics.evaluate_clustering` scores every matched predicted track whose
   ground-truth track is not a distractor (``distractor=True``: unlabelled extras, which have no
   identity to recover), with Unknown tracks excluded and with each Unknown as a singleton.

Distractors do count as real faces for the detection and tracking scores (finding an extra is
not a false detection). Detection and tracking totals are summed over videos (micro-average).

The report is stored as a run (method ``"evaluation"``) under ``eval_key``; a rerun replaces it.
"""
from __future__ import annotations

import keyword
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fiftyone as fo
import numpy as np

from vcn_plugin.evaluation.metrics import UNKNOWN_MODES, evaluate_clustering
from vcn_plugin.evaluation.track_matching import (
    DetectionMetrics,
    MatchingConfig,
    TrackingMetrics,
    TrackMatchingResult,
    match_tracks,
)
from vcn_plugin.fo import schema
from vcn_plugin.fo.frames import FrameTrack, majority_label, read_tracks
from vcn_plugin.fo.runs import check_run_key, list_runs, load_run, save_run

EVALUATION_METHOD = "evaluation"
DEFAULT_EVAL_KEY = schema.EVAL_KEY


@dataclass
class EvaluationConfig:
    """``unknown_label``: the prediction label of tracks a method declined to assign.
    ``allow_unclustered``: when False (default) a predicted track still labelled ``"face"``
    (detected but never clustered) is an error; when True such tracks are scored as Unknown,
    which is how detection and tracking can be evaluated before clustering.
    ``iou_threshold`` / ``min_track_coverage`` / ``calibrate_boxes``: see
    :class:`~vcn_plugin.evaluation.track_matching.MatchingConfig`."""

    pred_field: str = schema.FACES
    gt_field: str = schema.GT_FACES
    unknown_label: str = schema.UNKNOWN
    allow_unclustered: bool = False
    iou_threshold: float = 0.5
    min_track_coverage: float = 0.5
    #: map the predicted boxes onto the ground truth's box convention first (see MatchingConfig)
    calibrate_boxes: bool = False

    def matching(self) -> MatchingConfig:
        return MatchingConfig(self.iou_threshold, self.min_track_coverage, self.calibrate_boxes)


@dataclass
class IdentityRow:
    """One ground-truth identity. ``gt_tracks``: its ground-truth tracks; ``missed_gt_tracks``:
    those no predicted track was matched to; ``pred_tracks``: predicted tracks matched to it;
    ``unknown``: of those, predicted Unknown; ``purity`` / ``dominant_cluster``: share of its
    non-Unknown predicted tracks in its largest cluster, and that cluster; ``clusters``: every
    cluster holding its tracks with track counts (a split identity has several)."""

    identity: str
    gt_tracks: int
    missed_gt_tracks: int
    pred_tracks: int
    unknown: int
    purity: float
    dominant_cluster: str | None
    clusters: dict[str, int] = field(default_factory=dict)


@dataclass
class VideoRow:
    """Detection and tracking of one video (see :mod:`vcn_plugin.evaluation.track_matching`)."""

    video: str
    detection: DetectionMetrics
    tracking: TrackingMetrics


@dataclass
class EvaluationReport:
    """Everything :func:`evaluate_identities` measured.

    ``clustering``: :meth:`ClusteringMetrics.to_dict` per Unknown mode (``"exclude"``,
    ``"singleton"``); ``assignments``: one entry per predicted track, ``{"video", "track", "gt",
    "pred", "gt_track", "distractor"}`` with ``gt`` None for false detections and ``pred`` the
    track's cluster (the Unknown label for Unknown tracks)."""

    eval_key: str
    config: EvaluationConfig
    clustering: dict[str, dict[str, Any]]
    detection: DetectionMetrics
    tracking: TrackingMetrics
    per_identity: list[IdentityRow]
    per_video: list[VideoRow]
    assignments: list[dict[str, Any]]
    n_distractor_tracks: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationReport":
        return cls(
            eval_key=data["eval_key"],
            config=EvaluationConfig(**data["config"]),
            clustering=data["clustering"],
            detection=DetectionMetrics(**data["detection"]),
            tracking=TrackingMetrics(**data["tracking"]),
            per_identity=[IdentityRow(**row) for row in data["per_identity"]],
            per_video=[
                VideoRow(r["video"], DetectionMetrics(**r["detection"]), TrackingMetrics(**r["tracking"]))
                for r in data["per_video"]
            ],
            assignments=list(data["assignments"]),
            n_distractor_tracks=int(data["n_distractor_tracks"]),
        )

    @property
    def n_false_detection_tracks(self) -> int:
        return self.tracking.false_detection_tracks

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per clustering metric with its value in each Unknown mode."""
        return [
            {"metric": name, **{mode: self.clustering[mode][key] for mode in UNKNOWN_MODES}}
            for name, key in _CLUSTERING_ROWS
        ]


_CLUSTERING_ROWS = (
    ("WCP", "wcp"), ("cluster ratio", "cluster_ratio"), ("accuracy", "accuracy"),
    ("pairwise precision", "pairwise_precision"), ("pairwise recall", "pairwise_recall"),
    ("pairwise F", "pairwise_f"), ("BCubed precision", "bcubed_precision"), ("BCubed recall", "bcubed_recall"),
    ("BCubed F", "bcubed_f"), ("NMI", "nmi"), ("clusters", "n_clusters"), ("identities", "n_identities"),
    ("tracks evaluated", "n_evaluated"), ("Unknown tracks", "n_unknown"), ("coverage", "coverage"),
)  # fmt: skip


# --------------------------------------------------------------------------- public API


def evaluate_identities(
    samples: fo.core.collections.SampleCollection,
    pred_field: str = schema.FACES,
    gt_field: str = schema.GT_FACES,
    eval_key: str = DEFAULT_EVAL_KEY,
    unknown_label: str = schema.UNKNOWN,
    allow_unclustered: bool = False,
    iou_threshold: float = 0.5,
    min_track_coverage: float = 0.5,
    calibrate_boxes: bool = False,
) -> EvaluationReport:
    """Score the predicted identities of ``samples`` against ground truth and store the report
    as run ``eval_key`` on their dataset (replacing an earlier one). See the module docstring.
    ``calibrate_boxes``: when the ground truth was drawn in another detector's box convention."""
    config = EvaluationConfig(pred_field, gt_field, unknown_label, allow_unclustered, iou_threshold, min_track_coverage,
                              calibrate_boxes)
    dataset = samples._root_dataset
    _validate(samples, config, eval_key)
    check_run_key(dataset, eval_key, EVALUATION_METHOD)
    names = _video_names(samples.values("filepath"))
    videos = []
    for sample in samples.select_fields([schema.frame_path(pred_field), schema.frame_path(gt_field)]):
        video = names[sample.filepath]
        pred = read_tracks(sample, pred_field, video)
        gt = read_tracks(sample, gt_field, video)
        videos.append(_evaluate_video(video, pred, gt, config))
    report = _report(eval_key, config, videos)
    save_run(dataset, eval_key, EVALUATION_METHOD, asdict(config), {"report": report.to_dict()})
    return report


def load_evaluation(dataset: fo.Dataset, eval_key: str = DEFAULT_EVAL_KEY) -> EvaluationReport:
    """The report stored under ``eval_key``; KeyError when there is none, ValueError when the
    run is not an evaluation."""
    config, results = load_run(dataset, eval_key)
    if config.get("run_type") != EVALUATION_METHOD:
        raise ValueError(f"run '{eval_key}' of dataset '{dataset.name}' is a '{config.get('method')}' run, "
                         "not an identity evaluation")
    return EvaluationReport.from_dict(results["report"])


def list_evaluations(dataset: fo.Dataset) -> list[str]:
    return list_runs(dataset, method=EVALUATION_METHOD)


def delete_evaluation(dataset: fo.Dataset, eval_key: str) -> None:
    if eval_key not in list_evaluations(dataset):
        raise KeyError(f"dataset '{dataset.name}' has no evaluation '{eval_key}'; "
                       f"it has {list_evaluations(dataset)}")
    dataset.delete_run(eval_key)


# --------------------------------------------------------------------------- reading labels


def _validate(samples, config: EvaluationConfig, eval_key: str) -> None:
    dataset = samples._dataset
    schema.require_video_dataset(dataset)
    if not eval_key.isidentifier() or keyword.iskeyword(eval_key):
        raise ValueError(f"eval_key must be a valid Python identifier (letters, digits, _), got {eval_key!r}")
    hints = {config.gt_field: "import ground truth with vcn_plugin.evaluation.ground_truth.import_benchmark "
                              "(CLI: vcn import-benchmark)",
             config.pred_field: "run face detection and clustering first"}
    for name in (config.pred_field, config.gt_field):
        field_ = dataset.get_field(schema.frame_path(name))
        if field_ is None:
            raise ValueError(f"dataset '{dataset.name}' has no frame field '{name}': {hints[name]}")
        if not (isinstance(field_, fo.EmbeddedDocumentField) and issubclass(field_.document_type, fo.Detections)):
            raise ValueError(f"frames.{name} of dataset '{dataset.name}' is not a Detections field")
    if len(samples) == 0:
        raise ValueError("no videos to evaluate: the view is empty")
    config.matching()  # validates the thresholds


def _video_names(filepaths: list[str]) -> dict[str, str]:
    """File names, or full paths when two videos share a file name."""
    counts = Counter(Path(p).name for p in filepaths)
    return {p: Path(p).name if counts[Path(p).name] == 1 else p for p in filepaths}


@dataclass
class MatchedVideo:
    """One video's predicted tracks matched to its ground-truth tracks, with each ground-truth
    track's identity and distractor flag: what every identity score of the video starts from
    (this evaluation, and the benchmark's ablation rows)."""

    video: str
    matching: TrackMatchingResult
    gt_identity: dict[int, str]
    gt_distractor: dict[int, bool]


def match_video(
    video: str, pred: dict[int, FrameTrack], gt: dict[int, FrameTrack], config: MatchingConfig | None = None
) -> MatchedVideo:
    """Match the tracks ``pred`` to ``gt`` (both from :func:`~vcn_plugin.fo.frames.read_tracks`). The
    ground-truth tracks of one identity pool their votes (``gt_groups`` of
    :func:`~vcn_plugin.evaluation.track_matching.match_tracks`), so a predicted track that links one
    person across a gap where the annotation starts a new track is matched; a distractor's track is
    its own group (extras share one label, not one identity)."""
    gt_identity = {t: majority_label(track.labels) for t, track in gt.items()}
    groups = {t: ("distractor", t) if track.is_distractor else ("identity", gt_identity[t]) for t, track in gt.items()}
    matching = match_tracks({t: tr.boxes for t, tr in pred.items()}, {t: tr.boxes for t, tr in gt.items()}, config,
                            gt_groups=groups)
    return MatchedVideo(video, matching, gt_identity, {t: track.is_distractor for t, track in gt.items()})


@dataclass
class _VideoResult(MatchedVideo):
    pred_cluster: dict[int, str] = field(default_factory=dict)


def _evaluate_video(
    video: str, pred: dict[int, FrameTrack], gt: dict[int, FrameTrack], config: EvaluationConfig
) -> _VideoResult:
    matched = match_video(video, pred, gt, config.matching())
    pred_cluster = {t: _cluster_of(video, t, track.labels, config) for t, track in pred.items()}
    return _VideoResult(**vars(matched), pred_cluster=pred_cluster)


def _cluster_of(video: str, track: int, counts: Counter, config: EvaluationConfig) -> str:
    label = majority_label(counts)
    if label == schema.FACE_LABEL:
        if not config.allow_unclustered:
            raise ValueError(f"{video} track {track}: predictions in '{config.pred_field}' are still labelled "
                             f"'{schema.FACE_LABEL}' (not clustered yet); run clustering first, or pass "
                             "allow_unclustered=True to score such tracks as Unknown")
        return config.unknown_label
    if label == schema.NOT_FACE:
        return config.unknown_label
    return label


# --------------------------------------------------------------------------- the report


def _report(eval_key: str, config: EvaluationConfig, videos: list[_VideoResult]) -> EvaluationReport:
    assignments = [_assignment(v, m.pred_track, m.gt_track) for v in videos for m in
                   sorted(v.matching.pred_tracks, key=lambda m: m.pred_track)]
    scored = [a for a in assignments if a["gt"] is not None and not a["distractor"]]
    gt, pred = [a["gt"] for a in scored], [a["pred"] for a in scored]
    clustering = {
        mode: evaluate_clustering(gt, pred, unknown_label=config.unknown_label, unknown_mode=mode)
        for mode in UNKNOWN_MODES
    }
    return EvaluationReport(
        eval_key=eval_key,
        config=config,
        clustering={mode: metrics.to_dict() for mode, metrics in clustering.items()},
        detection=_sum_detection([v.matching.detection for v in videos]),
        tracking=_sum_tracking(videos),
        per_identity=_identity_rows(videos, clustering["exclude"]),
        per_video=[VideoRow(v.video, v.matching.detection, v.matching.tracking) for v in videos],
        assignments=assignments,
        n_distractor_tracks=sum(a["distractor"] for a in assignments),
    )


def _assignment(video: _VideoResult, pred_track: int, gt_track: int | None) -> dict[str, Any]:
    matched = gt_track is not None
    return {
        "video": video.video,
        "track": int(pred_track),
        "gt": video.gt_identity[gt_track] if matched else None,
        "pred": video.pred_cluster[pred_track],
        "gt_track": int(gt_track) if matched else None,
        "distractor": bool(matched and video.gt_distractor[gt_track]),
    }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 1.0


def _sum_detection(per_video: list[DetectionMetrics]) -> DetectionMetrics:
    tp = sum(d.true_positives for d in per_video)
    fp = sum(d.false_positives for d in per_video)
    fn = sum(d.false_negatives for d in per_video)
    recall, precision = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
    iou_sum = sum(d.mean_iou * d.true_positives for d in per_video)
    return DetectionMetrics(
        frames=sum(d.frames for d in per_video),
        gt_boxes=sum(d.gt_boxes for d in per_video),
        pred_boxes=sum(d.pred_boxes for d in per_video),
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        recall=recall,
        precision=precision,
        f1=2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0,
        mean_iou=iou_sum / tp if tp else 0.0,
    )


def _sum_tracking(videos: list[_VideoResult]) -> TrackingMetrics:
    per_video = [v.matching.tracking for v in videos]
    found = [len(q.pred_tracks) for v in videos for q in v.matching.gt_tracks if q.pred_tracks]
    return TrackingMetrics(
        gt_tracks=sum(t.gt_tracks for t in per_video),
        pred_tracks=sum(t.pred_tracks for t in per_video),
        matched_pred_tracks=sum(t.matched_pred_tracks for t in per_video),
        false_detection_tracks=sum(t.false_detection_tracks for t in per_video),
        gt_tracks_missed=sum(t.gt_tracks_missed for t in per_video),
        id_switches=sum(t.id_switches for t in per_video),
        fragmentations=sum(t.fragmentations for t in per_video),
        pred_tracks_per_gt_track=float(np.mean(found)) if found else 0.0,
    )


def _identity_rows(videos: list[_VideoResult], metrics) -> list[IdentityRow]:
    gt_tracks: Counter = Counter()
    missed: Counter = Counter()
    for v in videos:
        for q in v.matching.gt_tracks:
            if v.gt_distractor[q.gt_track]:
                continue
            identity = v.gt_identity[q.gt_track]
            gt_tracks[identity] += 1
            missed[identity] += not q.pred_tracks
    breakdown = {b.identity: b for b in metrics.per_identity}
    rows = []
    for identity in sorted(gt_tracks):
        b = breakdown.get(identity)
        rows.append(IdentityRow(
            identity=identity,
            gt_tracks=gt_tracks[identity],
            missed_gt_tracks=missed[identity],
            pred_tracks=b.tracks if b else 0,
            unknown=b.unknown if b else 0,
            purity=b.purity if b else 0.0,
            dominant_cluster=b.dominant_cluster if b else None,
            clusters=dict(b.clusters) if b else {},
        ))
    return rows


# --------------------------------------------------------------------------- formatting


def format_report(report: EvaluationReport, markdown: bool = True) -> str:
    """The summary (clustering in both Unknown modes, detection, tracking) and the
    per-identity table, as Markdown tables or aligned plain text."""
    t = report.tracking
    d = report.detection
    parts = [
        f"Evaluation '{report.eval_key}': {report.config.pred_field} vs {report.config.gt_field}",
        _table(["clustering (tracks)", "Unknown excluded", "Unknown as singletons"],
               [[r["metric"], _fmt(r["exclude"]), _fmt(r["singleton"])] for r in report.summary_rows()], markdown),
        _table(["detection (faces, IoU >= %.2g)" % report.config.iou_threshold, "value"], [
            ["recall", _fmt(d.recall)], ["precision", _fmt(d.precision)], ["F1", _fmt(d.f1)],
            ["mean IoU", _fmt(d.mean_iou)], ["GT faces", d.gt_boxes], ["predicted faces", d.pred_boxes],
        ], markdown),
        _table(["tracking", "value"], [
            ["GT tracks", t.gt_tracks], ["predicted tracks", t.pred_tracks],
            ["false-detection tracks", t.false_detection_tracks],
            ["tracks on distractors (not clustered)", report.n_distractor_tracks],
            ["GT tracks missed", t.gt_tracks_missed], ["ID switches", t.id_switches],
            ["fragmentations", t.fragmentations], ["predicted tracks per GT track", _fmt(t.pred_tracks_per_gt_track)],
        ], markdown),
        _table(["identity", "GT tracks", "missed", "pred tracks", "Unknown", "purity", "dominant cluster", "clusters"],
               [[r.identity, r.gt_tracks, r.missed_gt_tracks, r.pred_tracks, r.unknown, _fmt(r.purity),
                 r.dominant_cluster or "-", ", ".join(f"{c} ({n})" for c, n in r.clusters.items()) or "-"]
                for r in report.per_identity], markdown),
    ]
    return "\n\n".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]], markdown: bool) -> str:
    cells = [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])
