"""Helpers shared by the ``vcn`` command groups: a tqdm progress callback, option lists."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from vcn_plugin.core.progress import Progress


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


def with_options(options):
    """Apply a list of click options to a command."""

    def wrap(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return wrap
