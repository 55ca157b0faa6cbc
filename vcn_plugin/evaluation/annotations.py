"""The benchmark annotation format (one JSON file per video).

A benchmark is a directory with ``videos/*.mp4`` and ``annotations/<stem>.json``::

    {"video": "ep000.mp4", "fps": 25.0, "width": 640, "height": 360,
     "num_frames": 1000,                      # optional: probed from the video when absent
     "shots": [[1, 90], [91, 200]],            # 1-based inclusive frame ranges
     "tracks": [{"track_id": 0, "identity": "lfw_George_W_Bush",
                 "frames": [{"frame": 1, "box": [x, y, w, h]}, ...]}],
     "distractors": [...same as tracks, identity "extra"...]}

Boxes are in pixels, top-left corner plus size. Frame numbers are 1-based as in FiftyOne.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class BoxAnnotation:
    frame: int
    box: tuple[float, float, float, float]  # x, y, w, h in pixels


@dataclass
class TrackAnnotation:
    track_id: int
    identity: str
    frames: list[BoxAnnotation] = field(default_factory=list)


@dataclass
class VideoAnnotation:
    video: str
    fps: float
    width: int
    height: int
    #: frames of the video; optional in a file (None: the importer probes the video)
    num_frames: int | None
    shots: list[tuple[int, int]] = field(default_factory=list)
    tracks: list[TrackAnnotation] = field(default_factory=list)
    distractors: list[TrackAnnotation] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VideoAnnotation":
        def tracks(key: str) -> list[TrackAnnotation]:
            return [
                TrackAnnotation(
                    track_id=int(t["track_id"]),
                    identity=str(t["identity"]),
                    frames=[BoxAnnotation(int(f["frame"]), tuple(float(v) for v in f["box"])) for f in t["frames"]],
                )
                for t in d.get(key, [])
            ]

        missing = {"video", "fps", "width", "height"} - set(d)
        if missing:
            raise ValueError(f"annotation is missing keys {sorted(missing)}")
        return cls(
            video=str(d["video"]),
            fps=float(d["fps"]),
            width=int(d["width"]),
            height=int(d["height"]),
            num_frames=int(d["num_frames"]) if d.get("num_frames") is not None else None,
            shots=[(int(a), int(b)) for a, b in d.get("shots", [])],
            tracks=tracks("tracks"),
            distractors=tracks("distractors"),
        )


def save_annotation(annotation: VideoAnnotation, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(annotation.to_dict(), indent=1))


def load_annotation(path: str | Path) -> VideoAnnotation:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    return VideoAnnotation.from_dict(data)
