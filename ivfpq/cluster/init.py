"""Initial centroids: "random", greedy "k-means++", or centroids the user gives."""

from __future__ import annotations

import numpy as np

from ..kernels.distances import sq_norms

__all__ = ["random_init", "kmeans_plusplus"]


def random_init(X, n_clusters, rng, sample_weight=None):
    """``n_clusters`` distinct rows of ``X``, drawn with probability proportional to weight."""
    p = None
    if sample_weight is not None and not np.all(sample_weight == sample_weight[0]):
        p = sample_weight / sample_weight.sum()
    rows = rng.choice(X.shape[0], size=n_clusters, replace=False, p=p)
    return X[rows].copy()


def _sq_dist_to(X, X_sq, points):
    """Squared distances (n, m) from every row of X to each of ``points``, clipped at 0."""
    d = X_sq[:, None] - 2.0 * (X @ points.T).astype(np.float64) + sq_norms(points).astype(np.float64)[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def kmeans_plusplus(X, n_clusters, rng, sample_weight=None, n_local_trials=None, block_rows=65536):
    """Greedy k-means++ (Arthur & Vassilvitskii), as scikit-learn runs it.

    Each new centroid is the best of ``n_local_trials`` candidates (default
    ``2 + int(ln k)``) drawn with probability proportional to weight times squared
    distance to the nearest centroid so far; "best" means lowest resulting potential.
    Cost is O(n * k * n_local_trials * d), done in BLAS blocks.
    """
    n = X.shape[0]
    weight = np.ones(n) if sample_weight is None else sample_weight
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, X.shape[1]), dtype=X.dtype)
    X_sq = sq_norms(X).astype(np.float64)

    first = rng.choice(n, p=weight / weight.sum())
    centers[0] = X[first]
    closest = np.empty(n, dtype=np.float64)
    for s in range(0, n, block_rows):
        closest[s:s + block_rows] = _sq_dist_to(X[s:s + block_rows], X_sq[s:s + block_rows], centers[:1])[:, 0]

    for c in range(1, n_clusters):
        cumulative = np.cumsum(weight * closest)
        total = cumulative[-1]
        if total <= 0:  # every point sits on a centroid already: fall back to unused rows
            candidates = rng.choice(n, size=n_local_trials)
        else:
            candidates = np.searchsorted(cumulative, rng.random(n_local_trials) * total, side="right")
            np.minimum(candidates, n - 1, out=candidates)
        cand_points = X[candidates]
        potentials = np.zeros(len(candidates))
        for s in range(0, n, block_rows):
            dist = _sq_dist_to(X[s:s + block_rows], X_sq[s:s + block_rows], cand_points)
            np.minimum(dist, closest[s:s + block_rows, None], out=dist)
            potentials += weight[s:s + block_rows] @ dist
        best = int(np.argmin(potentials))
        centers[c] = cand_points[best]
        for s in range(0, n, block_rows):
            dist = _sq_dist_to(X[s:s + block_rows], X_sq[s:s + block_rows], cand_points[best:best + 1])[:, 0]
            np.minimum(closest[s:s + block_rows], dist, out=closest[s:s + block_rows])
    return centers
