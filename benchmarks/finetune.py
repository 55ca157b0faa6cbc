"""Finetuning cost: wall time per stage and steps/s at the default config, and head cost per K.

Tracks are built from dlib-aligned chips of ``../shared/data/faces`` (HOG
detector + 5-point alignment, 150x150, padding 0.25): track ``t`` takes
``--chips-per-track`` chips of identity ``t mod #identities``, drawn with a
seeded RNG (with replacement when the identity has fewer photos), so the
default 50 x 8 has the size the default config is sized for. The chips are
cached under ``benchmarks/results/``.

    .venv/bin/python benchmarks/finetune.py [--device cpu|cuda|auto] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vcn_plugin.ssl import DINOHead, FinetuneConfig, finetune  # noqa: E402

FACES = ROOT.parent / "shared" / "data" / "faces"
CACHE = ROOT / "benchmarks" / "results" / "face_chips_dlib150.npz"


def dlib_chips(faces: Path = FACES, cache: Path = CACHE) -> dict[str, np.ndarray]:
    """Identity -> uint8 (n, 150, 150, 3) dlib-aligned chips (cached)."""
    if cache.is_file():
        with np.load(cache) as data:
            return {k: data[k] for k in data.files}
    from tests.faces import dlib_chips as folder_chips  # the same extraction the tests use

    out = {folder.name: chips for folder in sorted(p for p in faces.iterdir() if p.is_dir())
           if len(chips := folder_chips(folder))}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **out)
    return out


def build_tracks(chips: dict[str, np.ndarray], num_tracks: int, per_track: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    names = sorted(chips)
    tracks = []
    for t in range(num_tracks):
        pool = chips[names[t % len(names)]]
        idx = rng.choice(len(pool), size=per_track, replace=len(pool) < per_track)
        tracks.append((f"{names[t % len(names)]}/{t}", pool[idx]))
    return tracks


def head_step_ms(num_prototypes: int, in_dim: int, batch: int, device: torch.device, reps: int = 7) -> float:
    """Median ms of forward + backward + AdamW step of the DINO head alone."""
    head = DINOHead(in_dim, num_prototypes, generator=torch.Generator().manual_seed(0)).to(device)
    optimizer = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad])
    x = torch.randn(batch, in_dim, device=device)
    times = []
    for _ in range(reps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.log_softmax(head(x) / 0.1, dim=1).mean().backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on the shared 2-core box)")
    parser.add_argument("--tracks", type=int, default=50)
    parser.add_argument("--chips-per-track", type=int, default=8)
    parser.add_argument("--skip-k-sweep", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from vcn_plugin.backbones import get_backbone

    backbone = get_backbone("dlib-resnet")
    tracks = build_tracks(dlib_chips(), args.tracks, args.chips_per_track)
    config = FinetuneConfig(device=args.device)
    stage_seen: set[str] = set()

    def progress(stage: str, step: int, total: int, info: dict) -> None:
        if stage not in stage_seen or step == total:
            stage_seen.add(stage)
            print(f"  {stage:6s} {step:4d}/{total:<4d} {info}", flush=True)

    print(f"finetune: {len(tracks)} tracks x {args.chips_per_track} chips, backbone dlib-resnet, "
          f"device {args.device}, torch threads {torch.get_num_threads()}")
    start = time.perf_counter()
    _, result = finetune(backbone, tracks, config=config, progress=progress)
    total = time.perf_counter() - start

    print("\n| stage | seconds | steps | steps/s |\n|---|---:|---:|---:|")
    rates = result.steps_per_second
    for stage, seconds in result.stage_seconds.items():
        steps = result.stage_steps.get(stage, "")
        rate = f"{rates[stage]:.2f}" if stage in rates else ""
        print(f"| {stage} | {seconds:.1f} | {steps} | {rate} |")
    print(f"| total | {total:.1f} | {len(result.loss_curve)} | |")
    print(f"\ndevice {result.device}; match pairs per round {result.match_counts}; "
          f"loss first {result.loss_curve[0]:.3f} -> last head {result.loss_curve[result.stage_steps['head'] - 1]:.3f} "
          f"-> last {result.loss_curve[-1]:.3f}")

    if not args.skip_k_sweep:
        device = torch.device(result.device)
        batch = 2 * config.batch_size
        print(f"\nDINO head alone (in 128, hidden 2048, bottleneck 256), batch {batch}: fwd+bwd+AdamW")
        print("| K | ms/step | head params (M) | P+logQ per face (KiB) |\n|---:|---:|---:|---:|")
        for k in (1024, 4096, 8192, 16384, 65536):
            params = (128 * 2048 + 2048 * 2048 + 2048 * 256 + 256 * k) / 1e6
            print(f"| {k} | {head_step_ms(k, 128, batch, device):.1f} | {params:.1f} | {2 * 4 * k / 1024:.0f} |", flush=True)


if __name__ == "__main__":
    main()
