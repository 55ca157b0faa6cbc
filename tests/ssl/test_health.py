"""Teacher health numbers on hand-made distributions."""
from __future__ import annotations

import numpy as np
import pytest

from vcn_plugin.ssl.health import teacher_health


def test_uniform_teacher_has_maximal_entropy_and_no_sharpness():
    probs = np.full((6, 8), 1 / 8)
    h = teacher_health(probs, np.array([0, 0, 1, 1, 2, 2]))
    assert h.entropy == pytest.approx(np.log(8)) and h.max_entropy == pytest.approx(np.log(8))
    assert h.sharpness == pytest.approx(1 / 8)
    assert h.face_prototypes == 1 and h.track_prototypes == 1 and h.tracks == 3


def test_one_hot_teacher_counts_prototypes_per_face_and_per_track():
    # tracks 0 and 1 (one person) share prototype 2; track 2 has faces on prototypes 5 and 5 and 1
    argmax = np.array([2, 2, 2, 5, 5, 1])
    face_track = np.array([0, 0, 1, 2, 2, 2])
    probs = np.eye(8)[argmax]
    h = teacher_health(probs, face_track)
    assert h.entropy == pytest.approx(0.0) and h.sharpness == pytest.approx(1.0)
    assert h.face_prototypes == 3 and h.track_prototypes == 2 and h.tracks == 3
    assert h.track_purity == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert h.to_dict()["track_prototypes"] == 2


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="face_track"):
        teacher_health(np.ones((3, 4)) / 4, np.zeros(2))
