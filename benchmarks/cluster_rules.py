"""Clustering rules on saved finetuning features: which merge rule makes the loss metric win.

``benchmarks/finetune_study.py --save-features DIR`` writes, per study point and episode, the
features of one finetune (teacher probabilities, the student in factored form, pretrained and
finetuned embeddings) with the ground truth. This script clusters them with every rule of
:data:`RULES` (no finetuning, seconds per episode) and prints, per episode and as the mean over
the suite, accuracy / cluster ratio / WCP and the margin to the better of FINCH and HDBSCAN on
the pretrained embeddings (the peers a user would pick). The loss-metric rules differ only in
:class:`~vcn_plugin.clustering.AggregationConfig` and the predictor network; the scoring is the benchmark runner's
(``evaluate_clustering`` over the tracks matched to a ground-truth identity).

    .venv/bin/python benchmarks/finetune_study.py --bench ... --points default --save-features feat
    .venv/bin/python benchmarks/cluster_rules.py feat/default [--json rules.json]

Finetuning is stochastic: one seed's cells move by up to .1 under another seed. Several folders
(e.g. one point under ``finetune_study.py --seed 0, 1, 2``) are scored one by one and then
averaged, with the lowest and highest run mean, so that a rule is chosen by its mean over seeds:

    .venv/bin/python benchmarks/finetune_study.py --bench ... --points default --seed 1 --save-features feat_seed1
    .venv/bin/python benchmarks/cluster_rules.py feat/default feat_seed1/default feat_seed2/default
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.special import logsumexp
from sklearn.metrics import silhouette_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vcn_plugin.clustering import (  # noqa: E402
    AggregationConfig, CosineStats, StudentFactors, cluster_names, cluster_tracks, make_stats,
)
from vcn_plugin.core.student_factors import DEFAULT_PREDICTOR  # noqa: E402
from vcn_plugin.evaluation.metrics import evaluate_clustering  # noqa: E402
from vcn_plugin.ssl.loss import DEFAULT_TEACHER_TEMP  # noqa: E402

Episode = dict[str, np.ndarray]


def _predictor(ep: Episode, predictor: str) -> dict[str, object]:
    """The loss metric's predictor side for ``predictor``. Features saved before the teacher's
    factors were (no ``teacher_bottleneck``) give it exactly from the teacher's probabilities:
    ``log p * temp_t / temp_s`` is the teacher's logits at the student temperature up to a per-face
    constant, which the metric's centring and normalisation remove."""
    temperature = float(ep["temperature"])
    if predictor == "student":
        return {"student": StudentFactors(ep["bottleneck"], ep["prototypes"], temperature)}
    if "teacher_bottleneck" in ep:
        return {"student": StudentFactors(ep["teacher_bottleneck"], ep["teacher_prototypes"], temperature)}
    x = np.log(np.maximum(ep["probs"].astype(np.float64), 1e-38)) * (DEFAULT_TEACHER_TEMP / temperature)
    return {"log_probs": (x - logsumexp(x, axis=1, keepdims=True)).astype(np.float32)}


def _student_temperature_probs(ep: Episode) -> np.ndarray:
    """The teacher's probabilities at the student temperature, ``softmax((t - c) / temp_s)``:
    ``p ** (temp_t / temp_s)``, renormalised (the centre is inside ``p`` already)."""
    x = np.log(np.maximum(ep["probs"].astype(np.float64), 1e-38)) * (DEFAULT_TEACHER_TEMP / float(ep["temperature"]))
    return np.exp(x - logsumexp(x, axis=1, keepdims=True)).astype(np.float32)


def _loss(config: AggregationConfig, predictor: str = DEFAULT_PREDICTOR,
          soft_teacher: bool = False) -> Callable[[Episode], np.ndarray]:
    """``soft_teacher``: the teacher side at the student temperature too, so that with the teacher
    predictor both sides of the loss are one distribution (an offline variant, not a product option)."""
    def run(ep: Episode) -> np.ndarray:
        probs = _student_temperature_probs(ep) if soft_teacher else ep["probs"]
        return cluster_tracks("loss", ep["face_track"], probs=probs, n_tracks=len(ep["identity"]),
                              excluded=ep["low_quality"], cannot_link=ep["cooccurring"], config=config,
                              embeddings=ep["finetuned"], **_predictor(ep, predictor)).labels  # fmt: skip
    return run


