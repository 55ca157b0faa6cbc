"""The rows of the ablation table: what each row computes, its result, and how rows aggregate
episodes (see :mod:`vcn_plugin.benchmark.runner` for the scoring rules)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vcn_plugin.clustering.aggregation import (
    DEFAULT_AGREEMENT, DEFAULT_LINKAGE, DEFAULT_NEIGHBOUR_DISTANCE, DEFAULT_ROUNDS, DEFAULT_START, DEFAULT_VIEW_ROUNDS,
)
from vcn_plugin.core.student_factors import DEFAULT_PREDICTOR, PREDICTORS
from vcn_plugin.core.types import UNKNOWN
from vcn_plugin.evaluation.metrics import ClusteringMetrics

#: the scores aggregated as track-weighted means (see the module docstring)
FRACTION_KEYS = ("wcp", "accuracy", "pairwise_f", "bcubed_f", "nmi")
#: every key of a JSON row besides ``assignments``
ROW_KEYS = ("method", "metric", "finetuned", "oracle", "wcp", "accuracy", "pairwise_f", "bcubed_f", "nmi",
            "cluster_ratio", "n_clusters", "n_identities", "unknown", "seconds")  # fmt: skip
LOSS_NOT_APPLICABLE = (
    "not applicable: the loss metric is the finetuned head's own loss; before finetuning the head is "
    "random, so its 'distance' means nothing"
)


@dataclass(frozen=True)
class RowSpec:
    """One row of the ablation table.

    ``method``: a clustering method of :data:`vcn_plugin.clustering.METHODS`; ``finetuned``:
    cluster features of the model finetuned to the video (else the pretrained backbone);
    ``guard``: forbid merging tracks seen in the same frame (aggregation methods only);
    ``oracle``: HAC threshold chosen with the ground truth (``hac-cosine`` only);
    ``threshold``: fixed HAC distance threshold; ``linkage``, ``start``, ``neighbour_distance``,
    ``rounds``, ``agreement`` and ``view_rounds``: the aggregation's merge rule, first round, what
    "nearest" means, what follows the start, whether the finetuned backbone's cosine is the agreement
    view and whether silhouette rounds on it follow the loss's
    (:class:`~vcn_plugin.clustering.AggregationConfig`); ``predictor``: the
    loss metric's predictor network (:data:`~vcn_plugin.core.student_factors.PREDICTORS`).
    """

    name: str
    method: str
    finetuned: bool
    guard: bool = True
    oracle: bool = False
    threshold: float | None = None
    linkage: str = DEFAULT_LINKAGE
    start: str = DEFAULT_START
    predictor: str = DEFAULT_PREDICTOR
    neighbour_distance: str = DEFAULT_NEIGHBOUR_DISTANCE
    rounds: str = DEFAULT_ROUNDS
    agreement: bool = DEFAULT_AGREEMENT
    view_rounds: bool = DEFAULT_VIEW_ROUNDS

    def __post_init__(self) -> None:
        from vcn_plugin.clustering import METHODS

        if self.method not in METHODS:
            raise ValueError(f"row {self.name!r}: unknown method {self.method!r}; choose one of {METHODS}")
        if self.predictor not in PREDICTORS:
            raise ValueError(f"row {self.name!r}: predictor must be one of {PREDICTORS}, got {self.predictor!r}")
        if self.oracle and self.method != "hac-cosine":
            raise ValueError(f"row {self.name!r}: only 'hac-cosine' has an oracle threshold")
        if self.method.startswith("hac-") and not self.oracle and self.threshold is None:
            raise ValueError(f"row {self.name!r}: HAC needs a threshold or oracle=True")

    @property
    def family(self) -> str:
        """``method`` of the JSON row: hac, finch, hdbscan or ours (VideoClusterNet's aggregation)."""
        return self.method.split("-")[0] if self.method in ("hac-cosine", "hac-euclidean", "finch", "hdbscan") else "ours"

    @property
    def metric(self) -> str:
        """``metric`` of the JSON row (FINCH and HDBSCAN run on L2-normalised track means: cosine)."""
        if self.method in ("loss", "cosine", "euclidean"):
            return self.method
        return "euclidean" if self.method == "hac-euclidean" else "cosine"

    @property
    def applicable(self) -> bool:
        return not (self.method == "loss" and not self.finetuned)


#: the paper-shaped ablation: baselines and ours, un-finetuned vs finetuned, guard on/off (a table:
#: the un-finetuned and finetuned halves repeat each other on purpose)
DEFAULT_ROWS: tuple[RowSpec, ...] = (
    RowSpec("HAC cosine, oracle threshold", "hac-cosine", finetuned=False, oracle=True),
    RowSpec("pyannote-video style: HAC Euclidean @ 0.6 (dlib)", "hac-euclidean", finetuned=False, threshold=0.6),
    RowSpec("FINCH", "finch", finetuned=False),
    RowSpec("HDBSCAN", "hdbscan", finetuned=False),
    RowSpec("ours, cosine", "cosine", finetuned=False),
    RowSpec("ours, Euclidean", "euclidean", finetuned=False),
    RowSpec("ours, loss", "loss", finetuned=False),
    RowSpec("ours, cosine, no guard", "cosine", finetuned=False, guard=False),
    RowSpec("HAC cosine, oracle threshold", "hac-cosine", finetuned=True, oracle=True),
    RowSpec("FINCH", "finch", finetuned=True),
    RowSpec("HDBSCAN", "hdbscan", finetuned=True),
    RowSpec("ours, cosine", "cosine", finetuned=True),
    RowSpec("ours, Euclidean", "euclidean", finetuned=True),
    RowSpec("ours, loss", "loss", finetuned=True),
    RowSpec("ours, loss, no guard", "loss", finetuned=True, guard=False),
    RowSpec("ours, loss, no view rounds", "loss", finetuned=True, view_rounds=False),
    RowSpec("ours, loss, no agreeing start, no view rounds", "loss", finetuned=True, agreement=False),
    RowSpec("ours, loss, student predictor", "loss", finetuned=True, predictor="student"),
    RowSpec("ours, loss, raw-distance neighbours", "loss", finetuned=True, neighbour_distance="raw"),
    RowSpec("ours, loss, first-neighbours start", "loss", finetuned=True, start="first-neighbours"),
    RowSpec("ours, loss, single-track start", "loss", finetuned=True, start="threshold"),
    RowSpec("ours, loss, mutual-neighbours start", "loss", finetuned=True, start="mutual-neighbours"),
    RowSpec("ours, loss, first-neighbours start, threshold rounds (the paper's)", "loss", finetuned=True,
            start="first-neighbours", rounds="threshold"),
    RowSpec("ours, loss, first-neighbours start, threshold rounds, mutual linkage", "loss", finetuned=True,
            start="first-neighbours", linkage="mutual", rounds="threshold"),
    RowSpec("ours, loss, threshold start and rounds", "loss", finetuned=True, start="threshold", rounds="threshold"),
    RowSpec("ours, loss, paper-exact (student predictor, threshold start and rounds)", "loss", finetuned=True, linkage="transitive",
            start="threshold", predictor="student", rounds="threshold"),
)  # fmt: skip


# --------------------------------------------------------------------------- results


@dataclass
class RowResult:
    """One row: aggregated metrics (None when not applicable), time, and every track's assignment."""

    spec: RowSpec
    metrics: dict[str, float | int] | None
    seconds: float | None
    assignments: list[dict[str, Any]] = field(default_factory=list)
    per_episode: list[dict[str, Any]] = field(default_factory=list)
    threshold: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        s = self.spec
        metrics = self.metrics or {}
        return {
            "method": s.family,
            "metric": s.metric,
            "finetuned": s.finetuned,
            "oracle": s.oracle,
            **{k: metrics.get(k) for k in (*FRACTION_KEYS, "cluster_ratio", "n_clusters", "n_identities", "unknown")},
            "seconds": self.seconds,
            "name": s.name,
            "guard": s.guard,
            "linkage": s.linkage,
            "start": s.start,
            "neighbour_distance": s.neighbour_distance if s.family == "ours" else None,
            "rounds": s.rounds if s.family == "ours" else None,
            "agreement": s.agreement if s.method == "loss" else None,
            "view_rounds": s.view_rounds if s.method == "loss" and s.agreement else None,
            "predictor": s.predictor if s.method == "loss" else None,
            "threshold": self.threshold,
            "note": self.note,
            "per_episode": self.per_episode,
            "assignments": self.assignments,
        }


@dataclass
class BenchmarkResult:
    """``rows`` in :data:`DEFAULT_ROWS` order (clusters per episode), ``episodes``: stage-wise
    numbers per video. A series also has ``series_rows``: the same rows with every episode's tracks
    clustered together (finetuned rows: one finetune over the series), scored on the union, with
    ``linked`` (see :func:`linked_share`); ``series`` says who recurs."""

    rows: list[RowResult]
    episodes: list[dict[str, Any]]
    config: dict[str, Any]
    dataset_name: str | None = None
    series_rows: list[RowResult] = field(default_factory=list)
    series: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"rows": [r.to_dict() for r in self.rows], "episodes": self.episodes, "config": self.config}
        if self.series is not None:
            out["series"] = self.series
            out["series_rows"] = [r.to_dict() for r in self.series_rows]
        return out

    def to_markdown(self) -> str:
        text = format_rows(self.rows) + "\n\n" + format_episodes(self.episodes) + "\n\n" + format_health(self.episodes)
        if self.series is not None:
            s = self.series
            text += (f"\n\nAcross episodes ({s['episodes']} episodes, {s['recurring_identities']} of "
                     f"{s['identities']} identities in more than one; one finetune over the series):\n\n"
                     + format_rows(self.series_rows, linked=True))  # fmt: skip
        return text


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_rows(rows: Sequence[RowResult], linked: bool = False) -> str:
    """The ablation table as Markdown (``linked``: with the cross-episode column of series rows)."""
    head = ["method", "finetuned", "guard", "WCP", "accuracy", "pairwise F", "BCubed F", "NMI", "cluster ratio",
            "clusters / identities", "Unknown", "seconds"] + (["linked"] if linked else [])  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        s, m = r.spec, r.metrics
        name = s.name + (f" [ORACLE, t={r.threshold:.3f}]" if s.oracle and r.threshold is not None else "")
        guard = ("on" if s.guard else "off") if s.method in ("loss", "cosine", "euclidean") else "-"
        if m is None:
            cells = [name, "yes" if s.finetuned else "no", guard] + [r.note.split(":")[0]] + [""] * (8 + linked)
        else:
            cells = [name, "yes" if s.finetuned else "no", guard, *(_fmt(m[k]) for k in FRACTION_KEYS),
                     _fmt(m["cluster_ratio"], 2), f"{m['n_clusters']} / {m['n_identities']}", str(m["unknown"]),
                     _fmt(r.seconds, 1)] + ([_fmt(m.get("linked"))] if linked else [])  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_episodes(episodes: Sequence[dict[str, Any]]) -> str:
    """Stage-wise numbers per episode as Markdown (where errors come from)."""
    head = ["video", "GT tracks", "identities", "det. recall", "det. precision", "pred tracks", "false-det. tracks",
            "GT tracks missed", "ID switches", "fragmentations", "low-quality", "stage 1 s", "finetune s"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for e in episodes:
        d, t = e["detection"], e["tracking"]
        ft = e["finetune"]
        cells = [e["video"], t["gt_tracks"], e["gt_identities"], _fmt(d["recall"]), _fmt(d["precision"]),
                 t["pred_tracks"], t["false_detection_tracks"], t["gt_tracks_missed"], t["id_switches"],
                 t["fragmentations"], e["low_quality_tracks"], _fmt(e["stage1_seconds"], 1),
                 _fmt(ft.get("seconds"), 1) if "skipped" not in ft else "skipped"]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _pr(q: dict) -> str:
    labelled = q.get("labelled_precision")  # absent from JSON written before it was measured
    among = f", P {_fmt(labelled, 2)} of labelled" if labelled is not None else ""
    return f"{_fmt(q['precision'], 2)} / {_fmt(q['recall'], 2)} ({q['pairs']} pairs, {q['true_pairs']} true{among})"


def format_health(episodes: Sequence[dict[str, Any]]) -> str:
    """Finetuning health per episode as Markdown: coarse matching precision / recall per round
    (and the precision among pairs of two labelled tracks), the final teacher, and the share of
    same- / different-identity pairs whose first-round merge ratio is below 1
    (see :mod:`vcn_plugin.evaluation.finetune_health`)."""
    head = ["video", "matching P / R per round", "teacher entropy (uniform)", "prototypes / tracks / identities",
            "merge < 1: same / different, pretrained cosine", "finetuned cosine", "loss"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for e in episodes:
        h = e.get("health") or {}
        teacher = h.get("teacher") or []
        last = teacher[-1] if teacher else None
        ratios = h.get("merge_ratios", {})

        def share(key: str) -> str:
            r = ratios.get(key)
            return f"{_fmt(r['same']['below_1'], 2)} / {_fmt(r['different']['below_1'], 2)}" if r else "n/a"

        cells = [e["video"], "; ".join(_pr(q) for q in h.get("matching", [])) or "n/a",
                 f"{last['entropy']:.2f} ({last['max_entropy']:.2f})" if last else "n/a",
                 f"{last['track_prototypes']} / {last['tracks']} / {e['gt_identities']}" if last else "n/a",
                 share("pretrained cosine"), share("finetuned cosine"), share("loss")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scored(assignments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The assignments that are scored: matched to a ground-truth track that is not a distractor."""
    return [a for a in assignments if a["gt"] is not None and not a.get("distractor", False)]


def linked_share(assignments: Sequence[dict[str, Any]]) -> float | None:
    """Share of the identities scored in two or more videos that are linked across them: in every
    one of their videos the cluster holding most of their tracks is one and the same cluster, and
    that cluster holds more of their tracks than of anyone else's (so merging everybody into one
    cluster links nobody). None when no identity recurs."""
    from collections import Counter

    rows = scored(assignments)
    videos: dict[str, set[str]] = {}
    for a in rows:
        videos.setdefault(a["gt"], set()).add(a["video"])
    recurring = [g for g, v in videos.items() if len(v) > 1]
    if not recurring:
        return None
    owner = {}  # cluster -> its dominant identity
    for cluster in {a["pred"] for a in rows}:
        counts = Counter(a["gt"] for a in rows if a["pred"] == cluster)
        owner[cluster] = counts.most_common(1)[0][0]
    linked = 0
    for g in recurring:
        dominant = set()
        for video in videos[g]:
            counts = Counter(a["pred"] for a in rows if a["gt"] == g and a["video"] == video)
            dominant.add(min(counts, key=lambda c: (-counts[c], str(c))))
        cluster = dominant.pop() if len(dominant) == 1 else None
        linked += cluster is not None and cluster != UNKNOWN and owner[cluster] == g
    return linked / len(recurring)


def aggregate_episodes(per_episode: Sequence[ClusteringMetrics]) -> dict[str, float | int]:
    """Track-weighted mean of the fractions, sums of the counts (see the module docstring)."""
    weights = np.array([m.n_evaluated for m in per_episode], dtype=float)
    out: dict[str, float | int] = {}
    for key in FRACTION_KEYS:
        values = np.array([getattr(m, key) for m in per_episode], dtype=float)
        out[key] = float((values * weights).sum() / weights.sum()) if weights.sum() > 0 else 0.0
    out["n_clusters"] = int(sum(m.n_clusters for m in per_episode))
    out["n_identities"] = int(sum(m.n_identities for m in per_episode))
    out["cluster_ratio"] = out["n_clusters"] / out["n_identities"] if out["n_identities"] else 0.0
    out["unknown"] = int(sum(m.n_unknown for m in per_episode))
    return out
