"""Face-ID backbones: the dlib ResNet port against dlib, the ONNX converter against onnxruntime.

Run with ``-s`` to see the verification numbers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vcn_plugin.backbones import available_backbones, dlib_model_path, get_backbone
from vcn_plugin.backbones.arcface_onnx import UnsupportedOnnxOpError, load_arcface_onnx
from vcn_plugin.backbones.dlib_resnet import DlibResnet, add_zero_extended
from vcn_plugin.backbones.dlib_serialization import DlibFormatError, DlibReader
from vcn_plugin.stage1.align import align_face

dlib = pytest.importorskip("dlib")
frm = pytest.importorskip("face_recognition_models")
ort = pytest.importorskip("onnxruntime")

MOBILEFACENETS = ("mobilefacenet_128d.onnx", "mobilefacenet_paddlex_128d.onnx")
IMAGES_PER_IDENTITY = 3
MAX_SIDE = 480  # large photos are downscaled before HOG detection (speed)


# --------------------------------------------------------------------------- real faces


def _load_rgb(path: Path) -> np.ndarray:
    import cv2
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    scale = MAX_SIDE / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image


@pytest.fixture(scope="module")
def faces(shared_data: Path) -> dict:
    """A fixed subset of ../shared/data/faces: the first images of each identity, detected by dlib.

    Keys: labels, images, shapes (dlib 5-point), dlib_chips (150), arcface_chips (112,
    aligned from arcface5 points taken from dlib's 68-point model).
    """
    detector = dlib.get_frontal_face_detector()
    predictor5 = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    predictor68 = dlib.shape_predictor(frm.pose_predictor_model_location())
    out: dict[str, list] = {k: [] for k in ("labels", "images", "shapes", "dlib_chips", "arcface_chips")}
    tried = 0
    for folder in sorted(p for p in (shared_data / "faces").iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir())[:IMAGES_PER_IDENTITY]:
            tried += 1
            image = _load_rgb(path)
            rects = detector(image, 1)
            if not rects:
                continue
            rect = max(rects, key=lambda r: r.area())
            shape5 = predictor5(image, rect)
            p68 = np.array([[p.x, p.y] for p in predictor68(image, rect).parts()], float)
            arcface5 = np.stack([p68[36:42].mean(0), p68[42:48].mean(0), p68[30], p68[48], p68[54]])
            points5 = np.array([[p.x, p.y] for p in shape5.parts()], float)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], float)
            out["labels"].append(folder.name)
            out["images"].append(image)
            out["shapes"].append(shape5)
            out["dlib_chips"].append(align_face(image, points5, "dlib5", "dlib", 150, box=box))
            out["arcface_chips"].append(align_face(image, arcface5, "arcface5", "arcface", 112))
    assert len(out["labels"]) >= 0.8 * tried, f"dlib found faces in only {len(out['labels'])} of {tried} images"
    out["dlib_chips"] = np.stack(out["dlib_chips"])
    out["arcface_chips"] = np.stack(out["arcface_chips"])
    out["labels"] = np.array(out["labels"])
    return out


def verification_report(embeddings: np.ndarray, labels: np.ndarray, metric: str, threshold: float | None = None) -> dict:
    """All pairs: ROC AUC, best-threshold balanced accuracy, and accuracies at ``threshold`` (distance)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    if metric == "cosine":
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        distance = 1.0 - unit @ unit.T
    else:
        distance = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=-1)
    i, j = np.triu_indices(len(labels), k=1)
    same, d = labels[i] == labels[j], distance[i, j]
    fpr, tpr, _ = roc_curve(same, -d)
    report = {
        "pairs_same": int(same.sum()),
        "pairs_different": int((~same).sum()),
        "mean_distance_same": float(d[same].mean()),
        "mean_distance_different": float(d[~same].mean()),
        "auc": float(roc_auc_score(same, -d)),
        "best_balanced_accuracy": float(((tpr + 1 - fpr) / 2).max()),
    }
    if threshold is not None:
        accept = d < threshold
        report["accuracy_at_threshold"] = float((accept == same).mean())
        report["balanced_accuracy_at_threshold"] = float((accept[same].mean() + (~accept[~same]).mean()) / 2)
    return report


# --------------------------------------------------------------------------- registry


