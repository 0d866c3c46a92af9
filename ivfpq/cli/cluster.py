"""``ivfpq demo`` and ``ivfpq cluster``: k-means, its results and its pictures."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..cluster import KMeans
from ..datasets import make_blobs
from ..index import IVFFlat, ground_truth, recall
from ..plot import plot_clusters, plot_score_over_time, save_figure
from ._common import CommandError, check_out_dir, load_vectors, progress_enabled, say, write_json

__all__ = ["DEMO_SETS", "DEMO_RACE", "RaceSize", "demo", "cluster"]

#: The demo's 2-D set: name -> (n, d, blobs drawn, k clustered, blob std).
DEMO_SETS = {
    "blobs2d": (3000, 2, 6, 6, 1.3),
}


class RaceSize(NamedTuple):
    """Sizes of the demo's race between exact Lloyd and mop."""

    n: int           # points clustered
    d: int           # dimensions
    components: int  # Gaussian components the points are drawn from
    k: int           # clusters, and lists of the index built on them
    iterations: int  # Lloyd iterations of each run; exact Lloyd's last one sets the target
    queries: int     # held-out points searched in the index
    nprobe: tuple    # lists probed per query, one recall figure each


#: The race: "full" is what ``ivfpq demo`` runs, "quick" what ``--quick`` runs. Many
#: more clusters than components is where mop pays: most points keep their centroid
#: from one iteration to the next, and exact Lloyd still compares each with all k.
DEMO_RACE = {
    "full": RaceSize(n=200_000, d=64, components=1000, k=5000, iterations=10, queries=1000,
                     nprobe=(1, 4, 16)),
    "quick": RaceSize(n=6000, d=16, components=40, k=300, iterations=10, queries=100,
                      nprobe=(1, 4, 16)),
}

#: The race's target: exact Lloyd's inertia after ``iterations`` iterations, plus 0.5%.
TARGET_SLACK = 1.005

#: ``KMeans(algorithm=...)`` -> the name the race prints and plots.
RACE_LABELS = {"lloyd": "exact Lloyd", "mop": "mop"}


def fit_kmeans(X, k, args, *, init="auto", n_init="auto", metric="sqeuclidean", tol=1e-4):
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
    history = _history(model)
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


def _save_npy(path, array):
    """``np.save`` through a temporary file renamed into place: never a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _write_kmeans_outputs(out, X, model, summary, plots, label):
    """centroids.npy, labels.npy, clusters.png, inertia.png, summary.json into ``out``."""
    written = []
    for name, array in (("centroids.npy", model.cluster_centers_), ("labels.npy", model.labels_)):
        _save_npy(out / name, array)
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


def _history(model):
    """``history_`` and ``changed_fraction_`` as one list of per-iteration records."""
    changed = model.changed_fraction_
    history = []
    for i, (elapsed, inertia) in enumerate(model.history_):
        entry = {"iteration": i + 1, "seconds": round(float(elapsed), 6), "inertia": float(inertia)}
        if i < len(changed):
            entry["changed_fraction"] = round(float(changed[i]), 6)
        history.append(entry)
    return history


def _race_data(size, seed):
    """The race's points and its held-out queries: one seeded Gaussian mixture, split."""
    X, _ = make_blobs(size.n + size.queries, size.d, centers=size.components, cluster_std=1.0,
                      spread=10.0, random_state=seed)
    return X[: size.n], X[size.n:]


def _index_on(centroids):
    """An :class:`ivfpq.IVFFlat` whose lists are exactly ``centroids``.

    ``IVFFlat`` learns its lists itself, so it is trained on the centroids alone with one
    list per centroid: its k-means then starts from all of them (distinct rows) and each
    is its own cluster, which leaves them unchanged (the tests check it).
    """
    index = IVFFlat(nlist=centroids.shape[0], kmeans_iter=1, max_points_per_centroid=1,
                    kmeans_algorithm="lloyd", quantizer="exact", random_state=0)
    return index.train(centroids)


