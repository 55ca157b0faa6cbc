"""insightface SCRFD through onnxruntime, from a model pack or an explicit ``.onnx``; never downloads."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcn_plugin.core.types import FaceDetection
from vcn_plugin.stage1.detectors.base import FaceDetector, check_unit_interval
from vcn_plugin.stage1.detectors.onnx_session import make_session


def insightface_root(root: str | os.PathLike | None = None) -> Path:
    """The insightface home: ``root``, else ``$INSIGHTFACE_HOME``, else ``~/.insightface``."""
    chosen = root if root is not None else os.environ.get("INSIGHTFACE_HOME", "~/.insightface")
    return Path(chosen).expanduser()


def _missing_pack_error(pack_dir: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"no SCRFD detector (det_*.onnx or scrfd*.onnx) in {pack_dir}. Nothing is downloaded: "
        f"install an insightface model pack by unzipping it (e.g. buffalo_l.zip from "
        f"https://github.com/deepinsight/insightface/releases/tag/v0.7) so that "
        f"{pack_dir}/det_10g.onnx exists, point INSIGHTFACE_HOME (or root=) at the folder that "
        f"holds models/<pack>/, or pass model='/path/to/scrfd.onnx'"
    )


def resolve_scrfd_model(model: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Find the SCRFD ``.onnx`` for ``model``: a ``.onnx`` file, a pack directory, or a pack name.

    A pack name is looked up as ``<insightface root>/models/<name>/`` (see
    :func:`insightface_root`). Inside a pack, ``det_*.onnx`` is preferred, then
    ``scrfd*.onnx`` (antelopev2 names its detector ``scrfd_10g_bnkps.onnx``).
    Raises FileNotFoundError naming the place it looked in.
    """
    path = Path(model).expanduser()
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"SCRFD model file not found: {path}")
        return path
    if path.is_dir():
        pack_dir = path
    elif len(path.parts) > 1:
        raise FileNotFoundError(f"SCRFD pack directory not found: {path}")
    else:
        pack_dir = insightface_root(root) / "models" / str(model)
    candidates = sorted(pack_dir.glob("det_*.onnx")) or sorted(pack_dir.glob("scrfd*.onnx"))
    if not candidates:
        raise _missing_pack_error(pack_dir)
    return candidates[0]


@dataclass(frozen=True)
class ScrfdConfig:
    """Settings of :class:`ScrfdDetector`.

    model: insightface pack name (looked up under ``root``), a pack directory, or
        a ``.onnx`` path. Default ``buffalo_l`` (insightface's default pack).
    root: insightface home; None uses ``$INSIGHTFACE_HOME`` or ``~/.insightface``.
    input_size: long side of the network input. The frame is downscaled (area
        filter) to it, then letterboxed by insightface into an input whose short
        side is the frame's, rounded up to a multiple of 32 (640x384 for 16:9).
        Frames smaller than this are upscaled, as insightface does.
    score_threshold / nms_threshold: insightface's defaults 0.5 / 0.4.
    providers: onnxruntime providers; None = CUDA when available, then CPU.
    num_threads: onnxruntime intra-op threads; 0 lets onnxruntime choose.
    """

    model: str = "buffalo_l"
    root: str | None = None
    input_size: int = 640
    score_threshold: float = 0.5
    nms_threshold: float = 0.4
    providers: tuple[str, ...] | None = None
    num_threads: int = 0

    def __post_init__(self) -> None:
        if self.input_size < 32 or self.input_size % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {self.input_size}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")
        check_unit_interval("score_threshold", self.score_threshold)
        check_unit_interval("nms_threshold", self.nms_threshold)


class ScrfdDetector(FaceDetector):
    """insightface SCRFD (any of its exports, with keypoints) via onnxruntime; ``arcface5`` landmarks.

    Decoding and NMS are insightface's own ``insightface.model_zoo.scrfd.SCRFD``;
    this class only finds the file offline, picks providers and sizes the input.
    """

    name = "scrfd"
    landmark_format = "arcface5"
    thread_safe = True  # onnxruntime sessions run concurrent calls; decoding is numpy

    def __init__(self, config: ScrfdConfig | None = None) -> None:
        from insightface.model_zoo.scrfd import SCRFD

        self.config = config or ScrfdConfig()
        self.max_side = self.config.input_size
        self.model_path = resolve_scrfd_model(self.config.model, self.config.root)
        session = make_session(self.model_path, self.config.providers, self.config.num_threads)
        # static_shape_sessions=False: one dynamic session serves every frame shape
        self._scrfd = SCRFD(model_file=str(self.model_path), session=session, static_shape_sessions=False)
        if not self._scrfd.use_kps:
            raise ValueError(f"{self.model_path} has no keypoint outputs; use an SCRFD '*_kps' / '*bnkps' export")
        self._scrfd.prepare(0, det_thresh=self.config.score_threshold, nms_thresh=self.config.nms_threshold)

    @property
    def providers(self) -> list[str]:
        return self._scrfd.session.get_providers()

    def _input_size(self, frame_shape: tuple[int, ...]) -> tuple[int, int]:
        """(width, height) of the network input for a frame of this shape."""
        height, width = frame_shape[:2]
        long_side = self.config.input_size
        short = math.ceil(long_side * min(height, width) / max(height, width) / 32) * 32
        return (long_side, short) if width >= height else (short, long_side)

    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        bgr = np.ascontiguousarray(frame[..., ::-1])  # insightface expects OpenCV's BGR
        boxes, keypoints = self._scrfd.detect(bgr, input_size=self._input_size(frame.shape))
        return [
            FaceDetection(
                box=box[:4].astype(np.float32),
                score=float(box[4]),
                landmarks=kps.astype(np.float32),
                landmark_format=self.landmark_format,
            )
            for box, kps in zip(boxes, keypoints)
        ]


# --------------------------------------------------------------------------- YuNet