def silhouette_merges(distances: np.ndarray, labels: np.ndarray, cannot_link: np.ndarray,
                      second: np.ndarray | None = None) -> np.ndarray:
    """Merge clusters while the mean silhouette (Rousseeuw 1987) of the tracks rises: a reference
    form of the product's silhouette rounds on a dense track-by-track matrix, with sklearn.

    ``distances``: (n, n) symmetric track distances, >= 0, zero diagonal; ``labels``: (n,) the
    clusters to start from; ``cannot_link``: (m, 2) track pairs never to join. Each round takes
    the pairs of clusters that are each other's nearest by mean track distance (average
    linkage; a pair holding a cannot-link pair is dropped), scores each merge alone with sklearn's
    ``silhouette_score`` (singletons count 0, so all-singleton clusters score 0), and applies every
    merge that raises the score;
    rounds repeat until none does. The pairs of one round are disjoint; on every saved finetune of
    the study this gives the same clusters as merging only the single best pair per round.
    ``second``: another (n, n) track distance matrix; a merge must then raise the mean silhouette on
    both (a second opinion that can only refuse merges; the candidates come from ``distances``)."""
    g = np.asarray(labels, dtype=np.int64).copy()
    views = [distances] if second is None else [distances, second]

    def score(lab: np.ndarray, d: np.ndarray = distances) -> float:
        k = np.unique(lab).size
        return float(silhouette_score(d, lab, metric="precomputed")) if 1 < k < lab.size else 0.0

    current = [score(g, d) for d in views]
    while True:
        ks, g = np.unique(g, return_inverse=True)
        m = ks.size
        if m < 3:
            return g
        member = np.eye(m)[g]
        sizes = member.sum(axis=0)
        mean = member.T @ distances @ member / np.outer(sizes, sizes)
        np.fill_diagonal(mean, np.inf)
        nn = mean.argmin(axis=1)
        blocked = {tuple(sorted(p)) for p in g[cannot_link].tolist()} if len(cannot_link) else set()
        accepted = [(a, int(nn[a])) for a in range(m)
                    if nn[nn[a]] == a and a < nn[a] and (a, int(nn[a])) not in blocked
                    and all(score(np.where(g == nn[a], a, g), d) > c for d, c in zip(views, current))]  # fmt: skip
        if not accepted:
            return g
        for a, b in accepted:
            g = np.where(g == b, a, g)
        current = [score(g, d) for d in views]