def _warm_up_race(X, Q):
    """Tiny untimed runs of every step the race times, so that Numba compiles there."""
    rows, k = X[:2048], 64
    for algorithm in ("lloyd", "mop"):
        KMeans(n_clusters=k, init=rows[:k], n_init=1, max_iter=3, tol=0.0,
               algorithm=algorithm, random_state=0).fit(rows)
    index = _index_on(rows[:k])
    index.add(rows)
    index.search(Q[:8], 10, nprobe=2)  # a few queries: the serial kernels
    index.search(Q[:64], 10, nprobe=2)  # a batch: the parallel ones
    ground_truth(rows, Q[:8], 10)


def _seconds_to(history, target):
    """Seconds since the start of the fit at the first iteration at or below ``target``."""
    for seconds, inertia in history:
        if inertia <= target:
            return float(seconds)
    return None


def _race_plot(histories, target, reached, speedup, size, path):
    """race.png: inertia against seconds for both runs, the target, and when each reached it.

    ``histories``: run label -> ``history_``; ``reached``: run label -> seconds or None.
    """
    headline = "" if speedup is None else f"; mop reaches the target {speedup:.1f}x sooner"
    fig = plot_score_over_time(
        histories, title=f"k={size.k:,} clusters of {size.n:,} points in {size.d}-D{headline}")
    ax = fig.axes[0]
    for line, label in zip(list(ax.lines), histories):
        if reached[label] is not None:
            ax.axvline(reached[label], color=line.get_color(), linestyle=":", linewidth=1,
                       label=f"{label} reaches the target at {reached[label]:.3g} s")
    ax.axhline(target, color="0.4", linestyle="--", linewidth=1,
               label=f"target: exact Lloyd's inertia after {size.iterations} iterations +0.5%")
    # The first iteration sits far above the rest; zoom in on the approach to the target.
    low = min(history[-1][1] for history in histories.values())
    high = max(history[0][1] for history in histories.values())
    ax.set_ylim(low - 0.1 * (target - low), min(high, low + 15 * (target - low)))
    ax.legend(ax.lines, [line.get_label() for line in ax.lines], loc="upper right",
              fontsize="small")
    save_figure(fig, path)


def _index_recall(X, Q, centroids, nprobes, k=10):
    """Build an IVFFlat on ``centroids``, add ``X``, and measure its recall@k on ``Q``.

    Returns the summary's ``"index"`` record: build time, exact search time, and the
    recall and latency at each of ``nprobes``.
    """
    start = time.perf_counter()
    index = _index_on(centroids)
    index.add(X)
    build = time.perf_counter() - start
    start = time.perf_counter()
    _, truth = ground_truth(X, Q, k)
    exact = time.perf_counter() - start
    search = []
    for nprobe in nprobes:
        start = time.perf_counter()
        _, ids = index.search(Q, k, nprobe=nprobe)
        seconds = time.perf_counter() - start
        search.append({"nprobe": nprobe, f"recall_at_{k}": float(recall(ids, truth, k)),
                       "ms_per_query": round(1000 * seconds / Q.shape[0], 4)})
    return {"type": "IVFFlat", "lists": "mop's centroids", "nlist": int(index.nlist),
            "ntotal": int(index.ntotal), "build_seconds": round(build, 4),
            "queries": int(Q.shape[0]), "k": k,
            "exact_ms_per_query": round(1000 * exact / Q.shape[0], 4), "search": search}


