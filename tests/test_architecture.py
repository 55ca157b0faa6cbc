"""The layout is the architecture (docs/architecture.md): imports only go down the layers, every
name vcn writes to FiftyOne is spelled in ``vcn_plugin/fo/schema.py``, and tracks are read back
from frames in one place."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vcn_plugin"

#: package -> the packages it may import (transitively closed below it; no package imports its dependants)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "stage1": {"core"},
    "backbones": {"core"},
    "clustering": {"core"},
    "ssl": {"core", "backbones", "clustering"},
    "fo": {"core", "stage1", "backbones", "clustering"},
    "evaluation": {"core", "fo"},
    "corrections": {"core", "fo"},
    "steps": {"core", "stage1", "backbones", "ssl", "clustering", "fo", "corrections"},
    "benchmark": {"core", "stage1", "backbones", "ssl", "clustering", "fo", "evaluation", "steps"},
    "cli": {"core", "stage1", "backbones", "ssl", "clustering", "fo", "evaluation", "corrections", "steps",
            "benchmark"},
}

#: names of FiftyOne fields, run keys and info keys that only fo/schema.py may spell out
SCHEMA_NAMES = {
    "faces", "gt_faces", "gt_shots", "vcn_video", "vcn_video_dataset", "video_id", "video_path", "first_frame",
    "last_frame", "num_faces", "low_quality", "gt_identity", "embedding", "identity.label", "-vcn-tracks",
    "vcn_stage1", "vcn_finetune", "vcn_cluster", "vcn_eval", "vcn_corrections", "vcn_tracks_umap",
}  # fmt: skip


def _modules(base: Path) -> list[Path]:
    return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found.update(n.split(".")[1] for n in names if n.startswith("vcn_plugin."))
    return found


def _package_of(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_only_go_down_the_layers(package):
    wrong = {}
    for path in _modules(PACKAGE / package):
        bad = _imported_packages(path) - ALLOWED[package] - {package}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert not wrong, f"imports from a higher or sibling layer: {wrong}"


def test_the_layers_have_no_cycle():
    # a topological order exists: repeatedly remove packages whose allowed imports are all removed
    left = dict(ALLOWED)
    while left:
        ready = [p for p, deps in left.items() if not (deps & set(left))]
        assert ready, f"cycle among {sorted(left)}"
        for p in ready:
            del left[p]


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docstrings.add(id(body[0].value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_fiftyone_names_are_spelled_only_in_the_schema():
    schema = PACKAGE / "fo" / "schema.py"
    found = [f"{p.relative_to(ROOT)}:{line}: {value!r}"
             for base in (PACKAGE, ROOT / "operators") for p in _modules(base) if p != schema
             for line, value in _string_constants(p) if value in SCHEMA_NAMES]
    assert not found, "use the names of vcn_plugin.fo.schema instead:\n" + "\n".join(found)
    spelled = {value for _, value in _string_constants(schema)}
    assert SCHEMA_NAMES <= spelled | {"identity.label"}  # label paths are built by schema.label_path


def test_tracks_are_read_from_frames_in_one_place():
    """Only fo/frames.py walks a sample's frames to read labels; fo/labels.py writes them."""
    readers = [str(p.relative_to(ROOT)) for p in _modules(PACKAGE) if ".frames.items()" in p.read_text()]
    assert sorted(readers) == ["vcn_plugin/fo/frames.py", "vcn_plugin/fo/labels.py"]
