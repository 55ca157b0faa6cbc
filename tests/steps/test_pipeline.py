"""Stages 2 and 3 on a real processed clip, through the Python API, the operators and the CLI."""
from __future__ import annotations

import fiftyone as fo
import numpy as np
import pytest

from tests.videos import noise_frames, write_video
from vcn_plugin.benchmark.sample_clip import make_sample_clip
from vcn_plugin.fo import schema
from vcn_plugin.fo.datasets import import_videos
from vcn_plugin.fo.runs import list_runs, load_run
from vcn_plugin.fo.track_records import check_consistency, frame_identities, get_tracks_dataset
from vcn_plugin.ssl import FinetuneConfig
from vcn_plugin.steps.cluster import cluster_identities
from vcn_plugin.steps.detect import detect_faces
from vcn_plugin.steps.finetune import FinetuneSummary, finetune_dataset, load_finetuned


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "sample.mp4"
    make_sample_clip(path)
    return path


@pytest.fixture(scope="module")
def processed(clip):
    """A dataset after stage 1 and a tiny finetuning run."""
    dataset = fo.Dataset()
    import_videos([clip], dataset)
    detect_faces(dataset)
    finetune_dataset(dataset, config=FinetuneConfig.tiny(), models_dir=str(clip.parent / "models"))
    return dataset


def test_finetune_records_run_and_reloadable_checkpoint(processed):
    assert "vcn_finetune" in list_runs(processed, method="finetune")
    config, results = load_run(processed, "vcn_finetune")
    assert config["backbone"] == "dlib-resnet" and config["scope"] == "video"
    (video_id, path), = results["checkpoints"].items()
    assert video_id == processed.first().id
    model = load_finetuned(processed)[video_id]
    chips = np.random.default_rng(0).integers(0, 255, (2, 150, 150, 3), dtype=np.uint8)
    p, log_q = model.head_outputs(chips)
    assert np.allclose(p.sum(1), 1, atol=1e-4) and np.all(log_q <= 0)
    # what a user reads of the run's health: the teacher per stage and the matched pairs per round
    (per_model,) = results["per_model"].values()
    assert [h["after"] for h in per_model["health"]] == ["head", "joint 1"]
    assert len(per_model["match_pairs"]) == len(per_model["match_counts"]) == 1
    text = FinetuneSummary("vcn_finetune", results={video_id: per_model}).summary()
    assert "teacher after joint 1: entropy" in text and f"for {per_model['num_tracks']} tracks" in text


@pytest.mark.parametrize("method", ["loss", "cosine", "hac-euclidean"])
def test_cluster_writes_identities_to_frames_and_track_records(processed, method):
    summary = cluster_identities(processed, method=method)
    truth = frame_identities(processed)
    assert truth == summary.identities
    assert 2 <= summary.n_clusters <= len(truth)
    assert all(name == schema.UNKNOWN or name.startswith("person_") for name in truth.values())
    tracks = get_tracks_dataset(processed)
    assert len(tracks) == len(truth) and check_consistency(processed) == []
    assert tracks.first()["embedding"] is not None and tracks.first()["quality"] is not None
    config, results = load_run(processed, "vcn_cluster")
    assert config["method"] == method and results["n_clusters"] == summary.n_clusters


def test_guard_keeps_people_seen_together_apart(processed):
    summary = cluster_identities(processed, method="loss", guard=True)
    from vcn_plugin.backbones import get_backbone
    from vcn_plugin.fo.track_sets import load_track_set

    ts = load_track_set(processed, get_backbone("dlib-resnet"))
    for a, b in ts.cooccurring:
        la, lb = summary.identities[ts.keys[a]], summary.identities[ts.keys[b]]
        assert la != lb or la == schema.UNKNOWN


def test_loss_metric_refuses_without_finetuning_and_cosine_still_works(clip):
    dataset = fo.Dataset()
    import_videos([clip], dataset)
    detect_faces(dataset)
    with pytest.raises(ValueError, match="finetun"):
        cluster_identities(dataset, method="loss")
    assert cluster_identities(dataset, method="cosine").n_clusters >= 2


def test_finetune_refuses_video_without_tracks_and_clustering_handles_it(tmp_path):
    dataset = fo.Dataset()
    import_videos([write_video(tmp_path / "noise.mp4", noise_frames(6))], dataset)
    detect_faces(dataset)
    with pytest.raises(ValueError, match="nothing was finetuned"):
        finetune_dataset(dataset, config=FinetuneConfig.tiny(), models_dir=str(tmp_path))
    assert not dataset.has_run("vcn_finetune")
    assert cluster_identities(dataset, method="cosine").identities == {}


def test_stage2_refuses_before_stage1(clip):
    dataset = fo.Dataset()
    import_videos([clip], dataset)
    with pytest.raises(ValueError, match="detect faces"):
        finetune_dataset(dataset, config=FinetuneConfig.tiny())
    with pytest.raises(ValueError, match="detect faces"):
        cluster_identities(dataset, method="cosine")


def test_unknown_backbone_is_refused(processed):
    with pytest.raises(ValueError, match="unknown backbone"):
        finetune_dataset(processed, backbone="resnet-9000", config=FinetuneConfig.tiny())


