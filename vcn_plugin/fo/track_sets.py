"""The tracks of one video (or a series) in memory, as stages 2 and 3 consume them.

A :class:`TrackSet` holds, for every track, a sample of aligned chips, the frames it spans,
its quality and whether it is a low-quality outlier; plus the pairs of tracks seen in one
frame (different people for sure). It is read from FiftyOne once and reused by finetuning,
every clustering method and the benchmark's ablation rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import fiftyone as fo
import numpy as np

from vcn_plugin.backbones.base import Backbone
from vcn_plugin.backbones.serfiq import serfiq_quality
from vcn_plugin.clustering import cooccurring_pairs
from vcn_plugin.core.types import TrackKey
from vcn_plugin.fo import schema
from vcn_plugin.fo.chips import TrackFaces, read_track_chips
from vcn_plugin.fo.frames import read_tracks
from vcn_plugin.fo.runs import stage1_records
from vcn_plugin.stage1.quality import aggregate_track_quality, track_quality_flags


@dataclass
class TrackSet:
    tracks: list[TrackFaces]
    #: every frame of each track (real and interpolated), for the co-occurrence guard
    track_frames: list[list[int]]
    shots: list[int]
    quality: np.ndarray  # (n_tracks,)
    low_quality: np.ndarray  # (n_tracks,) bool
    #: (m, 2) indices of tracks seen in the same frame of the same video
    cooccurring: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    #: where ``quality`` and each track's ``qualities`` come from: "cheap" (stage 1) or "serfiq"
    quality_source: str = "cheap"

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def keys(self) -> list[TrackKey]:
        return [t.key for t in self.tracks]

    @property
    def face_track(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.tracks)), [len(t.chips) for t in self.tracks])

    @property
    def chips(self) -> np.ndarray:
        return np.concatenate([t.chips for t in self.tracks]) if self.tracks else np.zeros((0, 1, 1, 3), np.uint8)

    def subset(self, video_ids: set[str]) -> "TrackSet":
        keep = [i for i, t in enumerate(self.tracks) if t.video_id in video_ids]
        return _subset(self, keep)


def _subset(ts: TrackSet, keep: list[int]) -> TrackSet:
    index = {old: new for new, old in enumerate(keep)}
    pairs = [(index[a], index[b]) for a, b in ts.cooccurring if a in index and b in index]
    return TrackSet(
        tracks=[ts.tracks[i] for i in keep],
        track_frames=[ts.track_frames[i] for i in keep],
        shots=[ts.shots[i] for i in keep],
        quality=ts.quality[keep],
        low_quality=ts.low_quality[keep],
        cooccurring=np.array(pairs, np.int64).reshape(-1, 2),
        quality_source=ts.quality_source,
    )


QUALITY_SOURCES = ("auto", "cheap", "serfiq")


def uses_serfiq(backbone: Backbone, quality: str) -> bool:
    """SER-FIQ needs a backbone trained with dropout: ArcFace-style ones. dlib's ResNet gives
    flat SER-FIQ scores (see :mod:`vcn_plugin.backbones.serfiq`), so ``"auto"`` keeps stage 1's cheap
    quality (detector score, size, sharpness) for it."""
    if quality not in QUALITY_SOURCES:
        raise ValueError(f"quality must be one of {QUALITY_SOURCES}, got {quality!r}")
    return quality == "serfiq" or (quality == "auto" and backbone.template == "arcface")


def load_track_set(
    samples: fo.core.collections.SampleCollection,
    backbone: Backbone,
    max_faces: int = 8,
    field: str = schema.FACES,
    progress=None,
    quality: str = "auto",
) -> TrackSet:
    """Read a chip sample of every track of every video in ``samples`` (one decode per video).

    Track quality is the median face quality: stage 1's cheap quality, or SER-FIQ on the
    sampled chips (``quality``, see :func:`uses_serfiq`). Tracks whose quality is a low MAD
    outlier are flagged ``low_quality`` (they become Unknown). Raises ValueError when stage 1
    has not run on a video.
    """
    serfiq = uses_serfiq(backbone, quality)
    tracks: list[TrackFaces] = []
    track_frames: list[list[int]] = []
    shots: list[int] = []
    qualities: list[float] = []
    videos: list[str] = []
    processed = stage1_records(samples)
    missing = sorted(set(samples.values("filepath")) - set(processed))
    if missing:
        raise ValueError(
            f"{len(missing)} video(s) have no complete stage-1 result (never processed, failed or interrupted), "
            f"e.g. {missing[0]}; run 'detect faces' (stage 1) on them first"
        )
    sample_list = list(samples.select_fields(schema.frame_path(field)))
    for i, sample in enumerate(sample_list):
        if progress is not None:
            progress(i / max(len(sample_list), 1), f"reading faces of video {i + 1}/{len(sample_list)}")
        spans = read_tracks(sample, field)
        landmark_format = processed[sample.filepath].get("landmark_format", "dlib5")
        for tf in read_track_chips(sample, backbone.template, backbone.chip_size, landmark_format, max_faces, field):
            tracks.append(tf)
            track_frames.append(spans[tf.track].frames)
            shots.append(spans[tf.track].shot)
            if serfiq:
                tf.qualities = serfiq_quality(backbone, tf.chips).tolist()
                qualities.append(aggregate_track_quality(tf.qualities))
            else:
                qualities.append(aggregate_track_quality(spans[tf.track].qualities() or tf.qualities))
            videos.append(sample.id)
    quality = np.array(qualities, dtype=float)
    low = track_quality_flags(quality) if len(quality) >= 3 else np.zeros(len(quality), bool)
    pairs = cooccurring_pairs(track_frames, videos) if tracks else np.zeros((0, 2), np.int64)
    return TrackSet(tracks, track_frames, shots, quality, low, pairs, "serfiq" if serfiq else "cheap")
