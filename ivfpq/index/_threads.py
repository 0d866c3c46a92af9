"""Thread limits for calls that must stay cheap (index searches of a few queries).

``cluster.kmeans.thread_limits`` builds a new threadpoolctl controller per call, which
costs about 0.3 ms (it inspects every loaded library); a search of 100 queries can
take less than that. This one keeps the controller, so entering costs ~10 us.
"""

from __future__ import annotations

from contextlib import contextmanager

_controller = None


def _blas_controller():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextmanager
def fast_thread_limits(n_threads: int):
    """Run Numba kernels and BLAS on ``n_threads`` threads, then restore both."""
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        with _blas_controller().limit(limits=n_threads, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(previous)
