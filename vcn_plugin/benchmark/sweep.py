"""Severity sweeps: the ablation over a grid of looks and severities, one benchmark build per cell."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vcn_plugin.benchmark.rows import DEFAULT_ROWS, BenchmarkResult, RowResult, RowSpec, format_episodes, format_rows
from vcn_plugin.benchmark.runner import run_benchmark, write_json
from vcn_plugin.core.progress import Progress, sub_progress
from vcn_plugin.ssl import FinetuneConfig
from vcn_plugin.stage1 import Stage1Config

#: default looks of a sweep (two contrasting grades keep a full sweep near 40 min on 2 cores)
DEFAULT_SWEEP_LOOKS = ("teal_orange", "day_for_night")
DEFAULT_SWEEP_SEVERITIES = (0, 1, 2, 3)


@dataclass
class SweepCell:
    """One benchmark of a sweep: ``look`` at ``severity`` (severity 0 is the identity look: one
    cell, named ``look="none"``, serves every look)."""

    look: str
    severity: int
    bench_dir: str
    result: BenchmarkResult

    def to_dict(self) -> dict[str, Any]:
        return {"look": self.look, "severity": self.severity, "benchmark": self.bench_dir, **self.result.to_dict()}


@dataclass
class SweepResult:
    cells: list[SweepCell]
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"cells": [c.to_dict() for c in self.cells], "config": self.config}

    def to_markdown(self) -> str:
        parts = []
        for c in self.cells:
            title = "no look (severity 0)" if c.severity == 0 else f"{c.look}, severity {c.severity}"
            parts.append(f"### {title}\n\n{format_rows(c.result.rows)}\n\n{format_episodes(c.result.episodes)}")
        return "\n\n".join(parts)

    def series(self, look: str) -> list[SweepCell]:
        """The cells of ``look`` by severity, the shared severity-0 cell first."""
        return sorted((c for c in self.cells if c.look == look or c.severity == 0), key=lambda c: c.severity)


def _same_build(manifest_path: Path, faces_dir: Path, n_episodes: int, config_dict: dict[str, Any]) -> bool:
    import json

    from vcn_plugin.benchmark.builder import Manifest

    if not manifest_path.is_file():
        return False
    manifest = Manifest.load(manifest_path)
    same_config = json.loads(json.dumps(manifest.config)) == json.loads(json.dumps(config_dict))
    files_there = all((manifest_path.parent / e.video).is_file() and (manifest_path.parent / e.annotation).is_file()
                      for e in manifest.episodes)  # fmt: skip
    return same_config and files_there and len(manifest.episodes) == n_episodes and manifest.faces_dir == str(faces_dir)


def ensure_benchmark(faces_dir: str | Path, out_dir: str | Path, n_episodes: int, config, progress=None,
                     cache_dir: str | Path | None = None) -> bool:
    """Build the benchmark unless ``out_dir`` already holds one built the same way (same faces
    folder, config and episode count); returns True when it was built. A stale benchmark there
    (its ``videos/`` and ``annotations/``) is replaced; the detector cache is kept."""
    import shutil

    from vcn_plugin.benchmark.builder import build_benchmark

    out = Path(out_dir)
    faces = Path(faces_dir).resolve()
    if _same_build(out / "manifest.json", faces, n_episodes, asdict(config)):
        return False
    if (out / "videos").exists() and not (out / "manifest.json").is_file():
        raise ValueError(f"{out} holds videos but no manifest.json; it was not built by the sweep. "
                         "Choose an empty or sweep-owned --out folder")
    for stale in ("videos", "annotations"):
        shutil.rmtree(out / stale, ignore_errors=True)
    build_benchmark(faces, out, n_episodes, config, progress, cache_dir)
    return True


def sweep(
    faces_dir: str | Path,
    out_dir: str | Path,
    looks: Sequence[str] = DEFAULT_SWEEP_LOOKS,
    severities: Sequence[int] = DEFAULT_SWEEP_SEVERITIES,
    episodes: int = 1,
    preset: str = "default",
    json_out: str | Path | None = None,
    plot_out: str | Path | None = None,
    quick: bool = False,
    seed: int = 0,
    config_overrides: dict[str, Any] | None = None,
    finetune_config: FinetuneConfig | None = None,
    stage1_config: Stage1Config | None = None,
    methods: Sequence[RowSpec] = DEFAULT_ROWS,
    progress: Progress | None = None,
) -> SweepResult:
    """Build (or reuse) ``episodes`` episodes per look and severity under ``out_dir`` and run the
    ablation on each. Every cell uses the same seed, so casts, shots and photos are identical
    across cells and only the look changes. ``quick``: the ``quick`` preset, one episode and
    ``FinetuneConfig.tiny()`` (a CI-sized smoke run). Writes the JSON and the plot when asked."""
    from vcn_plugin.benchmark.builder import EpisodeConfig
    from vcn_plugin.benchmark.looks import validate_look

    if quick:
        preset, episodes = "quick", 1
        finetune_config = finetune_config or FinetuneConfig.tiny()
    if not looks or not severities:
        raise ValueError("a sweep needs at least one look and one severity")
    for look in looks:
        for severity in severities:
            validate_look(look, severity)
    cells_todo = sorted({("none", 0) if s == 0 else (look, s) for look in looks for s in severities},
                        key=lambda c: (c[1], c[0]))  # fmt: skip
    out = Path(out_dir)
    cells = []
    for k, (look, severity) in enumerate(cells_todo):
        config = EpisodeConfig.preset(preset, seed=seed, look=look, look_severity=severity, **(config_overrides or {}))
        bench_dir = out / f"{look}-s{severity}"
        cell_progress = sub_progress(progress, k / len(cells_todo), (k + 1) / len(cells_todo))
        label = f"{look} s{severity}"
        if cell_progress:
            cell_progress(0.0, f"{label}: building")
        ensure_benchmark(faces_dir, bench_dir, episodes, config,
                         (lambda d, t, msg: cell_progress(0.0, f"{label}: built {d}/{t}")) if cell_progress else None,
                         cache_dir=out / ".cache")
        result = run_benchmark(bench_dir, None, methods, finetune_config, stage1_config,
                               progress=(lambda f, msg: cell_progress(f, f"{label}: {msg}")) if cell_progress else None)
        cells.append(SweepCell(look, severity, str(bench_dir), result))
    result = SweepResult(cells, {"faces_dir": str(Path(faces_dir).resolve()), "looks": list(looks),
                                 "severities": list(severities), "episodes": episodes, "preset": preset,
                                 "seed": seed, "quick": quick, "config_overrides": config_overrides or {}})  # fmt: skip
    if json_out is not None:
        write_json(result.to_dict(), json_out)
    if plot_out is not None:
        plot_sweep(result, plot_out)
    return result


def _row_label(row: RowResult) -> str:
    return f"{row.spec.name}{' (finetuned)' if row.spec.finetuned else ''}"


def plot_sweep(result: SweepResult, path: str | Path) -> Path:
    """Accuracy and cluster ratio against severity, one line per applicable row (one colour per
    method; dashed: pretrained features, solid: finetuned), one figure row per look."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    looks = list(result.config["looks"])
    shown = sum(r.metrics is not None for r in result.cells[0].result.rows)
    legend_height = 0.4 + 0.17 * -(-shown // 2)  # inches: two columns of labels below the plots
    height = 3.6 * len(looks) + legend_height
    fig, axes = plt.subplots(len(looks), 2, figsize=(13, height), squeeze=False)
    handles = {}
    names = list(dict.fromkeys(r.spec.name for r in result.cells[0].result.rows))  # one colour per method
    # tab20's dark shades first, then its light ones: up to 20 methods without a repeated colour
    colours = [plt.cm.tab20((2 * i) % 20 + (2 * i) // 20 % 2) for i in range(len(names))]
    for li, look in enumerate(looks):
        cells = result.series(look)
        sev = [c.severity for c in cells]
        for ri, row in enumerate(cells[0].result.rows):
            if row.metrics is None:
                continue
            style = dict(marker="o", linestyle="-" if row.spec.finetuned else "--", linewidth=1.4)
            for ax, key in zip(axes[li], ("accuracy", "cluster_ratio")):
                values = [c.result.rows[ri].metrics[key] for c in cells]
                (line,) = ax.plot(sev, values, label=_row_label(row), color=colours[names.index(row.spec.name)], **style)
                handles[_row_label(row)] = line
        for ax, key in zip(axes[li], ("accuracy", "cluster ratio")):
            ax.set_title(f"{look}: {key}")
            ax.set_xlabel("look severity")
            ax.set_xticks(sev)
            ax.grid(alpha=0.3)
        axes[li][1].axhline(1.0, color="black", linewidth=0.8)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_height / height, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
