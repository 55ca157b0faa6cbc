"""Many videos on many workers: one delegated operation per video, then the clustering.

``vcn: Process videos`` queues, for every video of the target view, one delegated
``process_video`` (stage 1, then stage 2 of that video alone). Each runs on whichever
``fiftyone delegated launch`` worker takes it; per-video records (``vcn_video``, ``vcn_models``)
keep concurrent workers from losing each other's results. The operation that finds every
video of its batch done queues the ``cluster_identities`` operation (exactly once, by an
atomic claim), so clustering never starts before the videos are ready.
"""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from vcn_plugin.backbones import DEFAULT_BACKBONE
from vcn_plugin.fo import schema
from vcn_plugin.fo.operations import queue_operation, queue_videos
from vcn_plugin.ssl import FinetuneConfig
from vcn_plugin.stage1 import Stage1Config
from vcn_plugin.stage1.detectors import DEFAULT_DETECTOR
from vcn_plugin.steps.detect import detect_faces
from vcn_plugin.steps.finetune import finetune_dataset

from .common import heavy_config, light_config, progress_reporter, require_video_dataset

class ProcessVideo(foo.Operator):
    """Stages 1 and 2 of one video (``params["sample_id"]``), meant to run delegated."""

    @property
    def config(self):
        return heavy_config("process_video", "Process one video",
                            "Stage 1 (faces, tracks) and stage 2 (finetuning) of one video, on a worker")

    def execute(self, ctx):
        dataset = ctx.dataset
        view = dataset.select(ctx.params["sample_id"])
        if not len(view):
            raise ValueError(f"dataset '{dataset.name}' has no sample {ctx.params['sample_id']}")
        config = Stage1Config(detector=ctx.params.get("detector", DEFAULT_DETECTOR),
                              detect_every=int(ctx.params.get("detect_every", Stage1Config.detect_every)))
        report = detect_faces(view, config, progress_reporter(ctx))
        report.raise_for_failures()
        preset = ctx.params.get("preset", "default")
        try:
            summary = finetune_dataset(view, backbone=ctx.params.get("backbone", DEFAULT_BACKBONE),
                                       config=FinetuneConfig.tiny() if preset == "tiny" else FinetuneConfig(),
                                       progress=progress_reporter(ctx)).summary()
        except ValueError as err:
            if "nothing was finetuned" not in str(err):
                raise
            summary = f"no model: {err}"  # too few tracks: nothing to adapt to, nothing to cluster
        queued = _cluster_when_batch_done(dataset, ctx.params.get("batch") or [], ctx.params.get("batch_id", "manual"))
        return {"summary": f"{report.summary()}\n{summary}", "clustering_queued": queued}


class ProcessVideos(foo.Operator):
    @property
    def config(self):
        return light_config("process_videos", "Process videos",
                            "Queue one delegated operation per video (stages 1-2), then the clustering")

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not require_video_dataset(ctx, inputs):
            return types.Property(inputs)
        inputs.view_target(ctx)
        inputs.view("how", types.Notice(label="Each video becomes one delegated operation; start workers with "
                                              "'fiftyone delegated launch' (several machines may share the queue)"))
        return types.Property(inputs, view=types.View(label="Process videos"))

    def execute(self, ctx):
        params = {k: ctx.params[k] for k in ("detector", "detect_every", "backbone", "preset") if k in ctx.params}
        return {"queued": queue_videos(ctx.target_view(), params)}


def _cluster_when_batch_done(dataset, batch: list[str], batch_id: str) -> bool:
    """Queue the clustering once every video of ``batch`` has its stage-1 record and its model
    (or too few tracks for one); exactly one operation of the batch does (:func:`claim_once`)."""
    from vcn_plugin.fo.operations import claim_once
    from vcn_plugin.fo.runs import stage1_records
    from vcn_plugin.steps.finetune import video_models

    dataset.reload()
    view = dataset.select(batch)
    if len(view) < len(batch) or len(stage1_records(view)) < len(batch):
        return False
    models = video_models(dataset, schema.FINETUNE_RUN)
    tracks = dict(zip(*view.values(["id", f"{schema.VIDEO_STATS}.tracks"])))
    if any(vid not in models and (tracks.get(vid) or 0) >= 2 for vid in batch):
        return False
    if not claim_once(dataset, f"cluster_{batch_id}"):
        return False  # another worker finished the batch at the same moment and queued it
    queue_operation("cluster_identities", dataset.name, {"method": "loss", "guard": True, "run_key": schema.CLUSTER_RUN})
    return True


FANOUT_OPERATORS = [ProcessVideo, ProcessVideos]
