"""``vcn import | detect | finetune | cluster | visualize | run``: the pipeline's stages."""
from __future__ import annotations

import json
import sys

import click

from vcn_plugin.cli.common import (
    FINETUNE_PRESETS,
    finetune_config,
    load_dataset,
    progress_bar,
    stage1_config,
    with_options,
)
from vcn_plugin.clustering.aggregation import (
    DEFAULT_AGREEMENT, DEFAULT_LINKAGE, DEFAULT_NEIGHBOUR_DISTANCE, DEFAULT_ROUNDS, DEFAULT_START, DEFAULT_VIEW_ROUNDS,
    LINKAGES, NEIGHBOUR_DISTANCES, ROUNDS, STARTS,
)
from vcn_plugin.core.student_factors import DEFAULT_PREDICTOR, PREDICTORS
from vcn_plugin.fo import schema
from vcn_plugin.stage1 import Stage1Config
from vcn_plugin.stage1.detectors import DEFAULT_DETECTOR, available_detectors

METHOD_CHOICE = click.Choice(["loss", "cosine", "euclidean", "hac-cosine", "hac-euclidean", "finch", "hdbscan"])

detector_options = [
    click.option("--detector", default=DEFAULT_DETECTOR, show_default=True,
                 help="face detector: " + ", ".join(available_detectors())),
    click.option("--detect-every", default=Stage1Config.detect_every, show_default=True,
                 help="run the detector on every k-th frame"),
    click.option("--upsample", type=int, default=None, help="dlib detectors: times to upsample (finds smaller faces)"),
]

finetune_options = [
    click.option("--backbone", default="dlib-resnet", show_default=True,
                 help="dlib-resnet, or arcface-onnx:/path/to/model.onnx"),
    click.option("--scope", type=click.Choice(["video", "dataset"]), default="video", show_default=True,
                 help="one model per video (paper) or one for the whole dataset (a series)"),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    click.option("--preset", type=click.Choice(FINETUNE_PRESETS), default="default", show_default=True,
                 help="tiny: a few steps, for smoke tests"),
]


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--dataset", "dataset_name", required=True, help="FiftyOne dataset (created if new)")
@click.option("--recursive/--no-recursive", default=True, help="search directories recursively")
def import_cmd(paths: tuple[str, ...], dataset_name: str, recursive: bool) -> None:
    """Import video files or directories into a dataset."""
    from vcn_plugin.fo.datasets import import_videos

    report = import_videos(list(paths), dataset_name, recursive=recursive)
    click.echo(report.summary())
    if not report.added and not report.already_present:
        sys.exit(1)


