"""Import and export benchmark ground truth (see :mod:`vcn_plugin.evaluation.annotations` for the format).

:func:`import_benchmark` adds a benchmark's ``videos/*.mp4`` to a dataset and fills
``frames.gt_faces`` (one :class:`fiftyone.Detection` per annotated face: ``label`` = identity,
``index`` = ground-truth track id, relative box, attribute ``distractor``) and ``gt_shots``.
Everything is validated before the dataset is touched, so a bad benchmark leaves it unchanged.

:func:`export_benchmark` writes the same format from any Detections field (``gt_faces``, or
``faces`` after corrections), so a curated dataset can be shared and re-imported losslessly.
"""
from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import fiftyone as fo
import numpy as np
from fiftyone import ViewField as F

from vcn_plugin.core.geometry import pixel_to_relative, relative_to_pixel
from vcn_plugin.core.video import probe_video
from vcn_plugin.evaluation.annotations import (
    BoxAnnotation,
    TrackAnnotation,
    VideoAnnotation,
    load_annotation,
    save_annotation,
)
from vcn_plugin.fo import schema
from vcn_plugin.fo.datasets import get_or_create_dataset, import_videos
from vcn_plugin.fo.frames import majority_label, read_tracks
from vcn_plugin.fo.labels import shots_to_temporal, write_frame_detections

VIDEO_SUFFIX = ".mp4"


@dataclass(frozen=True)
class ImportTolerance:
    """How far an annotation may disagree with its video before the import refuses it.

    ``frames``: |annotated num_frames - frames in the container| (2: containers may count one
    or two frames differently from the encoder). ``fps``: relative fps difference (0.01, so
    29.97 and 30000/1001 agree).
    """

    frames: int = 2
    fps: float = 0.01


@dataclass(frozen=True)
class _BenchmarkVideo:
    path: Path
    annotation: VideoAnnotation


def import_benchmark(
    bench_dir: str | Path,
    dataset: fo.Dataset | str,
    tolerance: ImportTolerance | None = None,
) -> fo.Dataset:
    """Import the benchmark at ``bench_dir`` into ``dataset`` (created when a name is new).

    Adds ``videos/*.mp4`` (videos already in the dataset are kept), then replaces
    ``frames.gt_faces`` and ``gt_shots`` of those videos with the annotations, so a rerun
    gives the same labels. Raises ValueError naming the file when a video has no annotation
    (or the reverse), an annotation is malformed or disagrees with its video (size, frame
    count, fps, frame numbers out of range, duplicate track ids); nothing is written then.
    """
    tolerance = tolerance or ImportTolerance()
    videos = _load_benchmark(Path(bench_dir), tolerance)
    if isinstance(dataset, str):
        dataset = get_or_create_dataset(dataset)
    if len(dataset):
        schema.require_video_dataset(dataset)
    report = import_videos([v.path for v in videos], dataset, recursive=False)
    if report.skipped:
        raise RuntimeError(f"videos validated but not imported: {report.skipped}")
    _declare_gt_fields(dataset)
    by_path = {str(v.path): v.annotation for v in videos}
    for sample in dataset.match(F("filepath").is_in(list(by_path))):
        annotation = by_path[sample.filepath]
        sample[schema.GT_SHOTS] = shots_to_temporal(annotation.shots)
        write_frame_detections(sample, schema.GT_FACES, annotation_to_frames(annotation))
    return dataset


def annotation_to_frames(annotation: VideoAnnotation) -> dict[int, list[fo.Detection]]:
    """Frame number -> ground-truth detections (tracks, then distractors; relative boxes)."""
    frames: dict[int, list[fo.Detection]] = {}
    for distractor, tracks in ((False, annotation.tracks), (True, annotation.distractors)):
        for track in tracks:
            for box in track.frames:
                det = fo.Detection(
                    label=track.identity,
                    index=track.track_id,
                    bounding_box=pixel_to_relative(box.box, annotation.width, annotation.height),
                    **{schema.ATTR_DISTRACTOR: distractor},
                )
                frames.setdefault(box.frame, []).append(det)
    return frames


