"""The ablation runner on one real quick episode built from ../shared/data/faces."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vcn_plugin.benchmark import EpisodeConfig
from vcn_plugin.benchmark.rows import DEFAULT_ROWS, FRACTION_KEYS, ROW_KEYS, RowSpec
from vcn_plugin.benchmark.runner import run_benchmark
from vcn_plugin.benchmark.sweep import SweepCell, SweepResult, ensure_benchmark, plot_sweep
from vcn_plugin.evaluation.metrics import evaluate_clustering
from vcn_plugin.ssl import FinetuneConfig

from tests.scripts import benchmark_script


QUICK = EpisodeConfig.preset("quick", seed=0)
#: two fixed HAC cuts beside the default rows: the oracle must do at least as well as both
EXTRA_ROWS = (
    RowSpec("HAC cosine @ 0.3", "hac-cosine", finetuned=False, threshold=0.3),
    RowSpec("HAC cosine @ 0.1", "hac-cosine", finetuned=False, threshold=0.1),
)


@pytest.fixture(scope="module")
def bench(shared_data: Path, tmp_path_factory) -> Path:
    """One quick episode, built through the CLI (the same config as ``QUICK``)."""
    from vcn_plugin.cli.benchmark import benchmark

    out = tmp_path_factory.mktemp("bench")
    args = ["build", "--faces", str(shared_data / "faces"), "--out", str(out), "--episodes", "1", "--preset", "quick"]
    res = CliRunner().invoke(benchmark, args)
    assert res.exit_code == 0, res.output
    assert "ep000.mp4" in res.output
    return out


@pytest.fixture(scope="module")
def run(bench: Path, tmp_path_factory):
    """One run of every row, its JSON, and the predicted track ids read back from the kept dataset."""
    import fiftyone as fo

    json_path = tmp_path_factory.mktemp("out") / "bench.json"
    result = run_benchmark(bench, json_path, DEFAULT_ROWS + EXTRA_ROWS, FinetuneConfig.tiny(), keep_dataset=True)
    dataset = fo.load_dataset(result.dataset_name)
    predicted = set()
    for sample in dataset:
        for frame in sample.frames.values():
            for det in frame["faces"].detections if frame["faces"] is not None else []:
                predicted.add((Path(sample.filepath).name, int(det.index)))
    dataset.delete()
    return result, json.loads(json_path.read_text()), predicted


def test_json_has_every_row_and_key(run):
    result, data, _ = run
    assert set(data) >= {"rows", "episodes"}
    assert len(data["rows"]) == len(DEFAULT_ROWS) + len(EXTRA_ROWS)
    for row in data["rows"]:
        assert set(ROW_KEYS) | {"assignments"} <= set(row)
        assert isinstance(row["finetuned"], bool) and isinstance(row["oracle"], bool)
    assert data == json.loads(json.dumps(result.to_dict()))


def test_fractions_in_unit_interval_and_only_untrained_loss_not_applicable(run):
    _, data, _ = run
    for row in data["rows"]:
        if row["method"] == "ours" and row["metric"] == "loss" and not row["finetuned"]:
            assert all(row[k] is None for k in (*FRACTION_KEYS, "cluster_ratio", "seconds"))
            assert row["note"].startswith("not applicable") and row["assignments"] == []
            continue
        for key in FRACTION_KEYS:
            assert 0.0 <= row[key] <= 1.0, (row["name"], key, row[key])
        assert row["cluster_ratio"] == pytest.approx(row["n_clusters"] / row["n_identities"])
        assert row["seconds"] > 0


def test_oracle_rows_are_marked_and_beat_fixed_cuts(run):
    _, data, _ = run
    oracles = [r for r in data["rows"] if r["oracle"]]
    assert {(r["method"], r["metric"], r["finetuned"]) for r in oracles} == {("hac", "cosine", False), ("hac", "cosine", True)}
    assert all(r["threshold"] is not None for r in oracles)
    oracle = next(r for r in oracles if not r["finetuned"])
    fixed = [r for r in data["rows"] if r["name"] in {s.name for s in EXTRA_ROWS}]
    assert all(oracle["accuracy"] >= r["accuracy"] for r in fixed)
    assert sum(r["oracle"] for r in data["rows"]) == 2


def test_assignments_list_every_predicted_track_and_the_same_tracks_in_every_row(run):
    _, data, predicted = run
    applicable = [r for r in data["rows"] if r["assignments"]]
    assert len(applicable) == len(data["rows"]) - 1
    reference = [(a["video"], a["track"], a["gt"]) for a in applicable[0]["assignments"]]
    assert {(v, t) for v, t, _ in reference} == predicted
    assert len(reference) == len(predicted) > 0
    for row in applicable:
        assert [(a["video"], a["track"], a["gt"]) for a in row["assignments"]] == reference
        assert all(isinstance(a["pred"], str) for a in row["assignments"])


def test_metrics_recomputed_from_assignments_equal_the_rows(run):
    """Per episode evaluate_clustering on the scored tracks, then the documented aggregation."""
    _, data, _ = run
    for row in (r for r in data["rows"] if r["assignments"]):
        by_video = defaultdict(list)
        for a in row["assignments"]:
            if a["gt"] is not None and not a["distractor"]:
                by_video[a["video"]].append(a)
        per = [evaluate_clustering([a["gt"] for a in s], [a["pred"] for a in s], "Unknown", "exclude")
               for s in by_video.values()]  # fmt: skip
        weights = np.array([m.n_evaluated for m in per], float)
        for key in FRACTION_KEYS:
            expected = float(np.dot([getattr(m, key) for m in per], weights) / weights.sum())
            assert row[key] == pytest.approx(expected, abs=1e-12), (row["name"], key)
        assert row["n_clusters"] == sum(m.n_clusters for m in per)
        assert row["n_identities"] == sum(m.n_identities for m in per)
        assert row["unknown"] == sum(m.n_unknown for m in per)


def test_episode_has_stage_wise_numbers(run, bench):
    _, data, _ = run
    (episode,) = data["episodes"]
    manifest = json.loads((bench / "manifest.json").read_text())["episodes"][0]
    assert episode["video"] == "ep000.mp4"
    assert episode["gt_tracks"] == manifest["n_tracks"]
    assert episode["gt_identities"] == manifest["n_identities"]
    assert 0.5 <= episode["detection"]["recall"] <= 1.0  # the quick preset's faces are >= 44 px
    assert 0.0 <= episode["detection"]["precision"] <= 1.0
    assert episode["tracking"]["pred_tracks"] == episode["pred_tracks"] > 0
    assert {"id_switches", "fragmentations", "gt_tracks_missed"} <= set(episode["tracking"])
    assert episode["finetune"]["seconds"] > 0 and episode["finetune"]["num_tracks"] > 0


def test_episode_reports_finetune_health(run):
    """Matching P/R per round against the ground truth, the teacher per stage, the loss curve
    and the merge ratios of each feature space, in the JSON and in the printed tables."""
    result, data, _ = run
    (episode,) = data["episodes"]
    health = episode["health"]
    rounds = FinetuneConfig.tiny().rounds
    assert len(health["matching"]) == rounds
    for q in health["matching"]:
        assert q["pairs"] == q["correct"] + (q["pairs"] - q["correct"]) >= q["found"]
        assert q["true_pairs"] > 0, "the quick episode shows every identity in two shots"
        assert 0.0 <= q["recall"] <= 1.0
    assert [h["after"] for h in health["teacher"]] == ["head"] + [f"joint {r + 1}" for r in range(rounds)]
    assert len(health["loss_curve"]["loss"]) == len(health["loss_curve"]["stage"]) > 0
    assert set(health["merge_ratios"]) == {"pretrained cosine", "finetuned cosine", "loss"}
    for ratios in health["merge_ratios"].values():
        assert ratios["same"]["pairs"] > 0 and ratios["different"]["pairs"] > 0
        assert 0.0 <= ratios["same"]["below_1"] <= 1.0
    # pretrained cosine: one person's tracks are closer than two people's
    cos = health["merge_ratios"]["pretrained cosine"]
    assert cos["same"]["median"] < cos["different"]["median"]
    assert "matching P / R per round" in result.to_markdown()
    # the oracle gate of each embedding space, against the same true pairs as the rounds
    assert set(health["matching_bound"]) == {"pretrained", "finetuned"}
    for bound in health["matching_bound"].values():
        assert bound["precision_target"] == 0.95 and bound["true_pairs"] == health["matching"][0]["true_pairs"]
        assert 0.0 <= bound["recall"] <= 1.0


def test_bad_inputs_raise_clear_errors(tmp_path, bench):
    with pytest.raises(ValueError, match="is not a benchmark"):
        run_benchmark(tmp_path)
    with pytest.raises(ValueError, match="unknown_mode"):
        run_benchmark(bench, unknown_mode="drop")
    with pytest.raises(ValueError, match="oracle"):
        RowSpec("x", "finch", finetuned=False, oracle=True)
    with pytest.raises(ValueError, match="threshold"):
        RowSpec("x", "hac-euclidean", finetuned=False)


def test_ensure_benchmark_reuses_a_matching_build_only(shared_data, bench, tmp_path):
    assert ensure_benchmark(shared_data / "faces", bench, 1, QUICK) is False
    from vcn_plugin.benchmark.sweep import _same_build

    faces = (shared_data / "faces").resolve()
    assert _same_build(bench / "manifest.json", faces, 1, asdict(QUICK))
    assert not _same_build(bench / "manifest.json", faces, 2, asdict(QUICK))
    assert not _same_build(bench / "manifest.json", faces, 1, asdict(replace(QUICK, seed=1)))
    (tmp_path / "videos").mkdir()
    with pytest.raises(ValueError, match="no manifest"):
        ensure_benchmark(shared_data / "faces", tmp_path, 1, QUICK)


def test_plot_sweep_writes_a_png(run, tmp_path):
    result, _, _ = run
    cells = [SweepCell("none", 0, "a", result), SweepCell("teal_orange", 2, "b", result)]
    path = plot_sweep(SweepResult(cells, {"looks": ["teal_orange"]}), tmp_path / "sweep.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "teal_orange, severity 2" in SweepResult(cells, {"looks": ["teal_orange"]}).to_markdown()


def test_cli_run_reproduces_the_api_numbers(run, bench, tmp_path):
    """Same benchmark, same seeds: the CLI's JSON equals the API's rows (determinism)."""
    from vcn_plugin.cli.benchmark import benchmark

    _, data, _ = run
    out = tmp_path / "cli.json"
    res = CliRunner().invoke(benchmark, ["run", str(bench), "--json", str(out), "--quick-finetune"])
    assert res.exit_code == 0, res.output
    assert "| HAC cosine, oracle threshold [ORACLE" in res.output
    cli_rows = {(r["name"], r["finetuned"]): r for r in json.loads(out.read_text())["rows"]}
    for row in data["rows"][: len(DEFAULT_ROWS)]:
        other = cli_rows[(row["name"], row["finetuned"])]
        assert [a["pred"] for a in other["assignments"]] == [a["pred"] for a in row["assignments"]], row["name"]
        assert other["accuracy"] == row["accuracy"]


def test_cli_sweep_rejects_an_unknown_look_before_building(tmp_path, shared_data):
    from vcn_plugin.cli.benchmark import benchmark

    args = ["sweep", "--faces", str(shared_data / "faces"), "--out", str(tmp_path), "--looks", "sepia,teal_orange"]
    res = CliRunner().invoke(benchmark, args)
    assert res.exit_code != 0
    assert "unknown look 'sepia'" in res.output
    assert not any(tmp_path.iterdir())


def test_foreign_manifest_is_ignored_with_a_notice(tmp_path, caplog):
    """A benchmark directory may carry another tool's manifest.json: the runner reads the
    builder's manifest only, before any video is processed, and ignores others."""
    from vcn_plugin.benchmark.runner import _manifest_records

    (tmp_path / "manifest.json").write_text(json.dumps({"episodes": [{"video": "ep000.mp4", "tool": "other"}]}))
    notices = []
    with caplog.at_level("WARNING"):
        assert _manifest_records(tmp_path, lambda f, m: notices.append(m)) == ({}, {})
    assert "not a vcn benchmark manifest" in caplog.text and notices and "manifest.json" in notices[0]
    (tmp_path / "manifest.json").write_text("[1, 2]")
    assert _manifest_records(tmp_path) == ({}, {})
    (tmp_path / "manifest.json").unlink()
    assert _manifest_records(tmp_path) == ({}, {})


