"""What limits coarse matching and the silhouette rounds: the numbers behind "What stands between
the defaults and the last targets" in ``docs/finetune_study.md``.

Four commands:

* ``cues BENCH ...``: per track, the cues a gate could use to keep unlabelled extras out of
  coarse matching (stage 1's cheap quality, the shorter box side in pixels, the chips' sharpness,
  and that sharpness over the sharpest face seen in the same frames), as ranges over the cast's
  tracks and over the extras' tracks. ``--json`` keeps the per-track values for ``gate``.
* ``gate FEATURES ... --cues cues.json``: the pairs that the two final clusterings of a saved
  finetune agree on (what ``matching="agreed-clusters"`` pairs, on the final teacher), scored
  against ground truth with extras kept out at each relative-sharpness gate.
* ``silhouette FEATURES ...``: the tracks' mean silhouette under the product's partition and
  under the true one, on the excess loss of the silhouette rounds and on the finetuned backbone's
  cosine. When the true partition scores lower, no rule that maximises the silhouette can find it.
* ``ranks FEATURES ...``: for every track the product's clustering keeps apart from the cluster
  holding most of its person's tracks, the rank of its nearest true mate among all other tracks
  by the excess loss, the finetuned and the pretrained cosine (0: the mate is its nearest track).
  Where no view ranks a mate first, a rule that follows near tracks reaches another person first.

FEATURES are folders written by ``finetune_study.py --save-features`` or ``series_features.py``:

    .venv/bin/python benchmarks/matching_limits.py cues hard bench sweep/none-s0 --json cues.json
    .venv/bin/python benchmarks/matching_limits.py gate feat/suite-s0/agreed-clusters --cues cues.json
    .venv/bin/python benchmarks/matching_limits.py silhouette feat/ho-s0/agreed-clusters sfeat_ac/seed-2
    .venv/bin/python benchmarks/matching_limits.py ranks feat/suite-s0/agreed-clusters --skip day_for_night-s3
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import silhouette_score

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # the package, and this folder's rules script when imported

from cluster_rules import _cosine_matrix, _predictor, _track_matrix  # noqa: E402

from vcn_plugin.clustering import cluster_tracks  # noqa: E402
from vcn_plugin.core.student_factors import DEFAULT_PREDICTOR  # noqa: E402
from vcn_plugin.evaluation.finetune_health import matching_quality  # noqa: E402
from vcn_plugin.ssl.cluster_matching import meet_of_partitions, pairs_of_clusters  # noqa: E402

#: relative-sharpness gates scored by ``gate`` (0: no gate)
GATES = (0.0, 0.3, 0.4, 0.5)
KINDS = ("cast", "extra", "unmatched")
#: sharpness floor (a flat crop has sharpness 0) so that every ratio is defined
_FLAT = 1e-6


def relative_sharpness(sharpness: np.ndarray, cooccurring: np.ndarray) -> np.ndarray:
    """Per track, its sharpness over that of the sharpest track seen in the same frames (at most 1;
    1 for a track seen alone)."""
    sharpness = np.maximum(np.asarray(sharpness, np.float64), _FLAT)
    rel = np.ones(len(sharpness))
    for a, b in np.asarray(cooccurring, np.int64).reshape(-1, 2):
        rel[a] = min(rel[a], sharpness[a] / sharpness[b])
        rel[b] = min(rel[b], sharpness[b] / sharpness[a])
    return rel


def _episode_cues(ep: Any, sample: Any) -> dict[str, list]:
    """The cues of every track of ``ep`` (a prepared benchmark episode) in its track set's order,
    the order of the saved features; ``sample``: its video's FiftyOne sample."""
    import cv2

    from vcn_plugin.fo import schema
    from vcn_plugin.fo.frames import read_tracks
    from vcn_plugin.stage1.quality import laplacian_ratio

    ts = ep.track_set
    spans = read_tracks(sample, schema.FACES)
    width, height = sample.metadata.frame_width, sample.metadata.frame_height
    truth = {entry["track"]: entry for entry in ep.assignment_skeleton()}
    kind, side = [], []
    for tf in ts.tracks:
        entry = truth[tf.track]
        kind.append("extra" if entry["distractor"] else ("cast" if entry["gt"] else "unmatched"))
        boxes = np.array(list(spans[tf.track].boxes.values()))
        side.append(float(np.median(np.minimum(boxes[:, 2] * width, boxes[:, 3] * height))))
    sharp = np.array([np.median([laplacian_ratio(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)) for c in tf.chips])
                      for tf in ts.tracks])  # fmt: skip
    return {"kind": kind, "quality": np.asarray(ts.quality).tolist(), "side": side, "sharpness": sharp.tolist(),
            "relative_sharpness": relative_sharpness(sharp, ts.cooccurring).tolist()}


