"""Face embedding speed: the torch backbones against dlib's own and onnxruntime.

Prints faces/second at batch 1 and 32 for
* dlib-resnet: dlib's ``compute_face_descriptor`` (chips), and the torch port;
* an ArcFace-style ONNX model (default: ../shared/models/mobilefacenet/...):
  onnxruntime, and the torch conversion.
Chips are random uint8 images of the right size (speed does not depend on content).

    .venv/bin/python benchmarks/embed.py [--device cuda] [--threads 1] [--onnx PATH]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vcn_plugin.backbones import dlib_model_path, get_backbone

DEFAULT_ONNX = Path(__file__).resolve().parents[2] / "shared" / "models" / "mobilefacenet" / "mobilefacenet_paddlex_128d.onnx"


@dataclass
class Row:
    backbone: str
    implementation: str
    device: str
    batch: int
    faces_per_second: float


def time_call(run: Callable[[], object], faces: int, min_seconds: float, sync: Callable[[], None]) -> float:
    """Faces per second of ``run`` (one warm-up call, then repeated for at least ``min_seconds``)."""
    run()
    sync()
    calls, start = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls * faces / elapsed


def torch_rows(name: str, backbone, device: str, batches: list[int], min_seconds: float) -> list[Row]:
    backbone = backbone.to(device).eval()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    for batch in batches:
        chips = np.random.default_rng(0).integers(0, 256, (batch, backbone.chip_size, backbone.chip_size, 3), dtype=np.uint8)

        def run() -> None:
            with torch.no_grad():
                backbone(backbone.preprocess(chips)).cpu()

        rows.append(Row(name, "torch port", device, batch, time_call(run, batch, min_seconds, sync)))
    return rows


def dlib_rows(batches: list[int], min_seconds: float) -> list[Row]:
    import dlib

    recognizer = dlib.face_recognition_model_v1(str(dlib_model_path()))
    rows = []
    for batch in batches:
        chips = list(np.random.default_rng(0).integers(0, 256, (batch, 150, 150, 3), dtype=np.uint8))
        run = (lambda: recognizer.compute_face_descriptor(chips[0])) if batch == 1 else (lambda: recognizer.compute_face_descriptor(chips))
        device = "cuda" if dlib.DLIB_USE_CUDA else "cpu"
        rows.append(Row("dlib-resnet", "dlib compute_face_descriptor", device, batch, time_call(run, batch, min_seconds, lambda: None)))
    return rows


def onnxruntime_rows(path: Path, batches: list[int], min_seconds: float, threads: int) -> list[Row]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    fixed_batch = session.get_inputs()[0].shape[0] == 1
    rows = []
    for batch in batches:
        x = np.random.default_rng(0).standard_normal((batch, 3, 112, 112)).astype(np.float32)
        if fixed_batch:
            run = lambda: [session.run(None, {name: x[i : i + 1]}) for i in range(batch)]  # noqa: E731
        else:
            run = lambda: session.run(None, {name: x})  # noqa: E731
        rows.append(Row(path.stem, "onnxruntime", "cpu", batch, time_call(run, batch, min_seconds, lambda: None)))
    return rows


def print_table(rows: list[Row]) -> None:
    header = f"{'backbone':<28} {'implementation':<30} {'device':<6} {'batch':>5} {'faces/s':>9} {'ms/face':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r.backbone:<28} {r.implementation:<30} {r.device:<6} {r.batch:>5} {r.faces_per_second:>9.1f} {1000 / r.faces_per_second:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="device of the torch ports")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and onnxruntime (dlib uses its own)")
    parser.add_argument("--onnx", type=Path, default=DEFAULT_ONNX, help="ArcFace-style recognition ONNX model")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--min-seconds", type=float, default=2.0, help="timing window per measurement")
    parser.add_argument("--skip-dlib", action="store_true", help="skip dlib's own (slow) measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = [] if args.skip_dlib else dlib_rows(args.batches, args.min_seconds)
    rows += torch_rows("dlib-resnet", get_backbone("dlib-resnet"), args.device, args.batches, args.min_seconds)
    if args.onnx.is_file():
        rows += onnxruntime_rows(args.onnx, args.batches, args.min_seconds, args.threads)
        rows += torch_rows(args.onnx.stem, get_backbone(f"arcface-onnx:{args.onnx}"), args.device, args.batches, args.min_seconds)
    else:
        print(f"(no ONNX model at {args.onnx}: ArcFace rows skipped)")
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s)")
    print_table(rows)


if __name__ == "__main__":
    main()
