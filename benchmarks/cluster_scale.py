"""Time and peak memory of the loss-metric clustering for 1k, 10k and 50k synthetic tracks.

Synthetic head outputs: ``n_tracks // tracks_per_identity`` identities, each a
random logit centre over K prototypes; every face's teacher and student logits
are its identity's centre plus Gaussian noise; teacher probabilities are
``softmax((t - c) / 0.04)`` with ``c`` the mean teacher output, student
log-probabilities ``log_softmax(s / 0.1)`` (the SSL defaults). Faces are
generated and reduced to per-track sums chunk by chunk (as a real run feeds
the model batch by batch), so the per-face arrays of 50k tracks (26 GB at
K=4096) never exist at once.

Each size runs in a fresh subprocess so that ``ru_maxrss`` is that size's peak.
Target: 50k tracks in under 60 s and 4 GiB (clustering; generation reported apart).

    .venv/bin/python benchmarks/cluster_scale.py [--sizes 1000 10000 50000] [--k 4096]
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

from vcn_plugin.clustering import AggregationConfig, LossMetricStats, aggregate  # noqa: E402

TEACHER_TEMP, STUDENT_TEMP = 0.04, 0.1


def default_k() -> int:
    try:
        from vcn_plugin.ssl.head import DEFAULT_NUM_PROTOTYPES

        return int(DEFAULT_NUM_PROTOTYPES)
    except ImportError:
        return 4096


def synthetic_stats(n_tracks: int, k: int, faces_per_track: int, tracks_per_identity: int, noise: float, seed: int):
    """Per-track loss-metric sums of synthetic faces, and the ground-truth identity of each track."""
    rng = np.random.default_rng(seed)
    n_ids = max(1, n_tracks // tracks_per_identity)
    centres = rng.standard_normal((n_ids, k), dtype=np.float32)
    identity = rng.integers(0, n_ids, size=n_tracks)
    # the teacher's centre c: the mean teacher output, i.e. the mean of the identity centres used
    center = centres[identity].mean(axis=0)
    sum_p = np.empty((n_tracks, k), np.float32)
    sum_nlogq = np.empty((n_tracks, k), np.float32)
    diag = np.empty(n_tracks)
    chunk = max(1, 8192 // faces_per_track)
    for s in range(0, n_tracks, chunk):
        tracks = np.arange(s, min(n_tracks, s + chunk))
        face_track = np.repeat(np.arange(tracks.size), faces_per_track)
        base = centres[identity[tracks]][face_track]
        t = (base + noise * rng.standard_normal(base.shape, dtype=np.float32) - center) / TEACHER_TEMP
        t -= t.max(axis=1, keepdims=True)
        np.exp(t, out=t)
        t /= t.sum(axis=1, keepdims=True)
        q = (base + noise * rng.standard_normal(base.shape, dtype=np.float32)) / STUDENT_TEMP
        q -= q.max(axis=1, keepdims=True)
        q -= np.log(np.exp(q).sum(axis=1, keepdims=True))
        part = LossMetricStats.from_faces(t, q, face_track, tracks.size)
        sum_p[tracks], sum_nlogq[tracks], diag[tracks] = part.sum_p, part.sum_nlogq, part.diag
        del t, q, base, part
    counts = np.full(n_tracks, faces_per_track, np.int64)
    return LossMetricStats(sum_p, sum_nlogq, diag, counts), identity


def run_one(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    stats, identity = synthetic_stats(args.single, args.k, args.faces, args.tracks_per_identity, args.noise, args.seed)
    t1, c1 = time.perf_counter(), time.process_time()
    result = aggregate(stats, config=AggregationConfig(compute_margins=not args.no_margins))
    t2, c2 = time.perf_counter(), time.process_time()
    return {
        "tracks": args.single,
        "k": args.k,
        "generate_s": round(t1 - t0, 2),
        "cluster_s": round(t2 - t1, 2),
        "cluster_cpu_s": round(c2 - c1, 2),  # CPU time, less sensitive to other users of a shared machine
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "stats_gib": round((stats.sum_p.nbytes + stats.sum_nlogq.nbytes) / 2**30, 2),
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
    parser.add_argument("--faces", type=int, default=8, help="faces per track (default 8)")
    parser.add_argument("--tracks-per-identity", type=int, default=5)
    parser.add_argument("--noise", type=float, default=1.0, help="std of per-face logit noise (identity centres have std 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-margins", action="store_true", help="skip the per-track margins")
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_one(args)))
        return
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--single", str(n), "--k", str(args.k), "--faces", str(args.faces),
               "--tracks-per-identity", str(args.tracks_per_identity), "--noise", str(args.noise), "--seed", str(args.seed)]
        if args.no_margins:
            cmd.append("--no-margins")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"done {n}", file=sys.stderr, flush=True)
    header = ("tracks", "k", "generate_s", "cluster_s", "cluster_cpu_s", "peak_rss_gib", "stats_gib", "identities", "clusters", "iterations", "ari", "merges")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        print(" | ".join(str(row[h]) for h in header))


if __name__ == "__main__":
    main()
