"""The detector interface: RGB frame in, :class:`FaceDetection` list out (see the package docstring)."""
from __future__ import annotations

import abc
import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from vcn_plugin.core.geometry import downscale
from vcn_plugin.core.timing import StageTimer, timed
from vcn_plugin.core.types import FaceDetection


def validate_frame(frame: Any) -> np.ndarray:
    """Check that ``frame`` is an RGB ``uint8`` array ``(H, W, 3)``; return it contiguous."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(
            f"frame must be uint8 RGB (0..255), got dtype {frame.dtype}; "
            "convert with np.clip(frame, 0, 255).astype(np.uint8)"
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(
            f"frame must have shape (H, W, 3) RGB, got {frame.shape}; "
            "convert grayscale or RGBA with cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB / COLOR_RGBA2RGB)"
        )
    return np.ascontiguousarray(frame)


def to_frame_coordinates(
    detections: list[FaceDetection], factors: np.ndarray, frame_shape: tuple[int, ...]
) -> list[FaceDetection]:
    """Undo a downscale by (x, y) ``factors``, clip boxes to the frame, drop empty boxes, sort by score."""
    height, width = frame_shape[:2]
    mapped = []
    for det in detections:
        box = det.box.astype(np.float32) / np.tile(factors, 2)
        box[[0, 2]] = np.clip(box[[0, 2]], 0, width)
        box[[1, 3]] = np.clip(box[[1, 3]], 0, height)
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        landmarks = None if det.landmarks is None else (det.landmarks.astype(np.float32) / factors)
        mapped.append(dataclasses.replace(det, box=box, landmarks=landmarks))
    return sorted(mapped, key=lambda d: -d.score)


def check_unit_interval(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")


def check_max_side(max_side: int | None) -> None:
    if max_side is not None and max_side < 32:
        raise ValueError(f"max_side must be None or at least 32 pixels, got {max_side}")


def require_file(path: str | os.PathLike | None, what: str) -> Path:
    if path is None:
        raise ValueError(f"{what}: a model path is required (model_path=...)")
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise FileNotFoundError(f"{what}: model file not found: {resolved}")
    return resolved


class FaceDetector(abc.ABC):
    """Finds faces in RGB frames. Subclasses implement :meth:`_detect_small`."""

    name: ClassVar[str] = ""
    landmark_format: ClassVar[str] = ""

    #: long side, in pixels, above which frames are downscaled before detection
    max_side: int | None = None
    #: frames the pipeline collects for one :meth:`detect_batch` call (1: frame by frame)
    batch_size: int = 1
    #: whether several threads may call :meth:`detect_batch` at once (several videos at once)
    thread_safe: ClassVar[bool] = False

    def detect(self, frame: np.ndarray) -> list[FaceDetection]:
        """Faces in one RGB ``uint8`` frame ``(H, W, 3)``, in that frame's pixels, best first."""
        return self.detect_batch([frame])[0]

    def detect_batch(
        self, frames: Sequence[np.ndarray], timer: StageTimer | None = None
    ) -> list[list[FaceDetection]]:
        """:meth:`detect` on each frame; ``timer`` gets the ``resize`` and ``detect`` seconds."""
        frames = [validate_frame(f) for f in frames]
        found: list[list[FaceDetection]] = [[] for _ in frames]
        work = [i for i, f in enumerate(frames) if f.size]
        with timed(timer, "resize"):
            scaled = [downscale(frames[i], max_side=self.max_side) for i in work]
        with timed(timer, "detect"):
            small_found = self._detect_small_batch([small for small, _ in scaled])
            for i, (_, factors), faces in zip(work, scaled, small_found):
                found[i] = to_frame_coordinates(faces, factors, frames[i].shape)
        return found

    def _detect_small_batch(self, frames: list[np.ndarray]) -> list[list[FaceDetection]]:
        """:meth:`_detect_small` per frame; detectors whose backend batches override this."""
        return [self._detect_small(frame) for frame in frames]

    @abc.abstractmethod
    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        """Detect on a frame already shrunk to ``max_side`` (coordinates of that frame)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self, 'config', '')})"
