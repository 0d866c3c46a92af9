"""What a large-k fit should start from: the cost and the worth of each ``init``.

For each dataset and k, each start is computed on the same rows with the same seed
(``ivfpq.cluster.init``, timed alone), then ``KMeans(algorithm="mop")`` runs
``--iters`` iterations from it. Reported per start: the seconds of the start itself,
the same in units of a one-iteration exact fit from the random start (its
iteration and the final assignment pass: about two exact passes over the data), the inertia after 1, 5 and all iterations, and the seconds
(start included) to a common target: the lowest final inertia among the starts plus
``--slack`` (0.5%).

Greedy k-means++ makes two passes over the data per centroid, so its full run takes
hours at k = 10,000 on the larger sets: where the first ``--plusplus-probe`` centroids
show that it would take more than ``--budget`` seconds, its time is extrapolated from
them (its cost per centroid does not depend on how many came before) and its fit is
left out; the table says so.

    python benchmarks/kmeans_init.py --datasets sift-debian glove minilm --k 10000
    python benchmarks/kmeans_init.py --datasets glove --k 1000 10000 --plot benchmarks/kmeans_init.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import gaussian_mixture, machine_line, print_table  # noqa: E402
from kmeans_large_k import REAL, load  # noqa: E402

from ivfpq import KMeans  # noqa: E402
from ivfpq.cluster.executor import local_executor  # noqa: E402
from ivfpq.cluster.init import (  # noqa: E402
    hierarchical_centers,
    kmeans_parallel,
    kmeans_plusplus,
    random_centers,
)

STARTS = ("random", "hierarchical", "k-means||", "k-means++")


def start(name, X, k, seed, n_clusters=None):
    """(centroids, seconds) of one start on ``X``; ``n_clusters`` < k times a prefix."""
    ex = local_executor(X, None, None, cosine=False)
    blocks, stats = ex.validate()
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    if name == "random":
        centers = random_centers(ex, blocks, k, rng)
    elif name == "hierarchical":
        centers = hierarchical_centers(ex, blocks, k, rng)
    elif name == "k-means||":
        centers = kmeans_parallel(ex, blocks, stats, k, rng)
    else:
        centers = kmeans_plusplus(ex, blocks, stats, n_clusters or k, rng)
    return centers, time.perf_counter() - t


def fit_from(X, centers, iters, seed):
    model = KMeans(centers.shape[0], init=centers, n_init=1, algorithm="mop", max_iter=iters, tol=0.0,
                   random_state=seed).fit(X)
    return model.history_


def exact_iteration_seconds(X, centers, seed):
    t = time.perf_counter()
    KMeans(centers.shape[0], init=centers, n_init=1, algorithm="lloyd", max_iter=1, tol=0.0,
           random_state=seed).fit(X)
    return time.perf_counter() - t


def run(dataset, X, k, args):
    print(f"\n{dataset}: {X.shape[0]:,} x {X.shape[1]}, k = {k:,}", flush=True)
    rows, traces = [], {}
    unit = None
    for name in args.starts:
        extrapolated = False
        if name == "k-means++":
            probe = min(k, args.plusplus_probe)
            _, seconds = start(name, X, k, args.seed, n_clusters=probe)
            seconds *= k / probe
            extrapolated = seconds > args.budget
        if not extrapolated:
            centers, seconds = start(name, X, k, args.seed)
            if unit is None:
                unit = exact_iteration_seconds(X, centers, args.seed)
            history = fit_from(X, centers, args.iters, args.seed)
            traces[name] = [(seconds + s, inertia) for s, inertia in history]
        print(f"  {name}: start {seconds:.2f} s{' (extrapolated)' if extrapolated else ''}", flush=True)
        rows.append({"start": name, "start s": round(seconds, 2), "extrapolated": extrapolated})
    target = min(trace[-1][1] for trace in traces.values()) * (1.0 + args.slack)
    for row in rows:
        trace = traces.get(row["start"])
        row["start / exact iter"] = round(row["start s"] / unit, 2)
        if trace is None:
            row.update({"inertia after 1": None, "after 5": None, f"after {args.iters}": None,
                        "s to target": None})
            continue
        row["inertia after 1"] = f"{trace[0][1]:.5g}"
        row["after 5"] = f"{trace[min(4, len(trace) - 1)][1]:.5g}"
        row[f"after {args.iters}"] = f"{trace[-1][1]:.5g}"
        reached = [s for s, inertia in trace if inertia <= target]
        row["s to target"] = round(reached[0], 2) if reached else None
    print_table(rows, list(rows[0]), title=f"{dataset}, k = {k:,}: one exact iteration {unit:.2f} s, "
                f"target {target:.5g} (best final + {args.slack:.1%})")
    return (f"{dataset}, k = {k:,}", traces, target)


def plot(panels, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for ax, (title, traces, target) in zip(axes.ravel(), panels):
        for name, trace in traces.items():
            seconds, inertia = zip(*trace)
            ax.plot(seconds, inertia, marker=".", label=name)
        ax.axhline(target, color="grey", linestyle=":", label="target")
        ax.set_title(title)
        ax.set_xlabel("seconds, start included")
        ax.set_ylabel("inertia (mop iterations)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["sift-debian", "glove", "minilm"],
                   choices=["synthetic", *REAL])
    p.add_argument("--k", nargs="+", type=int, default=[10000])
    p.add_argument("--n", type=int, default=None, help="rows drawn from each dataset (default all)")
    p.add_argument("--starts", nargs="+", default=list(STARTS), choices=STARTS)
    p.add_argument("--iters", type=int, default=20, help="mop iterations from each start")
    p.add_argument("--budget", type=float, default=600.0,
                   help="seconds above which greedy k-means++ is extrapolated, not run")
    p.add_argument("--plusplus-probe", type=int, default=100, help="centroids timed to extrapolate k-means++")
    p.add_argument("--slack", type=float, default=0.005)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="PNG of inertia against seconds")
    args = p.parse_args()
    print(f"machine: {machine_line()}")
    warm = gaussian_mixture(4000, 16, n_components=20, seed=0)
    for name in args.starts:  # compile before anything is timed
        fit_from(warm, start(name, warm, 64, 0)[0], 2, 0)
    exact_iteration_seconds(warm, warm[:64].copy(), 0)
    panels = []
    for dataset in args.datasets:
        X = load(dataset, args.n, args.seed)
        for k in args.k:
            panels.append(run(dataset, X, k, args))
    if args.plot:
        plot(panels, args.plot)


if __name__ == "__main__":
    main()
