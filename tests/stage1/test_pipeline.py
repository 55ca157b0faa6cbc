"""Stage 1 end to end: shots at the cuts, faces where people are, tracks inside shots, labels in FiftyOne."""
from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest

from tests.videos import noise_frames, write_video
from vcn_plugin.benchmark.sample_clip import make_sample_clip
from vcn_plugin.fo import schema
from vcn_plugin.fo.datasets import import_videos
from vcn_plugin.fo.runs import load_run
from vcn_plugin.stage1.detectors import DEFAULT_DETECTOR, get_detector
from vcn_plugin.stage1.pipeline import Stage1Config, process_video
from vcn_plugin.steps.detect import detect_faces


@pytest.fixture(scope="module")
def sample_clip(tmp_path_factory) -> tuple[Path, list[tuple[int, int]]]:
    path = tmp_path_factory.mktemp("clip") / "sample.mp4"
    shots = make_sample_clip(path)
    return path, shots


@pytest.fixture(scope="module")
def processed(sample_clip):
    path, _ = sample_clip
    return process_video(str(path), Stage1Config())


def test_shots_found_at_the_cuts(sample_clip, processed):
    _, true_shots = sample_clip
    assert processed.shots == true_shots


def test_faces_detected_in_every_shot(processed):
    shots_with_tracks = {t.shot for t in processed.tracks}
    assert shots_with_tracks == set(range(len(processed.shots)))
    assert len(processed.tracks) >= 12  # 2-6 people visible in each of the 6 shots


def test_tracks_never_cross_a_cut(processed):
    for track in processed.tracks:
        first, last = processed.shots[track.shot]
        assert first <= min(track.frames) and max(track.frames) <= last


def test_tracks_cover_their_shot_and_carry_quality(processed):
    for track in processed.tracks:
        real = [f for f in track.faces if not f.interpolated]
        assert all(0.0 <= f.detection.quality <= 1.0 for f in real)
        assert all(f.detection.landmarks.shape == (5, 2) for f in track.faces)
    long_tracks = [t for t in processed.tracks if len(t) >= 30]
    assert len(long_tracks) >= 10  # the camera moves slowly: people stay tracked through the shot


def test_real_street_clip_gives_tracks_of_the_walkers(shared_data):
    """A real 1080p clip (pedestrians walking towards the camera), processed with the defaults."""
    result = process_video(str(shared_data / "videos" / "facenet_pytorch_street.mp4"), Stage1Config())
    assert (result.width, result.height, result.num_frames) == (1920, 1080, 105)
    assert result.shots == [(1, 105)]  # one continuous shot
    long_tracks = [t for t in result.tracks if len(t) >= 20]
    assert len(long_tracks) >= 4  # the ~4 prominent faces in the foreground
    for track in result.tracks:
        frames = track.frames
        assert frames == sorted(frames) and len(set(frames)) == len(frames)


def test_detect_every_frame_and_every_third_frame_agree(sample_clip, processed):
    path, _ = sample_clip
    dense = process_video(str(path), Stage1Config(detect_every=1))
    assert abs(len(dense.tracks) - len(processed.tracks)) <= 2


def test_stage_times_add_up_and_batched_detection_gives_the_same_tracks(sample_clip, processed):
    parts = processed.stage_seconds
    assert set(parts) == {"probe", "decode", "shots", "resize", "detect", "quality", "tracking"}
    assert all(v >= 0 for v in parts.values()) and sum(parts.values()) <= processed.seconds
    path, _ = sample_clip
    config = Stage1Config()
    batched = process_video(str(path), config, get_detector(config.detector, batch_size=4))
    assert batched.shots == processed.shots and batched.detections == processed.detections
    assert [(t.shot, [f.frame for f in t.faces]) for t in batched.tracks] == [
        (t.shot, [f.frame for f in t.faces]) for t in processed.tracks
    ]
    np.testing.assert_allclose(
        [f.detection.box for t in batched.tracks for f in t.faces],
        [f.detection.box for t in processed.tracks for f in t.faces],
        atol=0.01,
    )


