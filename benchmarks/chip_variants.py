"""Does a chip transform before the backbone help the peers? (flip averaging, photometric normalisation)

The product embeds each aligned chip once, as it is. This asks whether the pretrained embeddings
(the ones FINCH and HDBSCAN cluster, and the finetune starts from) get better when each chip is
first transformed, per benchmark episode:

* ``flip``: the mean of the embeddings of the chip and its mirror image (test-time flip);
* ``luminance``: each chip's luma standardised to mean 110 and std 50 (0-255), the same affine
  map on R, G and B so hue stays;
* ``grey-world``: each channel scaled to the chip's mean luma first (removes a colour cast), then
  ``luminance``;
* ``clahe``: OpenCV's CLAHE (clip 2, 4 x 4 tiles) on the L channel of Lab.

Per episode and variant it prints FINCH and HDBSCAN accuracy (the product's scoring) and the share
of labelled tracks whose nearest other labelled track (mean cosine) is the same person. With
``--lfw DIR`` it also scores flip averaging on real photos: nearest-photo identification over the
first 200 identities of DIR with at least two detectable faces (no video, no generator).

    .venv/bin/python benchmarks/chip_variants.py --bench hard --bench bench --bench sweep/none-s0 ... \
        [--lfw ../shared/data/lfw]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vcn_plugin.benchmark.looks import luminance as luma  # noqa: E402  (the looks' own Rec. 601 luma)

#: target luma mean and std of ``luminance`` (0-255): a mid-grey face of ordinary contrast
LUMA_MEAN, LUMA_STD = 110.0, 50.0


def luminance(chip: np.ndarray) -> np.ndarray:
    x = chip.astype(np.float32)
    y = luma(x)
    return np.clip((x - y.mean()) * (LUMA_STD / (y.std() + 1e-6)) + LUMA_MEAN, 0, 255).astype(np.uint8)


def grey_world(chip: np.ndarray) -> np.ndarray:
    x = chip.astype(np.float32)
    x = x * (luma(x).mean() / (x.reshape(-1, 3).mean(axis=0) + 1e-6))
    return luminance(np.clip(x, 0, 255).astype(np.uint8))


_CLAHE = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))


def clahe(chip: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(chip, cv2.COLOR_RGB2LAB)
    lab[..., 0] = _CLAHE.apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def mirror(chips: np.ndarray) -> np.ndarray:
    """The mirror image of one chip (H, W, 3) or of a batch (N, H, W, 3)."""
    return np.ascontiguousarray(chips[..., ::-1, :])


#: per-chip transforms whose embeddings replace the plain ones ("flip" averages, see below)
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "luminance": luminance, "grey-world": grey_world, "clahe": clahe,
}
VARIANTS = ("plain", "flip", *TRANSFORMS)


def nearest_same(embeddings: np.ndarray, face_track: np.ndarray, identity: np.ndarray) -> float:
    """Share of labelled tracks (with another track of their person) whose nearest other labelled
    track by the cosine of track means is the same person."""
    u = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    means = np.stack([u[face_track == t].mean(axis=0) for t in range(len(identity))])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    labelled = identity != ""
    sim = means @ means.T
    np.fill_diagonal(sim, -np.inf)
    sim[:, ~labelled] = -np.inf
    targets = [i for i in np.flatnonzero(labelled) if (identity == identity[i]).sum() > 1]
    hits = [identity[sim[i].argmax()] == identity[i] for i in targets]
    return float(np.mean(hits)) if hits else float("nan")


def _transformed(track_set, transform: Callable[[np.ndarray], np.ndarray]):
    tracks = [dataclasses.replace(t, chips=np.stack([transform(c) for c in t.chips])) for t in track_set.tracks]
    return dataclasses.replace(track_set, tracks=tracks)


def episode_rows(bench_dirs: list[str]) -> list[dict]:
    from vcn_plugin.backbones import DEFAULT_BACKBONE, get_backbone
    from vcn_plugin.benchmark.rows import RowSpec
    from vcn_plugin.benchmark.runner import compute_row, prepare_benchmark
    from vcn_plugin.steps.cluster import track_features

    peers = (RowSpec("FINCH", "finch", finetuned=False), RowSpec("HDBSCAN", "hdbscan", finetuned=False))
    backbone = get_backbone(DEFAULT_BACKBONE)
    rows = []
    for bench in bench_dirs:
        with prepare_benchmark(bench, backbone=backbone) as prep:
            for ep in prep.episodes:
                if ep.finetune_error:
                    continue
                skeleton = ep.assignment_skeleton()
                gt = {a["track"]: "" if a["gt"] is None or a["distractor"] else a["gt"] for a in skeleton}
                identity = np.array([gt.get(t.track, "") for t in ep.track_set.tracks])
                plain = ep.features["pretrained"]["embeddings"]

                def embed(f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
                    return track_features(_transformed(ep.track_set, f), "cosine", None, backbone)["embeddings"]

                variants = {"plain": plain, "flip": (plain + embed(mirror)) / 2,
                            **{name: embed(f) for name, f in TRANSFORMS.items()}}  # fmt: skip
                row = {"bench": str(bench), "video": ep.video}
                for name, emb in variants.items():
                    ep.features["pretrained"] = {"embeddings": emb}
                    finch, hdbscan = (compute_row([ep], spec, DEFAULT_BACKBONE).metrics["accuracy"] for spec in peers)
                    same = nearest_same(emb, ep.track_set.face_track, identity)
                    row[name] = {"finch": finch, "hdbscan": hdbscan, "nearest_same": same}
                ep.features["pretrained"] = {"embeddings": plain}
                rows.append(row)
                scores = (f"{v} {row[v]['finch']:.3f}/{row[v]['hdbscan']:.3f}/{row[v]['nearest_same']:.3f}"
                          for v in VARIANTS)
                print(f"{Path(bench).name}/{ep.video}: " + "  ".join(scores), flush=True)
    return rows


def lfw_flip(folder: Path, identities: int = 200) -> dict[str, float]:
    """Nearest-photo identification on real photos, plain against flip-averaged embeddings."""
    import torch

    from tests.faces import dlib_chips
    from vcn_plugin.backbones import get_backbone

    chips, names = [], []
    for person in sorted(p for p in folder.iterdir() if p.is_dir())[:identities]:
        found = dlib_chips(person)
        if len(found) >= 2:
            chips.append(found)
            names += [person.name] * len(found)
    x, names = np.concatenate(chips), np.array(names)
    backbone = get_backbone("dlib-resnet").eval()

    def embed(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            parts = [backbone(backbone.preprocess(batch[i : i + 64])).numpy() for i in range(0, len(batch), 64)]
            return np.concatenate(parts)

    def identified(e: np.ndarray) -> float:
        u = e / np.linalg.norm(e, axis=1, keepdims=True)
        sim = u @ u.T
        np.fill_diagonal(sim, -np.inf)
        return float((names[sim.argmax(axis=1)] == names).mean())

    plain, flipped = embed(x), embed(mirror(x))
    u, v = (e / np.linalg.norm(e, axis=1, keepdims=True) for e in (plain, flipped))
    return {"faces": int(len(names)), "people": int(len(set(names))), "plain": identified(plain),
            "flip": identified(plain + flipped), "cosine_to_mirror": float((u * v).sum(axis=1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", action="append", default=[], help="a benchmark directory (repeatable)")
    parser.add_argument("--lfw", type=Path, help="a folder of identity sub-folders of photos (flip on real photos)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if not args.bench and not args.lfw:
        parser.error("give --bench and/or --lfw")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out: dict = {}
    if args.bench:
        out["episodes"] = rows = episode_rows(args.bench)
        print("\n| mean over the episodes | FINCH | HDBSCAN | nearest track is the same person |\n|---|---|---|---|")
        for v in VARIANTS:
            means = (f"{np.nanmean([r[v][m] for r in rows]):.3f}" for m in ("finch", "hdbscan", "nearest_same"))
            print(f"| {v} | " + " | ".join(means) + " |")
    if args.lfw:
        out["lfw"] = lfw = lfw_flip(args.lfw)
        print(f"\nLFW, {lfw['faces']} faces of {lfw['people']} people: nearest photo is the same person "
              f"{lfw['plain']:.4f} plain, {lfw['flip']:.4f} flip-averaged; "
              f"mean cosine to the mirror image {lfw['cosine_to_mirror']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
