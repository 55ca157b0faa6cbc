"""How much faces change inside a track: real clips against the builder's presets.

    .venv/bin/python benchmarks/track_variation.py [--videos DIR] [--faces DIR] [--episodes 2]
        [--presets static,default] [--json out.json]

For every real clip in ``--videos`` and for ``--episodes`` episodes built with each preset from
``--faces``, stage 1 runs with the product's defaults and each track's within-track distance
is measured (mean ``1 - cos`` of dlib embeddings over up to 8 sampled faces; see
:mod:`vcn_plugin.benchmark.track_variation`). Printed: median and quartiles of the within-track
distances, and for built episodes the same-identity and different-identity distances between
tracks; for reference, the same measure between single photos of ``--faces`` (real casts).
The ``realistic`` variation (the ``default`` preset) is calibrated so its within-track median
lies in the range the real clips span.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from vcn_plugin.backbones import get_backbone
from vcn_plugin.benchmark.builder import EpisodeConfig, build_benchmark
from vcn_plugin.benchmark.track_variation import (
    cross_track_distances,
    label_tracks,
    photo_distances,
    summarise,
    track_embeddings,
    within_track_distance,
)
from vcn_plugin.evaluation.annotations import load_annotation

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _fmt(s: dict) -> str:
    if not s["n"]:
        return "-"
    return f"{s['median']:.4f} ({s['q1']:.4f}-{s['q3']:.4f})"


def real_rows(videos: Path, backbone) -> list[dict]:
    rows = []
    for video in sorted(videos.glob("*.mp4")):
        tracks = track_embeddings(video, backbone=backbone)
        rows.append({"source": video.name, "tracks": len(tracks), "within": summarise(within_track_distance(t.embeddings) for t in tracks)})
    return rows


def preset_row(preset: str, faces: Path, episodes: int, work: Path, backbone) -> dict:
    out = work / preset
    build_benchmark(faces, out, episodes, EpisodeConfig.preset(preset), cache_dir=work / ".cache")
    within, same, diff, n = [], [], [], 0
    for ann_path in sorted((out / "annotations").glob("*.json")):
        tracks = track_embeddings(out / "videos" / (ann_path.stem + ".mp4"), backbone=backbone)
        identity = label_tracks(tracks, load_annotation(ann_path))
        within += [within_track_distance(t.embeddings) for t in tracks]
        s, d = cross_track_distances(tracks, identity)
        same, diff, n = same + s, diff + d, n + len(tracks)
    return {"source": f"preset {preset} ({episodes} episodes)", "tracks": n, "within": summarise(within),
            "same_identity": summarise(same), "different_identity": summarise(diff)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=SHARED / "videos")
    parser.add_argument("--faces", type=Path, default=SHARED / "faces")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--presets", default="static,default")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    for path, what in ((args.videos, "--videos"), (args.faces, "--faces")):
        if not path.is_dir():
            parser.error(f"{what} {path} is not a directory")
    backbone = get_backbone()  # loaded once for every clip and episode
    rows = real_rows(args.videos, backbone)
    with tempfile.TemporaryDirectory() as tmp:
        rows += [preset_row(p, args.faces, args.episodes, Path(tmp), backbone) for p in args.presets.split(",")]
    same, diff = photo_distances(args.faces)
    rows.append({"source": f"photos of {args.faces.name}/ (real casts)", "tracks": 0, "within": summarise([]),
                 "same_identity": summarise(same), "different_identity": summarise(diff)})  # fmt: skip
    print("| source | tracks | within-track median (quartiles) | same identity, across tracks | different identities |")
    print("|---|---|---|---|---|")
    for r in rows:
        extra = [_fmt(r[k]) if k in r else "-" for k in ("same_identity", "different_identity")]
        print(f"| {r['source']} | {r['tracks'] or '-'} | {_fmt(r['within'])} | {extra[0]} | {extra[1]} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
