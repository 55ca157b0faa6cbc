"""Stage 1 on a FiftyOne dataset: shots, faces and tracks of every video, written as labels and a run."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

import fiftyone as fo

from vcn_plugin.core.progress import Progress, sub_progress
from vcn_plugin.core.video import VideoError
from vcn_plugin.fo import schema
from vcn_plugin.fo.labels import shots_to_temporal, tracks_to_frame_labels, write_frame_detections
from vcn_plugin.fo.runs import save_run, stage1_records
from vcn_plugin.fo.track_records import delete_track_records
from vcn_plugin.stage1 import Stage1Config, VideoFaces, process_video, track_summary
from vcn_plugin.stage1.cache import cached_process_video
from vcn_plugin.stage1.detectors import FaceDetector, get_detector

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
    parallel_videos: int | None = None,
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

    ``parallel_videos``: videos decoded and detected at once, each in its own thread, all
    sharing the one detector (which must be ``thread_safe``) (results are the same as one by one; labels are written by the
    calling thread). None = automatic: :data:`GPU_PARALLEL_VIDEOS` when the detector runs on a
    GPU, whose batches would otherwise wait on one video's decoding; 1 on the CPU, whose cores
    the detector already uses.
    """
    config = config or Stage1Config()
    dataset = samples._dataset
    schema.require_video_dataset(dataset)
    detector = get_detector(config.detector, **config.detector_options)
    if parallel_videos is None:
        parallel_videos = GPU_PARALLEL_VIDEOS if _on_gpu(detector) else 1
    if parallel_videos < 1:
        raise ValueError(f"parallel_videos must be >= 1, got {parallel_videos}")
    if parallel_videos > 1 and not detector.thread_safe:
        raise ValueError(f"the {config.detector} detector cannot serve several videos at once; use parallel_videos=1 "
                         "or an onnxruntime detector (centerface, scrfd)")
    schema.declare_face_field(dataset)
    schema.declare_shot_field(dataset)
    report = DetectReport()
    sample_list = list(samples.select_fields().iter_samples(autosave=False))
    paths = [s.filepath for s in sample_list]
    results = _stage1_results(paths, config, detector, cache_dir, parallel_videos, progress)
    for i, outcome in results:
        light_sample, path = sample_list[i], paths[i]
        if isinstance(outcome, VideoError):
            report.failed[path] = str(outcome)
            continue
        result, cached = outcome
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


#: videos processed at once when the detector runs on a GPU (see :func:`detect_faces`)
GPU_PARALLEL_VIDEOS = 4

_Outcome = Union[tuple[VideoFaces, bool], VideoError]  # (result, from the cache) or why it failed


def _on_gpu(detector: FaceDetector) -> bool:
    providers = getattr(detector, "providers", None) or ["CPUExecutionProvider"]
    return providers[0] == "CUDAExecutionProvider"


def _run_one(path: str, config: Stage1Config, detector: FaceDetector, cache_dir: str | Path | None,
             progress: Progress | None) -> _Outcome:
    try:
        if cache_dir is None:
            return process_video(path, config, detector, progress), False
        return cached_process_video(path, config, detector, cache_dir, progress)
    except VideoError as err:
        return err


def _stage1_results(paths: list[str], config: Stage1Config, detector: FaceDetector, cache_dir: str | Path | None,
                    workers: int, progress: Progress | None) -> Iterator[tuple[int, _Outcome]]:
    """``(index, outcome)`` per video, in order when one at a time, else as videos finish. With
    several workers, progress is the mean of the videos' own fractions, reported from the caller's
    thread (FiftyOne's ``ctx.set_progress`` and tqdm are not called from the workers)."""
    n = len(paths)
    if workers == 1 or n < 2:
        for i, path in enumerate(paths):
            yield i, _run_one(path, config, detector, cache_dir,
                              sub_progress(progress, i / n, (i + 1) / n, f"video {i + 1}/{n}: "))
        return
    fractions = [0.0] * n

    def tracker(i: int) -> Progress:
        def report(fraction: float, message: str) -> None:
            fractions[i] = fraction  # one float per video: written by its worker, read by the caller

        return report

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, n), thread_name_prefix="vcn-stage1")
    try:
        pending = {pool.submit(_run_one, p, config, detector, cache_dir, tracker(i)): i for i, p in enumerate(paths)}
        done_count = 0
        while pending:
            finished, _ = concurrent.futures.wait(pending, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                i = pending.pop(future)
                fractions[i] = 1.0
                done_count += 1
                yield i, future.result()
            if progress is not None:
                progress(sum(fractions) / n, f"{done_count}/{n} videos done, {min(workers, len(pending))} running")
    finally:  # the caller stopped early (an error while writing): videos not started are dropped
        pool.shutdown(wait=True, cancel_futures=True)


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
