"""Checks that a built episode's ground truth sits where a face detector sees faces.

:func:`detector_agreement` decodes sampled frames, runs dlib's HOG detector and matches its boxes
to the ground-truth boxes one-to-one (Hungarian on IoU, scipy). Definitions:

* ``recall``: fraction of ground-truth boxes matched to a detection with IoU >= 0.5;
* ``mean_iou``: mean IoU of the matched pairs whose IoU is >= 0.1 (how tightly the ground truth
  sits on the detector's boxes where the detector fires at all).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from vcn_plugin.benchmark.sources import hog_detector
from vcn_plugin.core.geometry import iou_xywh
from vcn_plugin.core.video import read_frames
from vcn_plugin.evaluation.annotations import load_annotation


@dataclass
class Agreement:
    n_frames: int
    n_gt: int
    n_found: int  # IoU >= 0.5
    recall: float
    mean_iou: float
    n_overlapping: int  # pairs used for mean_iou


def detector_agreement(video: str | Path, annotation: str | Path, every: int = 10, upsample: int = 1, min_face: float = 0.0) -> Agreement:
    """Compare ground-truth tracks (not distractors) with dlib HOG boxes on every ``every``-th frame.

    Ground-truth boxes narrower than ``min_face`` pixels are left out of the count (and of
    matching) so a test can stay within the detector's size range.
    """
    ann = load_annotation(annotation)
    gt: dict[int, list] = {}
    for track in ann.tracks:
        for f in track.frames:
            if f.frame % every == 1 % every and f.box[2] >= min_face:
                gt.setdefault(f.frame, []).append(f.box)
    frames = read_frames(video, set(gt))
    detector = hog_detector()
    n_gt = n_found = 0
    ious = []
    for number, boxes in sorted(gt.items()):
        dets = np.array([[r.left(), r.top(), r.width(), r.height()] for r in detector(frames[number], upsample)], dtype=float)
        n_gt += len(boxes)
        if len(dets) == 0:
            continue
        iou = iou_xywh(np.asarray(boxes, dtype=float), dets)
        rows, cols = linear_sum_assignment(-iou)
        matched = iou[rows, cols]
        n_found += int((matched >= 0.5).sum())
        ious.extend(matched[matched >= 0.1].tolist())
    return Agreement(len(frames), n_gt, n_found, n_found / max(1, n_gt), float(np.mean(ious)) if ious else 0.0, len(ious))


def look_agreement_table(
    faces_dir: str | Path,
    out_dir: str | Path,
    config,
    looks: list[str],
    severities: list[int],
    every: int = 5,
    min_face: float = 0.0,
) -> list[dict]:
    """Build one episode per (look, severity) with ``config`` and measure detector agreement.

    Returns rows ``{"look", "severity", "recall", "mean_iou", "n_gt"}``; the face-box cache is
    shared across the builds so photos are searched once.
    """
    import shutil
    from dataclasses import replace

    from vcn_plugin.benchmark.builder import build_benchmark

    out = Path(out_dir)
    rows = []
    cache = out / "_shared_cache"
    for look in looks:
        for severity in severities:
            bench = out / f"{look}_{severity}"
            if cache.exists():
                shutil.copytree(cache, bench / ".cache", dirs_exist_ok=True)
            build_benchmark(faces_dir, bench, 1, replace(config, look=look, look_severity=severity))
            shutil.copytree(bench / ".cache", cache, dirs_exist_ok=True)
            a = detector_agreement(bench / "videos" / "ep000.mp4", bench / "annotations" / "ep000.json", every, min_face=min_face)
            rows.append({"look": look, "severity": severity, "recall": a.recall, "mean_iou": a.mean_iou, "n_gt": a.n_gt})
    return rows
