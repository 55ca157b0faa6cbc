"""Features of one finetune over a whole series (scope "dataset"), for ``cluster_rules.py`` across episodes.

``vcn benchmark run`` scores every row across the episodes of a series preset after one more
finetune over all of them; this script runs that finetune once per seed and saves its features
in the format of ``finetune_study.py --save-features`` (one ``series-all.npz`` per seed, ground
truth keyed by video and track), so the clustering rules can be compared across episodes offline:

    .venv/bin/python benchmarks/series_features.py series --out series_features --seeds 0 1 2 [--point gaussian]
    .venv/bin/python benchmarks/cluster_rules.py series_features/seed-0 series_features/seed-1 series_features/seed-2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune_study import POINTS, save_features  # noqa: E402  (this folder's study script)

from vcn_plugin.backbones import DEFAULT_BACKBONE, get_backbone  # noqa: E402
from vcn_plugin.benchmark.runner import _prepare_features, _Series, prepare_benchmark  # noqa: E402
from vcn_plugin.ssl import FinetuneConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", help="a benchmark folder built with --preset series")
    parser.add_argument("--out", required=True, help="folder for seed-<n>/series-all.npz")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--point", choices=sorted(POINTS), default="default",
                        help="the finetune_study.py point to finetune with (default: the product's defaults)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    backbone = get_backbone(DEFAULT_BACKBONE)
    with prepare_benchmark(args.bench, backbone=backbone) as prep:
        for seed in args.seeds:
            whole = _Series(prep.episodes, prep.track_set)
            start = time.perf_counter()
            config = FinetuneConfig(**{**POINTS[args.point], "seed": seed})
            _prepare_features(whole, backbone, config, None)  # as `vcn benchmark run` does
            if whole.finetune_error:
                sys.exit(f"{args.bench}: finetuning failed: {whole.finetune_error}")
            save_features(whole, Path(args.out) / f"seed-{seed}" / "series-all.npz")
            print(f"seed {seed}: {len(whole.track_set)} tracks, finetune {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
