"""Within-track change (realistic variation): warps, morph states, and calibration on real photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vcn_plugin.benchmark import EpisodeConfig, build_benchmark
from vcn_plugin.benchmark.appearance import (
    Change,
    expression_offsets,
    landmarks68,
    light_gain,
    pitch_homography,
    tps_warp,
    track_states,
)
from vcn_plugin.benchmark.render import transform_points
from vcn_plugin.benchmark.sources import FaceBoxCache, find_sources, list_identities, make_cutout
from vcn_plugin.benchmark.track_variation import label_tracks, summarise, track_embeddings, within_track_distance
from vcn_plugin.evaluation.annotations import load_annotation


def test_tps_warp_moves_a_point_to_its_target_and_keeps_the_rest():
    image = np.zeros((120, 100, 3), np.float32)
    image[38:43, 28:33] = 1.0  # a dot at (30, 40)
    anchors = np.array([[70.0, 90.0], [75.0, 30.0], [20.0, 95.0]])
    src = np.vstack([[[30.0, 40.0]], anchors])
    dst = np.vstack([[[40.0, 50.0]], anchors])
    out = tps_warp(image, src, dst)
    ys, xs = np.nonzero(out[..., 0] > 0.5)
    assert abs(xs.mean() - 40) <= 1.0 and abs(ys.mean() - 50) <= 1.0
    assert np.allclose(tps_warp(image, src, src), image, atol=1e-4)


def test_expression_offsets_move_only_mouth_chin_and_brows():
    points = np.random.default_rng(0).random((68, 2)) * 100
    d = expression_offsets(points, 100.0, smile=1.0, mouth_open=1.0, brows=1.0)
    moved = set(np.nonzero(np.abs(d).sum(axis=1))[0])
    assert moved == set(range(17, 27)) | {48, 54, 55, 56, 57, 58, 59, 64, 65, 66, 67, 6, 7, 8, 9, 10}
    assert d[54, 0] > 0 > d[48, 0]  # a smile widens the mouth
    assert (d[57, 1] > 0) and (d[20, 1] < 0)  # the jaw drops, the brows rise
    assert not np.abs(expression_offsets(points, 100.0, 0.0, -1.0, 0.0)).any()  # a closed mouth cannot close further


def test_pitch_and_light_are_neutral_at_zero():
    box = np.array([10.0, 20.0, 90.0, 120.0])
    assert np.allclose(pitch_homography(box, 0.0), np.eye(3))
    tilted = transform_points(pitch_homography(box, 0.5), np.array([[10.0, 20.0], [90.0, 20.0], [10.0, 120.0], [90.0, 120.0]]))
    assert tilted[1, 0] - tilted[0, 0] < 80 < tilted[3, 0] - tilted[2, 0]  # the top edge shrinks
    assert np.allclose(light_gain((50, 60), box, 1.0, 0.0), 1.0)
    gain = light_gain((140, 100), box, 0.0, 0.3)
    assert gain[70, 95, 0] == pytest.approx(1.3) and gain[70, 5, 0] == pytest.approx(0.7)


@pytest.fixture(scope="module")
def two_photos(shared_data: Path):
    faces = shared_data / "faces"
    photos = list_identities(faces)["lfw_Vladimir_Putin"][:2]
    sources = find_sources("putin", photos, FaceBoxCache(None), [])
    return [make_cutout(s) for s in sources]


def test_morph_states_start_at_the_photo_and_end_at_the_partner(two_photos):
    a, b = two_photos
    states = track_states(a, Change(partners=(b,), morph=(0.0, 1.0)), n_states=4)
    assert len(states) == 4 and all(s.rgb.shape == a.rgb.shape for s in states)
    assert all(np.array_equal(s.face_box, a.face_box) and s.alpha is a.alpha for s in states)
    assert np.abs(states[0].rgb - a.rgb).mean() < 0.01  # the first state is the photo itself
    # the last state has the partner's face on the first photo's landmarks
    points = landmarks68(states[-1])
    assert np.abs(points - landmarks68(a)).mean() > 1.0
    assert np.abs(states[-1].rgb - a.rgb).mean() > 0.03


def test_realistic_tracks_vary_like_real_tracks_and_static_ones_do_not(shared_data: Path, tmp_path):
    """Stage-1 tracks of one small realistic episode: within-track median in the range calibrated on
    real clips (benchmarks/track_variation.py: street 0.053, arm wrestling 0.044, realistic 0.027),
    several times the static build's (0.008) of the same seed."""
    config = EpisodeConfig(n_identities=(4, 4), n_shots=(6, 6), shot_seconds=(2.0, 2.5), extra_prob=0.0, seed=5)
    medians = {}
    for variation in ("realistic", "static"):
        out = tmp_path / variation
        build_benchmark(shared_data / "faces", out, 1, EpisodeConfig(**{**config.__dict__, "variation": variation}))
        tracks = track_embeddings(out / "videos/ep000.mp4")
        assert len(label_tracks(tracks, load_annotation(out / "annotations/ep000.json"))) >= 6
        medians[variation] = summarise(within_track_distance(t.embeddings) for t in tracks)["median"]
    print(medians)
    assert 0.015 <= medians["realistic"] <= 0.06
    assert medians["static"] < 0.013
    assert medians["realistic"] > 2 * medians["static"]
