"""The corrections: each reads the frame labels, writes the change through
:func:`~vcn_plugin.fo.track_records.set_identities` and appends one entry to the log."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fiftyone as fo

from vcn_plugin.core.types import TrackKey
from vcn_plugin.corrections.log import Correction, load_log, save_log
from vcn_plugin.corrections.names import AUTO_NAME, RESERVED_LABELS, next_free_name
from vcn_plugin.fo import schema
from vcn_plugin.fo.frames import track_label_counts
from vcn_plugin.fo.track_records import set_identities

NOT_FACE = schema.NOT_FACE


@dataclass
class _Labels:
    """Frame labels of every track: label counts, and the majority label (its identity)."""

    counts: dict[TrackKey, Counter]

    @property
    def identity(self) -> dict[TrackKey, str]:
        return {k: c.most_common(1)[0][0] for k, c in self.counts.items()}

    def tracks_of(self, name: str) -> list[TrackKey]:
        return sorted(k for k, lab in self.identity.items() if lab == name)

    def names(self) -> set[str]:
        return set(self.identity.values())


def _read_labels(dataset: fo.Dataset, field: str = schema.FACES) -> _Labels:
    if not dataset.has_frame_field(field):
        raise ValueError(f"dataset '{dataset.name}' has no frames.{field}; run 'detect faces' first")
    return _Labels(track_label_counts(dataset, field))


def _frame_labels_of(
    dataset: fo.Dataset, keys: Iterable[TrackKey], field: str = schema.FACES
) -> dict[TrackKey, dict[int, str]]:
    """Label of each frame of ``keys`` (frame number -> label)."""
    wanted: dict[str, set[int]] = {}
    for video_id, track in keys:
        wanted.setdefault(video_id, set()).add(track)
    out: dict[TrackKey, dict[int, str]] = {}
    view = dataset.select(list(wanted))
    for video_id, numbers, indices, labels in zip(*view.values(
        ["id", "frames.frame_number", f"frames.{field}.detections.index", f"frames.{field}.detections.label"]
    )):
        for number, idx_list, lab_list in zip(numbers, indices, labels):
            for idx, lab in zip(idx_list or [], lab_list or []):
                if idx is not None and int(idx) in wanted[video_id]:
                    out.setdefault((video_id, int(idx)), {})[int(number)] = lab
    return out


def _write_frame_labels(
    dataset: fo.Dataset, frames: Mapping[TrackKey, Mapping[int, str]], field: str = schema.FACES
) -> None:
    """Set the label of single frames of tracks (undo of tracks whose frames disagreed)."""
    by_video: dict[str, dict[int, dict[int, str]]] = {}
    for (video_id, track), labels in frames.items():
        for number, label in labels.items():
            by_video.setdefault(video_id, {}).setdefault(number, {})[track] = label
    for video_id, numbers in by_video.items():
        sample = dataset[video_id]
        for number, tracks in numbers.items():
            for det in sample.frames[number][field].detections:
                if det.index is not None and int(det.index) in tracks:
                    det.label = tracks[int(det.index)]
        sample.save()


Separation = tuple[list[TrackKey], list[TrackKey]]  # (tracks moved away, tracks that stayed)


def _apply(
    dataset: fo.Dataset, labels: _Labels, op: str, after: Mapping[TrackKey, str], names: dict[str, Any],
    together: Sequence[TrackKey] = (), apart: Sequence[Separation] = (),
) -> Correction:
    """Write ``after`` through :func:`set_identities` and append the log entry."""
    identity = labels.identity
    changed = {k: v for k, v in after.items() if identity[k] != v or len(labels.counts[k]) > 1}
    if not changed:
        raise ValueError(f"{op}: nothing to change, every track already has the requested label")
    mixed = [k for k in changed if len(labels.counts[k]) > 1]
    entry = Correction(
        op=op,
        timestamp=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        before={k: identity[k] for k in changed},
        after=dict(changed),
        names=names,
        together=sorted(together),
        apart=[(sorted(moved), sorted(stayed)) for moved, stayed in apart if moved and stayed],
        before_frames=_frame_labels_of(dataset, mixed) if mixed else {},
    )
    set_identities(dataset, changed)
    save_log(dataset, [*load_log(dataset), entry])
    return entry


# --------------------------------------------------------------------------- validation


def check_name(name: str, what: str = "identity") -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"the new {what} name is empty: give a name such as 'Alice'")
    name = name.strip()
    if name == NOT_FACE:
        raise ValueError(f"'{NOT_FACE}' is not an identity: use mark_not_face")
    if name in RESERVED_LABELS:
        raise ValueError(f"'{name}' is not an identity: use mark_unknown to mark tracks Unknown")
    return name


def _check_tracks(labels: _Labels, tracks: Iterable[TrackKey]) -> list[TrackKey]:
    keys = sorted({(str(v), int(t)) for v, t in tracks})
    if not keys:
        raise ValueError("no tracks given: select one or more tracks first")
    missing = [k for k in keys if k not in labels.counts]
    if missing:
        raise ValueError(f"{len(missing)} track(s) not found in frames.{schema.FACES}, e.g. {missing[0]}; "
                         "the tracks may come from an older stage-1 run: reload the track view")
    return keys


def _check_identity(labels: _Labels, name: str) -> list[TrackKey]:
    tracks = labels.tracks_of(name)
    if not tracks:
        known = sorted(n for n in labels.names() if n not in RESERVED_LABELS)
        raise ValueError(f"no track has identity '{name}'; identities: {', '.join(known) or 'none yet'}")
    return tracks


def _separations(labels: _Labels, moved: Sequence[TrackKey]) -> list[tuple[list[TrackKey], list[TrackKey]]]:
    """``(moved from X, stayed in X)`` for each identity X the moved tracks leave."""
    identity = labels.identity
    by_source: dict[str, list[TrackKey]] = {}
    for k in moved:
        by_source.setdefault(identity[k], []).append(k)
    out = []
    for source, leaving in sorted(by_source.items()):
        if source in RESERVED_LABELS:
            continue  # Unknown / unclustered tracks form no cluster to be separated from
        moved_set = set(leaving)
        out.append((leaving, [k for k in labels.tracks_of(source) if k not in moved_set]))
    return out


def _common_prefix(labels: _Labels, keys: Sequence[TrackKey]) -> str:
    """The ``<video>/`` prefix of the tracks' auto names when they all share one, else ""."""
    identity = labels.identity
    prefixes = {(m["prefix"] or "") if (m := AUTO_NAME.match(identity[k])) else "" for k in keys}
    return prefixes.pop() if len(prefixes) == 1 else ""


