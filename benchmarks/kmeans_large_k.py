"""k-means with many clusters: score over time, ivfpq "mop" against exact Lloyd and the peers.

The experiment of the MOPBucket paper (Spalding-Jamieson, Robson, Zheng), at this
machine's scale. Every contender starts from the same initial centroids (distinct
random rows) and runs until an iteration ends past the time budget:

* ``ours-mop``     ivfpq GraphAssigner (KMeans(algorithm="mop") defaults)
* ``ours-exact``   ivfpq exact Lloyd (BLAS); it also runs at least ``--ref-iters``
                   iterations, since it defines the reference inertia
* ``sklearn``      scikit-learn KMeans(algorithm="lloyd", init=C0, n_init=1)
* ``faiss-exact``  faiss.Clustering with an IndexFlatL2
* ``faiss-hnsw``   faiss.Clustering with IndexHNSWFlat(d, 32), efSearch=16 (the
                   black-box HNSW baseline)
* ``sklearnex``    scikit-learn-intelex's KMeans (oneDAL), same init; it reports no
                   per-iteration score, so it is run for 1, 2, 4, ... iterations and
                   each run's end is one point of its curve
* ``superkmeans`` / ``superkmeans-full``  SuperKMeans with its defaults / with
                   ``sampling_fraction=1.0``; it takes no initial centroids, so its one
                   point is (fit seconds, inertia of its centroids on all rows)

Datasets: ``synthetic`` (isotropic mixture of 1,000 components), ``aniso-fewer`` and
``aniso-more`` (well-separated anisotropic mixtures, per-dimension scales in U(0.5, 2),
with k/3 and 3k components), and the real sets ``sift-debian``, ``glove``,
``fashion-mnist``, ``mnist`` and ``minilm`` (minilm-debian-descriptions).

faiss runs one iteration per ``Clustering.train`` call (niter=1, centroids carried
over), so it can stop at the budget; faiss rebuilds its assignment index every
iteration anyway. ``max_points_per_centroid`` is set so faiss never subsamples.
scikit-learn's per-iteration inertia is read from its verbose output, time-stamped.

Reported per (dataset, k): each contender's time to reach the inertia that exact
Lloyd reaches after ``--ref-iters`` iterations (+0.5%), its best inertia within the
budget, and seconds per iteration. ``--ablation`` switches off the improvements of
ours one at a time. A PNG (mean squared error against seconds, one panel per
dataset and k) goes to ``--plot``.

Full size (does not fit a shared 2-core session; about 5 x 300 s per panel)::

    python benchmarks/kmeans_large_k.py --datasets synthetic glove fashion-mnist \\
        --n 1000000 --k 1000 10000 50000 --budget 300 --ablation

Reduced runs are in benchmarks/README.md with their commands.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import gaussian_mixture, load_shared, machine_line, print_table  # noqa: E402

from ivfpq._threads import resolve_n_threads, thread_limits  # noqa: E402
from ivfpq.cluster.assign import Assigner, ExactAssigner, GraphAssigner  # noqa: E402
from ivfpq.cluster.lloyd import lloyd_on_array  # noqa: E402

TARGET_SLACK = 1.005
CONTENDERS = ("ours-mop", "ours-exact", "sklearn", "faiss-exact", "faiss-hnsw", "sklearnex", "superkmeans",
              "superkmeans-full")
DATASETS = ("synthetic", "aniso-fewer", "aniso-more", "sift-debian", "glove", "fashion-mnist", "mnist", "minilm")
REAL = {"sift-debian": "sift-debian", "glove": "glove", "fashion-mnist": "fashion-mnist", "mnist": "mnist",
        "minilm": "minilm-debian-descriptions"}
ABLATIONS = {
    "all improvements": {},
    "no previous-centroid seeds": {"seed_previous": False},
    "additional_centroids=0": {"additional_centroids": 0},
    "min_iterations=0": {"min_iterations": 0},
    "no bulk sorting": {"sort_bulks": False},
    "graph rebuilt every iteration": {"warm_start": False},
    "descent for every point (paper)": {"descend_warm": True},
    "first assignment by graph search": {"cold_start": "graph"},
    "first assignment by two-level pass": {"cold_start": "two-level"},
    "no stay check (beam for every point)": {"stay_check": False},
    "no widening before stopping": {"max_ef_search": 1},
}


class _BudgetReached(Exception):
    pass


class _CountingAssigner(Assigner):
    """Wraps an assigner to record the node expansions of each assignment; every other
    hook of the protocol goes to the wrapped one (audits, widening, exact passes)."""

    def __init__(self, inner):
        self.inner, self.expansions = inner, []

    @property
    def audit_tolerance(self):
        return self.inner.audit_tolerance

    def assign(self, X, state, labels_out, sq_dist_out):
        work = self.inner.assign(X, state, labels_out, sq_dist_out)
        self.expansions.append(work)
        return work


def _delegate(name):
    return lambda self, *args: getattr(self.inner, name)(*args)


for _hook in ("reset", "audit_rows", "audit_positions", "new_state", "prepare", "relabel", "widen", "widen_steps",
              "narrow", "can_pass_exactly", "exact_pass", "get_state", "set_state", "hands_over", "successor",
              "handover_state"):
    setattr(_CountingAssigner, _hook, _delegate(_hook))


# ----------------------------------------------------------------------------- contenders


def run_ours(X, C0, assigner, budget, min_iters=0):
    """Lloyd with ``assigner`` until an iteration ends past ``budget`` (and >= min_iters)."""
    trace = []
    start = time.perf_counter()

    def callback(iteration, inertia, changed, audit=None):
        trace.append((time.perf_counter() - start, inertia))
        if time.perf_counter() - start > budget and iteration >= min_iters:
            raise _BudgetReached

    with thread_limits(resolve_n_threads(None)):
        try:
            lloyd_on_array(X, C0, assigner, max_iter=10**6, tol=0.0, callback=callback)
        except _BudgetReached:
            pass
    return trace


class _StampedLines(io.TextIOBase):
    """stdout that time-stamps scikit-learn's "Iteration i, inertia x." lines."""

    pattern = re.compile(r"Iteration (\d+), inertia ([0-9.eE+-]+)")

    def __init__(self, start, budget):
        self.start, self.budget, self.trace, self._buffer = start, budget, [], ""

    def write(self, text):
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            match = self.pattern.search(line)
            if match:
                elapsed = time.perf_counter() - self.start
                self.trace.append((elapsed, float(match.group(2).rstrip("."))))
                if elapsed > self.budget:
                    raise _BudgetReached
        return len(text)


