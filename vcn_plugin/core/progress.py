"""The one progress protocol of vcn: ``progress(fraction, message)``.

Every long step (stage 1, finetuning, clustering, benchmarks) takes an optional
:data:`Progress`; the CLI passes a tqdm bar, delegated operators ``ctx.set_progress``.
:func:`sub_progress` maps a part of a step onto its share of the whole.
"""
from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """``fraction`` in [0, 1] of the whole step, and a short message of what runs now."""

    def __call__(self, fraction: float, message: str) -> None: ...


def sub_progress(progress: Progress | None, start: float, stop: float, prefix: str = "") -> Progress | None:
    """A :data:`Progress` for the part ``[start, stop]`` of ``progress`` (None stays None);
    ``prefix`` goes before every message (e.g. ``"video 2/5: "``)."""
    if progress is None:
        return None

    def report(fraction: float, message: str) -> None:
        progress(start + (stop - start) * min(max(fraction, 0.0), 1.0), prefix + message)

    return report
