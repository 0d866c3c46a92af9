"""Assigners: how the Lloyd loop finds each point's nearest centroid.

The loop in :mod:`ivfpq.cluster.kmeans` only knows this protocol::

    assigner.prepare(centroids)          # once per iteration
    state = assigner.new_state(n)        # per-point memory, or None
    assigner.assign(X, state, labels_out, sq_dist_out)

``sq_dist_out`` receives the squared distance (float64) from each point to the
centroid it was given, as accurately as the assigner computes it: it ranks points
(empty-cluster repair) but the loop takes the inertia from exact cluster sums. ``state``
belongs to the rows it was made for; an assigner may read and update it, and a
block of rows carries the matching slice of it (threads, Dask workers).
"""

from __future__ import annotations

import numpy as np

from ..kernels.distances import augmented_centroids, default_block_rows, nearest_centroids

__all__ = ["ExactAssigner"]


class ExactAssigner:
    """Brute-force assignment: BLAS distance blocks with a fused argmin. Cost n*k*d."""

    name = "lloyd"

    def __init__(self, block_rows=None):
        self.block_rows = block_rows
        self.centroids = None
        self._augmented = None

    def prepare(self, centroids):
        self.centroids = centroids
        self._augmented = augmented_centroids(centroids)

    def new_state(self, n_samples):
        return None

    def assign(self, X, state, labels_out, sq_dist_out):
        block_rows = self.block_rows or default_block_rows(self.centroids.shape[0], X.dtype.itemsize)
        nearest_centroids(X, self.centroids, labels_out, sq_dist_out, block_rows, self._augmented)
        return labels_out, sq_dist_out
