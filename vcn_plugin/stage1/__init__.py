"""Stage 1: video -> shots -> faces -> quality -> tracks (no FiftyOne).

:func:`process_video` runs the whole stage on one file in one decoding pass; the parts are
:mod:`.shots` (PySceneDetect), :mod:`.detectors` (one module per detector, by name),
:mod:`.quality`, :mod:`.align` (landmark alignment to a backbone's template) and
:mod:`.tracking` (a ByteTrack-style tracker inside each shot).
"""
from vcn_plugin.stage1.pipeline import Stage1Config, VideoFaces, detect_frames, process_video, track_summary

__all__ = ["Stage1Config", "VideoFaces", "detect_frames", "process_video", "track_summary"]
