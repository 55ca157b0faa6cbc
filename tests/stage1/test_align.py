"""Face chip alignment against dlib and insightface on real faces."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.faces import arcface5_from_68, first_photo_face
from vcn_plugin.backbones import get_backbone
from vcn_plugin.stage1.align import ARCFACE_TEMPLATE_112, align_face, align_faces, alignment_matrix

dlib = pytest.importorskip("dlib")
frm = pytest.importorskip("face_recognition_models")

IDENTITIES = ("lfw_Ariel_Sharon", "lfw_Arnold_Schwarzenegger", "lfw_Donald_Rumsfeld", "dlib_John_Salley", "bbt_raj", "fr_biden")


@pytest.fixture(scope="module")
def faces(shared_data: Path) -> list[dict]:
    """One image per identity with dlib's detection, 5-point shape and arcface5 points from the 68-point model."""
    predictor5 = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    predictor68 = dlib.shape_predictor(frm.pose_predictor_model_location())
    out = []
    for identity in IDENTITIES:
        image, rect = first_photo_face(shared_data / "faces" / identity)
        shape5 = predictor5(image, rect)
        p68 = np.array([[p.x, p.y] for p in predictor68(image, rect).parts()], float)
        out.append(
            {
                "image": image,
                "shape5": shape5,
                "box": np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], float),
                "dlib5": np.array([[p.x, p.y] for p in shape5.parts()], float),
                "arcface5": arcface5_from_68(p68),
            }
        )
    return out


def test_dlib_template_is_dlibs_own_chip(faces: list[dict]) -> None:
    for face in faces:
        expected = np.asarray(dlib.get_face_chip(face["image"], face["shape5"], size=150, padding=0.25))
        np.testing.assert_array_equal(align_face(face["image"], face["dlib5"], "dlib5", "dlib", 150, box=face["box"]), expected)
        # the rectangle does not move dlib's chip, so the points' bounding box may stand in for it
        np.testing.assert_array_equal(align_face(face["image"], face["dlib5"], "dlib5", "dlib", 150), expected)


def test_arcface_template_is_insightface_norm_crop(faces: list[dict]) -> None:
    from insightface.utils.face_align import norm_crop

    for face in faces:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # insightface uses skimage's deprecated estimate()
            expected = norm_crop(face["image"], face["arcface5"], image_size=112)
        got = align_face(face["image"], face["arcface5"], "arcface5", "arcface", 112)
        assert np.abs(got.astype(int) - expected).max() <= 1  # float32 vs float64 landmarks


def test_dlib5_to_arcface_places_independent_eye_landmarks_on_the_template(faces: list[dict]) -> None:
    """The 68-point model's eye centres (not used for the fit) land on insightface's template eyes."""
    errors = []
    for face in faces:
        matrix = alignment_matrix(face["dlib5"], "dlib5", "arcface", 112)
        eyes = face["arcface5"][:2] @ matrix[:, :2].T + matrix[:, 2]
        errors.append(np.linalg.norm(eyes - ARCFACE_TEMPLATE_112[:2], axis=1).max())
    print(f"\ndlib5 -> arcface: eye placement error (px at 112) per face {np.round(errors, 2)}")
    assert max(errors) < 5.0


def test_cross_format_chips_keep_identity(faces: list[dict], shared_models: Path) -> None:
    """A chip aligned from the other format embeds like the native one (same face, same network)."""
    dlib_port = get_backbone("dlib-resnet")
    mobilefacenet = get_backbone(f"arcface-onnx:{shared_models / 'mobilefacenet' / 'mobilefacenet_paddlex_128d.onnx'}")
    native_dlib = np.stack([align_face(f["image"], f["dlib5"], "dlib5", "dlib", 150) for f in faces])
    cross_dlib = np.stack([align_face(f["image"], f["arcface5"], "arcface5", "dlib", 150) for f in faces])
    native_arc = np.stack([align_face(f["image"], f["arcface5"], "arcface5", "arcface", 112) for f in faces])
    cross_arc = np.stack([align_face(f["image"], f["dlib5"], "dlib5", "arcface", 112) for f in faces])
    with torch.no_grad():
        a, b = (dlib_port(dlib_port.preprocess(c)).numpy() for c in (native_dlib, cross_dlib))
        c, d = (torch.nn.functional.normalize(mobilefacenet(mobilefacenet.preprocess(x))).numpy() for x in (native_arc, cross_arc))
    dlib_distance = np.linalg.norm(a - b, axis=1)
    cosine = (c * d).sum(axis=1)
    print(f"\narcface5->dlib chip vs dlib chip, dlib distance {np.round(dlib_distance, 3)}")
    print(f"dlib5->arcface chip vs arcface chip, MobileFaceNet cosine {np.round(cosine, 3)}")
    assert dlib_distance.max() < 0.6  # dlib's same-person threshold
    assert cosine.min() > 0.6


def test_align_faces_batches_align_face(faces: list[dict]) -> None:
    face = faces[0]
    landmarks = np.stack([face["arcface5"], face["arcface5"] + 3.0])
    chips = align_faces(face["image"], landmarks, "arcface5", "arcface", 112)
    assert chips.shape == (2, 112, 112, 3) and chips.dtype == np.uint8
    for chip, points in zip(chips, landmarks):
        np.testing.assert_array_equal(chip, align_face(face["image"], points, "arcface5", "arcface", 112))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"landmark_format": "mtcnn5"}, "unknown landmark_format"),
        ({"template": "facenet"}, "unknown template"),
        ({"landmarks": np.zeros((68, 2))}, r"shape \(5, 2\)"),
        ({"image_rgb": np.zeros((50, 50), np.uint8)}, "uint8 RGB image"),
        ({"landmarks": np.zeros((5, 2))}, "degenerate landmarks"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs: dict, message: str) -> None:
    args = {
        "image_rgb": np.zeros((50, 50, 3), np.uint8),
        "landmarks": ARCFACE_TEMPLATE_112 / 3,
        "landmark_format": "arcface5",
        "template": "arcface",
        "chip_size": 112,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        align_face(**args)