def _declare_gt_fields(dataset: fo.Dataset) -> None:
    if not dataset.has_frame_field(schema.GT_FACES):
        dataset.add_frame_field(schema.GT_FACES, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    path = f"{schema.GT_FACES}.detections.{schema.ATTR_DISTRACTOR}"
    if not dataset.has_frame_field(path):
        dataset.add_frame_field(path, fo.BooleanField)
    schema.declare_shot_field(dataset, schema.GT_SHOTS)


# --------------------------------------------------------------------------- validation


def _load_benchmark(bench_dir: Path, tolerance: ImportTolerance) -> list[_BenchmarkVideo]:
    video_dir, annotation_dir = bench_dir / "videos", bench_dir / "annotations"
    for d in (video_dir, annotation_dir):
        if not d.is_dir():
            raise ValueError(f"{bench_dir} is not a benchmark: {d} is missing "
                             "(a benchmark holds videos/*.mp4 and annotations/<video stem>.json)")
    video_paths = {p.stem: p.resolve() for p in sorted(video_dir.glob(f"*{VIDEO_SUFFIX}"))}
    annotation_paths = {p.stem: p for p in sorted(annotation_dir.glob("*.json"))}
    if not video_paths:
        raise ValueError(f"{video_dir} holds no {VIDEO_SUFFIX} files")
    for stem in sorted(set(video_paths) - set(annotation_paths)):
        raise ValueError(f"{video_paths[stem]} has no annotation: expected {annotation_dir / (stem + '.json')}")
    for stem in sorted(set(annotation_paths) - set(video_paths)):
        raise ValueError(f"{annotation_paths[stem]} has no video: expected {video_dir / (stem + VIDEO_SUFFIX)}")
    return [_load_video(video_paths[s], annotation_paths[s], tolerance) for s in sorted(video_paths)]


def _load_video(video_path: Path, annotation_path: Path, tolerance: ImportTolerance) -> _BenchmarkVideo:
    try:
        annotation = load_annotation(annotation_path)
        info = probe_video(video_path)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{annotation_path}: {err}") from err
    if annotation.num_frames is None:  # optional in the format: the video tells
        annotation = dataclasses.replace(annotation, num_frames=info.num_frames)
    try:
        _check_against_video(annotation, video_path, info, tolerance)
        _check_tracks(annotation)
        _check_shots(annotation)
    except ValueError as err:
        raise ValueError(f"{annotation_path}: {err}") from err
    return _BenchmarkVideo(video_path, annotation)


def _check_against_video(annotation: VideoAnnotation, video_path: Path, info, tolerance: ImportTolerance) -> None:
    if annotation.video != video_path.name:
        raise ValueError(f"names video '{annotation.video}' but belongs to {video_path.name}")
    if (annotation.width, annotation.height) != (info.width, info.height):
        raise ValueError(f"size {annotation.width}x{annotation.height} differs from the video's "
                         f"{info.width}x{info.height} ({video_path})")
    if abs(annotation.num_frames - info.num_frames) > tolerance.frames:
        raise ValueError(f"num_frames {annotation.num_frames} differs from the video's {info.num_frames} "
                         f"by more than {tolerance.frames} ({video_path})")
    if abs(annotation.fps - info.fps) > tolerance.fps * info.fps:
        raise ValueError(f"fps {annotation.fps} differs from the video's {info.fps:.3f} ({video_path})")


def _check_tracks(annotation: VideoAnnotation) -> None:
    seen: set[int] = set()
    for kind, tracks in (("track", annotation.tracks), ("distractor", annotation.distractors)):
        for track in tracks:
            where = f"{kind} {track.track_id}"
            if track.track_id in seen:
                raise ValueError(f"{where}: track_id is used twice (ids must be unique among tracks and distractors)")
            seen.add(track.track_id)
            if not track.identity:
                raise ValueError(f"{where}: empty identity")
            frames = [f.frame for f in track.frames]
            if len(set(frames)) != len(frames):
                raise ValueError(f"{where}: a frame number appears twice")
            for f in track.frames:
                _check_box(f, annotation.num_frames, where)


def _check_box(box: BoxAnnotation, num_frames: int, where: str) -> None:
    if not 1 <= box.frame <= num_frames:
        raise ValueError(f"{where}: frame {box.frame} is outside 1..{num_frames} (frames are 1-based)")
    values = np.asarray(box.box, dtype=float)
    if values.shape != (4,) or not np.all(np.isfinite(values)) or values[2] <= 0 or values[3] <= 0:
        raise ValueError(f"{where} frame {box.frame}: box must be 4 finite numbers x, y, w, h "
                         f"with w, h > 0 (pixels), got {list(box.box)}")


def _check_shots(annotation: VideoAnnotation) -> None:
    previous_last = 0
    for first, last in annotation.shots:
        if not (1 <= first <= last <= annotation.num_frames) or first <= previous_last:
            raise ValueError(f"shot [{first}, {last}] must lie in 1..{annotation.num_frames}, "
                             "with first <= last, in order and without overlap")
        previous_last = last


# --------------------------------------------------------------------------- export


def export_benchmark(
    samples: fo.core.collections.SampleCollection,
    out_dir: str | Path,
    label_field: str = schema.GT_FACES,
    shots_field: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``samples`` as a benchmark in ``out_dir`` (videos copied, one annotation each).

    Tracks are the detections of ``frames.<label_field>`` grouped by ``index``; a track's
    identity is the most common label of its detections (ties: first in alphabetical order);
    detections with ``distractor=True`` go to ``distractors``. Shots come from
    ``shots_field`` (default: ``gt_shots`` for ``gt_faces``, else ``shots``; none when the
    sample lacks it). A non-empty ``out_dir`` is refused unless ``overwrite`` (then only the
    files of this export are replaced). Returns the annotation paths written.
    """
    dataset = samples._dataset
    schema.require_video_dataset(dataset)
    if not dataset.has_frame_field(label_field):
        raise ValueError(f"dataset '{dataset.name}' has no frame field '{label_field}'")
    if shots_field is None:
        shots_field = schema.GT_SHOTS if label_field == schema.GT_FACES else schema.SHOTS
    _require_unique_names(samples.values("filepath"))
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file, not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"{out_dir} is not empty; choose an empty or new directory, or pass overwrite=True "
                         "(CLI: --overwrite) to replace the benchmark files it holds (other files are kept)")
    samples.compute_metadata(progress=False)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    written = []
    for sample in samples.iter_samples():
        annotation = sample_to_annotation(sample, label_field, shots_field)
        target = out_dir / "videos" / annotation.video
        if not target.exists() or not target.samefile(sample.filepath):
            shutil.copyfile(sample.filepath, target)
        path = out_dir / "annotations" / f"{Path(annotation.video).stem}.json"
        save_annotation(annotation, path)
        written.append(path)
    return written


def _require_unique_names(filepaths: list[str]) -> None:
    counts = Counter(Path(p).name for p in filepaths)
    clashes = sorted(name for name, n in counts.items() if n > 1)
    if clashes:
        raise ValueError(f"several videos are named {clashes}; a benchmark needs unique file names "
                         "(rename them or export a view without the duplicates)")
    for p in filepaths:
        if Path(p).suffix.lower() != VIDEO_SUFFIX:
            raise ValueError(f"{p}: a benchmark holds {VIDEO_SUFFIX} videos; convert it to H.264 mp4 first")


def sample_to_annotation(sample: fo.Sample, label_field: str, shots_field: str) -> VideoAnnotation:
    """One video's annotation from ``frames.<label_field>`` and ``<shots_field>``."""
    meta = sample.metadata
    width, height = int(meta.frame_width), int(meta.frame_height)
    read = read_tracks(sample, label_field)
    tracks = [
        TrackAnnotation(t, majority_label(track.labels),
                        [BoxAnnotation(n, relative_to_pixel(box, width, height)) for n, box in track.boxes.items()])
        for t, track in read.items()
    ]
    distractor = {t: track.is_distractor for t, track in read.items()}
    shots = sample[shots_field] if sample.has_field(shots_field) else None
    return VideoAnnotation(
        video=Path(sample.filepath).name,
        fps=float(meta.frame_rate),
        width=width,
        height=height,
        num_frames=int(meta.total_frame_count),
        shots=sorted(tuple(int(v) for v in d.support) for d in shots.detections) if shots is not None else [],
        tracks=[t for t in tracks if not distractor[t.track_id]],
        distractors=[t for t in tracks if distractor[t.track_id]],
    )