def cues(benches: list[str]) -> dict[str, dict[str, list]]:
    """Per episode (``<bench folder name>-<video stem>``, the name ``--save-features`` gives it), the
    cues of every track, in the order of the saved features."""
    import fiftyone as fo

    from vcn_plugin.benchmark.runner import prepare_benchmark

    out = {}
    for bench in benches:
        with prepare_benchmark(bench) as prep:
            dataset = fo.load_dataset(prep.dataset_name)
            for ep in prep.episodes:
                sample = dataset.match({"filepath": {"$regex": f"/{re.escape(ep.video)}$"}}).first()
                out[f"{Path(bench).name}-{Path(ep.video).stem}"] = _episode_cues(ep, sample)
    return out


def cues_markdown(per_episode: dict[str, dict[str, list]]) -> str:
    lines = ["| episode | cue | " + " | ".join(f"{k}: n, min-max (median)" for k in KINDS) + " |",
             "|---|---|" + "---|" * len(KINDS)]
    for name, c in per_episode.items():
        kind = np.array(c["kind"])
        for cue in ("quality", "side", "sharpness", "relative_sharpness"):
            v = np.asarray(c[cue])
            cells = [f"{m.sum()}, {v[m].min():.3g}-{v[m].max():.3g} ({np.median(v[m]):.3g})" if m.any() else "-"
                     for m in (kind == k for k in KINDS)]  # fmt: skip
            lines.append(f"| {name} | {cue} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def agreed_partition(ep: dict[str, np.ndarray]) -> np.ndarray:
    """The meet of the product's loss clustering (with the finetuned cosine as its agreement view)
    and the same rule on the finetuned cosine, as the trainer's agreed-clusters rounds compute it."""
    common = {"n_tracks": len(ep["identity"]), "cannot_link": ep["cooccurring"]}
    loss = cluster_tracks("loss", ep["face_track"], probs=ep["probs"], embeddings=ep["finetuned"],
                          **common, **_predictor(ep, DEFAULT_PREDICTOR)).labels  # fmt: skip
    cosine = cluster_tracks("cosine", ep["face_track"], embeddings=ep["finetuned"], **common).labels
    return meet_of_partitions(loss, cosine)


def gate(folders: list[Path], per_episode: dict[str, dict[str, list]]) -> list[dict]:
    """Per saved episode with cues, the agreed pairs' precision / recall at every gate of
    :data:`GATES` (tracks below the gate are never paired), and the pooled figures per folder."""
    rows = []
    for folder in folders:
        pooled = {g: np.zeros(4) for g in GATES}
        for path in sorted(folder.glob("*.npz")):
            if path.stem not in per_episode:
                continue
            ep = _load(path)
            rel = np.asarray(per_episode[path.stem]["relative_sharpness"])
            if rel.shape != ep["identity"].shape:
                raise ValueError(f"{path}: {len(ep['identity'])} tracks, but the cues have {rel.size}; "
                                 "run 'cues' on the benchmarks these features were saved from")
            identity = {i: (g or None) for i, g in enumerate(ep["identity"].tolist())}
            shot = {i: (str(ep["video"][i]), int(ep["shots"][i])) for i in identity}
            labels = agreed_partition(ep)
            row = {"folder": str(folder), "episode": path.stem}
            for g in GATES:
                kept = np.flatnonzero(rel >= g)
                q = matching_quality(pairs_of_clusters(kept.tolist(), labels[kept]).pairs, identity, shot)
                row[g] = (q.precision, q.recall)
                pooled[g] += (q.pairs, q.correct, q.true_pairs, q.found)
            rows.append(row)
        rows.append({"folder": str(folder), "episode": "pooled",
                     **{g: (p[1] / p[0] if p[0] else None, p[3] / p[2] if p[2] else None) for g, p in pooled.items()}})
    return rows


def silhouettes(path: Path) -> dict[str, float]:
    """The mean silhouette of the product's partition and of the true one (each unlabelled track
    alone), on the excess loss and on the finetuned cosine, over the tracks the product clusters."""
    ep = _load(path)
    labels = cluster_tracks("loss", ep["face_track"], probs=ep["probs"], n_tracks=len(ep["identity"]),
                            excluded=ep["low_quality"], cannot_link=ep["cooccurring"], embeddings=ep["finetuned"],
                            **_predictor(ep, DEFAULT_PREDICTOR)).labels  # fmt: skip
    act = np.flatnonzero(labels >= 0)
    identity = ep["identity"][act]
    truth = np.unique(np.where(identity == "", np.char.add("unlabelled-", act.astype(str)), identity),
                      return_inverse=True)[1]  # fmt: skip
    loss, _ = _track_matrix(ep, act, excess=True)
    cosine = _cosine_matrix(ep["finetuned"], ep["face_track"], act)
    out = {}
    for view, d in (("loss", loss), ("cosine", cosine)):
        for name, partition in (("product", labels[act]), ("truth", truth)):
            k = np.unique(partition).size
            out[f"{view}, {name}"] = (float(silhouette_score(d, partition, metric="precomputed"))
                                      if 1 < k < partition.size else float("nan"))  # undefined (sklearn raises)
    return out


RANK_VIEWS = ("loss", "finetuned cosine", "pretrained cosine")


def mate_ranks(path: Path) -> list[dict[str, Any]]:
    """Per track kept apart from its person's main cluster (the cluster with most of its tracks;
    ties: the smaller label), the rank of its nearest true mate in each of :data:`RANK_VIEWS`."""
    ep = _load(path)
    identity = ep["identity"]
    labels = cluster_tracks("loss", ep["face_track"], probs=ep["probs"], n_tracks=len(identity),
                            excluded=ep["low_quality"], cannot_link=ep["cooccurring"], embeddings=ep["finetuned"],
                            **_predictor(ep, DEFAULT_PREDICTOR)).labels  # fmt: skip
    every = np.arange(len(identity))
    views = dict(zip(RANK_VIEWS, (_track_matrix(ep, every)[0], _cosine_matrix(ep["finetuned"], ep["face_track"], every),
                                  _cosine_matrix(ep["pretrained"], ep["face_track"], every))))  # fmt: skip
    rows = []
    for person in sorted(set(identity.tolist()) - {""}):
        tracks = np.flatnonzero(identity == person)
        clustered = labels[tracks][labels[tracks] >= 0]
        if tracks.size < 2 or clustered.size == 0:
            continue
        values, counts = np.unique(clustered, return_counts=True)
        main = values[counts.argmax()]
        for t in tracks[labels[tracks] != main]:
            ranks = {}
            for name, d in views.items():
                order = np.argsort(d[t], kind="stable")
                order = order[order != t]
                ranks[name] = int(np.flatnonzero(np.isin(order, tracks))[0])
            rows.append({"episode": path.stem, "person": person, "track": int(t), **ranks})
    return rows


def _fmt(pr: tuple[float | None, float | None]) -> str:
    return " / ".join("-" if v is None else f"{v:.2f}" for v in pr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cues", help="per-track cues of cast and extras on benchmark folders")
    p.add_argument("benches", nargs="+")
    p.add_argument("--json", help="write the per-track cues here (for 'gate')")
    p = sub.add_parser("gate", help="agreed pairs' precision / recall under relative-sharpness gates")
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--cues", required=True, help="the JSON of 'cues' for the same episodes")
    p = sub.add_parser("silhouette", help="mean silhouette of the product's and the true partition")
    p.add_argument("folders", nargs="+", type=Path)
    p = sub.add_parser("ranks", help="the rank of a separated track's nearest true mate, per view")
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--skip", action="append", default=[],
                   help="leave out episodes whose file name holds this (repeatable)")
    args = parser.parse_args()
    if args.command == "cues":
        result = cues(args.benches)
        print(cues_markdown(result))
        if args.json:
            Path(args.json).write_text(json.dumps(result))
    elif args.command == "gate":
        rows = gate(args.folders, json.loads(Path(args.cues).read_text()))
        print("| folder | episode | " + " | ".join(f"P / R, gate {g}" for g in GATES) + " |")
        print("|---|---|" + "---|" * len(GATES))
        for r in rows:
            print(f"| {r['folder']} | {r['episode']} | " + " | ".join(_fmt(r[g]) for g in GATES) + " |")
    elif args.command == "ranks":
        rows = [r for folder in args.folders for path in sorted(folder.glob("*.npz"))
                if not any(k in path.name for k in args.skip) for r in mate_ranks(path)]  # fmt: skip
        print("| tracks kept apart | " + " | ".join(RANK_VIEWS) + " |\n|---|---|---|---|")
        for label, test in (("mate is the nearest track", lambda r: r == 0), ("mate ranked 2nd", lambda r: r == 1),
                            ("mate ranked 3rd or lower", lambda r: r >= 2)):  # fmt: skip
            print(f"| {label} | " + " | ".join(str(sum(test(r[v]) for r in rows)) for v in RANK_VIEWS) + " |")
        medians = (f"{np.median([r[v] for r in rows]):.0f}" for v in RANK_VIEWS)
        print(f"| all ({len(rows)}), median rank | " + " | ".join(medians) + " |")
        nowhere = sum(all(r[v] > 0 for v in RANK_VIEWS) for r in rows)
        print(f"\n{nowhere} of {len(rows)} have a mate ranked first in none of the three views.")
    else:
        for folder in args.folders:
            for path in sorted(folder.glob("*.npz")):
                s = silhouettes(path)
                print(f"{folder}/{path.stem}: " + ", ".join(f"{k} {v:.3f}" for k, v in s.items()))


if __name__ == "__main__":
    main()
