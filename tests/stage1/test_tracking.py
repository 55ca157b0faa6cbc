"""Tests of vcn_plugin.stage1.tracking: synthetic motion for exact properties, a real clip for recall."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from vcn_plugin.core.types import FaceDetection, Track
from vcn_plugin.stage1.tracking import (
    TrackerConfig,
    TrackingResult,
    buffered_iou_matrix,
    infer_detect_every,
    iou_matrix,
    track_shot,
    track_video,
)

# landmark positions relative to a unit box (eyes, nose, mouth corners)
_UNIT_LANDMARKS = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]])


def _face(x: float, y: float, size: float, score: float = 0.9) -> FaceDetection:
    box = np.array([x, y, x + size, y + size], dtype=float)
    landmarks = np.array([x, y]) + _UNIT_LANDMARKS * size
    return FaceDetection(box=box, score=score, landmarks=landmarks)


def _moving(start: tuple[float, float], velocity: tuple[float, float], size: float, frames, score: float = 0.9):
    return {f: _face(start[0] + velocity[0] * (f - 1), start[1] + velocity[1] * (f - 1), size, score) for f in frames}


def _merge(*tracks: dict[int, FaceDetection]) -> dict[int, list[FaceDetection]]:
    merged: dict[int, list[FaceDetection]] = {}
    for track in tracks:
        for frame, det in track.items():
            merged.setdefault(frame, []).append(det)
    return merged


def _check_accounting(result: TrackingResult) -> None:
    s = result.stats
    accounted = (
        s.below_low_score + s.unmatched_low_score + s.unmatched_high_score + s.outside_shots
        + s.in_kept_tracks + s.in_dropped_tracks
    )
    assert accounted == s.detections
    assert s.in_kept_tracks == sum(sum(not f.interpolated for f in t.faces) for t in result.tracks)
    assert s.interpolated_faces == sum(sum(f.interpolated for f in t.faces) for t in result.tracks)


def _signature(result: TrackingResult) -> list:
    return [(t.track_id, t.shot, [(f.frame, tuple(np.round(f.detection.box, 6)), f.interpolated) for f in t.faces])
            for t in result.tracks]


def test_two_faces_crossing_paths_keep_their_ids():
    frames = range(1, 61)
    going_right = _moving((40, 100), (8, 0), 60, frames)
    going_left = _moving((520, 115), (-8, 0), 70, frames)
    result = track_video(_merge(going_right, going_left), [(1, 60)])

    assert len(result.tracks) == 2
    by_first_x = sorted(result.tracks, key=lambda t: t.faces[0].detection.box[0])
    for track, truth in zip(by_first_x, (going_right, going_left)):
        assert track.frames == list(frames)
        assert all(f.detection is truth[f.frame] for f in track.faces)
    _check_accounting(result)


def test_two_second_gap_is_bridged_with_interpolated_faces_and_landmarks():
    truth = _moving((50, 60), (5, 2), 80, range(1, 31))
    detections = {f: [d] for f, d in truth.items() if f not in (12, 13)}
    (track,) = track_video(detections, [(1, 30)]).tracks

    assert track.frames == list(range(1, 31))
    filled = {f.frame: f for f in track.faces if f.interpolated}
    assert sorted(filled) == [12, 13]
    for frame, face in filled.items():
        np.testing.assert_allclose(face.detection.box, truth[frame].box, atol=1e-9)
        np.testing.assert_allclose(face.detection.landmarks, truth[frame].landmarks, atol=1e-9)
    assert all(f.detection is truth[f.frame] for f in track.faces if not f.interpolated)


def test_gap_longer_than_interpolation_limit_stays_empty_but_keeps_the_id():
    truth = _moving((50, 60), (2, 0), 80, range(1, 41))
    detections = {f: [d] for f, d in truth.items() if not 11 <= f <= 25}
    config = TrackerConfig(max_interpolated_gap=5)
    (track,) = track_video(detections, [(1, 40)], config).tracks
    assert track.frames == list(range(1, 11)) + list(range(26, 41))
    assert not any(f.interpolated for f in track.faces)


def test_track_dies_after_max_age_missed_frames():
    truth = _moving((50, 60), (0, 0), 80, range(1, 61))
    detections = {f: [d] for f, d in truth.items() if not 21 <= f <= 40}
    result = track_video(detections, [(1, 60)], TrackerConfig(max_age=10))
    assert [t.frames for t in result.tracks] == [list(range(1, 21)), list(range(41, 61))]
    assert [t.track_id for t in result.tracks] == [0, 1]


def test_no_track_spans_a_shot_boundary():
    static_face = _moving((100, 100), (0, 0), 90, range(1, 41))
    result = track_video(_merge(static_face), [(1, 20), (21, 40)])

    assert [(t.track_id, t.shot, t.frames[0], t.frames[-1]) for t in result.tracks] == [(0, 0, 1, 20), (1, 1, 21, 40)]


def test_track_ids_are_ordered_by_first_frame_then_x_across_shots():
    left = _moving((10, 50), (1, 0), 50, range(5, 31))
    right = _moving((300, 50), (-1, 0), 50, range(3, 31))
    early_right = _moving((400, 50), (0, 0), 50, range(3, 31))
    result = track_video(_merge(left, right, early_right), [(1, 15), (16, 30)])
    firsts = [(t.shot, t.faces[0].frame, t.faces[0].detection.box[0]) for t in result.tracks]
    assert [t.track_id for t in result.tracks] == list(range(len(result.tracks)))
    assert firsts == sorted(firsts)
    assert len(result.tracks) == 6


@pytest.mark.parametrize("detect_every", [3, None])
def test_every_kth_frame_detection_gives_full_length_tracks(detect_every):
    frames = range(1, 62)
    a = _moving((30, 80), (6, 1), 64, frames, score=0.7)
    b = _moving((500, 90), (-6, 0), 72, frames, score=0.7)
    sparse = {f: dets for f, dets in _merge(a, b).items() if (f - 1) % 3 == 0}
    result = track_video(sparse, [(1, 61)], TrackerConfig(detect_every=detect_every))

    assert len(result.tracks) == 2 and not result.dropped
    for track in result.tracks:
        assert track.frames == list(frames)
        assert [f.interpolated for f in track.faces] == [(f - 1) % 3 != 0 for f in frames]
        truth = a if track.faces[0].detection.box[0] < 100 else b
        for face in track.faces:
            np.testing.assert_allclose(face.detection.box, truth[face.frame].box, atol=1e-9)


def test_sparse_detection_without_detect_every_loses_tentative_tracks():
    """Declared every-frame detection on sparse input: score-0.7 tracks never confirm, and are reported."""
    a = _moving((30, 80), (6, 1), 64, range(1, 62), score=0.7)
    sparse = {f: [d] for f, d in a.items() if (f - 1) % 3 == 0}
    result = track_video(sparse, [(1, 61)], TrackerConfig(detect_every=1))
    assert result.tracks == []
    assert len(result.dropped) == len(sparse) and {d.reason for d in result.dropped} == {"unconfirmed"}
    _check_accounting(result)


def test_infer_detect_every():
    assert infer_detect_every([1, 4, 7, 13]) == 3
    assert infer_detect_every([5]) == 1
    assert infer_detect_every([]) == 1


def test_low_score_detections_extend_tracks_but_do_not_start_them():
    truth = _moving((50, 60), (3, 0), 80, range(1, 21))
    detections = {f: [dataclasses.replace(d, score=0.3 if 8 <= f <= 12 else 0.9)] for f, d in truth.items()}
    detections[5].append(_face(400, 300, 60, score=0.3))  # a lone low-score box
    result = track_video(detections, [(1, 20)])

    (track,) = result.tracks
    assert track.frames == list(range(1, 21)) and not any(f.interpolated for f in track.faces)
    assert result.stats.unmatched_low_score == 1
    _check_accounting(result)


def test_birth_rule_and_min_track_length_report_what_they_drop():
    one_frame_weak = {10: [_face(10, 10, 50, score=0.7)]}
    one_frame_strong = {10: [_face(10, 10, 50, score=0.95)]}
    assert track_video(one_frame_weak, [(1, 20)]).dropped[0].reason == "unconfirmed"
    assert len(track_video(one_frame_strong, [(1, 20)]).tracks) == 1

    short = {f: [d] for f, d in _moving((10, 10), (1, 0), 50, range(1, 4)).items()}
    long_ = {f: [d] for f, d in _moving((300, 10), (1, 0), 50, range(1, 21)).items()}
    result = track_video(_merge({f: d[0] for f, d in short.items()}, {f: d[0] for f, d in long_.items()}),
                         [(1, 20)], TrackerConfig(min_track_length=5))
    assert [t.frames for t in result.tracks] == [list(range(1, 21))]
    assert [(d.reason, d.track.frames, d.track.track_id) for d in result.dropped] == [("too_short", [1, 2, 3], -1)]
    _check_accounting(result)


def test_detections_outside_every_shot_are_counted():
    detections = _merge(_moving((10, 10), (0, 0), 50, range(1, 31)))
    result = track_video(detections, [(1, 10), (21, 30)])
    assert result.stats.outside_shots == 10
    _check_accounting(result)


def test_deterministic_and_independent_of_dict_order():
    frames = range(1, 41)
    detections = _merge(_moving((30, 80), (6, 1), 64, frames), _moving((500, 90), (-6, 0), 72, frames),
                        _moving((200, 300), (0, -3), 50, range(10, 41), score=0.6))
    shots = [(1, 25), (26, 40)]
    reversed_order = dict(reversed(list(detections.items())))
    first = _signature(track_video(detections, shots))
    assert first == _signature(track_video(detections, shots))
    assert first == _signature(track_video(reversed_order, shots))


def test_empty_input_gives_no_tracks():
    for detections, shots in [({}, [(1, 10)]), ({}, []), ({3: []}, [(1, 10)])]:
        result = track_video(detections, shots)
        assert result.tracks == [] and result.dropped == [] and result.stats.detections == 0
    assert track_shot({}, 1, 5).tracks == []


@pytest.mark.parametrize(
    "shots, num_frames",
    [([(1, 10), (10, 20)], None), ([(11, 20), (1, 10)], None), ([(0, 10)], None), ([(5, 4)], None),
     ([(1, 10), (11, 30)], 25), ([(1, 2, 3)], None)],
)
def test_invalid_shots_raise(shots, num_frames):
    with pytest.raises(ValueError, match="shot"):
        track_video({}, shots, num_frames=num_frames)


def _speeding_exit() -> dict[int, list[FaceDetection]]:
    """A face that speeds up from 13 to 32 px a frame (leaving the frame), detected every 3rd frame."""
    xs = [234, 221, 208, 195, 180, 150, 99, 80, 60, 40]
    return {f: [_face(xs[f - 1], 40, 80)] for f in (1, 4, 7, 10)}


def test_second_buffer_keeps_a_speeding_face_in_one_track():
    off = track_video(_speeding_exit(), [(1, 10)], TrackerConfig(detect_every=3, second_buffer=0.0))
    assert [[f.frame for f in t.faces if not f.interpolated] for t in off.tracks] == [[1, 4], [7, 10]]
    for cascade in (TrackerConfig(detect_every=3, second_buffer=0.3), TrackerConfig(detect_every=3)):  # .5: the default
        result = track_video(_speeding_exit(), [(1, 10)], cascade)
        assert [[f.frame for f in t.faces if not f.interpolated] for t in result.tracks] == [[1, 4, 7, 10]]
        _check_accounting(result)


def test_second_buffer_leaves_what_the_first_association_matched():
    frames = range(1, 61)
    detections = _merge(_moving((40, 100), (8, 0), 60, frames), _moving((520, 115), (-8, 0), 70, frames))
    for k in (1, 3):
        sparse = {f: d for f, d in detections.items() if (f - 1) % k == 0}
        off = track_video(sparse, [(1, 60)], TrackerConfig(detect_every=k, second_buffer=0.0))
        cascade = track_video(sparse, [(1, 60)], TrackerConfig(detect_every=k, second_buffer=0.5))
        assert _signature(cascade) == _signature(off)


def test_invalid_detections_and_config_raise():
    with pytest.raises(ValueError, match="1-based"):
        track_video({0: [_face(1, 1, 10)]}, [(1, 5)])
    with pytest.raises(ValueError, match="x2 > x1"):
        track_video({2: [FaceDetection(box=np.array([10.0, 10, 5, 20]), score=0.9)]}, [(1, 5)])
    with pytest.raises(ValueError, match="first_frame"):
        track_shot({}, 5, 2)
    with pytest.raises(ValueError, match="max_age"):
        TrackerConfig(detect_every=5, max_age=3)
    with pytest.raises(ValueError, match="low_score"):
        TrackerConfig(low_score=0.6, high_score=0.5)
    with pytest.raises(ValueError, match="second_buffer"):
        TrackerConfig(second_buffer=-0.1)


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150], [0.0, 0.0]])
    np.testing.assert_allclose(buffered_iou_matrix(a, np.zeros(2), b), iou_matrix(a, b))
    # widened by half a side: [-5, 15] vs [15, 35] touch, [-5, 15] vs [0, 20] overlap by 15 of 25
    apart = np.array([[0, 0, 10, 10]], dtype=float)
    np.testing.assert_allclose(buffered_iou_matrix(apart, [0.5], [[20, 0, 30, 10], [5, 0, 15, 10]]),
                               [[0.0, 15 / 25]])


# --- real clip: dlib HOG detections on a street scene -------------------------------------------

_DLIB_CONFIG = TrackerConfig(high_score=0.3, low_score=-0.3, new_track_score=0.4, birth_score=1.0)


def _dlib_detections(video: Path, max_frames: int, width: int, rows: tuple[int, int]) -> dict[int, list[FaceDetection]]:
    """dlib HOG on the band ``rows`` of each frame (where the faces are, to keep the test fast)."""
    cv2 = pytest.importorskip("cv2")
    dlib = pytest.importorskip("dlib")
    detector = dlib.get_frontal_face_detector()
    capture = cv2.VideoCapture(str(video))
    detections: dict[int, list[FaceDetection]] = {}
    frame_number = 0
    while frame_number < max_frames:
        ok, bgr = capture.read()
        if not ok:
            break
        frame_number += 1
        scale = width / bgr.shape[1]
        band = bgr[rows[0]:rows[1]]
        rgb = cv2.cvtColor(cv2.resize(band, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        rects, scores, _ = detector.run(rgb, 1, -0.3)
        detections[frame_number] = [
            FaceDetection(box=np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=float) / scale
                          + np.array([0, rows[0], 0, rows[0]]), score=s)
            for r, s in zip(rects, scores)
        ]
    capture.release()
    return detections


@pytest.fixture(scope="module")
def street_detections(shared_data) -> dict[int, list[FaceDetection]]:
    return _dlib_detections(shared_data / "videos" / "facenet_pytorch_street.mp4", max_frames=60, width=960,
                            rows=(480, 1000))


def _track_of(frame: int, box: np.ndarray, tracks: list[Track], min_iou: float = 0.3) -> bool:
    boxes = [f.detection.box for t in tracks for f in t.faces if f.frame == frame]
    return bool(boxes) and iou_matrix(box[None], np.array(boxes)).max() >= min_iou


def _speed(track: Track) -> float:
    """Median centre motion per frame, in face widths, over the real detections of a track."""
    real = [f for f in track.faces if not f.interpolated]
    steps = [np.hypot(*((b.detection.box[:2] + b.detection.box[2:]) - (a.detection.box[:2] + a.detection.box[2:])) / 2)
             / (b.frame - a.frame) / a.detection.width for a, b in zip(real, real[1:])]
    return float(np.median(steps))


def test_real_clip_tracks_are_consistent_and_every_third_frame_keeps_recall(street_detections):
    full = track_video(street_detections, [(1, 30), (31, 60)], _DLIB_CONFIG)
    _check_accounting(full)
    assert len(full.tracks) >= 2
    for track in full.tracks:
        assert track.frames == sorted(set(track.frames))
        lo, hi = [(1, 30), (31, 60)][track.shot]
        assert lo <= track.frames[0] and track.frames[-1] <= hi

    sparse_input = {f: d for f, d in street_detections.items() if (f - 1) % 3 == 0}
    sparse = track_video(sparse_input, [(1, 30), (31, 60)], dataclasses.replace(_DLIB_CONFIG, detect_every=3))
    # frames the sparse run never saw: how many faces of full-rate tracks does it still cover?
    # Faces that move by more than 20% of their width per frame (a fast walker here) are not
    # part of the claim: at k=3 they jump by half a face between detections and are lost.
    slow_tracks = [t for t in full.tracks if len(t) >= 10 and _speed(t) < 0.2]
    reference = [(f.frame, f.detection.box) for t in slow_tracks for f in t.faces
                 if not f.interpolated and (f.frame - 1) % 3 != 0]
    covered = sum(_track_of(frame, box, sparse.tracks) for frame, box in reference)
    assert len(slow_tracks) >= 3 and len(reference) > 40
    assert covered / len(reference) >= 0.85, f"{covered}/{len(reference)}"
