"""Tests of benchmarks/tracking.py: its counts on hand-made tracks, and the tracker settings it compares."""
from __future__ import annotations

import dataclasses

import numpy as np

from tests.scripts import benchmark_script
from vcn_plugin.core.types import FaceDetection, Track, TrackedFace
from vcn_plugin.stage1.tracking import TrackerConfig, TrackingResult, track_video

tracking = benchmark_script("tracking")
SIZE = 80.0


def _track(track_id: int, xs_by_frame: dict[int, float]) -> Track:
    faces = [TrackedFace(f, FaceDetection(box=np.array([x, 40.0, x + SIZE, 40.0 + SIZE]), score=0.9))
             for f, x in sorted(xs_by_frame.items())]  # fmt: skip
    return Track(track_id=track_id, shot=0, faces=faces)


def test_score_counts_fragments_faceless_and_mixed_tracks():
    gt = {("track", 0): {f: (0.0, 40.0, SIZE, SIZE) for f in range(1, 13)},
          ("track", 1): {f: (300.0, 40.0, SIZE, SIZE) for f in range(1, 13)}}  # fmt: skip
    groups = {("track", 0): "a", ("track", 1): "b"}
    result = TrackingResult(tracks=[
        _track(0, {f: 0.0 for f in range(1, 7)}),                                       # person a: matched
        _track(1, {7: 0.0, 8: 0.0, 9: 0.0, 10: 300.0, 11: 300.0, 12: 300.0}),           # a, then b: mixed
        _track(2, {10: 0.0, 11: 150.0, 12: 150.0}),                                     # one frame of a: a fragment
        _track(3, {1: 600.0, 2: 600.0, 3: 600.0}),                                      # no face at all
    ])  # fmt: skip
    counts = tracking.score(result, gt, groups)
    assert counts["tracks"] == 4
    assert counts["fragments"] == 1
    assert counts["no_face"] == 1
    assert counts["mixed"] == 1
    assert counts["other_person_frames"] == 3  # the mixed track: 3 frames of a, 3 of b


def test_a_face_that_speeds_up_as_it_leaves_is_one_track_only_with_a_wider_buffer_or_the_cascade():
    # the benchmark builder's exit (and a fast pan): the face speeds up from 13 to 32 px a frame,
    # detection on every 3rd frame, so the Kalman prediction lags the face by about one box width
    xs = np.array([234, 221, 208, 195, 180, 150, 99, 80, 60, 40], dtype=float)
    gt = {("track", 0): {f: (xs[f - 1], 40.0, SIZE, SIZE) for f in range(1, 11)}}
    detections = {f: [FaceDetection(box=np.array([xs[f - 1], 40.0, xs[f - 1] + SIZE, 40.0 + SIZE]), score=0.9)]
                  for f in (1, 4, 7, 10)}  # fmt: skip
    counts = {}
    for name in ("no-cascade", "buffer-0.1", "cascade-0.3", "default"):
        config = dataclasses.replace(TrackerConfig(detect_every=3), **tracking.VARIANTS[name])
        counts[name] = tracking.score(track_video(detections, [(1, 10)], config), gt, {("track", 0): "a"})
    assert (counts["no-cascade"]["tracks"], counts["no-cascade"]["id_switches"]) == (2, 1)
    assert (counts["default"]["tracks"], counts["default"]["id_switches"]) == (1, 0)  # the cascade, .5
    assert (counts["buffer-0.1"]["tracks"], counts["buffer-0.1"]["id_switches"]) == (1, 0)
    assert (counts["cascade-0.3"]["tracks"], counts["cascade-0.3"]["id_switches"]) == (1, 0)


def test_count_tracks_without_ground_truth_counts_the_short_pieces():
    piece = _track(0, {7: 100.0})
    whole = _track(1, {1: 0.0, 4: 3.0, 7: 6.0})
    filled = Track(track_id=2, shot=0, faces=[*piece.faces, TrackedFace(8, piece.faces[0].detection, interpolated=True),
                                              TrackedFace(9, piece.faces[0].detection, interpolated=True)])
    counts = tracking.count_tracks(TrackingResult(tracks=[piece, whole, filled]))
    assert counts == {"tracks": 3, "short_tracks": 2}  # filled-in faces are not detections