def run_sklearn(X, C0, budget):
    from sklearn.cluster import KMeans

    model = KMeans(C0.shape[0], init=C0, n_init=1, algorithm="lloyd", max_iter=10**6, tol=0.0,
                   verbose=1)
    start = time.perf_counter()
    sink = _StampedLines(start, budget)
    try:
        with redirect_stdout(sink):
            model.fit(X)
    except _BudgetReached:
        pass
    return sink.trace


def run_faiss(X, C0, budget, hnsw):
    import faiss

    n, d = X.shape
    k = C0.shape[0]
    centroids = np.ascontiguousarray(C0, dtype=np.float32)
    trace = []
    start = time.perf_counter()
    while True:
        params = faiss.ClusteringParameters()
        params.niter = 1
        params.max_points_per_centroid = 10**9
        params.min_points_per_centroid = 1
        params.check_input_data_for_NaNs = False
        params.seed = 1234
        clus = faiss.Clustering(d, k, params)
        faiss.copy_array_to_vector(centroids.ravel(), clus.centroids)
        if hnsw:
            index = faiss.IndexHNSWFlat(d, 32)
            index.hnsw.efSearch = 16
        else:
            index = faiss.IndexFlatL2(d)
        clus.train(X, index)
        stats = clus.iteration_stats.at(0)
        centroids = faiss.vector_to_array(clus.centroids).reshape(k, d)
        elapsed = time.perf_counter() - start
        trace.append((elapsed, float(stats.obj)))
        if elapsed > budget:
            return trace


