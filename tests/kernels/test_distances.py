"""Property tests of the exact-assignment and update kernels against plain NumPy."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ivfpq.kernels.distances import nearest_centroids
from ivfpq.kernels.lloyd import cluster_sums

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


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 200), d=st.integers(1, 9), k=st.integers(1, 12), seed=st.integers(0, 2**31))
def test_cluster_sums_match_numpy(n, d, k, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    labels = rng.integers(0, k, n).astype(np.int64)
    w = rng.uniform(0, 2, n)
    sums, counts = cluster_sums(X, labels, w, k)
    expected_sums = np.zeros((k, d))
    np.add.at(expected_sums, labels, w[:, None] * X.astype(np.float64))
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(counts, np.bincount(labels, w, minlength=k), rtol=1e-12, atol=1e-12)
    # accumulating over two blocks of rows gives the same as one pass
    half = n // 2
    s2, c2 = cluster_sums(X[:half], labels[:half], w[:half], k)
    cluster_sums(X[half:], labels[half:], w[half:], k, s2, c2)
    np.testing.assert_array_equal(s2, sums)
    np.testing.assert_array_equal(c2, counts)
