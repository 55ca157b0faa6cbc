"""Identity corrections on real processed data: the sample clip after stage 1 (16 tracks, 6 shots).

Initial identities follow a fixed rule (track index mod 3 -> person_01..03) and track records
carry face crops cut from the video, as the clustering would write them.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.evaluation.test_gt_io import new_name

CROP_EVERY = 8  # frames between the face crops kept per track (for the re-clustering test)


def initial_identity(track: int) -> str:
    return f"person_{track % 3 + 1:02d}"


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """Stage 1 on the sample clip, plus each track's face crops (thumbnail and features)."""
    import cv2
    import fiftyone as fo

    from vcn_plugin.benchmark.sample_clip import make_sample_clip
    from vcn_plugin.core.video import iter_frames
    from vcn_plugin.fo.datasets import import_videos
    from vcn_plugin.stage1.pipeline import Stage1Config
    from vcn_plugin.steps.detect import detect_faces

    root = tmp_path_factory.mktemp("corrections")
    old_dir = fo.config.default_dataset_dir
    fo.config.default_dataset_dir = str(root / "fiftyone")  # thumbnails land here
    path = root / "clip.mp4"
    make_sample_clip(path, shot_seconds=0.8)  # 6 shots of 20 frames: 16 tracks
    dataset = fo.Dataset(new_name())
    import_videos([path], dataset)
    detect_faces(dataset, Stage1Config(detector="dlib-hog", detect_every=2))  # the counts below are dlib-hog's
    sample = dataset.first()
    faces: dict[int, list[tuple[int, object]]] = {}
    for number, frame in sample.frames.items():
        for det in frame.faces.detections:
            faces.setdefault(int(det.index), []).append((number, det))
    wanted = {n for dets in faces.values() for i, (n, _) in enumerate(dets) if i % CROP_EVERY == 0}
    crops: dict[int, list[np.ndarray]] = {}
    for number, image in iter_frames(path):
        if number not in wanted:
            continue
        h, w = image.shape[:2]
        for track, dets in faces.items():
            for n, det in dets[::CROP_EVERY]:
                if n == number:
                    x, y, bw, bh = det.bounding_box
                    crop = image[int(y * h):int((y + bh) * h) + 1, int(x * w):int((x + bw) * w) + 1]
                    crops.setdefault(track, []).append(cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA))
    from vcn_plugin.fo import track_records as tracks

    tracks.write_track_records(dataset, track_records(dataset, faces, crops))
    tracks.set_identities(dataset, {(sample.id, t): initial_identity(t) for t in faces})
    yield dataset, faces, crops
    fo.config.default_dataset_dir = old_dir


def track_records(dataset, faces, crops):
    from vcn_plugin.fo.track_records import TrackRecord

    sample = dataset.first()
    return [
        TrackRecord(
            video_id=sample.id, video_path=sample.filepath, track=track, shot=int(dets[0][1].shot),
            first_frame=dets[0][0], last_frame=dets[-1][0], num_faces=len(dets),
            quality=float(np.mean([d.quality or 0.0 for _, d in dets])), low_quality=False,
            thumbnail=crops[track][0], identity=initial_identity(track),
        )
        for track, dets in sorted(faces.items())
    ]


@pytest.fixture
def dataset(processed):
    """A private copy (video dataset and its track records) with the initial identities."""
    from vcn_plugin.fo import track_records as tracks

    base = processed[0]
    ds = base.clone(new_name())
    records = tracks.get_tracks_dataset(base).clone(tracks.tracks_dataset_name(ds))
    records.info = {**records.info, "vcn_video_dataset": ds.name}
    records.save()
    assert tracks.check_consistency(ds) == []
    return ds


def keys(ds, *indices: int) -> list[tuple[str, int]]:
    vid = ds.first().id
    return [(vid, i) for i in indices]


def identities(ds) -> dict[int, str]:
    """Majority frame label of each track, read straight from the frames."""
    votes: dict[int, Counter] = {}
    for frames_idx, frames_lab in zip(*ds.values(["frames.faces.detections.index", "frames.faces.detections.label"])):
        for idx_list, lab_list in zip(frames_idx, frames_lab):
            for idx, lab in zip(idx_list or [], lab_list or []):
                votes.setdefault(idx, Counter())[lab] += 1
    return {t: c.most_common(1)[0][0] for t, c in votes.items()}


def of(ds, name: str) -> list[int]:
    return sorted(t for t, lab in identities(ds).items() if lab == name)


def all_frame_labels(ds) -> list:
    """Every detection's (frame, index, label): undo must restore this exactly."""
    return ds.values("frames.faces.detections.label"), ds.values("frames.faces.detections.index")