def run_sklearnex(X, C0, budget):
    """oneDAL's Lloyd for 1, 2, 4, ... iterations (it reports no per-iteration score)."""
    from sklearnex.cluster import KMeans

    trace, iters, spent = [], 1, 0.0
    while spent <= budget:
        start = time.perf_counter()
        model = KMeans(C0.shape[0], init=C0, n_init=1, max_iter=iters, tol=0.0).fit(X)
        seconds = time.perf_counter() - start
        spent += seconds
        trace.append((seconds, float(model.inertia_)))
        iters *= 2
    return sorted(trace)


def run_superkmeans(X, n_clusters, full):
    """SuperKMeans' one result: (fit seconds, inertia of its centroids on all of ``X``)."""
    from superkmeans import SuperKMeans

    model = SuperKMeans(n_clusters=n_clusters, dimensionality=X.shape[1],
                        **({"sampling_fraction": 1.0} if full else {}))
    start = time.perf_counter()
    centroids = model.train(np.ascontiguousarray(X, dtype=np.float32))
    seconds = time.perf_counter() - start
    centroids = np.ascontiguousarray(centroids, dtype=np.float32).reshape(-1, X.shape[1])
    labels, sq = np.empty(X.shape[0], np.int64), np.empty(X.shape[0])
    with thread_limits(resolve_n_threads(None)):
        assigner = ExactAssigner()
        assigner.prepare(centroids)
        assigner.assign(X, None, labels, sq)
    return [(seconds, float(sq.sum()))]


def parse_mop_options(pairs):
    """``["ef_search=4", "cold_start=graph"]`` -> GraphAssigner keyword arguments."""
    options = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        else:
            value = {"True": True, "False": False}.get(value, value)
        options[key] = value
    return options


def contender_name(name):
    """A name of ``CONTENDERS``, or ``ours-mop@KEY=VALUE[,KEY=VALUE...]``: ours mop with
    those GraphAssigner options on top of ``--mop`` (variants side by side in one run)."""
    if name in CONTENDERS or name.startswith("ours-mop@"):
        return name
    raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(CONTENDERS)} or ours-mop@KEY=VALUE,...")


def run_contender(name, X, C0, budget, ref_iters, assigner_kwargs=None):
    if name.startswith("ours-mop@"):
        variant = parse_mop_options(name.split("@", 1)[1].split(","))
        return run_ours(X, C0, GraphAssigner(**{**(assigner_kwargs or {}), **variant}), budget)
    if name == "ours-mop":
        return run_ours(X, C0, GraphAssigner(**(assigner_kwargs or {})), budget)
    if name == "ours-exact":
        return run_ours(X, C0, ExactAssigner(), budget, min_iters=ref_iters)
    if name == "sklearn":
        return run_sklearn(X, C0, budget)
    if name == "faiss-exact":
        return run_faiss(X, C0, budget, hnsw=False)
    if name == "faiss-hnsw":
        return run_faiss(X, C0, budget, hnsw=True)
    if name == "sklearnex":
        return run_sklearnex(X, C0, budget)
    if name in ("superkmeans", "superkmeans-full"):
        return run_superkmeans(X, C0.shape[0], full=name == "superkmeans-full")
    raise ValueError(name)


# ----------------------------------------------------------------------------- analysis


def time_to(trace, target):
    for seconds, inertia in trace:
        if inertia <= target:
            return seconds
    return None


