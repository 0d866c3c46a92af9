"""What the exact float64 recheck of the nearest-centroid kernel costs.

Runs, on one thread and in one process, the package's ``nearest_centroids`` (BLAS
screen + exact recheck within the GEMM's rounding bound) and the bare screen it
replaced (the same GEMM and argmin, labels left to float32 rounding), alternately,
and prints median CPU seconds, the cost ratio and how many labels the recheck
changed. Real data rows from ../shared/data.

    python benchmarks/exact_recheck.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import load_shared, machine_line, print_table  # noqa: E402


from ivfpq._threads import numba_threads  # noqa: E402
from ivfpq.datasets import load_dataset  # noqa: E402
from ivfpq.kernels.distances import augmented_centroids, default_block_rows, nearest_centroids  # noqa: E402


def screen_only(X, C, labels, sq):
    """The GEMM screen alone: argmin of float32 scores, distance from the expansion."""
    n, d = X.shape
    M = augmented_centroids(C)
    block_rows = min(n, default_block_rows(C.shape[0], X.dtype.itemsize))
    rows = np.ones((block_rows, d + 1), dtype=X.dtype)
    block = np.empty((block_rows, C.shape[0]), dtype=X.dtype)
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        m = stop - start
        rows[:m, :d] = X[start:stop]
        np.matmul(rows[:m], M, out=block[:m])
        np.argmin(block[:m], axis=1, out=labels[start:stop])
        best = np.take_along_axis(block[:m], labels[start:stop, None], axis=1)[:, 0]
        x = X[start:stop]
        sq[start:stop] = np.maximum(np.einsum("ij,ij->i", x, x).astype(np.float64) + best, 0.0)


def cases(rng):
    sift = load_dataset("sift-debian")["base"]  # memory-mapped uint8: only the sample is read
    glove = load_shared("glove")
    minilm = load_dataset("minilm-debian-descriptions")["base"]
    yield "sift-debian", np.asarray(sift[np.sort(rng.choice(sift.shape[0], 50_000, replace=False))], np.float32), 1000
    yield "sift-debian", np.asarray(sift[np.sort(rng.choice(sift.shape[0], 20_000, replace=False))], np.float32), 10_000
    yield "glove", np.asarray(glove[:50_000], np.float32), 1000
    yield "minilm", np.asarray(minilm[:30_000], np.float32), 2000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"# exact_recheck  {machine_line()}\n# command: python benchmarks/exact_recheck.py --repeat {args.repeat}")
    rng = np.random.default_rng(0)
    rows = []
    with threadpool_limits(1), numba_threads(1):
        for name, X, k in cases(rng):
            X = np.ascontiguousarray(X)
            C = np.ascontiguousarray(X[rng.choice(X.shape[0], k, replace=False)] + np.float32(0.01))
            n = X.shape[0]
            out = {f: (np.empty(n, np.int64), np.empty(n)) for f in ("screen", "exact")}
            funcs = {"screen": screen_only, "exact": nearest_centroids}
            times = {f: [] for f in funcs}
            for f in funcs:
                funcs[f](X, C, *out[f])  # compiled and warm
            for _ in range(args.repeat):
                for f in funcs:
                    start = time.process_time()
                    funcs[f](X, C, *out[f])
                    times[f].append(time.process_time() - start)
            screen, exact = np.median(times["screen"]), np.median(times["exact"])
            rows.append({"data": name, "n": X.shape[0], "d": X.shape[1], "k": k, "screen s (CPU)": screen,
                         "exact s (CPU)": exact, "recheck cost": f"{exact / screen - 1:+.1%}",
                         "labels changed": int((out["screen"][0] != out["exact"][0]).sum())})
    print_table(rows, list(rows[0]), title="Exact assignment: what the float64 recheck costs "
                                           "(1 thread, median CPU seconds)")


if __name__ == "__main__":
    main()
