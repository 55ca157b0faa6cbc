"""Benchmark episodes built from identity-labelled face photos, with exact ground truth.

``build_benchmark(faces_dir, out_dir, n_episodes, config)`` writes::

    out_dir/videos/ep000.mp4          H.264 yuv420p, browser playable
    out_dir/annotations/ep000.json    vcn_plugin.evaluation.annotations.VideoAnnotation
    out_dir/manifest.json             per-episode statistics, config, skipped photos
    out_dir/.cache/                   detected face boxes and identity embeddings

An episode is a cast of identities filmed in shots separated by hard cuts. Each shot shows 1-3
characters, each through one of their photos (photos rotate across scenes; by default every shot
is its own scene, see ``EpisodeConfig.shots_per_scene``), cut out (head on a synthetic torso) and
composited onto the background "location" of its scene, with a camera pan/zoom, small
in-plane rotation, optional head turn, colour temperature and brightness drift, and in some shots
blur/motion blur, an occluder, a character leaving (and maybe re-entering) the frame, and an
unlabelled extra in the background. See :mod:`vcn_plugin.benchmark.render` for how ground-truth
boxes follow the pixels, and :mod:`vcn_plugin.benchmark.looks` for the episode-wide looks.

Ground-truth tracks: one track per continuous visible run of an appearance within a shot; a face
that leaves the frame (or is hidden below ``min_visible``) and comes back starts a new track with
the same identity. Extras are written to ``distractors`` with identity ``"extra"``.

Everything random comes from ``numpy.random.default_rng([seed, episode, ...])``: the same config
and seed give identical annotations and identical frames.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np

from vcn_plugin.benchmark.appearance import Change, track_states
from vcn_plugin.benchmark.backgrounds import generated_background, list_background_photos, photo_background
from vcn_plugin.benchmark.casting import CAST_MODES, identity_embeddings, lookalike_cast, mean_pairwise_distance
from vcn_plugin.benchmark.looks import validate_look
from vcn_plugin.benchmark.render import Appearance, Keyframes, Occluder, ShotPlan, render_shot
from vcn_plugin.benchmark.sources import Cutout, FaceBoxCache, SourcePhoto, find_sources, list_identities, make_cutout
from vcn_plugin.benchmark.style import STYLE_MODES, normalise_cutout, resolve_style
from vcn_plugin.core.video import H264Writer
from vcn_plugin.evaluation.annotations import BoxAnnotation, TrackAnnotation, VideoAnnotation, save_annotation

Progress = Callable[[int, int, str], None]


@dataclass
class EpisodeConfig:
    """How episodes are built. Ranges are inclusive ``(low, high)`` tuples, sampled per episode/shot.

    The default episode is smaller than the paper-sized one (10-16 shots of 1.5-4 s instead of
    20-40 shots of 1.5-6 s) so one builds in about 10-20 s on a laptop CPU; use
    ``EpisodeConfig.preset("paper")`` for the sizes of the benchmark issue.
    """

    n_identities: tuple[int, int] = (6, 12)  #: cast size per episode
    n_shots: tuple[int, int] = (10, 16)  #: shots per episode
    shot_seconds: tuple[float, float] = (1.5, 4.0)  #: length of each shot
    fps: float = 25.0
    width: int = 640  #: 640x360 by default; 1280x720 for the 720p option
    height: int = 360
    max_characters_per_shot: int = 3  #: 1..3 principal characters per shot
    cast_mode: str = "random"  #: "random" or "lookalike" (nearest dlib embeddings)
    look: str = "none"  #: episode-wide look: none, teal_orange, bleach_bypass, tinted_mono, day_for_night, low_key
    look_severity: int = 0  #: 0 (identity) .. 3
    style_normalization: str = "auto"  #: auto, gray, colour, none (see vcn_plugin.benchmark.style)
    min_face_px: float = 48.0  #: smallest face-box width on screen (about 32 for the hard preset)
    max_face_px: float | None = None  #: largest face-box width; default 0.3 * height
    max_rotation_deg: float = 8.0  #: in-plane rotation, +-
    turn_prob: float = 0.3  #: share of appearances with a head turn drifting during the shot
    max_turn: float = 0.6  #: strength of the simulated head turn (0..1)
    max_zoom: float = 1.15  #: camera zoom range 1..max_zoom
    max_pan: float = 0.06  #: camera pan, fraction of the frame width
    colour_temperature: float = 0.12  #: red/blue gain change, +-
    brightness: tuple[float, float] = (0.75, 1.15)
    blur_prob: float = 0.2  #: share of shots blurred (half Gaussian, half motion blur)
    occlusion_prob: float = 0.15  #: share of shots with an occluder passing over a face
    leave_prob: float = 0.15  #: share of shots where a character leaves (and may re-enter) the frame
    extra_prob: float = 0.2  #: share of shots with an unlabelled extra (distractor) in the background
    min_visible: float = 0.5  #: faces less visible than this (off-screen or occluded) get no box
    photos_per_identity: int = 8  #: photos considered per identity (evenly spread over its folder)
    n_locations: int = 4  #: background locations per episode
    #: consecutive shots per scene: one location, and each character keeps one photo through the
    #: scene (one session, as a film keeps make-up and light within a scene); photos change
    #: between scenes. (1, 1): every shot its own scene, so a new photo in every shot.
    shots_per_scene: tuple[int, int] = (1, 1)
    backgrounds_dir: str | None = None  #: face-free background photos; None = generated textures
    #: within-track change. ``realistic``: a track's face changes as in real footage (morph into a
    #: second photo of the person, expression, head tilt, light drift; see
    #: :mod:`vcn_plugin.benchmark.appearance`), calibrated so the median within-track distance of
    #: stage-1 tracks lies in the range of real clips (``benchmarks/track_variation.py``).
    #: ``static``: one still photo per track, byte-identical to the builds before this option.
    variation: str = "realistic"
    static_share: float = 0.15  #: realistic: share of principal tracks that do not change (still close-ups)
    morph_prob: float = 0.8  #: realistic: share of changing tracks that morph into another photo of the person
    expression: float = 1.0  #: realistic: strength of expression changes (smile, talking, brows), 0..1
    max_pitch: float = 0.4  #: realistic: largest vertical head tilt, 0..1
    light_drift: float = 0.2  #: realistic: largest light-gradient strength across the face, 0..1
    sensor_noise: float = 0.012  #: realistic: std of per-frame camera noise (0..1 intensity units)
    embedding_photos: int = 3  #: photos per identity averaged for look-alike casting
    #: ``episode``: every episode casts its own people. ``series``: the episodes of one build share
    #: one main cast (``n_identities`` people, drawn once, in every episode), each episode showing
    #: its own photos of them (an identity's photos are split between the episodes, so only people
    #: with at least one photo per episode are cast), plus ``series_guests`` people seen in that
    #: episode only: a TV series' main cast and guest stars, for cross-episode linking.
    cast_scope: str = "episode"
    series_guests: tuple[int, int] = (1, 2)  #: series: guest characters per episode (inclusive range)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_identities", "n_shots", "shot_seconds", "brightness", "shots_per_scene"):
            lo, hi = getattr(self, name)
            if lo > hi or lo <= 0:
                raise ValueError(f"{name} must be a (low, high) range with 0 < low <= high, got {(lo, hi)}")
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 64:
            raise ValueError(f"width and height must be even and >= 64 (H.264 yuv420p), got {self.width}x{self.height}")
        if self.cast_mode not in CAST_MODES:
            raise ValueError(f"cast_mode must be one of {CAST_MODES}, got {self.cast_mode!r}")
        if self.style_normalization not in STYLE_MODES:
            raise ValueError(f"style_normalization must be one of {STYLE_MODES}, got {self.style_normalization!r}")
        validate_look(self.look, self.look_severity)
        if not 1 <= self.max_characters_per_shot <= 3:
            raise ValueError("max_characters_per_shot must be 1, 2 or 3")
        if self.cast_scope not in CAST_SCOPES:
            raise ValueError(f"cast_scope must be one of {CAST_SCOPES}, got {self.cast_scope!r}")
        if not 0 <= self.series_guests[0] <= self.series_guests[1]:
            raise ValueError(f"series_guests must be a (low, high) range with 0 <= low <= high, got {self.series_guests}")
        if self.variation not in VARIATIONS:
            raise ValueError(f"variation must be one of {VARIATIONS}, got {self.variation!r}")
        for name in ("turn_prob", "blur_prob", "occlusion_prob", "leave_prob", "extra_prob", "min_visible", "max_turn",
                     "static_share", "morph_prob", "expression", "max_pitch", "light_drift", "sensor_noise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.min_face_px < 8 or (self.max_face_px is not None and self.max_face_px < self.min_face_px):
            raise ValueError("need 8 <= min_face_px <= max_face_px")

    @property
    def face_range(self) -> tuple[float, float]:
        hi = self.max_face_px if self.max_face_px is not None else 0.3 * self.height
        return self.min_face_px, max(self.min_face_px, hi)

    @classmethod
    def preset(cls, name: str, **overrides) -> "EpisodeConfig":
        """A named preset (see :data:`PRESETS`) with ``overrides`` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return replace(cls(**PRESETS[name]), **overrides)


