"""Tracking on benchmark episodes: how many tracks each tracker setting cuts a face into.

    .venv/bin/python benchmarks/tracking.py bench hard sweep/none-s0 ... [--json tracking.json]
    .venv/bin/python benchmarks/tracking.py ../shared/data/videos/facenet_pytorch_street.mp4

Each video of each benchmark directory (``vcn benchmark build``: ``videos/``, ``annotations/``)
is decoded and detected once with the default stage 1 (``Stage1Config()``, the product's
detector, detection every 3rd frame); the same detections are then tracked with every setting of
:data:`VARIANTS` and matched to the ground truth the way the benchmark runner does
(``BENCHMARK_MATCHING``, one identity's ground-truth tracks pooled, each extra its own group).

Per setting it prints, summed over the videos: predicted tracks; *fragments*, predicted tracks
that overlap a face of the ground truth (IoU >= .5 on some frame) but cover too little of it to be
matched, i.e. pieces of a face the tracker lost and restarted; predicted tracks with no face at
all; *mixed* tracks, whose frames are paired with two people (an identity switch inside the
track, or one frame where two faces meet), and *other-person frames*, the frames of each track
paired with someone other than the person of most of its frames (how much the switches weigh); and
the CLEAR-MOT identity switches and fragmentations of the ground-truth tracks. A fragment is a
track a user sees as junk and that coarse matching pairs with the person's other tracks (scored
as a wrong pair: it has no identity).

A video file without ground truth (e.g. a real clip) gets only its tracks and the tracks of at
most two detections (the pieces a lost face leaves), per setting.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vcn_plugin.benchmark.runner import BENCHMARK_MATCHING  # noqa: E402
from vcn_plugin.core.video import probe_video  # noqa: E402
from vcn_plugin.evaluation.annotations import load_annotation  # noqa: E402
from vcn_plugin.evaluation.track_matching import match_tracks  # noqa: E402
from vcn_plugin.stage1.detectors import get_detector  # noqa: E402
from vcn_plugin.stage1.pipeline import Stage1Config, detect_frames  # noqa: E402
from vcn_plugin.stage1.tracking import TrackingResult, track_video  # noqa: E402

#: tracker settings compared (overrides of the default ``TrackerConfig``, whose cascade is on)
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    # no cascade: the default until 2026-12-06
    "no-cascade": {"second_buffer": 0.0},
    # no cascade, the buffered-IoU widening doubled: .3 of the box per side over one detection step of 3 frames
    "buffer-0.1": {"second_buffer": 0.0, "buffer_per_frame": 0.1, "max_buffer": 0.5},
    # no cascade, a new (tentative) track also matches at a lower buffered IoU (measured: changes nothing)
    "tentative-0.1": {"second_buffer": 0.0, "tentative_match_iou": 0.1},
    # C-BIoU's cascade with a narrower second buffer (the default's is .5 per side)
    "cascade-0.3": {"second_buffer": 0.3},
}


def ground_truth(annotation_path: Path) -> tuple[dict, dict]:
    """Ground-truth boxes ``{key: {frame: (x, y, w, h)}}`` and groups (identity, or one per extra)."""
    ann = load_annotation(annotation_path)
    boxes, groups = {}, {}
    for kind, tracks in (("track", ann.tracks), ("extra", ann.distractors)):
        for t in tracks:
            key = (kind, t.track_id)
            boxes[key] = {b.frame: b.box for b in t.frames}
            groups[key] = t.identity if kind == "track" else key
    return boxes, groups


def score(tracking: TrackingResult, gt: dict, groups: dict) -> dict[str, int]:
    """The counts of the module docstring for one video."""
    pred = {t.track_id: {f.frame: _xywh(f.detection.box) for f in t.faces} for t in tracking.tracks}
    m = match_tracks(pred, gt, BENCHMARK_MATCHING, gt_groups=groups)
    unmatched = [p for p in m.pred_tracks if p.gt_track is None]
    return {
        "tracks": len(pred),
        "fragments": sum(1 for p in unmatched if p.votes),
        "no_face": sum(1 for p in unmatched if not p.votes),
        "mixed": sum(1 for p in m.pred_tracks if len(_group_votes(p.votes, groups)) > 1),
        "other_person_frames": sum(sum(v.values()) - max(v.values())
                                   for v in (_group_votes(p.votes, groups) for p in m.pred_tracks) if v),
        "id_switches": m.tracking.id_switches,
        "fragmentations": m.tracking.fragmentations,
        "gt_tracks_missed": m.tracking.gt_tracks_missed,
    }


def count_tracks(tracking: TrackingResult) -> dict[str, int]:
    """Without ground truth: tracks, and tracks of at most two real (not filled-in) detections."""
    short = sum(1 for t in tracking.tracks if sum(not f.interpolated for f in t.faces) <= 2)
    return {"tracks": len(tracking.tracks), "short_tracks": short}


def _group_votes(votes: dict, groups: dict) -> dict:
    """A track's frames per person (ground-truth group) it was paired with."""
    out: dict = {}
    for gt_track, frames in votes.items():
        out[groups[gt_track]] = out.get(groups[gt_track], 0) + frames
    return out


