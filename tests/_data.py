"""Data shared by the tests: seeded Gaussian mixtures and the real sets in ../shared/data."""

from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def gaussian_mixture(n, d, centers, seed=0, spread=4.0, std=1.0, dtype=np.float32):
    """``n`` points around ``centers`` means drawn from N(0, spread^2), each with N(0, std^2) noise."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centers, d)) * spread
    return (means[rng.integers(0, centers, n)] + std * rng.standard_normal((n, d))).astype(dtype)


def near_tie_mixture(n=6000, d=32, centers=20, seed=0):
    """A mixture rounded to a coarse grid, so that many points are exactly or almost
    equidistant from two centroids: the case where GEMM rounding decides labels."""
    X = gaussian_mixture(n, d, centers, seed, spread=3.0)
    return np.round(X * 2) / 2
