"""Stage 1: video -> shots -> faces -> quality -> tracks, in one decoding pass per video."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vcn_plugin.core.progress import Progress
from vcn_plugin.core.timing import StageTimer, timed
from vcn_plugin.core.types import FaceDetection
from vcn_plugin.core.video import VideoError, VideoInfo, iter_frames, probe_video
from vcn_plugin.stage1.detectors import DEFAULT_DETECTOR, FaceDetector, get_detector
from vcn_plugin.stage1.quality import face_qualities
from vcn_plugin.stage1.shots import ShotConfig, ShotDetector
from vcn_plugin.stage1.tracking import TrackerConfig, TrackingResult, track_video


@dataclass
class Stage1Config:
    """Settings of stage 1. Defaults are the offline, CPU-friendly configuration."""

    #: face detector name (see :func:`vcn_plugin.stage1.detectors.available_detectors`)
    detector: str = DEFAULT_DETECTOR
    #: options of the detector's config dataclass, e.g. ``{"upsample": 1}``
    detector_options: dict[str, Any] = field(default_factory=dict)
    #: run the detector on every k-th frame; the tracker bridges and interpolates the rest
    detect_every: int = 3
    shots: ShotConfig = field(default_factory=ShotConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")
        if isinstance(self.shots, dict):
            self.shots = ShotConfig(**self.shots)
        if isinstance(self.tracker, dict):
            self.tracker = TrackerConfig(**self.tracker)

    def tracker_config(self) -> TrackerConfig:
        params = asdict(self.tracker)
        params["detect_every"] = self.detect_every
        params["max_age"] = max(params["max_age"], self.detect_every)
        return TrackerConfig(**params)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VideoFaces:
    """Everything stage 1 found in one video."""

    info: VideoInfo
    num_frames: int  # frames actually decoded
    width: int
    height: int
    shots: list[tuple[int, int]]
    tracking: TrackingResult
    detections: int
    seconds: float
    #: seconds per part of stage 1: probe, decode, shots, resize, detect, quality, tracking
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def tracks(self):
        return self.tracking.tracks


def detect_frames(
    path: str,
    detector: FaceDetector,
    config: Stage1Config,
    fps: float,
    total_frames: int = 0,
    progress: Progress | None = None,
    timer: StageTimer | None = None,
) -> tuple[dict[int, list[FaceDetection]], list[tuple[int, int]], int, tuple[int, int]]:
    """Decode once: feed every frame to shot detection, every k-th to the face detector.

    Frames for the detector are collected ``detector.batch_size`` at a time (1 on the CPU).
    ``timer`` gets the seconds of ``decode``, ``shots``, ``resize``, ``detect`` and ``quality``.
    """
    shot_detector = ShotDetector(fps, config.shots)
    detections: dict[int, list[FaceDetection]] = {}
    pending: list[tuple[int, np.ndarray]] = []
    last, size = 0, (0, 0)
    frames = iter_frames(path)
    while True:
        with timed(timer, "decode"):
            item = next(frames, None)
        if item is None:
            break
        number, frame = item
        with timed(timer, "shots"):
            shot_detector.update(number, frame)
        if (number - 1) % config.detect_every == 0:
            pending.append((number, frame))
            if len(pending) >= detector.batch_size:
                detections.update(_detect_pending(detector, pending, timer))
                pending = []
        last, size = number, (frame.shape[1], frame.shape[0])
        if progress is not None and number % 25 == 0:
            progress(min(number / total_frames, 1.0) if total_frames else 0.0, f"frame {number}")
    detections.update(_detect_pending(detector, pending, timer))
    with timed(timer, "shots"):
        shots = shot_detector.shots()
    return detections, shots, last, size


def _detect_pending(
    detector: FaceDetector, pending: list[tuple[int, np.ndarray]], timer: StageTimer | None
) -> dict[int, list[FaceDetection]]:
    """Faces, with their quality, in the collected frames."""
    if not pending:
        return {}
    found = detector.detect_batch([frame for _, frame in pending], timer=timer)
    with timed(timer, "quality"):
        for (_, frame), faces in zip(pending, found):
            for face, quality in zip(faces, face_qualities(frame, faces)):
                face.quality = float(quality)
    return {number: faces for (number, _), faces in zip(pending, found)}


def process_video(
    path: str,
    config: Stage1Config | None = None,
    detector: FaceDetector | None = None,
    progress: Progress | None = None,
) -> VideoFaces:
    """Run stage 1 on one video file. Raises :class:`VideoError` for unreadable files."""
    config = config or Stage1Config()
    detector = detector or get_detector(config.detector, **config.detector_options)
    start, timer = time.perf_counter(), StageTimer()
    with timer.time("probe"):
        info = probe_video(path)
    detections, shots, num_frames, (width, height) = detect_frames(
        path, detector, config, info.fps, info.num_frames, progress, timer
    )
    if num_frames == 0:
        raise VideoError(f"{path}: no frame could be decoded")
    with timer.time("tracking"):
        tracking = track_video(detections, shots, config.tracker_config(), num_frames=num_frames)
    return VideoFaces(
        info=info,
        num_frames=num_frames,
        width=width,
        height=height,
        shots=shots,
        tracking=tracking,
        detections=sum(len(d) for d in detections.values()),
        seconds=time.perf_counter() - start,
        stage_seconds=timer.seconds,
    )


def track_summary(result: VideoFaces) -> dict[str, Any]:
    """JSON-friendly statistics of one video's stage-1 result."""
    lengths = np.array([len(t) for t in result.tracks]) if result.tracks else np.zeros(0)
    return {
        "frames": result.num_frames,
        "shots": len(result.shots),
        "detections": result.detections,
        "tracks": len(result.tracks),
        "dropped_tracks": len(result.tracking.dropped),
        "faces_in_tracks": int(lengths.sum()),
        "median_track_length": float(np.median(lengths)) if lengths.size else 0.0,
        "seconds": round(result.seconds, 3),
        "realtime_factor": round(result.num_frames / max(result.info.fps, 1e-6) / max(result.seconds, 1e-9), 3),
    }
