"""Video probing and import: every kind of bad file gets a specific reason and is never imported."""
from __future__ import annotations

import fiftyone as fo
import numpy as np
import pytest

from tests.videos import noise_frames, with_rotation_flag, write_video
from vcn_plugin.core.video import VideoError, iter_frames, probe_video
from vcn_plugin.fo.datasets import import_videos


@pytest.fixture
def good_video(tmp_path):
    return write_video(tmp_path / "good.mp4", noise_frames(10, 160, 120))


def test_probe_reads_size_fps_and_frames(good_video):
    info = probe_video(good_video)
    assert (info.width, info.height, info.num_frames) == (160, 120, 10)
    assert info.fps == pytest.approx(25.0)
    assert info.codec == "h264"


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is not a video\n" * 20), "not a readable video"),
    ],
)
def test_probe_rejects_bad_files(tmp_path, make, reason):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(VideoError, match=reason):
        probe_video(path)


def test_probe_rejects_truncated_file(tmp_path, good_video):
    data = good_video.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 20])
    with pytest.raises(VideoError, match=str(truncated)):
        probe_video(truncated)


def test_single_frame_video(tmp_path):
    path = write_video(tmp_path / "one.mp4", noise_frames(1))
    assert probe_video(path).num_frames == 1
    assert [n for n, _ in iter_frames(path)] == [1]


def test_rotation_flag_swaps_displayed_size(tmp_path, good_video):
    rotated = with_rotation_flag(good_video, tmp_path / "rotated.mp4", 90)
    info = probe_video(rotated)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (120, 160)
    _, frame = next(iter_frames(rotated))
    assert frame.shape[:2] == (160, 120)  # decoded as displayed


def test_import_skips_bad_files_by_name_and_is_idempotent(tmp_path, good_video):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("hello")
    dataset = fo.Dataset()
    report = import_videos([tmp_path], dataset)
    assert report.added == [str(good_video.resolve())]
    assert set(report.skipped) == {str((tmp_path / "empty.mp4").resolve()), str((tmp_path / "text.mp4").resolve())}
    assert "empty file" in report.skipped[str((tmp_path / "empty.mp4").resolve())]
    assert len(dataset) == 1 and dataset.first().metadata.total_frame_count == 10
    again = import_videos([tmp_path], dataset)
    assert again.added == [] and len(again.already_present) == 1 and len(dataset) == 1


def test_import_refuses_image_dataset(tmp_path, good_video):
    dataset = fo.Dataset()
    image = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    dataset.add_sample(fo.Sample(filepath=str(image)))
    with pytest.raises(ValueError, match="video"):
        import_videos([good_video], dataset)
