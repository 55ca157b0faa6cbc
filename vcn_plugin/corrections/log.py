"""The correction log: one JSON entry per correction in ``dataset.info`` of the video dataset."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fiftyone as fo

from vcn_plugin.core.types import TrackKey
from vcn_plugin.fo import schema

INFO_KEY = schema.INFO_CORRECTIONS
LOG_VERSION = 1


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


def load_log(dataset: fo.Dataset) -> list[Correction]:
    data = (dataset.info or {}).get(INFO_KEY)
    if not data:
        return []
    if data.get("version") != LOG_VERSION:
        raise ValueError(f"dataset '{dataset.name}' has a correction log of version {data.get('version')}; "
                         f"this vcn reads version {LOG_VERSION}")
    return [Correction.from_dict(d) for d in data["log"]]


def save_log(dataset: fo.Dataset, log: list[Correction]) -> None:
    dataset.info[INFO_KEY] = {"version": LOG_VERSION, "log": [c.to_dict() for c in log]}
    dataset.save()


def correction_log(dataset: fo.Dataset) -> list[Correction]:
    """Every correction still in effect, oldest first."""
    return load_log(dataset)
