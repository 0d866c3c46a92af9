"""Lloyd's update step: weighted per-cluster sums and counts, in float64.

One pass in row order, on one thread. Measured on the 2-core reference machine
(n=100k, d=128, k=1,000), this takes ~10 ms, while a parallel version (counting
sort by label, then one thread per cluster) took ~20-30 ms: it runs right after a
multi-threaded BLAS call whose spinning threads hold the cores. Row order also
makes the sums independent of the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["cluster_sums", "move_points", "updated_centers", "weighted_sq_norm_total"]


@njit(cache=True)
def _accumulate(X, weights, labels, sums, counts):
    n, d = X.shape
    for i in range(n):
        c = labels[i]
        w = weights[i]
        counts[c] += w
        for j in range(d):
            sums[c, j] += w * np.float64(X[i, j])


def cluster_sums(X, labels, weights, n_clusters, sums=None, counts=None):
    """Add the weighted per-cluster sums (k, d) and weights (k,) of ``X`` in float64.

    Pass ``sums`` and ``counts`` to accumulate over several blocks of rows.
    """
    if sums is None:
        sums = np.zeros((n_clusters, X.shape[1]), dtype=np.float64)
    if counts is None:
        counts = np.zeros(n_clusters, dtype=np.float64)
    _accumulate(X, weights, labels, sums, counts)
    return sums, counts


@njit(cache=True)
def _move(X, before, after, sums, counts):
    d = X.shape[1]
    for i in range(X.shape[0]):
        old = before[i]
        new = after[i]
        if old == new:
            continue
        if old >= 0:
            counts[old] -= 1.0
            for j in range(d):
                sums[old, j] -= np.float64(X[i, j])
        counts[new] += 1.0
        for j in range(d):
            sums[new, j] += np.float64(X[i, j])


def move_points(X, before, after, sums, counts):
    """Update unit-weight cluster ``sums`` and ``counts`` in place for the rows whose
    label changed from ``before`` (-1: none) to ``after``, in row order.

    Late Lloyd iterations move a few percent of the points; this touches only those
    instead of all of them. Counts stay exact integers, so an emptied cluster has a
    count of exactly 0. Only for unit weights: with other weights, repeated adds and
    subtracts could leave a count a rounding error away from 0.
    """
    _move(X, before, after, sums, counts)
    return sums, counts


_NORM_BLOCK = 4096


@njit(parallel=True, cache=True, fastmath=True)
def _block_sq_norms(X, weights, out):
    n, d = X.shape
    for b in prange(out.shape[0]):
        acc = 0.0
        for i in range(b * _NORM_BLOCK, min(n, (b + 1) * _NORM_BLOCK)):
            row = 0.0
            for j in range(d):
                value = np.float64(X[i, j])
                row += value * value
            acc += weights[i] * row
        out[b] = acc


def weighted_sq_norm_total(X, weights):
    """sum_i w_i |x_i|^2 in float64: fixed blocks of rows in parallel, then their sum in
    block order, so the value does not depend on the thread count."""
    partial = np.zeros((X.shape[0] + _NORM_BLOCK - 1) // _NORM_BLOCK, dtype=np.float64)
    _block_sq_norms(X, np.asarray(weights, dtype=np.float64), partial)
    return float(partial.sum())


@njit(cache=True)
def _update(centers, sums, counts, spherical, out):
    k, d = centers.shape
    shift = 0.0
    mean = np.empty(d, dtype=np.float64)
    for c in range(k):
        if counts[c] > 0:
            for j in range(d):
                mean[j] = sums[c, j] / counts[c]
        else:  # a centroid without points stays where it is
            for j in range(d):
                mean[j] = np.float64(centers[c, j])
        if spherical:
            norm = 0.0
            for j in range(d):
                norm += mean[j] * mean[j]
            if norm > 0:
                norm = np.sqrt(norm)
                for j in range(d):
                    mean[j] /= norm
        for j in range(d):
            out[c, j] = mean[j]
            diff = np.float64(out[c, j]) - np.float64(centers[c, j])
            shift += diff * diff
    return shift


def updated_centers(centers, sums, counts, spherical=False):
    """Lloyd's update: each centroid with points moves to their weighted mean (unit
    norm with ``spherical``); one without points stays where it is.

    Returns the new centroids in ``centers``' dtype and the summed squared shift
    (float64, from the rounded new centroids). One pass, no (k, d) temporaries: at
    k=50,000, d=128 the NumPy expression it replaces spent 0.3 s on them.
    """
    out = np.empty_like(centers)
    shift = _update(centers, sums, counts, bool(spherical), out)
    return out, float(shift)
