"""Approximate nearest neighbours: recall@10 against queries per second, ivfpq vs faiss,
hnswlib and usearch.

For each dataset and index family, every library builds its index on the same base
vectors (on ``--build-threads`` threads, default 2) and is then searched over a sweep
of its search parameter (``nprobe`` for IVF, ``ef_search`` for HNSW). Each point
reports recall@10 (fraction of the true 10 nearest ids among the 10 returned) and

* queries per second on 1 thread (BLAS, Numba, OpenMP, hnswlib and usearch all limited
  to 1; all queries in one batch call; median of ``--repeat`` runs),
* queries per second on ``--batch-threads`` threads (default 2), the same batch,
* the latency of one query at a time (a service's pattern): p50 and p99 over the
  first ``--latency-queries`` queries, 1 thread.

Every library is called as a user calls it: ivfpq's indexes keep their default
``n_threads=None``, which follows the process's Numba setting (``numba.set_num_threads``),
as hnswlib's and usearch's ``num_threads``/``threads`` arguments and faiss's
``omp_set_num_threads`` are set for the peers.

Families and peers:

* ``ivfflat``: ivfpq ``IVFFlat`` vs faiss ``IndexIVFFlat``
* ``ivfpq``:   ivfpq ``IVFPQ`` vs faiss ``IndexIVFPQ`` (same nlist, M, nbits=8)
* ``ivfpq-refine``: the same with exact re-ranking of the ``k * --refine`` best from raw
  vectors (ivfpq ``keep_raw=True, refine=r`` vs faiss ``IndexRefineFlat``, ``k_factor=r``)
* ``hnsw``:    ivfpq ``HNSW`` vs faiss ``IndexHNSWFlat``, hnswlib and usearch (M=16,
  ``--ef-construction``, default 100; usearch ``connectivity=16, expansion_add`` the same)
* ``hnswpq``:  ivfpq ``HNSW`` compressed to PQ codes (tile and k-means encoders) after
  20% of the data was added; the rest is added compressed (no peer); "-rescore" keeps
  the raw vectors and re-ranks the beam exactly

Datasets: ``sift10k`` (its own 100 queries and ground truth), ``sift-debian`` (743,933
real SIFT descriptors, the first ``--n-queries`` of its 10,000 queries and its exact
ground truth), ``glove`` (200k x 50 GloVe vectors, L2-normalised so that L2 ranks as
cosine; the first 1,000 rows are the queries, the other 199,000 the base), ``minilm``
(61,174 x 384 unit-norm sentence embeddings, inner product; 1,000 rows drawn with seed
0 are the queries, the rest the base), ``synthetic`` (a Gaussian mixture, 128-d,
``--n-synthetic`` base rows, 1,000 queries from the same mixture).

The summary compares ivfpq with each peer at each target recall (``--targets``,
default 0.90, 0.95 and 0.99): build time ratio, the largest recall deficit at equal
parameters, the QPS ratios at equal recall on 1 thread and batched, and the
single-query p50/p99 latencies (log-QPS and log-latency interpolated linearly in
recall between sweep points; "-" where a curve never reaches the target).

Commands::

    python benchmarks/ann.py --datasets sift-debian,glove,minilm --families hnsw,ivfflat
    python benchmarks/ann.py --quick                       # small, about a minute
    python benchmarks/ann.py --datasets glove --families ivfflat,ivfpq --plot-dir /tmp/plots
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import gaussian_mixture, load_shared, machine_line, print_table  # noqa: E402

K = 10
TARGETS = (0.90, 0.95, 0.99)
NPROBES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
EF_SEARCHES = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384]


# ----------------------------------------------------------------------------- threads


class Threads:
    """Set every thread pool in the process (BLAS, Numba, OpenMP, hnswlib) to ``n``."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        import numba
        from threadpoolctl import threadpool_limits

        self._numba = numba.get_num_threads()
        numba.set_num_threads(min(self.n, numba.config.NUMBA_NUM_THREADS))
        self._blas = threadpool_limits(limits=self.n)
        self._blas.__enter__()
        try:
            import faiss

            faiss.omp_set_num_threads(self.n)
        except ImportError:
            pass
        return self

    def __exit__(self, *exc):
        import numba

        self._blas.__exit__(*exc)
        numba.set_num_threads(self._numba)


