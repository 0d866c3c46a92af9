"""The ``ivfpq`` command: the only module that parses arguments or prints.

Subcommands::

    ivfpq demo [--out DIR]                              cluster built-in data, write results and pictures
    ivfpq cluster INPUT --k K --out DIR                 k-means on a vector file
    ivfpq index build INPUT --type ivfflat|ivfpq|hnsw --out FILE
    ivfpq index search INDEX QUERIES --k K --out FILE
    ivfpq index eval INDEX QUERIES --ground-truth FILE --k K
    ivfpq index ground-truth BASE QUERIES --k K --out FILE
    ivfpq bench kmeans|kmeans-large-k|pq|ann [ARGS...]

Every error ends the command with one line on stderr and a non-zero exit status: 2 for a
bad argument, 1 for anything else (unreadable input, a failed computation). Progress
bars go to stderr, only when it is a terminal and ``--quiet`` is not given.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130

#: ``ivfpq bench NAME`` runs ``benchmarks/<script>``.
BENCHMARKS = {
    "kmeans": "kmeans_exact.py",
    "kmeans-large-k": "kmeans_large_k.py",
    "pq": "pq_tile_vs_kmeans.py",
    "ann": "ann.py",
}

#: The built-in demo data: name -> (n, d, blobs drawn, k clustered, blob std).
DEMO_SETS = {
    "blobs2d": (3000, 2, 6, 6, 1.3),
    "blobs64d": (20000, 64, 8, 8, 7.0),
}

#: Which HDF5 dataset each kind of input means when the path names none.
_HDF5_DEFAULTS = {"base": "train", "query": "test", "groundtruth": "neighbors"}

_INDEX_CLASSES = {"ivfflat": "IVFFlat", "ivfpq": "IVFPQ", "hnsw": "HNSW"}


class CommandError(Exception):
    """A failure the user can act on; printed as one line, exit status 1."""


class UsageError(Exception):
    """A bad command line; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (with a pointer to --help), not usage + message."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------- helpers


def _say(args, message):
    """Print a result line unless --quiet; a closed pipe (``| head``) stops printing, not work."""
    if getattr(args, "quiet", False):
        return
    try:
        print(message, flush=True)
    except BrokenPipeError:
        args.quiet = True
        try:  # later writes, and the flush at exit, go nowhere instead of failing
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass


def _progress_enabled(args) -> bool:
    """Bars only for a person watching: stderr is a terminal and --quiet is off."""
    if getattr(args, "quiet", False):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _bar(enabled, **kwargs):
    """A tqdm bar on stderr that appears only after a second, and never when disabled."""
    from tqdm.auto import tqdm

    return tqdm(disable=not enabled, delay=1.0, leave=False, file=sys.stderr, **kwargs)