def summarize(name, trace, target, budget):
    within = [inertia for seconds, inertia in trace if seconds <= budget] or [trace[0][1]]
    seconds = [t for t, _ in trace]
    if name == "sklearnex":  # separate runs of 1, 2, 4, ... iterations: the longest's mean
        per_iter = seconds[-1] / 2 ** (len(seconds) - 1)
    else:
        per_iter = float(np.median(np.diff([0.0] + seconds))) if seconds else None
    return {
        "contender": name,
        "iterations": len(trace),
        "s/iter (median)": per_iter,
        "time to target (s)": time_to(trace, target),
        "best inertia in budget": min(within),
    }


def add_ratios(rows, traces, target_row="ours-mop",
               peers=("faiss-exact", "faiss-hnsw", "sklearn", "sklearnex", "ours-exact")):
    """Each peer's time to target over mop's; for SuperKMeans (no common start), its fit
    time over mop's time to the inertia of SuperKMeans' centroids."""
    ours = next((r for r in rows if r["contender"] == target_row), None)
    if ours is None:
        return
    for row in rows:
        t = row["time to target (s)"]
        if row["contender"] in peers and ours["time to target (s)"] is not None:
            row["x slower than mop"] = (f"{t / ours['time to target (s)']:.1f}" if t is not None
                                        else f">{row['budget'] / ours['time to target (s)']:.1f}")
        elif row["contender"].startswith("superkmeans") and traces.get(row["contender"]):
            seconds, reached = traces[row["contender"]][0]
            mop_time = time_to(traces.get(target_row, []), reached)
            row["mop s to its inertia"] = mop_time
            row["x slower than mop"] = None if mop_time is None else f"{seconds / mop_time:.1f}"


# ----------------------------------------------------------------------------- data


def load(name, n, seed, k=None):
    if name == "synthetic":
        return gaussian_mixture(n, 128, seed=seed)
    if name.startswith("aniso"):
        from ivfpq.datasets import make_blobs

        components = max(2, k // 3) if name == "aniso-fewer" else 3 * k
        X, _ = make_blobs(n, 128, centers=components, cluster_std=1.0, spread=10.0, std_range=(0.5, 2.0),
                          random_state=seed)
        return np.ascontiguousarray(X, dtype=np.float32)
    X = load_shared(REAL[name])
    if n and n < X.shape[0]:
        X = X[np.random.default_rng(seed).choice(X.shape[0], n, replace=False)]
    return np.ascontiguousarray(X, dtype=np.float32)


def warm_up():
    """Compile the Numba kernels before anything is timed."""
    X = gaussian_mixture(3000, 16, n_components=20, seed=0)
    C0 = X[:100].copy()
    run_ours(X, C0, GraphAssigner(), 0.0, min_iters=3)
    run_ours(X, C0, ExactAssigner(), 0.0, min_iters=2)


def plot(panels, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4 * rows), squeeze=False)
    styles = {"ours-mop": "C3", "ours-exact": "C0", "sklearn": "C2", "faiss-exact": "C1",
              "faiss-hnsw": "C4", "sklearnex": "C5", "superkmeans": "C6", "superkmeans-full": "C7"}
    variants = sorted({name for *_, traces, _ in panels for name in traces if name not in styles})
    for ax, (title, n, traces, target) in zip(axes.ravel(), panels):
        for name, trace in traces.items():
            if trace:
                t, inertia = zip(*trace)
                known = name in styles
                ax.plot(t, np.array(inertia) / n, marker=".", label=name, ls="-" if known else "--",
                        color=styles[name] if known else f"C{8 + variants.index(name) % 2}")
        ax.axhline(target / n, color="grey", ls="--", lw=0.8, label="exact 10-iter +0.5%")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("seconds")
        ax.set_ylabel("mean squared error")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def k_values_for(dataset, n, ks, min_points_per_cluster):
    return [k for k in ks if n / k >= min_points_per_cluster]


