"""Features of one finetune over a whole series (scope "dataset"), for ``cluster_rules.py`` across episodes.

``vcn benchmark run`` scores every row across the episodes of a series preset after one more
finetune over all of them; this script runs that finetune once per seed and saves its features
in the format of ``finetune_study.py --save-features`` (one ``series-all.npz`` per seed, ground
truth keyed by video and track), so the clustering rules can be compared across episodes offline:

    .venv/bin/python benchmarks/series_features.py series --out series_features --seeds 0 1 2
    .venv/bin/python benchmarks/cluster_rules.py series_features/seed-0 series_features/seed-1 series_features/seed-2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vcn_plugin.backbones import DEFAULT_BACKBONE, get_backbone  # noqa: E402
from vcn_plugin.benchmark.runner import _embed, _Series, finetune_unit, prepare_benchmark  # noqa: E402
from vcn_plugin.ssl import FinetuneConfig  # noqa: E402


def save_series_features(whole: _Series, path: Path) -> None:
    """Like ``finetune_study.save_features``, with the ground truth of every episode's tracks."""
    video_of, ts = whole.video_of, whole.track_set
    gt = {(a["video"], a["track"]): "" if a["gt"] is None or a["distractor"] else a["gt"] for a in whole.assignment_skeleton()}
    student, teacher = whole.features["loss-student"]["student"], whole.features["loss-teacher"]["student"]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, probs=whole.features["loss"]["probs"], bottleneck=student.bottleneck, prototypes=student.prototypes,
        temperature=student.temperature, teacher_bottleneck=teacher.bottleneck, teacher_prototypes=teacher.prototypes,
        pretrained=whole.features["pretrained"]["embeddings"], finetuned=whole.features["finetuned"]["embeddings"],
        face_track=ts.face_track, identity=np.array([gt.get((video_of[tf.video_id], tf.track), "") for tf in ts.tracks]),
        low_quality=ts.low_quality, cooccurring=ts.cooccurring, shots=np.array(ts.shots),
        video=np.array([video_of[tf.video_id] for tf in ts.tracks]),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", help="a benchmark folder built with --preset series")
    parser.add_argument("--out", required=True, help="folder for seed-<n>/series-all.npz")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    backbone = get_backbone(DEFAULT_BACKBONE)
    with prepare_benchmark(args.bench, backbone=backbone) as prep:
        for seed in args.seeds:
            whole = _Series(prep.episodes, prep.track_set)
            whole.features["pretrained"], _ = _embed(whole, None, backbone)
            start = time.perf_counter()
            finetune_unit(whole, backbone, FinetuneConfig(seed=seed))
            if whole.finetune_error:
                sys.exit(f"{args.bench}: finetuning failed: {whole.finetune_error}")
            save_series_features(whole, Path(args.out) / f"seed-{seed}" / "series-all.npz")
            print(f"seed {seed}: {len(whole.track_set)} tracks, finetune {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
