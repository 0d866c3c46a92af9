"""Thread counts for Numba kernels and BLAS, set together and restored afterwards.

Every public entry point runs its kernels inside :func:`thread_limits`, so a Numba
parallel region never competes with a BLAS pool of another size. The threadpoolctl
controller is built once: building one inspects every loaded library, which can take
longer than a search of a few queries (benchmarks/README.md, "Figures behind the
code's constants").
"""

from __future__ import annotations

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


class _Limits:
    """Set Numba's thread count and/or BLAS's on entry, restore what was changed on exit.

    A plain class rather than a generator context manager: a search of one query
    enters one, and a generator's set-up costs as much as the search's validation.
    Only the counts that differ are touched (``ThreadpoolController.limit`` would query
    and set every library, which costs more than a search of one query).
    """

    __slots__ = ("_numba", "_blas", "_numba_before", "_blas_before")

    def __init__(self, numba_count, blas_count):
        self._numba, self._blas = numba_count, blas_count

    def __enter__(self):
        self._numba_before = None
        if self._numba is not None:
            before = numba.get_num_threads()
            if before != self._numba:
                numba.set_num_threads(self._numba)
                self._numba_before = before
        self._blas_before = []
        if self._blas is not None:
            for lib in _blas_controller().lib_controllers:
                if lib.user_api == "blas":
                    before = lib.num_threads
                    if before != self._blas:
                        lib.set_num_threads(self._blas)
                        self._blas_before.append((lib, before))
        return self

    def __exit__(self, *exc_info):
        for lib, before in self._blas_before:
            lib.set_num_threads(before)
        if self._numba_before is not None:
            numba.set_num_threads(self._numba_before)
        return False


def numba_threads(n_threads: int):
    """Run Numba kernels on ``n_threads`` threads, then restore the count. For code that
    calls no BLAS: threadpoolctl's library scan can cost more than a small kernel
    (benchmarks/README.md, "Figures behind the code's constants")."""
    return _Limits(n_threads, None)


def blas_threads(n_threads: int):
    """Run BLAS on ``n_threads`` threads, then restore each library's count."""
    return _Limits(None, n_threads)


def search_threads(n_threads: int):
    """Run Numba kernels on ``n_threads`` threads and BLAS on one, for the searches: a
    query batch's matrix products are small, and the workers of a multi-threaded
    BLAS keep spinning for a while after a product returns, taking the cores from
    the Numba region that follows (a scan of probed lists ran 1.7x slower right
    after a two-thread product than on its own)."""
    return _Limits(n_threads, 1)


def thread_limits(n_threads: int):
    """Run Numba kernels and BLAS on ``n_threads`` threads, then restore both."""
    return _Limits(n_threads, n_threads)
