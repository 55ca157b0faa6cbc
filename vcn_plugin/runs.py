"""vcn's FiftyOne runs: one run key per stage result, with a JSON config and JSON results."""
from __future__ import annotations

import datetime as dt
from typing import Any

import fiftyone as fo


def save_run(dataset: fo.Dataset, run_key: str, method: str, config: dict[str, Any], results: dict[str, Any]) -> None:
    """Register (or replace) ``run_key`` on ``dataset`` with ``config`` and ``results``."""
    if dataset.has_run(run_key):
        dataset.delete_run(run_key)
    run_config = dataset.init_run(method=method, vcn=config)
    dataset.register_run(run_key, run_config)
    run_results = dataset.init_run_results(
        run_key, finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **results
    )
    dataset.save_run_results(run_key, run_results)


def load_run(dataset: fo.Dataset, run_key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, results)`` of a vcn run; KeyError when there is none."""
    if not dataset.has_run(run_key):
        raise KeyError(f"dataset '{dataset.name}' has no run '{run_key}'")
    info = dataset.get_run_info(run_key)
    results = dataset.load_run_results(run_key, cache=False)
    config = dict(info.config.vcn) if hasattr(info.config, "vcn") else {}
    config["method"] = getattr(info.config, "method", None)
    data = {k: v for k, v in results.serialize().items() if not k.startswith("_") and k not in ("cls",)}
    return config, data


def list_runs(dataset: fo.Dataset, method: str | None = None) -> list[str]:
    keys = dataset.list_runs()
    if method is None:
        return keys
    return [k for k in keys if getattr(dataset.get_run_info(k).config, "method", None) == method]