def consistent(ds) -> bool:
    from vcn_plugin.fo.track_records import check_consistency

    return check_consistency(ds) == []


def record_labels(ds) -> dict[int, str]:
    from vcn_plugin.fo.track_records import get_tracks_dataset

    tracks, labels = get_tracks_dataset(ds).values(["track", "identity.label"])
    return dict(zip(tracks, labels))


# --------------------------------------------------------------------------- corrections


def test_stage1_gives_the_tracks_this_module_expects(dataset):
    assert len(of(dataset, "person_01")) >= 4 and len(of(dataset, "person_02")) >= 4
    assert len(record_labels(dataset)) == 16


def test_rename_names_every_track_and_logs_it(dataset):
    from vcn_plugin.corrections import correction_log, rename_identity

    tracks = of(dataset, "person_01")
    entry = rename_identity(dataset, "person_01", "Alice")
    assert of(dataset, "Alice") == tracks and of(dataset, "person_01") == []
    assert consistent(dataset) and all(record_labels(dataset)[t] == "Alice" for t in tracks)
    [logged] = correction_log(dataset)
    assert logged.op == "rename" and logged.names == {"old": "person_01", "new": "Alice", "merged": False}
    assert logged.before == {k: "person_01" for k in keys(dataset, *tracks)} == entry.before
    assert set(logged.after.values()) == {"Alice"} and logged.timestamp.endswith("+00:00")


def test_rename_onto_an_existing_name_merges(dataset):
    from vcn_plugin.corrections import rename_identity

    merged = sorted(of(dataset, "person_01") + of(dataset, "person_02"))
    rename_identity(dataset, "person_01", "Alice")
    entry = rename_identity(dataset, "person_02", "Alice")
    assert of(dataset, "Alice") == merged and entry.names["merged"] is True and consistent(dataset)


def test_merge_identities(dataset):
    from vcn_plugin.corrections import get_constraints, merge_identities

    merged = sorted(of(dataset, "person_02") + of(dataset, "person_03"))
    merge_identities(dataset, ["person_02", "person_03"], into="person_02")
    assert of(dataset, "person_02") == merged and of(dataset, "person_03") == [] and consistent(dataset)
    assert get_constraints(dataset).must_link == [keys(dataset, *merged)]
    with pytest.raises(ValueError, match="two identities or more"):
        merge_identities(dataset, ["person_01"], into="Bob")


def test_move_to_existing_and_new_identity(dataset):
    from vcn_plugin.corrections import move_tracks

    p1 = of(dataset, "person_01")
    move_tracks(dataset, keys(dataset, p1[0]), "person_02")
    assert p1[0] in of(dataset, "person_02") and p1[0] not in of(dataset, "person_01")
    move_tracks(dataset, keys(dataset, p1[1], p1[2]), "Carol")
    assert of(dataset, "Carol") == [p1[1], p1[2]] and consistent(dataset)
    with pytest.raises(ValueError, match="already"):
        move_tracks(dataset, keys(dataset, p1[1]), "Carol")
    with pytest.raises(ValueError, match="not found"):
        move_tracks(dataset, keys(dataset, 999), "Carol")
    with pytest.raises(ValueError, match="mark_unknown"):
        move_tracks(dataset, keys(dataset, p1[1]), "Unknown")


def test_split_takes_the_next_free_person_number(dataset):
    from vcn_plugin.corrections import split_tracks

    p2 = of(dataset, "person_02")
    assert split_tracks(dataset, keys(dataset, p2[0], p2[1])) == "person_04"
    assert of(dataset, "person_04") == p2[:2] and of(dataset, "person_02") == p2[2:] and consistent(dataset)
    assert split_tracks(dataset, keys(dataset, p2[2])) == "person_05"


def test_mark_unknown_and_not_face(dataset):
    from vcn_plugin.corrections import NOT_FACE, mark_not_face, mark_unknown

    p3 = of(dataset, "person_03")
    mark_unknown(dataset, keys(dataset, p3[0]))
    mark_not_face(dataset, keys(dataset, p3[1]))
    assert of(dataset, "Unknown") == [p3[0]] and of(dataset, NOT_FACE) == [p3[1]] and consistent(dataset)


# --------------------------------------------------------------------------- undo


