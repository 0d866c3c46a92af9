"""Fixtures shared by the whole suite."""

import numpy as np
import pytest

from ._data import SHARED_DATA, gaussian_mixture, near_tie_mixture


@pytest.fixture(scope="session")
def mixture():
    """A 3,000 x 8 float32 mixture of 6 well-separated components."""
    return gaussian_mixture(3000, 8, 6, seed=0, spread=6.0)


@pytest.fixture(scope="session")
def near_ties():
    """A 6,000 x 32 mixture on a half-integer grid (many near and exact ties)."""
    return near_tie_mixture()


@pytest.fixture(scope="session")
def sift10k():
    """The real SIFT10K base (10,000 x 128 float32), or a skip where ../shared is absent."""
    path = SHARED_DATA / "sift10k" / "base.npy"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return np.load(path)