def _cosine_matrix(embeddings: np.ndarray, face_track: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """(n, n) mean cosine distance between the faces of every two of ``tracks`` (the cosine metric's
    :class:`CosineStats`), clipped at 0, symmetrised, zero diagonal (as the silhouette needs)."""
    stats = CosineStats.from_faces(embeddings.astype(np.float64), face_track).subset(tracks)
    rows = np.arange(tracks.size)
    d = np.maximum(stats.distances(rows, stats, rows), 0.0)
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    return d


def _track_matrix(ep: Episode, act: np.ndarray, excess: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The dense track-by-track loss over tracks ``act`` (the excess, or the raw loss), shifted so
    that its smallest entry is 0 and symmetrised, and the cannot-link pairs among them (local indices)."""
    stats = make_stats("loss", ep["face_track"], probs=ep["probs"], n_tracks=len(ep["identity"]),
                       **_predictor(ep, DEFAULT_PREDICTOR)).subset(act)  # fmt: skip
    rows = np.arange(act.size)
    d = stats.distances(rows, stats, rows).astype(np.float64)
    if excess:
        thr = stats.thresholds("median")
        d = d - (thr[:, None] + thr[None, :]) / 2
    d -= d.min()
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    local = np.full(len(ep["identity"]), -1)
    local[act] = rows
    pairs = local[ep["cooccurring"]].reshape(-1, 2)
    return d, pairs[(pairs >= 0).all(axis=1)]


def first_neighbour_start(distances: np.ndarray, cannot_link: np.ndarray, second: np.ndarray | None = None) -> np.ndarray:
    """Round zero on a dense matrix: every track linked to its nearest other track (FINCH's first
    neighbours; a cannot-link partner is never a neighbour), the links applied from the shortest
    and skipped where they would join two clusters holding a cannot-link pair. With ``second``
    (another (n, n) track distance matrix), a link is kept only if it is a first-neighbour link in
    both matrices: the two views must agree on a track's nearest track."""
    def links(d: np.ndarray) -> set[tuple[int, int]]:
        d = d.astype(np.float64).copy()
        np.fill_diagonal(d, np.inf)
        d[cannot_link[:, 0], cannot_link[:, 1]] = d[cannot_link[:, 1], cannot_link[:, 0]] = np.inf
        nearest = d.argmin(axis=1)
        return {(min(i, int(j)), max(i, int(j))) for i, j in enumerate(nearest) if np.isfinite(d[i, j])}

    kept = links(distances) if second is None else links(distances) & links(second)
    n = distances.shape[0]
    labels = np.arange(n)
    blocked = {(min(a, b), max(a, b)) for a, b in cannot_link.tolist()}
    for a, b in sorted(kept, key=lambda e: (distances[e], e)):
        la, lb = labels[a], labels[b]
        if la == lb or any((min(x, y), max(x, y)) in blocked
                           for x in np.flatnonzero(labels == la) for y in np.flatnonzero(labels == lb)):
            continue
        labels[labels == lb] = la
    return np.unique(labels, return_inverse=True)[1]


def _silhouette(distance: str, starts: tuple[str, ...] = ("first-neighbours",),
                second: str | None = None) -> Callable[[Episode], np.ndarray]:
    """The first-neighbours start (the default's round zero), then :func:`silhouette_merges` on the
    track-to-track loss matrix: the product's silhouette rounds
    (:mod:`vcn_plugin.clustering.silhouette`) computed another way, without the track-averaged
    statistics. ``distance``: "excess" (the loss
    minus the mean of the two tracks' thresholds) or "raw" (the loss); either is shifted so that
    its smallest entry, the tracks' own self-distances included, is 0 (the silhouette needs
    distances >= 0, and the loss has an entropy floor: the raw loss unshifted scores .905 instead of
    .924 on the suite's seed-0 finetune). ``starts``: "first-neighbours" and/or "tracks" (every
    track alone); with both, the result with the higher ``silhouette_score`` is kept (ties: the
    first), the product's ``start="best"`` computed another way; "agreeing": the first-neighbour
    links that the finetuned backbone's track cosine agrees with (:func:`first_neighbour_start`).
    ``second``: "pretrained" or "finetuned": a merge must also raise the mean silhouette on that
    backbone's track cosine distances (:func:`silhouette_merges`); the start is chosen on the loss
    alone."""
    start = _loss(AggregationConfig(start="first-neighbours", max_iterations=1, agreement=False))

    def run(ep: Episode) -> np.ndarray:
        labels = start(ep).copy()
        act = np.flatnonzero(labels >= 0)
        if act.size < 3:
            return labels
        d, pairs = _track_matrix(ep, act, distance == "excess")
        cosine = {key: _cosine_matrix(ep[key], ep["face_track"], act)
                  for key in {second, "finetuned" if "agreeing" in starts else None} - {None}}
        initial = {"first-neighbours": lambda: labels[act], "tracks": lambda: np.arange(act.size),
                   "agreeing": lambda: first_neighbour_start(d, pairs, cosine["finetuned"])}
        runs = [silhouette_merges(d, initial[s](), pairs, cosine.get(second)) for s in starts]
        scores = [silhouette_score(d, g, metric="precomputed") if 1 < np.unique(g).size < g.size else 0.0 for g in runs]
        labels[act] = runs[int(np.argmax(scores))]
        return labels
    return run


def _embedding(method: str, key: str) -> Callable[[Episode], np.ndarray]:
    def run(ep: Episode) -> np.ndarray:
        return cluster_tracks(method, ep["face_track"], embeddings=ep[key], n_tracks=len(ep["identity"]),
                              excluded=ep["low_quality"]).labels  # fmt: skip
    return run


def _arbitrated(first: Callable[[Episode], np.ndarray], second: Callable[[Episode], np.ndarray],
                key: str = "finetuned") -> Callable[[Episode], np.ndarray]:
    """Per episode, whichever of two rules' clusterings has the higher mean silhouette on the
    ``key`` backbone's track cosine (a view that neither rule's rounds optimise; ties: ``first``),
    over the tracks ``first`` clusters. No parameter."""
    def run(ep: Episode) -> np.ndarray:
        a, b = first(ep), second(ep)
        act = np.flatnonzero(a >= 0)
        d = _cosine_matrix(ep[key], ep["face_track"], act)

        def mean_silhouette(labels: np.ndarray) -> float:
            k = np.unique(labels).size
            return float(silhouette_score(d, labels, metric="precomputed")) if 1 < k < labels.size else 0.0

        return b if act.size > 2 and mean_silhouette(b[act]) > mean_silhouette(a[act]) else a
    return run


#: the rules scored on every episode: name -> track labels
RULES: dict[str, Callable[[Episode], np.ndarray]] = {
    "loss, default (teacher predictor, best of three starts by silhouette, silhouette rounds)": _loss(AggregationConfig()),
    "loss, no view rounds (the defaults before)": _loss(AggregationConfig(view_rounds=False)),
    "loss, no agreeing start, no view rounds": _loss(AggregationConfig(agreement=False)),
    # the silhouette rounds from both starts, keeping the higher mean silhouette
    "loss, first-neighbours start": _loss(AggregationConfig(start="first-neighbours")),
    "loss, single-track start": _loss(AggregationConfig(start="threshold")),
    "loss, raw-distance neighbours": _loss(AggregationConfig(neighbour_distance="raw")),
    "loss, student predictor": _loss(AggregationConfig(), "student"),
    "loss, mutual-neighbours start": _loss(AggregationConfig(start="mutual-neighbours")),
    "loss, mutual-neighbours start, student predictor": _loss(AggregationConfig(start="mutual-neighbours"), "student"),
    # the paper's threshold rounds after the same start (the defaults before the silhouette rounds)
    "loss, threshold rounds": _loss(AggregationConfig(start="first-neighbours", rounds="threshold")),
    "loss, threshold rounds, mutual linkage": _loss(AggregationConfig(start="first-neighbours", rounds="threshold", linkage="mutual")),
    "loss, threshold start": _loss(AggregationConfig(start="threshold", rounds="threshold")),
    # the start round alone (``max_iterations`` counts it): what the rounds add after it
    "loss, first-neighbours start only": _loss(AggregationConfig(start="first-neighbours", max_iterations=1)),
    # the silhouette rounds recomputed from the track-by-track matrix with sklearn (a cross-check)
    "loss, silhouette rounds by sklearn": _silhouette("excess"),
    "loss, best start by sklearn": _silhouette("excess", ("first-neighbours", "tracks")),
    # the same, with the backbone's cosine as a second opinion that can refuse a merge
    "loss, best start, merges the pretrained cosine agrees with":
        _silhouette("excess", ("first-neighbours", "tracks"), "pretrained"),
    "loss, best start, merges the finetuned cosine agrees with":
        _silhouette("excess", ("first-neighbours", "tracks"), "finetuned"),
    # round zero keeps only the first-neighbour links that are first-neighbour links of the finetuned
    # cosine too (the lead of 2026-12-07; the product's agreement asks less: one cluster of the
    # cosine's first partition, see the default row and AggregationConfig.agreement)
    "loss, best start, first neighbours the finetuned cosine agrees with": _silhouette("excess", ("agreeing", "tracks")),
    "loss, best start, first neighbours and merges the finetuned cosine agrees with":
        _silhouette("excess", ("agreeing", "tracks"), "finetuned"),
    "loss, teacher at the student temperature": _loss(AggregationConfig(), soft_teacher=True),
    "loss, teacher at the student temperature, raw-distance neighbours":
        _loss(AggregationConfig(neighbour_distance="raw"), soft_teacher=True),
    # the default or the rule above, whichever the finetuned cosine's silhouette prefers (2026-12-07)
    "loss, default or the soft teacher with raw neighbours, by the finetuned cosine's silhouette":
        _arbitrated(_loss(AggregationConfig()), _loss(AggregationConfig(neighbour_distance="raw"), soft_teacher=True)),
    "loss, paper-exact (student predictor, threshold start, threshold rounds)":
        _loss(AggregationConfig(start="threshold", linkage="transitive", rounds="threshold"), "student"),
    "FINCH, finetuned backbone": _embedding("finch", "finetuned"),
    "HDBSCAN, finetuned backbone": _embedding("hdbscan", "finetuned"),
}
PEERS = {"FINCH": _embedding("finch", "pretrained"), "HDBSCAN": _embedding("hdbscan", "pretrained")}


def score(ep: Episode, labels: np.ndarray) -> dict[str, float]:
    names = cluster_names(labels)
    keep = [i for i, g in enumerate(ep["identity"]) if g != ""]
    m = evaluate_clustering([ep["identity"][i] for i in keep], [names[i] for i in keep], "Unknown", "exclude")
    return {"accuracy": m.accuracy, "ratio": m.cluster_ratio, "wcp": m.wcp}


def backbone_cosine(ep: Episode) -> float:
    """Mean cosine between each face's finetuned and pretrained embedding: 1.0 = the finetune left
    the backbone (the one the finetuned embeddings and the teacher predictor use) where it was."""
    a, b = ep["pretrained"].astype(np.float64), ep["finetuned"].astype(np.float64)
    return float(np.mean(np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def evaluate(folder: Path) -> dict:
    cells = []
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as z:
            ep = {k: z[k] for k in z.files}
        peers = {name: score(ep, rule(ep)) for name, rule in PEERS.items()}
        best = max(p["accuracy"] for p in peers.values())
        rules = {name: score(ep, rule(ep)) for name, rule in RULES.items()}
        for r in rules.values():
            r["margin"] = r["accuracy"] - best
        cells.append({"episode": path.stem, "peer_accuracy": best, "peers": peers, "rules": rules,
                      "backbone_cosine": backbone_cosine(ep)})
    mean = {}
    for name in RULES:
        values = [c["rules"][name] for c in cells]
        mean[name] = {k: float(np.mean([v[k] for v in values])) for k in ("accuracy", "ratio", "wcp", "margin")}
        mean[name]["won_or_tied"] = sum(v["margin"] >= 0 for v in values)
    mean["best peer"] = {"accuracy": float(np.mean([c["peer_accuracy"] for c in cells]))}
    return {"folder": str(folder), "cells": cells, "mean": mean}


def to_markdown(result: dict) -> str:
    names = list(RULES)
    lines = ["| episode | best peer | backbone cosine | " + " | ".join(names) + " |", "|---" * (len(names) + 3) + "|"]
    for c in result["cells"]:
        cols = [f"{c['rules'][n]['accuracy']:.3f} / {c['rules'][n]['ratio']:.2f} / {c['rules'][n]['wcp']:.3f}" for n in names]
        lines.append(f"| {c['episode']} | {c['peer_accuracy']:.3f} | {c['backbone_cosine']:.5f} | " + " | ".join(cols) + " |")
    lines += ["", "Mean over the suite (accuracy / cluster ratio / WCP, margin to the best peer, cells won or tied):", "",
              "| rule | accuracy | ratio | WCP | margin | won or tied |", "|---|---|---|---|---|---|"]
    for n in names:
        m = result["mean"][n]
        lines.append(f"| {n} | {m['accuracy']:.3f} | {m['ratio']:.2f} | {m['wcp']:.3f} | {m['margin']:+.3f} | "
                     f"{m['won_or_tied']} / {len(result['cells'])} |")
    lines.append(f"| best of FINCH, HDBSCAN (pretrained) | {result['mean']['best peer']['accuracy']:.3f} | | | | |")
    return "\n".join(lines)


def across(results: list[dict]) -> dict[str, dict[str, float]]:
    """Each rule's suite means averaged over several finetunes of the same episodes (e.g. the
    default under finetune seeds 0, 1, 2), with the lowest and highest run mean accuracy."""
    out = {}
    for name in RULES:
        means = [r["mean"][name] for r in results]
        out[name] = {k: float(np.mean([m[k] for m in means])) for k in ("accuracy", "ratio", "wcp", "margin")}
        out[name]["min_accuracy"] = min(m["accuracy"] for m in means)
        out[name]["max_accuracy"] = max(m["accuracy"] for m in means)
        out[name]["won_or_tied"] = sum(m["won_or_tied"] for m in means)
    out["best peer"] = {"accuracy": float(np.mean([r["mean"]["best peer"]["accuracy"] for r in results]))}
    return out


def across_markdown(results: list[dict], summary: dict[str, dict[str, float]]) -> str:
    cells = sum(len(r["cells"]) for r in results)
    lines = [f"Mean over the {len(results)} finetunes (accuracy / ratio / WCP, margin, lowest-highest run mean, "
             "cells won or tied in all runs):", "",
             "| rule | accuracy | ratio | WCP | margin | run means | won or tied |", "|---|---|---|---|---|---|---|"]
    for n in RULES:
        m = summary[n]
        lines.append(f"| {n} | {m['accuracy']:.3f} | {m['ratio']:.2f} | {m['wcp']:.3f} | {m['margin']:+.3f} | "
                     f"{m['min_accuracy']:.3f}-{m['max_accuracy']:.3f} | {m['won_or_tied']} / {cells} |")
    lines.append(f"| best of FINCH, HDBSCAN (pretrained) | {summary['best peer']['accuracy']:.3f} | | | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="+", help="a study point's folder of saved features (finetune_study.py "
                        "--save-features); several (e.g. one per finetune seed) are also averaged")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    folders = [Path(f) for f in args.folder]
    for folder in folders:
        if not any(folder.glob("*.npz")):
            parser.error(f"{folder}: no saved features (*.npz); run finetune_study.py --save-features first")
    results = [evaluate(folder) for folder in folders]
    for folder, result in zip(folders, results):
        if len(results) > 1:
            print(f"\n{folder}\n")
        print(to_markdown(result))
    output: dict = results[0]
    if len(results) > 1:
        summary = across(results)
        print("\n" + across_markdown(results, summary))
        output = {"runs": results, "across": summary}
    if args.json:
        Path(args.json).write_text(json.dumps(output, indent=1))


if __name__ == "__main__":
    main()
