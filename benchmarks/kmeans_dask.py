"""Seconds per k-means iteration: in memory vs a local Dask cluster of 1 and 2 workers.

Same data, same initial centroids, same number of iterations (tol=0) in every
setting; the Dask fits run on ``LocalCluster(n_workers=w, threads_per_worker=1)``
processes with the data persisted on the workers first. Per-iteration times are the
medians of the differences of ``history_`` timestamps (first iteration excluded:
it includes the workers' first touch of the data). The Dask result is checked against
the in-memory one (labels and centroids).

Full size (the issue's target; needs ~4 GB and a long time on 2 cores)::

    python benchmarks/kmeans_dask.py --n 1000000 --d 128 --k 10000 --iters 5 --repeat 2 --algorithm mop

Reduced (what fits in ~10 minutes on the 2-core reference machine)::

    python benchmarks/kmeans_dask.py --n 100000 200000 --d 128 --k 1000 --iters 8
    python benchmarks/kmeans_dask.py --quick
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import gaussian_mixture, machine_line, print_table  # noqa: E402


def iteration_seconds(model):
    """Seconds of each iteration but the first (which includes first touches of the data)."""
    stamps = [0.0] + [seconds for seconds, _ in model.history_]
    steps = np.diff(stamps).tolist()
    return steps[1:] if len(steps) > 2 else steps


def make_model(k, init, iters, algorithm, n_threads=None):
    from ivfpq import KMeans

    params = dict(init=init, max_iter=iters, tol=0, n_threads=n_threads, random_state=0)
    if algorithm != "lloyd":
        params["algorithm"] = algorithm
    return KMeans(k, **params)


def run_in_memory(X, init, args):
    model = make_model(args.k, init, args.iters, args.algorithm, args.threads)
    start = time.perf_counter()
    model.fit(X)
    return model, time.perf_counter() - start


def start_cluster(X, init, args, n_workers):
    """A LocalCluster of ``n_workers`` processes with X persisted on it and kernels loaded."""
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=40)
    client = Client(cluster, set_as_default=False)
    chunk_rows = args.chunk_rows or -(-X.shape[0] // args.chunks)
    if args.algorithm == "mop" and not args.chunk_rows:
        # Whole bulks of mop's bulk_size (2048) rows: then the result is the in-memory one.
        chunk_rows = -(-chunk_rows // 2048) * 2048
    with client.as_current():
        X_dask = client.persist(da.from_array(X, chunks=(chunk_rows, X.shape[1])))
        wait(X_dask)
        # Load the compiled kernels in every worker (the Numba cache on disk).
        warm = min(X.shape[0], 4 * args.k)
        make_model(args.k, init, 1, args.algorithm).fit(
            da.from_array(X[:warm], chunks=(-(-warm // (2 * n_workers)), X.shape[1])))
    return cluster, client, X_dask


def run_on_dask(client, X_dask, init, args):
    """Fit on the cluster; also returns the seconds the workers spent inside tasks."""
    from distributed import get_task_stream

    with client.as_current():
        model = make_model(args.k, init, args.iters, args.algorithm, args.threads)
        with get_task_stream(client) as stream:
            start = time.perf_counter()
            model.fit(X_dask)
            total = time.perf_counter() - start
        labels = model.labels_.compute()
    busy = {}
    for task in stream.data:
        if "lloyd" in str(task["key"]):  # the loop's per-chunk kernels, init excluded
            busy.setdefault(task["worker"], 0.0)
            busy[task["worker"]] += sum(s["stop"] - s["start"] for s in task["startstops"]
                                        if s["action"] == "compute")
    return model, total, labels, max(busy.values()) / (model.n_iter_ + 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[200_000], help="rows (several: one run each)")
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--algorithm", default="lloyd", help="lloyd (exact) or mop")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chunks", type=int, default=4, help="row chunks of X (ignored with --chunk-rows)")
    parser.add_argument("--chunk-rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved fits per setting (median)")
    parser.add_argument("--threads", type=int, default=None,
                        help="n_threads of every fit (default: all cores in memory, the worker's share on Dask)")
    parser.add_argument("--quick", action="store_true", help="n=20000, d=32, k=100, 5 iterations, 1 repeat")
    parser.add_argument("--plot", default=None, help="write a PNG of seconds per iteration here")
    parser.add_argument("--passive-omp", action="store_true",
                        help="OMP_WAIT_POLICY=PASSIVE here and in the workers (see README)")
    args = parser.parse_args(argv)
    if args.passive_omp:
        # Before Numba starts its OpenMP threads; worker processes inherit it.
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if args.quick:
        args.n, args.d, args.k, args.iters, args.repeat = [20_000], 32, 100, 5, 1

    print(f"# kmeans_dask — {datetime.date.today()} — {machine_line()}")
    print(f"command: python benchmarks/kmeans_dask.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    rows = []
    for n in args.n:
        X = gaussian_mixture(n, args.d, n_components=min(args.k, 1000), seed=args.seed)
        init = X[np.random.default_rng(args.seed).choice(n, args.k, replace=False)].copy()
        clusters = {w: start_cluster(X, init, args, w) for w in args.workers}
        steps = {"in memory": [], **{w: [] for w in args.workers}}
        kernel = {w: [] for w in args.workers}
        totals = {key: [] for key in steps}
        same = {w: True for w in args.workers}
        reference = None
        try:
            # Interleaved repeats: the machine is shared, so each setting sees the same noise.
            for _ in range(args.repeat):
                reference, total = run_in_memory(X, init, args)
                steps["in memory"] += iteration_seconds(reference)
                totals["in memory"].append(total)
                for w in args.workers:
                    _, client, X_dask = clusters[w]
                    model, total, labels, busy = run_on_dask(client, X_dask, init, args)
                    steps[w] += iteration_seconds(model)
                    kernel[w].append(busy)
                    totals[w].append(total)
                    same[w] &= bool(np.array_equal(labels, reference.labels_) and np.allclose(
                        model.cluster_centers_, reference.cluster_centers_, rtol=1e-4, atol=1e-4))
        finally:
            for cluster, client, _ in clusters.values():
                client.close()
                cluster.close()
        base = statistics.median(steps["in memory"])
        rows.append({"n": n, "setting": "in memory", "chunks": "-", "s/iter": base, "ratio": 1.0,
                     "overhead s/iter": 0.0, "in tasks s/iter": "-", "between tasks s/iter": "-", "fit s": statistics.median(totals["in memory"]),
                     "n_iter": reference.n_iter_, "same result": "-"})
        for w in args.workers:
            per_iter = statistics.median(steps[w])
            rows.append({"n": n, "setting": f"dask {w} worker{'s' if w > 1 else ''}",
                         "chunks": clusters[w][2].numblocks[0], "s/iter": per_iter,
                         "ratio": per_iter / base, "overhead s/iter": per_iter - base,
                         "in tasks s/iter": statistics.median(kernel[w]),
                         "between tasks s/iter": per_iter - statistics.median(kernel[w]),
                         "fit s": statistics.median(totals[w]), "n_iter": reference.n_iter_,
                         "same result": "yes" if same[w] else "NO"})
    title = f"d={args.d}, k={args.k}, algorithm={args.algorithm}, {args.iters} iterations"
    print_table(rows, ["n", "setting", "chunks", "s/iter", "ratio", "overhead s/iter", "in tasks s/iter",
                       "between tasks s/iter", "fit s", "n_iter", "same result"], title=title)
    print("\nin tasks: seconds per iteration the busiest worker spent inside the per-chunk "
          "assign + sums tasks; between tasks: the rest (scheduling, the round trip to the client, "
          "the tree of partial sums, the update and the assigner's preparation)")
    partial_mb = args.k * args.d * 8 / 2**20
    centers_mb = args.k * args.d * 4 / 2**20
    print(f"\nper chunk and iteration: one partial of k*d float64 = {partial_mb:.1f} MiB; "
          f"centroids broadcast: k*d float32 = {centers_mb:.1f} MiB per worker")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = [f"n={r['n']:,}\n{r['setting']}" for r in rows]
        ax.bar(range(len(rows)), [r["s/iter"] for r in rows], color="tab:blue")
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.set_ylabel("seconds per iteration")
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
