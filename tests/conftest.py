"""Shared fixtures. FiftyOne's database is isolated per test session."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# vcn's own files (checkpoints, thumbnails, the stage-1 cache) go to a temporary folder, not
# ~/fiftyone; set before anything imports fiftyone, which reads its config once
os.environ.setdefault("FIFTYONE_DEFAULT_DATASET_DIR", tempfile.mkdtemp(prefix="vcn-test-files-"))

from vcn_plugin.fo.database import start_private_mongod  # noqa: E402

if "FIFTYONE_DATABASE_URI" not in os.environ:
    # a private database: FiftyOne attaches to any running database service (a user's App, say)
    # whatever FIFTYONE_DATABASE_DIR says, and the tests would write into the user's database
    os.environ["FIFTYONE_DATABASE_URI"] = start_private_mongod("vcn-test-db-")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
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


REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "@vcn/videoclusternet"


@pytest.fixture
def run_operator(tmp_path, monkeypatch):
    """Run one of this plugin's operators as the App would, through FiftyOne's plugin loader.

    ``fo.config.plugins_dir`` points at a temporary folder holding a symlink to the repo root
    (which holds ``fiftyone.yml``). ``run_operator(name, dataset, params, delegate=False,
    selected=None, selected_labels=None)`` returns the operator's result dict. With
    ``delegate=True`` the operation is queued (``request_delegation``) and then executed by
    FiftyOne's delegated-operation service, as ``fiftyone delegated launch`` would; the
    finished operation document is returned instead (its state must be ``expect``).
    """
    import fiftyone as fo
    import fiftyone.operators as foo
    from fiftyone.plugins.context import build_plugin_contexts

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "videoclusternet").symlink_to(REPO_ROOT, target_is_directory=True)
    monkeypatch.setattr(fo.config, "plugins_dir", str(plugins))

    def run(name: str, dataset, params: dict, delegate: bool = False, expect: str = "completed", **ctx_extra):
        uri = f"{PLUGIN}/{name}"
        if uri not in [op.uri for op in foo.list_operators(enabled=True)]:
            contexts = [c for c in build_plugin_contexts() if c.name == PLUGIN]
            errors = "".join(contexts[0].errors) if contexts else f"plugin {PLUGIN} not found in {plugins}"
            ours = [op.uri for c in contexts for op in c.instances]
            pytest.fail(f"{uri} is not registered (it must be listed in fiftyone.yml and in OPERATORS of "
                        f"operators/__init__.py); registered: {ours}; plugin errors: {errors}")
        ctx = {"dataset": dataset.name, "params": params, **ctx_extra}
        if not delegate:
            result = foo.execute_operator(uri, ctx=ctx)
            return result.result
        from fiftyone.operators.delegated import DelegatedOperationService

        queued = foo.execute_operator(uri, ctx=ctx, request_delegation=True)
        assert queued.delegated, f"{uri} was not delegated"
        service = DelegatedOperationService()
        service.execute_queued_operations(operator=uri, dataset_name=dataset.name)
        ops = service.list_operations(operator=uri, dataset_name=dataset.name)
        done = max(ops, key=lambda op: op.queued_at)
        if done.run_state != expect:
            pytest.fail(f"delegated {uri} ended {done.run_state}, expected {expect}: "
                        f"{getattr(done.result, 'error', None)}")
        return done

    return run
