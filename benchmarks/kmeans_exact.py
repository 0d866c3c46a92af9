"""Exact Lloyd: ivfpq vs scikit-learn vs faiss, same data, same initial centroids.

Each contender runs the same number of Lloyd iterations from the same initial
centroids on the same float32 data, in this one process. Reported: seconds per
iteration (total fit time / iterations), and seconds per assignment pass (total fit
time / assignment passes): ivfpq and scikit-learn make one more pass than they
iterate, so that ``labels_`` belong to the final centroids, while faiss returns the
labels of its last iteration. ``ivfpq-unbounded`` is ours without the per-point bounds
that let a pass skip work (every pass scores every row against every centroid).
GFLOP/s count 2*n*k*d per assignment pass, whether or not the pass does all of that
work (ours with bounds does not: its figures are effective rates); "of GEMM" is
that over this machine's float32 GEMM speed at the same shape (numpy's BLAS, all
threads, the rows in blocks of 4,096 against all centroids, median of 3). Ratios are
to the faster peer; the final inertia is each library's own report.

    python benchmarks/kmeans_exact.py                     # the three issue configurations
    python benchmarks/kmeans_exact.py --quick             # n=100k, k=1,000 only
    python benchmarks/kmeans_exact.py --config 1000000,128,1000,5 --repeat 3
    python benchmarks/kmeans_exact.py --real --contenders ivfpq,ivfpq-unbounded,faiss --repeat 3
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import gaussian_mixture, machine_line, print_table  # noqa: E402

CONFIGS = [(100_000, 128, 1_000, 10), (1_000_000, 128, 1_000, 5), (1_000_000, 128, 10_000, 3)]
#: ``--real``: one real set per dimension (``../shared/data``), rows (None: all), k, iterations.
REAL_CONFIGS = [("glove", None, 5_000, 10), ("sift-debian", 200_000, 5_000, 10), ("minilm", None, 5_000, 10),
                ("fashion-mnist", None, 5_000, 10)]


def gemm_gflops(X, C0, block_rows=4096, repeat=3):
    """This machine's float32 GEMM speed for ``X @ C0.T`` (GFLOP/s, median of ``repeat``)."""
    n, d = X.shape
    weights = np.ascontiguousarray(C0.T)
    out = np.empty((block_rows, C0.shape[0]), dtype=np.float32)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for lo in range(0, n, block_rows):
            hi = min(n, lo + block_rows)
            np.matmul(X[lo:hi], weights, out=out[:hi - lo])
        times.append(time.perf_counter() - start)
    return 2.0 * n * C0.shape[0] * d / statistics.median(times) / 1e9


def run_ivfpq(X, C0, iters):
    from ivfpq import KMeans

    start = time.perf_counter()
    model = KMeans(len(C0), init=C0, max_iter=iters, tol=0).fit(X)
    return time.perf_counter() - start, model.inertia_, model.n_iter_, model.n_iter_ + 1


def run_ivfpq_unbounded(X, C0, iters):
    """Ours without the per-point bounds: every pass scores every row against every centroid."""
    from ivfpq.cluster.assign import ExactAssigner
    from ivfpq.cluster.lloyd import lloyd_on_array

    start = time.perf_counter()
    result = lloyd_on_array(X, C0, ExactAssigner(bounds=False), iters)
    return time.perf_counter() - start, result.inertia, result.n_iter, result.n_iter + 1


def run_sklearn(X, C0, iters):
    from sklearn.cluster import KMeans

    start = time.perf_counter()
    model = KMeans(len(C0), init=C0, n_init=1, max_iter=iters, tol=0, algorithm="lloyd").fit(X)
    return time.perf_counter() - start, float(model.inertia_), model.n_iter_, model.n_iter_ + 1


def run_faiss(X, C0, iters):
    import faiss

    km = faiss.Kmeans(X.shape[1], len(C0), niter=iters, seed=0, max_points_per_centroid=10**9,
                      min_points_per_centroid=1, verbose=False)
    start = time.perf_counter()
    km.train(X, init_centroids=C0)
    seconds = time.perf_counter() - start
    # faiss's objective for the last iteration is the cost of its last assignment.
    return seconds, float(km.obj[-1]), iters, iters


CONTENDERS = {"ivfpq": run_ivfpq, "ivfpq-unbounded": run_ivfpq_unbounded, "scikit-learn": run_sklearn,
              "faiss": run_faiss}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only n=100k, d=128, k=1,000")
    parser.add_argument("--config", action="append", default=[],
                        help="n,d,k,iterations (repeatable); replaces the default configurations")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the median is reported")
    parser.add_argument("--real", action="store_true",
                        help="the real sets of REAL_CONFIGS (d = 50, 128, 384, 784) instead")
    parser.add_argument("--contenders", default="ivfpq,scikit-learn,faiss")
    args = parser.parse_args(argv)

    configs = [tuple(int(v) for v in c.split(",")) for c in args.config] or (
        REAL_CONFIGS if args.real else CONFIGS[:1] if args.quick else CONFIGS)
    contenders = args.contenders.split(",")
    print(f"# kmeans_exact  {datetime.date.today()}  {machine_line()}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:] if argv is None else argv)}")

    rows = []
    for config in configs:
        if isinstance(config[0], str):
            from kmeans_large_k import load

            data, n_rows, k, iters = config
            X = load(data, n_rows, 0)
            n, d = X.shape
        else:
            n, d, k, iters = config
            data = "mixture"
            X = gaussian_mixture(n, d, n_components=max(k, 100), seed=0)
        C0 = X[np.random.default_rng(1).choice(n, k, replace=False)].copy()
        flops = 2.0 * n * k * d
        gemm = gemm_gflops(X, C0)
        results = {}
        for name in contenders:
            runs = [CONTENDERS[name](X, C0, iters) for _ in range(args.repeat)]
            seconds = statistics.median(r[0] for r in runs)
            _, inertia, n_iter, passes = runs[0]
            results[name] = (seconds / n_iter, seconds / passes, inertia)
            print(f"  n={n} d={d} k={k}: {name:13s} {seconds / n_iter:8.3f} s/iter "
                  f"{seconds / passes:8.3f} s/pass", flush=True)
        peers = [p for p in ("scikit-learn", "faiss") if p in results]
        best_iter = min((results[p][0] for p in peers), default=None)
        best_pass = min((results[p][1] for p in peers), default=None)
        for name, (per_iter, per_pass, inertia) in results.items():
            rows.append({
                "data": data, "n": n, "d": d, "k": k, "iters": iters, "contender": name,
                "s/iter": per_iter, "s/iter / faster peer": per_iter / best_iter if best_iter else None,
                "s/pass": per_pass, "s/pass / faster peer": per_pass / best_pass if best_pass else None,
                "GFLOP/s": flops / per_pass / 1e9, "of GEMM": flops / per_pass / 1e9 / gemm,
                "final inertia": inertia,
            })
    print_table(rows, ["data", "n", "d", "k", "iters", "contender", "s/iter", "s/iter / faster peer", "s/pass",
                       "s/pass / faster peer", "GFLOP/s", "of GEMM", "final inertia"],
                title="Exact Lloyd: seconds per iteration and per assignment pass")
    return rows


if __name__ == "__main__":
    main()