def test_undo_walks_back_through_every_step_exactly(dataset):
    import vcn_plugin.corrections as corr
    from vcn_plugin.fo.track_records import frame_identities

    p1, p2 = of(dataset, "person_01"), of(dataset, "person_02")
    initial = frame_identities(dataset)
    states = [(all_frame_labels(dataset), record_labels(dataset))]
    steps = [
        lambda: corr.rename_identity(dataset, "person_01", "Alice"),
        lambda: corr.move_tracks(dataset, keys(dataset, p2[0]), "Alice"),
        lambda: corr.split_tracks(dataset, keys(dataset, p1[0], p1[1])),
        lambda: corr.merge_identities(dataset, ["person_02", "person_03"], "Bob"),
        lambda: corr.mark_not_face(dataset, keys(dataset, p1[2])),
    ]
    for step in steps:
        step()
        states.append((all_frame_labels(dataset), record_labels(dataset)))
    assert len(corr.correction_log(dataset)) == len(steps) and len({str(s) for s in states}) == len(states)
    for expected in reversed(states[:-1]):
        corr.undo_last(dataset)
        assert (all_frame_labels(dataset), record_labels(dataset)) == expected
    assert frame_identities(dataset) == initial and consistent(dataset)
    assert corr.correction_log(dataset) == [] and corr.get_constraints(dataset).must_link == []
    with pytest.raises(ValueError, match="no correction to undo"):
        corr.undo_last(dataset)


def test_undo_restores_a_track_whose_frames_disagreed(dataset):
    from vcn_plugin.corrections import move_tracks, undo_last

    track = of(dataset, "person_01")[0]
    sample = dataset.first()
    number = next(n for n, f in sample.frames.items() if any(d.index == track for d in f.faces.detections))
    for det in sample.frames[number].faces.detections:
        if det.index == track:
            det.label = "person_03"  # one odd frame, as a hand edit would leave
    sample.save()
    before = all_frame_labels(dataset)
    move_tracks(dataset, keys(dataset, track), "Dana")
    labels = {d.label for f in dataset.first().frames.values() for d in f.faces.detections if d.index == track}
    assert labels == {"Dana"}
    undo_last(dataset)
    assert all_frame_labels(dataset) == before


def test_undo_refuses_to_overwrite_newer_labels(dataset):
    from vcn_plugin.corrections import rename_identity, undo_last
    from vcn_plugin.fo.track_records import set_identities

    rename_identity(dataset, "person_01", "Alice")
    set_identities(dataset, {k: "person_07" for k in keys(dataset, *of(dataset, "Alice"))})  # a re-cluster
    with pytest.raises(ValueError, match="changed since"):
        undo_last(dataset)


# --------------------------------------------------------------------------- constraints


def test_constraints_follow_the_corrections(dataset):
    import vcn_plugin.corrections as corr

    p1, p2, p3 = of(dataset, "person_01"), of(dataset, "person_02"), of(dataset, "person_03")
    corr.rename_identity(dataset, "person_01", "Alice")
    corr.move_tracks(dataset, keys(dataset, p2[0]), "Alice")
    corr.split_tracks(dataset, keys(dataset, p3[0], p3[1]))
    corr.mark_not_face(dataset, keys(dataset, p2[1]))
    c = corr.get_constraints(dataset)
    alice = sorted(p1 + [p2[0]])
    assert c.must_link == [keys(dataset, *alice), keys(dataset, p3[0], p3[1])]
    expected_cannot = {(a, b) for a in [p2[0]] for b in p2[1:] if b != p2[1]}  # p2[1] is excluded now
    expected_cannot |= {(a, b) for a in p3[:2] for b in p3[2:]}
    assert {(a[1], b[1]) if a[1] < b[1] else (b[1], a[1]) for a, b in c.cannot_link} == \
        {tuple(sorted(p)) for p in expected_cannot}
    assert c.names == {**{k: "Alice" for k in keys(dataset, *alice)}, keys(dataset, p2[1])[0]: "not_face"}
    assert c.excluded == set(keys(dataset, p2[1]))


def test_a_later_correction_overrides_an_earlier_separation(dataset):
    import vcn_plugin.corrections as corr

    p2 = of(dataset, "person_02")
    corr.move_tracks(dataset, keys(dataset, p2[0]), "person_01")
    assert any(p2[0] in (a[1], b[1]) for a, b in corr.get_constraints(dataset).cannot_link)
    corr.move_tracks(dataset, keys(dataset, p2[0]), "person_02")  # the user changes their mind
    c = corr.get_constraints(dataset)
    partners = {b[1] if a[1] == p2[0] else a[1] for a, b in c.cannot_link if p2[0] in (a[1], b[1])}
    assert partners == set(of(dataset, "person_01"))  # apart from the identity it left, not from its own
    assert keys(dataset, *p2) in c.must_link
    assert not any(keys(dataset, p2[0])[0] in group and len(group) != len(p2) for group in c.must_link)


