"""Stage 1 on a FiftyOne dataset: shots, faces and tracks of every video, written as labels and a run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import fiftyone as fo

from vcn_plugin.core.progress import Progress, sub_progress
from vcn_plugin.core.video import VideoError
from vcn_plugin.fo import schema
from vcn_plugin.fo.labels import shots_to_temporal, tracks_to_frame_labels, write_frame_detections
from vcn_plugin.fo.runs import load_run, save_run
from vcn_plugin.stage1 import Stage1Config, process_video, track_summary
from vcn_plugin.stage1.detectors import get_detector


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


def detect_faces(
    samples: fo.core.collections.SampleCollection,
    config: Stage1Config | None = None,
    progress: Progress | None = None,
) -> DetectReport:
    """Stage 1 on every video of ``samples``: shots, faces, quality and tracks, written to
    ``shots`` and ``frames.faces`` (see :mod:`vcn_plugin.fo.schema`).

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
    n = len(sample_list)
    for i, light_sample in enumerate(sample_list):
        video_progress = sub_progress(progress, i / n, (i + 1) / n, f"video {i + 1}/{n}: ")
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
