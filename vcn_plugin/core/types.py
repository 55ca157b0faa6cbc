"""Plain data types shared by every layer (no FiftyOne, no torch)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Landmark layouts a detector may return. ``arcface5``: left eye, right eye,
#: nose, left mouth corner, right mouth corner (image left/right, insightface
#: order). ``dlib5``: dlib's 5-point model (two corners of each eye, then the
#: base of the nose), in dlib's own order.
LANDMARK_FORMATS = ("arcface5", "dlib5")

#: a track across the whole pipeline: (video sample id, track index within the video)
TrackKey = tuple[str, int]

#: the identity of tracks that clustering declines to assign (low quality, excluded by a user)
UNKNOWN = "Unknown"


@dataclass
class FaceDetection:
    """One face in one frame, in absolute pixel coordinates of that frame."""

    box: np.ndarray  # (4,) float: x1, y1, x2, y2
    score: float
    landmarks: np.ndarray | None = None  # (5, 2) float, pixels
    landmark_format: str = "arcface5"
    #: face quality in [0, 1] once estimated (None until then, and for interpolated faces)
    quality: float | None = None

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


@dataclass
class TrackedFace:
    """A detection assigned to a track at one frame (frame numbers are 1-based)."""

    frame: int
    detection: FaceDetection
    interpolated: bool = False  # True when the tracker filled a gap


@dataclass
class Track:
    """Faces of one person inside one shot."""

    track_id: int
    shot: int
    faces: list[TrackedFace] = field(default_factory=list)

    @property
    def frames(self) -> list[int]:
        return [f.frame for f in self.faces]

    def __len__(self) -> int:
        return len(self.faces)
