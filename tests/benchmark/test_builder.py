"""Episode builder: determinism, exact ground truth, video format, casting (real photos)."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vcn_plugin.benchmark import EpisodeConfig, Manifest, build_benchmark
from vcn_plugin.benchmark.builder import _tracks_from_runs
from vcn_plugin.benchmark.casting import identity_embeddings, lookalike_cast, mean_pairwise_distance, random_cast
from vcn_plugin.benchmark.checks import detector_agreement
from vcn_plugin.benchmark.render import Appearance, Keyframes, Occluder, ShotPlan, render_shot
from vcn_plugin.benchmark.sources import Cutout
from vcn_plugin.core.video import probe_stream as probe_video
from vcn_plugin.core.video import read_frames
from vcn_plugin.evaluation.annotations import load_annotation

#: small real identities (LFW 250x250 colour, BBT 150x150 grayscale, dlib chips)
SMALL_CAST = ["lfw_George_W_Bush", "lfw_Vladimir_Putin", "lfw_Jacques_Chirac", "bbt_amy", "bbt_raj", "dlib_John_Salley"]
TINY = EpisodeConfig(
    n_identities=(3, 3), n_shots=(3, 3), shot_seconds=(1.0, 1.0), width=320, height=180,
    min_face_px=50.0, max_face_px=70.0, photos_per_identity=3, seed=3,
)  # fmt: skip


@pytest.fixture(scope="module")
def faces_dir(shared_data: Path, tmp_path_factory) -> Path:
    """A folder of symlinks to a few identities of ../shared/data/faces (no copies)."""
    root = tmp_path_factory.mktemp("faces")
    for name in SMALL_CAST:
        (root / name).symlink_to(shared_data / "faces" / name)
    return root


@pytest.fixture(scope="module")
def built(faces_dir: Path, tmp_path_factory) -> tuple[Path, Path, Manifest]:
    """The same tiny episode built twice into two directories (the second reuses the box cache)."""
    first = tmp_path_factory.mktemp("bench_a")
    manifest = build_benchmark(faces_dir, first, 1, TINY)
    second = tmp_path_factory.mktemp("bench_b")
    shutil.copytree(first / ".cache", second / ".cache")
    build_benchmark(faces_dir, second, 1, TINY)
    return first, second, manifest


def test_same_seed_gives_identical_annotation_and_frames(built):
    first, second, _ = built
    assert (first / "annotations/ep000.json").read_text() == (second / "annotations/ep000.json").read_text()
    a = read_frames(first / "videos/ep000.mp4", {1, 2, 30})
    b = read_frames(second / "videos/ep000.mp4", {1, 2, 30})
    assert all(np.array_equal(a[k], b[k]) for k in (1, 2, 30))


def test_other_seed_gives_other_episode(faces_dir, built, tmp_path):
    first, _, _ = built
    shutil.copytree(first / ".cache", tmp_path / ".cache")
    build_benchmark(faces_dir, tmp_path, 1, replace(TINY, seed=4))
    assert (tmp_path / "annotations/ep000.json").read_text() != (first / "annotations/ep000.json").read_text()


def test_video_is_h264_yuv420p_and_matches_annotation(built):
    first, _, manifest = built
    ann = load_annotation(first / "annotations/ep000.json")
    info = probe_video(first / "videos/ep000.mp4")
    assert (info["codec_name"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert (info["width"], info["height"]) == (ann.width, ann.height) == (320, 180)
    assert info["nb_read_frames"] == ann.num_frames == 75
    # shots tile the video with hard cuts, 1-based inclusive
    assert ann.shots[0][0] == 1 and ann.shots[-1][1] == ann.num_frames
    assert all(b[0] == a[1] + 1 for a, b in zip(ann.shots, ann.shots[1:]))


def test_annotation_is_consistent_with_manifest(built):
    first, _, manifest = built
    ann = load_annotation(first / "annotations/ep000.json")
    record = manifest.episodes[0]
    assert Manifest.load(first / "manifest.json").episodes[0] == record
    assert record.n_tracks == len(ann.tracks) and record.n_faces == sum(len(t.frames) for t in ann.tracks)
    assert {t.identity for t in ann.tracks} <= set(record.identities) <= set(SMALL_CAST)
    assert all(t.identity == "extra" for t in ann.distractors)
    ids = [t.track_id for t in ann.tracks + ann.distractors]
    assert len(ids) == len(set(ids))
    shot_of = lambda frame: next(i for i, (a, b) in enumerate(ann.shots) if a <= frame <= b)  # noqa: E731
    for t in ann.tracks:
        frames = [f.frame for f in t.frames]
        assert frames == list(range(frames[0], frames[-1] + 1)), "a track is one continuous run"
        assert len({shot_of(f) for f in frames}) == 1, "a track never crosses a cut"
        for f in t.frames:
            x, y, w, h = f.box
            assert 0 <= x and 0 <= y and x + w <= 320.01 and y + h <= 180.01 and w > 0 and h > 0
    assert record.backgrounds and all(b.startswith("generated:") for b in record.backgrounds)
    # the BBT crops are grayscale, so every source is normalised to gray
    if {"bbt_amy", "bbt_raj"} & set(record.identities):
        assert record.style == "gray"


def test_ground_truth_sits_on_detector_boxes(built):
    first, _, _ = built
    a = detector_agreement(first / "videos/ep000.mp4", first / "annotations/ep000.json", every=3)
    print(f"dlib HOG vs GT on rendered frames: mean IoU {a.mean_iou:.3f}, recall {a.recall:.3f} ({a.n_gt} boxes)")
    assert a.n_gt >= 20
    assert a.mean_iou >= 0.6
    assert a.recall >= 0.7


def _plain_cutout() -> Cutout:
    rng = np.random.default_rng(0)
    rgb = rng.random((200, 160, 3)).astype(np.float32)
    alpha = np.zeros((200, 160), np.float32)
    alpha[40:160, 30:130] = 1.0
    return Cutout(rgb, alpha, np.array([40.0, 60.0, 120.0, 150.0]), False)


def _plan(appearance: Appearance, occluders=(), n_frames=11) -> ShotPlan:
    return ShotPlan(
        first_frame=1, n_frames=n_frames, width=320, height=180, background=np.full((200, 360, 3), 0.5, np.float32),
        zoom=Keyframes.linear(1.0, 1.0), pan=Keyframes.linear([0, 0], [0, 0]), gains=Keyframes.linear([1, 1, 1], [1, 1, 1]),
        appearances=[appearance], occluders=list(occluders),
    )  # fmt: skip


def _appearance(centre: Keyframes) -> Appearance:
    return Appearance(
        "a", _plain_cutout(), centre, Keyframes.linear(40.0, 40.0), Keyframes.linear(0.0, 0.0),
        Keyframes.linear(0.0, 0.0), (0.3, 0.3, 0.3),
    )  # fmt: skip


def test_ground_truth_box_is_the_transformed_face_box():
    # face box 80x90 scaled to width 40 -> 40x45, centred at (100, 90)
    frames = list(render_shot(_plan(_appearance(Keyframes.linear([100, 90], [100, 90])))))
    for _, faces in frames:
        x, y, w, h = faces[0].box
        assert (x, y, w, h) == pytest.approx((80.0, 67.5, 40.0, 45.0), abs=1e-6)
        assert faces[0].visible == pytest.approx(1.0)


def test_face_leaving_the_frame_loses_its_box_and_reentry_is_a_new_track():
    path = Keyframes([0.0, 0.3, 0.5, 0.7, 1.0], [[100, 90], [-100, 90], [-100, 90], [100, 90], [100, 90]])
    per_frame = [(i + 1, faces[0].box) for i, (_, faces) in enumerate(render_shot(_plan(_appearance(path), n_frames=21)))]
    visible = [box is not None for _, box in per_frame]
    assert visible[0] and not visible[10] and visible[-1]
    tracks = _tracks_from_runs(per_frame, "a", 7)
    assert [t.track_id for t in tracks] == [7, 8] and all(t.identity == "a" for t in tracks)
    # partly outside: the box is clipped to the frame and dropped under 50 % visibility
    for (_, box), (_, faces) in zip(per_frame, render_shot(_plan(_appearance(path), n_frames=21))):
        if box is not None:
            assert box[0] >= 0 and faces[0].visible >= 0.5


def test_occluded_face_loses_its_box_only_while_covered():
    occluder = Occluder(Keyframes([0.0, 0.4, 0.6, 1.0], [[400, 90], [100, 90], [100, 90], [400, 90]]), (60.0, 10_000.0), (0, 0, 0))
    faces = [faces[0] for _, faces in render_shot(_plan(_appearance(Keyframes.linear([100, 90], [100, 90])), [occluder], n_frames=21))]
    assert faces[0].box is not None and faces[-1].box is not None
    assert faces[10].box is None and faces[10].visible < 0.05


def test_invalid_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="even"):
        EpisodeConfig(width=321)
    with pytest.raises(ValueError, match="cast_mode"):
        EpisodeConfig(cast_mode="similar")
    with pytest.raises(ValueError, match="unknown look"):
        EpisodeConfig(look="sepia")
    with pytest.raises(ValueError, match="n_shots"):
        EpisodeConfig(n_shots=(5, 2))
    with pytest.raises(ValueError, match="unknown preset"):
        EpisodeConfig.preset("huge")
    assert EpisodeConfig.preset("paper").n_shots == (20, 40)


def test_too_few_shots_for_the_cast_is_an_error(faces_dir, tmp_path):
    with pytest.raises(ValueError, match="twice"):
        build_benchmark(faces_dir, tmp_path, 1, replace(TINY, n_identities=(6, 6), n_shots=(1, 1), max_characters_per_shot=2))


def test_missing_faces_dir_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        build_benchmark(tmp_path / "nope", tmp_path / "out", 1, TINY)


def test_lookalike_casts_are_closer_than_random_casts(shared_data: Path, tmp_path):
    lfw = shared_data / "lfw"
    names = sorted(p.name for p in lfw.iterdir() if p.is_dir())[::12][:30]  # a spread-out subset
    identities = {n: sorted((lfw / n).glob("*.jpg")) for n in names}
    embeddings = identity_embeddings(identities, tmp_path / "emb.json", photos_per_identity=2, max_attempts=3)
    assert len(embeddings) >= 20
    assert json.loads((tmp_path / "emb.json").read_text()), "embeddings are cached"
    rng = np.random.default_rng(0)
    pool = sorted(embeddings)
    lookalike = np.mean([mean_pairwise_distance(embeddings, lookalike_cast(embeddings, 6, rng)) for _ in range(10)])
    random = np.mean([mean_pairwise_distance(embeddings, random_cast(pool, 6, rng)) for _ in range(10)])
    print(f"mean inter-identity distance of 6-person casts: look-alike {lookalike:.3f}, random {random:.3f}")
    assert lookalike < random - 0.03
    assert lookalike_cast(embeddings, 6, np.random.default_rng(5)) == lookalike_cast(embeddings, 6, np.random.default_rng(5))


def test_scenes_keep_location_and_photo_per_character(faces_dir, tmp_path, built):
    """Within a scene every shot has one location and each character one photo; photos change
    between scenes; the default (one shot per scene) shows a new photo in every shot."""
    config = replace(TINY, n_shots=(6, 6), shots_per_scene=(3, 3), photos_per_identity=3)
    record = build_benchmark(faces_dir, tmp_path / "scenes", 1, config).episodes[0]
    assert record.scenes == [0, 0, 0, 1, 1, 1]
    for scene in (0, 1):
        shots = [s for s, sc in enumerate(record.scenes) if sc == scene]
        assert len({record.backgrounds[s] for s in shots}) == 1
        photo_of: dict[str, set[str]] = {}
        for s in shots:
            for photo in record.photos[s]:
                photo_of.setdefault(photo.split("/")[0], set()).add(photo)
        assert all(len(p) == 1 for p in photo_of.values())
    across = {}
    for s, shot in enumerate(record.photos):
        for photo in shot:
            across.setdefault(photo.split("/")[0], set()).add((record.scenes[s], photo))
    changed = [name for name, seen in across.items() if len({sc for sc, _ in seen}) == 2]
    assert changed and all(len({p for _, p in across[name]}) == 2 for name in changed)
    default = built[2].episodes[0]
    assert default.scenes == list(range(default.n_shots))
    with pytest.raises(ValueError, match="shots_per_scene"):
        replace(TINY, shots_per_scene=(3, 2))


SERIES = replace(TINY, cast_scope="series", n_identities=(3, 3), series_guests=(1, 1), n_shots=(5, 5),
                 photos_per_identity=4, seed=5)  # fmt: skip


def test_series_episodes_share_a_cast_with_their_own_photos_and_guests(faces_dir, tmp_path, built):
    """A series: one main cast in every episode, shown through photos no other episode shows, plus
    a guest per episode who is in that episode only; the same seed gives the same series."""
    shutil.copytree(built[0] / ".cache", tmp_path / ".cache")
    manifest = build_benchmark(faces_dir, tmp_path, 2, SERIES)
    a, b = manifest.episodes
    main = set(a.identities) - set(a.guests)
    assert len(main) == 3 and main == set(b.identities) - set(b.guests)
    assert len(a.guests) == 1 and len(b.guests) == 1
    assert not set(a.guests) & set(b.identities) and not set(b.guests) & set(a.identities)
    shown = [{p for shot in e.photos for p in shot if p.split("/")[0] in main} for e in (a, b)]
    assert shown[0] and shown[1] and not shown[0] & shown[1], "an episode never shows another episode's photo"
    gt_a = {t.identity for t in load_annotation(tmp_path / a.annotation).tracks}
    gt_b = {t.identity for t in load_annotation(tmp_path / b.annotation).tracks}
    assert main <= gt_a & gt_b, "every main character appears in both episodes"
    assert manifest.config["cast_scope"] == "series"
    again = build_benchmark(faces_dir, tmp_path / "again", 2, SERIES, cache_dir=tmp_path / ".cache")
    assert [e.identities for e in again.episodes] == [a.identities, b.identities]
    assert (tmp_path / "again" / a.annotation).read_text() == (tmp_path / a.annotation).read_text()


def test_series_needs_a_photo_per_episode(faces_dir, tmp_path, built):
    shutil.copytree(built[0] / ".cache", tmp_path / ".cache")
    with pytest.raises(ValueError, match="one per episode"):
        build_benchmark(faces_dir, tmp_path, 5, replace(SERIES, n_identities=(6, 6)))
    with pytest.raises(ValueError, match="cast_scope"):
        replace(TINY, cast_scope="season")


def test_the_cli_offers_every_preset():
    from vcn_plugin.benchmark.builder import PRESETS
    from vcn_plugin.cli.benchmark import PRESET_NAMES

    assert sorted(PRESET_NAMES) == sorted(PRESETS)
