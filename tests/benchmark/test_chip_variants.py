"""``benchmarks/chip_variants.py``: the chip transforms and the nearest-track score."""
from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from tests.scripts import benchmark_script

_LUMA = np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def variants() -> ModuleType:
    return benchmark_script("chip_variants")


@pytest.fixture
def dark_blue_chip() -> np.ndarray:
    """A dim chip with a blue cast, as day-for-night leaves a face (mild enough that standardising
    its luma clips no pixel)."""
    rng = np.random.default_rng(0)
    base = rng.uniform(40, 120, size=(32, 32, 1))
    return np.clip(np.concatenate([base * 0.85, base * 1.0, base * 1.15], axis=2), 0, 255).astype(np.uint8)


def test_luminance_standardises_luma_and_keeps_the_cast(variants, dark_blue_chip):
    out = variants.luminance(dark_blue_chip).astype(float)
    luma = out @ _LUMA
    assert luma.mean() == pytest.approx(variants.LUMA_MEAN, abs=1.5)
    assert luma.std() == pytest.approx(variants.LUMA_STD, rel=0.05)
    assert out[..., 2].mean() > out[..., 0].mean()  # one affine map on R, G and B: still bluish


def test_grey_world_removes_the_cast(variants, dark_blue_chip):
    out = variants.grey_world(dark_blue_chip).astype(float)
    means = out.reshape(-1, 3).mean(axis=0)
    assert np.ptp(means) < 3.0  # the channels' means agree after the grey world
    assert (out @ _LUMA).mean() == pytest.approx(variants.LUMA_MEAN, abs=3)


def test_clahe_and_mirror_keep_the_chip_shape(variants, dark_blue_chip):
    assert variants.clahe(dark_blue_chip).shape == dark_blue_chip.shape
    np.testing.assert_array_equal(variants.mirror(dark_blue_chip), dark_blue_chip[:, ::-1])


def test_nearest_same_counts_tracks_whose_nearest_labelled_track_is_their_person(variants):
    e = np.array([[1, 0, 0], [1, 0.1, 0], [0, 1, 0], [0.2, 1, 0], [0.9, 0.3, 0], [0, 0, 1.0]])
    face_track = np.arange(6)
    identity = np.array(["a", "a", "b", "b", "b", ""])  # track 4 (person b) sits next to person a
    # a: 0 -> 1, 1 -> 0 (hits); b: 2 -> 3 (hit), 3 -> 2 (hit), 4 -> 1 (miss); the unlabelled track is no target
    assert variants.nearest_same(e, face_track, identity) == pytest.approx(4 / 5)
