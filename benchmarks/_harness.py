"""Shared helpers for the benchmark scripts: data, timing, tables, machine line.

Each benchmark runs ivfpq and its peers in one process, on the same data, and prints
a table plus the ratios. Timings on a shared machine are noisy: compare within a run,
repeat, and report medians.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import numpy as np


def _blas_kernels_as_numpys():
    """Make every OpenBLAS loaded from now on run the kernels NumPy's runs.

    An OpenBLAS older than the processor does not recognise it and falls back to its
    most generic x86-64 kernels: faiss-cpu's wheel bundles OpenBLAS 0.3.15, which on
    a recent Xeon picks "Prescott" (SSE3) while NumPy's picks "SkylakeX", and faiss's
    exact k-means ran 3.9x slower for it (benchmarks/README.md). OpenBLAS reads
    ``OPENBLAS_CORETYPE`` when it loads, and the peers load after this module: a
    comparison with a peer crippled by its packaging would show nothing. A value
    the caller set is kept.
    """
    if os.environ.get("OPENBLAS_CORETYPE"):
        return
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return
    cores = [info.get("architecture") for info in threadpool_info() if info.get("internal_api") == "openblas"]
    if cores and cores[0]:
        os.environ["OPENBLAS_CORETYPE"] = cores[0]


_blas_kernels_as_numpys()


def machine_line() -> str:
    """One line naming the machine, for benchmark reports."""
    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    core = os.environ.get("OPENBLAS_CORETYPE")
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {numpy.__version__}" + (f", OpenBLAS kernels {core}" if core else ""))


def median_time(fn, repeat=3, warmup=0):
    """Median wall time of ``fn()`` over ``repeat`` runs (after ``warmup`` runs), and its last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def print_table(rows, columns, title=None, file=sys.stdout):
    """Print a list of dicts as a Markdown table (so it can be pasted into a README)."""
    if title:
        print(f"\n### {title}\n", file=file)
    widths = [max([len(c)] + [len(_fmt(r.get(c))) for r in rows]) for c in columns]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |", file=file)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=file)
    for r in rows:
        print("| " + " | ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)) + " |", file=file)
    file.flush()


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e6:
            return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        return f"{value:.3e}"
    return str(value)


def gaussian_mixture(n, d, n_components=1000, seed=0, dtype=np.float32):
    """Synthetic data with cluster structure: a mixture of isotropic Gaussians."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((n_components, d)).astype(dtype) * 4.0
    out = np.empty((n, d), dtype=dtype)
    block = 100_000
    for start in range(0, n, block):
        stop = min(n, start + block)
        comp = rng.integers(0, n_components, stop - start)
        out[start:stop] = means[comp] + rng.standard_normal((stop - start, d), dtype=np.float32)
    return out


def load_shared(name):
    """Real vectors from ../shared/data (see :func:`ivfpq.datasets.data_root`) as float32.

    'sift10k' gives (base, queries, ground truth); 'glove', 'fashion-mnist' and 'mnist'
    give the base vectors.
    """
    from ivfpq.datasets import load_dataset

    data = load_dataset(name, mmap=False)
    base = np.ascontiguousarray(data["base"], dtype=np.float32)
    if name == "sift10k":
        return base, np.ascontiguousarray(data["query"], dtype=np.float32), np.asarray(data["groundtruth"])
    return base
