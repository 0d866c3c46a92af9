"""Lloyd's update step: weighted per-cluster sums and counts.

Results do not depend on the thread count: points are bucketed by label with a
counting sort, then each cluster's sum is accumulated by one thread, in row order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["cluster_sums", "bucket_by_label"]


@njit(cache=True)
def bucket_by_label(labels, n_clusters):
    """Counting sort: (offsets of length k+1, row ids grouped by label, in row order)."""
    n = labels.shape[0]
    offsets = np.zeros(n_clusters + 1, dtype=np.int64)
    for i in range(n):
        offsets[labels[i] + 1] += 1
    for c in range(n_clusters):
        offsets[c + 1] += offsets[c]
    cursor = offsets[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        c = labels[i]
        order[cursor[c]] = i
        cursor[c] += 1
    return offsets, order


@njit(parallel=True, cache=True)
def _sums_from_buckets(X, weights, offsets, order, sums, counts):
    k = offsets.shape[0] - 1
    d = X.shape[1]
    for c in prange(k):
        w_total = 0.0
        for p in range(offsets[c], offsets[c + 1]):
            i = order[p]
            w = weights[i]
            w_total += w
            for j in range(d):
                sums[c, j] += w * np.float64(X[i, j])
        counts[c] += w_total


def cluster_sums(X, labels, weights, n_clusters, sums=None, counts=None):
    """Add the weighted per-cluster sums (k, d) and weights (k,) of ``X`` in float64.

    Pass ``sums`` and ``counts`` to accumulate over several blocks.
    """
    if sums is None:
        sums = np.zeros((n_clusters, X.shape[1]), dtype=np.float64)
    if counts is None:
        counts = np.zeros(n_clusters, dtype=np.float64)
    offsets, order = bucket_by_label(labels, n_clusters)
    _sums_from_buckets(X, weights, offsets, order, sums, counts)
    return sums, counts
