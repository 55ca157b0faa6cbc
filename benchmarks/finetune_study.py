"""Finetuning study: which finetuning makes the loss metric win, measured over a whole suite.

Every benchmark directory given with ``--bench`` (a built episode set, a sweep cell, a user's
folder) is prepared ONCE (stage 1 from vcn's cache, tracks matched to the ground truth, chips
read, pretrained embeddings and the pretrained FINCH / HDBSCAN rows computed); each study point
then costs only its own finetuning and clustering. Per point and episode it prints the loss
metric's accuracy and cluster ratio against the better of FINCH and HDBSCAN (pretrained, the
peers a user would pick), the finetuned FINCH/HDBSCAN (does finetuning move the backbone?),
and the health of the finetuning (coarse-matching precision / recall of the last round, the
teacher's entropy and prototypes, the share of same- / different-identity track pairs the
first merge round accepts). The last table is the mean over the suite, the only basis on which
a default may be chosen (one set for every video, as the paper).

    .venv/bin/python benchmarks/finetune_study.py --bench /tmp/bench --bench /tmp/hard \\
        --points default,head-2k --json study.json [--device cuda] [--threads 2]

``--points`` takes names of :data:`POINTS` (``--list`` prints them).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vcn_plugin.benchmark.rows import RowSpec  # noqa: E402
from vcn_plugin.ssl import FinetuneConfig  # noqa: E402

#: study points: FinetuneConfig overrides (``clustering`` rows are scored on each)
POINTS: dict[str, dict[str, Any]] = {
    "default": {},
    # the paper's per-track Gaussians (the default matching until 2026-12-07): points below that
    # set no ``matching`` were measured with them, and now run with the default's agreed clusters
    "gaussian": {"matching": "gaussian"},
    "mutual": {"matching": "mutual"},
    "union": {"matching": "gaussian+mutual"},
    "union-rounds-3": {"matching": "gaussian+mutual", "rounds": 3},
    "union-tracks": {"matching": "gaussian+mutual", "prototype_init": "tracks"},
    "union-round-head-200": {"matching": "gaussian+mutual", "round_head_steps": 200},
    "union-round-head-300": {"matching": "gaussian+mutual", "round_head_steps": 300},
    "mutual-rounds-3": {"matching": "mutual", "rounds": 3},
    "mutual-head-3k": {"matching": "mutual", "head_min_steps": 3000, "head_max_steps": 3000},
    "mutual-k256": {"matching": "mutual", "num_prototypes": 256},
    "mutual-head-100": {"matching": "mutual", "head_min_steps": 100, "head_max_steps": 100},
    "mutual-head-30": {"matching": "mutual", "head_min_steps": 30, "head_max_steps": 30},
    "head-100": {"head_min_steps": 100, "head_max_steps": 100},
    "mutual-joint-40": {"matching": "mutual", "joint_min_steps_per_round": 40, "joint_max_steps_per_round": 40},
    "head-1k": {"head_min_steps": 1000, "head_max_steps": 1000},
    "head-3k": {"head_min_steps": 3000, "head_max_steps": 3000},
    "k1024": {"num_prototypes": 1024},
    "k256": {"num_prototypes": 256},
    "k64": {"num_prototypes": 64},
    "k256-head-1k": {"num_prototypes": 256, "head_min_steps": 1000, "head_max_steps": 1000},
    "joint-40": {"joint_min_steps_per_round": 40, "joint_max_steps_per_round": 40},
    "rounds-3": {"rounds": 3},
    # the meet of the loss clustering and HDBSCAN on the teacher backbone's track means
    "agreed-hdbscan": {"matching": "agreed-hdbscan"},
    "teacher-0.07": {"teacher_temp": 0.07},
    "views-5": {"cache_views": 5},
    "tracks": {"prototype_init": "tracks"},
    "tracks-mutual": {"prototype_init": "tracks", "matching": "mutual"},
    "tracks-head-30": {"prototype_init": "tracks", "head_min_steps": 30, "head_max_steps": 30},
    "tracks-head-1k": {"prototype_init": "tracks", "head_min_steps": 1000, "head_max_steps": 1000},
    "tracks-k256": {"prototype_init": "tracks", "num_prototypes": 256},
    "hidden-512": {"hidden_dim": 512},
    "round-head-0": {"round_head_steps": 0},  # the paper: matched pairs train the head only in the joint stage
    "round-head-100": {"round_head_steps": 100},
    "round-head-300": {"round_head_steps": 300},
    "bottleneck-64": {"bottleneck_dim": 64},
    # the joint stage seen by the teacher: a lower backbone rate, the teacher backbone copied from the
    # student after each round (DINO's "previous epoch" teacher), precise mutual-neighbour matches
    "adapt-backbone": {"backbone_lr": 1e-5, "teacher_backbone": "round", "matching": "mutual"},
    "adapt-backbone-final-head": {"backbone_lr": 1e-5, "teacher_backbone": "round", "matching": "mutual",
                                  "momentum_schedule": "stage", "final_head_steps": 100},
    "momentum-stage": {"momentum_schedule": "stage"},
    # the backbone's last layer in the head steps, on cached features: frozen (the paper's
    # schedule, the default until last_layer_lr), slower and faster than the default 5e-5
    "frozen-last-layer": {"last_layer_lr": 0.0},
    "last-layer-1e-5": {"last_layer_lr": 1e-5},
    "last-layer-2e-4": {"last_layer_lr": 2e-4},
    "drop-conflicts": {"drop_conflicts": True},
    "union-drop-conflicts": {"matching": "gaussian+mutual", "drop_conflicts": True},
    # what coarse matching is worth: the rounds run, but no pair is drawn from a matched track
    "no-match": {"match_pair_fraction": 0.0},
    "centred-input": {"head_input": "centred"},
    # coarse matching by the product's clustering of the current teacher (ssl/cluster_matching.py)
    "clusters": {"matching": "clusters"},
    "gaussian-clusters": {"matching": "gaussian+clusters"},
    "clusters-round-head-300": {"matching": "clusters", "round_head_steps": 300},
    # only the pairs the loss clusters and the backbone cosine's clusters agree on
    "agreed-clusters": {"matching": "agreed-clusters"},
    "gaussian-agreed-clusters": {"matching": "gaussian+agreed-clusters"},
    # cannot-link negatives (tracks seen in one frame) ranked above the positives in the head steps
    "negatives": {"negative_weight": 1.0},
    "negatives-hinge": {"negative_weight": 1.0, "negative_form": "hinge"},
    # DINO-strength photometric views (colour jitter 0.4, grayscale 0.2), with blur and grain on top
    "augment-colour": {"augment": {"max_brightness": 0.4, "max_contrast": 0.4, "max_saturation": 0.4,
                                   "max_temperature": 0.2, "grayscale_prob": 0.2}},
    "augment-strong": {"augment": {"max_brightness": 0.4, "max_contrast": 0.4, "max_saturation": 0.4,
                                   "max_temperature": 0.2, "grayscale_prob": 0.2, "blur_prob": 0.5,
                                   "max_blur_sigma": 2.0, "max_grain": 0.03}},
}
#: the rows scored at every point (pretrained peers are computed once per benchmark)
PEERS = (RowSpec("FINCH", "finch", finetuned=False), RowSpec("HDBSCAN", "hdbscan", finetuned=False))
FINETUNED = (
    RowSpec("ours, loss", "loss", finetuned=True),
    RowSpec("ours, loss, student predictor", "loss", finetuned=True, predictor="student"),
    RowSpec("FINCH", "finch", finetuned=True),
    RowSpec("HDBSCAN", "hdbscan", finetuned=True),
)


def _fresh(ep):
    """The episode as prepared: pretrained features only, nothing of an earlier point."""
    return dataclasses.replace(ep, features={"pretrained": ep.features["pretrained"]},
                               feature_seconds={"pretrained": ep.feature_seconds["pretrained"]},
                               finetune_seconds=0.0, finetune_error=None, info={})  # fmt: skip


def _cell(ep, rows: dict[str, dict], health: dict, seconds: float) -> dict[str, Any]:
    peer = max(rows["FINCH"]["accuracy"], rows["HDBSCAN"]["accuracy"])
    last = (health["matching"] or [{}])[-1]
    teacher = (health["teacher"] or [{}])[-1]
    ratios = health["merge_ratios"].get("loss", {})
    return {
        "video": ep.video,
        "detection_recall": ep.matching.detection.recall,
        "loss_accuracy": rows["ours, loss"]["accuracy"],
        "loss_ratio": rows["ours, loss"]["cluster_ratio"],
        "loss_wcp": rows["ours, loss"]["wcp"],
        "student_predictor_accuracy": rows["ours, loss, student predictor"]["accuracy"],
        "student_predictor_ratio": rows["ours, loss, student predictor"]["cluster_ratio"],
        "student_predictor_wcp": rows["ours, loss, student predictor"]["wcp"],
        "peer_accuracy": peer,
        "margin": rows["ours, loss"]["accuracy"] - peer,
        "finetuned_finch": rows["FINCH (finetuned)"]["accuracy"],
        "finetuned_hdbscan": rows["HDBSCAN (finetuned)"]["accuracy"],
        "pretrained_finch": rows["FINCH"]["accuracy"],
        "pretrained_hdbscan": rows["HDBSCAN"]["accuracy"],
        "matching_precision": last.get("precision"),
        "matching_recall": last.get("recall"),
        "matching_labelled_precision": last.get("labelled_precision"),
        "matching_pairs": [q["pairs"] for q in health["matching"]],
        # the best recall any distance gate reaches at precision .95 (oracle), per space
        "bound_recall_pretrained": health["matching_bound"].get("pretrained", {}).get("recall"),
        "bound_recall_finetuned": health["matching_bound"].get("finetuned", {}).get("recall"),
        "teacher_entropy": teacher.get("entropy"),
        "track_prototypes": teacher.get("track_prototypes"),
        "tracks": teacher.get("tracks"),
        "same_below_1": (ratios.get("same") or {}).get("below_1"),
        "different_below_1": (ratios.get("different") or {}).get("below_1"),
        "finetune_seconds": seconds,
    }


def save_features(ep, path: Path) -> None:
    """The episode's (or a whole series') per-face features and its ground truth, for trying
    clustering rules offline (``np.load``: probs, the student's bottleneck, prototypes and
    temperature, the teacher's (``teacher_bottleneck``, ``teacher_prototypes``: the teacher
    predictor at the same temperature), pretrained, finetuned, face_track, identity per track
    ('' unscored), low_quality, cooccurring, shots, video per track)."""
    gt = {(a["video"], a["track"]): "" if a["gt"] is None or a["distractor"] else a["gt"] for a in ep.assignment_skeleton()}
    video = [ep.video_of[tf.video_id] for tf in ep.track_set.tracks]
    student, teacher = ep.features["loss-student"]["student"], ep.features["loss-teacher"]["student"]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, probs=ep.features["loss"]["probs"], bottleneck=student.bottleneck, prototypes=student.prototypes,
        temperature=student.temperature, teacher_bottleneck=teacher.bottleneck, teacher_prototypes=teacher.prototypes,
        pretrained=ep.features["pretrained"]["embeddings"],
        finetuned=ep.features["finetuned"]["embeddings"], face_track=ep.track_set.face_track,
        identity=np.array([gt.get((v, tf.track), "") for v, tf in zip(video, ep.track_set.tracks)]),
        low_quality=ep.track_set.low_quality, cooccurring=ep.track_set.cooccurring, shots=np.array(ep.track_set.shots),
        video=np.array(video),
    )  # fmt: skip


def study(bench_dirs: list[str], points: list[str], device: str, progress: bool = True,
          features_dir: Path | None = None, base: str = "default", backbone_name: str | None = None,
          seed: int | None = None, max_faces_per_track: int = 8, second_buffer: float | None = None) -> dict[str, Any]:
    """Every point on every episode of ``bench_dirs``; ``base``: "default" (FinetuneConfig) or
    "tiny" (FinetuneConfig.tiny, a smoke run) under each point's overrides; ``backbone_name``:
    the base model (default: the product's), whose embeddings the peers cluster too; ``seed``:
    the finetune seed of every point (default: each point's own, 0 unless it sets one);
    ``max_faces_per_track``: the chips read per track (the product's default, 8); ``second_buffer``:
    the tracker's ``TrackerConfig.second_buffer`` in stage 1 (``None``: the product's default; 0: no cascade)."""
    from vcn_plugin.backbones import DEFAULT_BACKBONE, get_backbone
    from vcn_plugin.benchmark.runner import compute_row, finetune_health, finetune_unit, prepare_benchmark
    from vcn_plugin.stage1.pipeline import Stage1Config
    from vcn_plugin.stage1.tracking import TrackerConfig

    backbone_name = backbone_name or DEFAULT_BACKBONE
    backbone = get_backbone(backbone_name)
    cells: dict[str, list[dict]] = {p: [] for p in points}
    stage1 = Stage1Config() if second_buffer is None else Stage1Config(tracker=TrackerConfig(second_buffer=second_buffer))
    for bench in bench_dirs:
        with prepare_benchmark(bench, stage1, backbone=backbone, max_faces_per_track=max_faces_per_track) as prep:
            episodes = [ep for ep in prep.episodes if not ep.finetune_error]
            peers = {spec.name: [compute_row([ep], spec, backbone_name).metrics for ep in episodes] for spec in PEERS}
            for point in points:
                make = FinetuneConfig.tiny if base == "tiny" else FinetuneConfig
                config = make(device=device, **{**POINTS[point], **({} if seed is None else {"seed": seed})})
                for e, prepared in enumerate(episodes):
                    ep = _fresh(prepared)
                    start = time.perf_counter()
                    finetune_unit(ep, backbone, config)
                    seconds = time.perf_counter() - start
                    if features_dir is not None:
                        save_features(ep, features_dir / point / f"{Path(bench).name}-{Path(ep.video).stem}.npz")
                    rows = {name: values[e] for name, values in peers.items()}
                    for spec in FINETUNED:
                        key = spec.name if spec.method == "loss" else f"{spec.name} (finetuned)"
                        rows[key] = compute_row([ep], spec, backbone_name).metrics
                    cell = {"bench": str(bench), **_cell(ep, rows, finetune_health(ep), seconds)}
                    cells[point].append(cell)
                    if progress:
                        print(f"[{point}] {Path(bench).name}/{ep.video}: loss {cell['loss_accuracy']:.3f} "
                              f"(ratio {cell['loss_ratio']:.2f}) vs peers {cell['peer_accuracy']:.3f}, "
                              f"matching P/R {cell['matching_precision']} / {cell['matching_recall']}, "
                              f"{seconds:.0f} s", flush=True)  # fmt: skip
    return {"points": {p: POINTS[p] for p in points}, "seed": seed, "cells": cells,
            "mean": {p: _mean(c) for p, c in cells.items()}}


def _mean(cells: list[dict]) -> dict[str, float | None]:
    keys = ("loss_accuracy", "loss_ratio", "loss_wcp", "student_predictor_accuracy", "student_predictor_ratio", "student_predictor_wcp", "peer_accuracy", "margin", "finetuned_finch",
            "finetuned_hdbscan", "pretrained_finch", "pretrained_hdbscan", "matching_precision", "matching_recall",
            "matching_labelled_precision", "bound_recall_pretrained", "bound_recall_finetuned", "teacher_entropy", "same_below_1", "different_below_1", "finetune_seconds")  # fmt: skip
    out: dict[str, float | None] = {}
    for k in keys:
        values = [c[k] for c in cells if c.get(k) is not None]
        out[k] = float(np.mean(values)) if values else None
    out["cells_won"] = sum(c["margin"] >= 0 for c in cells)
    out["cells"] = len(cells)
    return out


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def to_markdown(result: dict[str, Any]) -> str:
    head = ["point", "episode", "det. recall", "loss acc", "ratio", "WCP", "student-predictor acc / ratio / WCP", "best peer", "margin", "finetuned FINCH / HDBSCAN",
            "matching P / R (last round; P of labelled)", "oracle R at P .95 (pretrained / finetuned)", "pairs per round", "entropy", "prototypes / tracks", "merge<1 same / diff", "s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for point, cells in result["cells"].items():
        for c in cells:
            lines.append("| " + " | ".join([
                point, f"{Path(c['bench']).name}/{c['video']}", _f(c["detection_recall"], 2), _f(c["loss_accuracy"]),
                _f(c["loss_ratio"], 2), _f(c["loss_wcp"]),
                f"{_f(c['student_predictor_accuracy'])} / {_f(c['student_predictor_ratio'], 2)} / {_f(c['student_predictor_wcp'])}", _f(c["peer_accuracy"]), _f(c["margin"]),
                f"{_f(c['finetuned_finch'])} / {_f(c['finetuned_hdbscan'])}",
                f"{_f(c['matching_precision'], 2)} / {_f(c['matching_recall'], 2)} ({_f(c.get('matching_labelled_precision'), 2)})",
                f"{_f(c.get('bound_recall_pretrained'), 2)} / {_f(c.get('bound_recall_finetuned'), 2)}", str(c["matching_pairs"]),
                _f(c["teacher_entropy"], 2), f"{c['track_prototypes']} / {c['tracks']}",
                f"{_f(c['same_below_1'], 2)} / {_f(c['different_below_1'], 2)}", _f(c["finetune_seconds"], 0),
            ]) + " |")  # fmt: skip
    head = ["point", "cells won", "loss acc", "ratio", "WCP", "student-predictor acc / ratio / WCP", "best peer", "margin", "finetuned FINCH", "pretrained FINCH",
            "matching P", "matching R", "oracle R at P .95", "merge<1 same", "merge<1 diff", "finetune s"]
    lines += ["", "Mean over the suite:", "", "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for point, m in result["mean"].items():
        lines.append("| " + " | ".join([
            point, f"{m['cells_won']} / {m['cells']}", _f(m["loss_accuracy"]), _f(m["loss_ratio"], 2), _f(m["loss_wcp"]),
            f"{_f(m['student_predictor_accuracy'])} / {_f(m['student_predictor_ratio'], 2)} / {_f(m['student_predictor_wcp'])}",
            _f(m["peer_accuracy"]), _f(m["margin"]), _f(m["finetuned_finch"]), _f(m["pretrained_finch"]),
            _f(m["matching_precision"], 2), _f(m["matching_recall"], 2), _f(m.get("bound_recall_pretrained"), 2),
            _f(m["same_below_1"], 2),
            _f(m["different_below_1"], 2), _f(m["finetune_seconds"], 0),
        ]) + " |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", action="append", default=[], help="a benchmark directory (repeat for the suite)")
    parser.add_argument("--points", default="default", help=f"comma-separated study points: {', '.join(POINTS)}")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None)
    parser.add_argument("--save-features", default=None, help="folder: per point and episode, the features (npz)")
    parser.add_argument("--seed", type=int, default=None,
                        help="finetune seed of every point (default: the point's own); save each seed's features apart")
    parser.add_argument("--list", action="store_true", help="print the study points and exit")
    parser.add_argument("--tiny", action="store_true", help="smoke run: FinetuneConfig.tiny() under each point")
    parser.add_argument("--backbone", default=None,
                        help="base model, e.g. arcface-onnx:../shared/models/mobilefacenet/mobilefacenet_128d.onnx "
                             "(default: the product's, dlib-resnet)")
    parser.add_argument("--max-faces", type=int, default=8, help="chips read per track (default 8, the product's)")
    parser.add_argument("--second-buffer", type=float, default=None,
                        help="stage 1's TrackerConfig.second_buffer (default: the product's, .5; 0: no cascade; "
                             "see benchmarks/tracking.py)")
    args = parser.parse_args()
    if args.list:
        for name, overrides in POINTS.items():
            print(f"{name}: {overrides}")
        return
    points = args.points.split(",")
    unknown = [p for p in points if p not in POINTS]
    if unknown or not args.bench:
        parser.error(f"unknown points {unknown}; choose from {sorted(POINTS)}" if unknown else "give at least one --bench")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = study(args.bench, points, args.device, features_dir=Path(args.save_features) if args.save_features else None,
                   base="tiny" if args.tiny else "default", backbone_name=args.backbone, seed=args.seed,
                   max_faces_per_track=args.max_faces, second_buffer=args.second_buffer)
    print(to_markdown(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
