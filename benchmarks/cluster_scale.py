"""Time and peak memory of the loss-metric clustering for 1k, 10k and 50k synthetic tracks.

Synthetic head outputs with the structure of the real DINO head (see
``vcn_plugin/ssl/head.py``): ``n_tracks // tracks_per_identity`` identities,
each a random unit centre in the D=256 bottleneck; every face's teacher and
student bottlenecks are its identity's centre plus Gaussian noise,
L2-normalised; the prototypes are K random unit vectors (the student's a small
perturbation of the teacher's, as after EMA); teacher probabilities are
``softmax((W_t z_t - c) / 0.04)`` with ``c`` the mean teacher logit, and the
student is kept in factored form ``(z_s, W_s, 0.1)``, as the pipeline does.
Faces are generated and reduced to per-track sums chunk by chunk (as a real run
feeds the model batch by batch), so no per-face (n_faces, K) array of all
tracks ever exists. Each face also gets a backbone embedding (D=128: its identity's
centre in another random space plus the same noise, drawn from its own generator so
the loss faces do not change), whose cosine is the start's agreement view
(``AggregationConfig.agreement``, the default; ``--no-agreement`` leaves it out) and the view of
the silhouette rounds that follow the loss's (``AggregationConfig.view_rounds``, the default;
``--no-view-rounds`` leaves them out).

``--form dense`` clusters the same faces with the K-wide form
(:class:`LossMetricStats` on dense log-probabilities, pruned by its sparse
bound) for comparison.

Each size runs in a fresh subprocess so that ``ru_maxrss`` is that size's peak.
Target: 50k tracks in under 60 s and 4 GiB (clustering; generation reported apart).

    .venv/bin/python benchmarks/cluster_scale.py [--sizes 1000 10000 50000] [--k 4096] [--form factored|dense]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from vcn_plugin.clustering import (  # noqa: E402
    AggregationConfig,
    CosineStats,
    FactoredLossStats,
    LossMetricStats,
    StudentFactors,
    aggregate,
)
from vcn_plugin.clustering.aggregation import (  # noqa: E402
    DEFAULT_AGREEMENT, DEFAULT_LINKAGE, DEFAULT_NEIGHBOUR_DISTANCE, DEFAULT_ROUNDS, DEFAULT_START, DEFAULT_VIEW_ROUNDS,
    LINKAGES, NEIGHBOUR_DISTANCES, ROUNDS, STARTS,
)

TEACHER_TEMP, STUDENT_TEMP = 0.04, 0.1
EMBED_DIM = 128  # the dlib ResNet's


def default_k() -> int:
    from vcn_plugin.ssl.head import DEFAULT_NUM_PROTOTYPES

    return int(DEFAULT_NUM_PROTOTYPES)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_stats(n_tracks: int, k: int, dim: int, faces_per_track: int, tracks_per_identity: int,
                    noise: float, seed: int, form: str):
    """Per-track loss-metric sums of synthetic faces, the cosine sums of their backbone embeddings,
    and the ground-truth identity of each track."""
    rng = np.random.default_rng(seed)
    rng_embed = np.random.default_rng([seed, 1])
    n_ids = max(1, n_tracks // tracks_per_identity)
    centres = _unit(rng.standard_normal((n_ids, dim), dtype=np.float32))
    identity = rng.integers(0, n_ids, size=n_tracks)
    w_teacher = _unit(rng.standard_normal((k, dim), dtype=np.float32))
    w_student = _unit(w_teacher + 0.05 * rng.standard_normal((k, dim), dtype=np.float32))
    # the teacher's centre c: the mean teacher logit over the identity centres in use
    center = _unit(centres[identity]).mean(axis=0) @ w_teacher.T
    embed_centres = _unit(rng_embed.standard_normal((n_ids, EMBED_DIM), dtype=np.float32))
    parts, embed_parts = [], []
    chunk = max(1, 8192 // faces_per_track)
    for s in range(0, n_tracks, chunk):
        tracks = np.arange(s, min(n_tracks, s + chunk))
        face_track = np.repeat(np.arange(tracks.size), faces_per_track)
        base = centres[identity[tracks]][face_track]
        z_t = _unit(base + noise * rng.standard_normal(base.shape, dtype=np.float32))
        z_s = _unit(base + noise * rng.standard_normal(base.shape, dtype=np.float32))
        t = (z_t @ w_teacher.T - center) / TEACHER_TEMP
        t -= t.max(axis=1, keepdims=True)
        np.exp(t, out=t)
        t /= t.sum(axis=1, keepdims=True)
        student = StudentFactors(z_s, w_student, STUDENT_TEMP)
        if form == "factored":
            parts.append(FactoredLossStats.from_faces(t, student, face_track, tracks.size))
        else:
            parts.append(LossMetricStats.from_faces(t, student.log_probs(), face_track, tracks.size))
        emb = embed_centres[identity[tracks]][face_track]
        emb = emb + noise * rng_embed.standard_normal(emb.shape, dtype=np.float32)
        embed_parts.append(CosineStats.from_faces(emb, face_track, tracks.size))
        del t, base, z_t, z_s, emb
    return type(parts[0]).concatenate(parts), CosineStats.concatenate(embed_parts), identity


def run_one(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    stats, embedding_stats, identity = synthetic_stats(args.single, args.k, args.dim, args.faces, args.tracks_per_identity,
                                                       args.noise, args.seed, args.form)
    t1, c1 = time.perf_counter(), time.process_time()
    result = aggregate(stats, agreement=embedding_stats, config=AggregationConfig(
        compute_margins=not args.no_margins, linkage=args.linkage, start=args.start, neighbour_distance=args.neighbours,
        rounds=args.rounds, agreement=not args.no_agreement, view_rounds=not args.no_view_rounds))
    t2, c2 = time.perf_counter(), time.process_time()
    return {
        "tracks": args.single,
        "k": args.k,
        "form": args.form,
        "linkage": args.linkage,
        "start": args.start,
        "rounds": args.rounds,
        "neighbours": args.neighbours,
        "agreement": not args.no_agreement,
        "view_rounds": not args.no_view_rounds,
        "generate_s": round(t1 - t0, 2),
        "cluster_s": round(t2 - t1, 2),
        "cluster_cpu_s": round(c2 - c1, 2),  # CPU time, less sensitive to other users of a shared machine
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "stats_gib": round(sum(getattr(stats, f).nbytes for f in stats._fields) / 2**30, 2),
        "identities": int(np.unique(identity).size),
        "clusters": result.n_clusters,
        "iterations": result.iterations,
        "merges": result.merges_per_iteration,
        "ari": round(float(adjusted_rand_score(identity, result.labels)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--k", type=int, default=default_k(), help="prototypes K (default: the SSL head's)")
    parser.add_argument("--dim", type=int, default=256, help="bottleneck width D (default: the SSL head's 256)")
    parser.add_argument("--form", choices=("factored", "dense"), default="factored",
                        help="factored (the pipeline's, default) or the K-wide dense form")
    parser.add_argument("--faces", type=int, default=8, help="faces per track (default 8)")
    parser.add_argument("--tracks-per-identity", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.06,
                        help="std of per-face bottleneck noise per dimension (identity centres are unit vectors)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--linkage", choices=LINKAGES, default=DEFAULT_LINKAGE,
                        help="the aggregation's merge rule (default: the product's)")
    parser.add_argument("--start", choices=STARTS, default=DEFAULT_START, help="the aggregation's first round (default: the product's)")
    parser.add_argument("--rounds", choices=ROUNDS, default=DEFAULT_ROUNDS, help="what follows the start (default: the product's)")
    parser.add_argument("--neighbours", choices=NEIGHBOUR_DISTANCES, default=DEFAULT_NEIGHBOUR_DISTANCE,
                        help="what nearest means (default: the product's)")
    parser.add_argument("--no-margins", action="store_true", help="skip the per-track margins")
    parser.add_argument("--no-agreement", action="store_true", default=not DEFAULT_AGREEMENT,
                        help="keep every link of the start (default: the product's agreement with the embeddings)")
    parser.add_argument("--no-view-rounds", action="store_true", default=not DEFAULT_VIEW_ROUNDS,
                        help="no silhouette rounds on the embeddings' cosine after the loss's (default: the product's)")
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_one(args)))
        return
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--single", str(n), "--k", str(args.k), "--dim", str(args.dim), "--form", args.form,
               "--faces", str(args.faces), "--linkage", args.linkage, "--start", args.start, "--rounds", args.rounds, "--neighbours", args.neighbours,
               "--tracks-per-identity", str(args.tracks_per_identity), "--noise", str(args.noise), "--seed", str(args.seed)]
        if args.no_margins:
            cmd.append("--no-margins")
        if args.no_agreement:
            cmd.append("--no-agreement")
        if args.no_view_rounds:
            cmd.append("--no-view-rounds")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"done {n}", file=sys.stderr, flush=True)
    header = ("tracks", "k", "form", "linkage", "start", "rounds", "neighbours", "view_rounds", "generate_s", "cluster_s", "cluster_cpu_s", "peak_rss_gib", "stats_gib", "identities", "clusters", "iterations", "ari", "merges")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        print(" | ".join(str(row[h]) for h in header))


if __name__ == "__main__":
    main()
