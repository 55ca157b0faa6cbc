"""vcn: VideoClusterNet (ECCV 2024) for FiftyOne.

Stages: :mod:`vcn_plugin.stage1.pipeline` (shots, faces, tracks), :mod:`vcn_plugin.ssl` (self-supervised
finetuning), :mod:`vcn_plugin.clustering` (parameter-free clustering). Field names live in
:mod:`vcn_plugin.fo.schema`.
"""
__version__ = "0.1.0"


def get_backbone(name: str = "dlib-resnet", **options):
    """Build a face-ID backbone by name (see :func:`vcn_plugin.backbones.get_backbone`)."""
    from vcn_plugin.backbones import get_backbone as _get

    return _get(name, **options)
