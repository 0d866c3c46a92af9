"""The exact nearest-centroid kernel: brute force, near ties, independence of the blocking,
and the bounded pass that skips rows: the same labels, and bounds that hold."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ivfpq.kernels.distances import bounded_nearest_centroids, nearest_centroids, new_bounds
from ivfpq.kernels.distances import score_error_bound

shapes = st.tuples(st.integers(1, 300), st.integers(1, 17), st.integers(1, 40))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31), dtype=st.sampled_from([np.float32, np.float64]),
       block=st.sampled_from([None, 1, 7, 64]))
def test_nearest_centroids_matches_brute_force(shape, seed, dtype, block):
    n, d, k = shape
    rng = np.random.default_rng(seed)
    # Integer-valued data makes distances exact in both dtypes, so ties are real ties.
    X = rng.integers(-8, 8, (n, d)).astype(dtype)
    C = rng.integers(-8, 8, (k, d)).astype(dtype)
    labels = np.empty(n, np.int64)
    sq = np.empty(n, np.float64)
    nearest_centroids(X, C, labels, sq, block_rows=block)
    full = ((X.astype(np.float64)[:, None] - C.astype(np.float64)[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, full.argmin(1))  # ties -> lowest index
    np.testing.assert_array_equal(sq, full.min(1))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), d=st.sampled_from([3, 32, 128]), k=st.integers(2, 300))
def test_near_ties_are_decided_by_exact_distance_whatever_the_block(seed, d, k):
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((k, d)).astype(np.float32)
    # Points almost on the bisector of two centroids: float32 GEMM rounding alone
    # would decide these.
    a, b = rng.integers(0, k, 400), rng.integers(0, k, 400)
    X = (0.5 * (C[a] + C[b]) + 1e-6 * rng.standard_normal((400, d))).astype(np.float32)
    full = ((X.astype(np.float64)[:, None] - C.astype(np.float64)[None]) ** 2).sum(-1)
    results = []
    for block in (1, 37, 400):
        labels, sq = np.empty(400, np.int64), np.empty(400)
        nearest_centroids(X, C, labels, sq, block_rows=block)
        results.append((labels.copy(), sq.copy()))
        np.testing.assert_allclose(sq, full.min(1), rtol=1e-12, atol=1e-12)
        assert np.all(full[np.arange(400), labels] <= full.min(1) * (1 + 1e-12) + 1e-12)
    for labels, sq in results[1:]:
        np.testing.assert_array_equal(labels, results[0][0])
        np.testing.assert_array_equal(sq, results[0][1])


def test_score_error_bound_covers_the_float32_gemm_error():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((500, 64)) * 30).astype(np.float32)
    C = (rng.standard_normal((40, 64)) * 30).astype(np.float32)
    scores = X @ (-2 * C.T) + np.einsum("ij,ij->i", C, C).astype(np.float32)
    exact = -2 * X.astype(np.float64) @ C.T.astype(np.float64) + (C.astype(np.float64) ** 2).sum(1)
    bound = score_error_bound(np.linalg.norm(X.astype(np.float64), axis=1),
                              np.linalg.norm(C.astype(np.float64), axis=1).max(), 64, np.float32)
    assert np.all(np.abs(scores - exact) <= bound[:, None])


def _brute(X, C):
    return ((X.astype(np.float64)[:, None] - C.astype(np.float64)[None]) ** 2).sum(-1)


def _assert_bounds_hold(X, C, bounds):
    full = np.sqrt(_brute(X, C))
    full[np.arange(len(X)), bounds["label"]] = np.inf
    assert np.all(bounds["lower"].astype(np.float64) <= full.min(1))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31), dtype=st.sampled_from([np.float32, np.float64]),
       integers=st.booleans(), slack_quantile=st.sampled_from([0.0, 0.5, 0.9, 1.0]))
def test_bounded_pass_gives_the_exact_labels_and_valid_bounds(shape, seed, dtype, integers, slack_quantile):
    n, d, k = shape
    rng = np.random.default_rng(seed)
    if integers:  # exact distances in both dtypes: real ties, decided by index
        X, C = rng.integers(-8, 8, (n, d)).astype(dtype), rng.integers(-8, 8, (k, d)).astype(dtype)
        moved = C + rng.integers(-1, 2, (k, d)) * (rng.random((k, 1)) < 0.3)
    else:
        X, C = rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((k, d)).astype(dtype)
        moved = C + 0.05 * rng.standard_normal((k, d)) * rng.exponential(1.0, (k, 1))
    moved = moved.astype(dtype)
    labels, sq, bounds = np.empty(n, np.int64), np.empty(n), new_bounds(n)
    bounded_nearest_centroids(X, C, labels, sq, bounds, None, 0.0, block_rows=7)
    np.testing.assert_array_equal(labels, _brute(X, C).argmin(1))
    np.testing.assert_array_equal(bounds["label"], labels)
    _assert_bounds_hold(X, C, bounds)

    shift = np.sqrt(((moved.astype(np.float64) - C.astype(np.float64)) ** 2).sum(1))
    slack = float(np.quantile(shift, slack_quantile))
    movers = np.flatnonzero(shift > slack)
    bounded_nearest_centroids(X, moved, labels, sq, bounds, movers, slack, block_rows=5)
    expected_labels, expected_sq = np.empty(n, np.int64), np.empty(n)
    nearest_centroids(X, moved, expected_labels, expected_sq)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(sq, expected_sq)
    _assert_bounds_hold(X, moved, bounds)


def test_bounded_pass_scores_settled_rows_against_the_movers_only():
    # Two far groups; only centroid 2 moves. The rows of group 0 are settled by their
    # bounds: a NaN planted in the centroid they never need (1) does not reach them.
    X = np.array([[0, 0], [0.1, 0], [10, 0], [10.2, 0]], dtype=np.float32)
    C = np.array([[0, 0], [20, 0], [10, 0]], dtype=np.float32)
    labels, sq, bounds = np.empty(4, np.int64), np.empty(4), new_bounds(4)
    bounded_nearest_centroids(X, C, labels, sq, bounds, None, 0.0)
    # Proven bounds: the distance to the second-nearest centroid less the GEMM's error.
    assert np.all(bounds["lower"] <= [10.0, 9.9, 10.0, 9.8])
    np.testing.assert_allclose(bounds["lower"], [10.0, 9.9, 10.0, 9.8], rtol=1e-4)
    moved = C.copy()
    moved[2] = [10.1, 0]
    moved[1] = np.nan
    bounded_nearest_centroids(X, moved, labels, sq, bounds, np.array([2]), 0.0)
    assert labels.tolist() == [0, 0, 2, 2]
    np.testing.assert_array_equal(sq, _brute(X, moved[[0, 2]])[np.arange(4), [0, 0, 1, 1]])
    # The old bounds still hold (slack 0); the mover at 10.1 is no nearer for rows 0 and 1.
    np.testing.assert_allclose(bounds["lower"], [10.0, 9.9, 10.0, 9.8], rtol=1e-4)
