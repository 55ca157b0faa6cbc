"""Stage 2 on a FiftyOne dataset: finetune the backbone to each video, record checkpoints as a run."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fiftyone as fo

from vcn_plugin.backbones import DEFAULT_BACKBONE, get_backbone, resolve_backbone
from vcn_plugin.backbones.base import Backbone
from vcn_plugin.core.progress import Progress, sub_progress
from vcn_plugin.fo import schema
from vcn_plugin.fo.runs import check_run_key, load_run, save_run
from vcn_plugin.fo.storage import check_key, dataset_dir, inside, make_own_dir
from vcn_plugin.fo.track_sets import TrackSet, load_track_set
from vcn_plugin.ssl import FinetuneConfig, SSLModel, finetune

DEFAULT_RUN_KEY = schema.FINETUNE_RUN
SCOPES = ("video", "dataset")
#: a video needs at least this many usable tracks to be finetuned on
MIN_TRACKS = 2


def checkpoint_dir(dataset: fo.Dataset, run_key: str, root: str | Path | None = None) -> Path:
    """``<root>/models/ds_<dataset id>/<run key>`` (root: vcn's own folder by default), created;
    named by the dataset's id, so no dataset name can point it elsewhere."""
    check_key(run_key)
    base = dataset_dir(dataset, "models", root)
    return make_own_dir(inside(base, base / run_key))


@dataclass
class FinetuneSummary:
    run_key: str
    checkpoints: dict[str, str] = field(default_factory=dict)  # video id (or "all") -> path
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"finetuned {len(self.checkpoints)} model(s) under run '{self.run_key}'; {len(self.skipped)} skipped"]
        for key, res in self.results.items():
            lines.append(
                f"  {key}: {res['num_tracks']} tracks, {res['num_chips']} faces, matches per round {res['match_counts']}, "
                f"{sum(res['stage_seconds'].values()):.1f} s on {res['device']}"
            )
            if res.get("health"):
                h = res["health"][-1]
                lines.append(
                    f"    teacher after {h['after']}: entropy {h['entropy']:.2f} of {h['max_entropy']:.2f} (uniform), "
                    f"sharpness {h['sharpness']:.2f}, {h['track_prototypes']} prototypes for {h['tracks']} tracks"
                )
        lines += [f"  skipped {k}: {v}" for k, v in self.skipped.items()]
        return "\n".join(lines)


def usable(track_set: TrackSet) -> list[int]:
    """Indices of the tracks that take part: not flagged as low-quality outliers."""
    return [i for i in range(len(track_set)) if not track_set.low_quality[i]]


def finetune_track_set(
    track_set: TrackSet, backbone: str | Backbone, config: FinetuneConfig, progress: Progress | None = None,
    label: str = "",
) -> tuple[SSLModel, dict[str, Any]]:
    """Finetune on the usable tracks of ``track_set``; co-occurring tracks are never matched.
    ``backbone`` (a name or a loaded one) is copied, never modified."""
    keep = usable(track_set)
    if len(keep) < MIN_TRACKS:
        raise ValueError(
            f"{label or 'this video'} has {len(keep)} usable face track(s); finetuning needs at least {MIN_TRACKS}. "
            "Check the detections (stage 1), or cluster with the 'cosine' method, which needs no finetuning"
        )
    position = {old: new for new, old in enumerate(keep)}
    tracks = [(track_set.tracks[i].key, track_set.tracks[i].chips) for i in keep]
    cannot = [
        (track_set.tracks[a].key, track_set.tracks[b].key)
        for a, b in track_set.cooccurring
        if a in position and b in position
    ]

    rounds = config.rounds
    reached = 0.0  # the bar never moves back (round head steps and the final head steps come late)

    def report(stage: str, step: int, total: int, info: dict) -> None:
        nonlocal reached
        if progress is None:
            return
        within = step / max(total, 1)
        # overall fraction: cache 20 %, head 40 %, then each round's matching, head and joint steps
        if stage == "cache":
            fraction = 0.2 * within
        elif stage == "head" and not info.get("round"):
            fraction = 0.2 + 0.4 * within
        elif stage == "health":
            fraction = 0.97 + 0.03 * within
        else:
            done_rounds = max(int(info.get("round", 1)) - 1, 0)
            share = 0.37 / max(rounds, 1)
            part = {"match": 0.05 * within, "head": 0.05 + 0.05 * within}.get(stage, 0.1 + 0.9 * within)
            fraction = 0.6 + share * (done_rounds + part)
        reached = max(reached, min(fraction, 1.0))
        detail = f"round {info['round']} " if stage in ("match", "head", "joint") and info.get("round") else ""
        progress(reached, f"{label} {detail}{stage} {step}/{total}".strip())

    model, result = finetune(resolve_backbone(backbone), tracks, cannot, config, report)
    return model, result.to_dict()



