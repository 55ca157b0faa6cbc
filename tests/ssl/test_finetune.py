"""End-to-end tiny finetuning on real face chips, the head, augmentations and checkpoints."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from vcn_plugin.backbones.base import Backbone
from vcn_plugin.ssl import DINOHead, FinetuneConfig, SSLModel, augment_chips, finetune
from vcn_plugin.ssl.augment import AugmentConfig

CHIP = 24
IDENTITIES = ("lfw_George_W_Bush", "lfw_Vladimir_Putin", "lfw_Donald_Rumsfeld")


class TinyBackbone(Backbone):
    """A small real conv net standing in for a face-ID backbone (fast on 2 CPU cores)."""

    name: ClassVar[str] = "tiny-test"
    chip_size: ClassVar[int] = CHIP
    template: ClassVar[str] = "arcface"
    embed_dim: ClassVar[int] = 16

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.fc = nn.Linear(8 * 4 * 4, self.embed_dim)

    def preprocess(self, chips: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float()
        return ((x - 127.5) / 128.0).to(self.device)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(1)

    def embed_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f)

    def last_layer_parameters(self) -> list[nn.Parameter]:
        return list(self.fc.parameters())


def make_backbone(seed: int = 123) -> TinyBackbone:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TinyBackbone().eval()


def face_chips(folder: Path, size: int = CHIP) -> np.ndarray:
    """Centre crops of real face photos, resized to ``size`` (LFW faces sit in the centre)."""
    chips = []
    for path in sorted(folder.glob("*.jpg")):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        h, w = image.shape[:2]
        side = int(0.45 * min(h, w))
        top, left = (h - side) // 2, (w - side) // 2
        chips.append(cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(chips)


@pytest.fixture(scope="module")
def tracks(shared_data: Path) -> list[tuple[str, np.ndarray]]:
    """Six tracks: two of four chips per identity."""
    out = []
    for identity in IDENTITIES:
        chips = face_chips(shared_data / "faces" / identity)
        out += [(f"{identity}/0", chips[:4]), (f"{identity}/1", chips[4:8])]
    return out


@pytest.fixture(scope="module")
def trained(tracks: list) -> tuple[SSLModel, object, list]:
    calls: list = []
    model, result = finetune(
        make_backbone(), tracks, config=FinetuneConfig.tiny(device="cpu"),
        progress=lambda stage, step, total, info: calls.append((stage, step, total, dict(info))),
    )
    return model, result, calls


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_finetune_changes_the_model_and_reports(trained: tuple, tracks: list) -> None:
    model, result, calls = trained
    pretrained = make_backbone()
    changed = [k for k, v in pretrained.state_dict().items() if not torch.equal(v, model.student_backbone.state_dict()[k])]
    assert changed, "the joint stage must move the backbone"
    teacher_changed = [k for k, v in pretrained.state_dict().items() if not torch.equal(v, model.teacher_backbone.state_dict()[k])]
    assert teacher_changed, "the teacher backbone follows the student by EMA"
    assert not torch.equal(model.center, torch.zeros_like(model.center))
    config = FinetuneConfig.tiny()
    assert len(result.loss_curve) == config.head_max_steps + config.rounds * (config.round_head_steps + config.joint_max_steps_per_round)
    assert all(np.isfinite(result.loss_curve))
    assert result.stage_of_step.count("joint") == config.rounds * config.joint_max_steps_per_round
    assert len(result.match_counts) == config.rounds
    assert set(result.stage_seconds) == {"cache", "head", "match", "joint", "health"}
    assert result.device == "cpu" and result.num_tracks == 6 and result.num_chips == 24
    assert set(result.to_dict()["steps_per_second"]) == {"head", "joint"}
    stages = [c[0] for c in calls]
    assert {"cache", "head", "match", "joint"} <= set(stages)
    joint = [c for c in calls if c[0] == "joint"]
    assert joint[-1][:3] == ("joint", 3, 3) and "loss" in joint[-1][3] and joint[-1][3]["round"] == 1
    assert calls[-1][0] == "health" and calls[-1][1] == calls[-1][2]
    # health: the teacher after the head stage and after each round; the pairs behind match_counts
    assert [h["after"] for h in result.health] == ["head", "joint 1"]
    for h in result.health:
        assert 0.0 <= h["entropy"] <= h["max_entropy"] == pytest.approx(np.log(config.num_prototypes))
        assert h["tracks"] == 6 and 1 <= h["track_prototypes"] <= 6 and 0.0 < h["track_purity"] <= 1.0
    assert [len(p) for p in result.match_pairs] == result.match_counts
    keys = {k for k, _ in tracks}
    assert all(a in keys and b in keys for pairs in result.match_pairs for a, b in pairs)
    # the caller's backbone is never modified
    assert all(torch.equal(v, make_backbone().state_dict()[k]) for k, v in pretrained.state_dict().items())


def test_same_seed_same_model(trained: tuple, tracks: list) -> None:
    model, result, _ = trained
    again, result_again = finetune(make_backbone(), tracks, config=FinetuneConfig.tiny(device="cpu"))
    first, second = _weights(model), _weights(again)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert result.loss_curve == result_again.loss_curve
    other, _ = finetune(make_backbone(), tracks, config=FinetuneConfig.tiny(device="cpu", seed=1))
    assert not all(torch.equal(first[k], v) for k, v in _weights(other).items())


def test_save_load_gives_identical_outputs(trained: tuple, tracks: list, tmp_path: Path) -> None:
    model = trained[0]
    chips = np.concatenate([c for _, c in tracks])
    path = model.save(tmp_path / "models" / "ssl.pt")
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    loaded = SSLModel.load(path, backbone=make_backbone(seed=7))
    p, log_q = model.head_outputs(chips)
    p2, log_q2 = loaded.head_outputs(chips)
    assert p.shape == log_q.shape == (len(chips), FinetuneConfig.tiny().num_prototypes)
    assert np.array_equal(p, p2) and np.array_equal(log_q, log_q2)
    # another batch size only changes float summation order
    p5, log_q5 = loaded.head_outputs(chips, batch_size=5)
    assert np.allclose(p, p5, atol=1e-5) and np.allclose(log_q, log_q5, atol=1e-4)
    assert np.allclose(p.sum(1), 1.0, atol=1e-5) and np.allclose(np.exp(log_q).sum(1), 1.0, atol=1e-5)
    assert np.array_equal(model.embeddings(chips), loaded.embeddings(chips))
    assert loaded.config == model.config


def test_head_outputs_follow_the_definition(trained: tuple, tracks: list) -> None:
    model = trained[0]
    chips = tracks[0][1]
    p, log_q = model.head_outputs(chips)
    with torch.no_grad():
        x = model.teacher_backbone.preprocess(chips)
        t = model.teacher_head(model.teacher_backbone(x))
        s = model.student_head(model.student_backbone(x))
    want_p = torch.softmax((t - model.center) / model.config.teacher_temp, dim=1).numpy()
    want_log_q = torch.log_softmax(s / model.config.student_temp, dim=1).numpy()
    assert np.allclose(p, want_p, atol=1e-6) and np.allclose(log_q, want_log_q, atol=1e-5)


def test_load_rejects_wrong_backbone_and_missing_file(trained: tuple, tmp_path: Path) -> None:
    path = trained[0].save(tmp_path / "ssl.pt")

    class OtherBackbone(TinyBackbone):
        name: ClassVar[str] = "other"

    with pytest.raises(ValueError, match="backbone 'tiny-test'"):
        SSLModel.load(path, backbone=OtherBackbone())
    with pytest.raises(FileNotFoundError, match="no SSL checkpoint"):
        SSLModel.load(tmp_path / "missing.pt", backbone=make_backbone())
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(ValueError, match="not a vcn-ssl-v1 checkpoint"):
        SSLModel.load(bad, backbone=make_backbone())


def test_single_chip_tracks_train_on_two_augmentations(tracks: list) -> None:
    singles = [(key, chips[:1]) for key, chips in tracks[:3]]
    model, result = finetune(make_backbone(), singles, config=FinetuneConfig.tiny(device="cpu", rounds=1, matching="gaussian"))
    assert result.match_counts == [0]  # one face per track: no Gaussian can be fitted
    assert all(np.isfinite(result.loss_curve))
    _, result = finetune(make_backbone(), singles, config=FinetuneConfig.tiny(device="cpu", rounds=1))  # the default matching
    assert len(result.match_counts) == 1
    assert all(np.isfinite(result.loss_curve))


@pytest.mark.parametrize(
    "make_tracks, error, message",
    [
        (lambda t: [], ValueError, "at least 2 tracks, got 0"),
        (lambda t: t[:1], ValueError, "at least 2 tracks, got 1"),
        (lambda t: [t[0], (t[1][0], t[1][1][:0])], ValueError, "has no chips"),
        (lambda t: [t[0], t[0]], ValueError, "appears twice"),
        (lambda t: [t[0], (t[1][0], np.zeros((2, 30, 30, 3), np.uint8))], ValueError, "expects 24x24"),
        (lambda t: [t[0], (t[1][0], t[1][1].astype(np.float32))], ValueError, "uint8"),
    ],
)
def test_bad_tracks_are_refused(tracks: list, make_tracks, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        finetune(make_backbone(), make_tracks(tracks), config=FinetuneConfig.tiny(device="cpu"))


def test_bad_cannot_link_and_config_are_refused(tracks: list) -> None:
    with pytest.raises(ValueError, match="not a pair of track keys"):
        finetune(make_backbone(), tracks, cannot_link=[("nope", tracks[0][0])], config=FinetuneConfig.tiny())
    with pytest.raises(ValueError, match="device must be one of"):
        FinetuneConfig(device="tpu")
    with pytest.raises(ValueError, match="min_faces_to_fit"):
        FinetuneConfig(min_faces_to_fit=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is absent")
def test_cuda_requested_without_cuda_is_a_clear_error(tracks: list) -> None:
    with pytest.raises(RuntimeError, match="no CUDA GPU.*device='cpu'"):
        finetune(make_backbone(), tracks, config=FinetuneConfig.tiny(device="cuda"))


def test_steps_scale_with_data_and_are_capped() -> None:
    config = FinetuneConfig()
    assert config.steps_per_epoch(400) == 13
    assert config.head_steps(10) == config.head_min_steps
    assert config.head_steps(400) == min(30 * 13, config.head_max_steps)
    assert config.joint_steps_per_round(10_000) == config.joint_max_steps_per_round
    assert FinetuneConfig.from_dict(config.to_dict()) == config


def test_head_shape_and_normalised_prototypes() -> None:
    head = DINOHead(16, num_prototypes=32, hidden_dim=24, bottleneck_dim=8, generator=torch.Generator().manual_seed(0))
    out = head(torch.randn(5, 16))
    assert out.shape == (5, 32)
    # logits are cosines between the L2-normalised bottleneck and unit-norm prototypes
    assert out.abs().max() <= 1.0 + 1e-5
    assert torch.allclose(head.last_layer.weight.norm(dim=1), torch.ones(32), atol=1e-5)
    assert [p.shape for p in head.last_layer_parameters()] == [torch.Size([32, 8])]
    with pytest.raises(ValueError, match=r"head input must be \(B, 16\)"):
        head(torch.randn(5, 15))


def test_augmentations_are_seeded_and_mild(tracks: list) -> None:
    chips = torch.from_numpy(np.concatenate([c for _, c in tracks]))
    a = augment_chips(chips, torch.Generator().manual_seed(3))
    b = augment_chips(chips, torch.Generator().manual_seed(3))
    c = augment_chips(chips, torch.Generator().manual_seed(4))
    assert a.dtype == torch.uint8 and a.shape == chips.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    identity = AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert torch.equal(augment_chips(chips, torch.Generator().manual_seed(3), identity), chips)
    flip_only = AugmentConfig(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert torch.equal(augment_chips(chips, torch.Generator().manual_seed(3), flip_only), chips.flip(2))
    # colour temperature: red up and blue down (or the reverse) on every chip
    warm = AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.12, 0.0, 0.0)
    shifted = augment_chips(chips, torch.Generator().manual_seed(3), warm).float().mean(dim=(1, 2))
    base = chips.float().mean(dim=(1, 2))
    red, blue = shifted[:, 0] - base[:, 0], shifted[:, 2] - base[:, 2]
    assert ((red * blue) <= 0).all() and (red.abs() > 0).any()
    with pytest.raises(ValueError, match="uint8 tensor"):
        augment_chips(chips.float(), torch.Generator())


def test_photometric_augmentations_do_what_they_name(tracks: list) -> None:
    chips = torch.from_numpy(np.concatenate([c for _, c in tracks]))
    still = dict(flip_prob=0.0, max_rotation_deg=0.0, max_zoom=0.0, max_shift=0.0, max_temperature=0.0,
                 max_brightness=0.0, max_contrast=0.0)
    # off by default: the default batch is the one drawn before these options existed
    assert AugmentConfig() == AugmentConfig(max_saturation=0.0, grayscale_prob=0.0, blur_prob=0.0, max_grain=0.0)
    gray = augment_chips(chips, torch.Generator().manual_seed(0), AugmentConfig(**still, grayscale_prob=1.0)).int()
    assert (gray.max(dim=-1).values - gray.min(dim=-1).values).max() <= 1  # R = G = B up to rounding
    luma = (chips.float() * torch.tensor([0.299, 0.587, 0.114])).sum(-1)
    assert (gray[..., 0].float() - luma).abs().max() <= 1
    blurred = augment_chips(chips, torch.Generator().manual_seed(0), AugmentConfig(**still, blur_prob=1.0, max_blur_sigma=2.0))
    def roughness(x: torch.Tensor) -> torch.Tensor:
        return x.float().diff(dim=1).abs().mean(dim=(1, 2, 3))
    # no chip is rougher; sigma is drawn from [0.1, 2], and below ~0.3 the blur rounds away
    assert (roughness(blurred) <= roughness(chips)).all() and (roughness(blurred) < 0.8 * roughness(chips)).sum() >= len(chips) // 2
    assert (blurred.float().mean(dim=(1, 2, 3)) - chips.float().mean(dim=(1, 2, 3))).abs().max() < 2  # brightness kept
    grainy = augment_chips(chips, torch.Generator().manual_seed(0), AugmentConfig(**still, max_grain=0.05))
    assert not torch.equal(grainy, chips) and (grainy.float() - chips.float()).abs().mean() < 0.05 * 255
    vivid = augment_chips(chips, torch.Generator().manual_seed(0), AugmentConfig(**still, max_saturation=0.5))
    spread = lambda x: (x.float() - x.float().mean(-1, keepdim=True)).abs().mean(dim=(1, 2, 3))  # noqa: E731
    assert not torch.allclose(spread(vivid), spread(chips), atol=0.5)
    strong = AugmentConfig(max_saturation=0.4, grayscale_prob=0.2, blur_prob=0.5, max_grain=0.03)
    assert torch.equal(augment_chips(chips, torch.Generator().manual_seed(5), strong),
                       augment_chips(chips, torch.Generator().manual_seed(5), strong))
    for bad, match in (({"grayscale_prob": 1.5}, "grayscale_prob"), ({"max_saturation": 1.0}, "max_saturation"),
                       ({"max_grain": -0.1}, "max_grain"), ({"max_blur_sigma": 0.0}, "max_blur_sigma")):
        with pytest.raises(ValueError, match=match):
            AugmentConfig(**bad)


def test_interrupted_save_keeps_the_previous_checkpoint(trained: tuple, tmp_path: Path, monkeypatch) -> None:
    model = trained[0]
    path = model.save(tmp_path / "ssl.pt")
    before = path.read_bytes()

    def broken_save(*args, **kwargs) -> None:
        raise KeyboardInterrupt("interrupted while writing")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ssl.pt"]


def test_loss_features_factor_the_student_exactly(trained: tuple, tracks: list) -> None:
    """The factored student (bottleneck, prototypes, temperature) gives the same log-probabilities
    and the clustering statistics built from it the same distances and thresholds."""
    from vcn_plugin.clustering import FactoredLossStats, LossMetricStats

    model = trained[0]
    chips = np.concatenate([c for _, c in tracks])
    face_track = np.repeat(np.arange(len(tracks)), [len(c) for _, c in tracks])
    p, log_q = model.head_outputs(chips)
    p2, student = model.loss_features(chips, predictor="student")
    assert np.array_equal(p, p2)
    assert student.prototypes.shape == (model.config.num_prototypes, student.bottleneck.shape[1])
    assert np.allclose(student.log_probs(), log_q, atol=1e-4)
    dense = LossMetricStats.from_faces(p, log_q, face_track, center_student=True)
    factored = FactoredLossStats.from_faces(p, student, face_track, center_student=True)
    rows = np.arange(len(tracks))
    assert np.allclose(factored.distances(rows, factored, rows), dense.distances(rows, dense, rows), rtol=1e-4, atol=1e-3)
    assert np.allclose(factored.thresholds(), dense.thresholds(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("predictor", ["teacher", "student"])
def test_clustering_features_add_the_embeddings_of_the_same_pass(trained: tuple, tracks: list, predictor: str) -> None:
    """What the clustering reads in one forward pass: the loss features of ``loss_features`` and the
    teacher backbone's embeddings of ``embeddings`` (the start's agreement view)."""
    model = trained[0]
    chips = np.concatenate([c for _, c in tracks])
    p, factors = model.loss_features(chips, predictor=predictor)
    p2, factors2, emb = model.clustering_features(chips, predictor=predictor)
    assert np.array_equal(p, p2)
    assert np.array_equal(factors.bottleneck, factors2.bottleneck)
    assert np.array_equal(factors.prototypes, factors2.prototypes)
    assert emb.shape == (len(chips), model.teacher_backbone.embed_dim)
    assert np.allclose(emb, model.embeddings(chips), atol=1e-5)
    assert model.clustering_features(chips, predictor=predictor, embeddings=False)[2] is None


def test_teacher_predictor_is_the_teacher_head_at_the_student_temperature(trained: tuple, tracks: list) -> None:
    """predictor="teacher" (the default): the factors are the teacher head's, at the student
    temperature, so after the metric's centring the loss equals the one computed from the teacher's
    probabilities alone (``log p * temp_t / temp_s``: the identity ``benchmarks/cluster_rules.py``
    uses for older saved features), and differs from the student's."""
    from scipy.special import log_softmax

    from vcn_plugin.clustering import FactoredLossStats, LossMetricStats
    from vcn_plugin.core.student_factors import DEFAULT_PREDICTOR

    assert DEFAULT_PREDICTOR == "teacher"
    model = trained[0]
    config = model.config
    chips = np.concatenate([c for _, c in tracks])
    face_track = np.repeat(np.arange(len(tracks)), [len(c) for _, c in tracks])
    p, teacher = model.loss_features(chips)
    _, student = model.loss_features(chips, predictor="student")
    assert teacher.temperature == student.temperature == config.student_temp
    from_probs = log_softmax(np.log(p.astype(np.float64)) * config.teacher_temp / config.student_temp, axis=1)
    dense = LossMetricStats.from_faces(p, from_probs.astype(np.float32), face_track, center_student=True)
    factored = FactoredLossStats.from_faces(p, teacher, face_track, center_student=True)
    rows = np.arange(len(tracks))
    assert np.allclose(factored.distances(rows, factored, rows), dense.distances(rows, dense, rows), rtol=1e-4, atol=1e-3)
    assert np.allclose(factored.thresholds(), dense.thresholds(), rtol=1e-4, atol=1e-3)
    with_student = FactoredLossStats.from_faces(p, student, face_track, center_student=True)
    assert not np.allclose(with_student.distances(rows, with_student, rows), factored.distances(rows, factored, rows), atol=1e-3)
    with pytest.raises(ValueError, match="predictor must be one of"):
        model.loss_features(chips, predictor="ema")


