"""Coarse cross-shot track matching with per-track Gaussians, on real dlib face embeddings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.faces import dlib_chips
from vcn_plugin.ssl.track_gaussians import cross_validated_logpdf, fit_track_gaussian, match_tracks

IDENTITIES = ("lfw_George_W_Bush", "lfw_Vladimir_Putin", "lfw_Donald_Rumsfeld")


def dlib_embeddings(folder: Path) -> np.ndarray:
    """dlib's 128-d face descriptors (HOG detector, 5-point alignment, ResNet) of every photo in ``folder``."""
    dlib = pytest.importorskip("dlib")
    models = pytest.importorskip("face_recognition_models")
    recogniser = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    return np.stack([np.array(recogniser.compute_face_descriptor(chip)) for chip in dlib_chips(folder)])


@pytest.fixture(scope="module")
def tracks(shared_data: Path) -> dict[tuple[str, int], np.ndarray]:
    """Two tracks per identity: the first and second half of its photos."""
    out = {}
    for identity in IDENTITIES:
        embeddings = dlib_embeddings(shared_data / "faces" / identity)
        assert len(embeddings) >= 8, f"expected at least 8 detectable faces of {identity}"
        half = len(embeddings) // 2
        out[(identity, 0)], out[(identity, 1)] = embeddings[:half], embeddings[half:]
    return out


def test_same_identity_tracks_match_and_different_ones_do_not(tracks: dict) -> None:
    result = match_tracks(tracks)
    assert set(result.pairs) == {((identity, 0), (identity, 1)) for identity in IDENTITIES}
    assert result.num_tracks == result.num_fitted == 6 and result.num_excluded == 0


def test_cannot_link_excludes_a_pair(tracks: dict) -> None:
    bush = ("lfw_George_W_Bush", 0), ("lfw_George_W_Bush", 1)
    result = match_tracks(tracks, cannot_link=[(bush[1], bush[0])])
    assert bush not in result.pairs and len(result.pairs) == 2 and result.num_excluded == 1


def test_threshold_is_mean_of_lowest_quarter_of_cross_validated_own_scores(tracks: dict) -> None:
    x = tracks[("lfw_Vladimir_Putin", 0)]
    scores = np.sort(cross_validated_logpdf(x))
    k = int(np.ceil(0.25 * len(x)))
    gaussian = fit_track_gaussian(x)
    assert gaussian.threshold == pytest.approx(scores[:k].mean())
    assert 0.0 < gaussian.shrinkage <= 1.0
    # held-out faces score lower than the faces the Gaussian was fitted on
    assert gaussian.threshold < np.sort(gaussian.logpdf(x))[:k].mean()
    # the matching rule: another track's mean is scored against this threshold
    other_mean = tracks[("lfw_Vladimir_Putin", 1)].mean(axis=0)
    assert gaussian.logpdf(other_mean)[0] >= gaussian.threshold


def test_small_tracks_are_candidates_but_not_fitted(tracks: dict) -> None:
    small = {key: value[:2] if key[1] == 1 else value for key, value in tracks.items()}
    result = match_tracks(small)
    assert result.num_fitted == 3
    # the two-face tracks can still be matched by the fitted half of their identity
    assert all(pair[0][0] == pair[1][0] for pair in result.pairs) and len(result.pairs) >= 1


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"a": np.zeros((3, 4)), "b": np.zeros((3, 5))}, "one dimension"),
        ({"a": np.zeros((0, 4))}, "non-empty"),
        ({"a": np.full((3, 4), np.nan)}, "NaN"),
    ],
)
def test_bad_embeddings_are_refused(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        match_tracks(bad)


def test_bad_arguments_are_refused() -> None:
    rng = np.random.default_rng(0)
    tracks = {"a": rng.normal(size=(4, 3)), "b": rng.normal(size=(4, 3))}
    with pytest.raises(ValueError, match="unknown track keys"):
        match_tracks(tracks, cannot_link=[("a", "zzz")])
    with pytest.raises(ValueError, match="min_faces"):
        match_tracks(tracks, min_faces=2)
    with pytest.raises(ValueError, match="quantile"):
        fit_track_gaussian(tracks["a"], quantile=0.0)


def test_views_of_a_face_are_held_out_together() -> None:
    """With (V, n, D) views, a face is never scored by a Gaussian fitted on its own views: two
    identical views score like one (out of sample), not like a duplicated row (in sample)."""
    x = np.random.default_rng(0).normal(size=(6, 16))
    grouped = cross_validated_logpdf(np.stack([x, x]))
    duplicated_rows = cross_validated_logpdf(np.concatenate([x, x]))
    assert grouped.shape == (12,) and np.allclose(grouped[:6], grouped[6:])
    assert grouped.mean() < duplicated_rows.mean() - 5  # -28.4 vs -15.7 measured
    assert abs(grouped.mean() - cross_validated_logpdf(x).mean()) < 5  # -28.4 vs -25.0


def test_views_match_like_faces(tracks) -> None:
    """Each track given as (V, n, D) views (here: the faces and a slightly noisy copy) still matches
    its own identity's other track and no other identity's."""
    rng = np.random.default_rng(0)
    views = {k: np.stack([x, x + rng.normal(scale=0.01, size=x.shape)]) for k, x in tracks.items()}
    pairs = {frozenset((a[0], b[0])) if a[0] == b[0] else frozenset((a, b)) for a, b in match_tracks(views).pairs}
    assert pairs == {frozenset((identity,)) for identity in IDENTITIES}
    with pytest.raises(ValueError, match="one view count"):
        match_tracks({**views, "odd": tracks[(IDENTITIES[0], 0)]})


def test_drop_conflicting_matches_removes_every_match_of_a_group_that_chains_a_cannot_link_pair() -> None:
    from vcn_plugin.ssl.track_gaussians import MatchResult, drop_conflicting_matches

    # a hub "h" matched to a, b and c, where a and b were seen in one frame; d-e is a clean pair,
    # and f-g is clean although f and x (unmatched) are cannot-linked
    pairs = [("h", "a"), ("h", "b"), ("c", "h"), ("d", "e"), ("f", "g")]
    result = MatchResult(pairs=pairs, num_tracks=9, num_fitted=7, num_excluded=1)
    kept = drop_conflicting_matches(result, [("a", "b"), ("f", "x")])
    assert kept.pairs == [("d", "e"), ("f", "g")]
    assert (kept.num_tracks, kept.num_fitted, kept.num_excluded) == (9, 7, 1)
    assert drop_conflicting_matches(result, []).pairs == pairs
    assert drop_conflicting_matches(MatchResult(), [("a", "b")]).pairs == []