VARIATIONS = ("realistic", "static")
CAST_SCOPES = ("episode", "series")
#: the random stream of a series' shared cast (episode streams are ``[seed, episode, ...]``)
SERIES_STREAM = 2**32 - 1

#: ``default``: this class's defaults (realistic within-track change). ``static``: the default
#: episode with one still photo per track (the builds before the variation option). ``paper``:
#: the benchmark issue's sizes (20-40 shots of 1.5-6 s). ``hard``: 20 look-alike people, faces down to 32 px, more turns/blur/occlusion
#: (use with ../shared/data/lfw). ``720p``: paper sizes at 1280x720. ``series``: episodes sharing a
#: main cast of 6 with 1-2 guests each, scenes of 1-3 shots. ``quick``: CI smoke test.
PRESETS: dict[str, dict] = {
    "default": {},
    "static": {"variation": "static"},
    "paper": {"n_shots": (20, 40), "shot_seconds": (1.5, 6.0)},
    "hard": {
        "n_identities": (20, 20), "n_shots": (24, 32), "shot_seconds": (1.5, 4.0), "cast_mode": "lookalike",
        "min_face_px": 32.0, "turn_prob": 0.5, "blur_prob": 0.3, "occlusion_prob": 0.25, "leave_prob": 0.25, "extra_prob": 0.3,
    },
    "720p": {"n_shots": (20, 40), "shot_seconds": (1.5, 6.0), "width": 1280, "height": 720, "min_face_px": 64.0},
    "series": {"cast_scope": "series", "n_identities": (6, 6), "series_guests": (1, 2), "shots_per_scene": (1, 3)},
    "quick": {"n_identities": (3, 4), "n_shots": (4, 4), "shot_seconds": (1.0, 1.5), "width": 320, "height": 180, "min_face_px": 44.0},
}  # fmt: skip