def _detect(dataset_name: str, config: Stage1Config, parallel_videos: int | None = None) -> None:
    from vcn_plugin.steps.detect import detect_faces

    dataset = load_dataset(dataset_name)
    with progress_bar("detect + track") as progress:
        try:
            report = detect_faces(dataset, config, progress, parallel_videos=parallel_videos)
        except (ValueError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err
    click.echo(report.summary())
    for path, stats in report.processed.items():
        click.echo(f"  {path}: {json.dumps(stats)}")
    if report.failed:
        raise click.ClickException(f"stage 1 failed on {len(report.failed)} of "
                                   f"{len(report.failed) + len(report.processed)} video(s): {', '.join(report.failed)}")


@click.command("detect")
@click.option("--dataset", "dataset_name", required=True)
@with_options(detector_options)
@click.option("--parallel-videos", type=click.IntRange(min=1), default=None,
              help="videos processed at once (default: 4 when the detector runs on a GPU, else 1)")
def detect_cmd(dataset_name: str, detector: str, detect_every: int, upsample: int | None,
               parallel_videos: int | None) -> None:
    """Stage 1: shots, faces, quality and tracks for every video of a dataset."""
    _detect(dataset_name, stage1_config(detector, detect_every, upsample), parallel_videos)


def _finetune(dataset_name: str, backbone: str, scope: str, device: str, run_key: str, preset: str) -> None:
    from vcn_plugin.steps.finetune import finetune_dataset

    dataset = load_dataset(dataset_name)
    config = finetune_config(preset, device)
    with progress_bar("finetune") as progress:
        try:
            summary = finetune_dataset(dataset, backbone=backbone, run_key=run_key, scope=scope, config=config,
                                       progress=progress)
        except (ValueError, FileNotFoundError, RuntimeError) as err:
            raise click.ClickException(str(err)) from err
    click.echo(summary.summary())


@click.command("finetune")
@click.option("--dataset", "dataset_name", required=True)
@with_options(finetune_options)
@click.option("--run-key", default=schema.FINETUNE_RUN, show_default=True)
def finetune_cmd(dataset_name: str, backbone: str, scope: str, device: str, preset: str, run_key: str) -> None:
    """Stage 2: adapt the face-ID model to each video, without labels."""
    _finetune(dataset_name, backbone, scope, device, run_key, preset)


def _cluster(dataset_name: str, method: str, guard: bool, threshold: float | None, finetuned: bool,
             run_key: str, finetune_run: str, linkage: str = DEFAULT_LINKAGE,
             start: str = DEFAULT_START, predictor: str = DEFAULT_PREDICTOR,
             neighbour_distance: str = DEFAULT_NEIGHBOUR_DISTANCE, rounds: str = DEFAULT_ROUNDS,
             agreement: bool = DEFAULT_AGREEMENT, view_rounds: bool = DEFAULT_VIEW_ROUNDS) -> None:
    from vcn_plugin.steps.cluster import cluster_identities

    dataset = load_dataset(dataset_name)
    with progress_bar(f"cluster ({method})") as progress:
        try:
            summary = cluster_identities(dataset, method=method, guard=guard, threshold=threshold,
                                         finetuned=finetuned, run_key=run_key, finetune_run=finetune_run,
                                         progress=progress, linkage=linkage, start=start,
                                         predictor=predictor, neighbour_distance=neighbour_distance,
                                         rounds=rounds, agreement=agreement, view_rounds=view_rounds)
        except (ValueError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err
    click.echo(summary.summary())
    counts: dict[str, int] = {}
    for name in summary.identities.values():
        counts[name] = counts.get(name, 0) + 1
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  {name}: {n} track(s)")


@click.command("cluster")
@click.option("--dataset", "dataset_name", required=True)
@click.option("--method", type=METHOD_CHOICE, default="loss", show_default=True)
@click.option("--guard/--no-guard", default=True, show_default=True,
              help="never merge tracks seen in the same frame")
@click.option("--threshold", type=float, default=None, help="HAC methods only: distance threshold")
@click.option("--finetuned/--pretrained", default=True, show_default=True,
              help="embedding methods: use the finetuned model when a finetuning run exists")
@click.option("--run-key", default=schema.CLUSTER_RUN, show_default=True)
@click.option("--finetune-run", default=schema.FINETUNE_RUN, show_default=True)
@click.option("--linkage", type=click.Choice(LINKAGES), default=DEFAULT_LINKAGE, show_default=True,
              help="loss/cosine/Euclidean, with --rounds threshold: merge every accepted pair transitively (the "
                   "paper), or only mutual nearest clusters per round")
@click.option("--start", type=click.Choice(STARTS), default=DEFAULT_START, show_default=True,
              help="loss/cosine/Euclidean: best: run the rounds from the first-neighbours start and from single "
                   "tracks, keeping the result with the higher mean silhouette; first-neighbours: first link every "
                   "track to its nearest track (mutual-neighbours: only mutual nearest tracks), then the rounds; "
                   "threshold: no start round (the paper exactly, with --rounds threshold)")
@click.option("--neighbours", "neighbour_distance", type=click.Choice(NEIGHBOUR_DISTANCES),
              default=DEFAULT_NEIGHBOUR_DISTANCE, show_default=True,
              help="loss/cosine/Euclidean: nearest by the distance minus the two clusters' own thresholds "
                   "(excess), or by the raw distance; auto: excess for the loss, raw for the others")
@click.option("--rounds", type=click.Choice(ROUNDS), default=DEFAULT_ROUNDS, show_default=True,
              help="loss/cosine/Euclidean: after the start, merge mutually nearest clusters while the tracks' "
                   "mean silhouette rises, or run the paper's threshold rounds")
@click.option("--agreement/--no-agreement", default=DEFAULT_AGREEMENT, show_default=True,
              help="loss: with --start best, also start from the first-neighbour links whose tracks the "
                   "finetuned backbone's cosine puts in one cluster of its own first partition; with a "
                   "neighbours start, keep only those links")
@click.option("--view-rounds/--no-view-rounds", default=DEFAULT_VIEW_ROUNDS, show_default=True,
              help="loss, with --agreement: after the loss's rounds, merge clusters that are each other's nearest "
                   "by the finetuned backbone's mean cosine while the tracks' mean silhouette on that cosine rises")
@click.option("--predictor", type=click.Choice(PREDICTORS), default=DEFAULT_PREDICTOR, show_default=True,
              help="loss: the network whose log-probabilities are the loss's predictor side, the EMA teacher "
                   "or the student (the paper exactly)")
def cluster_cmd(dataset_name: str, method: str, guard: bool, threshold: float | None, finetuned: bool,
                run_key: str, finetune_run: str, linkage: str, start: str, neighbour_distance: str,
                rounds: str, agreement: bool, view_rounds: bool, predictor: str) -> None:
    """Stage 3: cluster face tracks into identities (labels, track records, a run)."""
    _cluster(dataset_name, method, guard, threshold, finetuned, run_key, finetune_run, linkage, start, predictor,
             neighbour_distance, rounds, agreement, view_rounds)


@click.command("visualize")
@click.option("--dataset", "dataset_name", required=True)
@click.option("--brain-key", default=schema.UMAP_BRAIN_KEY, show_default=True)
def visualize_cmd(dataset_name: str, brain_key: str) -> None:
    """UMAP of track embeddings, for the Embeddings panel of the track dataset."""
    from vcn_plugin.fo.track_records import tracks_dataset_name
    from vcn_plugin.steps.cluster import visualize_identities

    dataset = load_dataset(dataset_name)
    try:
        visualize_identities(dataset, brain_key)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"open '{tracks_dataset_name(dataset)}' in the App and the Embeddings panel ('{brain_key}')")


@click.command("run")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--dataset", "dataset_name", required=True)
@with_options(detector_options)
@with_options(finetune_options)
@click.option("--method", type=METHOD_CHOICE, default="loss", show_default=True)
@click.option("--fan-out", is_flag=True,
              help="queue one delegated operation per video for 'fiftyone delegated launch' workers instead")
def run_cmd(paths: tuple[str, ...], dataset_name: str, detector: str, detect_every: int, upsample: int | None,
            backbone: str, scope: str, device: str, preset: str, method: str, fan_out: bool) -> None:
    """Import videos and run every stage: detect + track, finetune, cluster."""
    from vcn_plugin.fo.datasets import import_videos

    config = stage1_config(detector, detect_every, upsample)
    report = import_videos(list(paths), dataset_name)
    click.echo(report.summary())
    if not report.added and not report.already_present:
        raise click.ClickException(f"no video was imported from {', '.join(paths)}, so there is nothing to process: "
                                   "each file above says why it was skipped")
    if fan_out:
        _fan_out(dataset_name, {"detector": detector, "detect_every": detect_every, "backbone": backbone,
                                "preset": preset})
        return
    _detect(dataset_name, config)
    if method == "loss":
        _finetune(dataset_name, backbone, scope, device, schema.FINETUNE_RUN, preset)
    _cluster(dataset_name, method, True, None, True, schema.CLUSTER_RUN, schema.FINETUNE_RUN)


def _fan_out(dataset_name: str, params: dict) -> None:
    from vcn_plugin.fo.operations import queue_videos

    try:
        n = queue_videos(load_dataset(dataset_name), params)
    except RuntimeError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"queued {n} delegated operation(s), one per video; the last one done queues the clustering. "
               "Start workers with 'fiftyone delegated launch'")


STAGE_COMMANDS = [import_cmd, detect_cmd, finetune_cmd, cluster_cmd, visualize_cmd, run_cmd]
