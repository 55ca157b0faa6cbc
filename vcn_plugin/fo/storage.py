"""Files vcn keeps beside a dataset (checkpoints, thumbnails): where they go, by dataset id.

Folders are named by the dataset's database id, never by its name: FiftyOne accepts names
such as ``../../victim``, and a name can be reused by another dataset after a delete. Every
path is resolved and checked to lie inside vcn's own root before anything is written, and
vcn removes only files it wrote there (see ``steps.finetune._remove_checkpoints``).
"""
from __future__ import annotations

import re
from pathlib import Path

import fiftyone as fo

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def vcn_root() -> Path:
    """``<FiftyOne's default dataset dir>/vcn``: the only place vcn writes files of its own."""
    return (Path(fo.config.default_dataset_dir).expanduser() / "vcn").resolve()


def dataset_dir(dataset: fo.Dataset, kind: str, root: str | Path | None = None) -> Path:
    """``<root>/<kind>/<dataset id>``, created (with its marker), checked to lie inside ``root``
    (default :func:`vcn_root`). ``kind`` is a plain folder name such as ``models``."""
    if not _KEY.match(kind):
        raise ValueError(f"invalid storage kind {kind!r}")
    root = Path(root).expanduser().resolve() if root is not None else vcn_root()
    path = inside(root, root / kind / f"ds_{dataset._doc.id}")
    make_own_dir(path)
    return path


def inside(root: Path, path: Path) -> Path:
    """``path`` resolved; ValueError unless it lies strictly inside ``root`` (resolved)."""
    root, resolved = Path(root).resolve(), Path(path).resolve()
    if resolved == root or root not in resolved.parents:
        raise ValueError(f"refusing to use {path}: it is not inside vcn's folder {root}")
    return resolved


def make_own_dir(path: Path) -> Path:
    """Create ``path`` (and parents)."""
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_key(key: str, what: str = "run key") -> str:
    """``key`` if it is a valid FiftyOne key (a Python identifier), else a ValueError saying so;
    called before anything is written, so a bad key changes nothing."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"invalid {what} {key!r}: use letters, digits and underscores, starting with a letter")
    return key
