"""``vcn benchmark build | run | sweep``: benchmark episodes and the ablation table.

A plain :class:`click.Group`; :mod:`vcn_plugin.cli.main` adds it to the ``vcn`` command.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from tqdm import tqdm

from vcn_plugin.cli.common import FINETUNE_PRESETS, finetune_config, progress_bar, stage1_config, with_options
from vcn_plugin.stage1.pipeline import Stage1Config

#: the builder's presets (kept literal so `vcn --help` does not import the renderer; a test keeps them equal)
PRESET_NAMES = ["default", "static", "paper", "hard", "720p", "series", "quick"]


@contextmanager
def _episode_bar(desc: str, total: int) -> Iterator:
    """A builder ``progress(done, total, message)`` callback drawing a tqdm bar over episodes."""
    bar = tqdm(total=total, desc=desc, unit="episode")

    def update(done: int, total_: int, message: str) -> None:
        bar.n = done
        bar.set_postfix_str(message[:60], refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _split(values: tuple[str, ...]) -> list[str]:
    """Values of a repeatable option, each may also be comma-separated."""
    return [v for item in values for v in item.split(",") if v]


def _stage1_config(detector: str, upsample: int | None, detect_every: int):
    """Stage 1 of a benchmark run: the benchmark's own detector options when it is that detector."""
    from vcn_plugin.benchmark.runner import BENCHMARK_STAGE1

    options = BENCHMARK_STAGE1.detector_options if detector == BENCHMARK_STAGE1.detector else {}
    return stage1_config(detector, detect_every, upsample, options)


def _overrides(**values) -> dict | None:
    """EpisodeConfig overrides from the options that were given."""
    given = {k: v for k, v in values.items() if v is not None}
    return given or None


def _threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


_DEFAULT_STAGE1 = Stage1Config()

run_options = [
    click.option("--finetune-preset", type=click.Choice(FINETUNE_PRESETS), default="default", show_default=True,
                 help="default: minutes per episode on a CPU; tiny: seconds (smoke runs)"),
    click.option("--quick-finetune", is_flag=True, help="same as --finetune-preset tiny"),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                 help="where finetuning runs"),
    click.option("--detector", default=_DEFAULT_STAGE1.detector, show_default=True,
                 help="stage-1 face detector (the product's default unless compared on purpose)"),
    click.option("--upsample", type=int, default=None,
                 help="dlib detectors: times to upsample (1 finds ~40 px faces)"),
    click.option("--detect-every", type=int, default=_DEFAULT_STAGE1.detect_every, show_default=True,
                 help="detect on every k-th frame"),
    click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"),
]  # fmt: skip


@click.group("benchmark")
def benchmark() -> None:
    """Build benchmark episodes from identity-labelled photos and run the ablation table."""


@benchmark.command("build")
@click.option("--faces", "faces_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="folder of identity subfolders of photos (e.g. ../shared/data/faces)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="benchmark folder to write")
@click.option("--episodes", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="default", show_default=True)
@click.option("--look", default=None, help="episode-wide look: none, teal_orange, bleach_bypass, tinted_mono, "
                                           "day_for_night, low_key")
@click.option("--severity", type=click.IntRange(0, 3), default=None, help="look severity 0-3")
@click.option("--cast", "cast_mode", type=click.Choice(["random", "lookalike"]), default=None,
              help="how casts are drawn (the preset decides when not given)")
@click.option("--shots-per-scene", type=(int, int), default=None, metavar="MIN MAX",
              help="consecutive shots per scene; a character keeps one photo through a scene "
                   "(default 1 1: a new photo in every shot)")
@click.option("--variation", type=click.Choice(["realistic", "static"]), default=None,
              help="within-track change: realistic (morphs, expressions, light; default) or static (one still photo per track)")