@dataclass
class EpisodeRecord:
    """Statistics of one built episode (one entry of the manifest)."""

    video: str
    annotation: str
    seed: list[int]
    identities: list[str]
    n_identities: int
    n_shots: int
    n_frames: int
    n_tracks: int
    n_faces: int
    n_distractor_tracks: int
    n_distractor_faces: int
    style: str
    look: str
    look_severity: int
    cast_mode: str
    mean_cast_distance: float | None
    knobs: dict
    backgrounds: list[str]
    seconds: float
    scenes: list[int] = field(default_factory=list)  #: scene index of each shot
    photos: list[list[str]] = field(default_factory=list)  #: per shot, the photo file shown for each character
    guests: list[str] = field(default_factory=list)  #: series: the identities seen in this episode only


@dataclass
class Manifest:
    """``manifest.json`` of a benchmark directory."""

    faces_dir: str
    config: dict
    episodes: list[EpisodeRecord] = field(default_factory=list)
    skipped_photos: list[str] = field(default_factory=list)
    backgrounds: str = "generated textures (smooth-noise walls, gradients, rectangles)"

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        d = json.loads(Path(path).read_text())
        known = {f.name for f in fields(EpisodeRecord)}
        episodes = [EpisodeRecord(**{k: v for k, v in e.items() if k in known}) for e in d.get("episodes", [])]
        return cls(d["faces_dir"], d["config"], episodes, d.get("skipped_photos", []), d.get("backgrounds", ""))


# ------------------------------------------------------------------ casting


@dataclass
class _Pool:
    """Everything an episode draws from, shared across episodes of one build."""

    identities: dict[str, list[Path]]
    box_cache: FaceBoxCache
    skipped: list[str]
    embeddings: dict[str, np.ndarray] | None
    background_photos: list[Path] | None
    sources: dict[str, list[SourcePhoto]] = field(default_factory=dict)
    n_episodes: int = 1
    series_cast: list[str] | None = None  #: cast_scope "series": the main cast of every episode

    def usable(self, identity: str, per_identity: int) -> list[SourcePhoto]:
        if identity not in self.sources:
            photos = self.identities[identity]
            if len(photos) > per_identity:
                photos = [photos[i] for i in np.linspace(0, len(photos) - 1, per_identity).round().astype(int)]
            self.sources[identity] = find_sources(identity, photos, self.box_cache, self.skipped)
        return self.sources[identity]