def _int_at_least(minimum, expected):
    """An argparse type: an integer >= ``minimum``; ``expected`` words the error."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "an integer >= 0")


def _int_list(text):
    """``"1,4,16"`` -> [1, 4, 16] (positive integers)."""
    values = []
    for part in text.split(","):
        values.append(_positive_int(part.strip()))
    return values


def _resolve_input(path, role):
    """A file, ``file.hdf5:dataset``, or a dataset folder (its file for ``role``)."""
    from .datasets import dataset_files

    folder = Path(path)
    if folder.is_dir():
        files = dataset_files(folder)
        if role not in files:
            raise CommandError(
                f"{folder}: the folder has no {role} file (found: {', '.join(sorted(files)) or 'none'})"
            )
        return str(files[role])
    return str(path)


def _hdf5_file(path):
    """``"a.hdf5:test"`` -> ``"a.hdf5"``."""
    text = str(path)
    for suffix in (".hdf5:", ".h5:"):
        at = text.lower().rfind(suffix)
        if at >= 0:
            return text[: at + len(suffix) - 1]
    return text


def _hdf5_dataset_for(path, role, dataset=None):
    lower = str(path).lower()
    if dataset is not None:
        return dataset
    if lower.endswith((".hdf5", ".h5")):
        return _HDF5_DEFAULTS.get(role)
    return None


def _load_float32(path, role, args, what="vectors", dataset=None):
    """Read a whole vector file as float32, in blocks, with a progress bar on big files."""
    from .io import iter_vector_blocks, vector_file_shape

    path = _resolve_input(path, role)
    dataset = _hdf5_dataset_for(path, role, dataset)
    n, d = vector_file_shape(path, dataset=dataset)
    out = np.empty((n, d), dtype=np.float32)
    block_rows = max(1, (16 << 20) // max(1, 4 * d))
    with _bar(_progress_enabled(args), total=n, desc=f"reading {what}", unit="rows",
              unit_scale=True) as bar:
        for start, block in iter_vector_blocks(path, block_rows, dataset=dataset):
            finite = np.isfinite(block).all(axis=1)
            if not finite.all():
                bad = start + int(np.flatnonzero(~finite)[0])
                raise CommandError(f"{path}: row {bad} holds NaN or infinity; every value must be finite")
            out[start:start + block.shape[0]] = block
            bar.update(block.shape[0])
    return path, out


def _load_ids(path, role, args, what="ids"):
    from .io import read_vectors

    path = _resolve_input(path, role)
    ids = np.asarray(read_vectors(path, dataset=_hdf5_dataset_for(path, role)))
    if ids.dtype.kind not in "iu":
        if ids.dtype.kind == "f" and np.array_equal(ids, np.round(ids)):
            ids = ids.astype(np.int64)
        else:
            raise CommandError(f"{path}: {what} must be integers, got dtype {ids.dtype}")
    return path, ids.astype(np.int64, copy=False)


def _write_json(path, payload):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def _check_out_dir(out):
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out}: exists and is not a folder; --out needs a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


# ----------------------------------------------------------------------------- k-means


def _available_algorithms():
    from .cluster import KMeans

    return tuple(getattr(KMeans, "_algorithms", ()))


def _check_algorithm(algorithm):
    if algorithm is None:
        return
    available = _available_algorithms()
    if available and algorithm not in available:
        raise CommandError(
            f"--algorithm {algorithm} is not available in this version of ivfpq "
            f"(available: {', '.join(available)})"
        )


def _fit_kmeans(X, k, args, *, init="k-means++", n_init="auto", metric="sqeuclidean", tol=1e-4):
    from .cluster import KMeans

    params = dict(n_clusters=k, init=init, n_init=n_init, max_iter=args.max_iter, tol=tol,
                  metric=metric, random_state=args.seed, verbose=_progress_enabled(args),
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
    changed = list(getattr(model, "changed_fraction_", []))
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
        "warmup_seconds": round(getattr(args, "compile_seconds", 0.0), 4),
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
        from .plot import plot_clusters, plot_score_over_time, save_figure

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
    _write_json(out / "summary.json", summary)
    return summary["files"]


def _demo(args) -> int:
    from .datasets import make_blobs

    out = _check_out_dir(args.out)
    overview = {}
    for name, (n, d, blobs, k, std) in DEMO_SETS.items():
        X, _ = make_blobs(n, d, centers=blobs, cluster_std=std, random_state=args.seed)
        model, seconds = _fit_kmeans(X, k, args)
        source = f"built-in {name} ({blobs} Gaussian blobs, seed {args.seed})"
        summary = _kmeans_summary(model, X, seconds, source, args)
        folder = out / name
        folder.mkdir(exist_ok=True)
        files = _write_kmeans_outputs(folder, X, model, summary, plots=not args.no_plots,
                                      label=name)
        overview[name] = dict(summary, folder=name)
        _say(args, f"{name}: n={n} d={d} k={k} iterations={model.n_iter_} "
                   f"inertia={model.inertia_:.6g} seconds={seconds:.3f} -> "
                   f"{folder}/{{{','.join(files)}}}")
    _write_json(out / "summary.json", overview)
    _say(args, f"wrote {out}/ (one folder per dataset; {out}/summary.json lists both)")
    return 0


def _cluster(args) -> int:
    _check_algorithm(args.algorithm)
    out = _check_out_dir(args.out)
    path, X = _load_float32(args.input, "base", args, dataset=args.dataset)
    if args.k > X.shape[0]:
        raise CommandError(f"--k {args.k} is larger than the number of vectors in {path} ({X.shape[0]})")
    _say(args, f"read {path}: {X.shape[0]:,} vectors of dimension {X.shape[1]}")
    model, seconds = _fit_kmeans(X, args.k, args, init=args.init, n_init=args.n_init,
                                 metric=args.metric)
    summary = _kmeans_summary(model, X, seconds, str(path), args)
    files = _write_kmeans_outputs(out, X, model, summary, plots=not args.no_plots,
                                  label=Path(path).name)
    _say(args, f"k-means ({model.algorithm}): k={args.k}, {_plural(model.n_iter_, 'iteration')}, "
               f"inertia {model.inertia_:.6g}, {seconds:.3f} s")
    _say(args, f"wrote {', '.join(str(out / f) for f in files)}")
    return 0


# ----------------------------------------------------------------------------- indexes


def _library_attribute(name, what):
    import ivfpq

    value = getattr(ivfpq, name, None)
    if value is None:
        raise CommandError(f"{what} needs ivfpq.{name}, which this version of ivfpq does not have")
    return value


def _make_index(kind, d, args):
    """Construct the index class for ``kind`` with the options the user gave."""
    cls = _library_attribute(_INDEX_CLASSES[kind], f"--type {kind}")
    given = {
        "nlist": args.nlist, "M": args.M, "nbits": args.nbits,
        "ef_construction": args.ef_construction, "metric": args.metric,
    }
    given = {name: value for name, value in given.items() if value is not None}
    parameters = inspect.signature(cls).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name in given:
        if name not in parameters and not accepts_any:
            option = "--" + name.replace("_", "-")
            raise UsageError(f"ivfpq index build: error: {option} does not apply to --type {kind}")
    options = {"nlist": "--nlist", "M": "--M", "nbits": "--nbits",
               "ef_construction": "--ef-construction", "metric": "--metric"}
    for name, parameter in parameters.items():
        required = parameter.default is inspect.Parameter.empty and parameter.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        if required and name in options and name not in given:
            raise UsageError(f"ivfpq index build: error: --type {kind} needs {options[name]}")
    kwargs = dict(given)
    for name, value in (("random_state", args.seed), ("verbose", _progress_enabled(args))):
        if name in parameters:
            kwargs[name] = value
    for name in ("d", "dim", "n_features"):
        if name in parameters and parameters[name].default is inspect.Parameter.empty:
            kwargs[name] = d
    return cls(**kwargs)


def _index_build(args) -> int:
    _library_attribute(_INDEX_CLASSES[args.type], f"--type {args.type}")  # before reading data
    path, X = _load_float32(args.input, "base", args, what="base vectors")
    _say(args, f"read {path}: {X.shape[0]:,} vectors of dimension {X.shape[1]}")
    index = _make_index(args.type, X.shape[1], args)
    start = time.perf_counter()
    if hasattr(index, "train"):
        rows = X
        if args.train_size is not None and args.train_size < X.shape[0]:
            rng = np.random.default_rng(args.seed)
            rows = X[np.sort(rng.choice(X.shape[0], args.train_size, replace=False))]
        index.train(rows)
    train_seconds = time.perf_counter() - start
    block = 50_000
    with _bar(_progress_enabled(args), total=X.shape[0], desc="adding", unit="vec",
              unit_scale=True) as bar:
        for first in range(0, X.shape[0], block):
            index.add(X[first:first + block])
            bar.update(min(block, X.shape[0] - first))
    seconds = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = index.save(out)
    saved = Path(saved) if isinstance(saved, (str, os.PathLike)) else out
    _say(args, f"built {type(index).__name__} over {X.shape[0]:,} vectors in {seconds:.3f} s "
               f"(training {train_seconds:.3f} s); wrote {saved}")
    return 0


def _set_search_params(index, args, kwargs_out):
    """Apply --nprobe / --ef-search as the index takes them (attribute or search kwarg)."""
    search_params = inspect.signature(index.search).parameters
    for option, name in (("nprobe", "nprobe"), ("ef_search", "ef_search")):
        value = getattr(args, option, None)
        if value is None:
            continue
        if name in search_params:
            kwargs_out[name] = value
        elif hasattr(index, name):
            setattr(index, name, value)
        else:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"ivfpq index: error: {flag} does not apply to a {type(index).__name__} index")


def _split_result(result, n_queries, k):
    """(distances, ids) from a search result, whichever order the index returns."""
    if isinstance(result, tuple) and len(result) == 2:
        a, b = (np.asarray(r) for r in result)
        if a.dtype.kind in "iu" and b.dtype.kind == "f":
            return b, a
        return a, b
    raise CommandError(f"the index's search returned {type(result).__name__}; expected (distances, ids)")


def _search_all(index, Q, k, args, kwargs, desc="searching"):
    block = 1024
    distances, ids = [], []
    with _bar(_progress_enabled(args), total=Q.shape[0], desc=desc, unit="query",
              unit_scale=True) as bar:
        for first in range(0, Q.shape[0], block):
            part = Q[first:first + block]
            dist, idx = _split_result(index.search(part, k, **kwargs), part.shape[0], k)
            distances.append(dist)
            ids.append(idx)
            bar.update(part.shape[0])
    return np.vstack(distances), np.vstack(ids)


def _load_index(path):
    load = _library_attribute("load", "loading an index")
    path = Path(path)
    if not path.exists():
        raise CommandError(f"{path}: no such index file")
    return load(path)


def _index_search(args) -> int:
    from .io import write_vectors

    index = _load_index(args.index)
    path, Q = _load_float32(args.queries, "query", args, what="queries")
    kwargs = {}
    _set_search_params(index, args, kwargs)
    start = time.perf_counter()
    distances, ids = _search_all(index, Q, args.k, args, kwargs)
    seconds = time.perf_counter() - start
    write_vectors(args.out, ids.astype(np.int32) if ids.max(initial=0) < 2**31 else ids,
                  dataset="neighbors")
    written = [str(args.out)]
    if args.distances:
        write_vectors(args.distances, distances.astype(np.float32), dataset="distances")
        written.append(str(args.distances))
    _say(args, f"searched {Q.shape[0]:,} queries from {path} for k={args.k} in {seconds:.3f} s "
               f"({Q.shape[0] / max(seconds, 1e-12):,.0f} queries/s); wrote {', '.join(written)}")
    return 0


def _index_eval(args) -> int:
    import ivfpq

    from .plot import plot_recall_latency, save_figure

    index = _load_index(args.index)
    qpath, Q = _load_float32(args.queries, "query", args, what="queries")
    truth_source = args.ground_truth
    if truth_source is None:
        if not (Path(args.queries).is_dir() or _hdf5_file(args.queries).lower().endswith((".hdf5", ".h5"))):
            raise UsageError(
                "ivfpq index eval: error: --ground-truth FILE is required unless QUERIES is an "
                "ann-benchmarks .hdf5 file (with 'neighbors') or a dataset folder (with groundtruth)"
            )
        truth_source = args.queries if Path(args.queries).is_dir() else _hdf5_file(args.queries)
    gpath, truth = _load_ids(truth_source, "groundtruth", args, what="ground-truth ids")
    if truth.shape[0] != Q.shape[0]:
        raise CommandError(
            f"{gpath}: {truth.shape[0]} rows of ground truth for {Q.shape[0]} queries in {qpath}"
        )
    if truth.shape[1] < args.k:
        raise CommandError(f"{gpath}: holds {truth.shape[1]} neighbours per query, fewer than --k {args.k}")
    if args.nprobe and args.ef_search:
        raise UsageError("ivfpq index eval: error: give --nprobe or --ef-search, not both")
    option = "nprobe" if args.nprobe else "ef_search" if args.ef_search else None
    values = args.nprobe or args.ef_search or [None]
    results = []
    for value in values:
        setattr(args, "nprobe", None)
        setattr(args, "ef_search", None)
        if option is not None:
            setattr(args, option, value)
        kwargs = {}
        _set_search_params(index, args, kwargs)
        index.search(Q[:16], args.k, **kwargs)  # untimed: compilation and caches warm up here
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            _, ids = _search_all(index, Q, args.k, args, kwargs,
                                 desc=f"{option}={value}" if option else "searching")
            times.append(time.perf_counter() - start)
        seconds = float(np.median(times))
        recall = float(ivfpq.recall(ids, truth, args.k))
        entry = {"recall": recall, "qps": Q.shape[0] / max(seconds, 1e-12),
                 "latency_ms": 1000.0 * seconds / Q.shape[0], "seconds": seconds}
        if option is not None:
            entry[option] = value
            entry["param"] = f"{option}={value}"
        results.append(entry)
    name = type(index).__name__
    _say(args, f"| {option or 'setting'} | recall@{args.k} | queries/s | ms/query |")
    _say(args, "|---|---|---|---|")
    for entry in results:
        _say(args, f"| {entry.get(option, '-')} | {entry['recall']:.4f} | {entry['qps']:,.0f} | "
                   f"{entry['latency_ms']:.4f} |")
    summary = {"index": str(args.index), "type": name, "queries": str(qpath),
               "ground_truth": str(gpath), "k": args.k, "repeat": args.repeat, "results": results}
    if args.out:
        _write_json(args.out, summary)
        _say(args, f"wrote {args.out}")
    if args.plot:
        fig = plot_recall_latency({name: results}, k=args.k,
                                  title=f"{name} on {Path(str(qpath)).name}: recall@{args.k} against latency")
        save_figure(fig, args.plot)
        _say(args, f"wrote {args.plot}")
    return 0


def _index_ground_truth(args) -> int:
    from .io import write_vectors

    ground_truth = _library_attribute("ground_truth", "ivfpq index ground-truth")
    bpath, X = _load_float32(args.base, "base", args, what="base vectors")
    qpath, Q = _load_float32(args.queries, "query", args, what="queries")
    if args.k > X.shape[0]:
        raise CommandError(f"--k {args.k} is larger than the number of base vectors in {bpath} ({X.shape[0]})")
    start = time.perf_counter()
    result = ground_truth(X, Q, args.k)
    if isinstance(result, tuple):
        _, ids = _split_result(result, Q.shape[0], args.k)
    else:
        ids = result
    seconds = time.perf_counter() - start
    write_vectors(args.out, np.asarray(ids).astype(np.int32), dataset="neighbors")
    _say(args, f"exact {args.k} nearest neighbours of {Q.shape[0]:,} queries among {X.shape[0]:,} "
               f"vectors in {seconds:.3f} s; wrote {args.out}")
    return 0


# ----------------------------------------------------------------------------- benchmarks


def _benchmark_folders():
    folders = []
    if os.environ.get("IVFPQ_BENCHMARKS"):
        folders.append(Path(os.environ["IVFPQ_BENCHMARKS"]))
    folders.append(Path(__file__).resolve().parents[1] / "benchmarks")  # a source checkout
    folders.append(Path.cwd() / "benchmarks")
    unique = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def _bench(args) -> int:
    script_name = BENCHMARKS[args.suite]
    folders = _benchmark_folders()
    script = next((f / script_name for f in folders if (f / script_name).is_file()), None)
    if script is None:
        raise CommandError(
            f"benchmark script {script_name} not found (looked in {', '.join(str(f) for f in folders)}); "
            "the benchmarks ship with the source repository, not the installed package: run from "
            "a clone, or set IVFPQ_BENCHMARKS to its benchmarks folder"
        )
    env = dict(os.environ)
    repo = script.resolve().parent.parent
    if (repo / "ivfpq" / "__init__.py").is_file():  # run the scripts against this checkout
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    command = [sys.executable, str(script), *args.script_args]
    try:
        return subprocess.run(command, env=env, cwd=repo).returncode
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ivfpq`` command (every subcommand has --help)."""
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing but errors; no progress bars")

    parser = _Parser(
        prog="ivfpq",
        description="k-means at scale, product quantization and vector indexes. "
                    "Reads .fvecs, .ivecs, .bvecs, .npy, ann-benchmarks .hdf5 and MNIST IDX files.",
        epilog="Run 'ivfpq COMMAND --help' for a command's options. Start with: ivfpq demo --out demo-output",
    )
    parser.add_argument("--version", action="version", version=f"ivfpq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo", parents=[common], help="cluster built-in data; write results and pictures",
        description="Cluster two built-in seeded datasets (2-D blobs and 64-D blobs) and write, "
                    "for each, a folder OUT/<dataset>/ with centroids.npy, labels.npy, summary.json, "
                    "clusters.png (points coloured by cluster; PCA projection for 64-D) and "
                    "inertia.png. OUT/summary.json gathers both summaries.")
    demo.add_argument("--out", default="demo-output", metavar="DIR",
                      help="output folder (default: demo-output)")
    demo.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default: 0)")
    demo.add_argument("--max-iter", type=_positive_int, default=300, metavar="N",
                      help="maximum k-means iterations (default: 300)")
    demo.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")
    demo.set_defaults(func=_demo)

    cluster = sub.add_parser(
        "cluster", parents=[common], help="k-means on a vector file",
        description="Cluster the vectors of INPUT with k-means and write OUT/centroids.npy, "
                    "OUT/labels.npy, OUT/summary.json (n, d, k, algorithm, iterations, inertia, "
                    "seconds, per-iteration history), OUT/clusters.png and OUT/inertia.png.")
    cluster.add_argument("input", metavar="INPUT",
                         help="vector file (.fvecs .ivecs .bvecs .npy .hdf5[:dataset] IDX) or a "
                              "dataset folder (its base vectors are used)")
    cluster.add_argument("--k", type=_positive_int, required=True, help="number of clusters")
    cluster.add_argument("--out", required=True, metavar="DIR", help="output folder")
    cluster.add_argument("--algorithm", choices=("auto", "lloyd", "mop"), default=None,
                         help="how points find their centroid: lloyd (exact), mop (graph-based, "
                              "for large k), auto (choose); default: the library's default")
    cluster.add_argument("--max-iter", type=_positive_int, default=300, metavar="N",
                         help="maximum iterations (default: 300)")
    cluster.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default: 0)")
    cluster.add_argument("--init", choices=("k-means++", "random"), default="k-means++",
                         help="initial centroids (default: k-means++)")
    cluster.add_argument("--n-init", type=_positive_int, default=1, metavar="N",
                         help="runs from different starts; the lowest inertia wins (default: 1)")
    cluster.add_argument("--metric", choices=("sqeuclidean", "cosine"), default="sqeuclidean",
                         help="distance (default: sqeuclidean)")
    cluster.add_argument("--dataset", default=None, help="HDF5 dataset to read (default: train)")
    cluster.add_argument("--threads", type=_positive_int, default=None, help="threads (default: all cores)")
    cluster.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")
    cluster.set_defaults(func=_cluster)

    index = sub.add_parser("index", help="build, search and evaluate vector indexes",
                           description="Build an index over a vector file, search it, and measure "
                                       "recall and queries per second against a ground truth.")
    index_sub = index.add_subparsers(dest="index_command", required=True, metavar="SUBCOMMAND")

    build = index_sub.add_parser(
        "build", parents=[common], help="build an index from a vector file and save it",
        description="Train (IVF) and fill an index with the vectors of INPUT, then save it to FILE.")
    build.add_argument("input", metavar="INPUT", help="base vectors (any supported format, or a dataset folder)")
    build.add_argument("--type", required=True, choices=tuple(_INDEX_CLASSES), help="index type")
    build.add_argument("--out", required=True, metavar="FILE", help="index file to write")
    build.add_argument("--nlist", type=_positive_int, help="IVF: number of inverted lists (coarse centroids)")
    build.add_argument("--M", type=_positive_int,
                       help="IVFPQ: number of subquantizers; HNSW: links per node")
    build.add_argument("--nbits", type=_positive_int, help="IVFPQ: bits per subquantizer code")
    build.add_argument("--ef-construction", type=_positive_int, help="HNSW: beam width while building")
    build.add_argument("--metric", choices=("l2", "ip", "cosine"), default=None, help="distance")
    build.add_argument("--train-size", type=_positive_int, metavar="N",
                       help="IVF: train on a random sample of N vectors (default: all)")
    build.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default: 0)")
    build.set_defaults(func=_index_build)

    search = index_sub.add_parser(
        "search", parents=[common], help="search an index for the k nearest neighbours of queries",
        description="Search the saved index FILE for the K nearest neighbours of each query; write "
                    "their ids (and optionally distances) in the format the extension names.")
    search.add_argument("index", metavar="FILE", help="index file written by 'ivfpq index build'")
    search.add_argument("queries", metavar="QUERIES", help="query vectors (hdf5: 'test' by default)")
    search.add_argument("--k", type=_positive_int, required=True, help="neighbours per query")
    search.add_argument("--out", required=True, metavar="FILE",
                        help="ids output (.ivecs, .npy or .hdf5)")
    search.add_argument("--distances", metavar="FILE", help="also write the distances here")
    search.add_argument("--nprobe", type=_positive_int, help="IVF: lists visited per query")
    search.add_argument("--ef-search", type=_positive_int, help="HNSW: beam width while searching")
    search.set_defaults(func=_index_search)

    evaluate = index_sub.add_parser(
        "eval", parents=[common], help="recall and queries/s against a ground truth",
        description="Search FILE with each given --nprobe (or --ef-search) value and report "
                    "recall@K and queries per second; optionally write JSON and a recall-latency plot.")
    evaluate.add_argument("index", metavar="FILE", help="index file written by 'ivfpq index build'")
    evaluate.add_argument("queries", metavar="QUERIES", help="query vectors (hdf5: 'test' by default)")
    evaluate.add_argument("--ground-truth", metavar="FILE",
                          help="true neighbour ids per query (.ivecs, .npy, hdf5 'neighbors'); "
                               "default: QUERIES when it is an hdf5 file")
    evaluate.add_argument("--k", type=_positive_int, default=10, help="neighbours per query (default: 10)")
    evaluate.add_argument("--nprobe", type=_int_list, metavar="N[,N...]", help="IVF: values to try, e.g. 1,4,16")
    evaluate.add_argument("--ef-search", type=_int_list, metavar="N[,N...]", help="HNSW: values to try")
    evaluate.add_argument("--repeat", type=_positive_int, default=3,
                          help="timed runs per setting; the median is reported (default: 3)")
    evaluate.add_argument("--out", metavar="FILE", help="write the results as JSON")
    evaluate.add_argument("--plot", metavar="PNG", help="write a recall-against-latency plot")
    evaluate.set_defaults(func=_index_eval)

    truth = index_sub.add_parser(
        "ground-truth", parents=[common], help="exact nearest neighbours (for 'index eval')",
        description="Compute the exact K nearest neighbours of each query among the base vectors.")
    truth.add_argument("base", metavar="BASE", help="base vectors")
    truth.add_argument("queries", metavar="QUERIES", help="query vectors")
    truth.add_argument("--k", type=_positive_int, default=100, help="neighbours per query (default: 100)")
    truth.add_argument("--out", required=True, metavar="FILE", help="ids output (.ivecs, .npy or .hdf5)")
    truth.set_defaults(func=_index_ground_truth)

    bench = sub.add_parser(
        "bench", help="run a benchmark script from the source repository",
        description="Run benchmarks/<script>.py from the source checkout with the arguments that "
                    "follow (try: ivfpq bench kmeans --help). "
                    + "; ".join(f"{name}: {script}" for name, script in BENCHMARKS.items()) + ".")
    bench.add_argument("suite", choices=tuple(BENCHMARKS), help="which benchmark")
    bench.add_argument("script_args", nargs=argparse.REMAINDER, metavar="ARGS",
                       help="passed to the script unchanged (e.g. --quick)")
    bench.set_defaults(func=_bench)
    return parser


def _command_name(args):
    parts = ["ivfpq", getattr(args, "command", None), getattr(args, "index_command", None)]
    return " ".join(p for p in parts if p)


def _one_line(exc):
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MemoryError):
        text = f"out of memory ({text})"
    return " ".join(text.split())


def main(argv=None) -> int:
    """Run the ``ivfpq`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(_one_line(exc), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    name = _command_name(args)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(_one_line(exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CommandError, ValueError, TypeError, OSError, ImportError, MemoryError) as exc:
        print(f"{name}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("IVFPQ_DEBUG"):
            raise
        print(f"{name}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set IVFPQ_DEBUG=1 to see the traceback)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
