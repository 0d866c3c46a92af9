"""The exact assigner's bounds: the same fit bit for bit, with much of the work skipped."""

import numpy as np
import pytest

from ivfpq.cluster.assign import ExactAssigner
from ivfpq.cluster.lloyd import lloyd_on_array

from .._data import gaussian_mixture


def _fit(X, C0, bounds, iters=30, **kwargs):
    assigner = ExactAssigner(bounds=bounds)
    result = lloyd_on_array(X, C0, assigner, iters, **kwargs)
    return result, assigner


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_rows", [None, 700])
def test_bounds_change_the_work_not_the_fit(dtype, block_rows):
    X = gaussian_mixture(5000, 64, 50, seed=3).astype(dtype)
    C0 = X[np.random.default_rng(0).choice(len(X), 400, replace=False)].copy()
    weights = np.random.default_rng(1).integers(0, 3, len(X)).astype(np.float64)
    plain, _ = _fit(X, C0, False, sample_weight=weights, block_rows=block_rows)
    bounded, assigner = _fit(X, C0, True, sample_weight=weights, block_rows=block_rows)
    np.testing.assert_array_equal(bounded.labels, plain.labels)
    np.testing.assert_array_equal(bounded.centers, plain.centers)
    assert bounded.inertia == plain.inertia
    assert [h[1] for h in bounded.history] == [h[1] for h in plain.history]
    # The first pass has nothing to bound; later ones score most rows against few movers.
    assert assigner.bounded_[0] == -1
    assert any(0 <= movers < 400 for movers in assigner.bounded_)


def test_bounds_follow_points_that_empty_cluster_repair_moves():
    # 30 distinct points, 12 clusters started on 4 of them: repair moves points every
    # iteration, and the bounds of the moved points must not be trusted afterwards.
    rng = np.random.default_rng(0)
    X = np.repeat(rng.standard_normal((30, 4)).astype(np.float32), 5, axis=0)
    C0 = np.repeat(X[:4], 3, axis=0) + np.float32(1e-3) * rng.standard_normal((12, 4)).astype(np.float32)
    plain, _ = _fit(X, C0, False)
    bounded, _ = _fit(X, C0, True)
    np.testing.assert_array_equal(bounded.labels, plain.labels)
    np.testing.assert_array_equal(bounded.centers, plain.centers)


def test_relabel_drops_the_bound_of_moved_rows():
    assigner = ExactAssigner()
    state = assigner.new_state(3)
    state["label"], state["lower"] = [0, 1, 1], [2.0, 3.0, 4.0]
    assigner.relabel(state, np.array([2]), np.array([0]))
    assert state["label"].tolist() == [0, 1, 0]
    assert state["lower"].tolist() == [2.0, 3.0, 0.0]


def test_without_bounds_there_is_no_state_and_no_sample():
    assigner = ExactAssigner(bounds=False)
    assert assigner.new_state(5) is None
    assert assigner.audit_rows(100) is None


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_nearest_in_shares_is_the_one_block_pass(n_threads):
    import numba

    from ivfpq.cluster.assign import nearest_in_shares
    from ivfpq.kernels.distances import nearest_centroids

    X = gaussian_mixture(3000, 16, 20, seed=5)
    C = np.ascontiguousarray(X[::37])
    expected = np.empty(len(X), np.int64), np.empty(len(X)), np.empty(len(X))
    nearest_centroids(X, C, *expected[:2], block_rows=len(X), lower_out=expected[2])
    got = np.empty(len(X), np.int64), np.empty(len(X)), np.empty(len(X))
    before = numba.get_num_threads()
    numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        nearest_in_shares(X, C, *got[:2], lower_out=got[2])
    finally:
        numba.set_num_threads(before)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
