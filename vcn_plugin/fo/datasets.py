"""Video datasets: creating one by name and importing video files into it (validated first)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fiftyone as fo

from vcn_plugin.core.video import VIDEO_EXTENSIONS, VideoError, find_videos, probe_video
from vcn_plugin.fo import schema


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    #: path -> reason, for every file that was not imported
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"imported {len(self.added)} video(s), {len(self.already_present)} already present, "
                 f"{len(self.skipped)} skipped"]
        if not (self.added or self.already_present or self.skipped):
            lines.append(f"  no video file found (looked for {', '.join(VIDEO_EXTENSIONS)})")
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped.items()]
        return "\n".join(lines)


def get_or_create_dataset(name: str, persistent: bool = True) -> fo.Dataset:
    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    dataset = fo.Dataset(name)
    dataset.persistent = persistent
    return dataset


def import_videos(
    paths: Sequence[str | Path], dataset: fo.Dataset | str, recursive: bool = True
) -> ImportReport:
    """Add every readable video under ``paths`` to ``dataset`` (created when a name is new).

    Each file is probed first (ffprobe + decoding its first frame); unreadable ones are
    reported in :attr:`ImportReport.skipped` with the reason and never added. Files already
    in the dataset are left as they are, so a rerun adds nothing twice.
    """
    if not paths:
        raise ValueError("no paths given: pass video files or directories")
    if isinstance(dataset, str):
        dataset = get_or_create_dataset(dataset)
    if len(dataset):
        schema.require_video_dataset(dataset)
    report = ImportReport()
    existing = set(dataset.values("filepath")) if len(dataset) else set()
    samples, rotated = [], {}
    for path in find_videos(list(paths), recursive=recursive):
        key = str(path)
        if key in existing:
            report.already_present.append(key)
            continue
        try:
            info = probe_video(path)
        except VideoError as err:
            report.skipped[key] = str(err).removeprefix(f"{path}: ")
            continue
        samples.append(fo.Sample(filepath=key))
        report.added.append(key)
        if info.rotation % 180:
            rotated[key] = (info.width, info.height)
    if samples:
        dataset.add_samples(samples, progress=False)
        dataset.select([s.id for s in samples]).compute_metadata(progress=False)
        _display_size(dataset, rotated)
    return report


def _display_size(dataset: fo.Dataset, rotated: dict[str, tuple[int, int]]) -> None:
    """FiftyOne's metadata gives a rotated video's stored size; the frames are decoded (and
    labelled) upright, so the metadata gets the displayed size, as the boxes assume."""
    for sample in dataset.match(fo.ViewField("filepath").is_in(list(rotated))):
        width, height = rotated[sample.filepath]
        if sample.metadata is not None:
            sample.metadata.frame_width, sample.metadata.frame_height = width, height
            sample.save()
