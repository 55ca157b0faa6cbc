"""Benchmark episodes built from identity-labelled face photos (see :mod:`.builder`)."""
from .builder import PRESETS, EpisodeConfig, EpisodeRecord, Manifest, build_benchmark
from .looks import LOOKS, apply_look

__all__ = ["PRESETS", "EpisodeConfig", "EpisodeRecord", "Manifest", "build_benchmark", "LOOKS", "apply_look"]
