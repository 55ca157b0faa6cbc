"""Many videos on 1 vs 2 delegated workers: every operation exactly once, every record present.

    .venv/bin/python benchmarks/workers.py [--videos 8] [--seconds 4.8] [--preset tiny]

On a private MongoDB (never the user's), N short clips are queued with `vcn: Process videos`
(one `process_video` per video, stage 1 + a finetuning of that video; the last one queues the
clustering) and executed by 1, then 2, `fiftyone delegated launch` workers (each with its share
of the cores: OMP_NUM_THREADS = cores / workers). Prints, per run:
the wall time from queueing to the finished clustering, the operations per state, that each
video's stage-1 record and model exist, and the wall-time ratio 1 / 2 workers.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vcn_plugin.fo.database import start_private_mongod  # noqa: E402

os.environ["FIFTYONE_DATABASE_URI"] = start_private_mongod("vcn-bench-db-")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")


def _clips(folder: Path, n: int, seconds: float) -> list[Path]:
    from vcn_plugin.benchmark.sample_clip import SHOT_WINDOWS, make_sample_clip

    first = folder / "clip00.mp4"
    make_sample_clip(first, shot_seconds=seconds / len(SHOT_WINDOWS))
    clips = [first]
    for i in range(1, n):
        clips.append(folder / f"clip{i:02d}.mp4")
        clips[-1].write_bytes(first.read_bytes())
    return clips


def _run(clips: list[Path], workers: int, plugins_dir: Path, preset: str) -> dict:
    import fiftyone as fo
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    from vcn_plugin.fo import schema
    from vcn_plugin.fo.datasets import import_videos
    from vcn_plugin.fo.runs import stage1_records
    from vcn_plugin.steps.finetune import video_models

    dataset = fo.Dataset(f"vcn-workers-{workers}-{int(time.time())}")
    dataset.persistent = True
    import_videos(clips, dataset)
    # each worker gets its share of the cores: two workers with every core each fight over them
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FIFTYONE_PLUGINS_DIR": str(plugins_dir),
           "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    start = time.perf_counter()
    foo.execute_operator(f"{schema.PLUGIN_NAME}/process_videos", ctx={"dataset": dataset.name,
                                                                      "params": {"preset": preset}})
    procs = [subprocess.Popen([str(Path(sys.executable).with_name("fiftyone")), "delegated", "launch"], env=env,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(workers)]
    service = DelegatedOperationService()
    try:
        while True:
            ops = service.list_operations(dataset_name=dataset.name)
            clustered = [op for op in ops if op.operator.endswith("/cluster_identities")]
            if clustered and all(op.run_state in ("completed", "failed") for op in ops):
                break
            if any(op.run_state == "failed" for op in ops) and not any(
                    op.run_state in ("queued", "running") for op in ops):
                break
            time.sleep(0.5)
        seconds = time.perf_counter() - start
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=60)
    dataset.reload()
    states: dict[str, int] = {}
    for op in ops:
        states[op.run_state] = states.get(op.run_state, 0) + 1
    per_video = [op for op in ops if op.operator.endswith("/process_video")]
    result = {
        "workers": workers, "seconds": round(seconds, 1), "states": states,
        "process_video_ops": len(per_video), "distinct_videos": len({op.context.params["sample_id"] for op in per_video}),
        "stage1_records": len(stage1_records(dataset)), "models": len(video_models(dataset, schema.FINETUNE_RUN)),
        "clustered": dataset.has_run(schema.CLUSTER_RUN),
    }
    dataset.delete()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.8, help="length of each clip (six shots)")
    parser.add_argument("--preset", choices=["tiny", "default"], default="tiny", help="finetuning preset")
    args = parser.parse_args()
    import fiftyone as fo

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plugins = tmp / "plugins"
        plugins.mkdir()
        (plugins / "videoclusternet").symlink_to(ROOT, target_is_directory=True)
        fo.config.plugins_dir = str(plugins)
        clips = _clips(tmp, args.videos, args.seconds)
        runs = [_run(clips, n, plugins, args.preset) for n in (1, 2)]
    for r in runs:
        print(r)
    print(f"wall time 1 worker / 2 workers: {runs[0]['seconds'] / runs[1]['seconds']:.2f}x "
          f"({args.videos} videos of {args.seconds} s, finetune preset {args.preset}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