def _choose_cast(pool: _Pool, config: EpisodeConfig, rng: np.random.Generator) -> list[str]:
    lo, hi = config.n_identities
    size = int(rng.integers(lo, hi + 1))
    if config.cast_mode == "lookalike":
        cast = lookalike_cast(pool.embeddings, size, rng)
        return [n for n in cast if pool.usable(n, config.photos_per_identity)]
    cast = []
    for i in rng.permutation(len(pool.identities)):
        name = sorted(pool.identities)[i]
        if pool.usable(name, config.photos_per_identity):
            cast.append(name)
        if len(cast) == size:
            return cast
    raise ValueError(f"only {len(cast)} identities have a detectable face; cast of {size} requested (lower n_identities)")


def _choose_series_cast(pool: _Pool, config: EpisodeConfig) -> list[str]:
    """The main cast shared by every episode: people with at least one usable photo per episode."""
    rng = np.random.default_rng([config.seed, SERIES_STREAM])
    size = int(rng.integers(config.n_identities[0], config.n_identities[1] + 1))

    def enough(name: str) -> bool:
        return len(pool.usable(name, config.photos_per_identity)) >= pool.n_episodes

    if config.cast_mode == "lookalike":
        # folder sizes are a cheap first filter; a chosen person whose photos lack faces is replaced
        candidates = {n: e for n, e in pool.embeddings.items() if len(pool.identities.get(n, ())) >= pool.n_episodes}
        while len(candidates) >= size:
            cast = lookalike_cast(candidates, size, np.random.default_rng([config.seed, SERIES_STREAM]))
            failed = [n for n in cast if not enough(n)]
            if not failed:
                return cast
            for n in failed:
                candidates.pop(n)
        found = len(candidates)
    else:
        names = sorted(pool.identities)
        cast = []
        for i in rng.permutation(len(names)):
            if enough(names[i]):
                cast.append(names[i])
            if len(cast) == size:
                return cast
        found = len(cast)
    raise ValueError(
        f"a series of {pool.n_episodes} episodes needs people with >= {pool.n_episodes} photos with a detectable "
        f"face (one per episode); only {found} of the {size} requested have them"
    )


def _series_guests(pool: _Pool, config: EpisodeConfig, rng: np.random.Generator) -> list[str]:
    """This episode's guest characters: people outside the series cast, drawn per episode."""
    lo, hi = config.series_guests
    n = int(rng.integers(lo, hi + 1))
    names = sorted(set(pool.identities) - set(pool.series_cast or ()))
    guests: list[str] = []
    for i in rng.permutation(len(names)):
        if len(guests) == n:
            break
        if pool.usable(names[i], config.photos_per_identity):
            guests.append(names[i])
    if len(guests) < n:
        raise ValueError(f"{n} guest(s) requested but only {len(guests)} people outside the series cast have a detectable face")
    return guests


def _episode_photos(pool: _Pool, config: EpisodeConfig, name: str, index: int) -> list[SourcePhoto]:
    """The photos an episode may show of ``name``: in a series, the main cast's photos are split
    between the episodes (every ``n_episodes``-th photo), so no two episodes share one."""
    photos = pool.usable(name, config.photos_per_identity)
    if pool.series_cast and name in pool.series_cast:
        return photos[index % pool.n_episodes::pool.n_episodes]
    return photos


def _assign_characters(cast: list[str], n_shots: int, config: EpisodeConfig, rng: np.random.Generator) -> list[list[str]]:
    """Characters per shot: every identity in >= 2 shots (balanced first), leads more often after."""
    k_max = min(config.max_characters_per_shot, len(cast))
    probs = np.array([0.45, 0.35, 0.2][:k_max])
    counts = list(rng.choice(np.arange(1, k_max + 1), size=n_shots, p=probs / probs.sum()))
    while sum(counts) < 2 * len(cast):
        room = [i for i, c in enumerate(counts) if c < k_max]
        if not room:
            raise ValueError(
                f"{n_shots} shots of <= {k_max} characters cannot show {len(cast)} identities twice each; "
                "raise n_shots or lower n_identities"
            )
        counts[int(rng.choice(room))] += 1
    lead_weight = 1.0 / np.arange(1, len(cast) + 1) ** 0.7
    seen = np.zeros(len(cast), int)
    shots = []
    for k in counts:
        if seen.min() < 2:
            order = np.lexsort((rng.random(len(cast)), seen))[:k]
        else:
            order = rng.choice(len(cast), size=k, replace=False, p=lead_weight / lead_weight.sum())
        seen[order] += 1
        shots.append([cast[i] for i in order])
    return shots


# ------------------------------------------------------------------ shot planning


