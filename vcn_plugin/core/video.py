"""Video I/O: probing and validating files, decoding frames (1-based, as in FiftyOne), and
writing browser-playable H.264 by piping raw RGB frames to the ``ffmpeg`` binary."""
from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vcn_plugin.core.geometry import resize_max_side

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


class VideoError(ValueError):
    """A file that is not a readable video, with the reason in the message."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int  # as displayed, after any rotation flag
    height: int
    fps: float
    num_frames: int  # as reported by the container (may be an estimate)
    codec: str
    rotation: int  # degrees from the container's display matrix / rotate tag


def require_binary(name: str) -> str:
    """Path of the FFmpeg binary ``name`` (``ffmpeg`` or ``ffprobe``); RuntimeError if missing."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"the `{name}` binary was not found on PATH; install FFmpeg (e.g. `apt-get install ffmpeg`)")
    return path


def probe_video(path: str | Path) -> VideoInfo:
    """Validate ``path`` as a decodable video and return its properties.

    Raises :class:`VideoError` naming the problem: missing, empty, not a video, no video
    stream, or no decodable frame.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    cmd = [require_binary("ffprobe"), "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "unknown error"
        raise VideoError(f"{path}: not a readable video ({reason})")
    data = json.loads(proc.stdout or "{}")
    streams = [s for s in data.get("streams", []) if s.get("codec_type") == "video"]
    if not streams:
        raise VideoError(f"{path}: no video stream")
    stream = streams[0]
    rotation = _rotation(stream)
    width, height = int(stream.get("width", 0)), int(stream.get("height", 0))
    if rotation % 180:
        width, height = height, width
    fps = _fps(stream)
    num_frames = int(stream.get("nb_frames") or 0)
    if num_frames <= 0:
        duration = float(stream.get("duration") or data.get("format", {}).get("duration") or 0)
        num_frames = int(round(duration * fps))
    if not _decodes_first_frame(path):
        raise VideoError(f"{path}: the video stream has no decodable frame (truncated or corrupt file)")
    return VideoInfo(str(path), width, height, fps, num_frames, str(stream.get("codec_name", "")), rotation)


def _fps(stream: dict) -> float:
    for key in ("avg_frame_rate", "r_frame_rate"):
        num, _, den = str(stream.get(key, "0/0")).partition("/")
        try:
            value = float(num) / float(den or 1)
        except (ValueError, ZeroDivisionError):
            continue
        if value > 0:
            return value
    return 25.0


def _rotation(stream: dict) -> int:
    rotate = stream.get("tags", {}).get("rotate")
    if rotate is not None:
        return int(float(rotate)) % 360
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return int(float(side["rotation"])) % 360
    return 0


def _decodes_first_frame(path: Path) -> bool:
    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read()
        return bool(ok) and frame is not None
    finally:
        cap.release()


def iter_frames(path: str | Path, max_side: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_number, rgb_frame)`` for every decodable frame, frame numbers from 1.

    Frames come as displayed (OpenCV applies the container's rotation flag). With ``max_side``
    each frame is downscaled so that its longer side is at most that many pixels.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(f"{path}: cannot be opened for decoding")
    try:
        number = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            number += 1
            if max_side is not None:
                bgr = resize_max_side(bgr, max_side)
            yield number, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def read_frames(path: str | Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """RGB frames with the given 1-based numbers, decoded in order up to the last one wanted."""
    last = max(wanted, default=0)
    frames: dict[int, np.ndarray] = {}
    for number, frame in iter_frames(path):
        if number > last:
            break
        if number in wanted:
            frames[number] = frame
    return frames


def find_videos(paths: list[str | Path], recursive: bool = True) -> list[Path]:
    """Expand files and directories into a sorted list of candidate video files.

    Directories contribute files with a known video extension; files given explicitly are
    kept whatever their extension (validation says later whether they are videos).
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            found.extend(f for f in p.glob(pattern) if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        else:
            found.append(p)
    return sorted({f.resolve() for f in found})


def probe_stream(path: str | Path) -> dict:
    """Codec, pixel format, size and exact frame count (``nb_read_frames``, every frame decoded)
    of the first video stream (ffprobe); slower than :func:`probe_video`, for checking outputs."""
    cmd = [
        require_binary("ffprobe"), "-v", "error", "-select_streams", "v:0", "-count_frames",
        "-show_entries", "stream=codec_name,pix_fmt,width,height,nb_read_frames,r_frame_rate", "-of", "json", str(path),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    stream = json.loads(result.stdout)["streams"][0]
    stream["nb_read_frames"] = int(stream["nb_read_frames"])
    return stream


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
