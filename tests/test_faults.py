"""Faults a reliability engineer and a new user run into: names and paths from users, run keys,
concurrent workers on one dataset, failures that must say so, stale results. Each test fails
on the code before these protections existed (issue 16)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import fiftyone as fo
import pytest
from click.testing import CliRunner

from tests.videos import noise_frames, write_video
from vcn_plugin.benchmark.sample_clip import make_sample_clip
from vcn_plugin.cli.main import main
from vcn_plugin.fo import schema
from vcn_plugin.fo.datasets import import_videos
from vcn_plugin.fo.runs import load_run, stage1_records
from vcn_plugin.fo.track_records import check_consistency, get_tracks_dataset
from vcn_plugin.ssl import FinetuneConfig
from vcn_plugin.steps.cluster import cluster_identities
from vcn_plugin.steps.detect import detect_faces
from vcn_plugin.steps.finetune import finetune_dataset, load_finetuned

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Two copies of the sample clip (six people, six shots) under different names."""
    folder = tmp_path_factory.mktemp("clips")
    first = folder / "ep01.mp4"
    make_sample_clip(first)
    second = folder / "ep02.mp4"
    shutil.copyfile(first, second)
    return [first, second]


@pytest.fixture(scope="module")
def detected(clips) -> fo.Dataset:
    dataset = fo.Dataset()
    import_videos(clips, dataset)
    detect_faces(dataset)
    return dataset


def _copy_detected(detected: fo.Dataset, name: str | None = None) -> fo.Dataset:
    return detected.clone(name)


def test_bad_run_key_is_refused_before_any_checkpoint_is_touched(detected, tmp_path):
    dataset = _copy_detected(detected)
    finetune_dataset(dataset, run_key="mine", config=FinetuneConfig.tiny(), models_dir=tmp_path)
    _, results = load_run(dataset, "mine")
    files = sorted(Path(p) for p in results["checkpoints"].values())
    assert files and all(f.is_file() for f in files)
    for bad in (".", "..", "../mine", "a/b", ""):
        with pytest.raises(ValueError, match="invalid run key"):
            finetune_dataset(dataset, run_key=bad, config=FinetuneConfig.tiny(), models_dir=tmp_path)
    assert all(f.is_file() for f in files)


def test_dataset_name_with_dots_never_reaches_outside_the_models_folder(detected, tmp_path):
    victim = tmp_path / "victim" / "mydata"
    victim.mkdir(parents=True)
    (victim / "important.txt").write_text("keep me")
    root = tmp_path / "vcn_root" / "deep"
    dataset = _copy_detected(detected, name="../../victim")
    for _ in range(2):  # the second run replaces the first run's checkpoints
        summary = finetune_dataset(dataset, run_key="mydata", config=FinetuneConfig.tiny(), models_dir=root)
    assert (victim / "important.txt").read_text() == "keep me"
    for path in summary.checkpoints.values():
        assert root.resolve() in Path(path).resolve().parents
    assert len(list((root / "models").rglob("*.pt"))) == len(summary.checkpoints)  # old ones removed


def test_a_run_key_cannot_replace_another_stages_record(detected):
    dataset = _copy_detected(detected)
    before = load_run(dataset, schema.STAGE1_RUN)
    with pytest.raises(ValueError, match="belongs to vcn's stage1 stage"):
        cluster_identities(dataset, method="cosine", run_key=schema.STAGE1_RUN)
    cluster_identities(dataset, method="cosine", run_key="mycluster")
    with pytest.raises(ValueError, match="already has a 'cluster' run"):
        finetune_dataset(dataset, run_key="mycluster", config=FinetuneConfig.tiny())
    assert load_run(dataset, schema.STAGE1_RUN)[1]["videos"] == before[1]["videos"]
    result = CliRunner().invoke(main, ["cluster", "--dataset", dataset.name, "--method", "cosine",
                                       "--run-key", schema.STAGE1_RUN])
    assert result.exit_code != 0 and "belongs to vcn's stage1 stage" in result.output
    assert cluster_identities(dataset, method="cosine").n_clusters >= 2  # stage 1 still usable


