"""What the corrections require of the next clustering: must-link, cannot-link, names, exclusions.

See :mod:`vcn_plugin.corrections` for the rules.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import fiftyone as fo

from vcn_plugin.core.types import TrackKey
from vcn_plugin.corrections.log import Correction, load_log
from vcn_plugin.corrections.names import EXCLUDED_LABELS, is_user_name
from vcn_plugin.fo import schema
from vcn_plugin.fo.frames import track_label_counts


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
    log = load_log(dataset)
    if not log:
        return Constraints()
    state = _Groups()
    for entry in log:
        state.replay(entry)
    alive = set(track_label_counts(dataset))
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