def _path(rng, start, end, leave: str | None, exit_x: float) -> Keyframes:
    """Face centre keyframes; ``leave`` in {None, "exit", "enter", "reenter"} moves it off-screen."""
    start, end = list(start), list(end)
    out_start, out_end = [exit_x, start[1]], [exit_x, end[1]]
    if leave == "exit":
        return Keyframes([0.0, 0.3, 0.8, 1.0], [start, start, out_end, out_end])
    if leave == "enter":
        return Keyframes([0.0, 0.2, 0.7, 1.0], [out_start, out_start, end, end])
    if leave == "reenter":
        return Keyframes([0.0, 0.3, 0.45, 0.55, 0.7, 1.0], [start, out_start, out_start, out_end, out_end, end])
    return Keyframes.linear(start, end)


def _plan_appearance(rng, config: EpisodeConfig, label: str, cutout, slot: tuple[float, float], leave: str | None) -> Appearance:
    W, H = config.width, config.height
    lo, hi = config.face_range
    hi = max(lo, min(hi, 0.42 * (slot[1] - slot[0])))
    width0 = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    width1 = float(np.clip(width0 * rng.uniform(0.85, 1.2), lo, max(hi, width0)))
    cx = (slot[0] + slot[1]) / 2 + rng.uniform(-0.1, 0.1) * (slot[1] - slot[0])
    start = [cx, H * rng.uniform(0.32, 0.5)]
    end = [cx + rng.uniform(-0.06, 0.06) * W, start[1] + rng.uniform(-0.04, 0.04) * H]
    exit_x = -1.6 * width0 if cx < W / 2 else W + 1.6 * width0
    r = config.max_rotation_deg
    if rng.random() < config.turn_prob:
        yaw = Keyframes.linear(rng.uniform(-0.3, 0.3) * config.max_turn, rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * config.max_turn)
    else:
        yaw = Keyframes.linear(*(rng.uniform(-0.1, 0.1, 2) * config.max_turn))
    return Appearance(
        label=label,
        cutout=cutout,
        centre=_path(rng, start, end, leave, exit_x),
        face_width=Keyframes.linear(width0, width1),
        rotation=Keyframes.linear(rng.uniform(-r, r), rng.uniform(-r, r)),
        yaw=yaw,
        torso_colour=tuple(float(v) for v in rng.uniform(0.08, 0.75, 3)),
    )


def _plan_occluder(rng, app: Appearance) -> Occluder:
    (x0, y0), (x1, _) = app.centre.at(0.0), app.centre.at(1.0)
    w = float(app.face_width.values[0][0])
    colour = tuple(float(v) for v in rng.uniform(0.05, 0.35, 3))
    if rng.random() < 0.5:  # a pillar sliding across the face
        side = rng.choice([-1, 1])
        start, end = [x0 + side * 1.6 * w, 0.0], [x1 - side * 1.6 * w, 0.0]
        return Occluder(Keyframes.linear(start, end), (rng.uniform(0.5, 0.9) * w, 10_000.0), colour)
    # a foreground shoulder rising over the lower face, then sinking
    low, high = y0 + 2.2 * w, y0 + 0.9 * w
    return Occluder(Keyframes([0.0, 0.4, 0.6, 1.0], [[x0, low], [x0, high], [x1, high], [x1, low]]), (2.6 * w, 1.6 * w), colour)