def test_the_shipped_detector_is_scored_on_the_faces_it_finds(run):
    """The benchmark runs the product's default detector (CenterFace, every 3rd frame); its boxes
    are calibrated onto the ground truth's (dlib) convention, so at severity 0 it finds them."""
    result = run[0]
    assert result.config["stage1"]["detector"] == "centerface" and result.config["stage1"]["detect_every"] == 3
    for episode in result.episodes:
        print(episode["video"], episode["detection"], episode["box_calibration"])
        assert episode["detection"]["recall"] >= 0.9
        assert episode["box_calibration"]["pairs"] >= 20
        assert episode["box_calibration"]["sh"] < 1.0  # CenterFace boxes are taller than dlib's


def test_a_rerun_reuses_stage_1(run, bench):
    from vcn_plugin.benchmark.runner import run_benchmark

    result = run[0]
    again = run_benchmark(bench, methods=DEFAULT_ROWS[:1], finetune_config=FinetuneConfig.tiny())
    assert all(e["stage1"]["cached"] == 1 for e in again.episodes)
    assert [e["detection"] for e in again.episodes] == [e["detection"] for e in result.episodes]


def test_linked_share_needs_one_cluster_per_person_across_videos():
    from vcn_plugin.benchmark.rows import linked_share

    def rows(preds):
        gts = [("a", "v1"), ("a", "v2"), ("b", "v1"), ("b", "v2"), ("c", "v1")]
        return [{"gt": g, "video": v, "pred": p, "track": i} for i, ((g, v), p) in enumerate(zip(gts, preds))]

    assert linked_share(rows(["0", "0", "1", "1", "2"])) == 1.0
    assert linked_share(rows(["0", "3", "1", "1", "2"])) == 0.5  # a split across episodes
    assert linked_share(rows(["0", "0", "0", "0", "0"])) == 0.5  # one cluster: only its owner counts
    assert linked_share(rows(["Unknown", "Unknown", "1", "1", "2"])) == 0.5
    assert linked_share([{"gt": "a", "video": "v1", "pred": "0", "track": 0}]) is None


