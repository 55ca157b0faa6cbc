"""The Python API: each function is one user-facing step, used by the CLI and the operators."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fiftyone as fo

from vcn_plugin import schema
from vcn_plugin.labels import shots_to_temporal, tracks_to_frame_labels, write_frame_detections
from vcn_plugin.runs import load_run, save_run
from vcn_plugin.stage1 import Progress, Stage1Config, process_video, track_summary
from vcn_plugin.detect import get_detector
from vcn_plugin.video import VideoError, find_videos, probe_video


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    #: path -> reason, for every file that was not imported
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"imported {len(self.added)} video(s), {len(self.already_present)} already present, "
                 f"{len(self.skipped)} skipped"]
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped.items()]
        return "\n".join(lines)


def get_or_create_dataset(name: str, persistent: bool = True) -> fo.Dataset:
    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    dataset = fo.Dataset(name)
    dataset.persistent = persistent
    return dataset


def import_videos(
    paths: Sequence[str | Path], dataset: fo.Dataset | str, recursive: bool = True
) -> ImportReport:
    """Add every readable video under ``paths`` to ``dataset`` (created when a name is new).

    Each file is probed first (ffprobe + decoding its first frame); unreadable ones are
    reported in :attr:`ImportReport.skipped` with the reason and never added. Files already
    in the dataset are left as they are, so a rerun adds nothing twice.
    """
    if not paths:
        raise ValueError("no paths given: pass video files or directories")
    if isinstance(dataset, str):
        dataset = get_or_create_dataset(dataset)
    if len(dataset):
        schema.require_video_dataset(dataset)
    report = ImportReport()
    existing = set(dataset.values("filepath")) if len(dataset) else set()
    samples = []
    for path in find_videos(list(paths), recursive=recursive):
        key = str(path)
        if key in existing:
            report.already_present.append(key)
            continue
        try:
            probe_video(path)
        except VideoError as err:
            report.skipped[key] = str(err).removeprefix(f"{path}: ")
            continue
        samples.append(fo.Sample(filepath=key))
        report.added.append(key)
    if samples:
        dataset.add_samples(samples, progress=False)
        dataset.select([s.id for s in samples]).compute_metadata(progress=False)
    return report


@dataclass
class DetectReport:
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        tracks = sum(v["tracks"] for v in self.processed.values())
        faces = sum(v["detections"] for v in self.processed.values())
        lines = [f"{len(self.processed)} video(s): {faces} face detections in {tracks} tracks; "
                 f"{len(self.failed)} failed"]
        lines += [f"  failed {path}: {reason}" for path, reason in self.failed.items()]
        return "\n".join(lines)


def stage1_videos(dataset: fo.Dataset) -> set[str]:
    """Paths of the videos that stage 1 has processed."""
    if not dataset.has_run(schema.STAGE1_RUN):
        return set()
    _, results = load_run(dataset, schema.STAGE1_RUN)
    return set(results.get("videos", {}))


def detect_faces(
    samples: fo.core.collections.SampleCollection,
    config: Stage1Config | None = None,
    progress: Progress | None = None,
) -> DetectReport:
    """Stage 1 on every video of ``samples``: shots, faces, quality and tracks, written to
    ``shots`` and ``frames.faces`` (see :mod:`vcn_plugin.schema`).

    A rerun replaces the earlier labels of the videos it processes. A video that fails is
    reported with its reason and keeps whatever labels it had.
    """
    config = config or Stage1Config()
    dataset = samples._dataset
    schema.require_video_dataset(dataset)
    detector = get_detector(config.detector, **config.detector_options)
    schema.declare_face_field(dataset)
    schema.declare_shot_field(dataset)
    report = DetectReport()
    sample_list = list(samples.select_fields().iter_samples(autosave=False))
    for i, light_sample in enumerate(sample_list):
        def video_progress(fraction: float, message: str, i: int = i) -> None:
            if progress is not None:
                progress((i + fraction) / len(sample_list), f"video {i + 1}/{len(sample_list)}: {message}")

        path = light_sample.filepath
        try:
            result = process_video(path, config, detector, video_progress)
        except VideoError as err:
            report.failed[path] = str(err)
            continue
        sample = dataset[light_sample.id]
        frames = tracks_to_frame_labels(result.tracks, result.width, result.height)
        sample[schema.SHOTS] = shots_to_temporal(result.shots)
        write_frame_detections(sample, schema.FACES, frames)
        report.processed[path] = track_summary(result)
    if progress is not None:
        progress(1.0, "done")
    processed = dict(report.processed)
    if dataset.has_run(schema.STAGE1_RUN):
        _, previous = load_run(dataset, schema.STAGE1_RUN)
        processed = {**previous.get("videos", {}), **processed}
    save_run(
        dataset,
        schema.STAGE1_RUN,
        method="stage1",
        config={**config.to_dict(), "landmark_format": detector.landmark_format},
        results={"videos": processed, "failed": report.failed},
    )
    return report
