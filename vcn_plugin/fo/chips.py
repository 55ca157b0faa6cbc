"""Aligned face chips of tracks, read back from the videos for finetuning, embedding and clustering."""
from __future__ import annotations

from dataclasses import dataclass

import fiftyone as fo
import numpy as np

from vcn_plugin.core.video import iter_frames
from vcn_plugin.fo import schema
from vcn_plugin.fo.frames import FrameTrack, attribute, read_tracks
from vcn_plugin.fo.labels import detection_to_face


@dataclass
class TrackFaces:
    """The sampled faces of one track: frame numbers, detections and (once read) chips."""

    video_id: str
    track: int
    frames: list[int]
    detection_ids: list[str]
    qualities: list[float]
    chips: np.ndarray | None = None  # (n, H, W, 3) uint8 RGB

    @property
    def key(self) -> tuple[str, int]:
        return (self.video_id, self.track)


def sample_track_faces(tracks: dict[int, FrameTrack], max_faces: int) -> dict[int, list[tuple[int, object]]]:
    """Pick up to ``max_faces`` real (not interpolated) faces per track, spread over the track:
    the track is cut into ``max_faces`` equal runs and each run gives its best-quality face."""
    picked = {}
    for index, track in tracks.items():
        faces = [(n, d) for n, d in sorted(track.detections.items()) if not attribute(d, schema.ATTR_INTERPOLATED, False)]
        if not faces:
            continue
        if len(faces) <= max_faces:
            picked[index] = faces
            continue
        runs = np.array_split(np.arange(len(faces)), max_faces)
        picked[index] = [max((faces[i] for i in run), key=lambda f: _quality(f[1])) for run in runs]
    return picked


def _quality(det) -> float:
    q = attribute(det, schema.ATTR_QUALITY)
    return float(q) if q is not None else 0.0


def read_track_chips(
    sample: fo.Sample,
    template: str,
    chip_size: int,
    landmark_format: str,
    max_faces: int = 8,
    field: str = schema.FACES,
) -> list[TrackFaces]:
    """Decode ``sample``'s video once and cut aligned chips for a sample of each track's faces."""
    from vcn_plugin.stage1.align import align_face

    picked = sample_track_faces(read_tracks(sample, field), max_faces)
    wanted: dict[int, list[tuple[int, int, object]]] = {}
    for track, faces in picked.items():
        for slot, (number, det) in enumerate(faces):
            wanted.setdefault(number, []).append((track, slot, det))
    chips = {track: [None] * len(faces) for track, faces in picked.items()}
    last_needed = max(wanted) if wanted else 0
    for number, frame in iter_frames(sample.filepath):
        if number > last_needed:
            break
        for track, slot, det in wanted.get(number, []):
            h, w = frame.shape[:2]
            face = detection_to_face(det, w, h, landmark_format)
            chips[track][slot] = align_face(frame, face.landmarks, landmark_format, template, chip_size, box=face.box)
    result = []
    for track in sorted(picked):
        ok = [i for i, c in enumerate(chips[track]) if c is not None]
        if not ok:
            continue
        faces = picked[track]
        result.append(
            TrackFaces(
                video_id=sample.id,
                track=track,
                frames=[faces[i][0] for i in ok],
                detection_ids=[faces[i][1].id for i in ok],
                qualities=[_quality(faces[i][1]) for i in ok],
                chips=np.stack([chips[track][i] for i in ok]),
            )
        )
    return result
