"""Small video files written by the tests themselves."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from vcn_plugin.core.video import H264Writer


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    h, w = frames[0].shape[:2]
    with H264Writer(path, w, h, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def noise_frames(n: int, width: int = 160, height: int = 120, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(n)]


def with_rotation_flag(src: Path, dst: Path, degrees: int = 90) -> Path:
    """Copy ``src`` with a display-rotation flag (no re-encoding)."""
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(dst)],
        check=True,
    )
    return dst