def test_track_prototype_init_starts_the_teacher_sharp_on_each_track(tracks: list) -> None:
    """prototype_init="tracks": after one head step (prototypes frozen in the first epoch), each
    track has its own argmax prototype; with DINO's random prototypes, tracks share theirs."""

    def first_health(init: str) -> dict:
        config = FinetuneConfig.tiny(device="cpu", prototype_init=init, head_min_steps=1, head_max_steps=1,
                                     rounds=0, freeze_last_layer_epochs=1)  # fmt: skip
        return finetune(make_backbone(), tracks, config=config)[1].health[0]

    ours, dino = first_health("tracks"), first_health("random")
    # every face's argmax is a track prototype, and every track has its own
    assert ours["face_prototypes"] == ours["track_prototypes"] == ours["tracks"] == 6
    assert dino["track_prototypes"] < 6  # random prototypes: tracks share their argmax
    with pytest.raises(ValueError, match="prototype_init"):
        FinetuneConfig(prototype_init="kmeans")


def test_round_and_final_head_steps_train_the_head_on_each_rounds_matches(tracks: list) -> None:
    config = FinetuneConfig.tiny(device="cpu", round_head_steps=2, rounds=2, final_head_steps=3)
    calls: list = []
    _, result = finetune(make_backbone(), tracks, config=config,
                         progress=lambda stage, step, total, info: calls.append((stage, dict(info))))  # fmt: skip
    per_round = ["head"] * 2 + ["joint"] * config.joint_max_steps_per_round
    assert result.stage_of_step == ["head"] * config.head_max_steps + per_round * 2 + ["head"] * 3
    assert result.stage_steps["head"] == config.head_max_steps + 2 * 2 + 3
    assert {info["round"] for stage, info in calls if stage == "head"} == {0, 1, 2}
    for name in ("round_head_steps", "final_head_steps"):
        with pytest.raises(ValueError, match=name):
            FinetuneConfig(**{name: -1})