def test_operators_detect_immediately_and_cluster_delegated(clip, run_operator):
    dataset = fo.Dataset()
    import_videos([clip], dataset)
    out = run_operator("detect_faces", dataset, {"detector": "dlib-hog", "detect_every": 2})
    assert "tracks" in out["summary"] and dataset.count(f"frames.{schema.FACES}.detections") > 0
    done = run_operator("cluster_identities", dataset, {"method": "cosine", "guard": True}, delegate=True)
    assert done.run_state == "completed"
    dataset.reload()
    assert dataset.has_run("vcn_cluster") and check_consistency(dataset) == []


def test_cli_cluster_prints_identities(processed):
    from click.testing import CliRunner

    from vcn_plugin.cli.main import main

    result = CliRunner().invoke(main, ["cluster", "--dataset", processed.name, "--method", "cosine"])
    assert result.exit_code == 0, result.output
    assert "identities" in result.output and "person_01" in result.output
    result = CliRunner().invoke(main, ["cluster", "--dataset", "no-such-dataset"])
    assert result.exit_code != 0 and "no dataset named" in result.output


def test_cli_cluster_records_the_agreement_and_the_start_chosen(processed):
    """The loss metric's run records whether the agreeing start took part (``--no-agreement`` leaves
    it out), which start each video's clusters came from, and whether view rounds followed and how
    many clusters they merged (``--no-view-rounds`` and ``--no-agreement`` leave them out)."""
    from click.testing import CliRunner

    from vcn_plugin.clustering.aggregation import AGREEING_START, BEST_OF_STARTS
    from vcn_plugin.cli.main import main

    for flag, expected, view in ((None, True, True), ("--no-agreement", False, None), ("--no-view-rounds", True, False)):
        args = ["cluster", "--dataset", processed.name, "--method", "loss"] + ([flag] if flag else [])
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        config, results = load_run(processed, "vcn_cluster")
        assert config["agreement"] is expected and config["view_rounds"] is view
        chosen = {group["start_chosen"] for group in results["per_group"].values()}
        assert chosen <= set(BEST_OF_STARTS) and (expected or AGREEING_START not in chosen)
        merges = [group["view_merges"] for group in results["per_group"].values()]
        assert all(isinstance(m, int) and m >= 0 for m in merges) if view else all(m is None for m in merges)


def test_arcface_backbone_rates_tracks_with_serfiq(processed, shared_models):
    """With an ArcFace-style backbone, track quality comes from SER-FIQ on the sampled chips."""
    from vcn_plugin.backbones import get_backbone
    from vcn_plugin.fo.track_sets import load_track_set, uses_serfiq

    backbone = get_backbone(f"arcface-onnx:{shared_models / 'mobilefacenet' / 'mobilefacenet_128d.onnx'}")
    assert uses_serfiq(backbone, "auto") and not uses_serfiq(get_backbone("dlib-resnet"), "auto")
    serfiq = load_track_set(processed, backbone, max_faces=4)
    cheap = load_track_set(processed, backbone, max_faces=4, quality="cheap")
    assert serfiq.keys == cheap.keys and serfiq.tracks[0].chips.shape[1:] == (112, 112, 3)
    assert np.all((serfiq.quality > 0) & (serfiq.quality < 1))
    assert not np.allclose(serfiq.quality, cheap.quality)
    with pytest.raises(ValueError, match="quality must be one of"):
        load_track_set(processed, backbone, quality="best")


def test_serfiq_is_written_to_the_sampled_faces(processed, shared_models):
    """Clustering with an ArcFace-style backbone writes each sampled face's SER-FIQ quality to its
    detection (``serfiq``) and the track records carry the track's SER-FIQ quality."""
    from vcn_plugin.backbones import get_backbone
    from vcn_plugin.fo.track_sets import load_track_set
    from vcn_plugin.stage1.quality import aggregate_track_quality

    name = f"arcface-onnx:{shared_models / 'mobilefacenet' / 'mobilefacenet_128d.onnx'}"
    cluster_identities(processed, method="cosine", backbone=name, finetuned=False, max_faces_per_track=4)
    expected = load_track_set(processed, get_backbone(name), max_faces=4)
    path = schema.frame_path(f"{schema.FACES}.detections")
    ids, values = processed.values([f"{path}.id", f"{path}.{schema.ATTR_SERFIQ}"], unwind=True)
    written = {det_id: value for det_id, value in zip(ids, values) if value is not None}
    sampled = {d: q for t in expected.tracks for d, q in zip(t.detection_ids, t.qualities)}
    assert written.keys() == sampled.keys() and len(sampled) >= len(expected)
    assert all(abs(written[d] - q) < 1e-6 for d, q in sampled.items())
    records = {(v, int(t)): q for v, t, q in zip(*get_tracks_dataset(processed).values(["video_id", "track", "quality"]))}
    for t in expected.tracks:
        assert records[t.key] == pytest.approx(aggregate_track_quality(t.qualities))
    cluster_identities(processed, method="cosine")  # dlib backbone: cheap quality, nothing new written
    assert processed.count(f"{path}.{schema.ATTR_SERFIQ}") == len(sampled)
