"""Product quantization: tile codebooks vs k-means codebooks vs faiss IndexPQ.

Weaviate's table (fit time, encode time, recall) reproduced on real data. For each
dataset and method: time to fit the codebooks, time to encode the base, time of a
brute-force ADC scan of all codes for the queries on ONE thread (reported per 1,000
queries), and recall@10 of that ADC search against the exact L2 neighbours.

Methods (8 bits per code everywhere):
  ivfpq k-means PQ at one dimension per segment (M = d) and at 8-dimension segments
  (the largest divisor of d that is <= 8); the tile encoder (M = d) with each
  distribution; faiss IndexPQ at the same two code sizes.

Full-size commands (each dataset is its own run; about 10 minutes or more each on
the shared 2-core machine, faiss's training at one dimension per segment dominates):

  python benchmarks/pq_tile_vs_kmeans.py --datasets sift10k --plot docs/images/pq_centroids.png
  python benchmarks/pq_tile_vs_kmeans.py --datasets glove
  python benchmarks/pq_tile_vs_kmeans.py --datasets fashion-mnist --faiss-1d-max-dim 1000
  python benchmarks/pq_tile_vs_kmeans.py --datasets synthetic --n-synthetic 1000000

Quick check (a minute or two): python benchmarks/pq_tile_vs_kmeans.py --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402
from _harness import gaussian_mixture, machine_line, print_table  # noqa: E402

import ivfpq  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("sift10k", "glove", "fashion-mnist", "synthetic")
TILE_DISTRIBUTIONS = ("normal", "lognormal", "empirical", "auto")
COLUMNS = ["method", "M", "dsub", "fit s", "encode s", "scan s / 1k q (1 thread)", "recall@10"]


# ----------------------------------------------------------------------------- data


def load(name, n_queries, n_synthetic, quick):
    """(base, queries, ground-truth top-10 ids, description)."""
    rng = np.random.default_rng(0)
    if name == "sift10k":
        base, queries, gt = _harness.load_shared("sift10k")
        return base, queries, gt[:, :10].astype(np.int64), f"SIFT10K {base.shape[0]:,} x {base.shape[1]}, its 100 queries and ground truth"
    if name == "synthetic":
        n = n_synthetic
        data = gaussian_mixture(n + n_queries, 128, n_components=1000, seed=0)
        base, queries = data[:n], data[n:]
        desc = f"synthetic Gaussian mixture {n:,} x 128 (1,000 components), {n_queries} held-out queries"
    else:
        data = _harness.load_shared(name)
        if name == "glove":
            data = np.ascontiguousarray(data, dtype=np.float32)
        order = rng.permutation(len(data))
        queries, base = data[order[:n_queries]], data[np.sort(order[n_queries:])]
        if quick:
            base = base[: len(base) // 4]
        label = {"glove": "GloVe 6B 50d", "fashion-mnist": "Fashion-MNIST train"}[name]
        desc = f"{label} {base.shape[0]:,} x {base.shape[1]}, {n_queries} held-out rows as queries"
    return base, queries, ivfpq.ground_truth(base, queries, 10)[1], desc


def recall_at_10(ids, gt):
    return float(np.mean([len(np.intersect1d(ids[i, :10], gt[i, :10])) / 10 for i in range(len(gt))]))


# ----------------------------------------------------------------------------- timing


def timed(fn, repeat):
    """Run once; when that took under 2 s, run up to ``repeat`` times and take the median."""
    start = time.perf_counter()
    result = fn()
    times = [time.perf_counter() - start]
    while times[0] < 2.0 and len(times) < repeat:
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


class OneThread:
    """Numba, BLAS and faiss on one thread inside the block."""

    def __enter__(self):
        import numba
        from threadpoolctl import threadpool_limits

        self._numba = numba.get_num_threads()
        numba.set_num_threads(1)
        self._blas = threadpool_limits(limits=1)
        self._faiss = None
        try:
            import faiss

            self._faiss = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
        except ImportError:
            pass
        return self

    def __exit__(self, *exc):
        import numba

        numba.set_num_threads(self._numba)
        self._blas.restore_original_limits()
        if self._faiss is not None:
            import faiss

            faiss.omp_set_num_threads(self._faiss)


# ----------------------------------------------------------------------------- methods


def segment_dim(d, target=8):
    return max(s for s in range(1, target + 1) if d % s == 0)


class Method:
    """One row of the table: fit and encode once (timed), then scanned in rounds."""

    def __init__(self, label):
        self.label = label
        self.row = dict(method=label)
        self.scan_times = []
        self.ids = None

    def scan(self, queries):
        with OneThread():
            start = time.perf_counter()
            self.ids = self._search(queries)
            self.scan_times.append(time.perf_counter() - start)


class Ours(Method):
    def __init__(self, label, pq, base, repeat):
        super().__init__(label)
        self.pq = pq
        self.row["fit s"], _ = timed(lambda: pq.fit(base), repeat)
        self.row["encode s"], self.codes = timed(lambda: pq.encode(base), repeat)
        self.row.update(M=pq.codebooks_.shape[0], dsub=pq.dsub_)
        if pq.encoder_ is not None and pq.distribution == "auto":
            kinds, counts = np.unique(pq.encoder_.distributions_, return_counts=True)
            self.row["note"] = "auto chose " + ", ".join(f"{k} x{c}" for k, c in zip(kinds, counts))
        if pq.train_message_:
            self.row.setdefault("note", pq.train_message_)

    def _search(self, queries):
        threads = self.pq.n_threads
        self.pq.set_params(n_threads=1)
        try:
            return self.pq.search(self.codes, queries, 10)[1]
        finally:
            self.pq.set_params(n_threads=threads)


class Faiss(Method):
    def __init__(self, label, d, M, base, repeat):
        import faiss

        super().__init__(label)
        state = {}

        def fit():
            state["index"] = faiss.IndexPQ(d, M, 8)
            state["index"].train(base)

        self.row["fit s"], _ = timed(fit, repeat)
        self.index = state["index"]

        def encode():
            self.index.reset()
            self.index.add(base)

        self.row["encode s"], _ = timed(encode, repeat)
        self.row.update(M=M, dsub=d // M)

    def _search(self, queries):
        return self.index.search(queries, 10)[1]


def warm_up(d):
    """Compile every Numba kernel once, so no timing includes compilation."""
    from ivfpq import ProductQuantizer

    X = np.random.default_rng(0).standard_normal((600, d)).astype(np.float32) + 3.0
    s = segment_dim(d)
    configs = [dict(M=d), dict(M=d // s)] + [dict(M=d, codebook="tile", distribution=t) for t in TILE_DISTRIBUTIONS]
    for cfg in configs:
        pq = ProductQuantizer(**cfg, nbits=8, random_state=0, max_iter=2).fit(X)
        pq.search(pq.encode(X), X[:3], 10)
        pq.set_params(n_threads=1).search(pq.encode(X), X[:1], 10)


def benchmark(name, args):
    from ivfpq import ProductQuantizer

    base, queries, gt, desc = load(name, args.n_queries, args.n_synthetic, args.quick)
    n, d = base.shape
    s = segment_dim(d)
    warm_up(d)
    methods, skipped, fitted = [], [], {}

    def add(method):
        methods.append(method)
        print(f"  fitted {method.label}: {method.row}", flush=True)

    def ours(key, label, **params):
        pq = ProductQuantizer(nbits=8, random_state=0, **params)
        add(Ours(label, pq, base, args.repeat))
        fitted[key] = pq

    ours("kmeans", "ivfpq k-means PQ, 1-d segments", M=d)
    ours("kmeans-sub", f"ivfpq k-means PQ, {s}-d segments", M=d // s)
    for dist in TILE_DISTRIBUTIONS:
        ours(dist, f"ivfpq tile {dist}", M=d, codebook="tile", distribution=dist)
    if not args.no_faiss:
        if d <= args.faiss_1d_max_dim:
            add(Faiss("faiss IndexPQ, 1-d segments", d, d, base, args.repeat))
        else:
            skipped.append(dict(method="faiss IndexPQ, 1-d segments", M=d, dsub=1,
                                note=f"skipped: d={d} > --faiss-1d-max-dim {args.faiss_1d_max_dim}"))
        add(Faiss(f"faiss IndexPQ, {s}-d segments", d, d // s, base, args.repeat))

    # Scans in rounds, every method once per round, so that all rows see the same
    # background load on this shared machine; the median round is reported.
    for round_ in range(args.scan_repeat):
        for method in methods:
            method.scan(queries)
        print(f"  scan round {round_ + 1}/{args.scan_repeat} done", flush=True)
    rows = []
    for method in methods:
        method.row["scan s / 1k q (1 thread)"] = float(np.median(method.scan_times)) * 1000 / len(queries)
        method.row["recall@10"] = recall_at_10(method.ids, gt)
        rows.append(method.row)
    rows += skipped
    return dict(name=name, description=desc, n=n, d=d, n_queries=len(queries), rows=rows), fitted, base


def ratios(result):
    by = {r["method"]: r for r in result["rows"] if "fit s" in r}
    s = segment_dim(result["d"])
    lines = []
    faiss_1d = by.get("faiss IndexPQ, 1-d segments")
    for dist in TILE_DISTRIBUTIONS:
        tile = by[f"ivfpq tile {dist}"]
        if faiss_1d:
            lines.append(
                f"tile {dist}: fit {faiss_1d['fit s'] / tile['fit s']:.0f}x faster than faiss 1-d training; "
                f"recall@10 {tile['recall@10'] - faiss_1d['recall@10']:+.3f} vs faiss 1-d")
    for ours_label, faiss_label in (("ivfpq k-means PQ, 1-d segments", "faiss IndexPQ, 1-d segments"),
                                    (f"ivfpq k-means PQ, {s}-d segments", f"faiss IndexPQ, {s}-d segments")):
        if ours_label in by and faiss_label in by:
            a, b = by[ours_label], by[faiss_label]
            lines.append(
                f"{ours_label} vs {faiss_label}: ADC scan {b['scan s / 1k q (1 thread)'] / a['scan s / 1k q (1 thread)']:.2f}x "
                f"faiss's speed (>1 = ours faster), fit {b['fit s'] / a['fit s']:.1f}x, "
                f"encode {b['encode s'] / a['encode s']:.1f}x, recall@10 {a['recall@10'] - b['recall@10']:+.3f}")
    return lines


# ----------------------------------------------------------------------------- plot


def plot_centroids(path, name, base, fitted):
    """Histogram of the first two dimensions with the k-means and tile centroids."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=90)
    marks = [("kmeans", "k-means (1-d)", "tab:blue"), ("normal", "tile normal", "tab:orange"),
             ("auto", "tile auto", "tab:green")]
    for dim, ax in enumerate(axes):
        values = base[:, dim]
        lo, hi = np.percentile(values, [0.1, 99.9])
        if hi <= lo:  # a (nearly) constant dimension, e.g. a corner pixel
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges, _ = ax.hist(values, bins=120, range=(lo, hi), color="0.8", density=True,
                                   label="data")
        top = counts.max()
        left, right = lo, hi
        for level, (key, label, color) in enumerate(marks):
            pq = fitted.get(key)
            if pq is None:
                continue
            # Centroids where the data is not (a normal model's left tail on
            # non-negative data) are the point of the picture: widen the axis for them.
            centers = pq.codebooks_[dim, :, 0]
            span = hi - lo
            centers = centers[(centers >= lo - span) & (centers <= hi + span)]
            if centers.size == 0:
                continue
            left, right = min(left, centers.min()), max(right, centers.max())
            y = -top * (0.08 + 0.09 * level)
            ax.plot(centers, np.full(centers.shape, y), "|", color=color, ms=7, mew=0.8, label=label)
        pad = 0.02 * (right - left)
        ax.set_xlim(left - pad, right + pad)
        if "auto" in fitted:
            chosen = fitted["auto"].encoder_.distributions_[dim]
            ax.set_title(f"{name}, dimension {dim} (auto chose {chosen})", fontsize=10)
        else:
            ax.set_title(f"{name}, dimension {dim}", fontsize=10)
        ax.set_yticks([])
        ax.set_ylim(-top * 0.36, top * 1.05)
    axes[0].legend(fontsize=8, loc="upper right")
    fig.suptitle("256 centroids per dimension: k-means vs the tile encoder's quantiles", fontsize=11)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="sift10k,glove,fashion-mnist,synthetic",
                        help=f"comma-separated, from {', '.join(DATASETS)}")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a quarter of GloVe/Fashion-MNIST, 50k synthetic, 200 queries, "
                             "no faiss training above 128 dimensions")
    parser.add_argument("--n-synthetic", type=int, default=1_000_000, help="rows of the synthetic set")
    parser.add_argument("--n-queries", type=int, default=1000, help="held-out queries (SIFT10K has its 100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each fit/encode timing under 2 s (median)")
    parser.add_argument("--scan-repeat", type=int, default=3,
                        help="rounds of ADC scans (every method once per round; median reported)")
    parser.add_argument("--faiss-1d-max-dim", type=int, default=200,
                        help="skip faiss IndexPQ at one dimension per segment above this d (its training "
                             "takes about 0.6 s per dimension here)")
    parser.add_argument("--no-faiss", action="store_true", help="ivfpq rows only")
    parser.add_argument("--plot", metavar="PATH", help="PNG of the first dataset's centroids "
                        "(default benchmarks/results/pq_centroids_<dataset>.png)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_synthetic = min(args.n_synthetic, 50_000)
        args.n_queries = min(args.n_queries, 200)
        args.faiss_1d_max_dim = min(args.faiss_1d_max_dim, 128)
    names = [s.strip() for s in args.datasets.split(",") if s.strip()]
    for name in names:
        if name not in DATASETS:
            parser.error(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    RESULTS.mkdir(exist_ok=True)

    print(f"machine: {machine_line()}")
    print(f"command: python benchmarks/pq_tile_vs_kmeans.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    for i, name in enumerate(names):
        result, fitted, base = benchmark(name, args)
        print_table(result["rows"], COLUMNS + ["note"], title=result["description"])
        for line in ratios(result):
            print(f"- {line}")
        stamp = time.strftime("%Y-%m-%d %H:%M")
        result.update(machine=machine_line(), date=stamp, ratios=ratios(result),
                      command=f"python benchmarks/pq_tile_vs_kmeans.py {' '.join(sys.argv[1:])}")
        out = RESULTS / f"pq_tile_vs_kmeans_{name}.json"
        out.write_text(json.dumps(result, indent=1, default=float))
        print(f"results: {out}")
        if i == 0:
            path = args.plot or RESULTS / f"pq_centroids_{name}.png"
            print(f"plot: {plot_centroids(path, name, base, fitted)}")


if __name__ == "__main__":
    main()