def test_union_matching_finds_every_pair_of_its_two_rules(tracks: list) -> None:
    """matching="gaussian+mutual": each round's pairs are those of the Gaussians and of mutual
    neighbours, each once (the three runs share the seed, so round 1 sees the same views)."""
    pairs = {}
    for rule in ("gaussian", "mutual", "gaussian+mutual"):
        _, result = finetune(make_backbone(), tracks, config=FinetuneConfig.tiny(device="cpu", matching=rule))
        pairs[rule] = {frozenset(p) for p in result.match_pairs[0]}
    assert pairs["gaussian+mutual"] == pairs["gaussian"] | pairs["mutual"]
    assert pairs["mutual"], "six tracks always have a mutual nearest pair"


def test_round_teacher_backbone_is_the_students_after_each_round(tracks: list) -> None:
    """teacher_backbone="round": after the run the teacher backbone holds the student's weights
    exactly; with "ema" it has moved only part of the way from the pretrained weights."""
    models = {}
    for rule in ("round", "ema"):
        models[rule], _ = finetune(make_backbone(), tracks, config=FinetuneConfig.tiny(device="cpu", teacher_backbone=rule))
    student, teacher = (_weights(models["round"].student_backbone), _weights(models["round"].teacher_backbone))
    assert all(torch.equal(student[k], teacher[k]) for k in student)
    student, teacher = (_weights(models["ema"].student_backbone), _weights(models["ema"].teacher_backbone))
    assert any(not torch.equal(student[k], teacher[k]) for k in student)
    with pytest.raises(ValueError, match="teacher_backbone"):
        FinetuneConfig(teacher_backbone="copy")