def test_finetuning_one_video_keeps_the_other_videos_model(detected, tmp_path):
    dataset = _copy_detected(detected)
    finetune_dataset(dataset, config=FinetuneConfig.tiny(), models_dir=tmp_path)
    _, first = load_run(dataset, schema.FINETUNE_RUN)
    one, two = dataset.values("id")
    finetune_dataset(dataset.select(one), config=FinetuneConfig.tiny(seed=1), models_dir=tmp_path)
    _, second = load_run(dataset, schema.FINETUNE_RUN)
    assert set(second["checkpoints"]) == {one, two}
    assert second["checkpoints"][two] == first["checkpoints"][two] and Path(first["checkpoints"][two]).is_file()
    assert second["checkpoints"][one] != first["checkpoints"][one]
    assert not Path(first["checkpoints"][one]).exists()  # the replaced checkpoint, and only it, is gone
    assert set(load_finetuned(dataset)) == {one, two}
    assert cluster_identities(dataset, method="loss").n_clusters >= 2


def test_rerunning_stage1_invalidates_what_derived_from_the_old_labels(detected, tmp_path):
    dataset = _copy_detected(detected)
    finetune_dataset(dataset, config=FinetuneConfig.tiny(), models_dir=tmp_path)
    cluster_identities(dataset, method="loss")
    one = dataset.first()
    tracks_before = len(get_tracks_dataset(dataset))
    detect_faces(dataset.select(one.id))
    records = get_tracks_dataset(dataset)
    assert len(records.match(fo.ViewField(schema.TRACK_VIDEO_ID) == one.id)) == 0 < tracks_before
    assert check_consistency(dataset) == []
    with pytest.raises(ValueError, match="re-detected"):
        cluster_identities(dataset, method="loss")
    finetune_dataset(dataset.select(one.id), config=FinetuneConfig.tiny(), models_dir=tmp_path)
    assert cluster_identities(dataset, method="loss").n_clusters >= 2


def test_a_video_whose_record_is_missing_is_refused_by_later_stages(detected):
    """A worker that died between writing labels and the record leaves no record: refused."""
    dataset = _copy_detected(detected)
    sample = dataset.first()
    sample[schema.VIDEO_STATS] = None
    sample.save()
    assert sample.filepath not in stage1_records(dataset)
    with pytest.raises(ValueError, match="no complete stage-1 result"):
        cluster_identities(dataset, method="cosine")


_WORKER = """
import sys
import fiftyone as fo
from vcn_plugin.ssl import FinetuneConfig
from vcn_plugin.steps.detect import detect_faces
from vcn_plugin.steps.finetune import finetune_dataset
dataset = fo.load_dataset(sys.argv[1])
view = dataset.select(sys.argv[2])
report = detect_faces(view)
finetune_dataset(view, config=FinetuneConfig.tiny(), models_dir=sys.argv[3])
sys.exit(1 if report.failed else 0)
"""


