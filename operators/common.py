"""Helpers shared by the operators: progress reporting, dataset checks, App feedback."""
from __future__ import annotations

from collections.abc import Callable

import fiftyone.operators as foo
import fiftyone.operators.types as types


def progress_reporter(ctx) -> Callable[[float, str], None]:
    """A vcn progress callback that drives ``ctx.set_progress`` (shown for delegated runs)."""

    def report(fraction: float, message: str) -> None:
        ctx.set_progress(progress=max(0.0, min(1.0, fraction)), label=message)

    return report


def require_video_dataset(ctx, inputs: types.Object) -> bool:
    """Show a warning instead of the form when the current dataset cannot be processed."""
    if ctx.dataset is None:
        inputs.view("no_dataset", types.Warning(label="Open a dataset first"))
        return False
    if ctx.dataset.media_type != "video":
        inputs.view(
            "not_video",
            types.Warning(
                label="vcn works on video datasets",
                description=f"'{ctx.dataset.name}' holds {ctx.dataset.media_type} samples. "
                "Import videos with the 'Import videos' operator.",
            ),
        )
        return False
    return True


def finish(ctx, message: str) -> None:
    """Reload the App and notify the user (immediate runs only: delegated runs have no App)."""
    if not ctx.delegated:
        ctx.ops.reload_dataset()
        ctx.ops.notify(message, variant="success")


ICON = "/assets/icon.svg"


def light_config(name: str, label: str, description: str, **options) -> foo.OperatorConfig:
    """Config of an operator that runs in the App (``options``: further OperatorConfig fields)."""
    return foo.OperatorConfig(name=name, label=f"vcn: {label}", description=description, icon=ICON, dynamic=True,
                              **options)


def heavy_config(name: str, label: str, description: str) -> foo.OperatorConfig:
    """Config of an operator worth delegating (runs on a worker, on a GPU when there is one)."""
    return light_config(name, label, description, allow_immediate_execution=True, allow_delegated_execution=True,
                        default_choice_to_delegated=True)


def refuse_non_video(ctx, inputs: types.Object) -> bool:
    """An error on the form when the current dataset holds samples other than videos."""
    if ctx.dataset is not None and len(ctx.dataset) and ctx.dataset.media_type != "video":
        inputs.view("bad", types.Error(label=f"'{ctx.dataset.name}' is not a video dataset"))
        return True
    return False


def summary_output() -> types.Property:
    """The output form of a stage operator: its text summary."""
    outputs = types.Object()
    outputs.str("summary", label="Result", view=types.MarkdownView())
    return types.Property(outputs)
