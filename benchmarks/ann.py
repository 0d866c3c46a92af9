"""Approximate nearest neighbours: recall@10 against queries per second, ivfpq vs faiss and hnswlib.

For each dataset and index family, every library builds its index on the same base
vectors (on ``--build-threads`` threads, default 2) and is then searched with one
thread (BLAS, Numba, OpenMP and hnswlib all limited to 1) over a sweep of its
search parameter (``nprobe`` for IVF, ``ef_search`` for HNSW). Each point reports
recall@10 (fraction of the true 10 nearest ids among the 10 returned) and queries per
second (all queries in one batch call; median of ``--repeat`` runs).

Families and peers:

* ``ivfflat``: ivfpq ``IVFFlat`` vs faiss ``IndexIVFFlat``
* ``ivfpq``:   ivfpq ``IVFPQ`` vs faiss ``IndexIVFPQ`` (same nlist, M, nbits=8)
* ``ivfpq-refine``: the same with exact re-ranking of the ``k * --refine`` best from raw
  vectors (ivfpq ``keep_raw=True, refine=r`` vs faiss ``IndexRefineFlat``, ``k_factor=r``)
* ``hnsw``:    ivfpq ``HNSW`` vs faiss ``IndexHNSWFlat`` and hnswlib (M=16, ef_construction=200)
* ``hnswpq``:  ivfpq ``HNSW`` compressed to PQ codes (tile and k-means encoders) after
  20% of the data was added; the rest is added compressed (no peer); "-rescore" keeps
  the raw vectors and re-ranks the beam exactly

Datasets: ``sift10k`` (its own 100 queries and ground truth), ``glove`` (200k x 50
GloVe vectors, L2-normalised so that L2 ranks as cosine; the first 1,000 rows are
the queries, the other 199,000 the base), ``synthetic`` (a Gaussian mixture, 128-d,
``--n-synthetic`` base rows, 1,000 queries from the same mixture).

The summary compares ivfpq with each peer: build time ratio, the largest recall
deficit at equal parameters, and the QPS ratio at equal recall (0.9 for IVF, 0.95 for
HNSW; log-QPS interpolated linearly in recall between sweep points).

Full-size commands::

    python benchmarks/ann.py --datasets sift10k,glove,synthetic --n-synthetic 1000000
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
TARGET_RECALL = {"ivfflat": 0.9, "ivfpq": 0.9, "ivfpq-refine": 0.9, "hnsw": 0.95, "hnswpq": 0.95}
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


def load_dataset(name, n_synthetic, quick):
    """(base, queries, ground-truth ids or None, description)."""
    if name == "sift10k":
        base, queries, truth = load_shared("sift10k")
        return base, queries, truth[:, :K].astype(np.int64), "SIFT10K 10,000 x 128, 100 queries"
    if name == "glove":
        X = load_shared("glove").astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        if quick:
            X = X[:50_000]
        return X[1000:], X[:1000], None, f"GloVe {len(X) - 1000:,} x 50 (normalised), 1,000 queries"
    if name == "synthetic":
        n = 50_000 if quick else n_synthetic
        X = gaussian_mixture(n + 1000, 128, n_components=1000, seed=0)
        return X[1000:], X[:1000], None, f"Gaussian mixture {n:,} x 128, 1,000 queries"
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
# Each builder returns (search(Q, param) -> ids, description) or None when unavailable.


def build_ours_ivfflat(base, nlist, build_threads):
    from ivfpq import IVFFlat

    index = IVFFlat(nlist, random_state=0, n_threads=build_threads)
    index.train(base)
    index.add(base)

    def search(Q, nprobe):
        index.n_threads = 1
        return index.search(Q, K, nprobe=nprobe)[1]

    return search


def build_faiss_ivfflat(base, nlist, build_threads):
    import faiss

    quantizer = faiss.IndexFlatL2(base.shape[1])
    index = faiss.IndexIVFFlat(quantizer, base.shape[1], nlist)
    index.cp.seed = 0
    index.train(base)
    index.add(base)

    def search(Q, nprobe):
        index.nprobe = nprobe
        return index.search(Q, K)[1]

    return search


def build_ours_ivfpq(base, nlist, m, build_threads, refine=None):
    try:
        from ivfpq import IVFPQ
    except ImportError:
        return None
    index = IVFPQ(nlist, m, nbits=8, keep_raw=refine is not None, random_state=0,
                  n_threads=build_threads)
    index.train(base)
    index.add(base)

    def search(Q, nprobe):
        index.n_threads = 1
        return index.search(Q, K, nprobe=nprobe, refine=refine)[1]

    return search


def build_faiss_ivfpq(base, nlist, m, build_threads, refine=None):
    import faiss

    quantizer = faiss.IndexFlatL2(base.shape[1])
    ivf = faiss.IndexIVFPQ(quantizer, base.shape[1], nlist, m, 8)
    ivf.cp.seed = 0
    index = ivf
    if refine is not None:  # exact re-ranking of the k * refine best, from stored raw vectors
        index = faiss.IndexRefineFlat(ivf)
        index.k_factor = refine
    index.train(base)
    index.add(base)

    def search(Q, nprobe):
        ivf.nprobe = nprobe
        return index.search(Q, K)[1]

    search.keep = (quantizer, ivf, index)  # faiss objects must outlive the closure's use
    return search


def build_ours_hnsw(base, build_threads, compress=None, pq_m=None, keep_raw=False):
    try:
        from ivfpq import HNSW
    except ImportError:
        return None
    index = HNSW(M=16, ef_construction=200, random_state=0, n_threads=build_threads)
    if compress is None:
        index.add(base)
    else:
        first = len(base) // 5
        index.add(base[:first])
        index.compress(codebook=compress, M=pq_m, keep_raw=keep_raw)
        index.add(base[first:])

    def search(Q, ef):
        index.n_threads = 1
        return index.search(Q, K, ef_search=ef)[1]

    return search


def build_faiss_hnsw(base, build_threads):
    import faiss

    index = faiss.IndexHNSWFlat(base.shape[1], 16)
    index.hnsw.efConstruction = 200
    index.add(base)

    def search(Q, ef):
        index.hnsw.efSearch = ef
        return index.search(Q, K)[1]

    return search


def build_hnswlib(base, build_threads):
    import hnswlib

    index = hnswlib.Index(space="l2", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=0)
    index.set_num_threads(build_threads)
    index.add_items(base, np.arange(len(base)))

    def search(Q, ef):
        index.set_num_threads(1)
        index.set_ef(max(ef, K))
        return index.knn_query(Q, k=K, num_threads=1)[0].astype(np.int64)

    return search


def contenders(family, base, args):
    """[(library, builder)] for one family; each builder takes no arguments."""
    nlist = args.nlist or default_nlist(len(base))
    pq_m = args.pq_m or default_pq_m(base.shape[1])
    t = args.build_threads
    if family == "ivfflat":
        return nlist, [("ivfpq", lambda: build_ours_ivfflat(base, nlist, t)),
                       ("faiss", lambda: build_faiss_ivfflat(base, nlist, t))]
    if family == "ivfpq":
        return (nlist, pq_m), [("ivfpq", lambda: build_ours_ivfpq(base, nlist, pq_m, t)),
                               ("faiss", lambda: build_faiss_ivfpq(base, nlist, pq_m, t))]
    if family == "ivfpq-refine":
        r = args.refine
        return (nlist, pq_m, f"refine={r}"), [
            ("ivfpq", lambda: build_ours_ivfpq(base, nlist, pq_m, t, r)),
            ("faiss", lambda: build_faiss_ivfpq(base, nlist, pq_m, t, r))]
    if family == "hnsw":
        return "M=16 efC=200", [("ivfpq", lambda: build_ours_hnsw(base, t)),
                                ("faiss", lambda: build_faiss_hnsw(base, t)),
                                ("hnswlib", lambda: build_hnswlib(base, t))]
    if family == "hnswpq":
        return f"tile M=d, kmeans M={pq_m}", [("ivfpq-tile", lambda: build_ours_hnsw(base, t, "tile", None)),
                      ("ivfpq-kmeans", lambda: build_ours_hnsw(base, t, "kmeans", pq_m)),
                      ("ivfpq-kmeans-rescore", lambda: build_ours_hnsw(base, t, "kmeans", pq_m, True))]
    raise ValueError(f"unknown family {family!r}")


# ----------------------------------------------------------------------------- measuring


def recall_at_k(found, truth):
    from ivfpq import recall

    return recall(found, truth, K)


def sweep(search, Q, truth, params, repeat, stop_at=0.999, min_seconds=0.2):
    points = []
    with Threads(1):
        search(Q[: min(10, len(Q))], params[0])  # warm-up (compilation, caches)
        for p in params:
            # At least ``repeat`` runs and 0.2 s in all: short runs on a shared machine
            # are at the mercy of the scheduler; the median drops the outliers.
            times = []
            while len(times) < repeat or sum(times) < min_seconds:
                start = time.perf_counter()
                ids = search(Q, p)
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            r = recall_at_k(ids, truth)
            points.append({"param": p, "recall": r, "qps": len(Q) / seconds,
                           "ms": 1e3 * seconds / len(Q)})
            if r >= stop_at:
                break
    return points


def qps_at_recall(points, target):
    """QPS at ``target`` recall along the sweep (in sweep order), or None if never reached.

    Between the two sweep points that bracket the target, log-QPS is interpolated
    linearly in recall. If the first point already reaches it, its QPS (a lower bound).
    """
    if not points:
        return None
    if points[0]["recall"] >= target:
        return points[0]["qps"]
    for a, b in zip(points, points[1:]):
        if a["recall"] < target <= b["recall"]:
            w = (target - a["recall"]) / (b["recall"] - a["recall"])
            return math.exp((1 - w) * math.log(a["qps"]) + w * math.log(b["qps"]))
    return None


def summarise(family, results, target):
    ours_names = [lib for lib in results if lib.startswith("ivfpq")]
    peers = [lib for lib in results if not lib.startswith("ivfpq")]
    rows = []
    for ours in ours_names:
        o = results[ours]
        for peer in peers:
            p = results[peer]
            by_param = {pt["param"]: pt["recall"] for pt in p["points"]}
            deficits = [by_param[pt["param"]] - pt["recall"] for pt in o["points"] if pt["param"] in by_param]
            q_o = qps_at_recall(o["points"], target)
            q_p = qps_at_recall(p["points"], target)
            rows.append({
                "family": family, "ours": ours, "peer": peer,
                "build ratio": o["build_s"] / p["build_s"],
                "build cpu ratio": o["build_cpu"] / p["build_cpu"],
                "max recall deficit": max(deficits) if deficits else None,
                f"QPS@target ours": q_o, "QPS@target peer": q_p,
                "QPS ratio": (q_o / q_p) if (q_o and q_p) else None,
                "target": target,
            })
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
            ax.plot([p["recall"] for p in pts], [p["ms"] for p in pts], marker="o", ms=3,
                    label=f"{lib} (build {res['build_s']:.1f} s)")
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("latency per query, ms (1 thread)")
        ax.set_title(f"{family} on {dataset}")
        ax.axvline(TARGET_RECALL[family], color="grey", lw=0.6, ls="--")
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
        base, queries, truth, description = load_dataset(dataset, args.n_synthetic, args.quick)
        if truth is None:
            from ivfpq import ground_truth

            start = time.perf_counter()
            truth = ground_truth(base, queries, K)[1]
            print(f"# {dataset}: ground truth in {time.perf_counter() - start:.1f} s", flush=True)
        print(f"# {dataset}: {description}", flush=True)
        dataset_results = {}
        for family in args.families.split(","):
            setting, entries = contenders(family, base, args)
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
                points = sweep(search, queries, truth, params, args.repeat)
                results[lib] = {"build_s": build_s, "build_cpu": build_cpu, "points": points}
                for pt in points:
                    point_rows.append({"dataset": dataset, "family": family, "setting": str(setting),
                                       "library": lib, "build s": build_s, "param": pt["param"],
                                       "recall@10": pt["recall"], "QPS": pt["qps"], "ms/query": pt["ms"]})
                print(f"# {dataset}/{family}/{lib}: build {build_s:.2f} s (cpu {build_cpu:.2f} s), "
                      + ", ".join(f"{pt['param']}: {pt['recall']:.3f} @ {pt['qps']:.0f}/s" for pt in points),
                      flush=True)
                del search
            dataset_results[family] = results
            for row in summarise(family, results, TARGET_RECALL[family]):
                summary_rows.append({"dataset": dataset, **row})
        if not args.no_plot:
            plots.append(plot(dataset, description, dataset_results, args.plot_dir))

    print_table(point_rows, ["dataset", "family", "setting", "library", "build s", "param",
                             "recall@10", "QPS", "ms/query"], title="Sweeps (search on 1 thread)")
    print_table(summary_rows, ["dataset", "family", "ours", "peer", "build ratio", "build cpu ratio",
                               "max recall deficit",
                               "QPS@target ours", "QPS@target peer", "QPS ratio", "target"],
                title=f"ivfpq against each peer (build on {args.build_threads} threads)")
    for path in plots:
        print(f"plot: {path}")


if __name__ == "__main__":
    main()
