"""Assigners: how the Lloyd loop finds each point's nearest centroid.

The loop in :mod:`ivfpq.cluster.kmeans` only knows this protocol::

    assigner.prepare(centroids)          # once per iteration
    state = assigner.new_state(n)        # per-point memory, or None
    assigner.assign(X, state, labels_out, sq_dist_out)

``sq_dist_out`` must hold the exact squared distance (float64) from each point to
the centroid it was given, so that inertia is the true cost of the labels. ``state``
belongs to the rows it was made for; an assigner may read and update it, and a
block of rows carries the matching slice of it (threads, Dask workers).
"""

from __future__ import annotations

import numpy as np

from ..kernels.distances import default_block_rows, nearest_centroids, sq_norms

__all__ = ["ExactAssigner"]


class ExactAssigner:
    """Brute-force assignment: BLAS distance blocks with a fused argmin. Cost n*k*d."""

    name = "lloyd"

    def __init__(self, block_rows=None):
        self.block_rows = block_rows
        self.centroids = None
        self._c_sq = None

    def prepare(self, centroids):
        self.centroids = centroids
        self._c_sq = sq_norms(centroids)

    def new_state(self, n_samples):
        return None

    def assign(self, X, state, labels_out, sq_dist_out):
        block_rows = self.block_rows or default_block_rows(self.centroids.shape[0], X.dtype.itemsize)
        nearest_centroids(X, self.centroids, labels_out, sq_dist_out, block_rows, self._c_sq)
        return labels_out, sq_dist_out
