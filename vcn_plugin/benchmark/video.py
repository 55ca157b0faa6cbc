"""Writing browser-playable H.264 video by piping raw RGB frames to the ``ffmpeg`` binary."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"the `{name}` binary was not found on PATH; install FFmpeg (e.g. `apt-get install ffmpeg`)")
    return path


class H264Writer:
    """Context manager: ``write(frame)`` uint8 RGB (H, W, 3) frames into an H.264 yuv420p MP4.

    libx264 with ``-preset veryfast -crf 18``, ``+faststart`` so browsers can play it while loading.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, crf: int = 18):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs an even frame size, got {width}x{height}")
        self.path, self.width, self.height = Path(path), width, height
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            require_binary("ffmpeg"), "-y", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps}", "-i", "-",
            "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-threads", "2",
            "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(self.path),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected uint8 frame of shape {(self.height, self.width, 3)}, got {frame.dtype} {frame.shape}")
        self.proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        self.frames += 1

    def close(self) -> None:
        self.proc.stdin.close()
        err = self.proc.stderr.read().decode(errors="replace")
        if self.proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {self.path}: {err.strip()}")

    def __enter__(self) -> "H264Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.proc.kill()
            self.proc.wait()


def probe_video(path: str | Path) -> dict:
    """Codec, pixel format, size and exact frame count of the first video stream (ffprobe)."""
    cmd = [
        require_binary("ffprobe"), "-v", "error", "-select_streams", "v:0", "-count_frames",
        "-show_entries", "stream=codec_name,pix_fmt,width,height,nb_read_frames,r_frame_rate", "-of", "json", str(path),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    stream = json.loads(result.stdout)["streams"][0]
    stream["nb_read_frames"] = int(stream["nb_read_frames"])
    return stream
