"""Choosing an episode's cast from a folder of identity subfolders.

* ``random``: identities drawn uniformly without replacement.
* ``lookalike``: a greedy cluster of people who look alike to a pretrained face-ID model: start
  from a random identity, then repeatedly add the identity whose mean dlib embedding is nearest
  (smallest mean Euclidean distance) to the people already cast. A fixed threshold then has a
  hard time separating them, as in a film whose characters share age, gender and styling.

Embeddings are dlib's ResNet face descriptors (``dlib_face_recognition_resnet_model_v1``, 128-d,
from ``face_recognition_models``) after dlib's HOG detector and 5-point shape predictor; an
identity's embedding is the mean over up to ``photos_per_identity`` photos, and only identities
with at least ``min_photos`` usable photos are candidates. They are cached in a JSON file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from vcn_plugin.benchmark.sources import detect_largest_face, load_rgb

CAST_MODES = ("random", "lookalike")


def random_cast(identities: Sequence[str], size: int, rng: np.random.Generator) -> list[str]:
    """``size`` distinct identities drawn uniformly (in draw order)."""
    if size > len(identities):
        raise ValueError(f"cast of {size} requested but only {len(identities)} identities are available")
    return [identities[i] for i in rng.choice(len(identities), size=size, replace=False)]


def lookalike_cast(embeddings: Mapping[str, np.ndarray], size: int, rng: np.random.Generator) -> list[str]:
    """Greedy look-alike cast: a random first identity, then always the one nearest on average."""
    names = sorted(embeddings)
    if size > len(names):
        raise ValueError(f"look-alike cast of {size} requested but only {len(names)} identities have embeddings")
    matrix = np.stack([embeddings[n] for n in names])
    dist = np.linalg.norm(matrix[:, None] - matrix[None], axis=2)
    chosen = [int(rng.integers(len(names)))]
    total = dist[chosen[0]].copy()
    while len(chosen) < size:
        candidate_cost = total / len(chosen)
        candidate_cost[chosen] = np.inf
        nxt = int(np.argmin(candidate_cost))
        chosen.append(nxt)
        total += dist[nxt]
    return [names[i] for i in chosen]


def mean_pairwise_distance(embeddings: Mapping[str, np.ndarray], cast: Sequence[str]) -> float:
    """Mean Euclidean distance between the mean embeddings of every pair in ``cast``."""
    if len(cast) < 2:
        raise ValueError("need at least two identities to measure distances")
    m = np.stack([embeddings[n] for n in cast])
    d = np.linalg.norm(m[:, None] - m[None], axis=2)
    return float(d[np.triu_indices(len(cast), 1)].mean())


class DlibEmbedder:
    """dlib HOG detection + 5-point landmarks + ResNet descriptor for one photo."""

    def __init__(self):
        import dlib
        import face_recognition_models as frm

        self.shape_predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.model = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self._rectangle = dlib.rectangle

    def __call__(self, photo: Path) -> np.ndarray | None:
        rgb, _ = load_rgb(photo)
        box = detect_largest_face(rgb)
        if box is None:
            return None
        rect = self._rectangle(*(int(round(v)) for v in (box[0], box[1], box[2] - 1, box[3] - 1)))
        shape = self.shape_predictor(rgb, rect)
        return np.asarray(self.model.compute_face_descriptor(rgb, shape), dtype=np.float64)


def identity_embeddings(
    identities: Mapping[str, Sequence[Path]],
    cache_path: str | Path | None,
    photos_per_identity: int = 3,
    min_photos: int = 2,
    max_attempts: int = 6,
    progress: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Mean dlib embedding of each identity that has >= ``min_photos`` usable photos.

    Up to ``max_attempts`` photos (evenly spread over the sorted list) are tried until
    ``photos_per_identity`` give a descriptor. Results, including "not enough photos", are
    cached in ``cache_path`` (JSON keyed by identity and the photos tried).
    """
    cache_file = Path(cache_path) if cache_path else None
    cache: dict = json.loads(cache_file.read_text()) if cache_file and cache_file.exists() else {}
    embedder: DlibEmbedder | None = None
    result: dict[str, np.ndarray] = {}
    for name, photos in sorted(identities.items()):
        if len(photos) < min_photos:
            continue
        tried = _spread(photos, max_attempts)
        key = f"{name}|{photos_per_identity}|" + "|".join(str(Path(p).resolve()) for p in tried)
        if key not in cache:
            embedder = embedder or DlibEmbedder()
            if progress:
                progress(f"embedding {name}")
            cache[key] = _mean_descriptor(embedder, tried, photos_per_identity, min_photos)
        if cache[key] is not None:
            result[name] = np.asarray(cache[key], dtype=np.float64)
    if cache_file:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache))
    return result


def _spread(photos: Sequence[Path], n: int) -> list[Path]:
    if len(photos) <= n:
        return list(photos)
    return [photos[i] for i in np.linspace(0, len(photos) - 1, n).round().astype(int)]


def _mean_descriptor(embedder: DlibEmbedder, photos: Sequence[Path], wanted: int, minimum: int) -> list[float] | None:
    descriptors = []
    for photo in photos:
        d = embedder(Path(photo))
        if d is not None:
            descriptors.append(d)
        if len(descriptors) == wanted:
            break
    if len(descriptors) < minimum:
        return None
    return np.mean(descriptors, axis=0).tolist()
