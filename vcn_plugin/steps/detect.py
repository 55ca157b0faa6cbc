"""Stage 1 on a FiftyOne dataset: shots, faces and tracks of every video, written as labels and a run."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fiftyone as fo

from vcn_plugin.core.progress import Progress, sub_progress
from vcn_plugin.core.video import VideoError
from vcn_plugin.fo import schema
from vcn_plugin.fo.labels import shots_to_temporal, tracks_to_frame_labels, write_frame_detections
from vcn_plugin.fo.runs import save_run, stage1_records
from vcn_plugin.fo.track_records import delete_track_records
from vcn_plugin.stage1 import Stage1Config, process_video, track_summary
from vcn_plugin.stage1.cache import cached_process_video
from vcn_plugin.stage1.detectors import get_detector

#: a video is reported as truncated when stage 1 decodes fewer frames than its container
#: announces by more than this share (containers may round their count by a frame or two)
TRUNCATION_TOLERANCE = 0.02


@dataclass
class DetectReport:
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: path -> what looked wrong in a video that was still processed (e.g. a truncated file)
    warnings: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        tracks = sum(v["tracks"] for v in self.processed.values())
        faces = sum(v["detections"] for v in self.processed.values())
        lines = [f"{len(self.processed)} video(s): {faces} face detections in {tracks} tracks; "
                 f"{len(self.failed)} failed"]
        lines += [f"  failed {path}: {reason}" for path, reason in self.failed.items()]
        lines += [f"  warning {path}: {reason}" for path, reason in self.warnings.items()]
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """RuntimeError naming every failed video (after the others were processed)."""
        if self.failed:
            names = "; ".join(f"{path}: {reason}" for path, reason in self.failed.items())
            raise RuntimeError(f"stage 1 failed on {len(self.failed)} video(s): {names}")


def detect_faces(
    samples: fo.core.collections.SampleCollection,
    config: Stage1Config | None = None,
    progress: Progress | None = None,
    cache_dir: str | Path | None = None,
) -> DetectReport:
    """Stage 1 on every video of ``samples``: shots, faces, quality and tracks, written to
    ``shots`` and ``frames.faces`` with the video's stage-1 record ``vcn_video`` (see
    :mod:`vcn_plugin.fo.schema`).

    Each video is written on its own (labels and record in one save, the record cleared first),
    so concurrent runs on different videos of one dataset never lose each other's results, and a
    video whose worker died mid-write has no record: later stages refuse it until it is rerun.
    A rerun replaces the video's labels and removes what was derived from the old ones (its
    track records; its finetuned models are refused as stale by clustering). A video that fails
    is reported with its reason and keeps whatever labels it had; see
    :meth:`DetectReport.raise_for_failures`. ``cache_dir``: reuse (and keep) stage-1 results of
    unchanged videos under the same config there (:mod:`vcn_plugin.stage1.cache`); the record
    of a reused video says ``cached: 1`` and keeps the seconds of the run that computed it.
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
            if cache_dir is None:
                result, cached = process_video(path, config, detector, video_progress), False
            else:
                result, cached = cached_process_video(path, config, detector, cache_dir, video_progress)
        except VideoError as err:
            report.failed[path] = str(err)
            continue
        stats = {**track_summary(result), "cached": int(cached)}
        expected = result.info.num_frames
        if expected and result.num_frames < expected * (1 - TRUNCATION_TOLERANCE):
            report.warnings[path] = (f"decoded {result.num_frames} of the {expected} frames its container announces "
                                     "(truncated or corrupt file); the labels cover the decoded frames")
        # "frames" is reserved by FiftyOne on video samples, also as an embedded attribute
        record = {("decoded_frames" if k == "frames" else k): v for k, v in stats.items()}
        _write_video(dataset, light_sample.id, result, {**record, "detector": config.detector,
                                                        "landmark_format": detector.landmark_format})
        report.processed[path] = stats
    if progress is not None:
        progress(1.0, "done")
    _save_stage1_run(dataset, config, detector.landmark_format, report)
    return report


def _write_video(dataset: fo.Dataset, sample_id: str, result, record: dict[str, Any]) -> None:
    """Clear the video's record, drop what derives from its old labels, then write the labels and
    the new record together (frames are saved before the sample document that holds the record)."""
    schema.declare_video_record(dataset, {k: fo.FloatField if isinstance(v, float) else fo.IntField
                                          for k, v in record.items() if isinstance(v, (int, float))})
    sample = dataset[sample_id]
    if sample[schema.VIDEO_STATS] is not None:
        sample[schema.VIDEO_STATS] = None
        sample.save()
        delete_track_records(dataset, [sample_id])
    frames = tracks_to_frame_labels(result.tracks, result.width, result.height)
    sample[schema.SHOTS] = shots_to_temporal(result.shots)
    sample[schema.VIDEO_STATS] = fo.DynamicEmbeddedDocument(
        **record, stage1_id=uuid.uuid4().hex,
        finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    write_frame_detections(sample, schema.FACES, frames)


def _save_stage1_run(dataset: fo.Dataset, config: Stage1Config, landmark_format: str, report: DetectReport) -> None:
    """The run ``vcn_stage1``: the config, and a summary rebuilt from every video's own record
    (so a concurrent run on other videos cannot drop their entries from it)."""
    dataset.reload()
    videos = {path: {("frames" if k == "decoded_frames" else k): v for k, v in rec.items()
                     if k not in schema.VIDEO_RECORD_STRINGS}
              for path, rec in stage1_records(dataset).items()}
    save_run(dataset, schema.STAGE1_RUN, method="stage1",
             config={**config.to_dict(), "landmark_format": landmark_format},
             results={"videos": videos, "failed": report.failed, "warnings": report.warnings})
