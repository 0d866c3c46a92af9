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

__all__ = ["resolve_n_threads", "numba_threads", "thread_limits"]

_controller = None


def resolve_n_threads(n_threads) -> int:
    """``None`` means every core Numba may use; larger requests are capped there."""
    available = numba.config.NUMBA_NUM_THREADS
    if n_threads is None:
        return available
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
    numba.set_num_threads(n_threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@contextmanager
def thread_limits(n_threads: int):
    """Run Numba kernels and BLAS on ``n_threads`` threads, then restore both."""
    with numba_threads(n_threads), _blas_controller().limit(limits=n_threads, user_api="blas"):
        yield
