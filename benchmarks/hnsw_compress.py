"""HNSW compressed after indexing (the Weaviate experiment) on real SIFT descriptors.

Weaviate's "HNSW+PQ" builds its graph on raw vectors, then, at a chosen point,
trains a product quantizer on the vectors indexed so far, replaces every stored vector
by its code, and links all later vectors by distances on codes. Its blog measured
this with its Tile encoder (one segment per dimension, bins from a fitted
distribution) against k-means codebooks. This script repeats the experiment on
``../shared/data/sift-debian`` (743,933 x 128 real SIFT descriptors, its queries and
exact top-100 ground truth), with ivfpq's ``HNSW``:

* ``uncompressed``: all vectors indexed raw (the reference);
* ``tile@200k`` / ``kmeans@200k``: the first ``--compress-at`` vectors (default
  200,000) indexed raw, then ``compress(codebook=...)``, then the remaining vectors
  added compressed;
* ``tile@end`` / ``kmeans@end``: everything indexed raw, compressed at the end.

Each index is searched on 1 thread (batch of ``--n-queries`` queries) over a range of
``ef_search``: recall@10 (10 true nearest among the 10 returned), recall 100@100,
queries per second, and the p50 latency of single-query calls; then the total
indexing time (raw adds, quantizer training and encoding, compressed adds) and the
bytes per vector of the index before and after compression. Codes are not re-scored
(``keep_raw=False``): what is measured is the compressed graph alone. k-means
codebooks use M = 32 segments of 4 dimensions (32 bytes per vector); the Tile encoder
one byte per dimension (128 bytes).

Commands::

    python benchmarks/hnsw_compress.py                      # full size, tens of minutes
    python benchmarks/hnsw_compress.py --n-base 100000 --compress-at 25000   # a few minutes
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import machine_line, print_table  # noqa: E402

EF_SEARCHES = (16, 32, 64, 128, 256, 512)
KMEANS_M = 32
VARIANTS = ("uncompressed", "tile@200k", "kmeans@200k", "tile@end", "kmeans@end")


def load(n_base, n_queries):
    from ivfpq import ground_truth
    from ivfpq.datasets import load_dataset

    data = load_dataset("sift-debian", mmap=False)
    base = np.ascontiguousarray(data["base"][:n_base], dtype=np.float32)
    queries = np.ascontiguousarray(data["query"][:n_queries], dtype=np.float32)
    if n_base >= len(data["base"]):
        truth = np.asarray(data["groundtruth"][:n_queries, :100], dtype=np.int64)
    else:
        truth = ground_truth(base, queries, 100)[1]
    return base, queries, truth


def build(base, variant, compress_at, M, ef_construction):
    """(index, seconds of each phase, bytes per vector before compression)."""
    from ivfpq import HNSW

    index = HNSW(M=M, ef_construction=ef_construction, random_state=0)
    phases = {}
    kind, _, when = variant.partition("@")
    first = len(base) if kind == "uncompressed" or when == "end" else min(compress_at, len(base))
    start = time.perf_counter()
    index.add(base[:first])
    phases["raw add s"] = time.perf_counter() - start
    before = index.memory_usage().bytes_per_vector
    if kind != "uncompressed":
        start = time.perf_counter()
        index.compress(codebook=kind, M=KMEANS_M if kind == "kmeans" else None)
        phases["compress s"] = time.perf_counter() - start
        start = time.perf_counter()
        index.add(base[first:])
        phases["compressed add s"] = time.perf_counter() - start
    return index, phases, before


def recall_at(found, truth, k):
    hits = [len(set(f[:k]) & set(t[:k])) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k


def sweep(index, queries, truth, n_latency):
    import numba

    points = []
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        index.search(queries[:10], 100, ef_search=EF_SEARCHES[0])
        for ef in EF_SEARCHES:
            _, ids = index.search(queries, 100, ef_search=max(ef, 100))
            _, ids10 = index.search(queries, 10, ef_search=ef)
            latencies = []
            for q in range(n_latency):
                t0 = time.perf_counter()
                index.search(queries[q:q + 1], 10, ef_search=ef)
                latencies.append(time.perf_counter() - t0)
            start = time.perf_counter()
            index.search(queries, 10, ef_search=ef)
            qps = len(queries) / (time.perf_counter() - start)
            points.append({"ef_search": ef, "recall@10": recall_at(ids10, truth, 10),
                           "recall 100@100": recall_at(ids, truth, 100), "QPS": qps,
                           "p50 us": 1e6 * float(np.median(latencies))})
    finally:
        numba.set_num_threads(previous)
    return points


def plot(all_points, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for variant, (points, total) in all_points.items():
        label = f"{variant} (indexed in {total:.0f} s)"
        axes[0].plot([p["p50 us"] for p in points], [p["recall@10"] for p in points], marker="o",
                     ms=3, label=label)
        axes[1].plot([p["p50 us"] for p in points], [p["recall 100@100"] for p in points],
                     marker="o", ms=3, label=label)
    for ax, what in zip(axes, ("recall@10", "recall 100@100")):
        ax.set_xscale("log")
        ax.set_xlabel("latency of one query, p50, microseconds (1 thread)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-base", type=int, default=743_933)
    parser.add_argument("--compress-at", type=int, default=200_000)
    parser.add_argument("--n-queries", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--M", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--plot", type=Path,
                        default=Path(__file__).resolve().parent / "hnsw_compress_sift_debian.png")
    args = parser.parse_args(argv)

    print(f"# hnsw_compress  {datetime.date.today()}  {machine_line()}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:] if argv is None else argv)}")
    base, queries, truth = load(args.n_base, args.n_queries)
    print(f"# sift-debian: {len(base):,} x 128, {len(queries):,} queries", flush=True)
    point_rows, build_rows, curves = [], [], {}
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        index, phases, before = build(base, variant, args.compress_at,
                                      args.M, args.ef_construction)
        total = sum(phases.values())
        after = index.memory_usage().bytes_per_vector
        build_rows.append({"variant": variant, **phases, "total s": total,
                           "bytes/vector before": before, "bytes/vector after": after})
        print(f"# {variant}: " + ", ".join(f"{k} {v:.1f}" for k, v in build_rows[-1].items()
                                           if k != "variant"), flush=True)
        points = sweep(index, queries, truth, args.latency_queries)
        for p in points:
            point_rows.append({"variant": variant, **p})
        print(f"# {variant}: " + ", ".join(f"ef {p['ef_search']}: {p['recall@10']:.3f}/"
                                           f"{p['recall 100@100']:.3f} @ {p['QPS']:.0f}/s"
                                           for p in points), flush=True)
        curves[variant] = (points, total)
        del index
    print_table(build_rows, ["variant", "raw add s", "compress s", "compressed add s", "total s",
                             "bytes/vector before", "bytes/vector after"],
                title=f"Indexing {len(base):,} vectors (2 threads; compression after "
                      f"{args.compress_at:,} for '@200k')")
    print_table(point_rows, ["variant", "ef_search", "recall@10", "recall 100@100", "QPS", "p50 us"],
                title="Search on 1 thread (no re-scoring)")
    if args.plot:
        plot(curves, args.plot, f"HNSW M={args.M}, efC={args.ef_construction}, compressed after "
                                f"indexing, sift-debian {len(base):,} x 128")
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
