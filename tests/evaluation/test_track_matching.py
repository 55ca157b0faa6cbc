"""Track matching, detection and tracking metrics on hand-made boxes (x, y, w, h)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vcn_plugin.evaluation.metrics import evaluate_clustering
from vcn_plugin.evaluation.track_matching import MatchingConfig, identity_assignments, iou_xywh, match_tracks


def track(frames, x0: float, dx: float = 10.0, y: float = 50.0, size: float = 40.0, shift: float = 0.0):
    """A face moving right by ``dx`` per frame; ``shift`` offsets it (a 2 px shift of a 40 px box: IoU 0.905)."""
    return {f: (x0 + dx * f + shift, y, size, size) for f in frames}


SHIFT2_IOU = (38 * 40) / (2 * 1600 - 38 * 40)


def test_iou_by_hand():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], dtype=float)
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]], dtype=float)
    expected = [[50 / 150, 0.0, 1.0], [0.0, 0.0, 0.0]]
    np.testing.assert_allclose(iou_xywh(a, b), expected)


def test_perfect_match():
    gt = {"a": track(range(1, 11), 0), "b": track(range(1, 11), 300)}
    pred = {1: track(range(1, 11), 0, shift=2), 2: track(range(1, 11), 300, shift=-2)}
    r = match_tracks(pred, gt)
    assert r.matches == {1: "a", 2: "b"} and r.false_detections == []
    d = r.detection
    assert (d.true_positives, d.false_positives, d.false_negatives, d.frames) == (20, 0, 0, 10)
    assert (d.recall, d.precision, d.f1) == (1.0, 1.0, 1.0)
    assert d.mean_iou == pytest.approx(SHIFT2_IOU)
    t = r.tracking
    assert (t.id_switches, t.fragmentations, t.gt_tracks_missed, t.pred_tracks_per_gt_track) == (0, 0, 0, 1.0)
    assert [(m.coverage, m.votes) for m in r.pred_tracks] == [(1.0, {"a": 10}), (1.0, {"b": 10})]


def test_split_track():
    gt = {"a": track(range(1, 11), 0)}
    pred = {1: track(range(1, 5), 0), 2: track(range(7, 11), 0)}  # frames 5-6 missed
    r = match_tracks(pred, gt)
    assert r.matches == {1: "a", 2: "a"}
    (q,) = r.gt_tracks
    assert (q.frames, q.matched_frames, q.id_switches, q.fragmentations) == (10, 8, 1, 1)
    assert q.pred_ids == [1, 2] and q.pred_tracks == [1, 2]
    assert r.tracking.pred_tracks_per_gt_track == 2.0
    assert (r.detection.false_negatives, r.detection.recall, r.detection.precision) == (2, 0.8, 1.0)


def test_id_swap_between_two_faces():
    # predicted 1 follows a then jumps to b at frame 7; predicted 2 does the opposite
    gt = {"a": track(range(1, 11), 0), "b": track(range(1, 11), 300)}
    pred = {
        1: {**track(range(1, 7), 0), **track(range(7, 11), 300)},
        2: {**track(range(1, 7), 300), **track(range(7, 11), 0)},
    }
    r = match_tracks(pred, gt)
    assert r.matches == {1: "a", 2: "b"}  # 6 of 10 frames each
    assert [m.votes for m in r.pred_tracks] == [{"a": 6, "b": 4}, {"b": 6, "a": 4}]
    assert [(q.id_switches, q.fragmentations, q.pred_ids) for q in r.gt_tracks] == [(1, 0, [1, 2]), (1, 0, [2, 1])]
    assert r.tracking.id_switches == 2
    assert r.detection.recall == 1.0


def test_merged_track_over_two_faces():
    # one predicted track covers a on frames 1-7, then b (which only appears on 8-10)
    gt = {"a": track(range(1, 8), 0), "b": track(range(8, 11), 300)}
    pred = {1: {**track(range(1, 8), 0), **track(range(8, 11), 300)}}
    r = match_tracks(pred, gt)
    assert r.matches == {1: "a"}
    assert r.pred_tracks[0].coverage == pytest.approx(0.7)
    qb = r.gt_tracks[1]
    assert (qb.matched_frames, qb.pred_ids, qb.pred_tracks) == (3, [1], [])
    assert r.tracking.gt_tracks_missed == 1


def test_minimum_coverage_decides_false_detection():
    gt = {"a": track(range(1, 5), 0), "b": track(range(5, 8), 300)}
    # 4 frames on a, 3 on b, 3 on nothing: majority a covers only 40 %
    pred = {1: {**track(range(1, 5), 0), **track(range(5, 8), 300), **track(range(8, 11), 600)}}
    r = match_tracks(pred, gt)
    assert r.matches == {} and r.false_detections == [1]
    m = r.pred_tracks[0]
    assert (m.gt_track, m.matched_frames, m.coverage, m.votes) == (None, 4, 0.4, {"a": 4, "b": 3})
    assert match_tracks(pred, gt, MatchingConfig(min_track_coverage=0.4)).matches == {1: "a"}


def test_false_detection_and_frames_without_ground_truth():
    gt = {"a": track(range(1, 6), 0)}
    pred = {
        1: track(range(1, 6), 0),
        9: track(range(1, 6), 0, y=250),  # a box where there is no face
        7: track(range(11, 14), 0),  # frames 11-13 have no ground truth at all
    }
    r = match_tracks(pred, gt)
    assert r.matches == {1: "a"} and r.false_detections == [9, 7]
    d = r.detection
    assert (d.frames, d.gt_boxes, d.pred_boxes, d.true_positives, d.false_positives) == (8, 5, 13, 5, 8)
    assert d.precision == pytest.approx(5 / 13) and d.recall == 1.0
    assert (r.tracking.matched_pred_tracks, r.tracking.false_detection_tracks) == (1, 2)


def test_low_iou_is_not_a_match():
    gt = {"a": track(range(1, 4), 0)}
    pred = {1: track(range(1, 4), 0, shift=15)}  # IoU = 25*40 / (3200 - 1000) = 0.45
    r = match_tracks(pred, gt)
    assert r.matches == {} and r.detection.true_positives == 0
    assert match_tracks(pred, gt, MatchingConfig(iou_threshold=0.4)).matches == {1: "a"}


def test_frame_assignment_is_one_to_one_and_maximal():
    # p1 overlaps g2 most (0.633) but also g1 (0.569); p2 fits g2 (0.905). Taking each predicted
    # box's best ground truth would give g2 twice; Hungarian pairs p1-g1 and p2-g2.
    gt = {"g1": {1: (0, 0, 40, 40)}, "g2": {1: (20, 0, 40, 40)}}
    pred = {"p1": {1: (11, 0, 40, 40)}, "p2": {1: (22, 0, 40, 40)}}
    r = match_tracks(pred, gt)
    assert r.matches == {"p1": "g1", "p2": "g2"}
    assert r.detection.true_positives == 2


def test_previous_pair_is_kept_like_clear_mot():
    # p1 tracks a from frame 1; from frame 2 a duplicate p2 fits a better (IoU 1 vs 0.667).
    gt = {"a": track(range(1, 4), 0)}
    pred = {1: {**track([1], 0), **track([2, 3], 0, shift=8)}, 2: track([2, 3], 0)}
    r = match_tracks(pred, gt)
    assert r.matches == {1: "a"} and r.false_detections == [2]
    assert r.tracking.id_switches == 0
    assert r.detection.false_positives == 2


def test_empty_inputs():
    r = match_tracks({}, {})
    assert (r.detection.recall, r.detection.precision, r.detection.frames) == (1.0, 1.0, 0)
    assert r.tracking.pred_tracks_per_gt_track == 0.0
    r = match_tracks({}, {"a": track(range(1, 4), 0)})
    assert (r.detection.recall, r.detection.precision, r.detection.f1) == (0.0, 1.0, 0.0)
    assert r.tracking.gt_tracks_missed == 1


def test_assignments_feed_clustering_metrics():
    gt = {"a": track(range(1, 6), 0), "b": track(range(1, 6), 300), "c": track(range(11, 16), 0)}
    pred = {1: track(range(1, 6), 0), 2: track(range(1, 6), 300), 3: track(range(11, 16), 0), 4: track([20], 0)}
    r = match_tracks(pred, gt)
    gt_ids, clusters, ids = identity_assignments(r, {"a": "Ann", "b": "Bob", "c": "Ann"}, {1: 0, 2: 1, 3: "Unknown"})
    assert (gt_ids, clusters, ids) == (["Ann", "Bob", "Ann"], [0, 1, "Unknown"], [1, 2, 3])
    m = evaluate_clustering(gt_ids, clusters, unknown_mode="singleton")
    assert (m.n_clusters, m.accuracy) == (3, pytest.approx(2 / 3))
    with pytest.raises(ValueError, match="pred_cluster"):
        identity_assignments(r, {"a": "Ann", "b": "Bob", "c": "Ann"}, {1: 0, 2: 1})


def test_to_dict_is_json_ready():
    gt = {"a": track(range(1, 6), 0)}
    pred = {1: track(range(1, 6), 0), 2: track(range(1, 3), 0, y=250)}
    d = json.loads(json.dumps(match_tracks(pred, gt).to_dict()))
    assert d["false_detections"] == [2]
    assert d["config"] == {"iou_threshold": 0.5, "min_track_coverage": 0.5, "calibrate": False, "calibration_iou": 0.25}
    assert d["calibration"] is None
    assert d["tracking"]["matched_pred_tracks"] == 1


@pytest.mark.parametrize(
    "pred, message",
    [
        ({1: {1: (0, 0, 10)}}, "4 finite numbers"),
        ({1: {1: (0, 0, -1, 10)}}, ">= 0"),
        ({1: {1.5: (0, 0, 10, 10)}}, "integers"),
        ({1: {1: (0, 0, float("nan"), 10)}}, "4 finite numbers"),
    ],
)
def test_bad_boxes_raise(pred, message):
    with pytest.raises(ValueError, match=message):
        match_tracks(pred, {})


@pytest.mark.parametrize("kwargs", [dict(iou_threshold=0.0), dict(min_track_coverage=1.5)])
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError, match="must be in"):
        MatchingConfig(**kwargs)


def test_calibration_maps_another_box_convention_onto_the_ground_truth():
    """A detector whose boxes are 40% taller and start higher (forehead to chin) overlaps the
    ground truth by IoU ~0.6-0.7 at best; shifted further it falls under 0.5 everywhere. The
    calibration recovers every face, and reports the mapping it used."""
    from vcn_plugin.evaluation.track_matching import MatchingConfig, match_tracks

    rng = np.random.default_rng(0)
    gt, pred = {}, {}
    for track in range(3):
        x, y, w = rng.uniform(0, 400), rng.uniform(0, 200), rng.uniform(40, 80)
        gt[track] = {f: (x + f, y, w, w) for f in range(1, 31)}
        pred[track] = {f: (x + f - 0.1 * w, y - 0.6 * w, 1.2 * w, 1.5 * w) for f in range(1, 31)}
    plain = match_tracks(pred, gt)
    assert plain.detection.recall < 0.5 and plain.calibration is None
    calibrated = match_tracks(pred, gt, MatchingConfig(calibrate=True))
    assert calibrated.detection.recall == 1.0 and calibrated.detection.mean_iou > 0.99
    assert calibrated.matches == {0: 0, 1: 1, 2: 2}
    c = calibrated.calibration
    assert c.pairs == 90 and c.sw == pytest.approx(1 / 1.2) and c.sh == pytest.approx(1 / 1.5)


def test_calibration_needs_enough_pairs_and_leaves_a_matching_convention_alone():
    from vcn_plugin.evaluation.track_matching import MIN_CALIBRATION_PAIRS, MatchingConfig, match_tracks

    gt = {0: {f: (10.0, 10.0, 50.0, 50.0) for f in range(1, MIN_CALIBRATION_PAIRS)}}
    result = match_tracks(gt, gt, MatchingConfig(calibrate=True))
    assert result.calibration.pairs == MIN_CALIBRATION_PAIRS - 1
    assert (result.calibration.sw, result.calibration.dx) == (1.0, 0.0)
    assert result.detection.recall == 1.0


def test_identity_groups_match_a_track_linked_across_a_gap():
    # one person leaves the frame at 6 and comes back at 9: the annotation has two tracks, the
    # tracker one; each half covers 5 of its 10 frames, under the default 0.5 only with the pool
    gt = {"a1": track(range(1, 6), 0), "a2": track(range(9, 14), 0), "b": track(range(1, 14), 300)}
    pred = {1: {**track(range(1, 6), 0, shift=1), **track(range(9, 14), 0, shift=2)},
            2: track(range(1, 14), 300)}
    config = MatchingConfig(min_track_coverage=0.6)
    plain = match_tracks(pred, gt, config)
    assert plain.matches == {2: "b"} and plain.false_detections == [1]
    pooled = match_tracks(pred, gt, config, gt_groups={"a1": "Ann", "a2": "Ann", "b": "Bob"})
    # the tie between the halves goes to the larger summed IoU (the 1 px shift)
    assert pooled.matches == {1: "a1", 2: "b"} and pooled.false_detections == []
    m = pooled.pred_tracks[0]
    assert (m.matched_frames, m.coverage, m.votes) == (10, 1.0, {"a1": 5, "a2": 5})
    # both halves are found by that track: neither is a missed ground-truth track
    assert {q.gt_track: q.pred_tracks for q in pooled.gt_tracks} == {"a1": [1], "a2": [1], "b": [2]}
    assert (pooled.tracking.gt_tracks_missed, plain.tracking.gt_tracks_missed) == (0, 2)
    # two different people are never pooled: with groups per track it is the plain result
    separate = match_tracks(pred, gt, config, gt_groups={"a1": "Ann", "a2": "Al", "b": "Bob"})
    assert separate.matches == plain.matches
    with pytest.raises(ValueError, match="no group"):
        match_tracks(pred, gt, gt_groups={"a1": "Ann"})


def test_match_video_pools_identities_but_not_extras():
    import fiftyone as fo

    from vcn_plugin.evaluation.evaluate import match_video
    from vcn_plugin.fo import schema
    from vcn_plugin.fo.frames import FrameTrack

    def frame_track(index, boxes, label, distractor=False):
        dets = {}
        for f, (x, y, w, h) in boxes.items():
            d = fo.Detection(label=label, bounding_box=[x / 640, y / 360, w / 640, h / 360], index=index)
            if distractor:
                d[schema.ATTR_DISTRACTOR] = True
            dets[f] = d
        return FrameTrack(index, dets)

    gt = {0: frame_track(0, track(range(1, 6), 0), "Ann"), 1: frame_track(1, track(range(9, 14), 0), "Ann"),
          2: frame_track(2, track(range(1, 6), 300), "extra", True),
          3: frame_track(3, track(range(9, 14), 300), "extra", True)}
    pred = {7: frame_track(7, {**track(range(1, 6), 0), **track(range(9, 14), 0)}, "face"),
            8: frame_track(8, {**track(range(1, 6), 300), **track(range(9, 14), 300)}, "face")}
    matched = match_video("v.mp4", pred, gt, MatchingConfig(min_track_coverage=0.6))
    assert matched.matching.matches == {7: 0}  # two extras' halves are not one person
    assert matched.matching.false_detections == [8]
