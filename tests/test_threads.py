"""_threads.py: thread counts follow the caller's Numba setting and are restored."""

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from ivfpq import HNSW
from ivfpq._threads import blas_threads, numba_threads, resolve_n_threads, thread_limits


@pytest.fixture
def one_numba_thread():
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(previous)


def _blas_counts():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_none_follows_the_callers_numba_setting(one_numba_thread):
    assert resolve_n_threads(None) == 1


def test_requests_are_capped_at_the_cores_numba_may_use():
    assert resolve_n_threads(10**6) == numba.config.NUMBA_NUM_THREADS
    with pytest.raises(ValueError, match="n_threads"):
        resolve_n_threads(0)


def test_numba_threads_sets_and_restores():
    previous = numba.get_num_threads()
    with numba_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == previous


def test_blas_threads_sets_and_restores():
    before = _blas_counts()
    with blas_threads(1):
        assert all(count == 1 for count in _blas_counts())
    assert _blas_counts() == before


def test_thread_limits_restore_after_an_error():
    previous = numba.get_num_threads()
    before = _blas_counts()
    with pytest.raises(RuntimeError):
        with thread_limits(1):
            raise RuntimeError
    assert numba.get_num_threads() == previous
    assert _blas_counts() == before


def test_an_index_with_default_threads_runs_on_the_callers_count(one_numba_thread):
    rng = np.random.default_rng(0)
    index = HNSW(M=8, ef_construction=32, random_state=0)
    assert index._n_threads() == 1
    index.add(rng.standard_normal((300, 8)).astype(np.float32))
    index.search(rng.standard_normal((40, 8)).astype(np.float32), 3)
    assert numba.get_num_threads() == 1
