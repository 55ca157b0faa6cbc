"""Helpers shared by the ``vcn`` command groups: the dataset loader, a tqdm progress callback,
option lists, and the stage configs built from options."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from tqdm import tqdm

from vcn_plugin.core.progress import Progress

FINETUNE_PRESETS = ["default", "tiny"]


def load_dataset(name: str):
    """The FiftyOne dataset ``name``, or a usage error that says how to create one."""
    import fiftyone as fo

    if not fo.dataset_exists(name):
        raise click.ClickException(f"no dataset named '{name}'; create one with 'vcn import PATH --dataset {name}' "
                                   "(list them with 'fiftyone datasets list')")
    return fo.load_dataset(name)


@contextmanager
def progress_bar(desc: str) -> Iterator[Progress]:
    """A :class:`~vcn_plugin.core.progress.Progress` callback drawing a tqdm bar in [0, 100] %."""
    bar = tqdm(total=100, desc=desc, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}] {postfix}")

    def update(fraction: float, message: str) -> None:
        bar.n = round(100 * min(max(fraction, 0.0), 1.0), 1)
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def with_options(options):
    """Apply a list of click options to a command."""

    def wrap(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return wrap


def stage1_config(detector: str, detect_every: int, upsample: int | None, options: dict[str, Any] | None = None):
    """A :class:`~vcn_plugin.stage1.Stage1Config` from the CLI options (a usage error when invalid);
    ``upsample`` overrides that detector option of ``options``."""
    from vcn_plugin.stage1 import Stage1Config

    options = dict(options or {})
    if upsample is not None:
        options["upsample"] = upsample
    try:
        return Stage1Config(detector=detector, detector_options=options, detect_every=detect_every)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


def finetune_config(preset: str, device: str):
    """The finetuning config of a preset: ``default`` (the product's) or ``tiny`` (smoke runs)."""
    from vcn_plugin.ssl import FinetuneConfig

    return FinetuneConfig.tiny(device=device) if preset == "tiny" else FinetuneConfig(device=device)
