"""What each film look does to the detector: recall and mean IoU of dlib's HOG boxes against the
ground truth, per look and severity.

One small episode per (look, severity), with the geometry knobs off (no blur, occlusion, turns,
exits or extras) so that only the look changes between cells; the same seed everywhere, so the
same people, photos and shots. Faces are 50-70 px at 320x180, HOG with one upsampling (the
benchmark's stage-1 detector), every 4th frame. ``tests/benchmark/test_looks.py`` asserts the severity-2
column (recall >= 0.8, mean IoU >= 0.6).

    .venv/bin/python benchmarks/looks.py [--faces ../shared/data/faces] [--out /tmp/vcn-looks]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vcn_plugin.benchmark import LOOKS, EpisodeConfig  # noqa: E402
from vcn_plugin.benchmark.checks import look_agreement_table  # noqa: E402

#: the people of tests/benchmark/test_looks.py: LFW colour, BBT grayscale and a dlib example photo
PEOPLE = ["lfw_George_W_Bush", "lfw_Jacques_Chirac", "bbt_amy", "dlib_John_Salley"]
CONFIG = EpisodeConfig(
    n_identities=(3, 3), n_shots=(3, 3), shot_seconds=(1.0, 1.0), width=320, height=180, min_face_px=50.0,
    max_face_px=70.0, blur_prob=0, occlusion_prob=0, leave_prob=0, turn_prob=0, extra_prob=0, photos_per_identity=3, seed=1,
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=ROOT.parent / "shared" / "data" / "faces")
    parser.add_argument("--out", type=Path, default=None, help="where the episodes go (default: a temporary folder)")
    args = parser.parse_args()
    if not args.faces.is_dir():
        sys.exit(f"faces folder {args.faces} not found (the ../shared/data/faces folder beside the repo)")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        faces = root / "faces"
        faces.mkdir(parents=True, exist_ok=True)
        for name in PEOPLE:  # a folder of links: the cast is exactly these people
            if not (faces / name).exists():
                (faces / name).symlink_to(args.faces.resolve() / name)
        rows = look_agreement_table(faces, root / "episodes", CONFIG, sorted(LOOKS), [0, 1, 2, 3], every=4)
    by_look: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_look.setdefault(r["look"], {})[r["severity"]] = r
    print("| look | " + " | ".join(f"severity {s}: recall / mean IoU" for s in range(4)) + " |")
    print("|---|" + "---|" * 4)
    for look, cells in by_look.items():
        print(f"| {look} | " + " | ".join(f"{cells[s]['recall']:.2f} / {cells[s]['mean_iou']:.2f}" for s in range(4)) + " |")
    print(f"\n({rows[0]['n_gt']} ground-truth boxes per cell, every 4th frame)")


if __name__ == "__main__":
    main()
