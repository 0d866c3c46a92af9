"""Seeded synthetic data, and loaders for folders of real vectors."""

from __future__ import annotations

import numpy as np

from ._validation import check_positive_float, check_positive_int, check_random_state

__all__ = ["make_blobs"]


def make_blobs(n_samples=1000, n_features=2, centers=5, cluster_std=1.0, spread=10.0,
               random_state=0, dtype=np.float32):
    """Gaussian blobs: ``centers`` isotropic clusters of near-equal size.

    Parameters
    ----------
    n_samples, n_features, centers : int
        Number of points, dimensions and blobs.
    cluster_std : float, default=1.0
        Standard deviation of each blob.
    spread : float, default=10.0
        Blob centres are drawn uniformly from ``[-spread, spread]`` per dimension.
    random_state : int, Generator or None, default=0
    dtype : numpy dtype, default=float32

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int64
        The blob each point was drawn from.

    Examples
    --------
    >>> from ivfpq.datasets import make_blobs
    >>> X, y = make_blobs(300, 2, centers=3, random_state=0)
    >>> X.shape, int(y.max())
    ((300, 2), 2)
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    n_features = check_positive_int(n_features, "n_features")
    centers = check_positive_int(centers, "centers")
    cluster_std = check_positive_float(cluster_std, "cluster_std", allow_zero=True)
    spread = check_positive_float(spread, "spread", allow_zero=True)
    rng = check_random_state(random_state)
    means = rng.uniform(-spread, spread, size=(centers, n_features))
    y = np.arange(n_samples) % centers
    rng.shuffle(y)
    X = means[y] + cluster_std * rng.standard_normal((n_samples, n_features))
    return X.astype(dtype), y.astype(np.int64)