@pytest.mark.slow
def test_two_workers_on_different_videos_keep_both_records(clips, tmp_path):
    """Stage 1 and stage 2 of one video each, in two processes at once, on one dataset."""
    dataset = fo.Dataset()
    dataset.persistent = True
    try:
        import_videos(clips, dataset)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        workers = [subprocess.Popen([sys.executable, "-c", _WORKER, dataset.name, sid, str(tmp_path)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for sid in dataset.values("id")]
        outputs = [w.communicate(timeout=600)[0].decode(errors="replace") for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs
        dataset.reload()
        assert set(stage1_records(dataset)) == {str(c.resolve()) for c in clips}
        _, results = load_run(dataset, schema.STAGE1_RUN)
        assert set(results["videos"]) == {str(c.resolve()) for c in clips}
        assert set(load_finetuned(dataset)) == set(dataset.values("id"))
        assert cluster_identities(dataset, method="loss").n_clusters >= 2
    finally:
        dataset.delete()


def test_failed_video_fails_the_command_and_the_delegated_op(tmp_path, run_operator):
    good = write_video(tmp_path / "good.mp4", noise_frames(6))
    gone = write_video(tmp_path / "gone.mp4", noise_frames(6, seed=1))
    dataset = fo.Dataset()
    import_videos([good, gone], dataset)
    gone.unlink()
    result = CliRunner().invoke(main, ["detect", "--dataset", dataset.name, "--detector", "dlib-hog"])
    assert result.exit_code != 0 and "gone.mp4" in result.output and "1 of 2" in result.output
    assert str(good.resolve()) in stage1_records(dataset)  # the other video was processed
    done = run_operator("detect_faces", dataset, {"detector": "dlib-hog"}, delegate=True, expect="failed")
    assert "gone.mp4" in str(getattr(done.result, "error", ""))


def test_truncated_video_is_processed_with_a_warning(tmp_path):
    full = write_video(tmp_path / "full.mp4", noise_frames(120))
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 3])  # +faststart: the index is at the start, the tail is gone
    dataset = fo.Dataset()
    import_videos([cut], dataset)
    assert len(dataset) == 1
    report = detect_faces(dataset)
    assert not report.failed and "truncated" in report.warnings[str(cut.resolve())]
    assert "warning" in report.summary()


def test_export_refuses_a_non_empty_directory_unless_told(tmp_path, detected):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["export-benchmark", "--dataset", detected.name, "--out", str(out),
                                       "--field", schema.FACES])
    assert result.exit_code != 0 and "not empty" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    result = CliRunner().invoke(main, ["export-benchmark", "--dataset", detected.name, "--out", str(out),
                                       "--field", schema.FACES, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine" and len(list((out / "annotations").glob("*.json"))) == 2


def test_empty_dataset_says_what_is_missing(tmp_path):
    dataset = fo.Dataset()
    with pytest.raises(ValueError, match="holds no videos yet"):
        detect_faces(dataset)
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--dataset", dataset.name])
    assert result.exit_code != 0 and "no video was imported" in result.output


def test_rotated_video_metadata_is_the_displayed_size(tmp_path):
    from tests.videos import with_rotation_flag

    src = write_video(tmp_path / "flat.mp4", noise_frames(6, width=160, height=96))
    rotated = with_rotation_flag(src, tmp_path / "rotated.mp4", 90)
    dataset = fo.Dataset()
    import_videos([rotated], dataset)
    meta = dataset.first().metadata
    assert (meta.frame_width, meta.frame_height) == (96, 160)  # as decoded and labelled


def test_importing_a_folder_without_videos_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("no video here")
    report = import_videos([tmp_path], fo.Dataset())
    assert not report.added and "no video file found" in report.summary()


def test_process_videos_queues_one_operation_per_video_then_the_clustering(clips, run_operator):
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = fo.Dataset()
    import_videos(clips, dataset)
    out = run_operator("process_videos", dataset, {"preset": "tiny"})
    assert out["queued"] == len(clips)
    service = DelegatedOperationService()
    queued = service.list_operations(dataset_name=dataset.name)
    assert [op.operator.rsplit("/", 1)[-1] for op in queued] == ["process_video"] * len(clips)
    service.execute_queued_operations(dataset_name=dataset.name)  # the per-video ops; the last queues clustering
    service.execute_queued_operations(dataset_name=dataset.name)  # the clustering
    done = service.list_operations(dataset_name=dataset.name)
    assert sorted(op.operator.rsplit("/", 1)[-1] for op in done) == ["cluster_identities"] + ["process_video"] * 2
    assert [op.run_state for op in done] == ["completed"] * (len(clips) + 1), [(op.operator, op.result) for op in done]
    dataset.reload()
    assert set(stage1_records(dataset)) == {str(c.resolve()) for c in clips}
    assert set(load_finetuned(dataset)) == set(dataset.values("id"))
    assert dataset.has_run(schema.CLUSTER_RUN) and check_consistency(dataset) == []


def test_an_operation_whose_worker_died_is_marked_failed(tmp_path, run_operator):
    """FiftyOne keeps a killed worker's operation RUNNING; `vcn ops reap` fails it once silent."""
    import datetime as dt

    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = fo.Dataset()
    import_videos([write_video(tmp_path / "v.mp4", noise_frames(6))], dataset)
    uri = f"{schema.PLUGIN_NAME}/detect_faces"
    for _ in range(2):
        foo.execute_operator(uri, ctx={"dataset": dataset.name, "params": {}}, request_delegation=True)
    service = DelegatedOperationService()
    dead, alive = service.list_operations(dataset_name=dataset.name)
    for op in (dead, alive):
        service.set_running(op.id)
    old = dt.datetime.utcnow() - dt.timedelta(hours=2)
    service._repo._collection.update_one({"_id": dead.id}, {"$set": {"started_at": old, "updated_at": old}})
    result = CliRunner().invoke(main, ["ops", "reap", "--dataset", dataset.name, "--dry-run"])
    assert result.exit_code == 0 and "would mark 1 operation(s)" in result.output
    assert service.get(dead.id).run_state == "running"
    result = CliRunner().invoke(main, ["ops", "reap", "--dataset", dataset.name])
    assert result.exit_code == 0 and "marked 1 operation(s) failed" in result.output and str(dead.id) in result.output
    failed, running = service.get(dead.id), service.get(alive.id)
    assert failed.run_state == "failed" and "its worker stopped" in failed.result.error
    assert running.run_state == "running"


@pytest.mark.slow
def test_a_worker_killed_mid_operation_leaves_nothing_complete_and_a_rerun_matches_a_clean_run(
        clips, run_operator, tmp_path):
    """A real `fiftyone delegated launch` worker is killed by PID in the middle of stage 1: the video
    gets no record, the operation is reaped as FAILED, and a rerun gives exactly a clean run's labels."""
    import datetime as dt
    import signal
    import time

    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    from vcn_plugin.fo.operations import reap_stale_operations

    dataset = fo.Dataset()
    dataset.persistent = True
    clean = fo.Dataset()
    try:
        import_videos(clips[:1], dataset)
        foo.execute_operator(f"{schema.PLUGIN_NAME}/detect_faces", ctx={"dataset": dataset.name, "params": {}},
                             request_delegation=True)
        service = DelegatedOperationService()
        (op,) = service.list_operations(dataset_name=dataset.name)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FIFTYONE_PLUGINS_DIR": fo.config.plugins_dir}
        fiftyone_cli = Path(sys.executable).with_name("fiftyone")
        worker = subprocess.Popen([str(fiftyone_cli), "delegated", "launch"], env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 300
            while time.time() < deadline:  # wait until stage 1 is well under way
                state = service.get(op.id)
                if state.run_state == "running" and state.status is not None and (state.status.progress or 0) > 0.3:
                    break
                assert state.run_state in ("queued", "running"), state.run_state
                time.sleep(0.2)
            else:
                pytest.fail("the worker never got going")
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        assert service.get(op.id).run_state == "running"  # FiftyOne alone would keep it so
        assert stage1_records(dataset) == {}  # nothing half-written is visible as done
        time.sleep(2)
        (reaped,) = reap_stale_operations(dataset.name, stale_after=dt.timedelta(seconds=1))
        assert reaped.id == str(op.id) and service.get(op.id).run_state == "failed"
        detect_faces(dataset)  # the rerun
        import_videos(clips[:1], clean)
        detect_faces(clean)
        path = f"{schema.frame_path(schema.FACES)}.detections"
        assert dataset.values([f"{path}.bounding_box", f"{path}.index"]) == clean.values(
            [f"{path}.bounding_box", f"{path}.index"])
    finally:
        dataset.delete()


def test_one_time_work_is_claimed_exactly_once(detected):
    from vcn_plugin.fo.operations import claim_once

    dataset = _copy_detected(detected)
    assert claim_once(dataset, "cluster_batch1") and not claim_once(dataset, "cluster_batch1")
    assert claim_once(dataset, "cluster_batch2")
    with pytest.raises(ValueError, match="invalid claim key"):
        claim_once(dataset, "a.b")


def test_run_fan_out_queues_one_operation_per_video(clips, run_operator, monkeypatch):
    from fiftyone.operators.delegated import DelegatedOperationService

    name = f"fanout-{os.getpid()}"
    result = CliRunner().invoke(main, ["run", *map(str, clips), "--dataset", name, "--fan-out", "--preset", "tiny"])
    assert result.exit_code == 0, result.output
    assert f"queued {len(clips)} delegated operation(s)" in result.output
    ops = DelegatedOperationService().list_operations(dataset_name=name)
    assert sorted(op.operator.rsplit("/", 1)[-1] for op in ops) == ["process_video"] * len(clips)
    assert len({op.context.params["sample_id"] for op in ops}) == len(clips)
    monkeypatch.setattr(fo.config, "plugins_dir", "/nonexistent")
    result = CliRunner().invoke(main, ["run", str(clips[0]), "--dataset", name, "--fan-out"])
    assert result.exit_code != 0 and "plugin is not installed" in result.output
