"""Tests of vcn_plugin.stage1.quality on real face photos from ../shared/data/faces."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vcn_plugin.core.types import FaceDetection
from vcn_plugin.stage1.quality import (
    QualityConfig,
    aggregate_track_quality,
    face_qualities,
    face_quality,
    laplacian_ratio,
    mad_outliers,
    modified_z_scores,
    quality_terms,
    track_quality_flags,
)

#: LFW photos are 250x250 with the face centred: this box holds the face
_LFW_BOX = np.array([70.0, 65.0, 180.0, 185.0])


def _rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def lfw_frames(shared_data) -> list[np.ndarray]:
    paths = sorted((shared_data / "faces").glob("lfw_*/*.jpg"))[::4]
    assert len(paths) >= 15
    return [_rgb(p) for p in paths]


def _face(box: np.ndarray, score: float = 0.9) -> FaceDetection:
    return FaceDetection(box=np.asarray(box, dtype=float), score=score)


def test_blurred_faces_score_lower(lfw_frames):
    for frame in lfw_frames:
        blurred = cv2.GaussianBlur(frame, (0, 0), 2.5)
        sharp_terms = quality_terms(frame, _face(_LFW_BOX))
        blurred_terms = quality_terms(blurred, _face(_LFW_BOX))
        assert blurred_terms.sharpness < sharp_terms.sharpness - 0.2
        assert blurred_terms.quality < sharp_terms.quality
        assert blurred_terms.size == sharp_terms.size and blurred_terms.score == sharp_terms.score


def test_downscaled_faces_score_lower(lfw_frames):
    for frame in lfw_frames:
        small = cv2.resize(frame, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        full_terms = quality_terms(frame, _face(_LFW_BOX))
        small_terms = quality_terms(small, _face(_LFW_BOX * 0.25))
        assert small_terms.size == pytest.approx(full_terms.size * 0.25, rel=0.05)
        assert small_terms.sharpness < full_terms.sharpness
        assert small_terms.quality < 0.6 * full_terms.quality


def test_quality_rises_with_detector_score_and_stays_in_unit_range(lfw_frames):
    frame = lfw_frames[0]
    values = [face_quality(frame, _face(_LFW_BOX, s)) for s in (0.1, 0.4, 0.7, 1.0)]
    assert values == sorted(values) and values[0] < values[-1]
    assert all(0.0 <= v <= 1.0 for v in values)
    terms = quality_terms(frame, _face(_LFW_BOX, 5.0))
    assert terms.score == 1.0
    mapped = quality_terms(frame, _face(_LFW_BOX, 0.75), QualityConfig(score_range=(-0.5, 2.0)))
    assert mapped.score == pytest.approx(0.5)


def test_face_qualities_matches_face_quality(lfw_frames):
    frame = lfw_frames[1]
    detections = [_face(_LFW_BOX), _face([100, 100, 140, 140], 0.5), _face([-20, -20, 60, 60], 0.8)]
    np.testing.assert_allclose(face_qualities(frame, detections), [face_quality(frame, d) for d in detections])
    assert face_qualities(frame, []).shape == (0,)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    assert face_quality(grey, detections[0]) == pytest.approx(face_quality(frame, detections[0]), abs=0.02)


def test_flat_crop_has_zero_sharpness():
    assert laplacian_ratio(np.full((80, 80), 128, np.uint8)) == 0.0


def test_bad_frames_and_boxes_raise(lfw_frames):
    frame = lfw_frames[0]
    with pytest.raises(ValueError, match="outside"):
        face_quality(frame, _face([300, 300, 400, 400]))
    with pytest.raises(ValueError, match="uint8"):
        face_quality(frame.astype(np.float32), _face(_LFW_BOX))
    with pytest.raises(ValueError, match="shape"):
        face_quality(frame[..., :2].copy(), _face(_LFW_BOX))
    with pytest.raises(ValueError, match="score_range"):
        QualityConfig(score_range=(1.0, 1.0))


def test_mad_flags_a_clear_outlier_and_not_normal_values():
    rng = np.random.default_rng(0)
    normal = rng.normal(0.7, 0.03, size=40)
    assert not mad_outliers(normal).any()
    with_outlier = np.append(normal, 0.2)
    flags = mad_outliers(with_outlier)
    assert flags.tolist() == [False] * 40 + [True]
    assert not mad_outliers(with_outlier, side="high").any()
    assert mad_outliers(np.append(normal, 1.5), side="high")[-1]
    assert mad_outliers(np.append(normal, 1.5), side="both")[-1]


def test_mad_zero_is_handled():
    values = [0.8, 0.8, 0.8, 0.8, 0.8, 0.1]  # MAD = 0: mean absolute deviation stands in
    assert mad_outliers(values).tolist() == [False] * 5 + [True]
    assert not mad_outliers([0.5] * 6).any()
    assert np.all(modified_z_scores([0.5] * 6) == 0)
    assert mad_outliers([]).shape == (0,)
    assert not mad_outliers([0.3]).any()


def test_mad_bad_input_raises():
    with pytest.raises(ValueError, match="NaN"):
        mad_outliers([0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match="side"):
        mad_outliers([0.1, 0.2], side="left")
    with pytest.raises(ValueError, match="threshold"):
        mad_outliers([0.1, 0.2], threshold=0)


def test_track_aggregation_skips_interpolated_and_nan():
    assert aggregate_track_quality([0.9, 0.1, 0.8, 0.85]) == pytest.approx(0.825)
    assert aggregate_track_quality([0.9, 0.1, 0.8], interpolated=[False, True, False]) == pytest.approx(0.85)
    assert aggregate_track_quality([0.9, float("nan"), 0.7], method="mean") == pytest.approx(0.8)
    with pytest.raises(ValueError, match="real"):
        aggregate_track_quality([0.5], interpolated=[True])
    with pytest.raises(ValueError, match="entries"):
        aggregate_track_quality([0.5, 0.6], interpolated=[True])
    with pytest.raises(ValueError, match="method"):
        aggregate_track_quality([0.5], method="max")


def test_blurred_tiny_track_is_flagged_among_real_tracks(shared_data):
    """Tracks of real photos, one per identity; one identity is seen only tiny and blurred."""
    qualities = []
    for identity in sorted((shared_data / "faces").glob("lfw_*")):
        frames = [_rgb(p) for p in sorted(identity.glob("*.jpg"))[:5]]
        qualities.append(aggregate_track_quality([face_quality(f, _face(_LFW_BOX)) for f in frames]))
    bad_frames = [cv2.GaussianBlur(cv2.resize(_rgb(p), (90, 90), interpolation=cv2.INTER_AREA), (0, 0), 1.0)
                  for p in sorted((shared_data / "faces" / "bbt_amy").glob("*.png"))]
    qualities.append(aggregate_track_quality([face_quality(f, _face([5, 5, 85, 85])) for f in bad_frames]))

    flags = track_quality_flags(qualities)
    assert flags.tolist() == [False] * (len(qualities) - 1) + [True], np.round(qualities, 3)
