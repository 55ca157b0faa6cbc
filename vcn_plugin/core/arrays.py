"""Validation of the numeric arrays that cross layers (model outputs, per-face features)."""
from __future__ import annotations

import numpy as np


def as_float_matrix(name: str, x: np.ndarray, n_rows: int | None = None) -> np.ndarray:
    """``x`` as a finite float32/float64 (n, dim) matrix; ValueError naming ``name`` otherwise."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_faces, dim), got shape {x.shape}")
    if n_rows is not None and x.shape[0] != n_rows:
        raise ValueError(f"{name} has {x.shape[0]} rows but face_track has {n_rows} entries; give one row per face")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; check the model outputs")
    return x
