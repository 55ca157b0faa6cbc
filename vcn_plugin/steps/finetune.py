"""Stage 2 on a FiftyOne dataset: finetune the backbone to each video, record checkpoints as a run."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fiftyone as fo

from vcn_plugin.backbones import DEFAULT_BACKBONE, get_backbone, resolve_backbone
from vcn_plugin.backbones.base import Backbone
from vcn_plugin.core.progress import Progress, sub_progress
from vcn_plugin.fo import schema
from vcn_plugin.fo.runs import load_run, save_run
from vcn_plugin.fo.track_sets import TrackSet, load_track_set
from vcn_plugin.ssl import FinetuneConfig, SSLModel, finetune

DEFAULT_RUN_KEY = schema.FINETUNE_RUN
SCOPES = ("video", "dataset")
#: a video needs at least this many usable tracks to be finetuned on
MIN_TRACKS = 2


def default_models_dir() -> Path:
    return Path(fo.config.default_dataset_dir) / "vcn" / "models"


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

    Checkpoints go to ``<models_dir>/<dataset>/<run_key>/<video id or 'all'>.pt`` and the run is
    recorded on the dataset under ``run_key`` (a rerun replaces it). The previous run stays
    valid until the new one has finished every model.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    config = config or FinetuneConfig()
    dataset = samples._dataset
    schema.require_video_dataset(dataset)
    backbone_model = get_backbone(backbone)
    track_set = load_track_set(samples, backbone_model, max_faces_per_track, progress=progress)
    out_dir = Path(models_dir or default_models_dir()) / dataset.name / run_key
    staging = out_dir.with_name(f".{run_key}.partial")
    staging.mkdir(parents=True, exist_ok=True)
    summary = FinetuneSummary(run_key)
    groups = {"all": track_set} if scope == "dataset" else {
        vid: track_set.subset({vid}) for vid in dict.fromkeys(t.video_id for t in track_set.tracks)
    }
    for vid in samples.values("id"):
        if scope == "video" and vid not in groups:
            summary.skipped[vid] = "no face tracks"
    start = time.perf_counter()
    for g, (key, subset) in enumerate(groups.items()):
        group_progress = sub_progress(progress, g / len(groups), (g + 1) / len(groups))
        try:
            model, result = finetune_track_set(subset, backbone_model, config, group_progress, label=key)
        except ValueError as err:
            summary.skipped[key] = str(err)
            continue
        model.save(staging / f"{key}.pt")
        summary.results[key] = result
    if not summary.results:
        raise ValueError("nothing was finetuned:\n" + "\n".join(f"{k}: {v}" for k, v in summary.skipped.items()))
    _publish(staging, out_dir)
    summary.checkpoints = {key: str(out_dir / f"{key}.pt") for key in summary.results}
    save_run(
        dataset,
        run_key,
        method="finetune",
        config={"backbone": backbone, "scope": scope, "max_faces_per_track": max_faces_per_track,
                "models_dir": str(out_dir), "finetune": config.to_dict()},
        results={"checkpoints": summary.checkpoints, "per_model": summary.results, "skipped": summary.skipped,
                 "seconds": time.perf_counter() - start},
    )
    return summary


def _publish(staging: Path, out_dir: Path) -> None:
    """Swap the finished checkpoints in; the old ones stay until this point."""
    import shutil

    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        staging.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out_dir)


def load_finetuned(dataset: fo.Dataset, run_key: str = DEFAULT_RUN_KEY, device: str = "cpu") -> dict[str, SSLModel]:
    """The finetuned models of a run, keyed by video id (or ``"all"`` for a series run)."""
    try:
        _, results = load_run(dataset, run_key)
    except KeyError as err:
        raise ValueError(
            f"dataset '{dataset.name}' has no finetuning run '{run_key}'; run 'vcn finetune' first, "
            "or cluster with a method that needs no finetuning (cosine, euclidean, hac-cosine, finch, hdbscan)"
        ) from err
    return {key: SSLModel.load(path, device=device) for key, path in results["checkpoints"].items()}


def delete_finetune_run(dataset: fo.Dataset, run_key: str = DEFAULT_RUN_KEY) -> None:
    import shutil

    config, _ = load_run(dataset, run_key)
    shutil.rmtree(config.get("models_dir", ""), ignore_errors=True)
    dataset.delete_run(run_key)