def test_registry_names_and_errors(tmp_path: Path) -> None:
    assert available_backbones()[0] == "dlib-resnet"
    with pytest.raises(ValueError, match="arcface-onnx:<path>"):
        get_backbone("facenet")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing.onnx")):
        get_backbone(f"arcface-onnx:{tmp_path / 'missing.onnx'}")
    with pytest.raises(FileNotFoundError, match="nowhere.dat"):
        get_backbone("dlib-resnet", path=tmp_path / "nowhere.dat")


def test_dlib_model_path_comes_from_the_package() -> None:
    assert dlib_model_path() == Path(frm.face_recognition_model_location())


# --------------------------------------------------------------------------- dlib port


def test_dlib_reader_primitives() -> None:
    # 0 = 01 00; -28 = 81 1c; 0.04 = mantissa 0xa3d70a (3 bytes) * 2^-28; string "ab"; bools
    reader = DlibReader(bytes([0x01, 0x00, 0x81, 0x1C, 0x03, 0x0A, 0xD7, 0xA3, 0x81, 0x1C, 0x01, 0x02]) + b"ab10")
    assert reader.read_int() == 0
    assert reader.read_int() == -28
    assert reader.read_float() == pytest.approx(0.04, rel=1e-6)
    assert reader.read_string() == "ab"
    assert reader.read_bool() is True and reader.read_bool() is False
    assert reader.at_end


def test_dlib_parser_rejects_truncated_file(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(dlib_model_path().read_bytes()[:100_000])
    with pytest.raises(DlibFormatError, match="unexpected end of data"):
        DlibResnet.from_dlib_file(truncated)


def test_add_prev_zero_extends_smaller_operand() -> None:
    big, small = torch.ones(1, 4, 4, 4), torch.full((1, 2, 3, 3), 2.0)
    out = add_zero_extended(small, big)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, :2, :3, :3].eq(3).all() and out[0, 2:].eq(1).all() and out[0, :, 3].eq(1).all()


@pytest.fixture(scope="module")
def dlib_port() -> DlibResnet:
    model = get_backbone("dlib-resnet")
    assert isinstance(model, DlibResnet)
    return model


def test_dlib_port_architecture(dlib_port: DlibResnet) -> None:
    assert sum(p.numel() for p in dlib_port.parameters()) == 5_614_592
    assert sum(isinstance(m, nn.Conv2d) for m in dlib_port.modules()) == 29
    assert (dlib_port.chip_size, dlib_port.template, dlib_port.embed_dim) == (150, "dlib", 128)
    assert dlib_port.distance_threshold == pytest.approx(0.6)


