"""Face tracking inside shots: a small ByteTrack-style motion tracker.

The tracker follows ByteTrack (Zhang et al., "ByteTrack: Multi-Object Tracking
by Associating Every Detection Box", ECCV 2022): a constant-velocity Kalman
filter on box centre and size, IoU cost with Hungarian matching, and a
two-stage association in which high-score detections are matched first and
low-score ones only rescue tracks that are still active. On top of it, gaps
that a track bridges are filled by linear interpolation, so that detection can
run on every k-th frame only.

Why not a library: supervision (>= 0.26) no longer ships ByteTrack; roboflow's
``trackers`` package, where it moved, hard-requires ``opencv-python`` (which
overwrites the headless OpenCV FiftyOne needs) plus supervision, av,
matplotlib and rich; ``boxmot`` requires torchvision, which cannot be installed
beside this CPU torch. All of them return boxes per frame only, so carrying
landmarks, filling gaps, honouring shot boundaries and every-k-th-frame
detection would still be code of ours. This module is that code plus the
~40 lines of Kalman filter, with scipy's ``linear_sum_assignment`` doing the
matching.

Frame numbers are 1-based, as in FiftyOne.
"""
from __future__ import annotations

from vcn_plugin.core.geometry import iou_matrix
from vcn_plugin.stage1.tracking.association import buffered_iou_matrix
from vcn_plugin.stage1.tracking.config import TrackerConfig
from vcn_plugin.stage1.tracking.results import DroppedTrack, TrackingResult, TrackingStats
from vcn_plugin.stage1.tracking.shot_tracker import (
    DetectionsByFrame,
    infer_detect_every,
    track_shot,
    track_video,
    validate_shots,
)

__all__ = [
    "DetectionsByFrame",
    "DroppedTrack",
    "TrackerConfig",
    "TrackingResult",
    "TrackingStats",
    "buffered_iou_matrix",
    "infer_detect_every",
    "iou_matrix",
    "track_shot",
    "track_video",
    "validate_shots",
]
