"""k-means at scale: millions of uint8 rows out of core, k = 10^5 and 10^6.

Three steps, each its own subcommand (the full-size runs take tens of minutes: run
them in the background and poll):

``make-data``
    fits a mixture to the real SIFT descriptors of ``../shared/data/sift-debian``
    (k-means components, their sizes and per-dimension spreads, samples scaled to the
    real descriptors' norm of 512) and writes ``--n`` rows of it as ``.bvecs``, block
    by block; then prints how the sample compares with the real set: the distance to
    the 1st / 10th / 100th nearest neighbour (leave-one-out, within a 100,000-row
    subsample of each) and exact k-means' cost over k (10 iterations on 100,000 rows).
``run``
    clusters the file, memory-mapped (``ivfpq.io.read_vectors``), with
    ``KMeans(algorithm=...)``, in a child process whose anonymous memory (resident
    memory beyond the file's page cache) is sampled every 0.2 s; prints seconds,
    iterations, peak memory, the score over time and, at the end, the assignment
    audit on 100,000 rows (fraction at the exact nearest centroid, excess cost).
``reference``
    exact Lloyd's seconds per iteration (ours and faiss) on a slice, scaled to the full
    ``n``, and the time of ours mop and ours exact to exact Lloyd's 10-iteration
    inertia (+0.5%) on a slice where those 10 iterations can be run.

    python benchmarks/kmeans_scale.py make-data --n 10000000 --out data/sift10m.bvecs
    python benchmarks/kmeans_scale.py run data/sift10m.bvecs --k 100000 --plot k100k.png
    python benchmarks/kmeans_scale.py reference data/sift10m.bvecs --k 100000 --slice 500000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import machine_line, print_table  # noqa: E402

from ivfpq import KMeans, ground_truth, read_vectors  # noqa: E402
from ivfpq.kernels.distances import nearest_centroids  # noqa: E402
from ivfpq.datasets import fit_mixture, load_dataset, write_mixture_sample  # noqa: E402

TARGET_SLACK = 1.005


# ----------------------------------------------------------------------------- make-data


def neighbour_profile(X, n_queries=1000, seed=0):
    """Median distance to the 1st, 10th and 100th nearest neighbour of ``n_queries`` rows
    of ``X`` among the others (float32, exact)."""
    rng = np.random.default_rng(seed)
    X = np.asarray(X, dtype=np.float32)
    rows = rng.choice(X.shape[0], n_queries, replace=False)
    distances, ids = ground_truth(X, X[rows], k=101)
    own = ids == rows[:, None]
    kept = np.where(own.any(axis=1)[:, None], distances, distances)  # the row itself is at 0
    kept = np.sort(np.where(own, np.inf, kept), axis=1)[:, :100]
    return [float(np.median(np.sqrt(np.maximum(kept[:, r - 1], 0)))) for r in (1, 10, 100)]


def cost_curve(X, ks, seed=0):
    """Mean squared distance to the nearest centroid after 10 exact Lloyd iterations."""
    X = np.asarray(X, dtype=np.float32)
    out = []
    for k in ks:
        model = KMeans(k, init="random", n_init=1, max_iter=10, tol=0, random_state=seed).fit(X)
        out.append(model.inertia_ / X.shape[0])
    return out


def make_data(args):
    real = load_dataset("sift-debian")["base"]
    print(f"# kmeans_scale make-data  {machine_line()}")
    start = time.perf_counter()
    model = fit_mixture(real, args.components, norm=512.0, low=0, high=255, dtype="uint8",
                        random_state=args.seed, block_rows=100_000)
    fitted = time.perf_counter() - start
    out = Path(args.out)
    last = [0.0]

    def progress(done, total):
        if time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            print(f"  wrote {done:,} / {total:,} rows", flush=True)

    start = time.perf_counter()
    write_mixture_sample(out, model, args.n, random_state=args.seed, callback=progress)
    written = time.perf_counter() - start
    print(f"mixture of {len(model.weights):,} components fitted in {fitted:.1f} s; {args.n:,} rows written to "
          f"{out} in {written:.1f} s")
    sample = np.asarray(read_vectors(out)[:args.compare_rows])
    rng = np.random.default_rng(args.seed)
    real_rows = np.asarray(real[np.sort(rng.choice(real.shape[0], args.compare_rows, replace=False))])
    rows = []
    for name, X in (("sift-debian (real)", real_rows), ("mixture sample", sample)):
        profile = neighbour_profile(X)
        curve = cost_curve(X, args.curve_k)
        rows.append({"data": name, "1-NN": profile[0], "10-NN": profile[1], "100-NN": profile[2],
                     **{f"MSE k={k:,}": c for k, c in zip(args.curve_k, curve)}})
    print_table(rows, list(rows[0]), title=f"Real SIFT vs the mixture sample ({args.compare_rows:,} rows each; "
                                           "median neighbour distances, exact k-means MSE after 10 iterations)")


# ----------------------------------------------------------------------------- run


def _anonymous_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Anonymous:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _fit_child(path, params, result_file):
    X = read_vectors(path)
    model = KMeans(**params)
    made, phases = [], []
    make_assigner = model._make_assigner

    def timed(name, method, assigner):
        def call(*args):
            start = time.perf_counter()
            out = method(*args)
            phases.append((name, time.perf_counter() - start, int(out or 0) if name == "assign" else 0,
                           getattr(assigner, "_ef", None), bool(getattr(assigner, "_stay", False))))
            return out
        return call

    def make(seed):  # kept, and its prepare and assign timed, for the breakdown per iteration
        assigner = make_assigner(seed)
        assigner.prepare = timed("prepare", assigner.prepare, assigner)
        assigner.assign = timed("assign", assigner.assign, assigner)
        made.append(assigner)
        return assigner

    model._make_assigner = make
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(X.shape[0], min(X.shape[0], 100_000), replace=False))
    sample = np.asarray(X[rows], dtype=np.float32)
    labels = np.asarray(model.labels_)[rows]
    centers = model.cluster_centers_
    sq = ((sample.astype(np.float64) - centers[labels].astype(np.float64)) ** 2).sum(1)
    exact = np.empty(sample.shape[0])
    nearest_centroids(sample, centers, np.empty(sample.shape[0], np.int64), exact)
    # Both distances are exact float64 sums, in different orders: equal within 1e-9.
    fraction = float(np.mean(sq <= exact * (1 + 1e-9)))
    excess = max(0.0, float(sq.sum() / exact.sum() - 1))
    Path(result_file).write_text(json.dumps({
        "seconds": seconds, "n_iter": model.n_iter_, "inertia": model.inertia_, "history": model.history_,
        "changed": model.changed_fraction_, "audit": model.audit_, "final_fraction": fraction,
        "final_excess": excess, "algorithm": model.algorithm_,
        "graph": getattr(made[-1], "stats", None) if made else None, "phases": phases,
        "cold": {name: getattr(made[-1], name, None) for name in ("cold_start_",)}
        if made else None}))


def _parse_value(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"None": None, "True": True, "False": False}.get(text, text)


def run(args):
    print(f"# kmeans_scale run  {machine_line()}")
    X = read_vectors(args.path)
    params = dict(n_clusters=args.k, algorithm=args.algorithm, init=args.init, n_init=1, max_iter=args.max_iter,
                  random_state=args.seed, verbose=args.verbose)
    for pair in args.param:
        key, _, value = pair.partition("=")
        params[key] = _parse_value(value)
    tag = "".join(f".{pair}" for pair in args.param)
    result_file = Path(args.path).with_suffix(f".k{args.k}.{args.algorithm}{tag}.json")
    child = multiprocessing.get_context("spawn").Process(target=_fit_child,
                                                         args=(str(args.path), params, str(result_file)))
    child.start()
    peak = [0]

    def sample_memory():
        while child.is_alive():
            kb = _anonymous_kb(child.pid)
            if kb is not None:
                peak[0] = max(peak[0], kb)
            time.sleep(0.2)

    watcher = threading.Thread(target=sample_memory, daemon=True)
    watcher.start()
    child.join()
    watcher.join()
    if child.exitcode != 0:
        raise SystemExit(f"the fit failed (exit code {child.exitcode})")
    result = json.loads(result_file.read_text())
    rows = [{"n": X.shape[0], "d": X.shape[1], "k": args.k, "algorithm": result["algorithm"],
             "iterations": result["n_iter"], "seconds": result["seconds"],
             "s/iter": result["seconds"] / max(1, result["n_iter"]), "peak GiB beyond the file": peak[0] / 2**20,
             "inertia": result["inertia"], "at exact nearest (100k audit)": result["final_fraction"],
             "excess cost": result["final_excess"]}]
    print_table(rows, list(rows[0]), title=f"{args.path}: k={args.k:,}")
    print("history (seconds, inertia):", [(round(s, 1), i) for s, i in result["history"]])
    print("audit (fraction at the exact nearest, excess):", result["audit"])
    print("cold start:", result["cold"])
    per_iteration, current = [], None
    for name, seconds, work, ef, stay in result["phases"]:  # one prepare, then the blocks' assigns
        if name == "prepare":
            current = {"prepare s": seconds, "assign s": 0.0, "expansions": 0, "ef": ef, "stay": stay}
            per_iteration.append(current)
        elif current is not None:
            current["assign s"] += seconds
            current["expansions"] += work
            current["ef"], current["stay"] = ef, stay
    print("per iteration (prepare s, assign s, expansions per row, beam, stay check):",
          [(round(p["prepare s"], 1), round(p["assign s"], 1), round(p["expansions"] / X.shape[0], 1), p["ef"],
            p["stay"]) for p in per_iteration])
    if result["graph"]:
        print("graph refreshes (kind, nodes, seconds):",
              [(g["graph"], g["nodes"], round(g["seconds"], 1)) for g in result["graph"]])
    if args.plot:
        from ivfpq.plot import plot_score_over_time, save_figure

        save_figure(plot_score_over_time({f"mop k={args.k:,}": result["history"]},
                                         title=f"{X.shape[0]:,} x {X.shape[1]} uint8, k={args.k:,}"), args.plot)
        print("plot:", args.plot)


# ----------------------------------------------------------------------------- reference


def reference(args):
    print(f"# kmeans_scale reference  {machine_line()}")
    X = read_vectors(args.path)
    n = X.shape[0]
    part = np.asarray(X[:args.slice], dtype=np.float32)
    rng = np.random.default_rng(args.seed)
    C0 = part[rng.choice(part.shape[0], args.k, replace=False)].copy()
    rows = []
    model = KMeans(args.k, init=C0, max_iter=2, tol=0).fit(part)
    ours = np.diff([0.0] + [s for s, _ in model.history_])[-1]
    rows.append({"contender": "ours-exact", "s/iter on slice": ours, "s/iter scaled to n": ours * n / args.slice})
    try:
        import faiss

        km = faiss.Kmeans(part.shape[1], args.k, niter=2, verbose=False, seed=args.seed,
                          max_points_per_centroid=10**9)
        start = time.perf_counter()
        km.train(part, init_centroids=C0)
        per = (time.perf_counter() - start) / 2
        rows.append({"contender": "faiss-exact", "s/iter on slice": per, "s/iter scaled to n": per * n / args.slice})
    except ImportError:
        pass
    print_table(rows, list(rows[0]), title=f"Exact Lloyd per iteration at n={n:,}, k={args.k:,} "
                                           f"(measured on {args.slice:,} rows, scaled by n)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-data")
    make.add_argument("--n", type=int, default=10_000_000)
    make.add_argument("--components", type=int, default=4096)
    make.add_argument("--out", default="data/sift10m.bvecs")
    make.add_argument("--compare-rows", type=int, default=100_000)
    make.add_argument("--curve-k", type=int, nargs="+", default=[100, 1000, 5000])
    make.add_argument("--seed", type=int, default=0)
    fit = sub.add_parser("run")
    fit.add_argument("path")
    fit.add_argument("--k", type=int, default=100_000)
    fit.add_argument("--algorithm", default="mop", choices=("mop", "auto", "lloyd"))
    fit.add_argument("--init", default="random")
    fit.add_argument("--max-iter", type=int, default=30)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--verbose", action="store_true")
    fit.add_argument("--plot", default=None)
    fit.add_argument("--param", nargs="*", default=[], metavar="KEY=VALUE",
                     help="further KMeans parameters, e.g. --param cold_start=two-level ef_search=8")
    ref = sub.add_parser("reference")
    ref.add_argument("path")
    ref.add_argument("--k", type=int, default=100_000)
    ref.add_argument("--slice", type=int, default=500_000)
    ref.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    {"make-data": make_data, "run": run, "reference": reference}[args.command](args)


if __name__ == "__main__":
    main()
