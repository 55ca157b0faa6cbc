"""The association loop of one shot, gap filling, and tracking a whole video shot by shot."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vcn_plugin.core.types import FaceDetection, Track, TrackedFace
from vcn_plugin.stage1.tracking.association import match_boxes
from vcn_plugin.stage1.tracking.config import TrackerConfig
from vcn_plugin.stage1.tracking.kalman import BoxKalman, xyxy_to_cxcywh
from vcn_plugin.stage1.tracking.results import DroppedTrack, TrackingResult, TrackingStats

DetectionsByFrame = Mapping[int, Sequence[FaceDetection]]


@dataclass
class _LiveTrack:
    kalman: BoxKalman
    hits: list[tuple[int, FaceDetection]]
    confirmed: bool
    #: Kalman velocity of (cx, cy, w, h) per frame, right after the last hit
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))

    @property
    def last_hit_frame(self) -> int:
        return self.hits[-1][0]

    def add(self, frame: int, detection: FaceDetection, min_hits: int) -> None:
        self.kalman.update(np.asarray(detection.box, dtype=float))
        self.hits.append((frame, detection))
        self.velocity = self.kalman.mean[4:].copy()
        self.confirmed = self.confirmed or len(self.hits) >= min_hits


def _validate_detection(frame: int, detection: FaceDetection) -> None:
    box = np.asarray(detection.box, dtype=float)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"frame {frame}: detection box must be finite x1, y1, x2, y2 with x2 > x1 and y2 > y1, got {box}")
    if not math.isfinite(detection.score):
        raise ValueError(f"frame {frame}: detection score must be finite, got {detection.score}")


def infer_detect_every(frames: Sequence[int]) -> int:
    """k such that detection ran every k-th frame: gcd of the gaps between ``frames``."""
    ordered = sorted(set(int(f) for f in frames))
    gaps = [b - a for a, b in zip(ordered, ordered[1:])]
    return math.gcd(*gaps) if gaps else 1


def _resolve_detect_every(config: TrackerConfig, frames: Sequence[int]) -> TrackerConfig:
    if config.detect_every is not None:
        return config
    k = infer_detect_every(frames)
    return dataclasses.replace(config, detect_every=k, max_age=max(config.max_age, k))


class _ShotTracker:
    """Runs the association loop over the frames of one shot."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self.k = int(config.detect_every or 1)
        self.live: list[_LiveTrack] = []
        self.finished: list[_LiveTrack] = []
        self.unconfirmed: list[_LiveTrack] = []
        self.stats = TrackingStats()

    def step(self, frame: int, detections: Sequence[FaceDetection]) -> None:
        for track in self.live:
            track.kalman.predict(freeze_size=frame - track.last_hit_frame > self.k)
        self._associate(frame, list(detections))
        self._retire(frame)

    def _associate(self, frame: int, detections: list[FaceDetection]) -> None:
        cfg = self.config
        self.stats.detections += len(detections)
        high = [d for d in detections if d.score >= cfg.high_score]
        low = [d for d in detections if cfg.low_score <= d.score < cfg.high_score]
        self.stats.below_low_score += len(detections) - len(high) - len(low)

        confirmed = [t for t in self.live if t.confirmed]
        tentative = [t for t in self.live if not t.confirmed]
        left_tracks, left_high = self._assign(frame, confirmed, high, cfg.match_iou)
        left_tentative, left_high = self._assign(frame, tentative, left_high, cfg.tentative_match_iou)
        if cfg.second_buffer > 0:
            left_tracks, left_tentative, left_high = self._second_pass(frame, left_tracks, left_tentative, left_high)
        # low-score boxes only extend tracks seen at the previous detection step. Unlike
        # ByteTrack they may also confirm a tentative track: with detection every k-th
        # frame, faces with weak scores otherwise rarely get two high-score hits in a row.
        active = [t for t in left_tracks if frame - t.last_hit_frame <= self.k] + left_tentative
        _, left_low = self._assign(frame, active, low, cfg.low_match_iou)
        self.stats.unmatched_low_score += len(left_low)
        for detection in left_high:
            if detection.score >= cfg.new_track_score:
                self._start(frame, detection)
            else:
                self.stats.unmatched_high_score += 1

    def _second_pass(
        self, frame: int, tracks: list[_LiveTrack], tentative: list[_LiveTrack], detections: list[FaceDetection]
    ) -> tuple[list[_LiveTrack], list[_LiveTrack], list[FaceDetection]]:
        """C-BIoU's wide-buffer pass (``TrackerConfig.second_buffer``) over what is still unmatched."""
        recent = [t for t in tracks if frame - t.last_hit_frame <= self.k]
        unmatched, detections = self._assign(frame, recent + tentative, detections, self.config.match_iou,
                                             self.config.second_buffer)  # fmt: skip
        matched = {id(t) for t in recent + tentative} - {id(t) for t in unmatched}
        return [t for t in tracks if id(t) not in matched], [t for t in tentative if id(t) not in matched], detections

    def _assign(
        self, frame: int, tracks: list[_LiveTrack], detections: list[FaceDetection], min_iou: float,
        buffer: float | None = None,
    ) -> tuple[list[_LiveTrack], list[FaceDetection]]:
        """Match, update matched tracks; return the unmatched tracks and detections. ``buffer``: one
        widening for every pair instead of ``buffer_per_frame`` per frame since the last hit."""
        if not tracks or not detections:
            return tracks, detections
        track_boxes = np.array([t.kalman.box for t in tracks]).reshape(-1, 4)
        det_boxes = np.array([d.box for d in detections], dtype=float).reshape(-1, 4)
        gaps = np.array([frame - t.last_hit_frame for t in tracks], dtype=float)
        buffers = np.minimum(self.config.buffer_per_frame * gaps, self.config.max_buffer)
        if buffer is not None:
            buffers = np.full(len(tracks), float(buffer))
        matches, free_tracks, free_dets = match_boxes(track_boxes, buffers, det_boxes, min_iou)
        for r, c in matches:
            tracks[r].add(frame, detections[c], self.config.min_hits)
        return [tracks[i] for i in free_tracks], [detections[j] for j in free_dets]

    def _start(self, frame: int, detection: FaceDetection) -> None:
        confirmed = detection.score >= self.config.birth_score or self.config.min_hits <= 1
        self.live.append(_LiveTrack(BoxKalman(np.asarray(detection.box, dtype=float)), [(frame, detection)], confirmed))

    def _retire(self, frame: int) -> None:
        still_live = []
        for track in self.live:
            missed = frame - track.last_hit_frame
            if not track.confirmed and missed >= self.k:
                self.unconfirmed.append(track)
            elif track.confirmed and missed > self.config.max_age:
                self.finished.append(track)
            else:
                still_live.append(track)
        self.live = still_live

    def close(self) -> None:
        self.finished.extend(t for t in self.live if t.confirmed)
        self.unconfirmed.extend(t for t in self.live if not t.confirmed)
        self.live = []


