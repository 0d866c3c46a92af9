"""Thread counts for Numba kernels and BLAS, set together and restored afterwards.

Every public entry point runs its kernels inside :func:`thread_limits`, so a Numba
parallel region never competes with a BLAS pool of another size. The threadpoolctl
controller is built once: building one inspects every loaded library, which can take
longer than a search of a few queries (benchmarks/README.md, "Figures behind the
code's constants").
"""

from __future__ import annotations

from contextlib import contextmanager

import numba

from ._validation import check_positive_int

__all__ = ["resolve_n_threads", "numba_threads", "blas_threads", "search_threads",
           "thread_limits"]

_controller = None


def resolve_n_threads(n_threads) -> int:
    """``None`` means the threads Numba is set to use now (``numba.get_num_threads()``:
    every core, unless the caller lowered it with ``numba.set_num_threads``); larger
    requests are capped at the cores Numba may use."""
    available = numba.config.NUMBA_NUM_THREADS
    if n_threads is None:
        return numba.get_num_threads()
    n_threads = check_positive_int(n_threads, "n_threads")
    return min(n_threads, available)


def _blas_controller():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextmanager
def numba_threads(n_threads: int):
    """Run Numba kernels on ``n_threads`` threads, then restore the count. For code that
    calls no BLAS: threadpoolctl's library scan can cost more than a small kernel
    (benchmarks/README.md, "Figures behind the code's constants")."""
    previous = numba.get_num_threads()
    if previous == n_threads:
        yield
        return
    numba.set_num_threads(n_threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@contextmanager
def blas_threads(n_threads: int):
    """Run BLAS on ``n_threads`` threads, then restore each library's count. Only the
    libraries whose count differs are touched: ``ThreadpoolController.limit`` would
    query and set all of them, which costs more than a search of one query."""
    libraries = [lib for lib in _blas_controller().lib_controllers if lib.user_api == "blas"]
    changed = [(lib, lib.num_threads) for lib in libraries if lib.num_threads != n_threads]
    for lib, _ in changed:
        lib.set_num_threads(n_threads)
    try:
        yield
    finally:
        for lib, previous in changed:
            lib.set_num_threads(previous)


@contextmanager
def search_threads(n_threads: int):
    """Run Numba kernels on ``n_threads`` threads and BLAS on one, for the searches: a
    query batch's matrix products are small, and the workers of a multi-threaded
    BLAS keep spinning for a while after a product returns, taking the cores from
    the Numba region that follows (a scan of probed lists ran 1.7x slower right
    after a two-thread product than on its own)."""
    with numba_threads(n_threads), blas_threads(1):
        yield


@contextmanager
def thread_limits(n_threads: int):
    """Run Numba kernels and BLAS on ``n_threads`` threads, then restore both."""
    with numba_threads(n_threads), blas_threads(n_threads):
        yield
