"""Stage-1 speed: real-time factor per clip, at native size and 360p, with a per-stage breakdown.

    .venv/bin/python benchmarks/stage1.py [--videos DIR] [--detector centerface] [--detect-every 3]
                                          [--baseline GIT_REF] [--repeats 3] [--no-write]

Real-time factor = video duration / processing time (>= 1.0 means faster than real time).
Stage 1 = decoding + shot detection + face detection + quality + tracking; writing the labels
to a FiftyOne dataset is timed on its own (``write``) and not part of the factor.

``--baseline REF`` also runs stage 1 as it was at that git commit (its ``vcn_plugin`` checked out
into a temporary folder, run in a subprocess) on the same files in the same run, and prints the
speed-up. Every clip is run ``--repeats`` times; the fastest run counts (the least disturbed).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = REPO.parent / "shared" / "data" / "videos"
PARTS = ("probe", "decode", "shots", "resize", "detect", "quality", "tracking")


def to_360p(src: Path, out_dir: Path) -> Path:
    dst = out_dir / f"{src.stem}_360p.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(src), "-vf", "scale=-2:360", "-c:v", "libx264",
         "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", str(dst)],
        check=True,
    )  # fmt: skip
    return dst


def measure(paths: list[Path], detector_name: str, detect_every: int, repeats: int) -> list[dict]:
    """Best-of-``repeats`` stage-1 timing of each clip with the ``vcn_plugin`` on ``sys.path``."""
    from vcn_plugin.core.video import probe_video
    from vcn_plugin.stage1.detectors import get_detector
    from vcn_plugin.stage1.pipeline import Stage1Config, process_video

    config = Stage1Config(detector=detector_name, **({"detect_every": detect_every} if detect_every else {}))
    detector = get_detector(config.detector, **config.detector_options)  # loaded once, as in a real run
    rows = []
    for path in paths:
        fps = probe_video(path).fps
        best = None
        for _ in range(repeats):
            start = time.perf_counter()
            result = process_video(str(path), config, detector)
            seconds = time.perf_counter() - start
            if best is None or seconds < best[0]:
                best = (seconds, result)
        seconds, result = best
        rows.append({
            "video": path.name,
            "size": f"{result.width}x{result.height}",
            "frames": result.num_frames,
            "seconds": seconds,
            "rtf": result.num_frames / fps / seconds,
            "tracks": len(result.tracks),
            "detections": result.detections,
            "parts": dict(getattr(result, "stage_seconds", {})),  # older code has no breakdown
            "result": result,
        })  # fmt: skip
    return rows


def write_seconds(path: Path, result) -> float:
    """Seconds to write ``result``'s labels to a temporary FiftyOne dataset, as ``vcn detect`` does."""
    import fiftyone as fo

    from vcn_plugin.fo import schema
    from vcn_plugin.fo.labels import tracks_to_frame_labels, write_frame_detections

    dataset = fo.Dataset()
    try:
        sample = fo.Sample(filepath=str(path))
        dataset.add_sample(sample)
        start = time.perf_counter()
        frames = tracks_to_frame_labels(result.tracks, result.width, result.height)
        write_frame_detections(sample, schema.FACES, frames)
        return time.perf_counter() - start
    finally:
        dataset.delete()


def baseline(ref: str, paths: list[Path], args: argparse.Namespace, tmp: Path) -> list[dict]:
    """Timing rows of stage 1 at git commit ``ref``, run in a subprocess on the same files."""
    tree = tmp / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "vcn_plugin"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    out = tmp / "baseline.json"
    cmd = [sys.executable, __file__, "--worker", str(out), "--detector", args.detector,
           "--repeats", str(args.repeats), *map(str, paths)]  # fmt: skip
    if args.detect_every:
        cmd += ["--detect-every", str(args.detect_every)]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(tree)})
    return json.loads(out.read_text())


def worker(out: Path, paths: list[Path], args: argparse.Namespace) -> None:
    import vcn_plugin

    if not Path(vcn_plugin.__file__).resolve().is_relative_to(Path(os.environ["PYTHONPATH"]).resolve()):
        raise SystemExit(f"baseline worker imported {vcn_plugin.__file__}, not the baseline tree")
    rows = measure(paths, args.detector, args.detect_every, args.repeats)
    out.write_text(json.dumps([{k: v for k, v in r.items() if k != "result"} for r in rows]))


def print_tables(rows: list[dict], base: list[dict] | None, args: argparse.Namespace) -> None:
    every = args.detect_every or "default"
    print(f"detector={args.detector} detect_every={every} repeats={args.repeats} "
          f"cores={os.cpu_count()}" + (f" baseline={args.baseline}" if base else "") + "\n")  # fmt: skip
    head = "| video | size | frames | tracks | frames/s | real-time factor |"
    sep = "|---|---|---|---|---|---|"
    if base:
        head += f" baseline ({args.baseline}) | speed-up | baseline tracks |"
        sep += "---|---|---|"
    print(head + "\n" + sep)
    for i, r in enumerate(rows):
        line = f"| {r['video']} | {r['size']} | {r['frames']} | {r['tracks']} | {r['frames'] / r['seconds']:.1f} | "
        line += f"{r['rtf']:.2f}x |"
        if base:
            b = base[i]
            line += f" {b['rtf']:.2f}x | {b['seconds'] / r['seconds']:.2f}x | {b['tracks']} |"
        print(line)
    print("\nmilliseconds per frame, per part of stage 1 (write: FiftyOne labels, outside the factor)\n")
    print("| video | size | " + " | ".join(PARTS) + " | other | total | write |")
    print("|---|---|" + "---|" * (len(PARTS) + 3))
    for r in rows:
        ms = {k: 1000 * v / r["frames"] for k, v in r["parts"].items()}
        other = 1000 * r["seconds"] / r["frames"] - sum(ms.values())
        cells = " | ".join(f"{ms.get(p, 0.0):.1f}" for p in PARTS)
        write = f"{1000 * r['write'] / r['frames']:.1f}" if "write" in r else "-"
        total = 1000 * r["seconds"] / r["frames"]
        print(f"| {r['video']} | {r['size']} | {cells} | {other:.1f} | {total:.1f} | {write} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=SHARED_VIDEOS)
    parser.add_argument("--detect-every", type=int, default=None, help="default: the product's")
    parser.add_argument("--detector", default="centerface", help="default: the product's default")
    parser.add_argument("--baseline", metavar="GIT_REF", help="also time stage 1 as of this commit")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="skip timing the FiftyOne label writes")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("clips", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.clips, args)
    from vcn_plugin.benchmark.sample_clip import make_sample_clip
    from vcn_plugin.core.video import probe_video

    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        videos = sorted(args.videos.glob("*.mp4")) if args.videos.is_dir() else []
        sample = tmp_dir / "vcn_sample_clip.mp4"
        make_sample_clip(sample)
        paths = []
        for video in [*videos, sample]:
            paths.append(video)
            if probe_video(video).height > 360:
                paths.append(to_360p(video, tmp_dir))
        base = baseline(args.baseline, paths, args, tmp_dir) if args.baseline else None
        rows = measure(paths, args.detector, args.detect_every, args.repeats)
        if not args.no_write:
            for path, r in zip(paths, rows):
                r["write"] = write_seconds(path, r["result"])
        print_tables(rows, base, args)


if __name__ == "__main__":
    main()
