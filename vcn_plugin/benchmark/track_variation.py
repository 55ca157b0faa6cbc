"""How much a face changes inside one track, measured the same way on real clips and built episodes.

The measure (used to calibrate the builder's ``realistic`` variation against real footage):
run stage 1 on a video, take up to ``faces_per_track`` detected (not interpolated) faces per
track spread evenly over the track, cut dlib-aligned chips with the detector's landmarks, embed
them with the dlib ResNet (the product's default backbone), L2-normalise, and call

* **within-track distance** of a track: the mean of ``1 - cos`` over all pairs of its faces;
* **cross-track distance** of two tracks: ``1 - cos`` of their mean (normalised) embeddings.

On a built episode, stage-1 tracks are matched to ground-truth tracks
(:func:`vcn_plugin.evaluation.track_matching.match_tracks` at IoU 0.3, so a detector's box
convention does not matter here), which splits cross-track pairs into same-identity and
different-identity pairs. Real clips carry no labels; :func:`photo_distances` gives the
reference for those from a folder of labelled photos (same person in different photos, and
different people).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcn_plugin.core.video import iter_frames
from vcn_plugin.stage1.pipeline import Stage1Config, VideoFaces, process_video


@dataclass
class TrackEmbeddings:
    """Normalised embeddings (n, d) of one stage-1 track's sampled faces."""

    track_id: int
    frames: list[int]
    embeddings: np.ndarray
    boxes: dict[int, tuple[float, float, float, float]]  #: every face of the track, (x, y, w, h) pixels


def sample_faces(track, faces_per_track: int) -> list:
    """Up to ``faces_per_track`` detected faces with landmarks, evenly spread over the track."""
    real = [f for f in track.faces if not f.interpolated and f.detection.landmarks is not None]
    if len(real) <= faces_per_track:
        return real
    return [real[i] for i in np.linspace(0, len(real) - 1, faces_per_track).round().astype(int)]


def track_embeddings(
    video: str | Path,
    config: Stage1Config | None = None,
    faces_per_track: int = 8,
    min_faces: int = 2,
    backbone=None,
    result: VideoFaces | None = None,
) -> list[TrackEmbeddings]:
    """Stage 1 on ``video`` (or its given ``result``), then dlib embeddings of each track's sampled faces.

    Tracks with fewer than ``min_faces`` usable faces are left out (no within-track distance).
    """
    import torch

    from vcn_plugin.backbones import get_backbone
    from vcn_plugin.stage1.align import align_face

    result = result or process_video(str(video), config or Stage1Config())
    backbone = backbone or get_backbone()
    picked = {t.track_id: sample_faces(t, faces_per_track) for t in result.tracks}
    picked = {k: v for k, v in picked.items() if len(v) >= min_faces}
    wanted: dict[int, list[tuple[int, int]]] = {}
    for tid, faces in picked.items():
        for slot, face in enumerate(faces):
            wanted.setdefault(face.frame, []).append((tid, slot))
    chips = {tid: [None] * len(faces) for tid, faces in picked.items()}
    last = max(wanted, default=0)
    for number, frame in iter_frames(str(video)):
        if number > last:
            break
        for tid, slot in wanted.get(number, []):
            det = picked[tid][slot].detection
            chips[tid][slot] = align_face(frame, det.landmarks, det.landmark_format, backbone.template, backbone.chip_size, box=det.box)
    out = []
    by_id = {t.track_id: t for t in result.tracks}
    with torch.no_grad():
        for tid in sorted(picked):
            emb = backbone(backbone.preprocess(np.stack(chips[tid]))).numpy().astype(np.float64)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            boxes = {f.frame: _xywh(f.detection.box) for f in by_id[tid].faces}
            out.append(TrackEmbeddings(tid, [f.frame for f in picked[tid]], emb, boxes))
    return out


def _xywh(box) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2 - x1, y2 - y1)


def within_track_distance(embeddings: np.ndarray) -> float:
    """Mean ``1 - cos`` over all pairs of a track's normalised embeddings (n >= 2)."""
    n = len(embeddings)
    if n < 2:
        raise ValueError("a within-track distance needs at least two faces")
    sim = embeddings @ embeddings.T
    return float(1.0 - sim[np.triu_indices(n, 1)].mean())


def mean_direction(embeddings: np.ndarray) -> np.ndarray:
    m = embeddings.mean(axis=0)
    return m / np.linalg.norm(m)


def summarise(values) -> dict:
    """Median and quartiles (and count) of a list of distances; empty lists give ``n = 0``."""
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return {"n": 0, "median": None, "q1": None, "q3": None}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"n": int(v.size), "median": round(float(med), 4), "q1": round(float(q1), 4), "q3": round(float(q3), 4)}


def cross_track_distances(tracks: list[TrackEmbeddings], identity: dict[int, str]) -> tuple[list[float], list[float]]:
    """(same-identity, different-identity) distances between the mean embeddings of labelled tracks."""
    labelled = [t for t in tracks if t.track_id in identity]
    same, diff = [], []
    for i, a in enumerate(labelled):
        for b in labelled[i + 1 :]:
            d = float(1.0 - mean_direction(a.embeddings) @ mean_direction(b.embeddings))
            (same if identity[a.track_id] == identity[b.track_id] else diff).append(d)
    return same, diff


def label_tracks(tracks: list[TrackEmbeddings], annotation) -> dict[int, str]:
    """Ground-truth identity of each stage-1 track that matches an annotated track (IoU >= 0.3)."""
    from vcn_plugin.evaluation.track_matching import MatchingConfig, match_tracks

    predicted = {t.track_id: t.boxes for t in tracks}
    truth = {g.track_id: {b.frame: b.box for b in g.frames} for g in annotation.tracks}
    gt_identity = {g.track_id: g.identity for g in annotation.tracks}
    result = match_tracks(predicted, truth, MatchingConfig(iou_threshold=0.3))
    return {p: gt_identity[g] for p, g in result.matches.items()}


def photo_distances(faces_dir: str | Path, max_photos: int = 6) -> tuple[list[float], list[float]]:
    """(same-person, different-person) ``1 - cos`` between single photos of a labelled photo folder."""
    from vcn_plugin.benchmark.casting import DlibEmbedder
    from vcn_plugin.benchmark.sources import list_identities

    embed = DlibEmbedder()
    people = {}
    for name, photos in list_identities(faces_dir).items():
        vecs = [v for v in (embed(p) for p in photos[:max_photos]) if v is not None]
        if len(vecs) >= 2:
            people[name] = np.stack([v / np.linalg.norm(v) for v in vecs])
    same, diff = [], []
    names = sorted(people)
    for i, a in enumerate(names):
        sim = people[a] @ people[a].T
        same += list(1.0 - sim[np.triu_indices(len(sim), 1)])
        for b in names[i + 1 :]:
            diff += list((1.0 - people[a] @ people[b].T).ravel())
    return [float(v) for v in same], [float(v) for v in diff]