def test_series_is_scored_per_episode_and_across_episodes(shared_data: Path, tmp_path):
    """A two-episode series: the rows per episode, and the same rows across episodes on the union
    of the tracks, with the main cast recurring; auto-detected from the manifest."""
    from vcn_plugin.benchmark import build_benchmark
    from vcn_plugin.benchmark.rows import scored

    config = EpisodeConfig.preset("quick", cast_scope="series", n_identities=(3, 3), series_guests=(1, 1), seed=1)
    build_benchmark(shared_data / "faces", tmp_path, 2, config)
    specs = (DEFAULT_ROWS[0], RowSpec("FINCH", "finch", finetuned=False), RowSpec("ours, loss", "loss", finetuned=True))
    result = run_benchmark(tmp_path, tmp_path / "series.json", specs, FinetuneConfig.tiny())
    assert len(result.rows) == len(result.series_rows) == 3
    assert result.series["episodes"] == 2 and result.series["recurring_identities"] == 3
    assert "seconds" in result.series["finetune"]
    per_episode_tracks = sorted((a["video"], a["track"]) for a in result.rows[1].assignments)
    for row in result.series_rows:
        assert sorted((a["video"], a["track"]) for a in row.assignments) == per_episode_tracks
        s = scored(row.assignments)
        m = evaluate_clustering([a["gt"] for a in s], [a["pred"] for a in s], "Unknown", "exclude")
        assert row.metrics["accuracy"] == pytest.approx(m.accuracy)
        assert row.metrics["n_identities"] == m.n_identities == 5  # 3 recurring + a guest per episode
        assert 0.0 <= row.metrics["linked"] <= 1.0
    across = {a["pred"] for a in result.series_rows[1].assignments}
    assert len(across) < len({(a["video"], a["pred"]) for a in result.rows[1].assignments}), \
        "clusters span episodes"
    data = json.loads((tmp_path / "series.json").read_text())
    assert len(data["series_rows"]) == 3 and data["series"]["identities"] == 5
    assert "Across episodes" in result.to_markdown()
    plain = run_benchmark(tmp_path, None, specs[:2], FinetuneConfig.tiny(), series=False)
    assert plain.series is None and plain.series_rows == []