# ----------------------------------------------------------------------------- datasets


def load_dataset(name, n_synthetic, quick, n_queries=1000):
    """(base, queries, ground-truth ids or None, metric, description)."""
    if name == "sift10k":
        base, queries, truth = load_shared("sift10k")
        return base, queries, truth[:, :K].astype(np.int64), "l2", "SIFT10K 10,000 x 128, 100 queries"
    if name == "sift-debian":
        from ivfpq.datasets import load_dataset as load_real

        data = load_real("sift-debian", mmap=False)
        base = np.ascontiguousarray(data["base"], dtype=np.float32)
        queries = np.ascontiguousarray(data["query"][:n_queries], dtype=np.float32)
        truth = np.asarray(data["groundtruth"][:n_queries, :K], dtype=np.int64)
        if quick:
            base, truth = base[:50_000], None
        return (base, queries, truth, "l2",
                f"sift-debian {len(base):,} x 128 (real SIFT), {len(queries):,} queries")
    if name == "minilm":
        X = load_shared("minilm-debian-descriptions")
        X /= np.linalg.norm(X, axis=1, keepdims=True)  # unit norm in float32 (stored as float16)
        held_out = np.zeros(len(X), dtype=bool)
        held_out[np.random.default_rng(0).choice(len(X), 1000, replace=False)] = True
        base, queries = X[~held_out], X[held_out]
        if quick:
            base = base[:20_000]
        return (np.ascontiguousarray(base), np.ascontiguousarray(queries), None, "ip",
                f"minilm {len(base):,} x 384 (sentence embeddings, inner product), 1,000 queries")
    if name == "glove":
        X = load_shared("glove").astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        if quick:
            X = X[:50_000]
        return X[1000:], X[:1000], None, "l2", f"GloVe {len(X) - 1000:,} x 50 (normalised), 1,000 queries"
    if name == "synthetic":
        n = 50_000 if quick else n_synthetic
        X = gaussian_mixture(n + 1000, 128, n_components=1000, seed=0)
        return X[1000:], X[:1000], None, "l2", f"Gaussian mixture {n:,} x 128, 1,000 queries"
    raise ValueError(f"unknown dataset {name!r}")


