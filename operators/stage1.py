"""Operators of stage 1: import videos, detect and track faces."""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from vcn_plugin.fo.datasets import import_videos
from vcn_plugin.stage1 import Stage1Config
from vcn_plugin.stage1.detectors import DEFAULT_DETECTOR, available_detectors
from vcn_plugin.steps.detect import detect_faces

from .common import (
    finish,
    heavy_config,
    light_config,
    progress_reporter,
    refuse_non_video,
    require_video_dataset,
    summary_output,
)


class ImportVideos(foo.Operator):
    @property
    def config(self):
        return light_config("import_videos", "Import videos", "Add video files or folders to the current dataset",
                            view_target=False)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.list(
            "paths",
            types.String(),
            required=True,
            label="Video files or directories",
            description="Absolute paths on the machine that runs FiftyOne; directories are searched recursively",
        )
        refuse_non_video(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Import videos"))

    def execute(self, ctx):
        paths = [p for p in ctx.params.get("paths") or [] if p and p.strip()]
        if not paths:
            raise ValueError("Give at least one video file or directory")
        report = import_videos(paths, ctx.dataset)
        finish(ctx, report.summary().splitlines()[0])
        return {"added": len(report.added), "already_present": len(report.already_present), "skipped": report.skipped}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("added", label="Videos added")
        outputs.int("already_present", label="Already in the dataset")
        outputs.obj("skipped", label="Skipped files (path: reason)", view=types.JSONView())
        return types.Property(outputs, view=types.View(label="Import result"))


class DetectFaces(foo.Operator):
    @property
    def config(self):
        return heavy_config("detect_faces", "Detect and track faces",
                            "Stage 1: shot boundaries, face detection, quality and tracking, written to frames.faces")

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not require_video_dataset(ctx, inputs):
            return types.Property(inputs)
        inputs.view_target(ctx)
        detectors = types.Dropdown()
        for name in available_detectors():
            detectors.add_choice(name, label=name)
        inputs.enum("detector", detectors.values(), default=DEFAULT_DETECTOR, view=detectors, label="Face detector",
                    description="centerface and dlib-hog work offline on any CPU; scrfd needs an insightface pack")
        inputs.int("detect_every", default=Stage1Config.detect_every, label="Detect every k-th frame",
                   description="The tracker fills the frames in between", min=1)
        return types.Property(inputs, view=types.View(label="Detect and track faces"))

    def execute(self, ctx):
        config = Stage1Config(detector=ctx.params.get("detector", DEFAULT_DETECTOR),
                              detect_every=int(ctx.params.get("detect_every", Stage1Config.detect_every)))
        report = detect_faces(ctx.target_view(), config, progress_reporter(ctx))
        report.raise_for_failures()  # the op ends FAILED, naming the files; the other videos are done
        finish(ctx, report.summary().splitlines()[0])
        return {"summary": report.summary()}

    def resolve_output(self, ctx):
        return summary_output()
