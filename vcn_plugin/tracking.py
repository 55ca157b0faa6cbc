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

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from vcn_plugin.types import FaceDetection, Track, TrackedFace

DetectionsByFrame = Mapping[int, Sequence[FaceDetection]]


@dataclass
class TrackerConfig:
    """Settings of :func:`track_shot` / :func:`track_video`.

    Scores are in the detector's units; the defaults suit detectors whose
    scores lie in [0, 1] (SCRFD, YuNet). For raw dlib HOG margins (about -0.5
    to 3) lower the score thresholds accordingly.
    """

    #: detections with ``score >= high_score`` take part in the first association
    high_score: float = 0.5
    #: detections below this are ignored (counted in ``stats.below_low_score``);
    #: those in ``[low_score, high_score)`` only extend active tracks
    low_score: float = 0.1
    #: an unmatched high-score detection starts a new (tentative) track only if
    #: its score reaches this (ByteTrack: ``high_score + 0.1``)
    new_track_score: float = 0.6
    #: a tentative track is confirmed after this many matched detections ...
    min_hits: int = 2
    #: ... or at once when the detection that starts it scores at least this
    birth_score: float = 0.8
    #: a confirmed track dies when it has no matched detection for more than
    #: this many frames
    max_age: int = 30
    #: buffered IoU (Yang et al., "Hard to Track Objects with Irregular Motions
    #: and Similar Appearances? Make It Easier by Buffering the Matching Space",
    #: WACV 2023): before matching, the predicted box and the detection are both
    #: widened on each side by this fraction of their size per frame since the
    #: track's last detection, so fast faces still overlap across detection gaps
    buffer_per_frame: float = 0.05
    #: upper limit of that widening
    max_buffer: float = 0.3
    #: minimum (buffered) IoU between a predicted track box and a high-score detection
    match_iou: float = 0.2
    #: minimum IoU for the low-score (second) association
    low_match_iou: float = 0.5
    #: minimum IoU for matching a tentative track
    tentative_match_iou: float = 0.3
    #: gaps of up to this many missing frames inside a track are filled with
    #: interpolated faces (``interpolated=True``); longer ones stay empty. It is
    #: raised to ``detect_every - 1`` when detection runs every k-th frame.
    max_interpolated_gap: int = 10
    #: detection ran on every k-th frame; ``None`` infers k as the greatest common
    #: divisor of the gaps between the frame keys of the input, so pass every frame
    #: detection ran on as a key (with an empty list where it found no face)
    detect_every: int | None = 1
    #: with ``detect_every = k > 1``, continue each track for up to k - 1 frames
    #: after its last detection (constant-velocity prediction, ``interpolated=True``,
    #: never past the shot), as detection did not look at those frames
    extrapolate_tail: bool = True
    #: tracks with fewer real (non-interpolated) detections are dropped and
    #: returned in ``TrackingResult.dropped`` with reason ``"too_short"``
    min_track_length: int = 1

    def __post_init__(self) -> None:
        if not self.low_score <= self.high_score:
            raise ValueError(f"need low_score <= high_score, got {self.low_score} and {self.high_score}")
        if self.new_track_score < self.high_score:
            raise ValueError("new_track_score must be >= high_score (only high-score detections start tracks)")
        for name in ("min_hits", "min_track_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_age", "max_interpolated_gap", "buffer_per_frame", "max_buffer"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("match_iou", "low_match_iou", "tentative_match_iou"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.detect_every is not None and self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1 or None (infer), got {self.detect_every}")
        if self.detect_every is not None and self.max_age < self.detect_every:
            raise ValueError(
                f"max_age ({self.max_age}) must be >= detect_every ({self.detect_every}), "
                "otherwise every track dies between two detection frames"
            )


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


class _BoxKalman:
    """Constant-velocity Kalman filter on (cx, cy, w, h), noise scaled by box size.

    The noise model is BoT-SORT's xywh variant of ByteTrack's filter.
    """

    _POS_STD = 1.0 / 20
    _VEL_STD = 1.0 / 160
    _F = np.eye(8) + np.eye(8, k=4)
    _H = np.eye(4, 8)

    def __init__(self, box: np.ndarray) -> None:
        z = _xyxy_to_cxcywh(box)
        self.mean = np.concatenate([z, np.zeros(4)])
        w, h = z[2], z[3]
        std = np.array([2 * self._POS_STD * w, 2 * self._POS_STD * h] * 2 + [10 * self._VEL_STD * w, 10 * self._VEL_STD * h] * 2)
        self.cov = np.diag(std**2)

    def predict(self, freeze_size: bool) -> None:
        if freeze_size:  # ByteTrack: a lost track keeps its size
            self.mean[6:8] = 0.0
        w, h = self.mean[2], self.mean[3]
        std = np.array([self._POS_STD * w, self._POS_STD * h] * 2 + [self._VEL_STD * w, self._VEL_STD * h] * 2)
        self.mean = self._F @ self.mean
        self.mean[2:4] = np.maximum(self.mean[2:4], 1.0)
        self.cov = self._F @ self.cov @ self._F.T + np.diag(std**2)

    def update(self, box: np.ndarray) -> None:
        z = _xyxy_to_cxcywh(box)
        w, h = self.mean[2], self.mean[3]
        r = np.diag(np.array([self._POS_STD * w, self._POS_STD * h] * 2) ** 2)
        s = self._H @ self.cov @ self._H.T + r
        gain = np.linalg.solve(s, self._H @ self.cov).T
        self.mean = self.mean + gain @ (z - self._H @ self.mean)
        self.cov = self.cov - gain @ self._H @ self.cov

    @property
    def box(self) -> np.ndarray:
        cx, cy, w, h = self.mean[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


@dataclass
class _LiveTrack:
    kalman: _BoxKalman
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


def _xyxy_to_cxcywh(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = np.asarray(box, dtype=float)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


def _elementwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x1, y1, x2, y2 boxes in the last axis of two broadcastable arrays."""
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0, None)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) x1, y1, x2, y2 boxes -> (N, M)."""
    a = np.asarray(boxes_a, dtype=float).reshape(-1, 1, 4)
    b = np.asarray(boxes_b, dtype=float).reshape(1, -1, 4)
    return _elementwise_iou(a, b)


def _widen(boxes: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Grow (..., 4) boxes on every side by ``fraction`` (broadcast) of their width / height."""
    size = boxes[..., 2:] - boxes[..., :2]
    margin = np.concatenate([-size, size], axis=-1) * fraction[..., None]
    return boxes + margin


def buffered_iou_matrix(track_boxes: np.ndarray, buffers: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
    """IoU after widening row i's track box and every detection by ``buffers[i]``."""
    buffers = np.asarray(buffers, dtype=float).reshape(-1, 1)
    tracks = _widen(np.asarray(track_boxes, dtype=float).reshape(-1, 1, 4), buffers)
    dets = _widen(np.asarray(det_boxes, dtype=float).reshape(1, -1, 4), buffers)
    return _elementwise_iou(tracks, dets)


def _match(
    track_boxes: np.ndarray, buffers: np.ndarray, det_boxes: np.ndarray, min_iou: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian matching on 1 - buffered IoU; pairs below ``min_iou`` never match."""
    n_tracks, n_dets = len(track_boxes), len(det_boxes)
    if n_tracks == 0 or n_dets == 0:
        return [], list(range(n_tracks)), list(range(n_dets))
    iou = buffered_iou_matrix(track_boxes, buffers, det_boxes)
    cost = np.where(iou >= min_iou, 1.0 - iou, 1e6)
    rows, cols = linear_sum_assignment(cost)
    matches = [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]
    matched_tracks = {r for r, _ in matches}
    matched_dets = {c for _, c in matches}
    return (
        matches,
        [i for i in range(n_tracks) if i not in matched_tracks],
        [j for j in range(n_dets) if j not in matched_dets],
    )


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

    def _assign(
        self, frame: int, tracks: list[_LiveTrack], detections: list[FaceDetection], min_iou: float
    ) -> tuple[list[_LiveTrack], list[FaceDetection]]:
        """Match, update matched tracks; return the unmatched tracks and detections."""
        if not tracks or not detections:
            return tracks, detections
        track_boxes = np.array([t.kalman.box for t in tracks]).reshape(-1, 4)
        det_boxes = np.array([d.box for d in detections], dtype=float).reshape(-1, 4)
        gaps = np.array([frame - t.last_hit_frame for t in tracks], dtype=float)
        buffers = np.minimum(self.config.buffer_per_frame * gaps, self.config.max_buffer)
        matches, free_tracks, free_dets = _match(track_boxes, buffers, det_boxes, min_iou)
        for r, c in matches:
            tracks[r].add(frame, detections[c], self.config.min_hits)
        return [tracks[i] for i in free_tracks], [detections[j] for j in free_dets]

    def _start(self, frame: int, detection: FaceDetection) -> None:
        confirmed = detection.score >= self.config.birth_score or self.config.min_hits <= 1
        self.live.append(_LiveTrack(_BoxKalman(np.asarray(detection.box, dtype=float)), [(frame, detection)], confirmed))

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
    old = _xyxy_to_cxcywh(detection.box)
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
