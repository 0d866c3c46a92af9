"""``ivfpq index build | search | eval | ground-truth``: vector indexes from the shell."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .._storage import load
from ..datasets import ground_truth_source, read_input_ids
from ..index import HNSW, IVFFlat, IVFPQ, ground_truth, recall
from ..io import write_vectors
from ..plot import plot_recall_latency, save_figure
from ._common import CommandError, UsageError, bar, load_vectors, progress_enabled, say, write_json

__all__ = ["INDEX_TYPES", "index_build", "index_search", "index_eval", "index_ground_truth"]

#: ``--type`` -> (class, the build options it needs, the build options it takes).
INDEX_TYPES = {
    "ivfflat": (IVFFlat, ("nlist",), ("nlist", "metric")),
    "ivfpq": (IVFPQ, ("nlist", "M"), ("nlist", "M", "nbits", "metric")),
    "hnsw": (HNSW, (), ("M", "ef_construction", "metric")),
}

#: The search option each kind of index takes (an argument of its ``search``).
_SEARCH_OPTIONS = (((IVFFlat, IVFPQ), "nprobe"), (HNSW, "ef_search"))

_BUILD_OPTIONS = ("nlist", "M", "nbits", "ef_construction", "metric")


def _flag(name):
    return "--" + name.replace("_", "-")


def _make_index(kind, args):
    """The index ``--type kind`` names, with the options the user gave."""
    cls, needs, takes = INDEX_TYPES[kind]
    given = {name: getattr(args, name) for name in _BUILD_OPTIONS if getattr(args, name) is not None}
    for name in given:
        if name not in takes:
            raise UsageError(f"ivfpq index build: error: {_flag(name)} does not apply to --type {kind}")
    for name in needs:
        if name not in given:
            raise UsageError(f"ivfpq index build: error: --type {kind} needs {_flag(name)}")
    return cls(**given, random_state=args.seed)


def index_build(args) -> int:
    """``ivfpq index build``: train (IVF), fill and save an index."""
    path, X = load_vectors(args.input, "base", args, what="base vectors")
    say(args, f"read {path}: {X.shape[0]:,} vectors of dimension {X.shape[1]}")
    index = _make_index(args.type, args)
    start = time.perf_counter()
    if isinstance(index, (IVFFlat, IVFPQ)):
        rows = X
        if args.train_size is not None and args.train_size < X.shape[0]:
            rng = np.random.default_rng(args.seed)
            rows = X[np.sort(rng.choice(X.shape[0], args.train_size, replace=False))]
        index.train(rows)
    train_seconds = time.perf_counter() - start
    block = 50_000
    with bar(progress_enabled(args), total=X.shape[0], desc="adding", unit="vec",
             unit_scale=True) as shown:
        for first in range(0, X.shape[0], block):
            index.add(X[first:first + block])
            shown.update(min(block, X.shape[0] - first))
    seconds = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = index.save(out)
    say(args, f"built {type(index).__name__} over {X.shape[0]:,} vectors in {seconds:.3f} s "
              f"(training {train_seconds:.3f} s); wrote {saved}")
    return 0


def _search_kwargs(index, args):
    """--nprobe / --ef-search as the ``search`` argument of the index's kind."""
    kwargs = {}
    for option in ("nprobe", "ef_search"):
        value = getattr(args, option, None)
        if value is None:
            continue
        if not any(isinstance(index, cls) and name == option for cls, name in _SEARCH_OPTIONS):
            raise UsageError(
                f"ivfpq index: error: {_flag(option)} does not apply to a {type(index).__name__} index")
        kwargs[option] = value
    return kwargs


def _search_all(index, Q, k, args, kwargs, desc="searching"):
    block = 1024
    distances, ids = [], []
    with bar(progress_enabled(args), total=Q.shape[0], desc=desc, unit="query",
             unit_scale=True) as shown:
        for first in range(0, Q.shape[0], block):
            part = Q[first:first + block]
            dist, idx = index.search(part, k, **kwargs)
            distances.append(dist)
            ids.append(idx)
            shown.update(part.shape[0])
    return np.vstack(distances), np.vstack(ids)


def _load_index(path):
    path = Path(path)
    if not path.exists():
        raise CommandError(f"{path}: no such index file")
    return load(path)


