"""``vcn identity ...``: the App's corrections from the command line.

Tracks are named ``VIDEO:TRACK``, where VIDEO is the video's file name (or its sample id) and
TRACK the track index (``Detection.index``), e.g. ``episode01.mp4:12``.
"""
from __future__ import annotations

from pathlib import Path

import click

from vcn_plugin.cli.common import load_dataset


def parse_tracks(dataset, specs: tuple[str, ...]) -> list[tuple[str, int]]:
    """``VIDEO:TRACK`` strings -> track keys ``(sample id, track index)``."""
    ids, paths = dataset.values(["id", "filepath"])
    by_name = {Path(p).name: i for i, p in zip(ids, paths)} | {i: i for i in ids}
    keys = []
    for spec in specs:
        video, _, track = spec.rpartition(":")
        if video not in by_name or not track.isdigit():
            raise click.BadParameter(f"'{spec}': expected VIDEO:TRACK with VIDEO one of {sorted(by_name)[:5]}...")
        keys.append((by_name[video], int(track)))
    return keys


def _run(action):
    try:
        return action()
    except (ValueError, KeyError) as err:
        raise click.ClickException(str(err)) from err


def _on_tracks(dataset_name: str, specs: tuple[str, ...], action):
    """``action(dataset, track_keys)`` on the tracks named ``VIDEO:TRACK``, errors as usage errors."""
    dataset = load_dataset(dataset_name)
    keys = parse_tracks(dataset, specs)
    return _run(lambda: action(dataset, keys))


@click.group("identity")
def identity() -> None:
    """Correct identities: rename, merge, move, split, mark Unknown, undo."""


dataset_option = click.option("--dataset", "dataset_name", required=True)
tracks_argument = click.argument("tracks", nargs=-1, required=True)


@identity.command("rename")
@dataset_option
@click.argument("old")
@click.argument("new")
def rename_cmd(dataset_name: str, old: str, new: str) -> None:
    """Give identity OLD the name NEW (merges when NEW exists)."""
    from vcn_plugin.corrections import rename_identity

    entry = _run(lambda: rename_identity(load_dataset(dataset_name), old, new))
    click.echo(f"renamed '{old}' to '{new}' ({len(entry.after)} tracks)")


@identity.command("merge")
@dataset_option
@click.argument("names", nargs=-1, required=True)
@click.option("--into", required=True, help="identity to merge into (existing or new)")
def merge_cmd(dataset_name: str, names: tuple[str, ...], into: str) -> None:
    """Merge identities NAMES into one."""
    from vcn_plugin.corrections import merge_identities

    entry = _run(lambda: merge_identities(load_dataset(dataset_name), list(names), into))
    click.echo(f"merged {', '.join(names)} into '{into}' ({len(entry.after)} tracks)")


@identity.command("move")
@dataset_option
@tracks_argument
@click.option("--to", "target", required=True, help="identity to move the tracks to (existing or new)")
def move_cmd(dataset_name: str, tracks: tuple[str, ...], target: str) -> None:
    """Move TRACKS (VIDEO:TRACK ...) to an identity."""
    from vcn_plugin.corrections import move_tracks

    entry = _on_tracks(dataset_name, tracks, lambda dataset, keys: move_tracks(dataset, keys, target))
    click.echo(f"moved {len(entry.after)} track(s) to '{target}'")


@identity.command("split")
@dataset_option
@tracks_argument
@click.option("--name", default=None, help="name of the new identity (default: next free person_NN)")
def split_cmd(dataset_name: str, tracks: tuple[str, ...], name: str | None) -> None:
    """Split TRACKS off into a new identity."""
    from vcn_plugin.corrections import split_tracks

    new = _on_tracks(dataset_name, tracks, lambda dataset, keys: split_tracks(dataset, keys, name))
    click.echo(f"split {len(tracks)} track(s) into '{new}'")


@identity.command("unknown")
@dataset_option
@tracks_argument
@click.option("--not-face", is_flag=True, help="mark them as false detections instead of Unknown people")
def unknown_cmd(dataset_name: str, tracks: tuple[str, ...], not_face: bool) -> None:
    """Mark TRACKS Unknown (or not a face); re-clustering leaves them out."""
    from vcn_plugin.corrections import mark_not_face, mark_unknown

    entry = _on_tracks(dataset_name, tracks, mark_not_face if not_face else mark_unknown)
    click.echo(f"marked {len(entry.after)} track(s) {'not_face' if not_face else 'Unknown'}")


@identity.command("undo")
@dataset_option
def undo_cmd(dataset_name: str) -> None:
    """Undo the latest correction (repeat to go further back)."""
    from vcn_plugin.corrections import undo_last

    entry = _run(lambda: undo_last(load_dataset(dataset_name)))
    click.echo(f"undid {entry.op} of {entry.timestamp} ({len(entry.before)} tracks restored)")


@identity.command("log")
@dataset_option
def log_cmd(dataset_name: str) -> None:
    """List the corrections in effect, oldest first."""
    from vcn_plugin.corrections import correction_log

    for entry in correction_log(load_dataset(dataset_name)):
        click.echo(f"{entry.timestamp}  {entry.op:<16} {len(entry.after)} track(s)  {entry.names}")
