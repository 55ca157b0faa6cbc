"""The ``vcn`` command line: every stage, with tqdm progress."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from collections.abc import Iterator

import click
from tqdm import tqdm

from vcn_plugin.stage1 import Progress, Stage1Config


@contextmanager
def progress_bar(desc: str) -> Iterator[Progress]:
    """A :data:`Progress` callback drawing a tqdm bar in [0, 100] %."""
    bar = tqdm(total=100, desc=desc, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}] {postfix}")

    def update(fraction: float, message: str) -> None:
        bar.n = round(100 * min(max(fraction, 0.0), 1.0), 1)
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _load_dataset(name: str):
    import fiftyone as fo

    if not fo.dataset_exists(name):
        raise click.ClickException(f"no dataset named '{name}'; create one with 'vcn import PATH --dataset {name}'")
    return fo.load_dataset(name)


def _stage1_config(detector: str, detect_every: int, upsample: int | None) -> Stage1Config:
    options = {} if upsample is None else {"upsample": upsample}
    try:
        return Stage1Config(detector=detector, detector_options=options, detect_every=detect_every)
    except ValueError as err:
        raise click.ClickException(str(err)) from err


@click.group()
@click.version_option(package_name="vcn-plugin")
def main() -> None:
    """VideoClusterNet for FiftyOne: find, track and cluster the faces of videos."""


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--dataset", "dataset_name", required=True, help="FiftyOne dataset (created if new)")
@click.option("--recursive/--no-recursive", default=True, help="search directories recursively")
def import_cmd(paths: tuple[str, ...], dataset_name: str, recursive: bool) -> None:
    """Import video files or directories into a dataset."""
    from vcn_plugin.api import import_videos

    report = import_videos(list(paths), dataset_name, recursive=recursive)
    click.echo(report.summary())
    if not report.added and not report.already_present:
        sys.exit(1)


def _detect(dataset_name: str, config: Stage1Config) -> None:
    from vcn_plugin.api import detect_faces

    dataset = _load_dataset(dataset_name)
    with progress_bar("detect + track") as progress:
        try:
            report = detect_faces(dataset, config, progress)
        except (ValueError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err
    click.echo(report.summary())
    for path, stats in report.processed.items():
        click.echo(f"  {path}: {json.dumps(stats)}")


detector_options = [
    click.option("--detector", default="dlib-hog", show_default=True, help="face detector"),
    click.option("--detect-every", default=2, show_default=True, help="run the detector on every k-th frame"),
    click.option("--upsample", type=int, default=None, help="dlib detectors: times to upsample (finds smaller faces)"),
]


def with_detector_options(fn):
    for option in reversed(detector_options):
        fn = option(fn)
    return fn


@main.command("detect")
@click.option("--dataset", "dataset_name", required=True)
@with_detector_options
def detect_cmd(dataset_name: str, detector: str, detect_every: int, upsample: int | None) -> None:
    """Stage 1: shots, faces, quality and tracks for every video of a dataset."""
    _detect(dataset_name, _stage1_config(detector, detect_every, upsample))


@main.command("run")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--dataset", "dataset_name", required=True)
@with_detector_options
def run_cmd(paths: tuple[str, ...], dataset_name: str, detector: str, detect_every: int, upsample: int | None) -> None:
    """Import videos and run every stage on them."""
    from vcn_plugin.api import import_videos

    config = _stage1_config(detector, detect_every, upsample)
    report = import_videos(list(paths), dataset_name)
    click.echo(report.summary())
    _detect(dataset_name, config)


def _register_commands() -> None:
    from vcn_plugin.cli_eval import EVALUATION_COMMANDS

    for command in EVALUATION_COMMANDS:
        main.add_command(command)


_register_commands()

if __name__ == "__main__":
    main()