def test_finetune_study_scores_every_point_on_episodes_prepared_once(bench, tmp_path):
    """benchmarks/finetune_study.py (tiny finetuning): one cell per point and episode, margins
    against the better peer, health numbers, saved features, and the suite mean."""
    module = benchmark_script("finetune_study")
    result = module.study([str(bench)], ["default", "mutual"], "cpu", progress=False, features_dir=tmp_path, base="tiny")
    assert set(result["cells"]) == {"default", "mutual"}
    for cells in result["cells"].values():
        (cell,) = cells
        assert cell["margin"] == pytest.approx(cell["loss_accuracy"] - max(cell["pretrained_finch"], cell["pretrained_hdbscan"]))
        assert 0.0 <= cell["loss_accuracy"] <= 1.0 and cell["matching_pairs"]
        assert cell["teacher_entropy"] > 0
    assert result["mean"]["default"]["cells"] == 1
    saved = np.load(tmp_path / "mutual" / f"{bench.name}-ep000.npz")
    assert saved["probs"].shape[0] == saved["face_track"].shape[0]
    assert "Mean over the suite" in module.to_markdown(result)

    # benchmarks/cluster_rules.py on the two saved finetunes, scored one by one and then averaged
    rules = benchmark_script("cluster_rules")
    runs = [rules.evaluate(tmp_path / point) for point in ("default", "mutual")]
    summary = rules.across(runs)
    for name in rules.RULES:
        accuracies = [run["mean"][name]["accuracy"] for run in runs]
        assert summary[name]["accuracy"] == pytest.approx(np.mean(accuracies))
        assert summary[name]["min_accuracy"] == min(accuracies) and summary[name]["max_accuracy"] == max(accuracies)
        assert summary[name]["won_or_tied"] == sum(run["mean"][name]["won_or_tied"] for run in runs)
    assert summary["best peer"]["accuracy"] == pytest.approx(runs[0]["mean"]["best peer"]["accuracy"])  # same episodes
    assert "Mean over the 2 finetunes" in rules.across_markdown(runs, summary)

    # --seed: seed 0 reproduces the default point exactly, another seed gives another finetune
    def probs(seed: int) -> np.ndarray:
        out = tmp_path / f"seed{seed}"
        again = module.study([str(bench)], ["default"], "cpu", progress=False, features_dir=out, base="tiny", seed=seed)
        assert again["seed"] == seed
        return np.load(out / "default" / f"{bench.name}-ep000.npz")["probs"]

    default = np.load(tmp_path / "default" / f"{bench.name}-ep000.npz")["probs"]
    np.testing.assert_array_equal(probs(0), default)
    assert not np.array_equal(probs(1), default)