def test_auto_names_and_the_next_free_number():
    from vcn_plugin.corrections import is_user_name, next_free_name

    assert [is_user_name(n) for n in ("Alice", "person_03", "ep1/person_12", "Unknown", "not_face", "face")] == \
        [True, False, False, False, False, False]
    assert next_free_name(["person_01", "person_09", "Alice", "ep1/person_30"]) == "person_10"
    assert next_free_name(["ep1/person_02", "person_09"], prefix="ep1/") == "ep1/person_03"
    assert next_free_name([]) == "person_01"


def test_names_carried_onto_new_clusters():
    from vcn_plugin.corrections import Constraints, apply_names_after_clustering

    a, b, c, d, e, f = (("v", i) for i in range(6))
    constraints = Constraints(must_link=[[a, b]], names={a: "Alice", b: "Alice", e: "not_face", f: "Zed"},
                              excluded={e})
    labels = {a: "person_02", b: "person_02", c: "person_02", d: "person_01", e: "person_01", f: "Unknown"}
    assert apply_names_after_clustering(constraints, labels) == {
        a: "Alice", b: "Alice", c: "Alice", d: "person_01", e: "not_face", f: "Zed"}
    # two clusters claim Alice: the one with more Alice tracks wins, the other keeps its label
    split = {a: "person_01", b: "person_02", c: "person_02"}
    named = Constraints(names={a: "Alice", b: "Alice", c: "Alice"})
    assert apply_names_after_clustering(named, split) == {a: "person_01", b: "Alice", c: "Alice"}


def test_constraints_and_names_survive_a_real_recluster(dataset, processed):
    """Re-cluster with the adaptive aggregation (cosine on pixel features of the face crops)."""
    import vcn_plugin.corrections as corr
    from vcn_plugin.clustering import CosineStats, aggregate, cluster_names
    from vcn_plugin.fo.track_records import check_consistency, frame_identities, set_identities

    _, faces, crops = processed
    p1, p2 = of(dataset, "person_01"), of(dataset, "person_02")
    corr.rename_identity(dataset, "person_01", "Alice")
    corr.move_tracks(dataset, keys(dataset, p2[0]), "Alice")
    corr.split_tracks(dataset, keys(dataset, p1[0]))
    corr.mark_unknown(dataset, keys(dataset, p2[1]))
    c = corr.get_constraints(dataset)

    order = sorted(frame_identities(dataset))
    index = {k: i for i, k in enumerate(order)}
    features = [crops[t][j].astype(np.float32).ravel() - 100.0 for _, t in order for j in range(len(crops[t]))]
    face_track = np.repeat(np.arange(len(order)), [len(crops[t]) for _, t in order])
    result = aggregate(
        CosineStats.from_faces(np.stack(features), face_track),
        excluded=[index[k] for k in c.excluded],
        must_link=[[index[k] for k in group] for group in c.must_link],
        cannot_link=[(index[a], index[b]) for a, b in c.cannot_link],
    )
    new = dict(zip(order, cluster_names(result.labels)))
    final = corr.apply_names_after_clustering(c, new)
    set_identities(dataset, final)

    alice = keys(dataset, *sorted(set(p1[1:]) | {p2[0]}))
    assert {final[k] for k in alice} == {"Alice"}
    assert all(final[a] != final[b] for a, b in c.cannot_link)
    assert final[keys(dataset, p1[0])[0]] != "Alice" and final[keys(dataset, p2[1])[0]] == "Unknown"
    assert check_consistency(dataset) == [] and frame_identities(dataset) == final


# --------------------------------------------------------------------------- views


def test_identity_view_is_the_face_grid_of_one_identity(dataset):
    from vcn_plugin.corrections import identity_view, rename_identity

    rename_identity(dataset, "person_02", "Bob")
    view = identity_view(dataset, "Bob")
    assert sorted(view.values("track")) == of(dataset, "Bob")
    assert all(Path(p).is_file() for p in view.values("filepath"))
    with pytest.raises(ValueError, match="identities: Bob, person_01, person_03"):
        identity_view(dataset, "Nobody")


def test_least_certain_view_needs_margins_and_sorts_by_them(dataset):
    from vcn_plugin.corrections import least_certain_view, move_tracks
    from vcn_plugin.fo.track_records import get_tracks_dataset

    with pytest.raises(ValueError, match="run clustering first"):
        least_certain_view(dataset)
    tracks = get_tracks_dataset(dataset)
    margins = {t: (float("nan") if t == 5 else ((t * 7) % 16) / 16) for t in tracks.values("track")}
    tracks.set_values("margin", [margins[t] for t in tracks.values("track")])
    ordered = [t for t in sorted(margins, key=lambda t: margins[t]) if t != 5]
    assert least_certain_view(dataset).values("track") == ordered
    move_tracks(dataset, keys(dataset, ordered[0]), "Eve")
    assert least_certain_view(dataset).values("track") == ordered[1:]
    assert least_certain_view(dataset, skip_corrected=False).values("track") == ordered


