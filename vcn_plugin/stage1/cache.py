"""Stage-1 results kept on disk, so the same video under the same config is not processed twice.

A result is keyed by the video file (resolved path, size, modification time) and the full
stage-1 config, and stored as ``<cache_dir>/<key>.pkl``; a changed file or config is a new key.
The benchmark runner uses it so rerunning an ablation on one benchmark does not redo detection.
Only files this module wrote are read (pickles of :class:`~vcn_plugin.stage1.pipeline.VideoFaces`
in vcn's own folder); an unreadable entry is recomputed and overwritten.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import threading
from pathlib import Path

from vcn_plugin.core.progress import Progress
from vcn_plugin.stage1.detectors import FaceDetector
from vcn_plugin.stage1.pipeline import Stage1Config, VideoFaces, process_video

#: bump when VideoFaces or stage 1's output changes, so older entries are not reused
CACHE_VERSION = 2  # 2: shots from linearly downscaled frames; VideoFaces.stage_seconds


def cache_key(path: str | Path, config: Stage1Config) -> str:
    p = Path(path).resolve()
    st = p.stat()
    ident = {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "config": config.to_dict(), "v": CACHE_VERSION}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cached_process_video(
    path: str,
    config: Stage1Config,
    detector: FaceDetector,
    cache_dir: str | Path,
    progress: Progress | None = None,
) -> tuple[VideoFaces, bool]:
    """(stage-1 result, whether it came from the cache). Errors of :func:`process_video` propagate."""
    cache = Path(cache_dir)
    entry = cache / f"{cache_key(path, config)}.pkl"
    if entry.is_file():
        try:
            with entry.open("rb") as f:
                result = pickle.load(f)
            if isinstance(result, VideoFaces):
                return result, True
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass
    result = process_video(path, config, detector, progress)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")  # per process and thread
    with tmp.open("wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, entry)  # atomic: a concurrent reader sees the old entry or the new one
    return result, False