def test_last_layer_lr_trains_the_backbones_last_layer_in_the_head_stage(tracks: list) -> None:
    """With ``last_layer_lr`` > 0 the head-only steps (no joint stage here) move the student's
    last layer and, by EMA, the teacher's, and nothing else of either backbone; at 0 the
    backbones stay the pretrained ones."""
    pretrained = _weights(make_backbone())
    for lr in (0.0, 1e-2):
        config = FinetuneConfig.tiny(device="cpu", rounds=0, head_min_steps=6, head_max_steps=6, last_layer_lr=lr,
                                     teacher_momentum=0.9)  # fmt: skip
        model, result = finetune(make_backbone(), tracks, config=config)
        assert result.stage_steps == {"head": 6} and all(np.isfinite(result.loss_curve))
        student, teacher = _weights(model.student_backbone), _weights(model.teacher_backbone)
        moved = {side: sorted(k for k in pretrained if not torch.equal(pretrained[k], w[k]))
                 for side, w in (("student", student), ("teacher", teacher))}  # fmt: skip
        assert moved == ({"student": [], "teacher": []} if lr == 0 else {"student": ["fc.bias", "fc.weight"],
                                                                          "teacher": ["fc.bias", "fc.weight"]})
        if lr:
            assert not torch.equal(student["fc.weight"], teacher["fc.weight"]), "the teacher follows by EMA, not a copy"
    with pytest.raises(ValueError, match="last_layer_lr"):
        FinetuneConfig(last_layer_lr=-1e-4)


