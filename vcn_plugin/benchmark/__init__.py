"""Benchmark episodes built from identity-labelled face photos (see :mod:`.builder`)."""
from vcn_plugin.benchmark.builder import PRESETS, EpisodeConfig, EpisodeRecord, Manifest, build_benchmark
from vcn_plugin.benchmark.looks import LOOKS, apply_look

__all__ = ["PRESETS", "EpisodeConfig", "EpisodeRecord", "Manifest", "build_benchmark", "LOOKS", "apply_look"]
