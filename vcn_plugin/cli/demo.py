"""``make demo``: the whole pipeline on a sample clip built from photos an installed package ships.

    python -m vcn_plugin.cli.demo [--dataset vcn-demo] [--out demo_output] [--quick]

Creates the clip (six people, six shots), imports it into a persistent FiftyOne dataset, runs
stage 1 (shots, faces, tracks), finetunes the face model on it, clusters the tracks and prints
the identities. Open the result with ``fiftyone app launch vcn-demo``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import fiftyone as fo

from vcn_plugin.benchmark.sample_clip import make_sample_clip
from vcn_plugin.cli.common import progress_bar
from vcn_plugin.fo.datasets import import_videos
from vcn_plugin.fo.track_records import TRACKS_SUFFIX, tracks_dataset_name
from vcn_plugin.ssl import FinetuneConfig
from vcn_plugin.steps.cluster import cluster_identities, visualize_identities
from vcn_plugin.steps.detect import detect_faces
from vcn_plugin.steps.finetune import finetune_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="vcn-demo")
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    parser.add_argument("--quick", action="store_true", help="a tiny finetuning run (smoke test)")
    args = parser.parse_args()

    clip = args.out.resolve() / "vcn_sample_clip.mp4"
    print(f"1/4 building the sample clip {clip}")
    shots = make_sample_clip(clip)
    if fo.dataset_exists(args.dataset):
        fo.delete_dataset(args.dataset)
    if fo.dataset_exists(args.dataset + TRACKS_SUFFIX):
        fo.delete_dataset(args.dataset + TRACKS_SUFFIX)
    dataset = fo.Dataset(args.dataset, persistent=True)
    import_videos([clip], dataset)

    timings = {}
    start = time.perf_counter()
    with progress_bar("2/4 detect + track") as progress:
        report = detect_faces(dataset, progress=progress)
    timings["stage 1"] = time.perf_counter() - start
    stats = next(iter(report.processed.values()))
    print(f"    {stats['shots']} shots (true: {len(shots)}), {stats['detections']} faces, {stats['tracks']} tracks")

    start = time.perf_counter()
    config = FinetuneConfig.tiny() if args.quick else FinetuneConfig()
    with progress_bar("3/4 finetune") as progress:
        summary = finetune_dataset(dataset, config=config, progress=progress)
    timings["finetune"] = time.perf_counter() - start
    print("    " + summary.summary().replace("\n", "\n    "))

    start = time.perf_counter()
    with progress_bar("4/4 cluster") as progress:
        clusters = cluster_identities(dataset, method="loss", progress=progress)
    visualize_identities(dataset)
    timings["cluster"] = time.perf_counter() - start

    print(f"\n{clusters.summary()}  (the clip shows 6 people)")
    counts: dict[str, int] = {}
    for name in clusters.identities.values():
        counts[name] = counts.get(name, 0) + 1
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {name:>10}: {n} track(s)")
    print("\ntime: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print(f"\nBrowse it:  .venv/bin/fiftyone app launch {args.dataset}")
    print(f"  videos with identity-coloured face boxes in '{args.dataset}',")
    print(f"  one face per track (grid + Embeddings panel) in '{tracks_dataset_name(dataset)}'")


if __name__ == "__main__":
    main()
