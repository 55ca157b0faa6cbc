"""Coarse cross-shot track matching with one Gaussian per track (VideoClusterNet).

Each track ``a`` gets a multivariate Gaussian fitted to its face embeddings and a
threshold: the mean of the lowest 25% of the log-pdf values of its own faces.
Those own-face log-pdfs are cross-validated (each face scored by the Gaussian
fitted without it: leave-one-out up to ``MAX_FOLDS`` faces, then that many
folds). Measured on dlib embeddings of ``../shared/data/faces`` (21 identities
split into two tracks each), in-sample scores matched 0 of 42 same-identity
track pairs -- a face always sits well inside the Gaussian it helped fit, while
another track's mean is out of sample -- whereas cross-validated scores matched
74% of same-identity directions and 1.9% of different-identity ones.
Track ``b`` matches ``a`` when the log-pdf of ``b``'s mean embedding under
``a``'s Gaussian is at least ``a``'s threshold. A pair is returned when *both*
directions match (when only one of the two tracks has enough faces to be
fitted, its direction decides). Accepting either direction lets one broad
Gaussian act as a hub: on benchmark episode ep001 (``vcn benchmark``, 26
tracks) a false-positive non-face track with widely spread embeddings
contained the mean of 23 other tracks, so 23 of the 25 matches were wrong and
finetuning on them pulled 9 identities into 6 clusters. Requiring both
directions made 5 matches there, 2 right and 3 wrong (the hub with three
one-face tracks, which have no Gaussian to refuse it), and the loss-metric
clustering after default finetuning went from 6 to 11 clusters for the 9
identities (accuracy 0.625 -> 0.875); on the ``../shared/data/faces`` test
tracks (tests/ssl/test_track_gaussians.py) every same-identity pair still matches.

Covariance estimator: Oracle Approximating Shrinkage (sklearn ``OAS``, Chen et
al., IEEE TSP 2010). A track has ~2-30 faces in 128-512 dimensions, so the
sample covariance is singular; shrinking it towards a scaled identity keeps
the pdf defined. OAS and Ledoit-Wolf shrink towards the same target, but
Ledoit-Wolf's shrinkage estimate is asymptotic in the number of samples and is
known to under-shrink when n << d, while OAS is derived for Gaussian data and
converges faster at small n (the regime here). With n << d both end close to
isotropic, i.e. the rule becomes a per-track adaptive radius around the mean,
which is the intended behaviour for a coarse, high-precision matcher.

Augmented views. A track of one photo (or of near-identical frames) gives a
Gaussian so tight that no other track's mean falls inside it. Each track may
therefore be given several views of every face, ``(V, n, D)``: the chip and
augmentations of it (the finetuning already embeds them for the head stage).
The views are fitted together, the cross-validation holds out all views of a
face at once (a view scored by a Gaussian fitted on its own siblings would be
in-sample again), and the candidate's mean is the mean over its views. On
benchmark episode ep001 this took the first matching round from 5 pairs (2
right, 3 wrong) to 7 pairs (all right) with the default 3 views (the chip and
2 augmentations), and to 10 pairs (all right) with the chip and 4.

Tracks known to be different people (visible in one frame, or in one shot) can
be excluded through ``cannot_link``.

The fits run with BLAS limited to one thread: the matrices are small (D x D)
and a multi-threaded OpenBLAS on a busy 2-core machine was measured ~100x
slower on them (spin-waiting threads).
"""
from __future__ import annotations

import logging
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.stats import multivariate_normal
from sklearn.covariance import OAS
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)

#: Fraction of a track's own faces (lowest log-pdf) averaged into its threshold.
DEFAULT_THRESHOLD_QUANTILE = 0.25
#: Cross-validation folds for the own-face scores (leave-one-out below this many faces).
MAX_FOLDS = 10
#: Fewest faces a track needs to be fitted (2 to fit, +1 to hold one out).
DEFAULT_MIN_FACES = 3