def _interpolate(a: FaceDetection, b: FaceDetection, t: float) -> FaceDetection:
    box = (1 - t) * np.asarray(a.box, dtype=float) + t * np.asarray(b.box, dtype=float)
    landmarks = None
    if a.landmarks is not None and b.landmarks is not None and a.landmark_format == b.landmark_format:
        landmarks = (1 - t) * np.asarray(a.landmarks, dtype=float) + t * np.asarray(b.landmarks, dtype=float)
    score = (1 - t) * float(a.score) + t * float(b.score)
    return FaceDetection(box=box, score=score, landmarks=landmarks, landmark_format=a.landmark_format)


def _extrapolate(detection: FaceDetection, velocity: np.ndarray, steps: int) -> FaceDetection:
    """Move a detection ``steps`` frames along a (cx, cy, w, h) per-frame velocity."""
    old = xyxy_to_cxcywh(detection.box)
    new = old + velocity * steps
    new[2:] = np.maximum(new[2:], 1.0)
    box = np.concatenate([new[:2] - new[2:] / 2, new[:2] + new[2:] / 2])
    landmarks = None
    if detection.landmarks is not None:
        landmarks = (np.asarray(detection.landmarks, dtype=float) - old[:2]) * (new[2:] / old[2:]) + new[:2]
    return FaceDetection(box=box, score=float(detection.score), landmarks=landmarks, landmark_format=detection.landmark_format)


def _tail(live: _LiveTrack, steps: int) -> list[TrackedFace]:
    last_frame, last = live.hits[-1]
    return [TrackedFace(last_frame + i, _extrapolate(last, live.velocity, i), interpolated=True) for i in range(1, steps + 1)]


def _build_faces(hits: list[tuple[int, FaceDetection]], max_gap: int) -> list[TrackedFace]:
    """Real faces plus interpolated ones in gaps of at most ``max_gap`` missing frames."""
    faces = [TrackedFace(hits[0][0], hits[0][1])]
    for (f0, d0), (f1, d1) in zip(hits, hits[1:]):
        if 1 < f1 - f0 <= max_gap + 1:
            faces.extend(
                TrackedFace(f, _interpolate(d0, d1, (f - f0) / (f1 - f0)), interpolated=True) for f in range(f0 + 1, f1)
            )
        faces.append(TrackedFace(f1, d1))
    return faces


def _sort_key(track: Track) -> tuple[int, float, float]:
    first = track.faces[0]
    return first.frame, float(first.detection.box[0]), float(first.detection.box[1])