def crossover(n, ds, ks, iters, seed):
    """Seconds for ``iters`` Lloyd iterations, exact vs mop, from the same init (median of 3)."""
    import statistics

    rows = []
    for d in ds:
        X = gaussian_mixture(n, d, seed=seed)
        for k in ks:
            C0 = X[np.random.default_rng(seed + 1).choice(n, k, replace=False)].copy()
            times = {}
            for name, make in (("exact", ExactAssigner), ("mop", GraphAssigner)):
                runs = []
                for _ in range(3):
                    trace = run_ours(X, C0, make(), 0.0, min_iters=iters)
                    runs.append(trace[min(iters, len(trace)) - 1][0])  # or where it converged
                times[name] = statistics.median(runs)
            rows.append({"n": n, "d": d, "k": k, f"exact {iters} it (s)": times["exact"],
                         f"mop {iters} it (s)": times["mop"],
                         "exact / mop": times["exact"] / times["mop"]})
    print_table(rows, list(rows[0]), title=f"Crossover: {iters} iterations from the same init, "
                                             "median of 3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["synthetic", "glove", "fashion-mnist"], choices=DATASETS)
    p.add_argument("--n", type=int, default=1_000_000,
                   help="rows of the synthetic set; real sets are subsampled to it when smaller")
    p.add_argument("--k", type=int, nargs="+", default=[1000, 10000, 50000])
    p.add_argument("--budget", type=float, default=300.0, help="seconds per contender")
    p.add_argument("--ref-iters", type=int, default=10)
    p.add_argument("--contenders", nargs="+", type=contender_name, default=list(CONTENDERS),
                   help=f"of {', '.join(CONTENDERS)}, or ours-mop@KEY=VALUE[,KEY=VALUE...] (a variant of "
                        "ours-mop with those GraphAssigner options)")
    p.add_argument("--min-points-per-cluster", type=float, default=5.0)
    p.add_argument("--ablation", action="store_true",
                   help="also run ours with each improvement switched off (first dataset, "
                        "smallest k unless --ablation-k)")
    p.add_argument("--ablation-only", action="store_true")
    p.add_argument("--ablation-n", type=int, default=None)
    p.add_argument("--ablation-k", type=int, default=None)
    p.add_argument("--ablation-budget", type=float, default=None)
    p.add_argument("--ablation-repeat", type=int, default=3)
    p.add_argument("--crossover", action="store_true",
                   help="only time exact vs mop on a grid of (d, k) at --n rows (for 'auto')")
    p.add_argument("--crossover-d", type=int, nargs="+", default=[16, 50, 128])
    p.add_argument("--crossover-k", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    p.add_argument("--quick", action="store_true",
                   help="tiny run to check the script: synthetic 20k x 128, k=500, 5 s")
    p.add_argument("--mop", nargs="*", default=[], metavar="KEY=VALUE",
                   help="GraphAssigner parameters for ours-mop and the ablation base, "
                        "e.g. --mop ef_search=8 cold_start=graph")
    p.add_argument("--plot", default="benchmarks/results/kmeans_large_k.png")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.n, args.k, args.budget = ["synthetic"], 20_000, [500], 5.0

    print(f"# kmeans_large_k  ({time.strftime('%Y-%m-%d')})\n")
    print("machine:", machine_line())
    print("command: python benchmarks/kmeans_large_k.py " + " ".join(argv or sys.argv[1:]))
    warm_up()
    if args.crossover:
        crossover(args.n, args.crossover_d, args.crossover_k, 5, args.seed)
        return

    panels = []
    if not args.ablation_only:
        for dataset in args.datasets:
            X = load(dataset, args.n, args.seed, min(args.k))
            n = X.shape[0]
            for k in k_values_for(dataset, n, args.k, args.min_points_per_cluster):
                if dataset.startswith("aniso"):  # its components follow k
                    X = load(dataset, args.n, args.seed, k)
                C0 = X[np.random.default_rng(args.seed + 1).choice(n, k, replace=False)].copy()
                traces = {}
                contenders = ["ours-exact"] + [c for c in args.contenders if c != "ours-exact"]
                for name in contenders:
                    traces[name] = run_contender(name, X, C0, args.budget, args.ref_iters,
                                                 parse_mop_options(args.mop))
                    print(f"  {dataset} k={k} {name}: {len(traces[name])} iterations, "
                          f"last at {traces[name][-1][0]:.1f} s", file=sys.stderr, flush=True)
                exact = traces["ours-exact"]
                reference = exact[min(args.ref_iters, len(exact)) - 1][1]
                target = reference * TARGET_SLACK
                rows = [summarize(name, traces[name], target, args.budget) for name in contenders]
                for row in rows:
                    row["budget"] = args.budget
                    row["best / reference"] = row["best inertia in budget"] / reference
                add_ratios(rows, traces)
                print_table(rows, ["contender", "iterations", "s/iter (median)", "time to target (s)",
                                   "x slower than mop", "mop s to its inertia", "best inertia in budget",
                                   "best / reference"],
                            title=f"{dataset} n={n:,} d={X.shape[1]} k={k:,}: target = exact "
                                  f"{args.ref_iters}-iteration inertia {reference:.5e} +0.5%, "
                                  f"budget {args.budget:g} s")
                panels.append((f"{dataset} n={n:,} d={X.shape[1]} k={k:,}", n, traces, target))
        if panels and args.plot:
            plot(panels, args.plot)
            print(f"\nplot: {args.plot}")

    if args.ablation or args.ablation_only:
        dataset = args.datasets[0]
        X = load(dataset, args.ablation_n or args.n, args.seed)
        n = X.shape[0]
        k = args.ablation_k or min(args.k)
        budget = args.ablation_budget or args.budget
        C0 = X[np.random.default_rng(args.seed + 1).choice(n, k, replace=False)].copy()
        exact = run_ours(X, C0, ExactAssigner(), 0.0, min_iters=args.ref_iters)
        reference = exact[min(args.ref_iters, len(exact)) - 1][1]
        target = reference * TARGET_SLACK
        results = {label: [] for label in ABLATIONS}
        for _ in range(args.ablation_repeat):  # round robin, so load drifts hit all alike
            for label, switches in ABLATIONS.items():
                assigner = _CountingAssigner(GraphAssigner(**{**parse_mop_options(args.mop), **switches}))
                trace = run_ours(X, C0, assigner, budget)
                results[label].append((trace, assigner.expansions))
        rows = []
        for label, runs in results.items():
            summaries = [summarize(label, trace, target, budget) for trace, _ in runs]
            trace, expansions = runs[0]
            reached = [s["time to target (s)"] for s in summaries if s["time to target (s)"]]
            row = {
                "contender": label,
                "iterations": summaries[0]["iterations"],
                "s/iter (median)": float(np.median([s["s/iter (median)"] for s in summaries])),
                "time to target (s)": float(np.median(reached)) if len(reached) == len(runs) else None,
                "expansions/point (iter 2+)": float(np.mean(expansions[1:])) / n if len(expansions) > 1 else None,
                "inertia at iter 3 / reference": trace[min(2, len(trace) - 1)][1] / reference,
                "best / reference": min(i for _, i in trace) / reference,
            }
            rows.append(row)
        print_table(rows, ["contender", "iterations", "s/iter (median)", "time to target (s)",
                           "expansions/point (iter 2+)", "inertia at iter 3 / reference",
                           "best / reference"],
                    title=f"Ablation: {dataset} n={n:,} d={X.shape[1]} k={k:,}, budget {budget:g} s, "
                          f"reference = exact {args.ref_iters}-iteration inertia {reference:.5e}; "
                          f"times are medians of {args.ablation_repeat} round-robin runs")


if __name__ == "__main__":
    main()
