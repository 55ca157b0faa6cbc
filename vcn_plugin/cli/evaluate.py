"""``vcn evaluate``, ``vcn import-benchmark`` and ``vcn export-benchmark`` (registered on the
``vcn`` group by :mod:`vcn_plugin.cli.main`)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from vcn_plugin.cli.common import load_dataset
from vcn_plugin.fo import schema


@click.command("evaluate")
@click.option("--dataset", "dataset_name", required=True, help="FiftyOne dataset with predictions and ground truth")
@click.option("--pred-field", default=schema.FACES, show_default=True, help="frame Detections field of predictions")
@click.option("--gt-field", default=schema.GT_FACES, show_default=True, help="frame Detections field of ground truth")
@click.option("--eval-key", default=schema.EVAL_KEY, show_default=True, help="run key the evaluation is stored under")
@click.option("--allow-unclustered", is_flag=True, help="score tracks still labelled 'face' as Unknown")
@click.option("--calibrate-boxes", is_flag=True,
              help="map predicted boxes onto the ground truth's box convention before pairing (when the "
                   "ground truth was drawn by another detector or annotation tool)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="also write the full report (metrics, per-identity table, assignments) as JSON")
def evaluate_cmd(dataset_name: str, pred_field: str, gt_field: str, eval_key: str,
                 allow_unclustered: bool, calibrate_boxes: bool, json_out: str | None) -> None:
    """Score predicted identities against ground truth and print the summary."""
    from vcn_plugin.evaluation.evaluate import evaluate_identities, format_report

    dataset = load_dataset(dataset_name)
    try:
        report = evaluate_identities(dataset, pred_field=pred_field, gt_field=gt_field, eval_key=eval_key,
                                     allow_unclustered=allow_unclustered, calibrate_boxes=calibrate_boxes)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    click.echo(format_report(report, markdown=False))
    if json_out:
        Path(json_out).write_text(json.dumps(report.to_dict(), indent=1))
        click.echo(f"report written to {json_out}")


@click.command("import-benchmark")
@click.argument("bench_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", "dataset_name", required=True, help="FiftyOne dataset (created if new)")
def import_benchmark_cmd(bench_dir: str, dataset_name: str) -> None:
    """Import a benchmark (videos/*.mp4 + annotations/*.json) with its ground truth."""
    from vcn_plugin.evaluation.ground_truth import import_benchmark

    try:
        dataset = import_benchmark(bench_dir, dataset_name)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"dataset '{dataset.name}': {len(dataset)} video(s), "
               f"{dataset.count(schema.frame_path(schema.GT_FACES) + '.detections')} ground-truth faces")


@click.command("export-benchmark")
@click.option("--dataset", "dataset_name", required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="benchmark directory to write")
@click.option("--field", "label_field", default=schema.GT_FACES, show_default=True,
              help="frame Detections field to export as tracks (e.g. faces after corrections)")
@click.option("--overwrite", is_flag=True, help="write into a non-empty directory (replaces this export's files)")
def export_benchmark_cmd(dataset_name: str, out_dir: str, label_field: str, overwrite: bool) -> None:
    """Write a dataset as a benchmark that import-benchmark reads back."""
    from vcn_plugin.evaluation.ground_truth import export_benchmark

    dataset = load_dataset(dataset_name)
    try:
        written = export_benchmark(dataset, out_dir, label_field=label_field, overwrite=overwrite)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"wrote {len(written)} video(s) and annotations to {out_dir}")


EVALUATION_COMMANDS = [evaluate_cmd, import_benchmark_cmd, export_benchmark_cmd]