def build_cmd(faces_dir: str, out_dir: str, episodes: int, seed: int, preset: str, look: str | None,
              severity: int | None, cast_mode: str | None, shots_per_scene: tuple[int, int] | None,
              variation: str | None) -> None:
    """Render benchmark episodes with exact ground truth into OUT."""
    from vcn_plugin.benchmark import EpisodeConfig, build_benchmark

    overrides = {"seed": seed}
    for key, value in (("look", look), ("look_severity", severity), ("cast_mode", cast_mode),
                       ("shots_per_scene", shots_per_scene), ("variation", variation)):
        if value is not None:
            overrides[key] = value
    if look not in (None, "none") and severity is None:
        overrides["look_severity"] = 2
    try:
        config = EpisodeConfig.preset(preset, **overrides)
        with _episode_bar("build", episodes) as progress:
            manifest = build_benchmark(faces_dir, out_dir, episodes, config, progress)
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err
    for e in manifest.episodes:
        click.echo(f"{e.video}: {e.n_identities} identities, {e.n_tracks} tracks, {e.n_shots} shots, "
                   f"{e.n_frames} frames, look {e.look} s{e.look_severity}, {e.seconds} s")
    if manifest.skipped_photos:
        click.echo(f"{len(manifest.skipped_photos)} photo(s) without a detectable face were skipped (see manifest.json)")
    click.echo(f"benchmark written to {out_dir} (manifest.json, videos/, annotations/)")


@benchmark.command("run")
@click.argument("bench_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="write rows (with every track's assignment) and per-episode stage numbers as JSON")
@click.option("--series/--no-series", default=None,
              help="also score across episodes (one finetune over all of them); default: when the manifest "
                   "says the episodes share a cast (--preset series)")
@with_options(run_options)
def run_cmd(bench_dir: str, json_out: str | None, series: bool | None, finetune_preset: str, quick_finetune: bool,
            device: str, detector: str, upsample: int | None, detect_every: int, threads: int | None) -> None:
    """Run every ablation row on BENCH_DIR and print the table."""
    from vcn_plugin.benchmark.runner import run_benchmark

    _threads(threads)
    finetune = finetune_config("tiny" if quick_finetune else finetune_preset, device)
    stage1 = _stage1_config(detector, upsample, detect_every)
    try:
        with progress_bar("benchmark") as progress:
            result = run_benchmark(bench_dir, json_out, finetune_config=finetune, stage1_config=stage1, series=series,
                                   progress=progress)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(result.to_markdown())
    if json_out:
        click.echo(f"JSON written to {json_out}")


@benchmark.command("sweep")
@click.option("--faces", "faces_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="folder for the per-cell benchmarks (reused when built the same way)")
@click.option("--looks", multiple=True, default=["teal_orange,day_for_night"], show_default=True,
              help="looks, comma-separated or repeated")
@click.option("--severities", multiple=True, default=["0,1,2,3"], show_default=True,
              help="severities 0-3, comma-separated or repeated")
@click.option("--episodes", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="default", show_default=True)
@click.option("--cast", "cast_mode", type=click.Choice(["random", "lookalike"]), default=None)
@click.option("--shots-per-scene", type=(int, int), default=None, metavar="MIN MAX",
              help="consecutive shots per scene (one photo per character per scene)")
@click.option("--variation", type=click.Choice(["realistic", "static"]), default=None,
              help="within-track change: realistic (morphs, expressions, light; default) or static (one still photo per track)")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None)
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              help="PNG of accuracy and cluster ratio against severity per method")
@click.option("--quick", is_flag=True, help="quick preset, 1 episode, tiny finetuning (smoke run)")
@with_options(run_options)
def sweep_cmd(faces_dir: str, out_dir: str, looks: tuple[str, ...], severities: tuple[str, ...], episodes: int,
              preset: str, cast_mode: str | None, shots_per_scene: tuple[int, int] | None, variation: str | None, seed: int, json_out: str | None, plot_out: str | None, quick: bool,
              finetune_preset: str, quick_finetune: bool, device: str, detector: str, upsample: int | None,
              detect_every: int, threads: int | None) -> None:
    """Ablation table per look and severity, and a plot of accuracy / cluster ratio vs severity."""
    from vcn_plugin.benchmark.sweep import sweep

    _threads(threads)
    try:
        severity_values = [int(s) for s in _split(severities)]
    except ValueError as err:
        raise click.BadParameter(f"severities must be integers 0-3: {err}") from err
    finetune = None if quick and finetune_preset == "default" and not quick_finetune else \
        finetune_config("tiny" if quick_finetune else finetune_preset, device)
    try:
        with progress_bar("sweep") as progress:
            result = sweep(faces_dir, out_dir, _split(looks), severity_values, episodes, preset, json_out, plot_out,
                           quick, seed, _overrides(cast_mode=cast_mode, shots_per_scene=shots_per_scene, variation=variation), finetune,
                           _stage1_config(detector, upsample, detect_every), progress=progress)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(result.to_markdown())
    for what, path in (("JSON", json_out), ("plot", plot_out)):
        if path:
            click.echo(f"{what} written to {Path(path)}")
