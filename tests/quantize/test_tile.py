"""TileEncoder: the CDF rule, clamping, out-of-support values, streaming fits, "auto"."""

import numpy as np
import pytest
from scipy.special import ndtr, ndtri

from ivfpq import TileEncoder


def test_normal_codes_are_floor_k_times_cdf_and_decode_at_bin_midpoints():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((4000, 3)) * [1, 5, 0.1] + [0, 10, -3]).astype(np.float32)
    tile = TileEncoder("normal", nbits=6).fit(X)
    K = 64
    mean, std = X.astype(np.float64).mean(0), X.astype(np.float64).std(0)
    np.testing.assert_allclose(tile.mean_, mean, rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(tile.var_), std, rtol=1e-9)
    probe = rng.standard_normal((2000, 3)) * std * 1.5 + mean
    probe = probe.astype(np.float32)
    scaled = K * ndtr((probe.astype(np.float64) - mean) / std)
    expected = np.clip(np.floor(scaled), 0, K - 1)
    near_edge = np.abs(scaled - np.round(scaled)) < 1e-6
    codes = tile.encode(probe)
    assert np.array_equal(codes[~near_edge], expected[~near_edge])
    mid = mean + std * ndtri((np.arange(K) + 0.5) / K)[:, None]
    np.testing.assert_allclose(tile.decode(np.tile(np.arange(K, dtype=np.uint8)[:, None], 3)),
                               mid.astype(np.float32), rtol=1e-6)
    assert np.array_equal(tile.encode(tile.decode(codes)), codes)


@pytest.mark.parametrize("distribution", ["normal", "lognormal", "empirical", "auto"])
def test_codes_are_clamped_at_both_ends(distribution):
    X = np.random.default_rng(1).lognormal(0, 1, size=(500, 2)).astype(np.float32)
    tile = TileEncoder(distribution, nbits=8, random_state=0).fit(X)
    codes = tile.encode(np.array([[-1e30, 1e30], [np.float32(3e38), -3e38]], dtype=np.float32))
    assert codes.tolist() == [[0, 255], [255, 0]]
    assert tile.codebooks_.shape == (2, 256, 1)


def test_lognormal_rule_for_values_outside_the_support():
    rng = np.random.default_rng(2)
    X = rng.lognormal(1.0, 0.5, size=(3000, 2))
    X[:300, 0] = 0.0            # zeros and negatives are outside the support
    X[300:400, 0] = -2.0
    tile = TileEncoder("lognormal", nbits=8).fit(X)
    assert tile.n_positive_.tolist() == [2600, 3000]
    positive = X[400:, 0]
    np.testing.assert_allclose(tile.log_mean_[0], np.log(positive).mean(), rtol=1e-10)
    np.testing.assert_allclose(tile.log_var_[0], np.log(positive).var(), rtol=1e-9)
    codes = tile.encode(np.array([[0.0, 1.0], [-5.0, 1.0], [1e-30, 1.0]]))
    assert codes[:, 0].tolist() == [0, 0, 0]
    lowest = np.exp(tile.log_mean_[0] + np.sqrt(tile.log_var_[0]) * ndtri(0.5 / 256))
    assert tile.decode(codes)[0, 0] == pytest.approx(lowest, rel=1e-6)
    with pytest.raises(ValueError, match=r"dimension\(s\) \[1\] have none"):
        TileEncoder("lognormal").fit(np.c_[X[:, 0], -np.abs(X[:, 1])])


def test_empirical_atoms_decode_to_the_atom():
    rng = np.random.default_rng(3)
    X = np.where(rng.random((5000, 1)) < 0.5, 0.0, rng.exponential(2.0, (5000, 1))).astype(np.float32)
    tile = TileEncoder("empirical", nbits=8, random_state=0).fit(X)
    code = tile.encode([[0.0]])[0, 0]
    assert 0 < code < 128 and tile.decode([[code]])[0, 0] == 0.0
    assert tile.decode(tile.encode(X))[X[:, 0] == 0].max() == 0.0


def test_partial_fit_streams_the_same_moments_as_one_fit():
    rng = np.random.default_rng(4)
    X = rng.lognormal(3.0, 0.2, size=(10_000, 4)) + 1e6   # large offset: naive sums lose digits
    whole = TileEncoder("normal").fit(X)
    stream = TileEncoder("normal")
    for part in np.array_split(X, 7):
        stream.partial_fit(part)
    assert stream.n_samples_seen_ == 10_000
    np.testing.assert_allclose(stream.mean_, X.mean(0), rtol=1e-14)
    np.testing.assert_allclose(stream.var_, X.var(0), rtol=1e-8)
    np.testing.assert_allclose(stream.var_, whole.var_, rtol=1e-9)
    np.testing.assert_allclose(stream.edges_, whole.edges_, rtol=1e-12)


def test_reservoir_keeps_a_uniform_sample_of_every_batch():
    X = np.arange(20_000, dtype=np.float32)[:, None] * [1, -1]
    tile = TileEncoder("empirical", sample_size=2000, random_state=0)
    for part in np.array_split(X, 10):
        tile.partial_fit(part)
    sample = tile.sample_[:, 0]
    assert tile.sample_.shape == (2000, 2) and len(np.unique(sample)) == 2000
    assert np.array_equal(tile.sample_[:, 1], -sample)   # whole rows
    counts = np.histogram(sample, bins=10, range=(0, 20_000))[0]
    assert counts.min() > 140 and counts.max() < 260      # every batch represented
    with pytest.raises(ValueError, match="changed from 'empirical' to 'normal'"):
        tile.set_params(distribution="normal").partial_fit(X[:10])


def test_auto_picks_the_distribution_that_fits():
    rng = np.random.default_rng(5)
    n = 20_000
    X = np.c_[
        rng.normal(3, 2, n),                                          # normal
        rng.lognormal(0.5, 0.8, n),                                   # lognormal
        np.where(rng.random(n) < 0.5, rng.normal(-4, 1, n), rng.normal(4, 1, n)),  # bimodal
        rng.integers(0, 5, n),                                        # a few atoms
    ].astype(np.float32)
    tile = TileEncoder("auto", random_state=0).fit(X)
    assert tile.distributions_.tolist() == ["normal", "lognormal", "empirical", "empirical"]
    assert tile.ks_.shape == (4, 3) and np.isfinite(tile.ks_).all()


@pytest.mark.parametrize("params, error, message", [
    (dict(nbits=0), ValueError, r"nbits must be an integer in \[1, 16\], got 0"),
    (dict(nbits=17), ValueError, r"nbits must be an integer in \[1, 16\], got 17"),
    (dict(distribution="uniform"), ValueError, "distribution must be one of"),
    (dict(sample_size=1), ValueError, "sample_size must be an integer >= 2"),
])
def test_bad_parameters(params, error, message):
    with pytest.raises(error, match=message):
        TileEncoder(**params).fit(np.ones((10, 2)))


def test_needs_two_rows_and_matching_features():
    with pytest.raises(ValueError, match="at least 2 samples"):
        TileEncoder().fit(np.ones((1, 3)))
    tile = TileEncoder("normal").fit(np.random.default_rng(0).random((10, 3)))
    with pytest.raises(ValueError, match="X has 2 features"):
        tile.encode(np.ones((1, 2)))
    with pytest.raises(ValueError, match="X has 2 features"):
        tile.partial_fit(np.ones((1, 2)))
