"""Operators of stages 2 and 3: finetune the face model, cluster identities, map them."""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from vcn_plugin.backbones import DEFAULT_BACKBONE, available_backbones
from vcn_plugin.clustering import METHODS
from vcn_plugin.fo import schema
from vcn_plugin.fo.runs import list_runs
from vcn_plugin.steps.cluster import DEFAULT_RUN_KEY as CLUSTER_RUN
from vcn_plugin.steps.cluster import cluster_identities, visualize_identities
from vcn_plugin.steps.finetune import DEFAULT_RUN_KEY as FINETUNE_RUN
from vcn_plugin.steps.finetune import SCOPES, finetune_dataset

from .common import finish, heavy_config, light_config, progress_reporter, require_video_dataset, summary_output

METHOD_HELP = {
    "loss": "VideoClusterNet: the finetuned model's SSL loss as the distance (recommended)",
    "cosine": "Same algorithm, cosine distance on embeddings",
    "euclidean": "Same algorithm, Euclidean distance on embeddings",
    "hac-cosine": "Average-linkage HAC, cosine, fixed threshold",
    "hac-euclidean": "Average-linkage HAC, Euclidean 0.6 (pyannote-video style)",
    "finch": "FINCH (first-neighbour clustering)",
    "hdbscan": "HDBSCAN",
}


def _has_stage1(ctx, inputs) -> bool:
    if not ctx.dataset.has_run(schema.STAGE1_RUN):
        inputs.view("no_stage1", types.Warning(
            label="Detect faces first",
            description="Run 'vcn: Detect and track faces' on this dataset; this step works on its face tracks.",
        ))
        return False
    return True


def _stage_form(ctx, inputs) -> bool:
    """Start the form of a stage that works on face tracks: a video dataset after stage 1, and
    the choice of target view; False (with a warning on the form) when it cannot run."""
    if not require_video_dataset(ctx, inputs) or not _has_stage1(ctx, inputs):
        return False
    inputs.view_target(ctx)
    return True


class Finetune(foo.Operator):
    @property
    def config(self):
        return heavy_config("finetune", "Finetune face model",
                            "Stage 2: adapt the face-ID model to each video without labels (self-distillation on face tracks)")

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not _stage_form(ctx, inputs):
            return types.Property(inputs)
        inputs.str("backbone", default=DEFAULT_BACKBONE, label="Backbone",
                   description="Pretrained face-ID network: " + " or ".join(available_backbones()))
        scopes = types.RadioGroup()
        scopes.add_choice("video", label="Per video", description="One model per video, as in the paper")
        scopes.add_choice("dataset", label="Whole dataset", description="One model for a series of episodes")
        inputs.enum("scope", SCOPES, default="video", view=scopes, label="Scope")
        inputs.str("run_key", default=FINETUNE_RUN, label="Run key",
                   description="Rerunning with the same key replaces the earlier models")
        return types.Property(inputs, view=types.View(label="Finetune face model"))

    def execute(self, ctx):
        summary = finetune_dataset(
            ctx.target_view(),
            backbone=ctx.params.get("backbone", DEFAULT_BACKBONE),
            run_key=ctx.params.get("run_key") or FINETUNE_RUN,
            scope=ctx.params.get("scope", "video"),
            progress=progress_reporter(ctx),
        )
        finish(ctx, summary.summary().splitlines()[0])
        return {"summary": summary.summary()}

    def resolve_output(self, ctx):
        return summary_output()


class ClusterIdentities(foo.Operator):
    @property
    def config(self):
        return heavy_config("cluster_identities", "Cluster identities",
                            "Stage 3: group face tracks into identities with no threshold to tune; writes labels and track records")

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not _stage_form(ctx, inputs):
            return types.Property(inputs)
        finetune_runs = list_runs(ctx.dataset, method="finetune")
        methods = types.Dropdown()
        for name in METHODS:
            methods.add_choice(name, label=name, description=METHOD_HELP[name])
        default = "loss" if finetune_runs else "cosine"
        inputs.enum("method", METHODS, default=default, view=methods, label="Method")
        if ctx.params.get("method", default) == "loss" and not finetune_runs:
            inputs.view("need_finetune", types.Error(
                label="The loss metric needs a finetuned model",
                description="Run 'vcn: Finetune face model' first, or choose 'cosine'.",
            ))
        if finetune_runs:
            runs = types.Dropdown()
            for key in finetune_runs:
                runs.add_choice(key, label=key)
            inputs.enum("finetune_run", finetune_runs, default=finetune_runs[0], view=runs, label="Finetuning run")
        inputs.bool("guard", default=True, label="Co-occurrence guard",
                    description="Never put two faces seen in the same frame into one identity")
        inputs.str("run_key", default=CLUSTER_RUN, label="Run key")
        return types.Property(inputs, view=types.View(label="Cluster identities"))

    def execute(self, ctx):
        summary = cluster_identities(
            ctx.target_view(),
            method=ctx.params.get("method", "loss"),
            finetune_run=ctx.params.get("finetune_run") or FINETUNE_RUN,
            guard=bool(ctx.params.get("guard", True)),
            run_key=ctx.params.get("run_key") or CLUSTER_RUN,
            progress=progress_reporter(ctx),
        )
        finish(ctx, summary.summary())
        return {"summary": summary.summary()}

    def resolve_output(self, ctx):
        return summary_output()


class VisualizeIdentities(foo.Operator):
    @property
    def config(self):
        return light_config("visualize_identities", "Map identities (UMAP)",
                            "Compute a UMAP of the track embeddings for the Embeddings panel of the track dataset",
                            view_target=False, allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        if require_video_dataset(ctx, inputs):
            inputs.str("brain_key", default=schema.UMAP_BRAIN_KEY, label="Brain key")
        return types.Property(inputs, view=types.View(label="Map identities"))

    def execute(self, ctx):
        visualize_identities(ctx.dataset, brain_key=ctx.params.get("brain_key") or schema.UMAP_BRAIN_KEY)
        finish(ctx, "Open the track dataset and the Embeddings panel to see the map")
        return {}


IDENTITY_OPERATORS = [Finetune, ClusterIdentities, VisualizeIdentities]
