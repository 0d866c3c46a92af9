"""``ivfpq demo`` and ``ivfpq cluster``: k-means, its results and its pictures."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..cluster import KMeans
from ..datasets import make_blobs
from ..plot import plot_clusters, plot_score_over_time, save_figure
from ._common import CommandError, check_out_dir, load_vectors, progress_enabled, say, write_json

__all__ = ["DEMO_SETS", "demo", "cluster"]

#: The built-in demo data: name -> (n, d, blobs drawn, k clustered, blob std).
DEMO_SETS = {
    "blobs2d": (3000, 2, 6, 6, 1.3),
    "blobs64d": (20000, 64, 8, 8, 7.0),
}


def fit_kmeans(X, k, args, *, init="k-means++", n_init="auto", metric="sqeuclidean", tol=1e-4):
    """Fit :class:`ivfpq.KMeans` with the command's options; return (model, seconds)."""
    params = dict(n_clusters=k, init=init, n_init=n_init, max_iter=args.max_iter, tol=tol,
                  metric=metric, random_state=args.seed, verbose=progress_enabled(args),
                  n_threads=getattr(args, "threads", None))
    if getattr(args, "algorithm", None) is not None:
        params["algorithm"] = args.algorithm
    # A tiny untimed fit first: Numba compiles the kernels there, so that the reported
    # seconds and the inertia-over-time curve measure the clustering, not the compiler.
    start = time.perf_counter()
    warm = X[: min(X.shape[0], 256)]
    KMeans(**dict(params, n_clusters=min(k, warm.shape[0]), n_init=1, max_iter=2,
                  verbose=False)).fit(warm)
    args.compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model = KMeans(**params).fit(X)
    return model, time.perf_counter() - start


def _kmeans_summary(model, X, seconds, source, args):
    changed = model.changed_fraction_
    history = []
    for i, (elapsed, inertia) in enumerate(model.history_):
        entry = {"iteration": i + 1, "seconds": round(float(elapsed), 6), "inertia": float(inertia)}
        if i < len(changed):
            entry["changed_fraction"] = round(float(changed[i]), 6)
        history.append(entry)
    return {
        "input": source,
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "k": int(model.cluster_centers_.shape[0]),
        "algorithm": model.algorithm,
        "init": model.init if isinstance(model.init, str) else "array",
        "metric": model.metric,
        "seed": args.seed,
        "max_iter": args.max_iter,
        "iterations": int(model.n_iter_),
        "inertia": float(model.inertia_),
        "seconds": round(seconds, 4),
        "warmup_seconds": round(args.compile_seconds, 4),
        "history": history,
    }


def _plural(count, word):
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _write_kmeans_outputs(out, X, model, summary, plots, label):
    """centroids.npy, labels.npy, clusters.png, inertia.png, summary.json into ``out``."""
    written = []
    for name, array in (("centroids.npy", model.cluster_centers_), ("labels.npy", model.labels_)):
        tmp = out / f".{name}.{os.getpid()}.tmp.npy"
        np.save(tmp, array)
        os.replace(tmp, out / name)
        written.append(name)
    if plots:
        d = X.shape[1]
        if d == 2:
            title = f"{label}: {X.shape[0]:,} points, k={summary['k']}"
        else:
            title = f"{label}: {X.shape[0]:,} points in {d}-D, k={summary['k']} (PCA projection)"
        save_figure(plot_clusters(X, model.labels_, model.cluster_centers_, title=title),
                    out / "clusters.png")
        written.append("clusters.png")
        fig = plot_score_over_time(
            {f"{summary['algorithm']}": model.history_},
            title=f"{label}: inertia after each iteration (k={summary['k']})",
        )
        save_figure(fig, out / "inertia.png")
        written.append("inertia.png")
    summary["files"] = written + ["summary.json"]
    write_json(out / "summary.json", summary)
    return summary["files"]


def demo(args) -> int:
    """``ivfpq demo``: cluster the built-in datasets; one folder of results each."""
    out = check_out_dir(args.out)
    overview = {}
    for name, (n, d, blobs, k, std) in DEMO_SETS.items():
        X, _ = make_blobs(n, d, centers=blobs, cluster_std=std, random_state=args.seed)
        model, seconds = fit_kmeans(X, k, args)
        source = f"built-in {name} ({blobs} Gaussian blobs, seed {args.seed})"
        summary = _kmeans_summary(model, X, seconds, source, args)
        folder = out / name
        folder.mkdir(exist_ok=True)
        files = _write_kmeans_outputs(folder, X, model, summary, plots=not args.no_plots,
                                      label=name)
        overview[name] = dict(summary, folder=name)
        say(args, f"{name}: n={n} d={d} k={k} iterations={model.n_iter_} "
                  f"inertia={model.inertia_:.6g} seconds={seconds:.3f} -> "
                  f"{folder}/{{{','.join(files)}}}")
    write_json(out / "summary.json", overview)
    say(args, f"wrote {out}/ (one folder per dataset; {out}/summary.json lists both)")
    return 0


def cluster(args) -> int:
    """``ivfpq cluster``: k-means on a vector file."""
    out = check_out_dir(args.out)
    path, X = load_vectors(args.input, "base", args, dataset=args.dataset)
    if args.k > X.shape[0]:
        raise CommandError(f"--k {args.k} is larger than the number of vectors in {path} ({X.shape[0]})")
    say(args, f"read {path}: {X.shape[0]:,} vectors of dimension {X.shape[1]}")
    model, seconds = fit_kmeans(X, args.k, args, init=args.init, n_init=args.n_init,
                                metric=args.metric)
    summary = _kmeans_summary(model, X, seconds, str(path), args)
    files = _write_kmeans_outputs(out, X, model, summary, plots=not args.no_plots,
                                  label=Path(path).name)
    say(args, f"k-means ({model.algorithm}): k={args.k}, {_plural(model.n_iter_, 'iteration')}, "
              f"inertia {model.inertia_:.6g}, {seconds:.3f} s")
    say(args, f"wrote {', '.join(str(out / f) for f in files)}")
    return 0
