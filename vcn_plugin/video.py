"""Reading videos: probing, validation, and decoding frames (1-based, as in FiftyOne)."""
from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

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


def _ffprobe() -> str:
    exe = shutil.which("ffprobe")
    if exe is None:
        raise RuntimeError("ffprobe not found on PATH; install ffmpeg (e.g. 'sudo apt-get install ffmpeg')")
    return exe


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
    cmd = [_ffprobe(), "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)]
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


def resize_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


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
