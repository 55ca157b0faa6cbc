"""vcn's FiftyOne runs: one run key per stage result, with a JSON config and JSON results.

Both live in the run document itself (results are small: statistics, paths, metric tables),
so a run is listed by ``dataset.list_runs()``, shown by ``dataset.get_run_info()`` and
deleted by ``dataset.delete_run()`` like any FiftyOne run.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

import fiftyone as fo

from vcn_plugin.fo import schema


def save_run(dataset: fo.Dataset, run_key: str, method: str, config: dict[str, Any], results: dict[str, Any]) -> None:
    """Register (or replace) ``run_key`` on ``dataset`` with ``config`` and ``results``; a run of
    another type under that key is never replaced (see :func:`check_run_key`)."""
    check_run_key(dataset, run_key, method)
    results = {**results, "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    # a JSON round trip turns tuples, numpy scalars and non-string keys into plain JSON values
    payload = json.loads(json.dumps({"vcn": config, "vcn_results": results}, default=_jsonable))
    # one overwriting write, not delete-then-register: a concurrent reader never finds the key missing
    dataset.register_run(run_key, dataset.init_run(method=method, **payload), overwrite=True)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def load_run(dataset: fo.Dataset, run_key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, results)`` of a vcn run; KeyError when there is none. ``config["run_type"]``
    is the kind of run ("stage1", "finetune", "cluster", "evaluation")."""
    if not dataset.has_run(run_key):
        raise KeyError(f"dataset '{dataset.name}' has no run '{run_key}'")
    info = dataset.get_run_info(run_key)
    # plain dicts and lists, not the database layer's BaseDict/BaseList
    config = json.loads(json.dumps(getattr(info.config, "vcn", {}) or {}))
    config["run_type"] = getattr(info.config, "method", None)
    return config, json.loads(json.dumps(getattr(info.config, "vcn_results", {}) or {}))


def list_runs(dataset: fo.Dataset, method: str | None = None) -> list[str]:
    keys = dataset.list_runs()
    if method is None:
        return keys
    return [k for k in keys if getattr(dataset.get_run_info(k).config, "method", None) == method]


def stage1_videos(samples: fo.core.collections.SampleCollection) -> set[str]:
    """Paths of the videos of ``samples`` whose stage-1 record is complete (see :func:`stage1_records`)."""
    return set(stage1_records(samples))


def stage1_records(samples: fo.core.collections.SampleCollection) -> dict[str, dict[str, Any]]:
    """Video path -> its stage-1 record (``sample.vcn_video``): statistics, ``detector``,
    ``landmark_format`` and ``stage1_id``. A video is listed once stage 1 has written its labels
    and the record with them; a video whose processing failed or was interrupted is not."""
    dataset = samples._dataset
    if not dataset.has_sample_field(schema.VIDEO_STATS):
        return _legacy_records(samples)
    paths, records = samples.values(["filepath", schema.VIDEO_STATS])
    return {p: _plain(r) for p, r in zip(paths, records) if r is not None}


def _legacy_records(samples) -> dict[str, dict[str, Any]]:
    """Datasets processed before per-video records: the videos listed by the stage-1 run."""
    dataset = samples._dataset
    if not dataset.has_run(schema.STAGE1_RUN):
        return {}
    config, results = load_run(dataset, schema.STAGE1_RUN)
    wanted = set(samples.values("filepath"))
    fmt = config.get("landmark_format", "dlib5")
    return {p: {**stats, "landmark_format": fmt} for p, stats in results.get("videos", {}).items() if p in wanted}


def _plain(record) -> dict[str, Any]:
    data = record.to_dict() if hasattr(record, "to_dict") else dict(record)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def check_run_key(dataset: fo.Dataset, run_key: str, run_type: str) -> str:
    """Validate ``run_key`` for a new ``run_type`` run before anything is written: a valid key,
    not reserved for another stage, not the key of an existing run of another type."""
    from vcn_plugin.fo.storage import check_key

    check_key(run_key)
    owner = schema.RESERVED_RUNS.get(run_key)
    if owner is not None and owner != run_type:
        raise ValueError(f"run key '{run_key}' belongs to vcn's {owner} stage; choose another key for this {run_type} run")
    if dataset.has_run(run_key):
        existing = getattr(dataset.get_run_info(run_key).config, "method", None)
        if existing != run_type:
            raise ValueError(f"dataset '{dataset.name}' already has a '{existing}' run named '{run_key}'; "
                             f"a {run_type} run cannot replace it: choose another key")
    return run_key
