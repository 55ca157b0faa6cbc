"""Settings of the shot tracker."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrackerConfig:
    """Settings of :func:`track_shot` / :func:`track_video`.

    Scores are in the detector's units; the defaults suit detectors whose
    scores lie in [0, 1] (SCRFD, YuNet). For raw dlib HOG margins (about -0.5
    to 3) lower the score thresholds accordingly.
    """

    #: detections with ``score >= high_score`` take part in the first association
    high_score: float = 0.5
    #: detections below this are ignored (counted in ``stats.below_low_score``);
    #: those in ``[low_score, high_score)`` only extend active tracks
    low_score: float = 0.1
    #: an unmatched high-score detection starts a new (tentative) track only if
    #: its score reaches this (ByteTrack: ``high_score + 0.1``)
    new_track_score: float = 0.6
    #: a tentative track is confirmed after this many matched detections ...
    min_hits: int = 2
    #: ... or at once when the detection that starts it scores at least this
    birth_score: float = 0.8
    #: a confirmed track dies when it has no matched detection for more than
    #: this many frames
    max_age: int = 30
    #: buffered IoU (Yang et al., "Hard to Track Objects with Irregular Motions
    #: and Similar Appearances? Make It Easier by Buffering the Matching Space",
    #: WACV 2023): before matching, the predicted box and the detection are both
    #: widened on each side by this fraction of their size per frame since the
    #: track's last detection, so fast faces still overlap across detection gaps
    buffer_per_frame: float = 0.05
    #: upper limit of that widening
    max_buffer: float = 0.3
    #: the cascade of C-BIoU (same paper): the tracks seen at the previous detection step and the
    #: high-score detections that the first two associations left unmatched are matched once more,
    #: at ``match_iou``, with both boxes widened on each side by this fraction of their size (0: no
    #: second pass). For faces that speed up, e.g. leaving the frame, which the Kalman prediction
    #: lags. Measured over 20 benchmark episodes (``benchmarks/tracking.py``), .5 against 0:
    #: pieces too short to match 37 -> 15, identity switches 45 -> 18, fragmentations 61 -> 33,
    #: ground-truth tracks missed 24 -> 24 (one found, one lost); on a real street clip one fast
    #: foreground face is one track instead of 7 (15 -> 9 tracks). Identities over three finetune seeds
    #: (``benchmarks/finetune_study.py``): suite .923 against .918 (hard episode .906 on every
    #: seed, was .836-.891), held out (the 7 ``ho`` episodes) .940 against .949, the series .939
    #: per episode and .884 across episodes against .960 and .829: level over the 20 episodes
    #: (-.004 per episode, within the spread of the seeds), so the better tracks decide
    second_buffer: float = 0.5
    #: minimum (buffered) IoU between a predicted track box and a high-score detection
    match_iou: float = 0.2
    #: minimum IoU for the low-score (second) association
    low_match_iou: float = 0.5
    #: minimum IoU for matching a tentative track
    tentative_match_iou: float = 0.3
    #: gaps of up to this many missing frames inside a track are filled with
    #: interpolated faces (``interpolated=True``); longer ones stay empty. It is
    #: raised to ``detect_every - 1`` when detection runs every k-th frame.
    max_interpolated_gap: int = 10
    #: detection ran on every k-th frame; ``None`` infers k as the greatest common
    #: divisor of the gaps between the frame keys of the input, so pass every frame
    #: detection ran on as a key (with an empty list where it found no face)
    detect_every: int | None = 1
    #: with ``detect_every = k > 1``, continue each track for up to k - 1 frames
    #: after its last detection (constant-velocity prediction, ``interpolated=True``,
    #: never past the shot), as detection did not look at those frames
    extrapolate_tail: bool = True
    #: tracks with fewer real (non-interpolated) detections are dropped and
    #: returned in ``TrackingResult.dropped`` with reason ``"too_short"``
    min_track_length: int = 1

    def __post_init__(self) -> None:
        if not self.low_score <= self.high_score:
            raise ValueError(f"need low_score <= high_score, got {self.low_score} and {self.high_score}")
        if self.new_track_score < self.high_score:
            raise ValueError("new_track_score must be >= high_score (only high-score detections start tracks)")
        for name in ("min_hits", "min_track_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_age", "max_interpolated_gap", "buffer_per_frame", "max_buffer", "second_buffer"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("match_iou", "low_match_iou", "tentative_match_iou"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.detect_every is not None and self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1 or None (infer), got {self.detect_every}")
        if self.detect_every is not None and self.max_age < self.detect_every:
            raise ValueError(
                f"max_age ({self.max_age}) must be >= detect_every ({self.detect_every}), "
                "otherwise every track dies between two detection frames"
            )