def track_shot(
    detections_by_frame: DetectionsByFrame,
    first_frame: int,
    last_frame: int,
    config: TrackerConfig | None = None,
    start_id: int = 0,
    shot: int = 0,
) -> TrackingResult:
    """Track faces over frames ``first_frame..last_frame`` (inclusive, 1-based) of one shot.

    ``detections_by_frame`` maps a frame number to its detections; a frame with
    none may be missing or map to an empty list. Frames outside the range are
    ignored. Kept tracks get ids ``start_id, start_id + 1, ...`` ordered by first
    frame, then left edge, then top edge of their first box.
    """
    if first_frame < 1 or last_frame < first_frame:
        raise ValueError(f"need 1 <= first_frame <= last_frame, got {first_frame}..{last_frame}")
    config = config or TrackerConfig()
    in_shot = [f for f in detections_by_frame if first_frame <= f <= last_frame]
    config = _resolve_detect_every(config, in_shot)
    tracker = _ShotTracker(config)
    for frame in range(first_frame, last_frame + 1):
        detections = list(detections_by_frame.get(frame, ()))
        for detection in detections:
            _validate_detection(frame, detection)
        tracker.step(frame, detections)
    tracker.close()
    return _collect(tracker, config, start_id, shot, last_frame)


def _collect(tracker: _ShotTracker, config: TrackerConfig, start_id: int, shot: int, last_frame: int) -> TrackingResult:
    k = int(config.detect_every or 1)
    max_gap = max(config.max_interpolated_gap, k - 1)
    tail = k - 1 if config.extrapolate_tail else 0
    result = TrackingResult(stats=tracker.stats)
    kept: list[Track] = []
    for live in tracker.finished:
        faces = _build_faces(live.hits, max_gap) + _tail(live, min(tail, last_frame - live.last_hit_frame))
        track = Track(track_id=-1, shot=shot, faces=faces)
        if len(live.hits) >= config.min_track_length:
            kept.append(track)
            result.stats.in_kept_tracks += len(live.hits)
            result.stats.interpolated_faces += len(track) - len(live.hits)
        else:
            result.dropped.append(DroppedTrack(track, "too_short"))
            result.stats.in_dropped_tracks += len(live.hits)
    for live in tracker.unconfirmed:
        result.dropped.append(DroppedTrack(Track(-1, shot, [TrackedFace(f, d) for f, d in live.hits]), "unconfirmed"))
        result.stats.in_dropped_tracks += len(live.hits)
    kept.sort(key=_sort_key)
    for offset, track in enumerate(kept):
        track.track_id = start_id + offset
    result.tracks = kept
    result.dropped.sort(key=lambda d: _sort_key(d.track))
    return result


def validate_shots(shots: Sequence[tuple[int, int]], num_frames: int | None = None) -> list[tuple[int, int]]:
    """Check that shots are 1-based inclusive ranges, sorted and non-overlapping."""
    checked: list[tuple[int, int]] = []
    for index, shot in enumerate(shots):
        if len(shot) != 2:
            raise ValueError(f"shot {index} must be a (first_frame, last_frame) pair, got {shot!r}")
        first, last = int(shot[0]), int(shot[1])
        if first < 1 or last < first:
            raise ValueError(f"shot {index} = {shot!r}: need 1 <= first_frame <= last_frame (frames are 1-based)")
        if num_frames is not None and last > num_frames:
            raise ValueError(f"shot {index} = {shot!r} ends after the last frame of the video ({num_frames})")
        if checked and first <= checked[-1][1]:
            raise ValueError(
                f"shot {index} = {shot!r} overlaps or precedes shot {index - 1} = {checked[-1]}; "
                "shots must be sorted and non-overlapping"
            )
        checked.append((first, last))
    return checked


def track_video(
    detections_by_frame: DetectionsByFrame,
    shots: Sequence[tuple[int, int]],
    config: TrackerConfig | None = None,
    num_frames: int | None = None,
) -> TrackingResult:
    """Track faces in each shot independently; no track crosses a shot boundary.

    ``shots`` are sorted, non-overlapping, 1-based inclusive frame ranges (a
    ``Track.shot`` is the index into this list). Track ids run 0..n-1 over the
    video, ordered by first frame, then left edge of the first box. Detections
    on frames outside every shot are counted in ``stats.outside_shots``.
    ``num_frames``, when given, also checks that no shot ends after the video.
    """
    checked = validate_shots(shots, num_frames)
    if any(int(f) < 1 for f in detections_by_frame):
        raise ValueError(f"frame numbers are 1-based; got frame {min(detections_by_frame)} in detections_by_frame")
    config = _resolve_detect_every(config or TrackerConfig(), list(detections_by_frame))
    result = TrackingResult()
    for index, (first, last) in enumerate(checked):
        shot_result = track_shot(detections_by_frame, first, last, config, start_id=len(result.tracks), shot=index)
        result.tracks.extend(shot_result.tracks)
        result.dropped.extend(shot_result.dropped)
        result.stats = result.stats + shot_result.stats
    total = sum(len(dets) for dets in detections_by_frame.values())
    result.stats.outside_shots = total - result.stats.detections
    result.stats.detections = total
    return result
