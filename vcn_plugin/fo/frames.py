"""The one reader of tracks from a Detections frame field (``frames.<field>``).

A track is the set of detections of one sample that share ``Detection.index``. Every layer
that needs tracks back from FiftyOne reads them here: :func:`read_tracks` per sample, with the
detections themselves (boxes, labels, attributes), and :func:`track_label_counts` over a whole
collection, from the label values alone (no frame documents are loaded).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from dataclasses import field as dc_field

import fiftyone as fo

from vcn_plugin.core.types import TrackKey
from vcn_plugin.fo import schema


@dataclass
class FrameTrack:
    """One track of a frame field: its detection on each frame it appears in (1-based)."""

    index: int
    detections: dict[int, fo.Detection] = dc_field(default_factory=dict)

    @property
    def frames(self) -> list[int]:
        return sorted(self.detections)

    @property
    def boxes(self) -> dict[int, list[float]]:
        """Frame number -> relative ``[x, y, w, h]``."""
        return {n: list(self.detections[n].bounding_box) for n in self.frames}

    @property
    def labels(self) -> Counter:
        """How many of the track's detections carry each label."""
        return Counter(d.label for d in self.detections.values())

    @property
    def is_distractor(self) -> bool:
        """True when any detection is marked ``distractor`` (ground truth of unlabelled extras)."""
        return any(attribute(d, schema.ATTR_DISTRACTOR, False) for d in self.detections.values())

    @property
    def shot(self) -> int:
        """The stage-1 shot of the track (0 when not recorded)."""
        last = self.detections[max(self.detections)]
        return int(attribute(last, schema.ATTR_SHOT, 0))

    def qualities(self) -> list[float]:
        """Stage-1 quality of the detected (not interpolated) faces, in frame order."""
        out = []
        for n in self.frames:
            det = self.detections[n]
            q = attribute(det, schema.ATTR_QUALITY)
            if not attribute(det, schema.ATTR_INTERPOLATED, False) and q is not None:
                out.append(float(q))
        return out


def attribute(det: fo.Detection, name: str, default=None):
    """A detection attribute, or ``default`` when it is absent."""
    return det.get_field(name) if det.has_field(name) else default


def read_tracks(sample: fo.Sample, field: str, where: str | None = None) -> dict[int, FrameTrack]:
    """The tracks of ``sample``'s ``frames.<field>``, by track index, in index order.

    Raises ValueError naming ``where`` (default: the sample's file) and the frame when a
    detection has no track index or a track has two detections in one frame.
    """
    where = where or sample.filepath
    tracks: dict[int, FrameTrack] = {}
    for number, frame in sample.frames.items():
        detections = frame[field] if frame.has_field(field) else None
        for det in detections.detections if detections is not None else []:
            if det.index is None:
                raise ValueError(f"{where} frame {number}: a detection of '{field}' has no track index; "
                                 "tracks need 'index' (run face tracking, or import ground truth with track ids)")
            track = tracks.setdefault(int(det.index), FrameTrack(int(det.index)))
            if number in track.detections:
                raise ValueError(f"{where} frame {number}: track {track.index} of '{field}' has two detections")
            track.detections[number] = det
    return dict(sorted(tracks.items()))


def track_label_counts(samples: fo.core.collections.SampleCollection, field: str = schema.FACES) -> dict[TrackKey, Counter]:
    """Label counts of every track of every sample of ``samples``, from label values only."""
    path = f"{schema.frame_path(field)}.detections"
    ids, indices, labels = samples.values(["id", f"{path}.index", f"{path}.label"])
    counts: dict[TrackKey, Counter] = {}
    for video_id, frames_idx, frames_lab in zip(ids, indices, labels):
        for idx_list, lab_list in zip(frames_idx or [], frames_lab or []):
            for idx, lab in zip(idx_list or [], lab_list or []):
                if idx is not None:
                    counts.setdefault((video_id, int(idx)), Counter())[lab] += 1
    return counts


def majority_label(counts: Counter) -> str:
    """Most common label; ties go to the first in alphabetical order (deterministic)."""
    return min(counts, key=lambda label: (-counts[label], str(label)))