def _plan_shot(rng, config: EpisodeConfig, first_frame: int, n_frames: int, background, cutouts, extra_cutout) -> tuple[ShotPlan, dict]:
    """Sample one shot's camera, colour, blur, characters, occluder, extra; also its knob flags."""
    W, H = config.width, config.height
    k = len(cutouts)
    slots = [(i * W / k, (i + 1) * W / k) for i in range(k)]
    order = rng.permutation(k)
    leaving = int(rng.integers(k)) if rng.random() < config.leave_prob else -1
    leave_kind = str(rng.choice(["exit", "enter", "reenter"])) if leaving >= 0 else None
    apps = [
        _plan_appearance(rng, config, label, cut, slots[order[i]], leave_kind if i == leaving else None)
        for i, (label, cut) in enumerate(cutouts)
    ]
    knobs = {"leaving": leave_kind, "turning": int(sum(abs(a.yaw.values[1][0]) >= 0.5 * config.max_turn > 0 for a in apps))}
    if extra_cutout is not None:
        extra = _plan_appearance(rng, replace(config, max_face_px=1.3 * config.min_face_px), "extra", extra_cutout, (0, W), None)
        start = [rng.uniform(0.1, 0.9) * W, rng.uniform(0.25, 0.4) * H]
        extra.centre = Keyframes.linear(start, [start[0] + rng.uniform(-0.03, 0.03) * W, start[1]])
        extra.defocus = float(rng.uniform(3.0, 6.0))
        apps.insert(0, extra)  # behind the principals
    occluders = [_plan_occluder(rng, apps[-1 - int(rng.integers(k))])] if rng.random() < config.occlusion_prob else []
    blur = ("none", 0.0, 0.0)
    if rng.random() < config.blur_prob:
        s = W / 640
        blur = ("gaussian", rng.uniform(0.8, 1.6) * s, 0.0) if rng.random() < 0.5 else ("motion", rng.uniform(5, 11) * s, rng.uniform(0, 180))
    t = config.colour_temperature
    gains = [np.array([1 + tau, 1.0, 1 - tau]) * rng.uniform(*config.brightness) for tau in rng.uniform(-t, t, 2)]
    pan = config.max_pan * W
    plan = ShotPlan(
        first_frame=first_frame,
        n_frames=n_frames,
        width=W,
        height=H,
        background=background,
        zoom=Keyframes.linear(*rng.uniform(1.0, config.max_zoom, 2)),
        pan=Keyframes.linear(rng.uniform(-pan, pan, 2), rng.uniform(-pan, pan, 2)),
        gains=Keyframes.linear(gains[0], gains[1]),
        blur=blur,
        light_angle=float(rng.uniform(0, 2 * np.pi)),
        appearances=apps,
        occluders=occluders,
        min_visible=config.min_visible,
    )
    knobs.update(blur=blur[0], occluded=bool(occluders), extra=extra_cutout is not None)
    return plan, knobs


# ------------------------------------------------------------------ episodes


def _tracks_from_runs(per_frame: list[tuple[int, tuple | None]], label: str, next_id: int) -> list[TrackAnnotation]:
    """One track per continuous run of visible frames."""
    tracks, current = [], None
    for frame, box in per_frame:
        if box is None:
            current = None
            continue
        if current is None:
            current = TrackAnnotation(next_id + len(tracks), label, [])
            tracks.append(current)
        current.frames.append(BoxAnnotation(frame, tuple(round(v, 2) for v in box)))
    return tracks


