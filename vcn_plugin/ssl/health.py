"""Is the finetuning learning? Label-free health numbers of the teacher head.

VideoClusterNet's loss metric is only as good as the head behind it: a teacher that stays near
uniform (entropy close to ``ln K``) gives every pair of faces about the same loss, and a head
that gives every track its own prototype cannot tell one person's two tracks from two people.
These numbers need no ground truth, so they are in every finetune run's results, where a user
can read them, and the benchmark sets them beside the ground-truth ones
(:mod:`vcn_plugin.evaluation.finetune_health`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class TeacherHealth:
    """The teacher's centred, sharpened distributions ``P`` over the K prototypes, summarised.

    Attributes:
        entropy: mean per-face entropy of ``P`` in nats (``max_entropy`` = ``ln K`` is uniform).
        max_entropy: ``ln K``.
        sharpness: mean largest probability of a face's ``P`` (1/K uniform, 1 one-hot).
        face_prototypes: distinct argmax prototypes over all faces.
        track_prototypes: distinct argmax prototypes of the tracks' mean ``P``.
        tracks: tracks summarised (to compare ``track_prototypes`` with).
        track_purity: mean share of a track's faces whose argmax is the track's own prototype
            (1: every face of a track agrees; low: the head splits tracks).
    """

    entropy: float
    max_entropy: float
    sharpness: float
    face_prototypes: int
    track_prototypes: int
    tracks: int
    track_purity: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def teacher_health(probs: np.ndarray, face_track: np.ndarray) -> TeacherHealth:
    """Health of teacher probabilities ``probs`` (N faces, K) whose faces belong to tracks
    ``face_track`` (N,) (track indices 0..T-1)."""
    probs = np.asarray(probs, dtype=np.float64)
    face_track = np.asarray(face_track)
    if probs.ndim != 2 or probs.shape[0] == 0 or face_track.shape != (probs.shape[0],):
        raise ValueError(f"need probs (N > 0, K) and face_track (N,), got {probs.shape} and {face_track.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(probs > 0, probs * np.log(probs), 0.0).sum(axis=1)
    tracks, inverse = np.unique(face_track, return_inverse=True)
    sums = np.zeros((len(tracks), probs.shape[1]))
    np.add.at(sums, inverse, probs)
    track_argmax = sums.argmax(axis=1)
    face_argmax = probs.argmax(axis=1)
    agree = np.bincount(inverse, weights=face_argmax == track_argmax[inverse], minlength=len(tracks))
    sizes = np.bincount(inverse, minlength=len(tracks))
    return TeacherHealth(
        entropy=float(entropy.mean()),
        max_entropy=float(np.log(probs.shape[1])),
        sharpness=float(probs.max(axis=1).mean()),
        face_prototypes=int(np.unique(face_argmax).size),
        track_prototypes=int(np.unique(track_argmax).size),
        tracks=int(len(tracks)),
        track_purity=float((agree / sizes).mean()),
    )