def test_cluster_rules_soft_teacher_is_the_teacher_at_the_student_temperature():
    """benchmarks/cluster_rules.py's "teacher at the student temperature" rules recompute the saved
    teacher probabilities (centred, at the teacher temperature) at the student temperature."""
    from scipy.special import softmax

    from vcn_plugin.ssl.loss import DEFAULT_STUDENT_TEMP, DEFAULT_TEACHER_TEMP

    rules = benchmark_script("cluster_rules")
    rng = np.random.default_rng(0)
    logits, center = rng.uniform(-1, 1, (5, 64)), rng.uniform(-0.1, 0.1, (1, 64))
    ep = {"probs": softmax((logits - center) / DEFAULT_TEACHER_TEMP, axis=1).astype(np.float32),
          "temperature": np.float32(DEFAULT_STUDENT_TEMP)}
    expected = softmax((logits - center) / DEFAULT_STUDENT_TEMP, axis=1)
    np.testing.assert_allclose(rules._student_temperature_probs(ep), expected, rtol=1e-4, atol=1e-7)


def test_cluster_rules_silhouette_merges_stop_where_the_silhouette_would_fall():
    """benchmarks/cluster_rules.py's silhouette rounds on hand-checked points of a line: two close
    pairs merge (the mean silhouette rises from .929 to .947), a pair seen together never does,
    and three far-apart pairs stay apart (merging the nearest two would drop it from .980 to .659)."""
    rules = benchmark_script("cluster_rules")

    def line(*xs: float) -> np.ndarray:
        x = np.asarray(xs)
        return np.abs(x[:, None] - x[None, :])

    start = np.array([0, 0, 1, 1, 2, 2])
    no_pairs = np.zeros((0, 2), np.int64)
    close = line(0, 0.1, 1.0, 1.1, 10, 10.1)
    np.testing.assert_array_equal(rules.silhouette_merges(close, start, no_pairs), [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(rules.silhouette_merges(close, start, np.array([[0, 2]])), start)
    apart = line(0, 0.1, 5, 5.1, 10, 10.1)
    np.testing.assert_array_equal(rules.silhouette_merges(apart, start, no_pairs), start)
