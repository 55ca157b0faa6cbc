"""Shot boundaries: hard cuts, hue-only cuts, and a moving camera that is not a cut."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from vcn_plugin.stage1.shots import ShotDetector, cuts_to_shots


def _texture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (180, 320, 3), dtype=np.uint8), (31, 31), 0)


def _detect(frames: list[np.ndarray]) -> list[tuple[int, int]]:
    detector = ShotDetector(25.0)
    for number, frame in enumerate(frames, 1):
        detector.update(number, frame)
    return detector.shots()


def test_hard_cuts_between_different_scenes():
    frames = [np.roll(_texture(s), i, axis=1) for s in (1, 2, 3) for i in range(30)]
    assert _detect(frames) == [(1, 30), (31, 60), (61, 90)]


def test_hue_only_cut_same_brightness_and_edges():
    base = cv2.cvtColor(_texture(4), cv2.COLOR_RGB2HSV)
    frames = []
    for hue_shift in (0, 70):
        hsv = base.copy()
        hsv[..., 0] = (hsv[..., 0].astype(int) // 3 + hue_shift) % 180
        shot = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        frames += [np.roll(shot, i, axis=1) for i in range(30)]
    lum = [cv2.cvtColor(f, cv2.COLOR_RGB2HSV)[..., 2].mean() for f in (frames[29], frames[30])]
    assert abs(lum[0] - lum[1]) < 3  # the cut changes colour, not brightness
    assert _detect(frames) == [(1, 30), (31, 60)]


def test_slow_pan_is_one_shot():
    frames = [np.roll(_texture(5), 2 * i, axis=1) for i in range(60)]
    assert _detect(frames) == [(1, 60)]


@pytest.mark.parametrize(
    "cuts, n, expected",
    [([], 10, [(1, 10)]), ([5], 10, [(1, 4), (5, 10)]), ([5, 6], 10, [(1, 4), (5, 10)]), ([1, 11], 10, [(1, 10)])],
)
def test_cuts_to_shots(cuts, n, expected):
    assert cuts_to_shots(cuts, n, min_shot_len=2) == expected


def test_no_frames_no_shots():
    assert ShotDetector(25.0).shots() == []