def _race(args, size, folder):
    """Exact Lloyd against mop on one dataset from one start, then an index on mop's centroids.

    Parameters
    ----------
    args : argparse.Namespace
        The demo's options (``seed``, ``quiet``, ``no_plots``).
    size : RaceSize
    folder : Path
        Where ``centroids.npy``, ``race.png`` and ``summary.json`` go.

    Returns
    -------
    dict
        The race's summary, as written to ``folder/summary.json``.
    """
    X, Q = _race_data(size, args.seed)
    say(args, f"race: {size.n:,} points in {size.d}-D ({size.components:,} Gaussian components, "
              f"seed {args.seed}), k={size.k:,}, {size.iterations} iterations each from the "
              f"same {size.k:,} random rows")
    start = time.perf_counter()
    _warm_up_race(X, Q)
    warm_up = time.perf_counter() - start
    say(args, f"  warm-up, untimed: {warm_up:.1f} s")
    rng = np.random.default_rng(args.seed)
    init = X[np.sort(rng.choice(X.shape[0], size=size.k, replace=False))]
    runs = {}
    for algorithm in ("lloyd", "mop"):
        start = time.perf_counter()
        model = KMeans(n_clusters=size.k, init=init, n_init=1, max_iter=size.iterations,
                       tol=0.0, algorithm=algorithm, random_state=args.seed,
                       verbose=progress_enabled(args)).fit(X)
        runs[algorithm] = (model, time.perf_counter() - start)
    lloyd, mop = runs["lloyd"][0], runs["mop"][0]
    target = lloyd.history_[-1][1] * TARGET_SLACK
    summary_runs = {}
    for algorithm, (model, seconds) in runs.items():
        label = RACE_LABELS[algorithm]
        reached = _seconds_to(model.history_, target)
        summary_runs[algorithm] = {
            "label": label, "iterations": int(model.n_iter_), "inertia": float(model.inertia_),
            "seconds": round(seconds, 4),
            "seconds_to_target": None if reached is None else round(reached, 4),
            "history": _history(model),
        }
        when = "not reached" if reached is None else f"{reached:.2f} s"
        say(args, f"  {label + ':':13} {_plural(model.n_iter_, 'iteration')} in {seconds:6.2f} s, "
                  f"inertia {model.inertia_:.6g}; target reached at {when}")
    to_lloyd = summary_runs["lloyd"]["seconds_to_target"]
    to_mop = summary_runs["mop"]["seconds_to_target"]
    speedup = to_lloyd / to_mop if to_mop else None
    if speedup is None:
        say(args, f"  target {target:.6g} (exact Lloyd's last inertia +0.5%): mop did not reach "
                  f"it in {size.iterations} iterations")
    else:
        faster = f"{speedup:.1f}x sooner" if speedup >= 1 else f"{1 / speedup:.1f}x later"
        say(args, f"  target {target:.6g} (exact Lloyd's last inertia +0.5%): mop reached it "
                  f"{faster} than exact Lloyd")

    index = _index_recall(X, Q, mop.cluster_centers_, size.nprobe)
    say(args, f"index: IVFFlat with mop's {size.k:,} centroids as its lists, {index['ntotal']:,} "
              f"vectors, built in {index['build_seconds']:.2f} s; {Q.shape[0]:,} held-out "
              "queries, recall@10 "
              + ", ".join(f"{p['recall_at_10']:.3f} at nprobe={p['nprobe']} "
                          f"({p['ms_per_query']:.3g} ms/query)" for p in index["search"])
              + f" (exact search: {index['exact_ms_per_query']:.3g} ms/query)")

    _save_npy(folder / "centroids.npy", mop.cluster_centers_)
    files = ["centroids.npy"]
    if not args.no_plots:
        _race_plot({RACE_LABELS[a]: model.history_ for a, (model, _) in runs.items()}, target,
                   {RACE_LABELS[a]: run["seconds_to_target"] for a, run in summary_runs.items()},
                   speedup, size, folder / "race.png")
        files.append("race.png")
    summary = {
        "input": f"built-in Gaussian mixture ({size.components} components, seed {args.seed})",
        "n": size.n, "d": size.d, "k": size.k, "seed": args.seed,
        "init": f"{size.k} distinct random rows, the same for both runs",
        "target": f"exact Lloyd's inertia after {lloyd.n_iter_} iterations, +0.5%",
        "target_inertia": float(target),
        "runs": summary_runs,
        "speedup": None if speedup is None else round(speedup, 3),
        "index": index,
        "warmup_seconds": round(warm_up, 4),
        "files": files + ["summary.json"],
    }
    write_json(folder / "summary.json", summary)
    return summary


def demo(args) -> int:
    """``ivfpq demo``: the 2-D picture, then the race between exact Lloyd and mop."""
    out = check_out_dir(args.out)
    # Said first: on a fresh install the warm-ups compile for a minute or more, silently.
    say(args, "ivfpq demo: blobs2d, then the race; untimed warm-up runs come first "
              "(on a first run Numba compiles the kernels there, which takes a minute or two)")
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
    folder = out / "race"
    folder.mkdir(exist_ok=True)
    summary = _race(args, DEMO_RACE["quick" if args.quick else "full"], folder)
    overview["race"] = dict(summary, folder="race")
    say(args, f"race -> {folder}/{{{','.join(summary['files'])}}}")
    write_json(out / "summary.json", overview)
    say(args, f"wrote {out}/ (one folder per part; {out}/summary.json gathers them)")
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