# --------------------------------------------------------------------------- corrections


def rename_identity(dataset: fo.Dataset, old: str, new: str) -> Correction:
    """Give identity ``old`` the name ``new``; when ``new`` exists already, both merge."""
    labels = _read_labels(dataset)
    new = check_name(new)
    if old in RESERVED_LABELS:
        raise ValueError(f"'{old}' is no identity: select its tracks and use move_tracks instead")
    tracks = _check_identity(labels, old)
    if new == old:
        raise ValueError(f"identity '{old}' already has that name")
    joined = labels.tracks_of(new)
    return _apply(dataset, labels, "rename", {k: new for k in tracks},
                  {"old": old, "new": new, "merged": bool(joined)}, together=[*tracks, *joined])


def merge_identities(dataset: fo.Dataset, names: Sequence[str], into: str) -> Correction:
    """Merge identities ``names`` into ``into`` (an existing identity or a new name)."""
    if isinstance(names, str):
        raise ValueError("names must be a list of identity names, not one string")
    labels = _read_labels(dataset)
    into = check_name(into, "merged identity")
    sources = sorted(set(names) - {into})
    for name in sources:
        if name in RESERVED_LABELS:
            raise ValueError(f"'{name}' is no identity: select its tracks and use move_tracks instead")
    moved = [k for name in sources for k in _check_identity(labels, name)]
    joined = labels.tracks_of(into)
    if len(sources) + bool(joined) < 2:
        raise ValueError("a merge needs two identities or more: list at least two, or use rename_identity")
    return _apply(dataset, labels, "merge", {k: into for k in moved},
                  {"names": sources, "into": into}, together=[*moved, *joined])


