"""Match predicted face tracks to ground-truth tracks, and score detection and tracking.

Inputs are per-frame boxes: ``{track_id: {frame: (x, y, w, h)}}`` for the predictions and
for the ground truth, in any unit as long as both use the same one (pixels or relative).

Frame level. On every frame, predicted and ground-truth boxes are paired one-to-one by the
Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on the cost ``1 - IoU``;
pairs with ``IoU < iou_threshold`` (default 0.5) are not allowed. The assignment first
maximises the number of pairs, then prefers (as CLEAR-MOT does) keeping a ground-truth
track with the predicted track it was last paired with, when that pair is still allowed,
and finally maximises the total IoU. A one-to-one assignment is better than taking the best
ground-truth box for each predicted box independently: two predicted boxes can never both
claim one face, so duplicates show up as false positives.

Box convention. Detectors disagree on where a face box ends (dlib's HOG box stops at the brows
and the lower lip; CenterFace's and SCRFD's include forehead and chin), so one face's boxes from
two detectors can overlap by less than 0.5. With ``calibrate`` the predicted boxes are first
mapped onto the ground truth's convention: boxes are paired at a loose IoU
(``calibration_iou``, 0.25) and the median centre offset and size ratio of those pairs (four
numbers per call, reported as ``TrackMatchingResult.calibration``) are applied to every
predicted box before the pairing below. A systematic convention difference disappears; a
detector that is merely inaccurate stays inaccurate.

Track level. Each predicted track votes over its own frames for the ground-truth track it
was paired with on each frame; the winner (most frames, then largest summed IoU, then
smallest id in string order) is its match if it covers at least ``min_track_coverage``
(default 0.5) of the predicted track's frames. Predicted tracks without such a match are
false detections, reported separately (``TrackMatchingResult.false_detections``).

Identity groups. With ``gt_groups`` (ground-truth track -> its identity) the votes of the
ground-truth tracks of one group are pooled: the winning group must cover ``min_track_coverage``
of the predicted track's frames, and the track matches that group's ground-truth track with the
most frames (then the largest summed IoU, then the smallest id). Why: a ground truth that starts
a new track when a face leaves the frame and comes back (the benchmark builder's ``leave_prob``;
annotations of occlusions) splits one person in one shot, and a tracker that links the two
halves, as a face tracker should, would otherwise match neither (each covers about half of its
frames) and be scored as a false detection. On the 10-episode suite of
``benchmarks/finetune_study.py`` that was 20 of 293 predicted tracks, every one a single person
over 81-97% of its frames. Distractors (unlabelled extras) should each be their own group.

Detection (over all frames pooled, micro-averaged): ``TP`` = frame-level pairs,
``FP`` = unpaired predicted boxes, ``FN`` = unpaired ground-truth boxes;
recall ``= TP / (TP + FN)``, precision ``= TP / (TP + FP)`` (1.0 when the denominator is 0:
nothing to find, or nothing claimed), F1, and the mean IoU of the pairs.

Tracking, per ground-truth track over its own frames in order (CLEAR-MOT / MOTChallenge):

* ID switch: the predicted track paired with it differs from the one it was last paired
  with (earlier paired frame, gaps in between allowed);
* fragmentation: its paired status is interrupted and later resumed
  (number of runs of paired frames minus one);
* ``pred_ids``: distinct predicted tracks paired with it on some frame;
  ``pred_tracks``: predicted tracks whose track-level match is this track, or (with
  ``gt_groups``) another track of its group while being paired with this one on some frame
  (more than one = the identity was split into several tracks).
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from vcn_plugin.core.geometry import iou_xywh

Box = Sequence[float]
TrackBoxes = Mapping[Hashable, Mapping[int, Box]]

# Cost of a forbidden pair: larger than any sum of allowed costs (each in [-1, 1]),
# so the assignment maximises the number of allowed pairs first.
_FORBIDDEN = 1e6


@dataclass
class MatchingConfig:
    """``iou_threshold``: least IoU for a predicted and a ground-truth box to be paired on a
    frame (0.5, the usual detection criterion). ``min_track_coverage``: least share of a
    predicted track's frames that its majority ground-truth track must cover for the track
    to be matched (0.5). ``calibrate``: first map the predicted boxes onto the ground truth's box
    convention (:func:`fit_box_calibration`), so a detector that draws taller or shifted boxes
    for the same faces is not scored as missing them (off by default)."""

    iou_threshold: float = 0.5
    min_track_coverage: float = 0.5
    calibrate: bool = False
    #: least IoU of the pairs the calibration is fitted on (conventions differ by more than 0.5)
    calibration_iou: float = 0.25

    def __post_init__(self) -> None:
        for name in ("iou_threshold", "min_track_coverage", "calibration_iou"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")


@dataclass
class PredTrackMatch:
    """Track-level match of one predicted track (``gt_track`` is None when unmatched)."""

    pred_track: Hashable
    gt_track: Hashable | None
    frames: int
    matched_frames: int  # frames paired with gt_track's group (or the best candidate's when unmatched)
    coverage: float  # matched_frames / frames
    mean_iou: float  # over those frames; 0.0 when there are none
    votes: dict[Hashable, int] = field(default_factory=dict)  # GT track -> paired frames


@dataclass
class GTTrackQuality:
    """Tracking quality of one ground-truth track (definitions in the module docstring)."""

    gt_track: Hashable
    frames: int
    matched_frames: int
    id_switches: int
    fragmentations: int
    pred_ids: list[Hashable] = field(default_factory=list)
    pred_tracks: list[Hashable] = field(default_factory=list)


@dataclass
class DetectionMetrics:
    frames: int
    gt_boxes: int
    pred_boxes: int
    true_positives: int
    false_positives: int
    false_negatives: int
    recall: float
    precision: float
    f1: float
    mean_iou: float


@dataclass
class TrackingMetrics:
    """Totals over ground-truth tracks. ``pred_tracks_per_gt_track``: mean number of
    track-level-matched predicted tracks over the ground-truth tracks that got at least one
    (1.0 is ideal; 0.0 when none got any); ``gt_tracks_missed``: ground-truth tracks with none."""

    gt_tracks: int
    pred_tracks: int
    matched_pred_tracks: int
    false_detection_tracks: int
    gt_tracks_missed: int
    id_switches: int
    fragmentations: int
    pred_tracks_per_gt_track: float


@dataclass
class BoxCalibration:
    """Maps a detector's boxes onto the ground truth's convention: the centre moves by
    ``(dx * w, dy * h)`` and the size scales by ``(sw, sh)``; the medians over ``pairs``."""

    dx: float = 0.0
    dy: float = 0.0
    sw: float = 1.0
    sh: float = 1.0
    pairs: int = 0

    def apply(self, box: np.ndarray) -> np.ndarray:
        x, y, w, h = box
        cx, cy = x + w / 2 + self.dx * w, y + h / 2 + self.dy * h
        return np.array([cx - self.sw * w / 2, cy - self.sh * h / 2, self.sw * w, self.sh * h])


#: fewest loose pairs a calibration is fitted on; with fewer, boxes are left as they are
MIN_CALIBRATION_PAIRS = 20


def fit_box_calibration(pred_frames: _FrameIndex, gt_frames: _FrameIndex, min_iou: float) -> BoxCalibration:
    """Median offset and scale from predicted to ground-truth boxes over one-to-one pairs with
    IoU >= ``min_iou``. Medians (not means) so a few wrong pairs do not move it; the identity
    when fewer than :data:`MIN_CALIBRATION_PAIRS` pairs exist."""
    rows = []
    for frame, frame_pairs in _pair_all_frames(pred_frames, gt_frames, min_iou).items():
        pred_ids, pred_boxes = pred_frames[frame]
        gt_ids, gt_boxes = gt_frames[frame]
        for pred_id, (gt_id, _) in frame_pairs.items():
            p, g = pred_boxes[pred_ids.index(pred_id)], gt_boxes[gt_ids.index(gt_id)]
            if p[2] > 0 and p[3] > 0:
                rows.append(((g[0] + g[2] / 2 - p[0] - p[2] / 2) / p[2], (g[1] + g[3] / 2 - p[1] - p[3] / 2) / p[3],
                             g[2] / p[2], g[3] / p[3]))  # fmt: skip
    if len(rows) < MIN_CALIBRATION_PAIRS:
        return BoxCalibration(pairs=len(rows))
    dx, dy, sw, sh = (float(v) for v in np.median(np.array(rows), axis=0))
    return BoxCalibration(dx, dy, sw, sh, len(rows))


def _calibrated(frames: _FrameIndex, calibration: BoxCalibration) -> _FrameIndex:
    return {f: (ids, np.stack([calibration.apply(b) for b in boxes])) for f, (ids, boxes) in frames.items()}


def _calibrated_tracks(tracks: TrackBoxes, calibration: BoxCalibration) -> dict:
    return {t: {f: calibration.apply(np.asarray(b, dtype=float)) for f, b in boxes.items()} for t, boxes in tracks.items()}


@dataclass
class TrackMatchingResult:
    config: MatchingConfig
    pred_tracks: list[PredTrackMatch]
    gt_tracks: list[GTTrackQuality]
    detection: DetectionMetrics
    tracking: TrackingMetrics
    #: the box calibration applied to the predictions (``calibrate``), None when not applied
    calibration: BoxCalibration | None = None

    @property
    def matches(self) -> dict[Hashable, Hashable]:
        """Matched predicted track -> ground-truth track."""
        return {m.pred_track: m.gt_track for m in self.pred_tracks if m.gt_track is not None}

    @property
    def false_detections(self) -> list[Hashable]:
        """Predicted tracks without a ground-truth match."""
        return [m.pred_track for m in self.pred_tracks if m.gt_track is None]

    def to_dict(self) -> dict:
        return {**asdict(self), "false_detections": self.false_detections}


def match_tracks(
    predicted: TrackBoxes,
    ground_truth: TrackBoxes,
    config: MatchingConfig | None = None,
    gt_groups: Mapping[Hashable, Hashable] | None = None,
) -> TrackMatchingResult:
    """Pair boxes per frame, match predicted tracks to ground-truth tracks, and score both
    stages. ``gt_groups``: ground-truth track -> group (its identity), whose tracks pool their
    votes at track level (default: every track its own group). See the module docstring for
    every rule and definition."""
    config = config or MatchingConfig()
    if gt_groups is not None:
        missing = [t for t in ground_truth if t not in gt_groups]
        if missing:
            raise ValueError(f"gt_groups has no group for ground-truth tracks {missing[:3]!r}")
    pred_frames = _index_by_frame(predicted, "predicted")
    gt_frames = _index_by_frame(ground_truth, "ground_truth")
    calibration = None
    if config.calibrate:
        calibration = fit_box_calibration(pred_frames, gt_frames, config.calibration_iou)
        pred_frames = _calibrated(pred_frames, calibration)
        predicted = _calibrated_tracks(predicted, calibration)
    pairs = _pair_all_frames(pred_frames, gt_frames, config.iou_threshold)

    pred_matches = [_match_pred_track(tid, boxes, pairs, config, gt_groups) for tid, boxes in predicted.items()]
    pred_by_frame, pred_tracks_of = _invert(pairs, pred_matches, gt_groups)
    gt_quality = [
        _gt_track_quality(tid, boxes, pred_by_frame.get(tid, {}), pred_tracks_of.get(tid, []))
        for tid, boxes in ground_truth.items()
    ]
    detection = _detection_metrics(pred_frames, gt_frames, pairs)
    return TrackMatchingResult(config, pred_matches, gt_quality, detection, _tracking_metrics(pred_matches, gt_quality), calibration)


def identity_assignments(
    result: TrackMatchingResult,
    gt_identity: Mapping[Hashable, Hashable],
    pred_cluster: Mapping[Hashable, Hashable],
) -> tuple[list[Hashable], list[Hashable], list[Hashable]]:
    """For every matched predicted track: (GT identities, predicted clusters, predicted track
    ids), ready for :func:`vcn_plugin.evaluation.metrics.evaluate_clustering`. False detections are left
    out (they have no identity); ``pred_cluster`` should map Unknown tracks to the Unknown label."""
    gt, pred, ids = [], [], []
    for pred_track, gt_track in result.matches.items():
        if gt_track not in gt_identity:
            raise ValueError(f"ground-truth track {gt_track!r} has no entry in gt_identity")
        if pred_track not in pred_cluster:
            raise ValueError(f"predicted track {pred_track!r} has no entry in pred_cluster; "
                             "map unassigned tracks to the Unknown label")
        gt.append(gt_identity[gt_track])
        pred.append(pred_cluster[pred_track])
        ids.append(pred_track)
    return gt, pred, ids


_NO_TRACK = object()  # a key no track id equals

# frame -> (track ids, boxes (k, 4))
_FrameIndex = dict[int, tuple[list[Hashable], np.ndarray]]
# frame -> {pred track: (gt track, iou)}
_Pairs = dict[int, dict[Hashable, tuple[Hashable, float]]]


def _validate_box(box: Box, where: str) -> np.ndarray:
    arr = np.asarray(box, dtype=float)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: a box must be 4 finite numbers x, y, w, h, got {box!r}")
    if arr[2] < 0 or arr[3] < 0:
        raise ValueError(f"{where}: box width and height must be >= 0 (x, y, w, h), got {box!r}")
    return arr


def _index_by_frame(tracks: TrackBoxes, name: str) -> _FrameIndex:
    ids: dict[int, list[Hashable]] = {}
    boxes: dict[int, list[np.ndarray]] = {}
    for track_id, per_frame in tracks.items():
        for frame, box in per_frame.items():
            if isinstance(frame, bool) or int(frame) != frame:
                raise ValueError(f"{name} track {track_id!r}: frame numbers must be integers, got {frame!r}")
            arr = _validate_box(box, f"{name} track {track_id!r} frame {frame}")
            ids.setdefault(int(frame), []).append(track_id)
            boxes.setdefault(int(frame), []).append(arr)
    return {frame: (ids[frame], np.stack(boxes[frame])) for frame in ids}


def _pair_all_frames(pred_frames: _FrameIndex, gt_frames: _FrameIndex, iou_threshold: float) -> _Pairs:
    last_pred_of_gt: dict[Hashable, Hashable] = {}
    pairs: _Pairs = {}
    for frame in sorted(set(pred_frames) & set(gt_frames)):
        pred_ids, pred_boxes = pred_frames[frame]
        gt_ids, gt_boxes = gt_frames[frame]
        frame_pairs = _pair_frame(pred_ids, pred_boxes, gt_ids, gt_boxes, last_pred_of_gt, iou_threshold)
        for pred_id, (gt_id, _) in frame_pairs.items():
            last_pred_of_gt[gt_id] = pred_id
        pairs[frame] = frame_pairs
    return pairs


def _pair_frame(
    pred_ids: list[Hashable],
    pred_boxes: np.ndarray,
    gt_ids: list[Hashable],
    gt_boxes: np.ndarray,
    last_pred_of_gt: Mapping[Hashable, Hashable],
    iou_threshold: float,
) -> dict[Hashable, tuple[Hashable, float]]:
    iou = iou_xywh(gt_boxes, pred_boxes)
    allowed = iou >= iou_threshold
    cost = 1.0 - iou
    pred_col = {pid: j for j, pid in enumerate(pred_ids)}
    for i, gid in enumerate(gt_ids):
        j = pred_col.get(last_pred_of_gt.get(gid, _NO_TRACK))
        if j is not None and allowed[i, j]:
            cost[i, j] = -1.0  # continuing the previous pair beats any IoU gain
    cost[~allowed] = _FORBIDDEN
    rows, cols = linear_sum_assignment(cost)
    return {pred_ids[j]: (gt_ids[i], float(iou[i, j])) for i, j in zip(rows, cols) if allowed[i, j]}


def _match_pred_track(
    track_id: Hashable, boxes: Mapping[int, Box], pairs: _Pairs, config: MatchingConfig,
    gt_groups: Mapping[Hashable, Hashable] | None = None,
) -> PredTrackMatch:
    votes: dict[Hashable, int] = {}
    iou_sums: dict[Hashable, float] = {}
    for frame in boxes:
        paired = pairs.get(int(frame), {}).get(track_id)
        if paired is not None:
            gt_id, iou = paired
            votes[gt_id] = votes.get(gt_id, 0) + 1
            iou_sums[gt_id] = iou_sums.get(gt_id, 0.0) + iou
    n_frames = len(boxes)
    if not votes:
        return PredTrackMatch(track_id, None, n_frames, 0, 0.0, 0.0, {})
    group_of = {g: g if gt_groups is None else gt_groups[g] for g in votes}
    group_votes: dict[Hashable, int] = {}
    group_ious: dict[Hashable, float] = {}
    for g, k in group_of.items():
        group_votes[k] = group_votes.get(k, 0) + votes[g]
        group_ious[k] = group_ious.get(k, 0.0) + iou_sums[g]
    group = min(group_votes, key=lambda k: (-group_votes[k], -group_ious[k], str(k)))
    best = min((g for g in votes if group_of[g] == group), key=lambda g: (-votes[g], -iou_sums[g], str(g)))
    coverage = group_votes[group] / n_frames
    matched = coverage >= config.min_track_coverage
    return PredTrackMatch(
        pred_track=track_id,
        gt_track=best if matched else None,
        frames=n_frames,
        matched_frames=group_votes[group],
        coverage=coverage,
        mean_iou=group_ious[group] / group_votes[group],
        votes=votes,
    )


def _invert(
    pairs: _Pairs, pred_matches: list[PredTrackMatch], gt_groups: Mapping[Hashable, Hashable] | None = None
) -> tuple[dict[Hashable, dict[int, Hashable]], dict[Hashable, list[Hashable]]]:
    """GT track -> {frame: paired predicted track}, and GT track -> the predicted tracks matched at
    track level to it, or to another track of its group while paired with it on some frame."""
    pred_by_frame: dict[Hashable, dict[int, Hashable]] = {}
    for frame, frame_pairs in pairs.items():
        for pred_id, (gt_id, _) in frame_pairs.items():
            pred_by_frame.setdefault(gt_id, {})[frame] = pred_id
    pred_tracks_of: dict[Hashable, list[Hashable]] = {}
    for m in pred_matches:
        if m.gt_track is None:
            continue
        covered = [m.gt_track] + ([] if gt_groups is None else sorted(
            (g for g in m.votes if g != m.gt_track and gt_groups[g] == gt_groups[m.gt_track]), key=str))
        for g in covered:
            pred_tracks_of.setdefault(g, []).append(m.pred_track)
    return pred_by_frame, pred_tracks_of


def _gt_track_quality(
    track_id: Hashable, boxes: Mapping[int, Box], pred_of_gt: Mapping[int, Hashable], pred_tracks: list[Hashable]
) -> GTTrackQuality:
    switches, runs, previous, was_paired = 0, 0, None, False
    pred_ids: list[Hashable] = []
    for frame in sorted(int(f) for f in boxes):
        pred_id = pred_of_gt.get(frame)
        if pred_id is not None:
            runs += not was_paired
            switches += previous is not None and pred_id != previous
            previous = pred_id
            if pred_id not in pred_ids:
                pred_ids.append(pred_id)
        was_paired = pred_id is not None
    return GTTrackQuality(
        gt_track=track_id,
        frames=len(boxes),
        matched_frames=len(pred_of_gt),
        id_switches=int(switches),
        fragmentations=max(runs - 1, 0),
        pred_ids=pred_ids,
        pred_tracks=list(pred_tracks),
    )


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 1.0


def _detection_metrics(pred_frames: _FrameIndex, gt_frames: _FrameIndex, pairs: _Pairs) -> DetectionMetrics:
    n_pred = sum(len(ids) for ids, _ in pred_frames.values())
    n_gt = sum(len(ids) for ids, _ in gt_frames.values())
    ious = [iou for frame_pairs in pairs.values() for _, iou in frame_pairs.values()]
    tp = len(ious)
    recall, precision = _ratio(tp, n_gt), _ratio(tp, n_pred)
    return DetectionMetrics(
        frames=len(set(pred_frames) | set(gt_frames)),
        gt_boxes=n_gt,
        pred_boxes=n_pred,
        true_positives=tp,
        false_positives=n_pred - tp,
        false_negatives=n_gt - tp,
        recall=recall,
        precision=precision,
        f1=2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0,
        mean_iou=float(np.mean(ious)) if ious else 0.0,
    )


def _tracking_metrics(pred_matches: list[PredTrackMatch], gt_quality: list[GTTrackQuality]) -> TrackingMetrics:
    matched = sum(m.gt_track is not None for m in pred_matches)
    found = [len(q.pred_tracks) for q in gt_quality if q.pred_tracks]
    return TrackingMetrics(
        gt_tracks=len(gt_quality),
        pred_tracks=len(pred_matches),
        matched_pred_tracks=matched,
        false_detection_tracks=len(pred_matches) - matched,
        gt_tracks_missed=len(gt_quality) - len(found),
        id_switches=sum(q.id_switches for q in gt_quality),
        fragmentations=sum(q.fragmentations for q in gt_quality),
        pred_tracks_per_gt_track=float(np.mean(found)) if found else 0.0,
    )
