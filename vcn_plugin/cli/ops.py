"""``vcn ops reap``: mark vcn's delegated operations whose worker died as failed."""
from __future__ import annotations

import datetime as dt

import click


@click.group("ops")
def ops() -> None:
    """vcn's delegated operations in FiftyOne's queue."""


@ops.command("reap")
@click.option("--dataset", "dataset_name", default=None, help="only this dataset's operations")
@click.option("--stale-minutes", type=float, default=15.0, show_default=True,
              help="a RUNNING operation silent for longer than this has lost its worker")
@click.option("--dry-run", is_flag=True, help="list them, change nothing")
def reap_cmd(dataset_name: str | None, stale_minutes: float, dry_run: bool) -> None:
    """Mark RUNNING vcn operations without progress for STALE_MINUTES as FAILED (run it from cron
    beside 'fiftyone delegated launch' workers; then rerun the videos)."""
    from vcn_plugin.fo.operations import reap_stale_operations

    if stale_minutes <= 0:
        raise click.BadParameter("--stale-minutes must be positive")
    stale = reap_stale_operations(dataset_name, dt.timedelta(minutes=stale_minutes), dry_run=dry_run)
    verb = "would mark" if dry_run else "marked"
    click.echo(f"{verb} {len(stale)} operation(s) failed")
    for op in stale:
        click.echo(f"  {op.id} {op.operator} (last progress {op.last_seen:%Y-%m-%d %H:%M:%S} UTC)")
