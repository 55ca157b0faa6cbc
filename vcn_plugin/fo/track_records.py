"""Track records: a linked image dataset with one sample per face track.

Design (one source of truth): the identity of a face lives on its frame label
(``frames.faces.detections.label``), so the App colours and filters videos by identity.
The track dataset ``<dataset>-vcn-tracks`` is an index over those labels for browsing: one
thumbnail per track (the grid shows each identity as faces), the track's mean embedding
(the Embeddings panel), its quality, and ``identity`` / ``gt_identity`` classifications. It is
only ever written through :func:`set_identities` and :func:`write_track_records`, which keep
both sides equal; :func:`check_consistency` verifies it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import fiftyone as fo
import numpy as np

from vcn_plugin.core.types import TrackKey
from vcn_plugin.fo import schema
from vcn_plugin.fo.chips import TrackFaces
from vcn_plugin.fo.frames import track_label_counts
from vcn_plugin.fo.storage import dataset_dir

TRACKS_SUFFIX = schema.TRACKS_SUFFIX


@dataclass
class TrackRecord:
    video_id: str
    video_path: str
    track: int
    shot: int
    first_frame: int
    last_frame: int
    num_faces: int
    quality: float
    low_quality: bool
    thumbnail: np.ndarray  # uint8 RGB chip
    embedding: np.ndarray | None = None
    identity: str = schema.FACE_LABEL
    gt_identity: str | None = None
    #: second-best minus best cluster distance (small = the clustering was unsure)
    margin: float = float("nan")

    @property
    def key(self) -> TrackKey:
        return (self.video_id, self.track)


def tracks_dataset_name(dataset: fo.Dataset) -> str:
    return f"{dataset.name}{TRACKS_SUFFIX}"


def thumbnails_dir(dataset: fo.Dataset) -> Path:
    """vcn's thumbnail folder of ``dataset`` (named by its id, inside vcn's own folder)."""
    return dataset_dir(dataset, "thumbnails")


def get_tracks_dataset(dataset: fo.Dataset, create: bool = False) -> fo.Dataset:
    name = tracks_dataset_name(dataset)
    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    if not create:
        raise ValueError(f"dataset '{dataset.name}' has no track records yet; run clustering first")
    tracks = fo.Dataset(name)
    tracks.persistent = dataset.persistent
    tracks.info = {schema.INFO_VIDEO_DATASET: dataset.name}
    tracks.save()
    return tracks


def delete_track_records(dataset: fo.Dataset, video_ids: list[str]) -> int:
    """Remove the track records of ``video_ids`` (their labels changed); returns how many."""
    if not fo.dataset_exists(tracks_dataset_name(dataset)):
        return 0
    tracks = get_tracks_dataset(dataset)
    stale = tracks.match(fo.ViewField(schema.TRACK_VIDEO_ID).is_in(sorted(video_ids)))
    count = len(stale)
    tracks.delete_samples(stale)
    return count


def write_track_records(dataset: fo.Dataset, records: list[TrackRecord]) -> fo.Dataset:
    """Replace the track records of the videos in ``records``."""
    tracks = get_tracks_dataset(dataset, create=True)
    delete_track_records(dataset, sorted({r.video_id for r in records}))
    out = thumbnails_dir(dataset)
    samples = []
    for r in records:
        path = out / f"{r.video_id}_{r.track:05d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(r.thumbnail, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        sample = fo.Sample(filepath=str(path), **{
            schema.TRACK_VIDEO_ID: r.video_id,
            schema.TRACK_VIDEO_PATH: r.video_path,
            schema.TRACK_INDEX: r.track,
            schema.TRACK_SHOT: r.shot,
            schema.TRACK_FIRST_FRAME: r.first_frame,
            schema.TRACK_LAST_FRAME: r.last_frame,
            schema.TRACK_NUM_FACES: r.num_faces,
            schema.TRACK_QUALITY: float(r.quality),
            schema.TRACK_LOW_QUALITY: bool(r.low_quality),
            schema.TRACK_IDENTITY: fo.Classification(label=r.identity),
            schema.TRACK_MARGIN: float(r.margin) if np.isfinite(r.margin) else None,
        })
        if r.embedding is not None:
            sample[schema.TRACK_EMBEDDING] = np.asarray(r.embedding, dtype=np.float32)
        if r.gt_identity is not None:
            sample[schema.TRACK_GT_IDENTITY] = fo.Classification(label=r.gt_identity)
        samples.append(sample)
    if samples:
        tracks.add_samples(samples, progress=False)
    return tracks


def set_identities(
    dataset: fo.Dataset, identities: Mapping[TrackKey, str], field: str = schema.FACES
) -> int:
    """Set the identity of tracks on the frame labels and on the track records together.

    Updates go to the database by label id, so no video's frames are loaded. Returns the
    number of frame detections changed. Tracks not in ``identities`` keep theirs.
    """
    by_video: dict[str, dict[int, str]] = {}
    for (video_id, track), name in identities.items():
        by_video.setdefault(video_id, {})[int(track)] = name
    if not by_video:
        return 0
    path = f"frames.{field}.detections"
    updates = {}
    view = dataset.select(list(by_video))
    for video_id, frames_idx, frames_lab, frames_id in zip(
        *view.values(["id", f"{path}.index", f"{path}.label", f"{path}.id"])
    ):
        names = by_video[video_id]
        for idx_list, lab_list, id_list in zip(frames_idx, frames_lab, frames_id):
            for idx, lab, det_id in zip(idx_list or [], lab_list or [], id_list or []):
                new = names.get(int(idx)) if idx is not None else None
                if new is not None and lab != new:
                    updates[det_id] = new
    if updates:
        dataset.set_label_values(f"{path}.label", updates)
    name = tracks_dataset_name(dataset)
    if fo.dataset_exists(name):
        records = fo.load_dataset(name)
        values = {}
        for sid, video_id, track in zip(*records.values(["id", schema.TRACK_VIDEO_ID, schema.TRACK_INDEX])):
            new = by_video.get(video_id, {}).get(int(track))
            if new is not None:
                values[sid] = fo.Classification(label=new)
        if values:
            records.set_values(schema.TRACK_IDENTITY, values, key_field="id")
    return len(updates)


def write_face_serfiq(dataset: fo.Dataset, tracks: Sequence[TrackFaces], field: str = schema.FACES) -> int:
    """Write each sampled face's SER-FIQ quality (``TrackFaces.qualities`` of a track set whose
    ``quality_source`` is "serfiq") to its detection's ``serfiq`` attribute, by label id.
    Returns the number of detections written."""
    values = {det_id: float(q) for t in tracks for det_id, q in zip(t.detection_ids, t.qualities)}
    if not values:
        return 0
    path = f"{field}.detections.{schema.ATTR_SERFIQ}"
    if not dataset.has_frame_field(path):
        dataset.add_frame_field(path, fo.FloatField)
    dataset.set_label_values(schema.frame_path(path), values)
    return len(values)


def frame_identities(dataset: fo.Dataset, field: str = schema.FACES) -> dict[TrackKey, str]:
    """Majority frame label of every track (the source of truth)."""
    return {key: c.most_common(1)[0][0] for key, c in track_label_counts(dataset, field).items()}


def check_consistency(dataset: fo.Dataset, field: str = schema.FACES) -> list[TrackKey]:
    """Tracks whose record disagrees with their frame labels (empty when consistent)."""
    truth = frame_identities(dataset, field)
    tracks = get_tracks_dataset(dataset)
    bad = []
    for video_id, track, identity in zip(*tracks.values(
        [schema.TRACK_VIDEO_ID, schema.TRACK_INDEX, schema.label_path(schema.TRACK_IDENTITY)]
    )):
        if truth.get((video_id, int(track))) != identity:
            bad.append((video_id, int(track)))
    return bad
