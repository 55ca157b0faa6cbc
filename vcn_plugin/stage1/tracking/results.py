"""What the tracker returns: kept tracks, dropped tracks, and where every detection went."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

from vcn_plugin.core.types import Track


@dataclass
class TrackingStats:
    """Where every input detection went; the counts add up to ``detections``."""

    detections: int = 0
    #: score below ``low_score``
    below_low_score: int = 0
    #: low-score detection that matched no active track
    unmatched_low_score: int = 0
    #: high-score detection that matched nothing and scored below ``new_track_score``
    unmatched_high_score: int = 0
    #: detection on a frame outside every shot (``track_video`` only)
    outside_shots: int = 0
    in_kept_tracks: int = 0
    in_dropped_tracks: int = 0
    #: faces the tracker filled in (not part of ``detections``)
    interpolated_faces: int = 0

    def __add__(self, other: TrackingStats) -> TrackingStats:
        return TrackingStats(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)}
        )


@dataclass
class DroppedTrack:
    """A track the tracker did not keep (its ``track_id`` is -1)."""

    track: Track
    #: ``"unconfirmed"`` (never reached ``min_hits``) or ``"too_short"`` (``min_track_length``)
    reason: str


@dataclass
class TrackingResult:
    """Kept tracks, dropped tracks and counts. Iterating yields the kept tracks."""

    tracks: list[Track] = field(default_factory=list)
    dropped: list[DroppedTrack] = field(default_factory=list)
    stats: TrackingStats = field(default_factory=TrackingStats)

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)

    def __len__(self) -> int:
        return len(self.tracks)
