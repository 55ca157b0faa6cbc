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
    """Register (or replace) ``run_key`` on ``dataset`` with ``config`` and ``results``."""
    results = {**results, "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    # a JSON round trip turns tuples, numpy scalars and non-string keys into plain JSON values
    payload = json.loads(json.dumps({"vcn": config, "vcn_results": results}, default=_jsonable))
    if dataset.has_run(run_key):
        dataset.delete_run(run_key)
    dataset.register_run(run_key, dataset.init_run(method=method, **payload))


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


def stage1_videos(dataset: fo.Dataset) -> set[str]:
    """Paths of the videos that stage 1 has processed."""
    if not dataset.has_run(schema.STAGE1_RUN):
        return set()
    _, results = load_run(dataset, schema.STAGE1_RUN)
    return set(results.get("videos", {}))