def default_nlist(n):
    """About 4 sqrt(n) lists, a power of two (2,048 for 200k vectors, 4,096 for 1M), with
    at least 39 training vectors per list (faiss's minimum): 256 for SIFT10K."""
    by_sqrt = 2 ** round(math.log2(4 * math.sqrt(n)))
    by_points = 2 ** int(math.log2(max(1, n // 39)))
    return int(max(1, min(by_sqrt, by_points)))


def default_pq_m(d):
    for m in (16, 10, 8, 5, 4, 2, 1):
        if d % m == 0 and d // m <= 8:
            return m
    return 1


# ----------------------------------------------------------------------------- contenders
#
# Each builder returns search(Q, param, threads) -> ids, or None when unavailable. The
# search runs inside ``Threads(threads)``, which sets the process-wide pools (Numba,
# BLAS, faiss's OpenMP); hnswlib and usearch take their thread count per call.


def _faiss_metric(metric):
    import faiss

    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def build_ours_ivfflat(base, nlist, build_threads, metric="l2"):
    from ivfpq import IVFFlat

    index = IVFFlat(nlist, metric=metric, random_state=0)
    index.train(base)
    index.add(base)

    def search(Q, nprobe, threads):
        return index.search(Q, K, nprobe=nprobe)[1]

    return search


def build_faiss_ivfflat(base, nlist, build_threads, metric="l2"):
    import faiss

    d = base.shape[1]
    quantizer = faiss.IndexFlatIP(d) if metric == "ip" else faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, _faiss_metric(metric))
    index.cp.seed = 0
    index.train(base)
    index.add(base)

    def search(Q, nprobe, threads):
        index.nprobe = nprobe
        return index.search(Q, K)[1]

    search.keep = (quantizer, index)
    return search


def build_ours_ivfpq(base, nlist, m, build_threads, refine=None, metric="l2"):
    from ivfpq import IVFPQ

    index = IVFPQ(nlist, m, nbits=8, metric=metric, keep_raw=refine is not None, random_state=0)
    index.train(base)
    index.add(base)

    def search(Q, nprobe, threads):
        return index.search(Q, K, nprobe=nprobe, refine=refine)[1]

    return search


def build_faiss_ivfpq(base, nlist, m, build_threads, refine=None, metric="l2"):
    import faiss

    d = base.shape[1]
    quantizer = faiss.IndexFlatIP(d) if metric == "ip" else faiss.IndexFlatL2(d)
    ivf = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, _faiss_metric(metric))
    ivf.cp.seed = 0
    index = ivf
    if refine is not None:  # exact re-ranking of the k * refine best, from stored raw vectors
        index = faiss.IndexRefineFlat(ivf)
        index.k_factor = refine
    index.train(base)
    index.add(base)

    def search(Q, nprobe, threads):
        ivf.nprobe = nprobe
        return index.search(Q, K)[1]

    search.keep = (quantizer, ivf, index)  # faiss objects must outlive the closure's use
    return search


def build_ours_hnsw(base, build_threads, ef_construction, compress=None, pq_m=None, keep_raw=False,
                    metric="l2"):
    from ivfpq import HNSW

    index = HNSW(M=16, ef_construction=ef_construction, metric=metric, random_state=0)
    if compress is None:
        index.add(base)
    else:
        first = len(base) // 5
        index.add(base[:first])
        index.compress(codebook=compress, M=pq_m, keep_raw=keep_raw)
        index.add(base[first:])

    def search(Q, ef, threads):
        return index.search(Q, K, ef_search=ef)[1]

    return search


def build_faiss_hnsw(base, build_threads, ef_construction, metric="l2"):
    import faiss

    index = faiss.IndexHNSWFlat(base.shape[1], 16, _faiss_metric(metric))
    index.hnsw.efConstruction = ef_construction
    index.add(base)

    def search(Q, ef, threads):
        index.hnsw.efSearch = max(ef, K)
        return index.search(Q, K)[1]

    return search


def build_hnswlib(base, build_threads, ef_construction, metric="l2"):
    import hnswlib

    index = hnswlib.Index(space="ip" if metric == "ip" else "l2", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=16, ef_construction=ef_construction, random_seed=0)
    index.add_items(base, np.arange(len(base)), num_threads=build_threads)

    def search(Q, ef, threads):
        index.set_ef(max(ef, K))
        return index.knn_query(Q, k=K, num_threads=threads)[0].astype(np.int64)

    return search


def build_usearch(base, build_threads, ef_construction, metric="l2"):
    try:
        from usearch.index import Index
    except ImportError:
        return None
    index = Index(ndim=base.shape[1], metric="ip" if metric == "ip" else "l2sq", dtype="f32",
                  connectivity=16, expansion_add=ef_construction)
    index.add(np.arange(len(base)), base, threads=build_threads)

    def search(Q, ef, threads):
        index.expansion_search = max(ef, K)
        return np.asarray(index.search(Q, K, threads=threads).keys, dtype=np.int64).reshape(len(Q), K)

    return search


def contenders(family, base, metric, args):
    """[(library, builder)] for one family; each builder takes no arguments."""
    nlist = args.nlist or default_nlist(len(base))
    pq_m = args.pq_m or default_pq_m(base.shape[1])
    t = args.build_threads
    efc = args.ef_construction
    if family == "ivfflat":
        return nlist, [("ivfpq", lambda: build_ours_ivfflat(base, nlist, t, metric)),
                       ("faiss", lambda: build_faiss_ivfflat(base, nlist, t, metric))]
    if family == "ivfpq":
        return (nlist, pq_m), [("ivfpq", lambda: build_ours_ivfpq(base, nlist, pq_m, t, metric=metric)),
                               ("faiss", lambda: build_faiss_ivfpq(base, nlist, pq_m, t, metric=metric))]
    if family == "ivfpq-refine":
        r = args.refine
        return (nlist, pq_m, f"refine={r}"), [
            ("ivfpq", lambda: build_ours_ivfpq(base, nlist, pq_m, t, r, metric)),
            ("faiss", lambda: build_faiss_ivfpq(base, nlist, pq_m, t, r, metric))]
    if family == "hnsw":
        return f"M=16 efC={efc}", [("ivfpq", lambda: build_ours_hnsw(base, t, efc, metric=metric)),
                                   ("faiss", lambda: build_faiss_hnsw(base, t, efc, metric)),
                                   ("hnswlib", lambda: build_hnswlib(base, t, efc, metric)),
                                   ("usearch", lambda: build_usearch(base, t, efc, metric))]
    if family == "hnswpq":
        return f"tile M=d, kmeans M={pq_m}", [
            ("ivfpq-tile", lambda: build_ours_hnsw(base, t, efc, "tile", None, metric=metric)),
            ("ivfpq-kmeans", lambda: build_ours_hnsw(base, t, efc, "kmeans", pq_m, metric=metric)),
            ("ivfpq-kmeans-rescore", lambda: build_ours_hnsw(base, t, efc, "kmeans", pq_m, True, metric))]
    raise ValueError(f"unknown family {family!r}")


# ----------------------------------------------------------------------------- measuring


def recall_at_k(found, truth):
    from ivfpq import recall

    return recall(found, truth, K)


def _latencies(search, Q, param, n_queries):
    """Seconds of each of ``n_queries`` single-query calls, after one warm-up call."""
    search(Q[:1], param, 1)
    out = np.empty(n_queries)
    for q in range(n_queries):
        start = time.perf_counter()
        search(Q[q:q + 1], param, 1)
        out[q] = time.perf_counter() - start
    return out


def _batch_seconds(search, Q, param, threads, repeat, min_seconds):
    # At least ``repeat`` runs and ``min_seconds`` in all: short runs on a shared machine
    # are at the mercy of the scheduler; the median drops the outliers.
    times = []
    while len(times) < repeat or sum(times) < min_seconds:
        start = time.perf_counter()
        ids = search(Q, param, threads)
        times.append(time.perf_counter() - start)
    return statistics.median(times), ids


def sweep(search, Q, truth, params, args, stop_at=0.999, min_seconds=0.2):
    points = []
    n_latency = min(args.latency_queries, len(Q))
    with Threads(1):
        search(Q[: min(10, len(Q))], params[0], 1)  # warm-up (compilation, caches)
    for p in params:
        with Threads(1):
            seconds, ids = _batch_seconds(search, Q, p, 1, args.repeat, min_seconds)
            latencies = _latencies(search, Q, p, n_latency) if n_latency else np.full(1, np.nan)
        with Threads(args.batch_threads):
            batch_seconds, _ = _batch_seconds(search, Q, p, args.batch_threads, args.repeat, min_seconds)
        r = recall_at_k(ids, truth)
        points.append({"param": p, "recall": r, "qps": len(Q) / seconds, "ms": 1e3 * seconds / len(Q),
                       "qps_batch": len(Q) / batch_seconds,
                       "p50_us": 1e6 * float(np.median(latencies)),
                       "p99_us": 1e6 * float(np.percentile(latencies, 99))})
        if r >= stop_at:
            break
    return points


def at_recall(points, target, key="qps"):
    """``key`` (QPS or a latency) at ``target`` recall along the sweep (in sweep order), or
    None if never reached.

    Between the two sweep points that bracket the target, the log of the value is
    interpolated linearly in recall. If the first point already reaches it, its value
    (a bound: the curve was not measured below it).
    """
    if not points:
        return None
    if points[0]["recall"] >= target:
        return points[0][key]
    for a, b in zip(points, points[1:]):
        if a["recall"] < target <= b["recall"]:
            w = (target - a["recall"]) / (b["recall"] - a["recall"])
            return math.exp((1 - w) * math.log(a[key]) + w * math.log(b[key]))
    return None


def _ratio(a, b):
    return (a / b) if (a and b) else None


def summarise(family, results, targets):
    ours_names = [lib for lib in results if lib.startswith("ivfpq")]
    peers = [lib for lib in results if not lib.startswith("ivfpq")]
    rows = []
    for ours in ours_names:
        o = results[ours]
        for peer in peers:
            p = results[peer]
            by_param = {pt["param"]: pt["recall"] for pt in p["points"]}
            deficits = [by_param[pt["param"]] - pt["recall"] for pt in o["points"] if pt["param"] in by_param]
            for target in targets:
                row = {"family": family, "ours": ours, "peer": peer, "target": target,
                       "build ratio": o["build_s"] / p["build_s"],
                       "max recall deficit": max(deficits) if deficits else None}
                for key, label in (("qps", "QPS 1t"), ("qps_batch", "QPS batch")):
                    q_o, q_p = at_recall(o["points"], target, key), at_recall(p["points"], target, key)
                    row[f"{label} ours"], row[f"{label} peer"] = q_o, q_p
                    row[f"{label} ratio"] = _ratio(q_o, q_p)
                for key in ("p50_us", "p99_us"):
                    row[f"{key[:3]} ours/peer"] = _ratio(at_recall(o["points"], target, key),
                                                         at_recall(p["points"], target, key))
                row["p50 us ours"] = at_recall(o["points"], target, "p50_us")
                row["p50 us peer"] = at_recall(p["points"], target, "p50_us")
                rows.append(row)
    return rows


def plot(dataset, description, all_results, plot_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [f for f in all_results if all_results[f]]
    ncols = min(3, len(families))
    nrows = -(-len(families) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.ravel()[len(families):]:
        ax.axis("off")
    for ax, family in zip(axes.ravel(), families):
        for lib, res in all_results[family].items():
            pts = res["points"]
            ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], marker="o", ms=3,
                    label=f"{lib} (build {res['build_s']:.1f} s)")
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (1 thread, batch)")
        ax.set_title(f"{family} on {dataset}")
        for target in TARGETS:
            ax.axvline(target, color="grey", lw=0.6, ls="--")
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(description, fontsize=10)
    fig.tight_layout()
    plot_dir.mkdir(parents=True, exist_ok=True)
    path = plot_dir / f"ann_{dataset}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="sift10k,glove,synthetic")
    parser.add_argument("--families", default="ivfflat,ivfpq,ivfpq-refine,hnsw,hnswpq")
    parser.add_argument("--refine", type=int, default=4, help="k factor of the ivfpq-refine family")
    parser.add_argument("--n-synthetic", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true",
                        help="GloVe cut to 50k rows, synthetic to 50k, short sweeps")
    parser.add_argument("--nlist", type=int, default=None, help="default: about 4 sqrt(n), a power of two")
    parser.add_argument("--pq-m", type=int, default=None, help="PQ sub-quantizers (default: d/8 or so)")
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--batch-threads", type=int, default=2, help="threads of the batched search")
    parser.add_argument("--ef-construction", type=int, default=100, help="HNSW build beam (every library)")
    parser.add_argument("--n-queries", type=int, default=1000, help="sift-debian: queries used (of 10,000)")
    parser.add_argument("--latency-queries", type=int, default=200,
                        help="single-query calls timed per sweep point (0: none)")
    parser.add_argument("--targets", default=",".join(str(t) for t in TARGETS),
                        help="recalls at which the libraries are compared")
    parser.add_argument("--repeat", type=int, default=5, help="minimum runs per point (median)")
    parser.add_argument("--libraries", default=None, help="only these libraries, e.g. ivfpq,faiss")
    parser.add_argument("--plot-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    print(f"# ann  {datetime.date.today()}  {machine_line()}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:] if argv is None else argv)}")
    only = set(args.libraries.split(",")) if args.libraries else None
    point_rows, summary_rows, plots = [], [], []

    for dataset in args.datasets.split(","):
        base, queries, truth, metric, description = load_dataset(dataset, args.n_synthetic, args.quick,
                                                                 args.n_queries)
        if truth is None:
            from ivfpq import ground_truth

            start = time.perf_counter()
            truth = ground_truth(base, queries, K, metric=metric)[1]
            print(f"# {dataset}: ground truth in {time.perf_counter() - start:.1f} s", flush=True)
        print(f"# {dataset}: {description}", flush=True)
        dataset_results = {}
        for family in args.families.split(","):
            setting, entries = contenders(family, base, metric, args)
            results = {}
            for lib, builder in entries:
                if only and lib.split("-")[0] not in only:
                    continue
                with Threads(args.build_threads):
                    start = time.perf_counter()
                    cpu_start = time.process_time()
                    search = builder()
                    build_s = time.perf_counter() - start
                    build_cpu = time.process_time() - cpu_start
                if search is None:
                    print(f"# {dataset}/{family}/{lib}: not available in this ivfpq", flush=True)
                    continue
                if family.startswith("ivf"):
                    params = [p for p in NPROBES if p <= (args.nlist or default_nlist(len(base)))]
                else:
                    params = EF_SEARCHES
                if args.quick:
                    params = params[::2]
                points = sweep(search, queries, truth, params, args)
                results[lib] = {"build_s": build_s, "build_cpu": build_cpu, "points": points}
                for pt in points:
                    point_rows.append({"dataset": dataset, "family": family, "setting": str(setting),
                                       "library": lib, "build s": build_s, "param": pt["param"],
                                       "recall@10": pt["recall"], "QPS 1t": pt["qps"],
                                       "QPS batch": pt["qps_batch"], "p50 us": pt["p50_us"],
                                       "p99 us": pt["p99_us"]})
                print(f"# {dataset}/{family}/{lib}: build {build_s:.2f} s (cpu {build_cpu:.2f} s), "
                      + ", ".join(f"{pt['param']}: {pt['recall']:.3f} @ {pt['qps']:.0f}/s "
                                  f"({pt['qps_batch']:.0f}/s batch, p50 {pt['p50_us']:.0f} us)"
                                  for pt in points), flush=True)
                del search
            dataset_results[family] = results
            for row in summarise(family, results, [float(t) for t in args.targets.split(",")]):
                summary_rows.append({"dataset": dataset, **row})
        if not args.no_plot:
            plots.append(plot(dataset, description, dataset_results, args.plot_dir))

    print_table(point_rows, ["dataset", "family", "setting", "library", "build s", "param",
                             "recall@10", "QPS 1t", "QPS batch", "p50 us", "p99 us"],
                title=f"Sweeps (QPS on 1 thread and batched on {args.batch_threads}; single-query latency)")
    print_table(summary_rows, ["dataset", "family", "ours", "peer", "target", "build ratio",
                               "max recall deficit", "QPS 1t ours", "QPS 1t peer", "QPS 1t ratio",
                               "QPS batch ratio", "p50 us ours", "p50 us peer", "p50 ours/peer",
                               "p99 ours/peer"],
                title=f"ivfpq against each peer at equal recall (build on {args.build_threads} threads)")
    for path in plots:
        print(f"plot: {path}")


if __name__ == "__main__":
    main()
