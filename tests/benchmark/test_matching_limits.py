"""``benchmarks/matching_limits.py``: relative sharpness, the gated agreed pairs, the silhouettes."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.scripts import benchmark_script


@pytest.fixture(scope="module")
def limits() -> ModuleType:
    return benchmark_script("matching_limits")


def test_relative_sharpness_is_over_the_sharpest_face_seen_with_it(limits):
    sharpness = np.array([0.2, 0.1, 0.05, 0.3])
    rel = limits.relative_sharpness(sharpness, np.array([[0, 1], [1, 2]]))
    np.testing.assert_allclose(rel, [1.0, 0.5, 0.5, 1.0])  # track 3 is seen alone
    flat = limits.relative_sharpness(np.array([0.0, 0.0, 0.1]), np.array([[0, 1], [1, 2]]))
    assert np.isfinite(flat).all() and flat[0] == 1.0 and flat[1] < 1e-4  # flat crops: defined ratios


def _saved_episode(path: Path) -> None:
    """Four people, two tracks of three faces each in separate shots, and an unlabelled track of
    faces like person 0's; saved as ``finetune_study.py --save-features`` does."""
    rng = np.random.default_rng(0)
    person = np.array([0, 0, 1, 1, 2, 2, 3, 3, 0])
    face_track = np.repeat(np.arange(person.size), 3)
    centres = 4.0 * np.eye(8)[:4]
    z = centres[person[face_track]] + 0.1 * rng.normal(size=(face_track.size, 8))
    prototypes = rng.normal(size=(64, 8))
    logits = z @ prototypes.T / 0.04 / 8
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    identity = np.array(["a", "a", "b", "b", "c", "c", "d", "d", ""])
    np.savez(path, probs=(probs / probs.sum(axis=1, keepdims=True)).astype(np.float32),
             teacher_bottleneck=z.astype(np.float32), teacher_prototypes=prototypes.astype(np.float32),
             temperature=np.float64(0.1), finetuned=z.astype(np.float32), face_track=face_track,
             identity=identity, low_quality=np.zeros(person.size, bool), cooccurring=np.zeros((0, 2), np.int64),
             shots=np.arange(person.size), video=np.array(["ep000.mp4"] * person.size))  # fmt: skip


def test_gate_keeps_an_unsharp_unlabelled_track_out_of_the_pairs(limits, tmp_path):
    _saved_episode(tmp_path / "bench-ep000.npz")
    labels = limits.agreed_partition(limits._load(tmp_path / "bench-ep000.npz"))
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2, 3, 3, 0])  # the extra joins person 0
    cues = {"bench-ep000": {"relative_sharpness": [1.0] * 8 + [0.2]}}
    episode, pooled = limits.gate([tmp_path], cues)
    assert episode[0.0] == (pytest.approx(4 / 6), 1.0)  # the four true pairs and two with the extra
    assert pooled[0.0] == (pytest.approx(4 / 6), 1.0)
    assert episode[0.3] == (1.0, 1.0) and pooled[0.3] == (1.0, 1.0)  # gated out, only the true pairs


def test_silhouettes_score_a_grouped_extra_above_the_truth(limits, tmp_path):
    _saved_episode(tmp_path / "ep.npz")
    s = limits.silhouettes(tmp_path / "ep.npz")
    assert set(s) == {"loss, product", "loss, truth", "cosine, product", "cosine, truth"}
    assert s["loss, product"] > s["loss, truth"]  # the product keeps the extra with person 0
    assert s["cosine, product"] > s["cosine, truth"]


def test_ranks_name_the_track_kept_from_its_person_and_where_its_mates_sit(limits, tmp_path):
    """Person a's third track looks like person b (its faces sit at b's centre, a little towards
    a): the product puts it with b, and in every view its nearest mate comes after b's two tracks."""
    rng = np.random.default_rng(1)
    centres = 4.0 * np.eye(8)[:3]
    track_centre = np.stack([centres[0], centres[0], 0.9 * centres[1] + 0.2 * centres[0], centres[1], centres[1],
                             centres[2], centres[2]])  # fmt: skip
    face_track = np.repeat(np.arange(len(track_centre)), 3)
    z = track_centre[face_track] + 0.05 * rng.normal(size=(face_track.size, 8))
    prototypes = rng.normal(size=(64, 8))
    logits = z @ prototypes.T / 0.04 / 8
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    n = len(track_centre)
    np.savez(tmp_path / "bench-ep000.npz", probs=(probs / probs.sum(axis=1, keepdims=True)).astype(np.float32),
             teacher_bottleneck=z.astype(np.float32), teacher_prototypes=prototypes.astype(np.float32),
             temperature=np.float64(0.1), finetuned=z.astype(np.float32), pretrained=z.astype(np.float32),
             face_track=face_track, identity=np.array(["a", "a", "a", "b", "b", "c", "c"]),
             low_quality=np.zeros(n, bool), cooccurring=np.zeros((0, 2), np.int64), shots=np.arange(n),
             video=np.array(["ep000.mp4"] * n))  # fmt: skip
    rows = limits.mate_ranks(tmp_path / "bench-ep000.npz")
    assert [(r["person"], r["track"]) for r in rows] == [("a", 2)]
    assert rows[0]["finetuned cosine"] == rows[0]["pretrained cosine"] == 2  # behind b's two tracks
    assert rows[0]["loss"] == 2
