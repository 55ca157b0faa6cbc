"""Mutual-nearest-neighbour coarse matching on hand-made track embeddings."""
from __future__ import annotations

import numpy as np
import pytest

from vcn_plugin.ssl import FinetuneConfig
from vcn_plugin.ssl.mutual_neighbours import match_mutual_neighbours, track_mean_directions


def _track(deg: float, n: int = 4, spread: float = 1.0, views: int = 1) -> np.ndarray:
    angles = np.radians(deg + np.linspace(-spread, spread, n))
    faces = np.stack([np.cos(angles), np.sin(angles), np.zeros(n)], axis=1)
    return np.stack([faces] * views) if views > 1 else faces


def test_each_track_pairs_with_its_mutual_nearest_only():
    # a1 (0 deg) <-> a2 (5), b1 (60) <-> b2 (70); c (100) is nearest to b2, but b2's nearest is b1
    tracks = {"a1": _track(0), "a2": _track(5), "b1": _track(60), "b2": _track(70), "c": _track(100)}
    result = match_mutual_neighbours(tracks)
    assert result.pairs == [("a1", "a2"), ("b1", "b2")]
    assert result.num_tracks == 5


def test_cannot_link_moves_a_track_to_its_next_neighbour():
    tracks = {"a1": _track(0), "a2": _track(5), "a3": _track(12)}
    assert match_mutual_neighbours(tracks).pairs == [("a1", "a2")]
    result = match_mutual_neighbours(tracks, cannot_link=[("a2", "a1")])
    assert result.pairs == [("a2", "a3")] and result.num_excluded == 1


def test_views_are_averaged_and_unknown_keys_refused():
    tracks = {"a": _track(0, views=3), "b": _track(4, views=3)}
    assert match_mutual_neighbours(tracks).pairs == [("a", "b")]
    u = track_mean_directions(tracks)
    assert np.allclose(np.linalg.norm(u, axis=1), 1.0)
    with pytest.raises(ValueError, match="unknown track keys"):
        match_mutual_neighbours(tracks, cannot_link=[("a", "zz")])
    assert match_mutual_neighbours({"a": _track(0)}).pairs == []


def test_config_names_the_rule():
    assert FinetuneConfig(matching="mutual").matching == "mutual"
    with pytest.raises(ValueError, match="matching"):
        FinetuneConfig(matching="nearest")


def test_union_keeps_every_pair_of_either_rule_once():
    """The Gaussians match a1-a2 (tight, overlapping tracks); mutual neighbours match a1-a2 as
    (a2, a1)-equivalent and b1-b2, whose spread tracks sit too far apart for either Gaussian."""
    from vcn_plugin.ssl.track_gaussians import MatchResult, match_tracks, union_of_matches

    tracks = {"a1": _track(0, n=6, spread=3.0), "a2": _track(1, n=6, spread=3.0), "b1": _track(60), "b2": _track(80)}
    gaussian, mutual = match_tracks(tracks), match_mutual_neighbours(tracks)
    assert gaussian.pairs == [("a1", "a2")]
    assert mutual.pairs == [("a1", "a2"), ("b1", "b2")]
    union = union_of_matches(gaussian, MatchResult(pairs=[("a2", "a1"), ("b1", "b2")], num_tracks=4))
    assert union.pairs == [("a1", "a2"), ("b1", "b2")] and union.num_tracks == 4
    with pytest.raises(ValueError, match="different track counts"):
        union_of_matches(gaussian, MatchResult(num_tracks=3))
    assert FinetuneConfig(matching="gaussian+mutual").matching == "gaussian+mutual"
