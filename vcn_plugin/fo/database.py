"""A private MongoDB for tests and benchmarks, so they never write into a user's database.

Setting ``FIFTYONE_DATABASE_DIR`` is not enough: FiftyOne attaches to any database service that
is already running (a user's App, say) whatever its folder. A private mongod on a free port,
named by ``FIFTYONE_DATABASE_URI``, keeps every dataset of a test or benchmark run away from
``~/.fiftyone``. Nothing here imports fiftyone, whose config must see the URI first.
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time


def start_private_mongod(prefix: str = "vcn-db-") -> str:
    """Start FiftyOne's bundled mongod on a free loopback port, in a temporary folder, and return
    its URI (set it as ``FIFTYONE_DATABASE_URI`` before importing fiftyone). It stops, and its
    folder is removed, when the process exits."""
    # located without importing fiftyone, whose config must see FIFTYONE_DATABASE_URI first
    package_dir = importlib.util.find_spec("fiftyone").submodule_search_locations[0]
    mongod = os.path.join(package_dir, "db", "bin", "mongod")
    db_dir = tempfile.mkdtemp(prefix=prefix)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [mongod, "--dbpath", db_dir, "--port", str(port),
         "--bind_ip", "127.0.0.1", "--nounixsocket", "--logpath", os.path.join(db_dir, "mongod.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(db_dir, ignore_errors=True)

    atexit.register(stop)
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the private mongod exited with {process.returncode}; see {db_dir}/mongod.log")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return f"mongodb://127.0.0.1:{port}"
        time.sleep(0.2)
    raise RuntimeError(f"the private mongod did not start within 60 s; see {db_dir}/mongod.log")
