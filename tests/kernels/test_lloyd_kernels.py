"""Fixed-point Lloyd kernels: exact, order-free sums; the update; the scales."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivfpq.kernels.lloyd import (
    add_moved_points,
    feature_scales,
    fixed_moments,
    fixed_point_scale,
    fixed_total,
    updated_centers,
)


def _sums(X, w, before, after, k, scales, weight_scale):
    sums, counts = np.zeros((k, X.shape[1]), np.int64), np.zeros(k, np.int64)
    add_moved_points(X, w, before, after, scales, weight_scale, sums, counts)
    return sums, counts


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), d=st.integers(1, 9), k=st.integers(1, 12), seed=st.integers(0, 2**31))
def test_sums_do_not_depend_on_the_order_or_the_split_and_moves_are_exact(n, d, k, seed):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * rng.uniform(0.01, 100, d)).astype(np.float32)
    w = rng.uniform(0, 3, n)
    labels = rng.integers(0, k, n).astype(np.int64)
    none = np.full(n, -1, np.int64)
    scales = feature_scales(n, w.max(), np.abs(X).max(0))
    weight_scale = fixed_point_scale(n * w.max())
    sums, counts = _sums(X, w, none, labels, k, scales, weight_scale)
    # Any split and order of the rows gives the same integers.
    order, cut = rng.permutation(n), int(rng.integers(0, n + 1))
    a = _sums(X[order[:cut]], w[order[:cut]], none[:cut], labels[order[:cut]], k, scales, weight_scale)
    b = _sums(X[order[cut:]], w[order[cut:]], none[cut:], labels[order[cut:]], k, scales, weight_scale)
    np.testing.assert_array_equal(a[0] + b[0], sums)
    np.testing.assert_array_equal(a[1] + b[1], counts)
    # Moving points changes the sums exactly as recomputing them would.
    after = np.where(rng.random(n) < 0.3, rng.integers(0, k, n), labels)
    add_moved_points(X, w, labels, after, scales, weight_scale, sums, counts)
    expected = _sums(X, w, none, after, k, scales, weight_scale)
    np.testing.assert_array_equal(sums, expected[0])
    np.testing.assert_array_equal(counts, expected[1])
    # And they are the weighted sums, to far better than float32 precision.
    reference = np.zeros((k, d))
    np.add.at(reference, after, w[:, None] * X.astype(np.float64))
    np.testing.assert_allclose(sums / scales, reference, rtol=1e-9, atol=1e-9 * np.abs(X).max())


def test_scale_keeps_totals_below_2_to_the_61():
    for bound in (1e-200, 0.75, 1.0, 3.0, 1e6, 2.0**70):
        scale = fixed_point_scale(bound)
        assert bound * scale < 2.0**61 <= 2 * bound * scale
        assert scale == 2.0 ** np.round(np.log2(scale))
    assert fixed_point_scale(1e-320) == 2.0**1000
    assert fixed_point_scale(0.0) == 1.0


def test_fixed_total_and_moments():
    values = np.array([0.5, 1.25, 3.0])
    w = np.array([1.0, 2.0, 0.0])
    scale = fixed_point_scale(10.0)
    assert fixed_total(values, w, scale) / scale == 3.0
    X = np.array([[1.0, -2.0], [3.0, 4.0]], dtype=np.float32)
    first, second = np.zeros(2, np.int64), np.zeros(2, np.int64)
    s1, s2 = feature_scales(2, 1.0, [3.0, 4.0]), feature_scales(2, 1.0, [9.0, 16.0])
    fixed_moments(X, s1, s2, first, second)
    np.testing.assert_array_equal(first / s1, [4.0, 2.0])
    np.testing.assert_array_equal(second / s2, [10.0, 20.0])


def test_update_moves_filled_centroids_to_their_mean_and_keeps_empty_ones():
    centers = np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 9.0]], dtype=np.float32)
    scales, weight_scale = np.array([4.0, 4.0]), 2.0
    sums = np.array([[8, 16], [0, 0], [4, 4]], dtype=np.int64)  # /4: [2, 4], [0, 0], [1, 1]
    counts = np.array([4, 0, 2], dtype=np.int64)  # /2: 2, 0, 1
    out, shift = updated_centers(centers, sums, counts, scales, weight_scale)
    np.testing.assert_array_equal(out, [[1.0, 2.0], [5.0, 5.0], [1.0, 1.0]])
    assert shift == pytest.approx(5.0 + 128.0)
    unit, _ = updated_centers(centers, sums, counts, scales, weight_scale, spherical=True)
    np.testing.assert_allclose(np.linalg.norm(unit[[0, 2]], axis=1), 1.0, rtol=1e-6)
