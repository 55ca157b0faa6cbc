"""vcn: VideoClusterNet (Kamboj et al., ECCV 2024) for FiftyOne.

The front door: every user-facing step on a FiftyOne video dataset, in pipeline order.
Nothing heavy is imported until a name is first used (``import vcn_plugin`` stays fast)::

    import vcn_plugin as vcn

    dataset = fo.Dataset("episodes")
    vcn.import_videos(["/videos"], dataset)      # validated files become samples
    vcn.detect_faces(dataset)                    # stage 1: shots, faces, quality, tracks
    vcn.finetune(dataset)                        # stage 2: adapt the face-ID model per video
    vcn.cluster_identities(dataset)              # stage 3: identities, parameter-free
    vcn.evaluate_identities(dataset)             # against frames.gt_faces, stored as a run

Stages
    :func:`import_videos`, :func:`detect_faces` (:class:`Stage1Config`), :func:`finetune`
    (:class:`FinetuneConfig`), :func:`cluster_identities`, :func:`visualize_identities`
Evaluation and benchmarks
    :func:`evaluate_identities`, :func:`load_evaluation`, :func:`import_benchmark`,
    :func:`export_benchmark`
Corrections (logged, undoable, kept by re-clustering)
    :func:`rename_identity`, :func:`merge_identities`, :func:`move_tracks`,
    :func:`split_tracks`, :func:`mark_unknown`, :func:`mark_not_face`, :func:`undo_last`,
    :func:`identity_view`, :func:`least_certain_view`
Models
    :func:`get_backbone`, :func:`get_detector`

Every field, run key and info key vcn writes is named in :mod:`vcn_plugin.fo.schema`; the
layers are described in ``docs/architecture.md``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "import_videos": ("vcn_plugin.fo.datasets", "import_videos"),
    "detect_faces": ("vcn_plugin.steps.detect", "detect_faces"),
    "Stage1Config": ("vcn_plugin.stage1", "Stage1Config"),
    "finetune": ("vcn_plugin.steps.finetune", "finetune_dataset"),
    "FinetuneConfig": ("vcn_plugin.ssl", "FinetuneConfig"),
    "cluster_identities": ("vcn_plugin.steps.cluster", "cluster_identities"),
    "visualize_identities": ("vcn_plugin.steps.cluster", "visualize_identities"),
    "evaluate_identities": ("vcn_plugin.evaluation.evaluate", "evaluate_identities"),
    "load_evaluation": ("vcn_plugin.evaluation.evaluate", "load_evaluation"),
    "import_benchmark": ("vcn_plugin.evaluation.ground_truth", "import_benchmark"),
    "export_benchmark": ("vcn_plugin.evaluation.ground_truth", "export_benchmark"),
    "rename_identity": ("vcn_plugin.corrections", "rename_identity"),
    "merge_identities": ("vcn_plugin.corrections", "merge_identities"),
    "move_tracks": ("vcn_plugin.corrections", "move_tracks"),
    "split_tracks": ("vcn_plugin.corrections", "split_tracks"),
    "mark_unknown": ("vcn_plugin.corrections", "mark_unknown"),
    "mark_not_face": ("vcn_plugin.corrections", "mark_not_face"),
    "undo_last": ("vcn_plugin.corrections", "undo_last"),
    "identity_view": ("vcn_plugin.corrections", "identity_view"),
    "least_certain_view": ("vcn_plugin.corrections", "least_certain_view"),
    "get_backbone": ("vcn_plugin.backbones", "get_backbone"),
    "get_detector": ("vcn_plugin.stage1.detectors", "get_detector"),
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # static tools see the real signatures; at run time they load on first use
    from vcn_plugin.backbones import get_backbone
    # two lines, not one block: the same block stands in vcn_plugin/corrections/__init__.py
    from vcn_plugin.corrections import identity_view, least_certain_view, mark_not_face, mark_unknown
    from vcn_plugin.corrections import merge_identities, move_tracks, rename_identity, split_tracks, undo_last
    from vcn_plugin.evaluation.evaluate import evaluate_identities, load_evaluation
    from vcn_plugin.evaluation.ground_truth import export_benchmark, import_benchmark
    from vcn_plugin.fo.datasets import import_videos
    from vcn_plugin.ssl import FinetuneConfig
    from vcn_plugin.stage1 import Stage1Config
    from vcn_plugin.stage1.detectors import get_detector
    from vcn_plugin.steps.cluster import cluster_identities, visualize_identities
    from vcn_plugin.steps.detect import detect_faces
    from vcn_plugin.steps.finetune import finetune_dataset as finetune


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vcn_plugin' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
