"""vcn's delegated operations in FiftyOne's queue: finding the ones whose worker died.

FiftyOne leaves an operation RUNNING forever when the worker process executing it is killed.
vcn's operators report progress at least every few seconds (every 25 frames in stage 1, every
step in finetuning), and FiftyOne stamps each report; an operation whose newest stamp is older
than ``stale_after`` has lost its worker. :func:`reap_stale_operations` marks such operations
FAILED (only if they are still RUNNING at that moment), so they can be rerun. A video whose
operation died keeps no stage-1 record, so no later stage uses its half-written labels.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vcn_plugin.fo import schema

#: default silence after which a RUNNING vcn operation counts as dead
DEFAULT_STALE_AFTER = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class StaleOperation:
    id: str
    operator: str
    dataset: str | None
    last_seen: dt.datetime


def last_seen(op) -> dt.datetime | None:
    """The newest time FiftyOne recorded for ``op``: started, pinged, or a progress report."""
    stamps = [op.started_at, op.updated_at, getattr(op.status, "updated_at", None) if op.status else None]
    stamps = [s for s in stamps if s is not None]
    return max(stamps) if stamps else None


def stale_operations(dataset_name: str | None = None, stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
                     now: dt.datetime | None = None) -> list[StaleOperation]:
    """vcn's RUNNING operations (of ``dataset_name``, or all) silent for longer than ``stale_after``."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    now = now or dt.datetime.utcnow()  # FiftyOne stores naive UTC times
    found = []
    for op in DelegatedOperationService().list_operations(dataset_name=dataset_name,
                                                           run_state=ExecutionRunState.RUNNING):
        seen = last_seen(op)
        if op.operator.startswith(f"{schema.PLUGIN_NAME}/") and seen is not None and now - seen > stale_after:
            found.append(StaleOperation(str(op.id), op.operator, getattr(op, "dataset_name", None), seen))
    return found


def reap_stale_operations(dataset_name: str | None = None, stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
                          dry_run: bool = False) -> list[StaleOperation]:
    """Mark the :func:`stale_operations` FAILED (unless ``dry_run``) and return them."""
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionResult, ExecutionRunState

    stale = stale_operations(dataset_name, stale_after)
    service = DelegatedOperationService()
    for op in [] if dry_run else stale:
        minutes = stale_after.total_seconds() / 60
        error = (f"no progress since {op.last_seen:%Y-%m-%d %H:%M:%S} UTC (over {minutes:g} min): its worker "
                 "stopped; vcn marked it failed so it can be rerun")
        service.set_failed(ObjectId(op.id), result=ExecutionResult(error=error),
                           required_state=ExecutionRunState.RUNNING)
    return stale


def claim_once(dataset, key: str) -> bool:
    """True for exactly one caller per ``(dataset, key)``, across processes and machines: an
    atomic conditional update of the dataset's document (``info.vcn_claims.<key>``)."""
    from fiftyone.core.odm import get_db_conn

    from vcn_plugin.fo.storage import check_key

    check_key(key, "claim key")
    field = f"info.{schema.INFO_CLAIMS}.{key}"
    result = get_db_conn()["datasets"].update_one(
        {"_id": dataset._doc.id, field: {"$exists": False}},
        {"$set": {field: dt.datetime.utcnow().isoformat(timespec="seconds")}},
    )
    return result.modified_count == 1


def require_operators(*operators: str) -> None:
    """RuntimeError unless FiftyOne knows vcn's ``operators`` (names, e.g. ``process_video``)."""
    import fiftyone.operators as foo

    known = {op.uri for op in foo.list_operators(enabled=True)}
    missing = [f"{schema.PLUGIN_NAME}/{name}" for name in operators if f"{schema.PLUGIN_NAME}/{name}" not in known]
    if missing:
        raise RuntimeError(f"FiftyOne does not know the operator(s) {', '.join(missing)}: the vcn plugin is not "
                           "installed in its plugins directory (fo.config.plugins_dir); link this repository there first")


def queue_operation(operator: str, dataset_name: str, params: dict, check: bool = True) -> None:
    """Queue vcn's operator ``operator`` (its name, e.g. ``process_video``) for delegated
    execution (``check``: first make sure FiftyOne knows it). ``execute_operator`` runs an event
    loop of its own, which code already inside FiftyOne's loop (an operator) may not do, so it
    runs on a helper thread."""
    from concurrent.futures import ThreadPoolExecutor

    import fiftyone.operators as foo

    if check:
        require_operators(operator)
    uri = f"{schema.PLUGIN_NAME}/{operator}"
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(foo.execute_operator, uri, ctx={"dataset": dataset_name, "params": params},
                             request_delegation=True).result()
    if not result.delegated:
        raise RuntimeError(f"{uri} was not queued for delegated execution")


def queue_videos(samples, params: dict) -> int:
    """Queue one delegated ``process_video`` per video of ``samples`` (one batch: the last one
    done queues the clustering); returns how many were queued."""
    import uuid

    require_operators("process_video", "cluster_identities")  # once, not per video
    ids = samples.values("id")
    batch = {"batch": ids, "batch_id": uuid.uuid4().hex}
    for sid in ids:
        queue_operation("process_video", samples._dataset.name, {**params, "sample_id": sid, **batch}, check=False)
    return len(ids)