def test_stage_momentum_moves_the_teacher_head_in_late_stages(tracks: list) -> None:
    """momentum_schedule="stage" restarts the EMA momentum's cosine in every stage, so the round
    steps (late in the run) move the teacher head further from where the head stage left it."""
    moved = {}
    for schedule in ("run", "stage"):
        head_only = FinetuneConfig.tiny(device="cpu", momentum_schedule=schedule, teacher_momentum=0.9, rounds=0)
        full = FinetuneConfig.tiny(device="cpu", momentum_schedule=schedule, teacher_momentum=0.9, round_head_steps=6)
        before = _weights(finetune(make_backbone(), tracks, config=head_only)[0].teacher_head)
        after = _weights(finetune(make_backbone(), tracks, config=full)[0].teacher_head)
        moved[schedule] = sum(float((after[k] - before[k]).norm()) for k in before)
    assert moved["stage"] > moved["run"] > 0
    with pytest.raises(ValueError, match="momentum_schedule"):
        FinetuneConfig(momentum_schedule="epoch")


def test_finetune_track_set_progress_is_monotone_with_round_and_final_head_steps(tracks: list) -> None:
    from vcn_plugin.fo.chips import TrackFaces
    from vcn_plugin.fo.track_sets import TrackSet
    from vcn_plugin.steps import finetune as step

    fractions: list[float] = []
    config = FinetuneConfig.tiny(device="cpu", final_head_steps=2, rounds=2)
    faces = [TrackFaces("video", i, list(range(len(chips))), [""] * len(chips), [1.0] * len(chips), chips)
             for i, (_, chips) in enumerate(tracks)]  # fmt: skip
    track_set = TrackSet(faces, [list(range(len(f.frames))) for f in faces], list(range(len(faces))),
                         np.ones(len(faces)), np.zeros(len(faces), bool))  # fmt: skip
    step.finetune_track_set(track_set, make_backbone(), config, progress=lambda f, msg: fractions.append(f))
    assert fractions == sorted(fractions) and 0.0 < fractions[0] and fractions[-1] == pytest.approx(1.0)


