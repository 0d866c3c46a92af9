"""Greedy k-means++ kernels: fixed-point draws by hand, and the whole loop against a
plain NumPy reference that makes the same draws."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ivfpq.kernels.distances import _error_factors
from ivfpq.kernels.seeding import draw_rows, fixed_totals, greedy_kmeanspp_rows


def test_draw_rows_by_hand():
    # Cumulative sums 0, 1, 1, 4: targets 0, 2 and 3 fall on rows 1, 3 and 3.
    rows = np.empty(3, np.int64)
    assert draw_rows(np.array([0.0, 1.0, 0.0, 3.0]), np.ones(4), 1.0, np.array([0.0, 0.5, 0.99]), rows)
    assert rows.tolist() == [1, 3, 3]
    # Weights scale the shares: row 0 holds targets 0 and 1 of 0..2.
    assert draw_rows(np.array([1.0, 1.0]), np.array([2.0, 1.0]), 1.0, np.array([0.0, 0.6, 0.7]), rows)
    assert rows.tolist() == [0, 0, 1]
    assert not draw_rows(np.zeros(4), np.ones(4), 1.0, np.array([0.5]), rows)


def test_fixed_totals_by_hand():
    values = np.array([[0.25, 1.0], [0.5, 2.0]])
    assert fixed_totals(values, np.array([1.0, 2.0]), 4.0).tolist() == [5, 20]


def _reference(X, w, scale, uniforms, k, t):
    X64 = X.astype(np.float64)
    n = X.shape[0]

    def draw(values, draws):
        cumulative = np.cumsum(np.rint(w * values * scale).astype(np.int64))
        total = int(cumulative[-1])
        if total <= 0:
            return [min(int(u * n), n - 1) for u in draws]
        return [min(int(np.searchsorted(cumulative, min(int(u * total), total - 1), side="right")), n - 1)
                for u in draws]

    chosen = draw(np.ones(n), uniforms[:1])
    closest = ((X64 - X64[chosen[0]]) ** 2).sum(1)
    for c in range(1, k):
        rows = draw(closest, uniforms[1 + (c - 1) * t: 1 + c * t])
        trial = np.minimum(closest[:, None], ((X64[:, None] - X64[rows][None]) ** 2).sum(-1))
        potentials = [int(np.rint(w * trial[:, s] * scale).astype(np.int64).sum()) for s in range(t)]
        best = int(np.argmin(potentials))
        chosen.append(rows[best])
        closest = trial[:, best]
    return chosen


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 120), d=st.integers(1, 9), k=st.integers(1, 12), t=st.integers(1, 5),
       seed=st.integers(0, 2**31), dtype=st.sampled_from([np.float32, np.float64]),
       few_values=st.booleans())
def test_greedy_kmeanspp_rows_matches_a_numpy_reference(n, d, k, t, seed, dtype, few_values):
    rng = np.random.default_rng(seed)
    # Integer values: every distance is exact, so the reference's float64 sums agree
    # with the kernel's. Few distinct values make duplicates and a zero potential.
    X = rng.integers(0, 2 if few_values else 50, (n, d)).astype(dtype)
    w = rng.integers(1, 4, n).astype(np.float64)
    uniforms = rng.random(1 + max(0, k - 1) * t)
    scale = 2.0**20
    rows = greedy_kmeanspp_rows(X, w, scale, uniforms, k, t, *_error_factors(d, X.dtype))
    assert rows.tolist() == _reference(X, w, scale, uniforms, k, t)