def test_labels_written_to_fiftyone_and_rerun_replaces_them(sample_clip):
    path, true_shots = sample_clip
    dataset = fo.Dataset()
    import_videos([path], dataset)
    report = detect_faces(dataset, Stage1Config())
    assert not report.failed
    sample = dataset.first()
    assert [d.support for d in sample[schema.SHOTS].detections] == [list(s) for s in true_shots]
    counts = _face_counts(dataset)
    assert counts["detections"] > 0
    det = next(d for f in sample.frames.values() if f[schema.FACES] for d in f[schema.FACES].detections)
    assert det.label == schema.FACE_LABEL and det.index is not None
    assert isinstance(det[schema.ATTR_SHOT], int) and len(det[schema.ATTR_LANDMARKS]) == 5
    assert dataset.has_frame_field(f"{schema.FACES}.detections.{schema.ATTR_QUALITY}")
    config, results = load_run(dataset, schema.STAGE1_RUN)
    assert config["detector"] == DEFAULT_DETECTOR and results["videos"][str(Path(path).resolve())]["tracks"] > 0

    detect_faces(dataset, Stage1Config())
    assert _face_counts(dataset) == counts  # idempotent
    reloaded = fo.load_dataset(dataset.name)
    assert _face_counts(reloaded) == counts


def test_video_without_faces_gives_empty_result_and_failures_leave_others(tmp_path, sample_clip):
    noise = write_video(tmp_path / "noise.mp4", noise_frames(12))
    dataset = fo.Dataset()
    import_videos([noise, sample_clip[0]], dataset)
    detect_faces(dataset, Stage1Config())
    before = _face_counts(dataset)
    noise_sample = dataset.match(fo.ViewField("filepath").ends_with("noise.mp4")).first()
    assert all(f[schema.FACES] is None for f in noise_sample.frames.values()) or len(noise_sample.frames) == 0
    # the clip disappears from disk: its rerun fails by name and keeps its earlier labels
    clip_sample = dataset.match(fo.ViewField("filepath").ends_with("sample.mp4")).first()
    moved = tmp_path / "moved.mp4"
    Path(clip_sample.filepath).rename(moved)
    try:
        report = detect_faces(dataset, Stage1Config())
    finally:
        moved.rename(clip_sample.filepath)
    assert list(report.failed) == [clip_sample.filepath]
    assert _face_counts(dataset) == before


def test_several_videos_at_once_give_the_same_labels(tmp_path, sample_clip):
    """parallel_videos=2 (the GPU path, forced on the CPU): the same labels as one at a time,
    progress up to 1.0, and a failing video reported by name while the others are written."""
    other = tmp_path / "other.mp4"
    make_sample_clip(other, shot_seconds=1.0)
    paths = [sample_clip[0], other, write_video(tmp_path / "noise.mp4", noise_frames(12))]
    one, two = fo.Dataset(), fo.Dataset()
    import_videos(paths, one)
    import_videos(paths, two)
    detect_faces(one, Stage1Config())
    seen: list[float] = []
    other.rename(tmp_path / "gone.mp4")  # fails in the parallel run only: it is compared apart
    report = detect_faces(two, Stage1Config(), progress=lambda f, m: seen.append(f), parallel_videos=2)
    (tmp_path / "gone.mp4").rename(other)
    assert list(report.failed) == [str(other)] and len(report.processed) == 2
    assert seen[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in seen)
    for path in (sample_clip[0], paths[2]):
        a = one.match(fo.ViewField("filepath") == str(path)).first()
        b = two.match(fo.ViewField("filepath") == str(path)).first()
        assert _labels(a) == _labels(b)
    with pytest.raises(ValueError, match="several videos at once"):
        detect_faces(two, Stage1Config(detector="dlib-hog"), parallel_videos=2)


def _labels(sample) -> list:
    return [(n, d.index, [round(v, 4) for v in d.bounding_box]) for n, f in sample.frames.items()
            for d in (f[schema.FACES].detections if f[schema.FACES] else [])]  # fmt: skip


def test_very_large_frames_are_downscaled_for_detection(tmp_path):
    import cv2

    from vcn_plugin.benchmark.sample_clip import insightface_photo

    photo = cv2.resize(insightface_photo(), (3840, 2656))[:2160]
    path = write_video(tmp_path / "big.mp4", [photo] * 3)
    result = process_video(str(path), Stage1Config(detect_every=1))
    assert result.width == 3840 and len(result.tracks) >= 3
    boxes = np.array([t.faces[0].detection.box for t in result.tracks])
    assert boxes[:, 2].max() > 1500  # boxes are in the full-size frame


def _face_counts(dataset: fo.Dataset) -> dict[str, int]:
    detections, tracks = 0, set()
    for sample in dataset.iter_samples():
        for frame in sample.frames.values():
            for det in frame[schema.FACES].detections if frame[schema.FACES] else []:
                detections += 1
                tracks.add((sample.id, det.index))
    return {"detections": detections, "tracks": len(tracks)}