def test_head_input_normalisation_centres_and_scales_the_input() -> None:
    head = DINOHead(16, num_prototypes=32, hidden_dim=24, bottleneck_dim=8, generator=torch.Generator().manual_seed(0))
    x = torch.randn(40, 16) * 0.1 + 3.0  # a large common component, as a face-ID net's embeddings have
    before = head.bottleneck(x)
    head.set_input_normalisation(x)
    centred = (x - x.mean(0)) / head.input_scale
    assert torch.allclose(head.input_mean, x.mean(0)) and torch.isclose(centred.norm(dim=1).pow(2).mean(), torch.tensor(1.0))
    assert torch.allclose(head.bottleneck(x), torch.nn.functional.normalize(head.mlp(centred), dim=-1), atol=1e-6)
    # the common component dominated the raw bottlenecks: they were nearly parallel; centred they spread
    spread = lambda z: float((z @ z.T).mean().detach())  # noqa: E731
    assert spread(before) > 0.99 and spread(head.bottleneck(x)) < 0.5
    for bad in (torch.ones(5, 16), torch.randn(1, 16), torch.randn(5, 15)):
        with pytest.raises(ValueError, match="input normalisation"):
            head.set_input_normalisation(bad)


def test_centred_head_input_is_set_from_the_frozen_embeddings_and_saved(tracks: list, tmp_path: Path) -> None:
    """head_input="centred": both heads hold the mean of the frozen backbone's embeddings of the
    chips; the checkpoint keeps it, and a checkpoint without it (older format) loads as identity."""
    config = FinetuneConfig.tiny(device="cpu", head_input="centred", rounds=0)
    model, _ = finetune(make_backbone(), tracks, config=config)
    chips = np.concatenate([c for _, c in tracks])
    with torch.no_grad():
        frozen = make_backbone()(make_backbone().preprocess(chips))
    for head in (model.student_head, model.teacher_head):
        assert torch.allclose(head.input_mean, frozen.mean(0), atol=1e-5)
        assert torch.isclose(head.input_scale, (frozen - frozen.mean(0)).norm(dim=1).pow(2).mean().sqrt(), rtol=1e-4)
    path = model.save(tmp_path / "centred.pt")
    loaded = SSLModel.load(path, make_backbone())
    assert np.allclose(loaded.head_outputs(chips)[0], model.head_outputs(chips)[0], atol=1e-6)
    payload = torch.load(path, weights_only=True)
    for part in ("student_head", "teacher_head"):
        payload[part] = {k: v for k, v in payload[part].items() if not k.startswith("input_")}
    torch.save(payload, tmp_path / "old.pt")
    old = SSLModel.load(tmp_path / "old.pt", make_backbone())
    assert float(old.teacher_head.input_scale) == 1.0 and not old.teacher_head.input_mean.any()
    with pytest.raises(ValueError, match="head_input"):
        FinetuneConfig(head_input="whitened")


