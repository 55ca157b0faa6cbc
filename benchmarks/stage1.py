"""Stage-1 speed: frames per second and real-time factor on each clip, at native size and 360p.

    .venv/bin/python benchmarks/stage1.py [--videos DIR] [--detector centerface] [--detect-every 3] [--upsample 0]

Real-time factor = video duration / processing time (>= 1.0 means faster than real time).
Stage 1 = decoding + shot detection + face detection + quality + tracking (FiftyOne writes excluded).
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from vcn_plugin.benchmark.sample_clip import make_sample_clip
from vcn_plugin.core.video import probe_video
from vcn_plugin.stage1.detectors import get_detector
from vcn_plugin.stage1.pipeline import Stage1Config, process_video

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def to_360p(src: Path, out_dir: Path) -> Path:
    dst = out_dir / f"{src.stem}_360p.mp4"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(src), "-vf", "scale=-2:360", "-c:v", "libx264",
         "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", str(dst)],
        check=True,
    )  # fmt: skip
    return dst


def measure(path: Path, config: Stage1Config, detector) -> dict:
    info = probe_video(path)
    start = time.perf_counter()
    result = process_video(str(path), config, detector)
    seconds = time.perf_counter() - start
    duration = result.num_frames / info.fps
    return {
        "video": path.name,
        "size": f"{result.width}x{result.height}",
        "frames": result.num_frames,
        "fps": result.num_frames / seconds,
        "rtf": duration / seconds,
        "tracks": len(result.tracks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=SHARED_VIDEOS)
    parser.add_argument("--detect-every", type=int, default=Stage1Config().detect_every)
    parser.add_argument("--upsample", type=int, default=0, help="dlib-hog only")
    parser.add_argument("--detector", default=Stage1Config().detector, help="default: the product's default")
    args = parser.parse_args()
    options = {"upsample": args.upsample} if args.detector == "dlib-hog" else {}
    config = Stage1Config(detector=args.detector, detector_options=options, detect_every=args.detect_every)
    detector = get_detector(config.detector, **config.detector_options)  # loaded once, as in a real run
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        videos = sorted(args.videos.glob("*.mp4")) if args.videos.is_dir() else []
        sample = tmp_dir / "vcn_sample_clip.mp4"
        make_sample_clip(sample)
        videos.append(sample)
        rows = []
        for video in videos:
            rows.append(measure(video, config, detector))
            if probe_video(video).height > 360:
                rows.append(measure(to_360p(video, tmp_dir), config, detector))
    print(f"detector={args.detector} upsample={args.upsample} detect_every={args.detect_every}\n")
    print("| video | size | frames | frames/s | real-time factor | tracks |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['video']} | {r['size']} | {r['frames']} | {r['fps']:.1f} | {r['rtf']:.2f}x | {r['tracks']} |")


if __name__ == "__main__":
    main()
