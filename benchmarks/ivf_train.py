"""Training an IVF coarse quantizer at large nlist: ivfpq's k-means against faiss's.

On the real SIFT descriptors of ``../shared/data/sift-debian`` (743,933 x 128), each
contender trains the coarse centroids of an IVF-Flat index with ``nlist`` lists
(``--nlist``, default 16,384 and 65,536) for the same number of Lloyd iterations
(``--iters``, default 10, faiss's IVF default), then every index adds all base vectors
and answers the first ``--n-queries`` queries at each ``--nprobe``; recall@10 is
measured against the set's exact ground truth. Contenders:

* ``ivfpq-mop``: ivfpq ``IVFFlat(kmeans_algorithm="mop")``, MOPBucket k-means (its
  graph assigner), from the same random sample of at most 256 points per list;
* ``ivfpq-auto``: ``kmeans_algorithm="auto"`` (what a user gets);
* ``faiss-flat``: faiss ``IndexIVFFlat`` trained with its default flat assignment;
* ``faiss-hnsw``: the same with an ``IndexHNSWFlat(d, 32)`` as ``clustering_index``,
  faiss's recommendation for large ``nlist`` (the assignment of each iteration
  searches a graph over the centroids).

The ivfpq indexes assign and search through their graph quantizer from 16,384 lists
("auto"); faiss's search quantizer is flat (exact) in both cases, which favours
faiss's recall at a given nprobe and costs it search time (not measured here).

Every fit runs on 2 threads. The table gives the training time, the inertia of the
trained centroids on the training sample (exact assignment, so comparable across
contenders), and the recall at each nprobe; ratios are against faiss-flat.

Commands::

    python benchmarks/ivf_train.py                                   # both nlists, all contenders
    python benchmarks/ivf_train.py --nlist 65536 --contenders ivfpq-mop,faiss-hnsw
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

K = 10
CONTENDERS = ("ivfpq-mop", "ivfpq-auto", "faiss-flat", "faiss-hnsw")
MAX_POINTS_PER_CENTROID = 256


def load():
    from ivfpq.datasets import load_dataset

    data = load_dataset("sift-debian", mmap=False)
    base = np.ascontiguousarray(data["base"], dtype=np.float32)
    return base, data["query"], np.asarray(data["groundtruth"][:, :K], dtype=np.int64)


def training_sample(base, nlist, seed=0):
    """The rows every contender trains on: at most 256 per list, drawn once."""
    n = min(len(base), nlist * MAX_POINTS_PER_CENTROID)
    if n == len(base):
        return base
    rows = np.sort(np.random.default_rng(seed).choice(len(base), n, replace=False))
    return base[rows]


def train_ours(sample, nlist, iters, algorithm):
    from ivfpq import IVFFlat

    index = IVFFlat(nlist, kmeans_iter=iters, kmeans_algorithm=algorithm,
                    max_points_per_centroid=MAX_POINTS_PER_CENTROID, random_state=0)
    start = time.perf_counter()
    index.train(sample)
    seconds = time.perf_counter() - start

    def search(base, Q, nprobe):
        if index.ntotal == 0:
            index.add(base)
        return index.search(Q, K, nprobe=nprobe)[1]

    return seconds, np.asarray(index.centroids_, dtype=np.float32), search


def train_faiss(sample, nlist, iters, hnsw_assignment):
    import faiss

    d = sample.shape[1]
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist)
    index.cp.niter = iters
    index.cp.seed = 0
    index.cp.max_points_per_centroid = MAX_POINTS_PER_CENTROID
    if hnsw_assignment:
        index.clustering_index = faiss.IndexHNSWFlat(d, 32)
    start = time.perf_counter()
    index.train(sample)
    seconds = time.perf_counter() - start
    centroids = quantizer.reconstruct_n(0, nlist)

    def search(base, Q, nprobe):
        if index.ntotal == 0:
            index.add(base)
        index.nprobe = nprobe
        return index.search(Q, K)[1]

    search.keep = (quantizer, index)
    return seconds, np.ascontiguousarray(centroids, dtype=np.float32), search


def inertia(sample, centroids):
    """Sum of squared distances of the sample to its exact nearest centroid."""
    from ivfpq import ground_truth

    dist, _ = ground_truth(centroids, sample, 1)
    return float(np.asarray(dist, dtype=np.float64).sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nlist", default="16384,65536")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--nprobe", default="1,4,16,64")
    parser.add_argument("--n-queries", type=int, default=1000)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import faiss
    import numba
    from threadpoolctl import threadpool_limits

    from ivfpq import recall

    numba.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    print(f"# ivf_train  {datetime.date.today()}  {machine_line()}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:] if argv is None else argv)}")
    base, queries, truth = load()
    Q = np.ascontiguousarray(queries[: args.n_queries], dtype=np.float32)
    truth = truth[: args.n_queries]
    nprobes = [int(p) for p in args.nprobe.split(",")]
    rows = []
    with threadpool_limits(args.threads):
        for nlist in (int(v) for v in args.nlist.split(",")):
            sample = training_sample(base, nlist)
            print(f"# nlist={nlist}: training sample {len(sample):,} rows", flush=True)
            reference = None
            for name in args.contenders.split(","):
                if name == "ivfpq-mop":
                    result = train_ours(sample, nlist, args.iters, "mop")
                elif name == "ivfpq-auto":
                    result = train_ours(sample, nlist, args.iters, "auto")
                elif name in ("faiss-flat", "faiss-hnsw"):
                    result = train_faiss(sample, nlist, args.iters, name == "faiss-hnsw")
                else:
                    raise ValueError(f"unknown contender {name!r}; choose from {', '.join(CONTENDERS)}")
                seconds, centroids, search = result
                row = {"nlist": nlist, "contender": name, "train s": seconds,
                       "inertia": inertia(sample, centroids)}
                for nprobe in nprobes:
                    row[f"nprobe={nprobe}"] = recall(search(base, Q, nprobe), truth, K)
                if name == "faiss-flat":
                    reference = row
                print(f"# {name}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in row.items()), flush=True)
                rows.append(row)
                del search
            if reference is not None:
                for row in rows:
                    if row["nlist"] == nlist:
                        row["train vs faiss-flat"] = row["train s"] / reference["train s"]
                        row["inertia vs faiss-flat"] = row["inertia"] / reference["inertia"]
    columns = ["nlist", "contender", "train s", "train vs faiss-flat", "inertia", "inertia vs faiss-flat"]
    columns += [f"nprobe={p}" for p in nprobes]
    print_table(rows, columns, title=f"IVF-Flat coarse training on sift-debian ({args.iters} iterations, "
                                     f"{args.threads} threads; recall@10 at each nprobe)")


if __name__ == "__main__":
    main()
