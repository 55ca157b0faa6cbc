"""Identity evaluation in FiftyOne: hand-computed metrics, the stored run, CLI and operator.

The scenario (ground truth from :data:`test_gt_io.BENCHMARK`, predictions derived from it):

* ep_a: alice track 0 -> person_01; bob track 1 split by the tracker into predicted tracks 1
  (frames 1-10) and 5 (frames 11-20), both person_02; alice track 2 -> person_02 (the
  clustering error); the distractor track 3 -> person_03 (not scored: extras have no identity).
* ep_b: bob track 0 -> person_02 with frames 10-11 missed (a fragmentation); carol track 1 ->
  Unknown; predicted track 7 on empty background, frames 1-5 -> person_01 (a false detection).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.evaluation.test_gt_io import new_name, write_benchmark

#: (video, ground-truth track) -> (predicted label, predicted track id for frames <= 10, for frames > 10)
PREDICTIONS = {
    ("ep_a.mp4", 0): ("person_01", 0, 0),
    ("ep_a.mp4", 1): ("person_02", 1, 5),
    ("ep_a.mp4", 2): ("person_02", 2, 2),
    ("ep_a.mp4", 3): ("person_03", 3, 3),
    ("ep_b.mp4", 0): ("person_02", 0, 0),
    ("ep_b.mp4", 1): ("Unknown", 1, 1),
}
MISSED = {("ep_b.mp4", 0): {10, 11}}
FALSE_TRACK = ("ep_b.mp4", 7, range(1, 6), [0.8, 0.75, 0.1, 0.15])


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return write_benchmark(tmp_path_factory.mktemp("bench"))


def write_predictions(dataset, predictions=PREDICTIONS, field: str = "faces") -> None:
    """``frames.<field>`` derived from ``gt_faces`` as :data:`PREDICTIONS` and friends say."""
    import fiftyone as fo

    if not dataset.has_frame_field(field):
        dataset.add_frame_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    for sample in dataset:
        video = Path(sample.filepath).name
        for number, frame in sample.frames.items():
            dets = []
            for gt in frame.gt_faces.detections if frame.gt_faces else []:
                label, early, late = predictions[(video, gt.index)]
                if number not in MISSED.get((video, gt.index), ()):
                    dets.append(fo.Detection(label=label, bounding_box=gt.bounding_box, confidence=0.9,
                                             index=early if number <= 10 else late))
            if video == FALSE_TRACK[0] and number in FALSE_TRACK[2]:
                dets.append(fo.Detection(label="person_01", bounding_box=FALSE_TRACK[3], index=FALSE_TRACK[1]))
            frame[field] = fo.Detections(detections=dets)
        sample.save()


@pytest.fixture(scope="module")
def scored(bench):
    """The benchmark with :data:`PREDICTIONS`, shared by tests that only add evaluation runs."""
    from vcn_plugin.evaluation.ground_truth import import_benchmark

    ds = import_benchmark(bench, new_name())
    write_predictions(ds)
    return ds


@pytest.fixture
def dataset(scored):
    """A private copy of :func:`scored` without runs, for tests that change labels."""
    ds = scored.clone(new_name())
    ds.delete_runs()
    return ds


def _nmi(gt: list[str], pred: list[str]) -> float:
    """NMI by its definition: I(U, V) / mean(H(U), H(V)) with natural logs."""
    n = len(gt)

    def entropy(labels):
        return -sum(labels.count(x) / n * math.log(labels.count(x) / n) for x in set(labels))

    mi = 0.0
    for g in set(gt):
        for p in set(pred):
            joint = sum(1 for a, b in zip(gt, pred) if (a, b) == (g, p)) / n
            if joint:
                mi += joint * math.log(joint / (gt.count(g) / n * pred.count(p) / n))
    return mi / ((entropy(gt) + entropy(pred)) / 2)


def test_metrics_match_hand_computed_values(scored):
    from vcn_plugin.evaluation.evaluate import evaluate_identities

    report = evaluate_identities(scored)
    ex, single = report.clustering["exclude"], report.clustering["singleton"]
    # exclude: alice -> {p1: 1, p2: 1}, bob -> {p2: 3}
    assert (ex["n_tracks"], ex["n_evaluated"], ex["n_unknown"]) == (6, 5, 1)
    assert (ex["n_clusters"], ex["n_identities"], ex["cluster_ratio"]) == (2, 2, 1.0)
    assert ex["coverage"] == pytest.approx(5 / 6)
    assert ex["wcp"] == pytest.approx(4 / 5) and ex["accuracy"] == pytest.approx(4 / 5)
    # pairs: TP = C2(3) = 3; cluster pairs C2(1) + C2(4) = 6; identity pairs C2(2) + C2(3) = 4
    assert (ex["pairwise_precision"], ex["pairwise_recall"]) == pytest.approx((0.5, 0.75))
    assert ex["pairwise_f"] == pytest.approx(0.6)
    assert ex["bcubed_precision"] == pytest.approx((1 + 1 / 4 + 9 / 4) / 5)
    assert ex["bcubed_recall"] == pytest.approx((1 / 2 + 1 / 2 + 3) / 5)
    assert ex["nmi"] == pytest.approx(_nmi(["a", "b", "b", "a", "b"], ["1", "2", "2", "2", "2"]))
    # singleton: carol's Unknown track becomes its own cluster
    assert (single["n_clusters"], single["n_identities"], single["n_evaluated"]) == (3, 3, 6)
    assert single["wcp"] == pytest.approx(5 / 6) and single["accuracy"] == pytest.approx(5 / 6)
    assert single["bcubed_precision"] == pytest.approx((1 + 1 / 4 + 9 / 4 + 1) / 6)
    assert single["pairwise_precision"] == pytest.approx(0.5)

    d, t = report.detection, report.tracking
    gt_boxes, pred_boxes = 43 + 35, 43 + 35 - 2 + 5
    assert (d.gt_boxes, d.pred_boxes, d.true_positives, d.false_positives, d.false_negatives) == (
        gt_boxes, pred_boxes, gt_boxes - 2, 5, 2)
    assert d.recall == pytest.approx(76 / 78) and d.precision == pytest.approx(76 / 81)
    assert d.mean_iou == pytest.approx(1.0)
    assert (t.gt_tracks, t.pred_tracks, t.matched_pred_tracks, t.false_detection_tracks) == (6, 8, 7, 1)
    assert (t.gt_tracks_missed, t.id_switches, t.fragmentations) == (0, 1, 1)
    assert t.pred_tracks_per_gt_track == pytest.approx(7 / 6)
    assert report.n_distractor_tracks == 1

    rows = {r.identity: r for r in report.per_identity}
    assert sorted(rows) == ["alice", "bob", "carol"]
    assert (rows["alice"].gt_tracks, rows["alice"].pred_tracks, rows["alice"].purity) == (2, 2, 0.5)
    assert rows["alice"].clusters == {"person_01": 1, "person_02": 1}
    assert (rows["bob"].pred_tracks, rows["bob"].purity, rows["bob"].dominant_cluster) == (3, 1.0, "person_02")
    assert (rows["carol"].unknown, rows["carol"].dominant_cluster, rows["carol"].clusters) == (1, None, {})


def test_assignments_list_every_predicted_track(scored):
    from vcn_plugin.evaluation.evaluate import evaluate_identities

    report = evaluate_identities(scored)
    got = {(a["video"], a["track"]): (a["gt"], a["pred"], a["distractor"]) for a in report.assignments}
    assert got == {
        ("ep_a.mp4", 0): ("alice", "person_01", False),
        ("ep_a.mp4", 1): ("bob", "person_02", False),
        ("ep_a.mp4", 5): ("bob", "person_02", False),
        ("ep_a.mp4", 2): ("alice", "person_02", False),
        ("ep_a.mp4", 3): ("extra", "person_03", True),
        ("ep_b.mp4", 0): ("bob", "person_02", False),
        ("ep_b.mp4", 1): ("carol", "Unknown", False),
        ("ep_b.mp4", 7): (None, "person_01", False),
    }
    assert len(report.assignments) == 8


def test_run_is_stored_listed_reloaded_and_replaced(dataset):
    from vcn_plugin.evaluation.evaluate import delete_evaluation, evaluate_identities, list_evaluations, load_evaluation

    report = evaluate_identities(dataset)
    assert list_evaluations(dataset) == ["vcn_eval"]
    assert load_evaluation(dataset, "vcn_eval").to_dict() == report.to_dict()

    fixed = {**PREDICTIONS, ("ep_a.mp4", 2): ("person_01", 2, 2)}  # correct alice's second track
    write_predictions(dataset, fixed)
    evaluate_identities(dataset)
    stored = load_evaluation(dataset, "vcn_eval")
    assert stored.clustering["exclude"]["wcp"] == 1.0 and stored.clustering["exclude"]["accuracy"] == 1.0
    assert list_evaluations(dataset) == ["vcn_eval"]

    evaluate_identities(dataset.match({"filepath": {"$regex": "ep_a"}}), eval_key="only_a")
    assert sorted(list_evaluations(dataset)) == ["only_a", "vcn_eval"]
    assert {a["video"] for a in load_evaluation(dataset, "only_a").assignments} == {"ep_a.mp4"}
    delete_evaluation(dataset, "only_a")
    assert list_evaluations(dataset) == ["vcn_eval"]
    with pytest.raises(KeyError, match="no run 'only_a'"):
        load_evaluation(dataset, "only_a")


def test_unclustered_predictions_need_the_flag(dataset):
    from vcn_plugin.evaluation.evaluate import evaluate_identities

    unclustered = {k: ("face", *v[1:]) for k, v in PREDICTIONS.items()}
    write_predictions(dataset, unclustered)
    with pytest.raises(ValueError, match="not clustered yet"):
        evaluate_identities(dataset)
    report = evaluate_identities(dataset, allow_unclustered=True)
    assert report.clustering["exclude"]["n_evaluated"] == 0 and report.clustering["exclude"]["wcp"] == 0.0
    assert report.clustering["singleton"]["n_unknown"] == 6
    assert report.detection.true_positives == 76  # detection and tracking are still scored


def test_bad_inputs_give_clear_errors(dataset):
    from vcn_plugin.evaluation.evaluate import evaluate_identities

    assert dataset.list_runs() == []
    with pytest.raises(ValueError, match="no frame field 'nope'"):
        evaluate_identities(dataset, pred_field="nope")
    with pytest.raises(ValueError, match="valid Python identifier"):
        evaluate_identities(dataset, eval_key="my eval")
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_identities(dataset, iou_threshold=0.0)
    assert dataset.list_runs() == []


def test_format_report_has_summary_and_identity_table(scored):
    from vcn_plugin.evaluation.evaluate import evaluate_identities, format_report

    report = evaluate_identities(scored)
    md = format_report(report, markdown=True)
    assert "| WCP | 0.800 | 0.833 |" in md
    assert "| alice | 2 | 0 | 2 | 0 | 0.500 | person_01 | person_01 (1), person_02 (1) |" in md
    text = format_report(report, markdown=False)
    assert "ID switches" in text and "|" not in text


def test_cli_evaluate_and_benchmark_commands(dataset, tmp_path):
    from click.testing import CliRunner

    from vcn_plugin.cli.evaluate import evaluate_cmd, export_benchmark_cmd, import_benchmark_cmd

    runner = CliRunner()
    out = tmp_path / "report.json"
    result = runner.invoke(evaluate_cmd, ["--dataset", dataset.name, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "WCP" in result.output
    data = json.loads(out.read_text())
    assert data["clustering"]["exclude"]["wcp"] == pytest.approx(0.8) and len(data["assignments"]) == 8

    result = runner.invoke(evaluate_cmd, ["--dataset", dataset.name, "--gt-field", "nope"])
    assert result.exit_code != 0 and "no frame field 'nope'" in result.output

    result = runner.invoke(export_benchmark_cmd, ["--dataset", dataset.name, "--out", str(tmp_path / "exp")])
    assert result.exit_code == 0, result.output
    name = new_name()
    result = runner.invoke(import_benchmark_cmd, [str(tmp_path / "exp"), "--dataset", name])
    assert result.exit_code == 0, result.output
    assert "78 ground-truth faces" in result.output


# --------------------------------------------------------------------------- operators


def test_evaluate_identities_operator(scored, run_operator):
    from vcn_plugin.evaluation.evaluate import load_evaluation

    out = run_operator("evaluate_identities", scored,
                       {"pred_field": "faces", "gt_field": "gt_faces", "eval_key": "app_eval"})
    assert out["eval_key"] == "app_eval"
    wcp = next(row for row in out["metrics"] if row["metric"] == "WCP")
    assert (wcp["exclude"], wcp["singleton"]) == (0.8, round(5 / 6, 4))
    assert [row["identity"] for row in out["per_identity"]] == ["alice", "bob", "carol"]
    bars = {trace["name"]: dict(zip(trace["x"], trace["y"])) for trace in out["purity_plot"]}
    per_identity = {row.identity: row for row in load_evaluation(scored, "app_eval").per_identity}
    for name, row in per_identity.items():
        assert bars["Unknown"][name] == row.unknown
        assert bars["in its main cluster"][name] + bars["split off to other clusters"][name] == sum(row.clusters.values())
    assert "| WCP |" in out["summary"]
    assert load_evaluation(scored, "app_eval").clustering["exclude"]["wcp"] == pytest.approx(0.8)


def test_import_benchmark_operator(bench, tmp_path, run_operator):
    import fiftyone as fo

    ds = fo.Dataset(new_name())
    out = run_operator("import_benchmark", ds, {"bench_dir": {"absolute_path": str(bench)}})
    assert out == {"videos": 2, "gt_faces": 78}
    assert ds.distinct("frames.gt_faces.detections.label") == ["alice", "bob", "carol", "extra"]
