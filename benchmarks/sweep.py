"""Severity sweep: the ablation table per film look and severity, with wall time per cell.

A thin wrapper over :func:`vcn_plugin.benchmark.sweep.sweep` (the same as
``vcn benchmark sweep``) that also prints how long each cell took, so the defaults can be
sized to the 40-minute budget of a full sweep on 2 CPU cores.

    .venv/bin/python benchmarks/sweep.py --faces ../shared/data/lfw --preset hard \\
        --looks teal_orange,day_for_night --severities 0,1,2,3 --episodes 1 \\
        --out /tmp/vcn-sweep --json benchmarks/results/sweep.json --plot benchmarks/results/sweep.png

``--quick`` runs the CI-sized smoke version (quick preset, one episode, tiny finetuning).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vcn_plugin.benchmark.sweep import DEFAULT_SWEEP_LOOKS, sweep  # noqa: E402
from vcn_plugin.ssl import FinetuneConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", default=str(ROOT.parent / "shared" / "data" / "faces"))
    parser.add_argument("--out", required=True, help="folder of the per-cell benchmarks (reused when unchanged)")
    parser.add_argument("--looks", default=",".join(DEFAULT_SWEEP_LOOKS))
    parser.add_argument("--severities", default="0,1,2,3")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--cast", choices=["random", "lookalike"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finetune-preset", choices=["default", "tiny"], default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    finetune = FinetuneConfig.tiny() if args.finetune_preset == "tiny" else (None if args.quick else FinetuneConfig())
    started = time.perf_counter()
    marks: dict[str, float] = {}

    def progress(fraction: float, message: str) -> None:
        cell = message.split(":")[0]
        marks.setdefault(cell, time.perf_counter())

    result = sweep(
        args.faces, args.out, args.looks.split(","), [int(s) for s in args.severities.split(",")], args.episodes,
        args.preset, args.json, args.plot, args.quick, args.seed,
        {"cast_mode": args.cast} if args.cast else None, finetune, progress=progress,
    )  # fmt: skip
    print(result.to_markdown())
    print("\n| cell | seconds (build + stage 1 + finetune + rows) |\n|---|---|")
    starts = sorted(marks.items(), key=lambda kv: kv[1]) + [("end", time.perf_counter())]
    for (cell, t0), (_, t1) in zip(starts, starts[1:]):
        print(f"| {cell} | {t1 - t0:.0f} |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