def build_episode(pool: _Pool, config: EpisodeConfig, index: int, out_dir: Path) -> EpisodeRecord:
    """Plan, render and write one episode; return its statistics."""
    started = time.perf_counter()
    seed = [config.seed, index]
    rng = np.random.default_rng(seed)
    series = pool.series_cast is not None
    guests = _series_guests(pool, config, rng) if series else []
    cast = list(pool.series_cast) + guests if series else _choose_cast(pool, config, rng)
    extras_pool = [n for n in sorted(pool.identities) if n not in cast]
    n_shots = int(rng.integers(config.n_shots[0], config.n_shots[1] + 1))
    lengths = [max(2, int(round(rng.uniform(*config.shot_seconds) * config.fps))) for _ in range(n_shots)]
    characters = _assign_characters(cast, n_shots, config, rng)
    own = {n: _episode_photos(pool, config, n, index) for n in cast}
    photo_cycle = {n: [own[n][i] for i in rng.permutation(len(own[n]))] for n in cast}
    used = {n: 0 for n in cast}
    scene_of_shot = _scenes(n_shots, config.shots_per_scene, np.random.default_rng(seed + [0, 3]))
    scene_locations = [int(rng.integers(config.n_locations)) for _ in range(scene_of_shot[-1] + 1)]
    locations = [scene_locations[scene] for scene in scene_of_shot]
    scene_photo: dict[tuple[str, int], SourcePhoto] = {}
    shot_photos: list[list[str]] = []

    extra_flags = rng.random(n_shots) < config.extra_prob
    extra_sources = _pick_extras(pool, config, extras_pool, int(extra_flags.sum()), rng)
    style = resolve_style(
        config.style_normalization,
        any(s.grayscale for n in cast for s in photo_cycle[n]) or any(s.grayscale for s in extra_sources),
        config.look_severity,
    )
    stem = f"ep{index:03d}"
    annotation = VideoAnnotation(f"{stem}.mp4", config.fps, config.width, config.height, 0)
    backgrounds, knob_log, next_id, frame_no = {}, [], 0, 1
    with H264Writer(out_dir / "videos" / f"{stem}.mp4", config.width, config.height, config.fps) as writer:
        for s in range(n_shots):
            cutouts = []
            for name in characters[s]:
                if (name, scene_of_shot[s]) not in scene_photo:
                    photos = photo_cycle[name]
                    scene_photo[name, scene_of_shot[s]] = photos[used[name] % len(photos)]
                    used[name] += 1
                cutouts.append((name, normalise_cutout(make_cutout(scene_photo[name, scene_of_shot[s]]), style)))
            shot_photos.append([f"{name}/{scene_photo[name, scene_of_shot[s]].path.name}" for name in characters[s]])
            extra = normalise_cutout(make_cutout(extra_sources.pop()), style) if extra_flags[s] and extra_sources else None
            loc = locations[s]
            if loc not in backgrounds:
                backgrounds[loc] = _background(pool, config, seed, loc)
            plan, knobs = _plan_shot(np.random.default_rng(seed + [s, 1]), config, frame_no, lengths[s], backgrounds[loc][0], cutouts, extra)
            if config.variation == "realistic":
                partners = {name: _partners(photo_cycle[name], scene_photo[name, scene_of_shot[s]], style) for name in characters[s]}
                knobs["changing"] = _plan_changes(np.random.default_rng(seed + [s, 4]), config, plan, partners)
                plan.sensor_noise = config.sensor_noise
            knob_log.append(knobs)
            per_app: list[list] = [[] for _ in plan.appearances]
            for i, (frame, faces) in enumerate(render_shot(plan, config.look, config.look_severity, tuple(seed))):
                writer.write(frame)
                for f in faces:
                    per_app[f.appearance].append((frame_no + i, f.box))
            for app, per_frame in zip(plan.appearances, per_app):
                tracks = _tracks_from_runs(per_frame, app.label, next_id)
                next_id += len(tracks)
                (annotation.distractors if app.label == "extra" else annotation.tracks).extend(tracks)
            annotation.shots.append((frame_no, frame_no + lengths[s] - 1))
            frame_no += lengths[s]
    annotation.num_frames = frame_no - 1
    save_annotation(annotation, out_dir / "annotations" / f"{stem}.json")
    return EpisodeRecord(
        video=f"videos/{stem}.mp4",
        annotation=f"annotations/{stem}.json",
        seed=seed,
        identities=sorted(cast),
        n_identities=len(cast),
        n_shots=n_shots,
        n_frames=annotation.num_frames,
        n_tracks=len(annotation.tracks),
        n_faces=sum(len(t.frames) for t in annotation.tracks),
        n_distractor_tracks=len(annotation.distractors),
        n_distractor_faces=sum(len(t.frames) for t in annotation.distractors),
        style=style,
        look=config.look,
        look_severity=config.look_severity,
        cast_mode=config.cast_mode,
        mean_cast_distance=mean_pairwise_distance(pool.embeddings, cast) if pool.embeddings and all(n in pool.embeddings for n in cast) and len(cast) > 1 else None,
        knobs=_summarise_knobs(knob_log),
        backgrounds=[backgrounds[loc][1] for loc in locations],
        seconds=round(time.perf_counter() - started, 2),
        scenes=scene_of_shot,
        photos=shot_photos,
        guests=sorted(guests),
    )


def _partners(photos: list[SourcePhoto], shown: SourcePhoto, style: str, n: int = 2) -> tuple[Cutout, ...]:
    """Up to ``n`` photos after ``shown`` in the character's rotation (those a track morphs through)."""
    start = photos.index(shown)
    others = [photos[(start + k) % len(photos)] for k in range(1, min(n, len(photos) - 1) + 1)]
    return tuple(normalise_cutout(make_cutout(p), style) for p in others)


def _plan_changes(rng: np.random.Generator, config: EpisodeConfig, plan: ShotPlan, partners: dict[str, tuple[Cutout, ...]]) -> int:
    """Give principal tracks their within-track change (realistic variation); returns how many change.

    Drawn from their own random stream, so the rest of the episode is the same as a static build.
    """
    changing = 0
    e, p, light = config.expression, config.max_pitch, config.light_drift
    for app in plan.appearances:
        if app.label == "extra" or rng.random() < config.static_share:
            continue
        through = partners.get(app.label, ()) if rng.random() < config.morph_prob else ()
        talking = rng.random() < 0.7
        change = Change(
            partners=through,
            morph=(0.0, float(rng.uniform(0.8, 1.0) * len(through))),
            smile=tuple(float(v) for v in rng.uniform(-0.3, 1.0, 2) * e),
            mouth_open=(0.0, float(rng.uniform(0.3, 1.0) * e), float(rng.uniform(0.0, 0.5) * e)) if talking else (0.0, 0.0, 0.0),
            brows=(0.0, float(rng.uniform(-1.0, 1.0) * e)),
        )
        app.states = track_states(app.cutout, change)
        app.pitch = Keyframes.linear(rng.uniform(-0.5, 0.5) * p, rng.uniform(-1.0, 1.0) * p)
        angle = float(rng.uniform(0, 2 * np.pi))
        app.light = Keyframes.linear([angle, rng.uniform(0, 1) * light], [angle + rng.uniform(-1, 1), rng.uniform(0, 1) * light])
        changing += 1
    return changing


