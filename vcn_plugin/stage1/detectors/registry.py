"""Detectors by name: the one place a new detector is registered."""
from __future__ import annotations

import dataclasses
from typing import Any

from vcn_plugin.stage1.detectors.base import FaceDetector
from vcn_plugin.stage1.detectors.centerface import CenterFaceConfig, CenterFaceDetector
from vcn_plugin.stage1.detectors.dlib import DlibHogConfig, DlibHogDetector, DlibMmodConfig, DlibMmodDetector
from vcn_plugin.stage1.detectors.scrfd import ScrfdConfig, ScrfdDetector
from vcn_plugin.stage1.detectors.yunet import YuNetConfig, YuNetDetector

DEFAULT_DETECTOR = "centerface"

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