def test_dlib_port_equals_compute_face_descriptor(dlib_port: DlibResnet, faces: dict) -> None:
    recognizer = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    picks = list(range(0, len(faces["labels"]), max(1, len(faces["labels"]) // 6)))[:6]
    expected = np.array(
        [recognizer.compute_face_descriptor(faces["images"][i], faces["shapes"][i]) for i in picks], dtype=np.float64
    )
    with torch.no_grad():
        got = dlib_port(dlib_port.preprocess(faces["dlib_chips"][picks])).numpy()
    diff = np.abs(got - expected).max()
    print(f"\ndlib port vs compute_face_descriptor on {len(picks)} real faces: max abs diff {diff:.2e}")
    assert diff < 1e-5
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(expected, axis=1), atol=1e-5)


def test_dlib_port_verification(dlib_port: DlibResnet, faces: dict) -> None:
    with torch.no_grad():
        embeddings = dlib_port(dlib_port.preprocess(faces["dlib_chips"])).numpy()
    report = verification_report(embeddings, faces["labels"], "euclidean", threshold=0.6)
    print(f"\ndlib-resnet port, {len(embeddings)} faces: {report}")
    assert report["mean_distance_same"] < 0.6 < report["mean_distance_different"]
    assert report["auc"] > 0.95
    assert report["balanced_accuracy_at_threshold"] > 0.85


def test_dlib_port_backward_reaches_every_parameter(dlib_port: DlibResnet, faces: dict) -> None:
    model = DlibResnet.from_dlib_file(dlib_model_path()).train()
    embeddings = model(model.preprocess(faces["dlib_chips"][:2]))
    (embeddings[0] - embeddings[1]).pow(2).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


def test_dlib_preprocess_rejects_wrong_chips(dlib_port: DlibResnet) -> None:
    with pytest.raises(ValueError, match="align faces first"):
        dlib_port.preprocess(np.zeros((1, 112, 112, 3), np.uint8))


# --------------------------------------------------------------------------- ONNX converter


class _IBasicBlock(nn.Module):
    """insightface's iresnet block: BN -> conv -> BN -> PReLU -> conv -> BN, plus a (downsampled) identity."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.down = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (x if self.down is None else self.down(x))


class _TinyIResNet(nn.Module):
    def __init__(self, embed_dim: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.PReLU(8))
        self.layers = nn.Sequential(_IBasicBlock(8, 16, 2), _IBasicBlock(16, 16, 1), _IBasicBlock(16, 16, 4), _IBasicBlock(16, 16, 7))
        self.bn2, self.dropout = nn.BatchNorm2d(16), nn.Dropout(0.4)
        self.fc, self.features = nn.Linear(16 * 2 * 2, embed_dim), nn.BatchNorm1d(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.bn2(self.layers(self.stem(x))))
        return self.features(self.fc(torch.flatten(x, 1)))


@pytest.fixture(scope="module")
def tiny_iresnet_onnx(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = _TinyIResNet()
    for module in model.modules():  # non-trivial statistics so batch norm matters
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp("onnx") / "tiny_iresnet.onnx"
    torch.onnx.export(
        model.eval(), torch.zeros(1, 3, 112, 112), str(path), dynamo=False, opset_version=17,
        do_constant_folding=False, input_names=["input.1"], output_names=["embedding"],
        dynamic_axes={"input.1": {0: "batch"}, "embedding": {0: "batch"}},
    )
    return path


def _onnxruntime(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    fixed_batch = session.get_inputs()[0].shape[0] == 1
    if fixed_batch:
        return np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
    return session.run(None, {name: x})[0]


def test_converter_matches_onnxruntime_on_exported_iresnet(tiny_iresnet_onnx: Path) -> None:
    backbone = load_arcface_onnx(tiny_iresnet_onnx)
    ops = {n.op_type for n in backbone.graph.nodes}
    assert {"Conv", "BatchNormalization", "PRelu", "Add", "Flatten", "Gemm"} <= ops
    chips = np.random.default_rng(0).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    x = backbone.preprocess(chips)
    with torch.no_grad():
        got = backbone(x).numpy()
    expected = _onnxruntime(tiny_iresnet_onnx, x.numpy())
    print(f"\ntiny iresnet: converter vs onnxruntime max abs diff {np.abs(got - expected).max():.2e}")
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # the features are the input of the fc (flattened 16x2x2), the head is fc + BatchNorm1d
    assert backbone.feature_dim == 64 and backbone.embed_dim == 32


def test_converter_backward_reaches_every_parameter(tiny_iresnet_onnx: Path) -> None:
    backbone = load_arcface_onnx(tiny_iresnet_onnx).train()
    chips = np.random.default_rng(1).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    backbone(backbone.preprocess(chips)).pow(2).sum().backward()
    params = dict(backbone.named_parameters())
    assert len(params) >= 30
    missing = [name for name, p in params.items() if p.grad is None]
    assert not missing, f"no gradient for {missing}"


def test_last_layer_parameters_are_what_the_embedding_layer_trains(
    tiny_iresnet_onnx: Path, dlib_port: DlibResnet
) -> None:
    """``last_layer_parameters`` are exactly the parameters that ``embed_from_features`` reaches:
    the iresnet's fc and BatchNorm1d (weight, bias each), dlib's fc."""
    chips = np.random.default_rng(2).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    for backbone, chips, expected in ((load_arcface_onnx(tiny_iresnet_onnx), chips, 4),
                                      (dlib_port, np.zeros((2, 150, 150, 3), np.uint8), 1)):  # fmt: skip
        backbone.zero_grad(set_to_none=True)
        features = backbone.features(backbone.preprocess(chips)).detach()
        backbone.embed_from_features(features).pow(2).sum().backward()
        reached = [p for p in backbone.parameters() if p.grad is not None]
        last = backbone.last_layer_parameters()
        assert len(last) == expected
        assert {id(p) for p in last} == {id(p) for p in reached}
        backbone.zero_grad(set_to_none=True)


def test_finetune_trains_an_onnx_models_last_layer_on_cached_features(
    tiny_iresnet_onnx: Path, faces: dict
) -> None:
    """The ONNX path end to end: head-only finetuning (no joint stage) with ``last_layer_lr``
    moves exactly the embedding layer (fc + BatchNorm1d) of student and teacher, nothing of the
    trunk, and the teacher's embeddings change with it."""
    from vcn_plugin.ssl import FinetuneConfig, finetune

    backbone = load_arcface_onnx(tiny_iresnet_onnx)
    chips, labels = faces["arcface_chips"], faces["labels"]
    tracks = [(f"{name}/{i}", chips[np.flatnonzero(labels == name)[i::2]])
              for name in np.unique(labels)[:3] for i in range(2)]  # fmt: skip
    config = FinetuneConfig.tiny(device="cpu", rounds=0, head_min_steps=6, head_max_steps=6, last_layer_lr=1e-2)
    model, result = finetune(backbone, tracks, config=config)
    assert result.stage_steps == {"head": 6} and all(np.isfinite(result.loss_curve))
    last = {id(p) for p in backbone.last_layer_parameters()}
    names = {name for name, p in backbone.named_parameters() if id(p) in last}
    pretrained = dict(backbone.named_parameters())
    for side in (model.student_backbone, model.teacher_backbone):
        moved = {name for name, p in side.named_parameters() if not torch.equal(p, pretrained[name])}
        assert moved == names and len(names) == 4
    with torch.no_grad():
        before = backbone(backbone.preprocess(chips[:4]))
    assert not np.allclose(model.embeddings(chips[:4]), before.numpy(), atol=1e-4)


def test_converter_names_unsupported_ops(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Erf", ["r"], ["y"], name="erf_node")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 112, 112])],
    )
    path = tmp_path / "erf.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(UnsupportedOnnxOpError, match="Erf.*erf_node"):
        load_arcface_onnx(path)


@pytest.fixture(scope="module")
def mobilefacenet_embeddings(shared_models: Path, faces: dict) -> dict[str, tuple]:
    """filename -> (path, backbone, torch embeddings of all fixture faces), computed once."""
    out = {}
    for filename in MOBILEFACENETS:
        path = shared_models / "mobilefacenet" / filename
        backbone = get_backbone(f"arcface-onnx:{path}")
        with torch.no_grad():
            out[filename] = (path, backbone, backbone(backbone.preprocess(faces["arcface_chips"])).numpy())
    return out


@pytest.mark.parametrize("filename", MOBILEFACENETS)
def test_mobilefacenet_matches_onnxruntime_on_real_faces(mobilefacenet_embeddings: dict, faces: dict, filename: str) -> None:
    path, backbone, embeddings = mobilefacenet_embeddings[filename]
    assert (backbone.chip_size, backbone.template, backbone.embed_dim) == (112, "arcface", 128)
    x = backbone.preprocess(faces["arcface_chips"][:6])
    with torch.no_grad():
        split = backbone.embed_from_features(backbone.features(x)).numpy()
    expected = _onnxruntime(path, x.numpy())
    diff = np.abs(embeddings[:6] - expected).max()
    print(f"\n{filename}: converter vs onnxruntime on real faces, max abs diff {diff:.2e}")
    np.testing.assert_allclose(embeddings[:6], expected, atol=1e-4)
    np.testing.assert_allclose(split, embeddings[:6], atol=1e-6)


@pytest.mark.parametrize("filename", MOBILEFACENETS)
def test_mobilefacenet_verification(mobilefacenet_embeddings: dict, faces: dict, filename: str) -> None:
    embeddings = mobilefacenet_embeddings[filename][2]
    report = verification_report(embeddings, faces["labels"], "cosine")
    print(f"\n{filename}, {len(embeddings)} faces: {report}")
    assert report["mean_distance_same"] < report["mean_distance_different"]
    assert report["auc"] > 0.95


def test_mobilefacenet_backward_reaches_every_parameter(shared_models: Path, faces: dict) -> None:
    backbone = get_backbone(f"arcface-onnx:{shared_models / 'mobilefacenet' / MOBILEFACENETS[1]}").train()
    backbone(backbone.preprocess(faces["arcface_chips"][:2])).pow(2).sum().backward()
    missing = [name for name, p in backbone.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