def _scenes(n_shots: int, shots_per_scene: tuple[int, int], rng: np.random.Generator) -> list[int]:
    """Scene index of each shot: consecutive runs of ``shots_per_scene`` (inclusive range) shots."""
    lo, hi = shots_per_scene
    scenes: list[int] = []
    scene = 0
    while len(scenes) < n_shots:
        scenes += [scene] * (lo if lo == hi else int(rng.integers(lo, hi + 1)))
        scene += 1
    return scenes[:n_shots]


def _pick_extras(pool: _Pool, config: EpisodeConfig, candidates: list[str], n: int, rng) -> list[SourcePhoto]:
    """``n`` source photos of people outside the cast (one photo per person while they last)."""
    picked: list[SourcePhoto] = []
    for i in rng.permutation(len(candidates)):
        if len(picked) == n:
            break
        sources = pool.usable(candidates[i], config.photos_per_identity)
        if sources:
            picked.append(sources[int(rng.integers(len(sources)))])
    return picked


def _background(pool: _Pool, config: EpisodeConfig, seed: list[int], loc: int) -> tuple[np.ndarray, str]:
    h, w = int(config.height * 1.35), int(config.width * 1.35)
    if pool.background_photos:
        path = pool.background_photos[int(np.random.default_rng(seed + [loc, 2]).integers(len(pool.background_photos)))]
        return photo_background(path, h, w), f"photo:{path.name}"
    return generated_background(np.random.default_rng(seed + [loc, 2]), h, w), f"generated:{loc}"


def _summarise_knobs(knob_log: list[dict]) -> dict:
    return {
        "gaussian_blur_shots": sum(k["blur"] == "gaussian" for k in knob_log),
        "motion_blur_shots": sum(k["blur"] == "motion" for k in knob_log),
        "occluded_shots": sum(k["occluded"] for k in knob_log),
        "leaving_shots": sum(k["leaving"] is not None for k in knob_log),
        "reentering_shots": sum(k["leaving"] == "reenter" for k in knob_log),
        "turning_appearances": sum(k["turning"] for k in knob_log),
        "extra_shots": sum(k["extra"] for k in knob_log),
        "changing_appearances": sum(k.get("changing", 0) for k in knob_log),
    }


def build_benchmark(
    faces_dir: str | Path,
    out_dir: str | Path,
    n_episodes: int = 1,
    config: EpisodeConfig | None = None,
    progress: Progress | None = None,
    cache_dir: str | Path | None = None,
) -> Manifest:
    """Build ``n_episodes`` episodes from ``faces_dir`` (identity subfolders) into ``out_dir``.

    ``progress(done, total, message)`` is called after each episode. Returns the manifest, which
    is also written to ``out_dir/manifest.json``. ``cache_dir`` (default ``out_dir/.cache``) keeps
    the detected face boxes and look-alike embeddings of the source photos; benchmarks built from
    one faces folder can share it (the sweep does: computing the embeddings of 367 LFW people
    takes minutes).
    """
    config = config or EpisodeConfig()
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out / ".cache"
    identities = list_identities(faces_dir)
    skipped: list[str] = []
    background_photos = list_background_photos(config.backgrounds_dir, skipped) if config.backgrounds_dir else None
    embeddings = None
    if config.cast_mode == "lookalike":
        embeddings = identity_embeddings(
            identities, cache / "embeddings.json", photos_per_identity=config.embedding_photos,
            progress=(lambda msg: progress(0, n_episodes, msg)) if progress else None,
        )  # fmt: skip
    pool = _Pool(identities, FaceBoxCache(cache / "face_boxes.json"), skipped, embeddings, background_photos,
                 n_episodes=n_episodes)
    if config.cast_scope == "series":
        pool.series_cast = _choose_series_cast(pool, config)
    manifest = Manifest(str(Path(faces_dir).resolve()), asdict(config))
    if background_photos:
        manifest.backgrounds = f"face-free photos from {config.backgrounds_dir}"
    for index in range(n_episodes):
        record = build_episode(pool, config, index, out)
        manifest.episodes.append(record)
        pool.box_cache.save()
        if progress:
            progress(index + 1, n_episodes, f"{record.video}: {record.n_tracks} tracks, {record.n_frames} frames, {record.seconds}s")
    manifest.skipped_photos = sorted(set(skipped))
    manifest.save(out / "manifest.json")
    return manifest