def move_tracks(dataset: fo.Dataset, tracks: Iterable[TrackKey], identity: str) -> Correction:
    """Move ``tracks`` to ``identity`` (existing, or a new one by that name)."""
    labels = _read_labels(dataset)
    keys = _check_tracks(labels, tracks)
    identity = check_name(identity)
    current = labels.identity
    moved = [k for k in keys if current[k] != identity]
    if not moved:
        raise ValueError(f"the selected tracks are all in '{identity}' already")
    joined = labels.tracks_of(identity)
    return _apply(dataset, labels, "move", {k: identity for k in moved}, {"identity": identity},
                  together=[*moved, *joined], apart=_separations(labels, moved))


def split_tracks(dataset: fo.Dataset, tracks: Iterable[TrackKey], name: str | None = None) -> str:
    """Split ``tracks`` off into a new identity (``name``, default the next free ``person_NN``,
    with the tracks' ``<video>/`` prefix when they share one)."""
    labels = _read_labels(dataset)
    keys = _check_tracks(labels, tracks)
    name = next_free_name(labels.names(), _common_prefix(labels, keys)) if name is None else check_name(name)
    if labels.tracks_of(name):
        raise ValueError(f"identity '{name}' exists: use move_tracks to move tracks into it")
    _apply(dataset, labels, "split", {k: name for k in keys}, {"identity": name},
           together=keys, apart=_separations(labels, keys))
    return name


def _exclude(dataset: fo.Dataset, tracks: Iterable[TrackKey], label: str, op: str) -> Correction:
    labels = _read_labels(dataset)
    keys = _check_tracks(labels, tracks)
    return _apply(dataset, labels, op, {k: label for k in keys}, {"label": label},
                  apart=_separations(labels, keys))


def mark_unknown(dataset: fo.Dataset, tracks: Iterable[TrackKey]) -> Correction:
    """Label ``tracks`` "Unknown" (a stranger or unrecognisable); excluded from clustering."""
    return _exclude(dataset, tracks, schema.UNKNOWN, "mark_unknown")


def mark_not_face(dataset: fo.Dataset, tracks: Iterable[TrackKey]) -> Correction:
    """Label ``tracks`` "not_face" (false detections); excluded from clustering, scored as Unknown."""
    return _exclude(dataset, tracks, NOT_FACE, "mark_not_face")


def undo_last(dataset: fo.Dataset) -> Correction:
    """Undo the latest correction still in the log and return it.

    Restores the recorded labels exactly (frame by frame for tracks whose frames disagreed).
    Raises ValueError when there is nothing to undo, or when the tracks' labels changed since
    the correction (re-clustering, another edit) so undo would overwrite newer labels.
    """
    log = load_log(dataset)
    if not log:
        raise ValueError(f"dataset '{dataset.name}' has no correction to undo")
    entry = log[-1]
    current = _read_labels(dataset).identity
    stale = [k for k, v in entry.after.items() if current.get(k) != v]
    if stale:
        raise ValueError(f"cannot undo {entry.describe()}: {len(stale)} of its tracks changed since "
                         "(for example by re-clustering); correct them directly instead")
    set_identities(dataset, entry.before)
    if entry.before_frames:
        _write_frame_labels(dataset, entry.before_frames)
    save_log(dataset, log[:-1])
    return entry
