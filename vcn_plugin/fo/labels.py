"""Conversions between vcn's plain types and FiftyOne labels, and writing them to samples."""
from __future__ import annotations

from collections.abc import Iterable

import fiftyone as fo
import numpy as np

from vcn_plugin.core.types import FaceDetection, Track
from vcn_plugin.fo import schema


def relative_box(box: np.ndarray, width: int, height: int) -> list[float]:
    """Pixel ``x1, y1, x2, y2`` -> FiftyOne's relative ``[x, y, w, h]``, clipped to the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = np.clip([x1, x2], 0, width)
    y1, y2 = np.clip([y1, y2], 0, height)
    return [x1 / width, y1 / height, max(x2 - x1, 0.0) / width, max(y2 - y1, 0.0) / height]


def absolute_box(bounding_box: list[float], width: int, height: int) -> np.ndarray:
    """FiftyOne's relative ``[x, y, w, h]`` -> pixel ``x1, y1, x2, y2``."""
    x, y, w, h = bounding_box
    return np.array([x * width, y * height, (x + w) * width, (y + h) * height], dtype=np.float32)


def face_to_detection(
    face: FaceDetection, track_id: int, shot: int, width: int, height: int, interpolated: bool, label: str
) -> fo.Detection:
    attrs = {
        schema.ATTR_QUALITY: None if face.quality is None else float(face.quality),
        schema.ATTR_SHOT: int(shot),
        schema.ATTR_INTERPOLATED: bool(interpolated),
    }
    if face.landmarks is not None:
        attrs[schema.ATTR_LANDMARKS] = [[float(x) / width, float(y) / height] for x, y in face.landmarks]
    return fo.Detection(
        label=label,
        bounding_box=relative_box(face.box, width, height),
        confidence=float(face.score),
        index=int(track_id),
        **attrs,
    )


def detection_to_face(det: fo.Detection, width: int, height: int, landmark_format: str) -> FaceDetection:
    landmarks = det.get_field(schema.ATTR_LANDMARKS) if det.has_field(schema.ATTR_LANDMARKS) else None
    return FaceDetection(
        box=absolute_box(det.bounding_box, width, height),
        score=float(det.confidence or 0.0),
        landmarks=None if not landmarks else np.array(landmarks, dtype=np.float32) * [width, height],
        landmark_format=landmark_format,
        quality=det.get_field(schema.ATTR_QUALITY) if det.has_field(schema.ATTR_QUALITY) else None,
    )


def tracks_to_frame_labels(
    tracks: Iterable[Track], width: int, height: int, label: str = schema.FACE_LABEL
) -> dict[int, list[fo.Detection]]:
    frames: dict[int, list[fo.Detection]] = {}
    for track in tracks:
        for face in track.faces:
            det = face_to_detection(face.detection, track.track_id, track.shot, width, height, face.interpolated, label)
            frames.setdefault(face.frame, []).append(det)
    return frames


def shots_to_temporal(shots: list[tuple[int, int]]) -> fo.TemporalDetections:
    return fo.TemporalDetections(
        detections=[
            fo.TemporalDetection(label=schema.SHOT_LABEL, support=[int(a), int(b)], index=i)
            for i, (a, b) in enumerate(shots)
        ]
    )


def write_frame_detections(sample: fo.Sample, field: str, frames: dict[int, list[fo.Detection]]) -> None:
    """Replace ``frames.<field>`` of ``sample``: frames not in ``frames`` get ``None``."""
    for number, frame in sample.frames.items():
        if number not in frames and frame.has_field(field) and frame[field] is not None:
            frame[field] = None
    for number, detections in frames.items():
        sample.frames[number][field] = fo.Detections(detections=detections)
    sample.save()
