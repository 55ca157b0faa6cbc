"""Shared fixtures. FiftyOne's database is isolated per test session."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_DB_DIR = tempfile.mkdtemp(prefix="vcn-test-db-")
os.environ.setdefault("FIFTYONE_DATABASE_DIR", _DB_DIR)
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (the ../shared folder beside the repo)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; the test is skipped when it is absent."""
    return _require(SHARED_DIR / "data")


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """``../shared/models``; the test is skipped when it is absent."""
    return _require(SHARED_DIR / "models")
