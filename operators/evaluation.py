"""Operators for ground truth and evaluation: import a benchmark, evaluate identities."""
from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from vcn_plugin.evaluation.evaluate import DEFAULT_EVAL_KEY, evaluate_identities, format_report
from vcn_plugin.evaluation.ground_truth import import_benchmark
from vcn_plugin.fo import schema

from .common import finish, light_config, refuse_non_video, require_video_dataset

_IDENTITY_COLUMNS = (
    ("identity", "Identity"), ("gt_tracks", "GT tracks"), ("missed_gt_tracks", "Missed"),
    ("pred_tracks", "Predicted tracks"), ("unknown", "Unknown"), ("purity", "Purity"),
    ("dominant_cluster", "Dominant cluster"), ("clusters", "Clusters (tracks)"),
)  # fmt: skip


def _detections_fields(dataset: fo.Dataset) -> list[str]:
    return sorted(dataset.get_frame_field_schema(embedded_doc_type=fo.Detections) or {})


def _field_dropdown(inputs: types.Object, name: str, label: str, choices: list[str], default: str) -> None:
    dropdown = types.Dropdown()
    for choice in choices:
        dropdown.add_choice(choice, label=f"frames.{choice}")
    inputs.enum(name, dropdown.values(), required=True, label=label, view=dropdown,
                default=default if default in choices else (choices[0] if choices else None))


class EvaluateIdentities(foo.Operator):
    @property
    def config(self):
        return light_config("evaluate_identities", "Evaluate identities",
                            "Score predicted face identities, detection and tracking against ground truth",
                            allow_immediate_execution=True, allow_delegated_execution=True,
                            default_choice_to_delegated=False)

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not require_video_dataset(ctx, inputs):
            return types.Property(inputs)
        fields = _detections_fields(ctx.dataset)
        if len(fields) < 1:
            inputs.view("no_fields", types.Warning(
                label="No frame Detections fields",
                description="Detect faces and import ground truth (vcn: Import benchmark) first"))
            return types.Property(inputs)
        inputs.view_target(ctx)
        _field_dropdown(inputs, "pred_field", "Predictions", fields, schema.FACES)
        _field_dropdown(inputs, "gt_field", "Ground truth", fields, schema.GT_FACES)
        inputs.str("eval_key", default=DEFAULT_EVAL_KEY, required=True, label="Evaluation key",
                   description="Stored as a run under this key; an existing evaluation with it is replaced")
        inputs.bool("allow_unclustered", default=False, label="Allow unclustered tracks",
                    description="Score tracks still labelled 'face' as Unknown instead of failing")
        return types.Property(inputs, view=types.View(label="Evaluate identities"))

    def execute(self, ctx):
        report = evaluate_identities(
            ctx.target_view(),
            pred_field=ctx.params.get("pred_field", schema.FACES),
            gt_field=ctx.params.get("gt_field", schema.GT_FACES),
            eval_key=ctx.params.get("eval_key") or DEFAULT_EVAL_KEY,
            allow_unclustered=bool(ctx.params.get("allow_unclustered", False)),
        )
        excluded = report.clustering["exclude"]
        finish(ctx, f"WCP {excluded['wcp']:.3f} at cluster ratio {excluded['cluster_ratio']:.2f}")
        return {
            "eval_key": report.eval_key,
            "summary": format_report(report, markdown=True),
            "metrics": [{k: _cell(v) for k, v in row.items()} for row in report.summary_rows()],
            "per_identity": [
                {key: _cell(getattr(row, key)) for key, _ in _IDENTITY_COLUMNS} for row in report.per_identity
            ],
            "purity_plot": _purity_plot(report),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("eval_key", label="Evaluation key")
        metrics = types.TableView()
        for key, label in (("metric", "Metric"), ("exclude", "Unknown excluded"), ("singleton", "Unknown as singletons")):
            metrics.add_column(key, label=label)
        outputs.list("metrics", types.Object(), label="Clustering", view=metrics)
        identities = types.TableView()
        for key, label in _IDENTITY_COLUMNS:
            identities.add_column(key, label=label)
        outputs.list("per_identity", types.Object(), label="Per identity", view=identities)
        outputs.plot(
            "purity_plot",
            label="Where each identity went",
            layout={"barmode": "stack", "xaxis": {"title": "identity"}, "yaxis": {"title": "tracks"},
                    "height": 360},
        )
        outputs.str("summary", label="Full report", view=types.MarkdownView())
        return types.Property(outputs, view=types.View(label="Identity evaluation"))


def _purity_plot(report) -> list[dict]:
    """Stacked bars: per ground-truth identity, its tracks in its dominant cluster, in other
    clusters, and Unknown. A perfect clustering is one solid colour."""
    rows = report.per_identity
    names = [row.identity for row in rows]
    dominant = [row.clusters.get(row.dominant_cluster, 0) if row.dominant_cluster else 0 for row in rows]
    elsewhere = [sum(row.clusters.values()) - d for row, d in zip(rows, dominant)]
    unknown = [row.unknown for row in rows]
    return [
        {"type": "bar", "name": "in its main cluster", "x": names, "y": dominant},
        {"type": "bar", "name": "split off to other clusters", "x": names, "y": elsewhere},
        {"type": "bar", "name": "Unknown", "x": names, "y": unknown},
    ]


def _cell(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return ", ".join(f"{k} ({v})" for k, v in value.items())
    return value


class ImportBenchmark(foo.Operator):
    @property
    def config(self):
        return light_config("import_benchmark", "Import benchmark",
                            "Add a benchmark's videos and fill frames.gt_faces and gt_shots from its annotations",
                            view_target=False)

    def resolve_input(self, ctx):
        inputs = types.Object()
        if refuse_non_video(ctx, inputs):
            return types.Property(inputs)
        inputs.file(
            "bench_dir",
            required=True,
            label="Benchmark directory",
            description="Holds videos/*.mp4 and annotations/<video stem>.json; a rerun replaces the ground truth",
            view=types.FileExplorerView(choose_dir=True, button_label="Choose a directory..."),
        )
        return types.Property(inputs, view=types.View(label="Import benchmark"))

    def execute(self, ctx):
        bench_dir = ctx.params.get("bench_dir")
        if isinstance(bench_dir, dict):
            bench_dir = bench_dir.get("absolute_path")
        if not bench_dir:
            raise ValueError("Choose the benchmark directory (it holds videos/ and annotations/)")
        if ctx.dataset is None:
            raise ValueError("Open or create a dataset first: the benchmark is imported into the current dataset")
        dataset = import_benchmark(bench_dir, ctx.dataset)
        faces = dataset.count(f"{schema.frame_path(schema.GT_FACES)}.detections")
        finish(ctx, f"{len(dataset)} video(s), {faces} ground-truth faces")
        return {"videos": len(dataset), schema.GT_FACES: faces}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("videos", label="Videos in the dataset")
        outputs.int(schema.GT_FACES, label="Ground-truth faces")
        return types.Property(outputs, view=types.View(label="Benchmark imported"))


EVALUATION_OPERATORS = [EvaluateIdentities, ImportBenchmark]
