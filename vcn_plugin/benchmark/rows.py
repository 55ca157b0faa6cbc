"""The rows of the ablation table: what each row computes, its result, and how rows aggregate
episodes (see :mod:`vcn_plugin.benchmark.runner` for the scoring rules)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    ``threshold``: fixed HAC distance threshold.
    """

    name: str
    method: str
    finetuned: bool
    guard: bool = True
    oracle: bool = False
    threshold: float | None = None

    def __post_init__(self) -> None:
        from vcn_plugin.clustering import METHODS

        if self.method not in METHODS:
            raise ValueError(f"row {self.name!r}: unknown method {self.method!r}; choose one of {METHODS}")
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
            "threshold": self.threshold,
            "note": self.note,
            "per_episode": self.per_episode,
            "assignments": self.assignments,
        }


@dataclass
class BenchmarkResult:
    """``rows`` in :data:`DEFAULT_ROWS` order, ``episodes``: stage-wise numbers per video."""

    rows: list[RowResult]
    episodes: list[dict[str, Any]]
    config: dict[str, Any]
    dataset_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows], "episodes": self.episodes, "config": self.config}

    def to_markdown(self) -> str:
        return format_rows(self.rows) + "\n\n" + format_episodes(self.episodes)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_rows(rows: Sequence[RowResult]) -> str:
    """The ablation table as Markdown."""
    head = ["method", "finetuned", "guard", "WCP", "accuracy", "pairwise F", "BCubed F", "NMI", "cluster ratio",
            "clusters / identities", "Unknown", "seconds"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        s, m = r.spec, r.metrics
        name = s.name + (f" [ORACLE, t={r.threshold:.3f}]" if s.oracle and r.threshold is not None else "")
        guard = ("on" if s.guard else "off") if s.method in ("loss", "cosine", "euclidean") else "-"
        if m is None:
            cells = [name, "yes" if s.finetuned else "no", guard] + [r.note.split(":")[0]] + [""] * 8
        else:
            cells = [name, "yes" if s.finetuned else "no", guard, *(_fmt(m[k]) for k in FRACTION_KEYS),
                     _fmt(m["cluster_ratio"], 2), f"{m['n_clusters']} / {m['n_identities']}", str(m["unknown"]),
                     _fmt(r.seconds, 1)]  # fmt: skip
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


def scored(assignments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The assignments that are scored: matched to a ground-truth track that is not a distractor."""
    return [a for a in assignments if a["gt"] is not None and not a.get("distractor", False)]


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