def index_search(args) -> int:
    """``ivfpq index search``: the k nearest neighbours of each query, written to a file."""
    index = _load_index(args.index)
    path, Q = load_vectors(args.queries, "query", args, what="queries")
    kwargs = _search_kwargs(index, args)
    start = time.perf_counter()
    distances, ids = _search_all(index, Q, args.k, args, kwargs)
    seconds = time.perf_counter() - start
    write_vectors(args.out, ids.astype(np.int32) if ids.max(initial=0) < 2**31 else ids,
                  dataset="neighbors")
    written = [str(args.out)]
    if args.distances:
        write_vectors(args.distances, distances.astype(np.float32), dataset="distances")
        written.append(str(args.distances))
    say(args, f"searched {Q.shape[0]:,} queries from {path} for k={args.k} in {seconds:.3f} s "
              f"({Q.shape[0] / max(seconds, 1e-12):,.0f} queries/s); wrote {', '.join(written)}")
    return 0


def index_eval(args) -> int:
    """``ivfpq index eval``: recall@k and queries per second for each search setting."""
    index = _load_index(args.index)
    qpath, Q = load_vectors(args.queries, "query", args, what="queries")
    truth_source = args.ground_truth or ground_truth_source(args.queries)
    if truth_source is None:
        raise UsageError(
            "ivfpq index eval: error: --ground-truth FILE is required unless QUERIES is an "
            "ann-benchmarks .hdf5 file (with 'neighbors') or a dataset folder (with groundtruth)"
        )
    gpath, truth = read_input_ids(truth_source, "groundtruth", what="ground-truth ids")
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
        args.nprobe = args.ef_search = None
        if option is not None:
            setattr(args, option, value)
        kwargs = _search_kwargs(index, args)
        index.search(Q[:16], args.k, **kwargs)  # untimed: compilation and caches warm up here
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            _, ids = _search_all(index, Q, args.k, args, kwargs,
                                 desc=f"{option}={value}" if option else "searching")
            times.append(time.perf_counter() - start)
        seconds = float(np.median(times))
        entry = {"recall": float(recall(ids, truth, args.k)), "qps": Q.shape[0] / max(seconds, 1e-12),
                 "latency_ms": 1000.0 * seconds / Q.shape[0], "seconds": seconds}
        if option is not None:
            entry[option] = value
            entry["param"] = f"{option}={value}"
        results.append(entry)
    name = type(index).__name__
    say(args, f"| {option or 'setting'} | recall@{args.k} | queries/s | ms/query |")
    say(args, "|---|---|---|---|")
    for entry in results:
        say(args, f"| {entry.get(option, '-')} | {entry['recall']:.4f} | {entry['qps']:,.0f} | "
                  f"{entry['latency_ms']:.4f} |")
    summary = {"index": str(args.index), "type": name, "queries": str(qpath),
               "ground_truth": str(gpath), "k": args.k, "repeat": args.repeat, "results": results}
    if args.out:
        write_json(args.out, summary)
        say(args, f"wrote {args.out}")
    if args.plot:
        fig = plot_recall_latency({name: results}, k=args.k,
                                  title=f"{name} on {Path(str(qpath)).name}: recall@{args.k} against latency")
        save_figure(fig, args.plot)
        say(args, f"wrote {args.plot}")
    return 0


def index_ground_truth(args) -> int:
    """``ivfpq index ground-truth``: exact nearest neighbours, for ``index eval``."""
    bpath, X = load_vectors(args.base, "base", args, what="base vectors")
    qpath, Q = load_vectors(args.queries, "query", args, what="queries")
    if args.k > X.shape[0]:
        raise CommandError(f"--k {args.k} is larger than the number of base vectors in {bpath} ({X.shape[0]})")
    start = time.perf_counter()
    _, ids = ground_truth(X, Q, args.k)
    seconds = time.perf_counter() - start
    write_vectors(args.out, ids.astype(np.int32), dataset="neighbors")
    say(args, f"exact {args.k} nearest neighbours of {Q.shape[0]:,} queries among {X.shape[0]:,} "
              f"vectors in {seconds:.3f} s; wrote {args.out}")
    return 0