@dataclass
class TrackGaussian:
    """A track's Gaussian and its adaptive log-pdf threshold."""

    mean: np.ndarray  # (D,)
    covariance: np.ndarray  # (D, D), positive definite
    shrinkage: float
    threshold: float = float("nan")

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log-density of rows of ``x`` (n, D) -> (n,)."""
        return np.atleast_1d(multivariate_normal(self.mean, self.covariance).logpdf(np.atleast_2d(x)))


@dataclass
class MatchResult:
    """Matched track pairs (unordered, each once, in input order) and what was compared."""

    pairs: list[tuple[Hashable, Hashable]] = field(default_factory=list)
    num_tracks: int = 0
    num_fitted: int = 0  # tracks with enough faces to fit a Gaussian
    num_excluded: int = 0  # candidate pairs skipped through cannot_link

    def __len__(self) -> int:
        return len(self.pairs)


def union_of_matches(*results: MatchResult) -> MatchResult:
    """The pairs found by any of several matchers over the same tracks, each once, in the order
    first found (a pair matched as ``(b, a)`` by a later matcher is the same pair)."""
    if not results:
        raise ValueError("union_of_matches needs at least one MatchResult")
    if len({r.num_tracks for r in results}) > 1:
        raise ValueError(f"the matchers saw different track counts {[r.num_tracks for r in results]}")
    seen: set[frozenset] = set()
    union = MatchResult(num_tracks=results[0].num_tracks, num_fitted=max(r.num_fitted for r in results),
                        num_excluded=max(r.num_excluded for r in results))  # fmt: skip
    for pair in (p for r in results for p in r.pairs):
        if frozenset(pair) not in seen:
            seen.add(frozenset(pair))
            union.pairs.append(pair)
    return union


def drop_conflicting_matches(result: MatchResult, cannot_link: Collection[tuple[Hashable, Hashable]]) -> MatchResult:
    """The matches outside every conflicting group: a group (connected component of the matched
    pairs) that chains two tracks known to be different people (a cannot-link pair, e.g. two
    tracks seen in one frame) holds at least one false match, and nothing tells which, so all of
    its matches are dropped. A broad track that matches many others (a hub) is caught this way
    whenever two of its partners were seen together.

    Measured on the 10-episode suite (``benchmarks/finetune_study.py --points drop-conflicts``):
    last-round precision .621 -> .783 at recall .473 -> .315; on day-for-night 3 a hub's 96 pairs
    (8 right) are all dropped."""
    keys = list(dict.fromkeys(k for pair in result.pairs for k in pair))
    if not keys:
        return result
    index = {k: i for i, k in enumerate(keys)}
    a, b = np.array([[index[x] for x in pair] for pair in result.pairs]).T
    _, group = connected_components(sp.csr_matrix((np.ones(a.size), (a, b)), shape=(len(keys),) * 2), directed=False)
    bad = {group[index[x]] for x, y in (tuple(p) for p in cannot_link)
           if x in index and y in index and group[index[x]] == group[index[y]]}  # fmt: skip
    kept = [pair for pair in result.pairs if group[index[pair[0]]] not in bad]
    logger.info("coarse matching: %d of %d pairs dropped in groups that chain a cannot-link pair",
                len(result.pairs) - len(kept), len(result.pairs))  # fmt: skip
    return MatchResult(pairs=kept, num_tracks=result.num_tracks, num_fitted=result.num_fitted,
                       num_excluded=result.num_excluded)  # fmt: skip


def fit_gaussian(embeddings: np.ndarray) -> TrackGaussian:
    """OAS shrinkage Gaussian of embeddings (n >= 2, D), without a threshold."""
    x = _as_matrix(embeddings, "embeddings")
    if x.shape[0] < 2:
        raise ValueError(f"a Gaussian needs at least 2 faces, got {x.shape[0]}")
    oas = OAS(store_precision=False, assume_centered=False).fit(x)
    return TrackGaussian(oas.location_, _ensure_positive_definite(oas.covariance_), float(oas.shrinkage_))


def cross_validated_logpdf(embeddings: np.ndarray) -> np.ndarray:
    """Log-pdf of each face under the Gaussian fitted to the other folds (n >= 3 faces).

    ``embeddings``: (n, D), or (V, n, D) for V views of each face; all views of a face are
    held out together. Returns one score per row of the flattened (V * n, D) matrix.
    """
    views = _as_views(embeddings, "embeddings")
    n = views.shape[1]
    if n < 3:
        raise ValueError(f"cross-validated scores need at least 3 faces, got {n}")
    x = views.reshape(-1, views.shape[2])
    face = np.tile(np.arange(n), views.shape[0])
    folds = face % min(MAX_FOLDS, n)
    scores = np.empty(x.shape[0])
    for fold in np.unique(folds):
        held_out = folds == fold
        scores[held_out] = fit_gaussian(x[~held_out]).logpdf(x[held_out])
    return scores


def fit_track_gaussian(embeddings: np.ndarray, quantile: float = DEFAULT_THRESHOLD_QUANTILE) -> TrackGaussian:
    """Fit one track's Gaussian (all faces, all views) and threshold (cross-validated own
    faces; n >= 3 faces). ``embeddings``: (n, D) or (V, n, D)."""
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    views = _as_views(embeddings, "embeddings")
    gaussian = fit_gaussian(views.reshape(-1, views.shape[2]))
    own = np.sort(cross_validated_logpdf(views))
    gaussian.threshold = float(own[: max(1, int(np.ceil(quantile * len(own))))].mean())
    return gaussian


def match_tracks(
    track_embeddings: Mapping[Hashable, np.ndarray],
    cannot_link: Collection[tuple[Hashable, Hashable]] = (),
    quantile: float = DEFAULT_THRESHOLD_QUANTILE,
    min_faces: int = DEFAULT_MIN_FACES,
) -> MatchResult:
    """Match tracks whose mean embedding falls inside another track's Gaussian.

    Args:
        track_embeddings: track key -> face embeddings (n, D), or (V, n, D) with V
            views (the chip, augmentations) of each face; D equal for all, V too.
            Tracks with fewer than ``min_faces`` faces are not fitted; they
            still match as the candidate ``b`` of other tracks.
        cannot_link: pairs of track keys never to match (order ignored).
        quantile: share of a track's lowest own-face log-pdfs averaged into its threshold.
        min_faces: fewest faces for a track to get a Gaussian (>= 3).

    Returns:
        :class:`MatchResult`; ``pairs`` holds ``(a, b)`` with ``a`` before ``b``
        in the input order.
    """
    if min_faces < 3:
        raise ValueError(f"min_faces must be >= 3 (fit on 2, hold 1 out), got {min_faces}")
    keys = list(track_embeddings)
    tracks = [_as_views(track_embeddings[k], f"embeddings of track {k!r}") for k in keys]
    shapes = {(v.shape[0], v.shape[2]) for v in tracks}
    if len(shapes) > 1:
        raise ValueError(f"all tracks need embeddings of one dimension and one view count, got (views, D) {sorted(shapes)}")
    forbidden = _normalise_cannot_link(cannot_link, set(keys))
    means = np.stack([v.mean(axis=(0, 1)) for v in tracks]) if keys else np.zeros((0, 0))
    matched = np.zeros((len(keys), len(keys)), dtype=bool)
    fitted = np.zeros(len(keys), dtype=bool)
    result = MatchResult(num_tracks=len(keys))
    with threadpool_limits(limits=1, user_api="blas"):
        for i, x in enumerate(tracks):
            if x.shape[1] < min_faces:
                continue
            gaussian = fit_track_gaussian(x, quantile)
            result.num_fitted += 1
            fitted[i] = True
            matched[i] = gaussian.logpdf(means) >= gaussian.threshold
    np.fill_diagonal(matched, False)
    matched = _symmetric_matches(matched, fitted)
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            if not matched[i, j]:
                continue
            if frozenset((keys[i], keys[j])) in forbidden:
                result.num_excluded += 1
                continue
            result.pairs.append((keys[i], keys[j]))
    logger.info(
        "coarse matching: %d pairs among %d tracks (%d fitted, %d excluded by cannot-link)",
        len(result.pairs), result.num_tracks, result.num_fitted, result.num_excluded,
    )
    return result


def _symmetric_matches(directed: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """Pairs accepted by every Gaussian that can judge them: both directions when both tracks
    are fitted, the one direction when only one is (a track too small to fit has no Gaussian)."""
    both = fitted[:, None] & fitted[None, :]
    return np.where(both, directed & directed.T, directed | directed.T)


def _as_matrix(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty (n, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or inf")
    return x


def _as_views(x: np.ndarray, what: str) -> np.ndarray:
    """(n, D) or (V, n, D) -> (V, n, D) float64, validated."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"{what} must be a non-empty (n, D) or (views, n, D) array, got shape {x.shape}")
    _as_matrix(x.reshape(-1, x.shape[2]), what)
    return x


def _ensure_positive_definite(covariance: np.ndarray) -> np.ndarray:
    """Floor the spectrum at 1e-6 x its mean, so that identical faces still give a valid pdf."""
    floor = 1e-6 * max(float(np.trace(covariance)) / covariance.shape[0], 1e-12)
    return covariance + floor * np.eye(covariance.shape[0])


def _normalise_cannot_link(pairs: Collection[tuple[Hashable, Hashable]], keys: set[Hashable]) -> set[frozenset]:
    forbidden: set[frozenset] = set()
    for pair in pairs:
        pair = tuple(pair)
        if len(pair) != 2:
            raise ValueError(f"cannot_link entries must be pairs of track keys, got {pair!r}")
        unknown = [k for k in pair if k not in keys]
        if unknown:
            raise ValueError(f"cannot_link names unknown track keys {unknown!r}; use the keys of track_embeddings")
        forbidden.add(frozenset(pair))
    return forbidden
