"""Stage-1 cache: a video processed once under a config is reused, anything else recomputed."""
from __future__ import annotations

import numpy as np
import pytest

from tests.videos import noise_frames, write_video
from vcn_plugin.benchmark.sample_clip import make_sample_clip
from vcn_plugin.stage1.cache import cache_key, cached_process_video
from vcn_plugin.stage1.detectors import get_detector
from vcn_plugin.stage1.pipeline import Stage1Config


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "sample.mp4"
    make_sample_clip(path)
    return path


def _tracks(result) -> list:
    return [(t.track_id, t.shot, [(f.frame, tuple(np.round(f.detection.box, 3))) for f in t.faces]) for t in result.tracks]


def test_second_run_is_reused_and_a_new_config_or_file_is_not(tmp_path, face_clip):
    config = Stage1Config(detector="dlib-hog", detect_every=2)
    detector = get_detector(config.detector)
    cache = tmp_path / "cache"
    first, cached = cached_process_video(str(face_clip), config, detector, cache)
    assert not cached and first.tracks
    again, cached = cached_process_video(str(face_clip), config, detector, cache)
    assert cached and _tracks(again) == _tracks(first) and again.num_frames == first.num_frames
    other = Stage1Config(detector="dlib-hog", detect_every=3)
    assert cache_key(face_clip, other) != cache_key(face_clip, config)
    assert not cached_process_video(str(face_clip), other, detector, cache)[1]
    # a corrupt entry is recomputed and replaced
    (cache / f"{cache_key(face_clip, config)}.pkl").write_bytes(b"not a pickle")
    redone, cached = cached_process_video(str(face_clip), config, detector, cache)
    assert not cached and _tracks(redone) == _tracks(first)
    assert sorted(p.suffix for p in cache.iterdir()) == [".pkl", ".pkl"]


def test_a_changed_file_gets_a_new_key(tmp_path):
    video = write_video(tmp_path / "a.mp4", noise_frames(6))
    key = cache_key(video, Stage1Config())
    write_video(video, noise_frames(8, seed=1))
    assert cache_key(video, Stage1Config()) != key
