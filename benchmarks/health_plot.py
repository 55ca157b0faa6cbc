"""Finetuning health per episode, as one figure: what the tables of ``vcn benchmark run`` say.

    .venv/bin/python benchmarks/health_plot.py bench.json hard.json sweep.json --out docs/finetune_health.png

Takes the JSON of ``vcn benchmark run --json`` or of ``benchmarks/sweep.py --json`` (every
cell's episodes). One row per episode:
1. coarse-matching precision and recall of the cross-shot pairs, per round (ground truth:
   pairs of tracks of one identity in different shots);
2. the teacher's mean entropy after the head stage and after each joint round, against the
   uniform distribution's (ln K) — near it, the head has not learned to tell people apart;
3. the loss curve of the whole finetune;
4. the merge ratio (cross-track distance / the larger of the two tracks' thresholds) of
   same-identity and different-identity pairs: quartile bars and median, for the pretrained and
   finetuned cosine and for the finetuned loss. The clustering merges a pair below 1 (dashed),
   so same-identity bars should sit under it and different-identity bars above.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RATIO_KEYS = ("pretrained cosine", "finetuned cosine", "loss")


def load_episodes(paths: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    """(label, episode) for every episode with health numbers in the given JSON files."""
    out = []
    for path in paths:
        data = json.loads(path.read_text())
        units = [(c.get("benchmark") or f"{c['look']}-s{c['severity']}", c) for c in data["cells"]] \
            if "cells" in data else [(path.stem, data)]  # fmt: skip
        for name, unit in units:
            for episode in unit.get("episodes", []):
                if episode.get("health"):
                    out.append((f"{Path(str(name)).name} / {Path(episode['video']).stem}", episode))
    return out


def plot_matching(ax, health: dict[str, Any]) -> None:
    rounds = health.get("matching") or []
    x = range(1, len(rounds) + 1)
    for key, marker in (("precision", "o-"), ("recall", "s-")):
        ax.plot(x, [float("nan") if r[key] is None else r[key] for r in rounds], marker, label=key)
    ax.axhline(0.95, color="C0", ls=":", lw=0.8)
    ax.axhline(0.5, color="C1", ls=":", lw=0.8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(list(x))
    ax.set_xlabel("matching round")


def plot_teacher(ax, health: dict[str, Any]) -> None:
    teacher = health.get("teacher") or []
    if not teacher:
        return
    ax.plot(range(len(teacher)), [t["entropy"] for t in teacher], "o-", color="C2", label="teacher entropy")
    ax.axhline(teacher[0]["max_entropy"], color="k", ls="--", lw=0.8, label="uniform (ln K)")
    ax.set_xticks(range(len(teacher)))
    ax.set_xticklabels([t["after"] for t in teacher], fontsize=7)
    ax.set_ylim(0, teacher[0]["max_entropy"] * 1.05)


def plot_loss(ax, health: dict[str, Any]) -> None:
    curve = (health.get("loss_curve") or {}).get("loss") or []
    ax.plot(curve, color="C3", lw=1)
    ax.set_xlabel("logged step")


def plot_ratios(ax, health: dict[str, Any]) -> None:
    ratios = health.get("merge_ratios") or {}
    low, high = 1.0, 1.0
    for k, key in enumerate(RATIO_KEYS):
        for side, (kind, colour) in enumerate((("same", "C2"), ("different", "C3"))):
            r = (ratios.get(key) or {}).get(kind)
            if not r or not r.get("pairs"):
                continue
            x = 3 * k + side
            ax.bar(x, r["q75"] - r["q25"], bottom=r["q25"], color=colour, alpha=0.5, width=0.8,
                   label=f"{kind} identity" if k == 0 else None)  # fmt: skip
            ax.plot([x - 0.4, x + 0.4], [r["median"]] * 2, color="k", lw=1.2)
            low, high = min(low, r["q25"]), max(high, r["q75"])
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylim(low / 1.15, high * 1.15)  # bars start at their q25, below 1 for merged pairs
    ax.set_xticks([3 * k + 0.5 for k in range(len(RATIO_KEYS))])
    ax.set_xticklabels(["pretrained\ncosine", "finetuned\ncosine", "finetuned\nloss"], fontsize=7)


def plot(episodes: list[tuple[str, dict[str, Any]]], out: Path) -> None:
    if not episodes:
        raise SystemExit("no episode with health numbers in the given files (run `vcn benchmark run --json`)")
    fig, axes = plt.subplots(len(episodes), 4, figsize=(15, 2.3 * len(episodes)), squeeze=False)
    titles = ("coarse matching P / R", "teacher entropy", "finetune loss", "merge ratio (IQR, median)")
    for row, (label, episode) in enumerate(episodes):
        health = episode["health"]
        for col, draw in enumerate((plot_matching, plot_teacher, plot_loss, plot_ratios)):
            draw(axes[row, col], health)
            if row == 0:
                axes[row, col].set_title(titles[col], fontsize=10)
                axes[row, col].legend(fontsize=7, loc="best")
        axes[row, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out} ({len(episodes)} episodes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", nargs="+", type=Path, help="benchmark or sweep JSON files")
    parser.add_argument("--out", type=Path, default=Path("docs/finetune_health.png"))
    args = parser.parse_args()
    plot(load_episodes(args.json), args.out)


if __name__ == "__main__":
    main()
