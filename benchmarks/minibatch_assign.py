"""Assigning mini-batches at large k: exact, two-level, graph, and how good each is.

``batches``: one batch of 81,920 sift-debian rows against k=10,000 centroids (random
rows moved by one Lloyd step on 200,000 rows), assigned by each method; prints the
seconds, the speed-up over exact and the agreement with exact assignment.

``epoch``: one MiniBatchKMeans epoch on 300,000 sift rows at k=5,000 with graph-searched
batches; prints, per quarter of the epoch, the agreement of the batch assignments with
exact assignment and their excess cost.

    python benchmarks/minibatch_assign.py batches
    python benchmarks/minibatch_assign.py epoch
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine_line  # noqa: E402

from ivfpq import MiniBatchKMeans  # noqa: E402
from ivfpq._threads import resolve_n_threads, thread_limits  # noqa: E402
from ivfpq.cluster.assign import ExactAssigner, GraphAssigner, two_level_assign  # noqa: E402
from ivfpq.datasets import load_dataset  # noqa: E402
from ivfpq.kernels.coarse import coarse_groups, default_n_groups  # noqa: E402
from ivfpq.kernels.distances import nearest_centroids  # noqa: E402


def sift():
    return np.ascontiguousarray(load_dataset("sift-debian")["base"], dtype=np.float32)


def batches():
    X = sift()
    rng = np.random.default_rng(0)
    k = 10000
    C = X[rng.choice(len(X), k, replace=False)].copy()
    sub = X[rng.choice(len(X), 200000, replace=False)]
    exact = ExactAssigner()
    exact.prepare(C)
    labels, sq = np.empty(len(sub), np.int64), np.empty(len(sub))
    exact.assign(sub, None, labels, sq)
    sums = np.zeros((k, X.shape[1]))
    np.add.at(sums, labels, sub)
    counts = np.bincount(labels, minlength=k)
    C[counts > 0] = (sums[counts > 0] / counts[counts > 0, None]).astype(np.float32)
    B = X[rng.integers(0, len(X), 4096 * 20)]
    n = len(B)
    exact.prepare(C)
    exact_labels, exact_sq = np.empty(n, np.int64), np.empty(n)
    start = time.perf_counter()
    exact.assign(B, None, exact_labels, exact_sq)
    exact_seconds = time.perf_counter() - start
    print(f"exact: {exact_seconds:.2f} s for {n:,} rows")

    def report(name, labels, sq, seconds):
        print(f"{name}: {seconds:.2f} s ({exact_seconds / seconds:.1f}x), agreement "
              f"{np.mean(labels == exact_labels):.3f}, excess {sq.sum() / exact_sq.sum() - 1:.4f}")

    for nprobe in (1, 4, 8):
        groups = coarse_groups(C, default_n_groups(k, nprobe), nprobe, 4, 0)
        labels, sq, state = np.empty(n, np.int64), np.empty(n), np.empty((n, 4), np.int32)
        start = time.perf_counter()
        two_level_assign(B, C, state, labels, sq, groups)
        two_level = time.perf_counter() - start
        report(f"two-level nprobe {nprobe}", labels, sq, two_level)
        graph = GraphAssigner(seed=0, ef_search=8, stay_check=False)
        graph.prepare(C, B[:1], state[:1])  # a warm prepare builds the graph
        labels, sq = np.empty(n, np.int64), np.empty(n)
        start = time.perf_counter()
        graph.assign(B, state, labels, sq)
        report("  + seeded graph search, beam 8", labels, sq, two_level + time.perf_counter() - start)
    for ef in (8, 16, 32):
        graph = GraphAssigner(seed=0, cold_start="graph", ef_search=ef // 2, ef_cold=ef)
        state = graph.new_state(n)
        graph.prepare(C, B[:16], state[:16])
        labels, sq = np.empty(n, np.int64), np.empty(n)
        start = time.perf_counter()
        graph.assign(B, state, labels, sq)
        report(f"unseeded graph search, beam {ef}", labels, sq, time.perf_counter() - start)


def epoch():
    X = sift()
    X = X[np.random.default_rng(0).permutation(len(X))][:300000]
    k = 5000
    init = X[np.sort(np.random.default_rng(1).choice(len(X), k, replace=False))]
    measured = []

    class Measured(MiniBatchKMeans):
        def _labels(self, x):
            labels, sq = super()._labels(x)
            exact_labels, exact_sq = np.empty(len(x), np.int64), np.empty(len(x))
            nearest_centroids(x, np.ascontiguousarray(self.cluster_centers_), exact_labels, exact_sq)
            measured.append((np.mean(exact_labels == labels), sq.sum() / exact_sq.sum() - 1))
            return labels, sq

    params = dict(init=init, max_iter=1, batch_size=4096, max_no_improvement=None, random_state=0)
    model = Measured(k, algorithm="mop", cold_start="graph", ef_search=16, refresh_every=32, **params).fit(X)
    quarters = np.array_split(np.array(measured), 4)
    print(f"{len(measured)} steps; agreement by quarter", [round(float(q[:, 0].mean()), 4) for q in quarters],
          "excess", [float(f"{q[:, 1].mean():.2e}") for q in quarters])
    exact = MiniBatchKMeans(k, algorithm="lloyd", **params).fit(X)
    print(f"final inertia: graph-searched batches {model.inertia_:.5e}, exact batches {exact.inertia_:.5e}")


if __name__ == "__main__":
    print("machine:", machine_line())
    with thread_limits(resolve_n_threads(None)):
        {"batches": batches, "epoch": epoch}[sys.argv[1] if len(sys.argv) > 1 else "batches"]()
