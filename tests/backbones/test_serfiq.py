"""SER-FIQ quality on real faces: degraded versions of a face score lower than the original."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.faces import arcface5_from_68, first_photo_face
from vcn_plugin.backbones import get_backbone
from vcn_plugin.backbones.serfiq import SerFiqConfig, serfiq_quality
from vcn_plugin.stage1.align import align_face

dlib = pytest.importorskip("dlib")
frm = pytest.importorskip("face_recognition_models")
cv2 = pytest.importorskip("cv2")

IDENTITIES = ("lfw_Vladimir_Putin", "lfw_Jacques_Chirac", "dlib_John_Shimkus", "bbt_leonard", "deepface_id07", "fr_kit_harington")
DEGRADATIONS = ("blurred", "tiny", "occluded")


def degrade(chip: np.ndarray) -> dict[str, np.ndarray]:
    """Gaussian blur (sigma 4 px), 10x down- then upscaled, and the eye band blacked out."""
    side = chip.shape[0]
    occluded = chip.copy()
    occluded[side // 4 : side * 3 // 5] = 0
    small = cv2.resize(chip, (side // 10, side // 10), interpolation=cv2.INTER_AREA)
    return {
        "blurred": cv2.GaussianBlur(chip, (0, 0), 4),
        "tiny": cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR),
        "occluded": occluded,
    }


@pytest.fixture(scope="module")
def arcface_chips(shared_data: Path) -> np.ndarray:
    """112x112 ArcFace chips of one image per identity (arcface5 points from dlib's 68-point model)."""
    predictor68 = dlib.shape_predictor(frm.pose_predictor_model_location())
    chips = []
    for identity in IDENTITIES:
        image, rect = first_photo_face(shared_data / "faces" / identity)
        arcface5 = arcface5_from_68(np.array([[p.x, p.y] for p in predictor68(image, rect).parts()], float))
        chips.append(align_face(image, arcface5, "arcface5", "arcface", 112))
    return np.stack(chips)


@pytest.fixture(scope="module")
def mobilefacenet(shared_models: Path):
    return get_backbone(f"arcface-onnx:{shared_models / 'mobilefacenet' / 'mobilefacenet_paddlex_128d.onnx'}")


def test_degraded_faces_score_lower(mobilefacenet, arcface_chips: np.ndarray) -> None:
    batch = np.concatenate([arcface_chips] + [np.stack([degrade(c)[k] for c in arcface_chips]) for k in DEGRADATIONS])
    quality = serfiq_quality(mobilefacenet, batch).reshape(1 + len(DEGRADATIONS), len(arcface_chips))
    print("\nSER-FIQ (MobileFaceNet) original vs " + ", ".join(DEGRADATIONS) + ":\n" + np.array2string(quality.T, precision=4))
    assert ((quality > 0) & (quality <= 1)).all()
    for k, name in enumerate(DEGRADATIONS, start=1):
        assert (quality[k] < quality[0]).all(), f"{name} faces did not all score below the originals"


def test_quality_is_deterministic_and_stable_across_seeds(mobilefacenet, arcface_chips: np.ndarray) -> None:
    first = serfiq_quality(mobilefacenet, arcface_chips[:3], seed=7)
    np.testing.assert_array_equal(first, serfiq_quality(mobilefacenet, arcface_chips[:3], seed=7))
    other_seed = serfiq_quality(mobilefacenet, arcface_chips[:3], seed=8)
    assert not np.array_equal(first, other_seed)
    assert np.abs(first - other_seed).max() < 5e-3  # m = 100 passes make the estimate stable


def test_preprocessed_tensor_input_equals_chip_input(mobilefacenet, arcface_chips: np.ndarray) -> None:
    from_chips = serfiq_quality(mobilefacenet, arcface_chips[:2], passes=10)
    from_tensor = serfiq_quality(mobilefacenet, mobilefacenet.preprocess(arcface_chips[:2]), passes=10)
    np.testing.assert_allclose(from_tensor, from_chips, rtol=1e-6)


def test_dlib_port_on_top_quality_runs_in_range(shared_data: Path) -> None:
    """The on-top form for dlib: one trunk pass, dropout on the 256-d pooled features, fc repeated."""
    from PIL import Image

    backbone = get_backbone("dlib-resnet").train()
    chip = np.asarray(Image.open(sorted((shared_data / "faces" / "dlib_John_Salley").iterdir())[0]).convert("RGB"))
    chip = cv2.resize(chip, (150, 150), interpolation=cv2.INTER_AREA)
    quality = serfiq_quality(backbone, chip[None], passes=20)
    assert quality.shape == (1,) and 0 < quality[0] <= 1
    assert backbone.training, "serfiq_quality must restore the backbone's train/eval mode"


@pytest.mark.parametrize(
    "kwargs, message",
    [({"passes": 1}, "passes must be >= 2"), ({"dropout": 1.0}, r"dropout must be in \(0, 1\)"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_settings_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SerFiqConfig(**kwargs)