def test_cannot_link_negatives_are_drawn_from_tracks_seen_together_and_train_the_head(tracks: list) -> None:
    """negative_weight > 0: each anchor whose track has a cannot-link partner gets a face of that
    partner as its negative; the term changes the model only where such pairs exist."""
    from vcn_plugin.ssl.trainer import _collect, _Trainer

    cannot = [(tracks[0][0], tracks[2][0]), (tracks[0][0], tracks[4][0])]
    config = FinetuneConfig.tiny(device="cpu", negative_weight=1.0)
    trainer = _Trainer(make_backbone(), _collect(tracks, make_backbone()), cannot, config, torch.device("cpu"), None)
    anchors = np.concatenate([trainer.data.chips_of_track[t] for t in range(len(tracks))])
    rows, negatives = trainer._sample_negatives(anchors)
    track_of = trainer.data.track_of_chip
    partners = {0: {2, 4}, 2: {0}, 4: {0}}
    assert [track_of[anchors[r]] for r in rows] == [t for t in track_of[anchors] if t in partners]
    assert all(track_of[n] in partners[track_of[anchors[r]]] for r, n in zip(rows, negatives, strict=True))

    run = dict(device="cpu", rounds=0, head_min_steps=6, head_max_steps=6)
    plain = _weights(finetune(make_backbone(), tracks, cannot, FinetuneConfig.tiny(**run))[0])
    ranked = _weights(finetune(make_backbone(), tracks, cannot, FinetuneConfig.tiny(negative_weight=1.0, **run))[0])
    unpaired = _weights(finetune(make_backbone(), tracks, (), FinetuneConfig.tiny(negative_weight=1.0, **run))[0])
    assert any(not torch.equal(ranked[k], plain[k]) for k in plain)
    assert all(torch.equal(unpaired[k], plain[k]) for k in plain)  # no pair: exactly the paper's training
    with pytest.raises(ValueError, match="negative_weight"):
        FinetuneConfig(negative_weight=-1.0)


def test_negative_ranking_loss_is_the_soft_margin_of_positive_below_negative() -> None:
    from vcn_plugin.ssl.negative_loss import negative_ranking_loss

    positive, negative = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.0])
    expected = (np.log1p(np.exp(-2.0)) + np.log(2.0)) / 2
    assert negative_ranking_loss(positive, negative).item() == pytest.approx(expected)
    assert negative_ranking_loss(torch.tensor([1.0, 2.5]), negative, "hinge").item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="form"):
        negative_ranking_loss(positive, negative, "margin")
    with pytest.raises(ValueError, match="equal non-empty"):
        negative_ranking_loss(positive, negative[:1])
