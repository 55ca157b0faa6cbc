"""User corrections of face identities, their undo log, and the constraints they put on clustering.

Every correction works on tracks, named by their key ``(video sample id, track index)``, and
writes through :func:`vcn_plugin.tracks.set_identities`, so the frame labels
(``frames.faces.detections.label``, the source of truth) and the track records
(``<dataset>-vcn-tracks``) change together.

Operations
    :func:`rename_identity` (renaming onto an existing name merges), :func:`merge_identities`,
    :func:`move_tracks` (to an existing or a new identity), :func:`split_tracks` (off into the
    next free ``person_NN``), :func:`mark_unknown`, :func:`mark_not_face`, :func:`undo_last`.

Where the log lives
    ``dataset.info["vcn_corrections"]`` of the *video* dataset: ``{"version": 1, "log": [...]}``,
    one JSON dict per correction (see :class:`Correction`): the operation, a UTC timestamp, the
    tracks whose label changed with their label before and after, the operation's names, and
    what it implies for clustering (tracks placed together, tracks separated). Undo pops the
    last entry and restores the labels it recorded, frame by frame; it is a stack, so repeated
    undos walk back through the log. Undo refuses when the labels of the entry's tracks changed
    since (for example by re-clustering), rather than overwrite newer labels.

Constraints (:func:`get_constraints`, for the clustering)
    The log is replayed in order:

    - tracks a user placed together (rename, merge, move into an identity, split off together)
      form one must-link group, together with the tracks of the identity they joined;
    - tracks moved away from an identity (move, split, mark Unknown / not a face) are
      cannot-linked to every track that stayed in it;
    - a later correction wins: a track moved again leaves its old group, and a cannot-link
      pair that later ends up in one group is dropped, so the constraints never contradict;
    - a user-given name (anything but ``person_NN`` and the reserved labels) sticks to its
      tracks: :func:`apply_names_after_clustering` carries it onto the new clusters;
    - tracks marked Unknown or not a face are excluded from clustering and keep that label.

``not_face``
    A track the user says is no face (a false detection). It is excluded from clustering like
    an Unknown track. Evaluation does not know this label: it must score ``not_face`` tracks as
    Unknown (a false detection matched to no ground-truth face is not scored at all).
"""
from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from vcn_plugin import schema
from vcn_plugin.tracks import TrackKey, get_tracks_dataset, set_identities

INFO_KEY = "vcn_corrections"
LOG_VERSION = 1
NOT_FACE = schema.NOT_FACE
#: labels that are no identity: a correction cannot name a person like this
RESERVED_LABELS = (schema.FACE_LABEL, schema.UNKNOWN, NOT_FACE)
#: labels excluded from clustering when a user sets them
EXCLUDED_LABELS = (schema.UNKNOWN, NOT_FACE)
#: names the clustering gives: ``person_NN``, prefixed ``<video stem>/`` when videos are clustered apart
AUTO_NAME = re.compile(r"^(?P<prefix>.*/)?person_(?P<number>\d+)$")
MARGIN_FIELD = "margin"


def is_user_name(name: str) -> bool:
    """A name a person gave (it sticks through re-clustering), not ``person_NN`` or a reserved label."""
    return name not in RESERVED_LABELS and AUTO_NAME.match(name) is None


