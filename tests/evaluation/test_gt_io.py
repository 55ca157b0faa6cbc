"""Benchmark ground truth: import into FiftyOne, validation, export, lossless round trip."""
from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

W, H, FPS, N_FRAMES = 160, 120, 25, 20


def _box(track: int, frame: int) -> list[float]:
    """A deterministic moving box with non-integer pixel coordinates."""
    return [10.25 + 30 * track + 0.5 * frame, 8.125 + 5 * track + 0.25 * frame, 24.5 + track, 30.75]


def _track(track_id: int, identity: str, frames: range) -> dict:
    return {"track_id": track_id, "identity": identity, "frames": [{"frame": f, "box": _box(track_id, f)} for f in frames]}


#: video stem -> (shots, tracks, distractors); identities are shared across videos
BENCHMARK = {
    "ep_a": (
        [[1, 11], [12, 20]],
        [_track(0, "alice", range(1, 11)), _track(1, "bob", range(1, 21)), _track(2, "alice", range(12, 21))],
        [_track(3, "extra", range(5, 9))],
    ),
    "ep_b": ([[1, 20]], [_track(0, "bob", range(1, 21)), _track(1, "carol", range(1, 16))], []),
}


def write_video(path: Path, n_frames: int = N_FRAMES, width: int = W, height: int = H) -> None:
    """A short H.264 mp4 of a moving gradient (ffmpeg reading raw RGB from stdin)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[0:height, 0:width]
    frames = [
        np.stack([(xs * 255 // width + 7 * t) % 256, (ys * 255 // height) % 256, np.full_like(xs, 40 * t % 256)], -1)
        for t in range(n_frames)
    ]
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
           "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1",
           "-pix_fmt", "yuv420p", str(path)]  # fmt: skip
    subprocess.run(cmd, input=np.stack(frames).astype(np.uint8).tobytes(), check=True)


def write_benchmark(root: Path) -> Path:
    """The two-video benchmark of :data:`BENCHMARK` under ``root``; returns ``root``."""
    for stem, (shots, tracks, distractors) in BENCHMARK.items():
        write_video(root / "videos" / f"{stem}.mp4")
        annotation = {"video": f"{stem}.mp4", "fps": FPS, "width": W, "height": H, "num_frames": N_FRAMES,
                      "shots": shots, "tracks": tracks, "distractors": distractors}
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{stem}.json").write_text(json.dumps(annotation))
    return root


@pytest.fixture(scope="module")
def bench_template(tmp_path_factory) -> Path:
    return write_benchmark(tmp_path_factory.mktemp("bench"))


@pytest.fixture
def bench(bench_template, tmp_path) -> Path:
    """A private copy of the benchmark that a test may edit."""
    return Path(shutil.copytree(bench_template, tmp_path / "bench"))


@pytest.fixture(scope="module")
def imported(bench_template):
    """A dataset holding the benchmark, shared by tests that must leave it unchanged."""
    from vcn_plugin.evaluation.ground_truth import import_benchmark

    return import_benchmark(bench_template, new_name())


def new_name() -> str:
    return f"vcn-test-{uuid.uuid4().hex[:8]}"


def gt_tracks(dataset, field: str = "gt_faces") -> dict:
    """(video name, track id) -> (label, distractor, {frame: pixel box}) read back from FiftyOne."""
    out: dict = {}
    for sample in dataset:
        for number, frame in sample.frames.items():
            for det in frame[field].detections if frame[field] is not None else []:
                key = (Path(sample.filepath).name, det.index)
                x, y, w, h = det.bounding_box
                label, distractor, boxes = out.setdefault(key, (det.label, bool(det["distractor"]), {}))
                assert det.label == label
                boxes[number] = [x * W, y * H, w * W, h * H]
    return out


def expected_tracks() -> dict:
    out = {}
    for stem, (_, tracks, distractors) in BENCHMARK.items():
        for t in tracks + distractors:
            out[(f"{stem}.mp4", t["track_id"])] = (t["identity"], t in distractors,
                                                   {f["frame"]: f["box"] for f in t["frames"]})
    return out


def assert_same_tracks(actual: dict, expected: dict, tol_px: float = 0.01) -> None:
    assert set(actual) == set(expected)
    for key, (label, distractor, boxes) in expected.items():
        a_label, a_distractor, a_boxes = actual[key]
        assert (a_label, a_distractor) == (label, distractor), key
        assert set(a_boxes) == set(boxes), key
        for frame, box in boxes.items():
            assert np.allclose(a_boxes[frame], box, atol=tol_px, rtol=0), (key, frame)


def test_import_fills_gt_faces_and_shots(imported):
    dataset = imported
    assert len(dataset) == 2
    assert dataset.has_frame_field("gt_faces") and dataset.has_sample_field("gt_shots")
    assert_same_tracks(gt_tracks(dataset), expected_tracks(), tol_px=1e-9)
    n_boxes = sum(len(t["frames"]) for _, ts, ds in BENCHMARK.values() for t in ts + ds)
    assert dataset.count("frames.gt_faces.detections") == n_boxes
    shots = {Path(s.filepath).stem: [d.support for d in s.gt_shots.detections] for s in dataset}
    assert shots == {stem: v[0] for stem, v in BENCHMARK.items()}
    assert dataset.distinct("frames.gt_faces.detections.label") == ["alice", "bob", "carol", "extra"]


def test_reimport_replaces_gt(bench):
    from vcn_plugin.evaluation.ground_truth import import_benchmark

    name = new_name()
    dataset = import_benchmark(bench, name)
    import_benchmark(bench, name)
    assert len(dataset) == 2
    assert_same_tracks(gt_tracks(dataset), expected_tracks(), tol_px=1e-9)

    # drop bob's track from ep_a and rename carol: the rerun must replace, not add
    path = bench / "annotations" / "ep_a.json"
    data = json.loads(path.read_text())
    data["tracks"] = [t for t in data["tracks"] if t["identity"] != "bob"]
    path.write_text(json.dumps(data))
    import_benchmark(bench, name)
    expected = {k: v for k, v in expected_tracks().items() if k != ("ep_a.mp4", 1)}
    assert_same_tracks(gt_tracks(dataset), expected, tol_px=1e-9)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(width=320), "size 320x120 differs"),
        (lambda d: d.update(num_frames=30), "num_frames 30 differs"),
        (lambda d: d["tracks"][0]["frames"].append({"frame": 21, "box": [1, 1, 5, 5]}), "frame 21 is outside 1..20"),
        (lambda d: d["tracks"][1].update(track_id=0), "track_id is used twice"),
        (lambda d: d["tracks"][0]["frames"][0].update(box=[1, 1, 0, 5]), "w, h > 0"),
        (lambda d: d.update(shots=[[1, 12], [12, 20]]), "without overlap"),
        (lambda d: d.pop("fps"), "missing keys ['fps']"),
    ],
)
def test_bad_annotation_is_refused_and_dataset_unchanged(bench, imported, edit, message):
    from vcn_plugin.evaluation.ground_truth import import_benchmark

    before = gt_tracks(imported)
    path = bench / "annotations" / "ep_a.json"
    data = json.loads(path.read_text())
    edit(data)
    data["tracks"][0]["identity"] = "changed"  # would show if anything were written
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="ep_a.json") as err:
        import_benchmark(bench, imported)
    assert message in str(err.value)
    assert len(imported) == 2 and gt_tracks(imported) == before


def test_missing_annotation_and_new_dataset_not_created(bench):
    import fiftyone as fo

    from vcn_plugin.evaluation.ground_truth import import_benchmark

    (bench / "annotations" / "ep_b.json").unlink()
    name = new_name()
    with pytest.raises(ValueError, match=r"ep_b.mp4 has no annotation"):
        import_benchmark(bench, name)
    assert not fo.dataset_exists(name)
    with pytest.raises(ValueError, match="is not a benchmark"):
        import_benchmark(bench / "videos", name)


def test_round_trip_is_lossless(bench, imported, tmp_path):
    from vcn_plugin.evaluation.annotations import load_annotation
    from vcn_plugin.evaluation.ground_truth import export_benchmark, import_benchmark

    first = imported
    written = export_benchmark(first, tmp_path / "exported")
    assert sorted(p.name for p in written) == ["ep_a.json", "ep_b.json"]
    assert sorted(p.name for p in (tmp_path / "exported" / "videos").iterdir()) == ["ep_a.mp4", "ep_b.mp4"]
    for stem in BENCHMARK:
        original = load_annotation(bench / "annotations" / f"{stem}.json")
        exported = load_annotation(tmp_path / "exported" / "annotations" / f"{stem}.json")
        assert (exported.video, exported.width, exported.height, exported.num_frames) == (
            original.video, original.width, original.height, original.num_frames)
        assert exported.fps == pytest.approx(original.fps)
        assert exported.shots == original.shots

    second = import_benchmark(tmp_path / "exported", new_name())
    assert_same_tracks(gt_tracks(second), expected_tracks(), tol_px=0.01)
    assert_same_tracks(gt_tracks(second), gt_tracks(first), tol_px=0.01)


def test_export_from_faces_uses_majority_label_and_shots(bench, tmp_path):
    import fiftyone as fo

    from vcn_plugin.evaluation.annotations import load_annotation
    from vcn_plugin.evaluation.ground_truth import export_benchmark, import_benchmark
    from vcn_plugin.fo.labels import shots_to_temporal

    dataset = import_benchmark(bench, new_name())
    dataset.add_frame_field("faces", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    sample = dataset.match({"filepath": {"$regex": "ep_b"}}).first()
    for number, frame in sample.frames.items():
        dets = [det.copy() for det in frame.gt_faces.detections]
        for det in dets:
            if det.index == 1 and number == 3:
                det.label = "person_09"  # one stray label in carol's track
        frame["faces"] = fo.Detections(detections=dets)
    sample["shots"] = shots_to_temporal([(1, 10), (11, 20)])
    sample.save()
    export_benchmark(dataset.select(sample.id), tmp_path / "out", label_field="faces")
    exported = load_annotation(tmp_path / "out" / "annotations" / "ep_b.json")
    assert [(t.track_id, t.identity) for t in exported.tracks] == [(0, "bob"), (1, "carol")]
    assert exported.shots == [(1, 10), (11, 20)]
    with pytest.raises(ValueError, match="no frame field 'nope'"):
        export_benchmark(dataset, tmp_path / "x", label_field="nope")


def test_num_frames_is_optional_and_probed_from_the_video(bench):
    from vcn_plugin.evaluation.ground_truth import import_benchmark

    for path in (bench / "annotations").glob("*.json"):
        data = json.loads(path.read_text())
        del data["num_frames"]
        path.write_text(json.dumps(data))
    dataset = import_benchmark(bench, new_name())
    assert_same_tracks(gt_tracks(dataset), expected_tracks(), tol_px=1e-9)
    # frame numbers are still checked, against the frames the video holds
    path = bench / "annotations" / "ep_a.json"
    data = json.loads(path.read_text())
    data["tracks"][0]["frames"].append({"frame": N_FRAMES + 1, "box": [1, 1, 5, 5]})
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"outside 1..{N_FRAMES}"):
        import_benchmark(bench, new_name())