def finetune_dataset(
    samples: fo.core.collections.SampleCollection,
    backbone: str = DEFAULT_BACKBONE,
    run_key: str = DEFAULT_RUN_KEY,
    scope: str = "video",
    config: FinetuneConfig | None = None,
    models_dir: str | Path | None = None,
    max_faces_per_track: int = 8,
    progress: Progress | None = None,
) -> FinetuneSummary:
    """Finetune per video (``scope="video"``, as the paper) or once over all videos (a series).

    Checkpoints go to :func:`checkpoint_dir` (under ``models_dir``, default vcn's own folder)
    and the run is recorded on the dataset under ``run_key``. Per video, a run on some videos
    adds or replaces only their models: the run keeps the models of the other videos (same
    backbone and scope; otherwise the run is replaced). A replaced checkpoint is removed only
    after the new run is recorded, and only files vcn wrote in its own folder are ever removed.
    ``run_key`` is validated before anything is written (:func:`vcn_plugin.fo.runs.check_run_key`).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    config = config or FinetuneConfig()
    dataset = samples._dataset
    schema.require_video_dataset(dataset)
    check_run_key(dataset, run_key, "finetune")
    backbone_model = get_backbone(backbone)
    track_set = load_track_set(samples, backbone_model, max_faces_per_track, progress=progress)
    out_dir = checkpoint_dir(dataset, run_key, models_dir)
    stage1_ids = _stage1_ids(samples)
    summary = FinetuneSummary(run_key)
    groups = {"all": track_set} if scope == "dataset" else {
        vid: track_set.subset({vid}) for vid in dict.fromkeys(t.video_id for t in track_set.tracks)
    }
    for vid in samples.values("id"):
        if scope == "video" and vid not in groups:
            summary.skipped[vid] = "no face tracks"
    start = time.perf_counter()
    stamp = uuid.uuid4().hex[:12]  # new files per run: a concurrent run never overwrites them
    written: dict[str, str] = {}
    for g, (key, subset) in enumerate(groups.items()):
        group_progress = sub_progress(progress, g / len(groups), (g + 1) / len(groups))
        try:
            model, result = finetune_track_set(subset, backbone_model, config, group_progress, label=key)
        except ValueError as err:
            summary.skipped[key] = str(err)
            continue
        written[key] = str(model.save(out_dir / f"{key}-{stamp}.pt"))
        summary.results[key] = result
    if not summary.results:
        raise ValueError("nothing was finetuned:\n" + "\n".join(f"{k}: {v}" for k, v in summary.skipped.items()))
    run_config = {"backbone": backbone, "scope": scope, "max_faces_per_track": max_faces_per_track,
                  "models_dir": str(out_dir), "finetune": config.to_dict()}
    replaced = _forget_other_runs(dataset, run_key, run_config)
    if scope == "video":
        replaced += _record_video_models(dataset, run_key, backbone, written, stage1_ids)
        entries = video_models(dataset, run_key)
        summary.checkpoints = {vid: e["checkpoint"] for vid, e in entries.items()}
        stage1_of = {vid: e["stage1_id"] for vid, e in entries.items()}
    else:
        summary.checkpoints, stage1_of = dict(written), {"all": stage1_ids}
    save_run(
        dataset, run_key, method="finetune", config=run_config,
        results={"checkpoints": summary.checkpoints, "stage1_ids": stage1_of,
                 "per_model": summary.results, "skipped": summary.skipped, "seconds": time.perf_counter() - start},
    )
    _remove_checkpoints(replaced, out_dir)
    return summary


def _stage1_ids(samples) -> dict[str, str]:
    """Video id -> the id of the stage-1 pass its labels come from (videos with a record)."""
    if not samples._dataset.has_sample_field(schema.VIDEO_STATS):
        return {}
    ids, records = samples.values(["id", schema.VIDEO_STATS])
    return {vid: getattr(rec, "stage1_id", None) for vid, rec in zip(ids, records) if rec is not None}


def video_models(dataset: fo.Dataset, run_key: str) -> dict[str, dict[str, Any]]:
    """Video id -> its model entry in the per-video run ``run_key`` (``checkpoint``, ``stage1_id``)."""
    if not dataset.has_sample_field(schema.VIDEO_MODELS):
        return {}
    ids, entries = dataset.values(["id", schema.VIDEO_MODELS])
    return {vid: dict(e[run_key]) for vid, e in zip(ids, entries) if e and run_key in e}


def _record_video_models(dataset, run_key: str, backbone: str, written: dict[str, str], stage1_ids) -> list[str]:
    """Store each finetuned video's model on its own sample, so concurrent runs on other videos
    cannot lose it; returns the checkpoints these entries replace."""
    schema.declare_dict_field(dataset, schema.VIDEO_MODELS)
    replaced = []
    for vid, path in written.items():
        sample = dataset[vid]
        entries = dict(sample[schema.VIDEO_MODELS] or {})
        if run_key in entries:
            replaced.append(entries[run_key]["checkpoint"])
        entries[run_key] = {"checkpoint": path, "stage1_id": stage1_ids.get(vid), "backbone": backbone}
        sample[schema.VIDEO_MODELS] = entries
        sample.save()
    return replaced


def _forget_other_runs(dataset: fo.Dataset, run_key: str, run_config: dict) -> list[str]:
    """When ``run_key`` holds a run of another backbone, scope or folder (or a series run), its
    models are replaced as a whole: the per-video entries are cleared, and their files returned
    for removal once the new run is recorded."""
    dataset.reload()
    if not dataset.has_run(run_key):
        return []
    old_config, old = load_run(dataset, run_key)
    same = all(old_config.get(k) == run_config[k] for k in ("backbone", "scope", "models_dir"))
    if same and run_config["scope"] == "video":
        return []
    replaced = list(old.get("checkpoints", {}).values())
    for vid in video_models(dataset, run_key):
        sample = dataset[vid]
        entries = dict(sample[schema.VIDEO_MODELS])
        entries.pop(run_key, None)
        sample[schema.VIDEO_MODELS] = entries
        sample.save()
    return replaced


def _remove_checkpoints(paths: list[str], out_dir: Path) -> None:
    """Remove replaced checkpoint files, only where vcn wrote them (inside ``out_dir``)."""
    for path in paths:
        try:
            resolved = inside(out_dir, Path(path))
        except ValueError:
            continue  # not in this run's folder (an older layout): left in place
        if resolved.suffix == ".pt" and resolved.is_file():
            resolved.unlink()


def load_finetuned(dataset: fo.Dataset, run_key: str = DEFAULT_RUN_KEY, device: str = "cpu") -> dict[str, SSLModel]:
    """The finetuned models of a run, keyed by video id (or ``"all"`` for a series run).

    Refuses (ValueError) a model whose video was re-detected since it was trained: its tracks
    are not the ones the model was adapted to."""
    try:
        _, results = load_run(dataset, run_key)
    except KeyError as err:
        raise ValueError(
            f"dataset '{dataset.name}' has no finetuning run '{run_key}'; run 'vcn finetune' first, "
            "or cluster with a method that needs no finetuning (cosine, euclidean, hac-cosine, finch, hdbscan)"
        ) from err
    config, _ = load_run(dataset, run_key)
    if config.get("scope") == "video" and dataset.has_sample_field(schema.VIDEO_MODELS):
        entries = video_models(dataset, run_key)
        checkpoints = {vid: e["checkpoint"] for vid, e in entries.items()}
        trained = {vid: e.get("stage1_id") for vid, e in entries.items()}
    else:  # a series run, or a run recorded before per-video entries
        checkpoints = dict(results["checkpoints"])
        trained = results.get("stage1_ids", {}).get("all") or {}
    current = _stage1_ids(dataset)
    stale = sorted(v for v, sid in trained.items() if sid is not None and v in current and current[v] != sid)
    if stale:
        raise ValueError(f"video(s) {', '.join(stale)} were re-detected (stage 1) after finetuning run "
                         f"'{run_key}'; rerun finetuning on them (vcn finetune --dataset {dataset.name})")
    return {key: SSLModel.load(path, device=device) for key, path in checkpoints.items()}


def delete_finetune_run(dataset: fo.Dataset, run_key: str = DEFAULT_RUN_KEY) -> None:
    """Delete the run, its per-video entries and the checkpoint files vcn wrote for it."""
    config, results = load_run(dataset, run_key)
    _forget_other_runs(dataset, run_key, {"backbone": None, "scope": None, "models_dir": None})
    if config.get("models_dir"):
        _remove_checkpoints(list(results.get("checkpoints", {}).values()), Path(config["models_dir"]))
    dataset.delete_run(run_key)