def _xywh(box) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1, y1, x2 - x1, y2 - y1


SHOWN = ("tracks", "short_tracks", "fragments", "mixed")  # per video; every count goes to --json


def run(inputs: list[Path], variants: list[str]) -> dict[str, Any]:
    """``inputs``: benchmark directories (scored against their ground truth) or video files."""
    config = Stage1Config()
    detector = get_detector(config.detector, **config.detector_options)
    videos, totals = [], {v: {} for v in variants}
    for path in inputs:
        annotated = path.is_dir()
        for video in sorted((path / "videos").glob("*.mp4")) if annotated else [path]:
            gt, groups = ground_truth(path / "annotations" / f"{video.stem}.json") if annotated else ({}, {})
            detections, shots, num_frames, _ = detect_frames(str(video), detector, config, probe_video(video).fps)
            row = {"video": f"{path}/{video.name}" if annotated else str(video)}
            for name in variants:
                tracker = dataclasses.replace(config.tracker_config(), **VARIANTS[name])
                tracking = track_video(detections, shots, tracker, num_frames=num_frames)
                row[name] = counts = score(tracking, gt, groups) if annotated else count_tracks(tracking)
                if annotated:
                    for key, value in counts.items():
                        totals[name][key] = totals[name].get(key, 0) + value
            videos.append(row)
            print(row["video"], "  ".join(f"{n}: " + ", ".join(f"{v} {k}" for k, v in row[n].items() if k in SHOWN)
                                          for n in variants), flush=True)  # fmt: skip
    return {"variants": {v: VARIANTS[v] for v in variants}, "videos": videos, "totals": totals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path,
                        help="benchmark directories (vcn benchmark build) or video files without ground truth")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", type=Path, help="write every count here")
    args = parser.parse_args()
    bad = [str(p) for p in args.inputs
           if not (p.is_file() or ((p / "videos").is_dir() and (p / "annotations").is_dir()))]  # fmt: skip
    if bad:
        parser.error(f"neither a video file nor a benchmark directory (videos/ and annotations/): {', '.join(bad)}")
    result = run(args.inputs, args.variants)
    keys = ("tracks", "fragments", "no_face", "mixed", "other_person_frames", "id_switches", "fragmentations",
            "gt_tracks_missed")
    if any(result["totals"].values()):  # only benchmark directories are summed
        print("\n| tracker setting | " + " | ".join(keys) + " |")
        print("|---|" + "---|" * len(keys))
        for name, counts in result["totals"].items():
            print(f"| {name} | " + " | ".join(str(counts.get(k, 0)) for k in keys) + " |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
