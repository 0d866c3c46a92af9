"""Squared-L2 nearest centroids: a BLAS screen, then an exact float64 decision.

The GEMM ``[x, 1] @ [-2 C^T; |c|^2]`` scores every centroid of a block of rows at
BLAS speed, with ``|c|^2`` folded into the product so that no extra pass over the
block is needed. Its rounding depends on how the GEMM splits the work, which depends
on the block's shape and the thread count, so a point whose two nearest centroids
are within that rounding would get a label that depends on how the rows were
blocked. Each row therefore carries a proven bound on the error of its scores
(:func:`score_error_bound`), and every centroid whose score is within twice that
bound of the best is compared again by its exact float64 distance
(:func:`exact_sq_distance`). The label is then the exact float64 nearest centroid
(ties to the lower index) whatever the blocking, the BLAS or the thread count, and
the distance returned is exact too.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "augmented_centroids",
    "default_block_rows",
    "exact_sq_distance",
    "exact_sq_distances",
    "nearest_centroids",
    "score_error_bound",
    "sq_norms",
]


def default_block_rows(n_centroids: int, itemsize: int = 4) -> int:
    """Rows per block of scores: about 8 MB of them while that leaves at least 1,024
    rows, then 1,024 rows up to a 64 MB block (small GEMMs run below BLAS's peak)."""
    row_bytes = max(1, n_centroids * itemsize)
    cache_sized = min(2048, (8 << 20) // row_bytes)
    gemm_sized = min(1024, (64 << 20) // row_bytes)
    return int(max(64, cache_sized, gemm_sized))


def sq_norms(A: np.ndarray) -> np.ndarray:
    """Row squared norms, accumulated in float64, returned in ``A``'s dtype."""
    return np.einsum("ij,ij->i", A, A, dtype=np.float64).astype(A.dtype, copy=False)


@njit(cache=True, fastmath=True)
def exact_sq_distance(X, i, C, c):
    """Squared L2 between ``X[i]`` and ``C[c]``, accumulated in float64.

    The one definition of an exact distance in the package: every comparison that
    decides a label goes through it, so they all agree. ``fastmath`` lets the sum run
    in SIMD lanes; the order of the lanes depends only on the dimension, so a pair
    always gets the same value.
    """
    acc = 0.0
    for j in range(X.shape[1]):
        diff = np.float64(X[i, j]) - np.float64(C[c, j])
        acc += diff * diff
    return acc


@njit(parallel=True, cache=True)
def exact_sq_distances(X, C, labels, out):
    """``out[i]`` = exact squared distance from ``X[i]`` to ``C[labels[i]]``."""
    for i in prange(X.shape[0]):
        out[i] = exact_sq_distance(X, i, C, labels[i])


def augmented_centroids(C, C_sq_norms=None):
    """The (d+1, k) matrix ``[-2 C^T; |c|^2]`` that :func:`nearest_centroids` multiplies by."""
    k, d = C.shape
    M = np.empty((d + 1, k), dtype=C.dtype)
    M[:d] = C.T
    M[:d] *= C.dtype.type(-2)
    M[d] = sq_norms(C) if C_sq_norms is None else C_sq_norms
    return M


def _error_factors(n_features, dtype):
    """``(gamma, u, gamma64)`` of :func:`score_error_bound`."""
    u = float(np.finfo(dtype).eps) / 2.0
    m = n_features + 3
    return m * u / (1.0 - m * u), u, m * 2.0**-53 / (1.0 - m * 2.0**-53)


@njit(cache=True, inline="always")
def _bound(x_norm, c, gamma, u, gamma64):
    return 2.0 * (gamma * (2.0 * x_norm * c + c * c) + 2.0 * u * c * c + gamma64 * (x_norm + c) ** 2)


def score_error_bound(x_norms, c_max_norm, n_features, dtype):
    """Per row, a bound on |score - exact|, where score is a GEMM entry
    ``|c|^2 - 2 x.c`` in ``dtype`` and exact its float64 value ``|x - c|^2 - |x|^2``.

    A dot product of length ``m`` in floating point, in any order and with or without
    fused multiply-adds, is within ``gamma_m * sum |a_j b_j|`` of the real one, with
    ``gamma_m = m u / (1 - m u)`` (``u`` the unit roundoff); here ``m = d + 1`` and
    ``sum |a_j b_j| <= 2 |x| |c| + |c|^2``. Rounding ``|c|^2`` to ``dtype`` and a
    further addition add ``2 u |c|^2``-ish terms, and the float64 reference has a
    (much smaller) error of its own; 2x margin on all of it.
    """
    gamma, u, gamma64 = _error_factors(n_features, dtype)
    x = np.asarray(x_norms, dtype=np.float64)
    c = float(c_max_norm)
    return 2.0 * (gamma * (2.0 * x * c + c * c) + 2.0 * u * c * c + gamma64 * (x + c) ** 2)


@njit(cache=True, fastmath=True)
def settle_nearest(scores, X, start, C, c_max_norm, gamma, u, gamma64, labels, sq_out):
    """Turn a screened argmin into the exact one, for rows ``start:start + m`` of ``X``.

    ``scores`` (m, k) are the GEMM scores of those rows, ``labels[r]`` the argmin of
    row ``r``. Every centroid whose score is within twice the row's error bound
    (:func:`score_error_bound`) of the best is compared by exact distance (ties to
    the lower index). ``sq_out[r]`` gets the exact squared distance to the winner.
    ``fastmath`` only lets the norm and the count run in SIMD lanes: the bound keeps a
    2x margin, and the label is the exact nearest whatever candidates the bound admits.
    """
    m, k = scores.shape
    for r in range(m):
        i = start + r
        norm = 0.0
        for j in range(X.shape[1]):
            norm += np.float64(X[i, j]) * np.float64(X[i, j])
        best = labels[r]
        limit = np.float64(scores[r, best]) + 2.0 * _bound(np.sqrt(norm), c_max_norm, gamma, u, gamma64)
        # Compared in the scores' own type, the limit rounded up so that no candidate
        # within it is missed.
        limit_s = scores.dtype.type(limit)
        if np.float64(limit_s) < limit:
            limit_s = np.nextafter(limit_s, scores.dtype.type(np.inf))
        close = 0
        for t in range(k):
            if scores[r, t] <= limit_s:
                close += 1
        best_d = exact_sq_distance(X, i, C, best)
        if close > 1:
            for t in range(k):
                if t != best and scores[r, t] <= limit_s:
                    dist = exact_sq_distance(X, i, C, t)
                    if dist < best_d or (dist == best_d and t < best):
                        best, best_d = t, dist
            labels[r] = best
        sq_out[r] = best_d


def nearest_centroids(X, C, labels_out, sq_dist_out, block_rows=None, augmented=None):
    """The exact nearest centroid of every row of ``X``, and its squared distance.

    ``labels_out[i]`` is the index of the centroid at the smallest exact float64
    squared distance from ``X[i]`` (ties to the lowest index), ``sq_dist_out[i]`` that
    distance. The result does not depend on ``block_rows``, on the BLAS or on the
    thread count (see the module). Memory is O(block_rows * k); the n x k matrix is
    never built. ``X`` and ``C`` must share a float dtype and be C-contiguous; pass
    ``augmented`` (from :func:`augmented_centroids`) to reuse it.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [2.9, 0.0]], dtype=np.float32)
    >>> C = np.array([[0.0, 1.0], [3.0, 0.0]], dtype=np.float32)
    >>> labels, sq = np.empty(2, np.int64), np.empty(2)
    >>> nearest_centroids(X, C, labels, sq)
    >>> labels.tolist(), np.round(sq, 6).tolist()
    ([0, 1], [1.0, 0.01])
    """
    n, d = X.shape
    k = C.shape[0]
    if n == 0:
        return
    if block_rows is None:
        block_rows = default_block_rows(k, X.dtype.itemsize)
    block_rows = max(1, min(block_rows, n))
    M = augmented_centroids(C) if augmented is None else augmented
    c_max_norm = float(np.sqrt(np.max(np.einsum("ij,ij->i", C, C, dtype=np.float64))))
    factors = _error_factors(d, X.dtype)
    step = max(8, (1 << 20) // max(1, k * X.dtype.itemsize))
    rows = np.empty((block_rows, d + 1), dtype=X.dtype)
    rows[:, d] = 1
    block = np.empty((block_rows, k), dtype=X.dtype)
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        m = stop - start
        rows[:m, :d] = X[start:stop]
        np.matmul(rows[:m], M, out=block[:m])
        # Argmin and settling in slices of about 1 MB of scores, so that the second pass
        # over a slice finds it still in cache.
        for lo in range(0, m, step):
            hi = min(m, lo + step)
            labels = labels_out[start + lo:start + hi]
            np.argmin(block[lo:hi], axis=1, out=labels)
            settle_nearest(block[lo:hi], X, start + lo, C, c_max_norm, *factors, labels,
                           sq_dist_out[start + lo:start + hi])