@dataclass
class Correction:
    """One entry of the correction log.

    ``before`` / ``after``: label of each changed track (majority over its frames) before and
    after. ``before_frames``: for a track whose frames disagreed before, the label of each of
    its frames (so undo restores it exactly). ``together``: tracks placed in one group.
    ``apart``: ``(moved, stayed)`` pairs of track lists a user separated.
    """

    op: str
    timestamp: str
    before: dict[TrackKey, str]
    after: dict[TrackKey, str]
    names: dict[str, Any] = field(default_factory=dict)
    together: list[TrackKey] = field(default_factory=list)
    apart: list[tuple[list[TrackKey], list[TrackKey]]] = field(default_factory=list)
    before_frames: dict[TrackKey, dict[int, str]] = field(default_factory=dict)

    @property
    def tracks(self) -> list[TrackKey]:
        return sorted(self.after)

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.names.items())
        return f"{self.op}({params}) on {len(self.after)} track(s) at {self.timestamp}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "timestamp": self.timestamp,
            "tracks": [list(k) for k in self.tracks],
            "before": [[v, t, self.before[(v, t)]] for v, t in self.tracks],
            "after": [[v, t, self.after[(v, t)]] for v, t in self.tracks],
            "names": dict(self.names),
            "together": [list(k) for k in self.together],
            "apart": [[[list(k) for k in moved], [list(k) for k in stayed]] for moved, stayed in self.apart],
            "before_frames": [[v, t, [[n, lab] for n, lab in sorted(frames.items())]]
                              for (v, t), frames in sorted(self.before_frames.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Correction:
        def key(item: Sequence) -> TrackKey:
            return (str(item[0]), int(item[1]))

        return cls(
            op=data["op"],
            timestamp=data["timestamp"],
            before={key(i): i[2] for i in data["before"]},
            after={key(i): i[2] for i in data["after"]},
            names=dict(data.get("names", {})),
            together=[key(i) for i in data.get("together", [])],
            apart=[([key(k) for k in moved], [key(k) for k in stayed]) for moved, stayed in data.get("apart", [])],
            before_frames={key(i): {int(n): lab for n, lab in i[2]} for i in data.get("before_frames", [])},
        )


@dataclass
class Constraints:
    """What the corrections require of the next clustering (all in track keys).

    ``must_link``: groups (2+ tracks) that must end in one cluster. ``cannot_link``: pairs that
    must end in different clusters. ``names``: the user-given label of tracks (a person's name,
    or "Unknown" / "not_face" for excluded tracks). ``excluded``: tracks to leave out of
    clustering (they keep their ``names`` label). Tracks in ``must_link`` were seen by a user:
    the clustering glue should not exclude them for low quality.
    """

    must_link: list[list[TrackKey]] = field(default_factory=list)
    cannot_link: list[tuple[TrackKey, TrackKey]] = field(default_factory=list)
    names: dict[TrackKey, str] = field(default_factory=dict)
    excluded: set[TrackKey] = field(default_factory=set)

    @property
    def placed(self) -> set[TrackKey]:
        """Tracks a user placed in an identity (members of must-link groups or user-named)."""
        grouped = {k for group in self.must_link for k in group}
        return grouped | {k for k in self.names if k not in self.excluded}


# --------------------------------------------------------------------------- reading labels


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
    ids, indices, labels = dataset.values(
        ["id", f"frames.{field}.detections.index", f"frames.{field}.detections.label"]
    )
    counts: dict[TrackKey, Counter] = {}
    for video_id, frames_idx, frames_lab in zip(ids, indices, labels):
        for idx_list, lab_list in zip(frames_idx or [], frames_lab or []):
            for idx, lab in zip(idx_list or [], lab_list or []):
                if idx is not None:
                    counts.setdefault((video_id, int(idx)), Counter())[lab] += 1
    return _Labels(counts)


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


# --------------------------------------------------------------------------- the log


def _load_log(dataset: fo.Dataset) -> list[Correction]:
    data = (dataset.info or {}).get(INFO_KEY)
    if not data:
        return []
    if data.get("version") != LOG_VERSION:
        raise ValueError(f"dataset '{dataset.name}' has a correction log of version {data.get('version')}; "
                         f"this vcn reads version {LOG_VERSION}")
    return [Correction.from_dict(d) for d in data["log"]]


def _save_log(dataset: fo.Dataset, log: list[Correction]) -> None:
    dataset.info[INFO_KEY] = {"version": LOG_VERSION, "log": [c.to_dict() for c in log]}
    dataset.save()


def correction_log(dataset: fo.Dataset) -> list[Correction]:
    """Every correction still in effect, oldest first."""
    return _load_log(dataset)


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
    _save_log(dataset, [*_load_log(dataset), entry])
    return entry


# --------------------------------------------------------------------------- validation


def _check_name(name: str, what: str = "identity") -> str:
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


def next_free_name(names: Iterable[str], prefix: str = "") -> str:
    """``<prefix>person_NN`` one above the highest number in use with that prefix (two digits at least)."""
    numbers = [int(m["number"]) for m in map(AUTO_NAME.match, names) if m and (m["prefix"] or "") == prefix]
    return f"{prefix}person_{max(numbers, default=0) + 1:02d}"


def _common_prefix(labels: _Labels, keys: Sequence[TrackKey]) -> str:
    """The ``<video>/`` prefix of the tracks' auto names when they all share one, else ""."""
    identity = labels.identity
    prefixes = {(m["prefix"] or "") if (m := AUTO_NAME.match(identity[k])) else "" for k in keys}
    return prefixes.pop() if len(prefixes) == 1 else ""


# --------------------------------------------------------------------------- corrections


def rename_identity(dataset: fo.Dataset, old: str, new: str) -> Correction:
    """Give identity ``old`` the name ``new``; when ``new`` exists already, both merge."""
    labels = _read_labels(dataset)
    new = _check_name(new)
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
    into = _check_name(into, "merged identity")
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
    identity = _check_name(identity)
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
    name = next_free_name(labels.names(), _common_prefix(labels, keys)) if name is None else _check_name(name)
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
    log = _load_log(dataset)
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
    _save_log(dataset, log[:-1])
    return entry


# --------------------------------------------------------------------------- constraints


class _Groups:
    """Must-link groups with detach, cannot-link adjacency, names and exclusions, replayed from the log."""

    def __init__(self) -> None:
        self.group_of: dict[TrackKey, int] = {}
        self.members: dict[int, set[TrackKey]] = {}
        self.cannot: dict[TrackKey, set[TrackKey]] = {}
        self.names: dict[TrackKey, str] = {}
        self.excluded: set[TrackKey] = set()
        self._next = 0

    def detach(self, key: TrackKey) -> None:
        gid = self.group_of.pop(key, None)
        if gid is not None:
            self.members[gid].discard(key)
            if not self.members[gid]:
                del self.members[gid]

    def join(self, keys: Iterable[TrackKey]) -> None:
        group = set(keys)
        for gid in {self.group_of[k] for k in group if k in self.group_of}:
            group |= self.members.pop(gid)
        gid, self._next = self._next, self._next + 1
        self.members[gid] = group
        for k in group:
            self.group_of[k] = gid
            if k in self.cannot:
                self.cannot[k] -= group

    def separate(self, moved: Iterable[TrackKey], stayed: Sequence[TrackKey]) -> None:
        for a in moved:
            for b in stayed:
                self.cannot.setdefault(a, set()).add(b)
                self.cannot.setdefault(b, set()).add(a)

    def replay(self, entry: Correction) -> None:
        for k in entry.after:
            self.detach(k)
        for moved, stayed in entry.apart:
            self.separate(moved, stayed)
        for k, label in entry.after.items():
            if label in EXCLUDED_LABELS:
                self.excluded.add(k)
                self.names[k] = label
            else:
                self.excluded.discard(k)
        if entry.together:
            self.join(entry.together)
            name = next(iter(entry.after.values()))
            for k in entry.together:
                if is_user_name(name):
                    self.names[k] = name
                else:
                    self.names.pop(k, None)


def get_constraints(dataset: fo.Dataset) -> Constraints:
    """The constraints the correction log puts on the next clustering of ``dataset``.

    Only tracks that still exist in ``frames.faces`` appear (a stage-1 rerun renumbers tracks).
    """
    log = _load_log(dataset)
    if not log:
        return Constraints()
    state = _Groups()
    for entry in log:
        state.replay(entry)
    alive = set(_read_labels(dataset).counts)
    usable = alive - state.excluded
    must_link = sorted(sorted(g & usable) for g in state.members.values() if len(g & usable) > 1)
    cannot = sorted({(a, b) for a, others in state.cannot.items() for b in others
                     if a < b and a in usable and b in usable})
    return Constraints(
        must_link=must_link,
        cannot_link=cannot,
        names={k: v for k, v in state.names.items() if k in alive},
        excluded=state.excluded & alive,
    )


def apply_names_after_clustering(constraints: Constraints, labels: Mapping[TrackKey, str]) -> dict[TrackKey, str]:
    """Carry user names onto new cluster labels (``labels``: track -> label from the clustering).

    Rules, for the tracks in ``labels`` (other keys are ignored):

    - an excluded track gets its user label ("Unknown" / "not_face");
    - a cluster holding user-named tracks takes the name most of them carry (ties: the
      alphabetically first name), and all its tracks get it;
    - when several clusters would take the same name, the one with most tracks of that name
      wins (ties: the alphabetically first cluster label) and the others keep their labels
      (must-link keeps a user's group in one cluster, so this only follows from a conflict);
    - a user-named track the clustering left Unknown keeps its user name; other Unknown
      tracks stay Unknown.
    """
    out = dict(labels)
    votes: dict[str, Counter] = {}
    for k, label in labels.items():
        name = constraints.names.get(k)
        if k in constraints.excluded:
            out[k] = name or schema.UNKNOWN
        elif name is not None and label == schema.UNKNOWN:
            out[k] = name
        elif name is not None:
            votes.setdefault(label, Counter())[name] += 1
    claims: dict[str, tuple[str, int]] = {}
    for cluster in sorted(votes):
        name, count = min(votes[cluster].items(), key=lambda item: (-item[1], item[0]))
        if name not in claims or count > claims[name][1]:
            claims[name] = (cluster, count)
    renamed = {cluster: name for name, (cluster, _) in claims.items()}
    for k, label in labels.items():
        if out[k] == label and label in renamed:
            out[k] = renamed[label]
    return out


# --------------------------------------------------------------------------- views


def identity_view(dataset: fo.Dataset, name: str) -> fo.DatasetView:
    """The track records of identity ``name`` (one face per track), in story order."""
    tracks = get_tracks_dataset(dataset)
    view = tracks.match(F("identity.label") == name)
    if not len(view):
        known = sorted(n for n in tracks.distinct("identity.label") if n not in RESERVED_LABELS)
        raise ValueError(f"no track has identity '{name}'; identities: {', '.join(known) or 'none yet'}")
    return view.sort_by([("video_id", 1), ("first_frame", 1)])


def least_certain_view(dataset: fo.Dataset, skip_corrected: bool = True) -> fo.DatasetView:
    """Track records by clustering margin, smallest first: the likeliest mistakes come first.

    ``margin`` (written by the clustering) is the second-best minus the best cluster distance.
    Tracks without a finite margin (Unknown, excluded) are left out, and so are tracks a user
    already corrected when ``skip_corrected``.
    """
    tracks = get_tracks_dataset(dataset)
    view = tracks.match(F(MARGIN_FIELD) > float("-inf")) if tracks.has_sample_field(MARGIN_FIELD) else None
    if view is None or not len(view):
        raise ValueError(f"no track record of '{dataset.name}' has a clustering '{MARGIN_FIELD}': "
                         "run clustering first (it writes each clustered track's margin)")
    if skip_corrected:
        corrected = {k for entry in _load_log(dataset) for k in entry.after}
        ids = [sid for sid, v, t in zip(*tracks.values(["id", "video_id", "track"])) if (v, int(t)) in corrected]
        view = view.exclude(ids)
    return view.sort_by(MARGIN_FIELD)