# --------------------------------------------------------------------------- operators


def test_move_and_undo_operators_on_selected_track_samples(dataset, run_operator):
    import fiftyone as fo

    from vcn_plugin.fo.track_records import get_tracks_dataset

    tracks = get_tracks_dataset(dataset)
    p1 = of(dataset, "person_01")
    picked = [tracks.match(fo.ViewField("track") == t).first().id for t in p1[:2]]
    out = run_operator("move_to_identity", tracks, {"identity": "Frank"}, selected=picked)
    assert out == {"identity": "Frank", "tracks": 2}
    assert of(dataset, "Frank") == p1[:2] and consistent(dataset)
    out = run_operator("undo_correction", tracks, {})
    assert out["undone"].startswith("move(identity=Frank) on 2 track(s)")
    assert of(dataset, "Frank") == [] and of(dataset, "person_01") == p1


def test_rename_and_split_operators_on_selected_frame_labels(dataset, run_operator):
    p2 = of(dataset, "person_02")
    sample = dataset.first()
    selected = [
        {"label_id": det.id, "sample_id": sample.id, "field": "frames.faces", "frame_number": number}
        for number, frame in sample.frames.items() for det in frame.faces.detections if det.index == p2[0]
    ][:3]  # three boxes of one track
    out = run_operator("rename_identity", dataset, {"old": "person_02", "new": "Grace"}, selected_labels=selected)
    assert out == {"identity": "Grace", "tracks": len(p2)} and of(dataset, "Grace") == p2
    out = run_operator("split_identity", dataset, {}, selected_labels=selected)
    assert out == {"identity": "person_04", "tracks": 1} and of(dataset, "person_04") == [p2[0]]
    assert consistent(dataset)


def test_operators_refuse_bad_input_with_what_to_do(dataset, run_operator):
    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError, match="Select one or more tracks first"):
        run_operator("mark_unknown", dataset, {})
    with pytest.raises(ExecutionError, match="No correction to undo"):
        run_operator("undo_correction", dataset, {})
    with pytest.raises(ExecutionError, match="use mark_unknown"):
        run_operator("rename_identity", dataset, {"old": "person_01", "new": "Unknown"})
    assert of(dataset, "Unknown") == []


def test_view_operators_open_their_views(dataset, run_operator):
    from vcn_plugin.fo.track_records import get_tracks_dataset

    out = run_operator("show_identity", dataset, {"identity": "person_03"})
    assert out == {"identity": "person_03", "tracks": len(of(dataset, "person_03"))}
    tracks = get_tracks_dataset(dataset)
    assert "vcn identity" in tracks.list_saved_views()
    assert sorted(tracks.load_saved_view("vcn identity").values("track")) == of(dataset, "person_03")
    tracks.set_values("margin", [float(t) for t in tracks.values("track")])
    assert run_operator("review_uncertain", tracks, {"skip_corrected": True}) == {"tracks": 16}


def test_cli_corrections_with_video_track_names(dataset):
    from pathlib import Path

    from click.testing import CliRunner

    from vcn_plugin.cli.main import main

    run = CliRunner().invoke
    video = Path(dataset.first().filepath).name
    moved = of(dataset, "person_01")[0]
    before = identities(dataset)
    result = run(main, ["identity", "move", "--dataset", dataset.name, f"{video}:{moved}", "--to", "Zoe"])
    assert result.exit_code == 0, result.output
    assert of(dataset, "Zoe") == [moved] and consistent(dataset)
    result = run(main, ["identity", "rename", "--dataset", dataset.name, "person_02", "Bob"])
    assert result.exit_code == 0 and "renamed 'person_02' to 'Bob'" in result.output
    assert "rename" in run(main, ["identity", "log", "--dataset", dataset.name]).output
    for _ in range(2):
        assert run(main, ["identity", "undo", "--dataset", dataset.name]).exit_code == 0
    assert identities(dataset) == before
    result = run(main, ["identity", "move", "--dataset", dataset.name, "nope.mp4:3", "--to", "X"])
    assert result.exit_code != 0 and "expected VIDEO:TRACK" in result.output
    result = run(main, ["identity", "undo", "--dataset", dataset.name])
    assert result.exit_code != 0 and "Error" in result.output
