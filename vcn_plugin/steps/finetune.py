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

    def report(stage: str, step: int, total: int, info: dict) -> None:
        if progress is None:
            return
        within = step / max(total, 1)
        # overall fraction: cache 20 %, head 40 %, then each round's matching + joint steps
        if stage == "cache":
            fraction = 0.2 * within
        elif stage == "head":
            fraction = 0.2 + 0.4 * within
        else:
            done_rounds = max(int(info.get("round", 1)) - 1, 0)
            share = 0.4 / max(rounds, 1)
            fraction = 0.6 + share * (done_rounds + (0.1 * within if stage == "match" else 0.1 + 0.9 * within))
        detail = f"round {info['round']} " if stage in ("match", "joint") and "round" in info else ""
        progress(min(fraction, 1.0), f"{label} {detail}{stage} {step}/{total}".strip())

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
    kept, kept_ids, replaced = _previous_models(dataset, run_key, run_config, set(written))
    summary.checkpoints = {**kept, **written}
    trained_on = {key: stage1_ids if key == "all" else stage1_ids.get(key) for key in written}
    save_run(
        dataset, run_key, method="finetune", config=run_config,
        results={"checkpoints": summary.checkpoints, "stage1_ids": {**kept_ids, **trained_on},
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


def _previous_models(dataset: fo.Dataset, run_key: str, run_config: dict, retrained: set[str]):
    """From the run being replaced: the checkpoints (and their stage-1 ids) to keep, and the
    paths to remove once the new run is recorded."""
    dataset.reload()
    if not dataset.has_run(run_key):
        return {}, {}, []
    old_config, old = load_run(dataset, run_key)
    checkpoints = dict(old.get("checkpoints", {}))
    same = run_config["scope"] == "video" and all(
        old_config.get(k) == run_config[k] for k in ("backbone", "scope", "models_dir"))
    alive = set(dataset.values("id"))
    keep = {k: p for k, p in checkpoints.items() if same and k not in retrained and k in alive}
    ids = {k: v for k, v in old.get("stage1_ids", {}).items() if k in keep}
    return keep, ids, [p for k, p in checkpoints.items() if k not in keep]


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
    current = _stage1_ids(dataset)
    for key, trained in results.get("stage1_ids", {}).items():
        expected = {key: trained} if key != "all" else (trained or {})
        stale = sorted(v for v, sid in expected.items() if v in current and current[v] != sid)
        if stale:
            raise ValueError(f"video(s) {', '.join(stale)} were re-detected (stage 1) after finetuning run "
                             f"'{run_key}'; rerun finetuning on them (vcn finetune --dataset {dataset.name})")
    return {key: SSLModel.load(path, device=device) for key, path in results["checkpoints"].items()}


def delete_finetune_run(dataset: fo.Dataset, run_key: str = DEFAULT_RUN_KEY) -> None:
    """Delete the run and the checkpoint files vcn wrote for it."""
    config, results = load_run(dataset, run_key)
    if config.get("models_dir"):
        _remove_checkpoints(list(results.get("checkpoints", {}).values()), Path(config["models_dir"]))
    dataset.delete_run(run_key)
