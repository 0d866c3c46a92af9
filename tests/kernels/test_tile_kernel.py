"""Kernels of ivfpq.kernels.tile against numpy and scipy."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ivfpq.kernels import tile as kernels

SETTINGS = settings(max_examples=30, deadline=None)


@SETTINGS
@given(n=st.integers(1, 300), d=st.integers(1, 4), block=st.integers(1, 64),
       offset=st.sampled_from([0.0, 1e4, -1e6]), seed=st.integers(0, 2**32 - 1))
def test_column_moments_match_numpy_for_any_blocking(n, d, block, offset, seed):
    rng = np.random.default_rng(seed)
    X = rng.lognormal(0.0, 1.0, size=(n, d)) * rng.choice([-1.0, 1.0], size=(n, d)) + offset
    count, mean, m2, n_pos, log_mean, log_m2 = kernels.column_moments(X, True, block_rows=block)
    assert np.all(count == n)
    np.testing.assert_allclose(mean, X.mean(0), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(m2 / n, X.var(0), rtol=1e-7, atol=1e-9)
    positive = X > 0
    assert np.array_equal(n_pos, positive.sum(0))
    for j in range(d):
        logs = np.log(X[positive[:, j], j])
        if logs.size:
            np.testing.assert_allclose(log_mean[j], logs.mean(), rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(log_m2[j], ((logs - logs.mean()) ** 2).sum(), rtol=1e-7, atol=1e-9)


@SETTINGS
@given(na=st.integers(1, 80), nb=st.integers(1, 80), ties=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_two_sample_ks_matches_scipy(na, nb, ties, seed):
    rng = np.random.default_rng(seed)
    draw = (lambda n: rng.integers(0, 5, n).astype(np.float64)) if ties else rng.standard_normal
    a, b = np.sort(draw(na)), np.sort(draw(nb))
    np.testing.assert_allclose(kernels._ks_two_sample(a, b), stats.ks_2samp(a, b).statistic, rtol=1e-12)


@SETTINGS
@given(m=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
def test_one_sample_ks_matches_scipy(m, seed):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.normal(1.0, 2.0, m))
    expected = stats.kstest(x, stats.norm(0.5, 1.5).cdf).statistic
    np.testing.assert_allclose(kernels._ks_parametric(x, 0.5, 1.5, False), expected, rtol=1e-9)
    y = np.sort(np.concatenate([rng.lognormal(0.2, 0.7, m), [0.0, -1.0]]))
    expected = stats.kstest(y, stats.lognorm(0.7, scale=np.exp(0.2)).cdf).statistic
    np.testing.assert_allclose(kernels._ks_parametric(y, 0.2, 0.7, True), expected, rtol=1e-9)


def test_merge_sorted_columns():
    rng = np.random.default_rng(0)
    a = np.sort(rng.integers(0, 9, (3, 17)).astype(np.float32), axis=1)
    b = np.sort(rng.integers(0, 9, (3, 5)).astype(np.float32), axis=1)
    out = np.empty((3, 22), dtype=np.float32)
    kernels.merge_sorted_columns(a, b, out)
    assert np.array_equal(out, np.sort(np.concatenate([a, b], axis=1), axis=1))
    sample = rng.standard_normal((40, 3)).astype(np.float32)
    out = np.empty((3, 40), dtype=np.float32)
    kernels.sort_columns(sample, out)
    assert np.array_equal(out, np.sort(sample.T, axis=1))
