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
    "BOUNDS_DTYPE",
    "bounded_nearest_centroids",
    "bounds_of",
    "new_bounds",
    "default_block_rows",
    "exact_sq_distance",
    "exact_sq_distances",
    "max_norm",
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


def max_norm(C: np.ndarray) -> float:
    """The largest row norm of ``C``, accumulated in float64 (for the error bounds)."""
    return float(np.sqrt(np.max(np.einsum("ij,ij->i", C, C, dtype=np.float64))))


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


#: Relative margin taken off every proven lower bound on a distance, for the rounding of
#: the square root and of the float64 sums behind it.
LOWER_MARGIN = 1e-12


@njit(cache=True, inline="always")
def _lower_distance(sq_lower):
    """A lower bound on a distance from a lower bound on its square."""
    return np.sqrt(max(sq_lower, 0.0)) * (1.0 - LOWER_MARGIN)


@njit(cache=True, fastmath=True, nogil=True)
def settle_nearest(scores, X, start, C, c_max_norm, gamma, u, gamma64, labels, sq_out, second, lower_out):
    """Turn a screened argmin into the exact one, for rows ``start:start + m`` of ``X``.

    ``scores`` (m, k) are the GEMM scores of those rows, ``labels[r]`` the argmin of
    row ``r`` and ``second[r]`` the least score but the argmin's. Where that is within
    twice the row's error bound (:func:`score_error_bound`) of the best, every centroid
    within it is compared by exact distance (ties to the lower index). ``sq_out[r]``
    gets the exact squared distance to the winner and, unless ``lower_out`` is empty,
    ``lower_out[r]`` a proven lower bound on the distance (not squared) from the row to
    every other centroid: the runner-up's score less its error bound. ``fastmath`` only
    lets the norm run in SIMD lanes: the bound keeps a 2x margin, and the label is the
    exact nearest whatever candidates the bound admits.
    """
    m, k = scores.shape
    for r in range(m):
        i = start + r
        norm = 0.0
        for j in range(X.shape[1]):
            norm += np.float64(X[i, j]) * np.float64(X[i, j])
        best = first = labels[r]
        err = _bound(np.sqrt(norm), c_max_norm, gamma, u, gamma64)
        limit = np.float64(scores[r, best]) + 2.0 * err
        # Compared in the scores' own type, the limit rounded up so that no candidate
        # within it is missed.
        limit_s = scores.dtype.type(limit)
        if np.float64(limit_s) < limit:
            limit_s = np.nextafter(limit_s, scores.dtype.type(np.inf))
        best_d = exact_sq_distance(X, i, C, best)
        if second[r] <= limit_s:
            for t in range(k):
                if t != best and scores[r, t] <= limit_s:
                    dist = exact_sq_distance(X, i, C, t)
                    if dist < best_d or (dist == best_d and t < best):
                        best, best_d = t, dist
            labels[r] = best
        sq_out[r] = best_d
        if lower_out.shape[0] > 0:
            runner_up = np.float64(second[r])
            if best != first:  # the exact decision overturned the argmin (a near tie)
                runner_up = np.inf
                for t in range(k):
                    if t != best:
                        runner_up = min(runner_up, np.float64(scores[r, t]))
            lower_out[r] = _lower_distance(runner_up - err + norm)


def _second_scores(scores, argmin):
    """Per row, the least score but the one at ``argmin``: with it the kernel knows at
    once whether a row needs an exact decision, and the row's bound (NumPy's reduction
    runs in SIMD lanes, a reduction in the kernel does not)."""
    rows = np.arange(scores.shape[0])
    best = scores[rows, argmin]
    scores[rows, argmin] = np.inf
    second = np.min(scores, axis=1)
    scores[rows, argmin] = best
    return second


def nearest_centroids(X, C, labels_out, sq_dist_out, block_rows=None, augmented=None, lower_out=None):
    """The exact nearest centroid of every row of ``X``, and its squared distance.

    ``labels_out[i]`` is the index of the centroid at the smallest exact float64
    squared distance from ``X[i]`` (ties to the lowest index), ``sq_dist_out[i]`` that
    distance. The result does not depend on ``block_rows``, on the BLAS or on the
    thread count (see the module). Memory is O(block_rows * k); the n x k matrix is
    never built. ``X`` and ``C`` must share a float dtype and be C-contiguous; pass
    ``augmented`` (from :func:`augmented_centroids`) to reuse it. ``lower_out``, if
    given, receives per row a proven lower bound on the distance (not squared) to every
    centroid but the nearest (the bounds of :func:`bounded_nearest_centroids`).

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
    c_max_norm = max_norm(C)
    factors = _error_factors(d, X.dtype)
    lower = np.empty(0) if lower_out is None else lower_out
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
            second = _second_scores(block[lo:hi], labels)
            settle_nearest(block[lo:hi], X, start + lo, C, c_max_norm, *factors, labels,
                           sq_dist_out[start + lo:start + hi], second, lower[start + lo:start + hi])


@njit(cache=True, fastmath=True, nogil=True)
def screen_by_bounds(X, C, labels, lower, slack, own_sq_out, kept_out):
    """Which rows the bounds settle: ``own_sq_out[i]`` gets the exact squared distance
    from ``X[i]`` to ``C[labels[i]]``, and ``kept_out[i]`` whether that distance is below
    ``lower[i] - slack``, a lower bound on the distance to every centroid that moved by at
    most ``slack`` since ``lower`` was proven (triangle inequality). Rows without a label
    (-1) are not kept."""
    for i in range(X.shape[0]):
        a = labels[i]
        if a < 0:
            own_sq_out[i] = np.inf
            kept_out[i] = False
            continue
        own = exact_sq_distance(X, i, C, a)
        own_sq_out[i] = own
        kept_out[i] = np.sqrt(own) * (1.0 + LOWER_MARGIN) < lower[i] - slack


@njit(cache=True, fastmath=True, nogil=True)
def settle_among_movers(scores, X, rows, C, movers, c_max_norm, gamma, u, gamma64, own, own_sq, rest_lower,
                        labels_out, sq_out, lower_out):
    """The exact nearest centroid of rows ``X[rows]`` among their own centroid and the
    ``movers``, for rows whose own centroid is proven nearer than every other centroid
    (``rest_lower``, the bound of :func:`screen_by_bounds` less the slack).

    ``scores[r]`` are the GEMM scores of ``X[rows[r]]`` against ``C[movers]``; a mover
    whose score is within twice the row's error bound of the own centroid's exact score
    is compared by exact distance (ties to the lower index), as in
    :func:`settle_nearest`. ``lower_out[r]`` gets a lower bound on the distance to every
    centroid but the winner: the least of ``rest_lower[r]``, the losers' exact
    distances and the other movers' proven bounds.
    """
    m, n_movers = scores.shape
    for r in range(m):
        i = rows[r]
        norm = 0.0
        for j in range(X.shape[1]):
            norm += np.float64(X[i, j]) * np.float64(X[i, j])
        err = _bound(np.sqrt(norm), c_max_norm, gamma, u, gamma64)
        best, best_d = own[r], own_sq[r]
        limit = best_d - norm + 2.0 * err
        second_sq = rest_lower[r] * rest_lower[r]
        for t in range(n_movers):
            c = movers[t]
            if c == own[r]:
                continue
            score = np.float64(scores[r, t])
            if score <= limit:
                dist = exact_sq_distance(X, i, C, c)
                if dist < best_d or (dist == best_d and c < best):
                    second_sq = min(second_sq, best_d)
                    best, best_d = c, dist
                else:
                    second_sq = min(second_sq, dist)
            else:
                second_sq = min(second_sq, score - err + norm)
        labels_out[r] = best
        sq_out[r] = best_d
        lower_out[r] = _lower_distance(second_sq)


#: A row's bounds (:func:`bounded_nearest_centroids`): its label at the last pass (-1:
#: none) and a lower bound on its distance to every other centroid, rounded down.
BOUNDS_DTYPE = np.dtype([("label", np.int32), ("lower", np.float32)])


def new_bounds(n_rows):
    """Bounds of ``n_rows`` rows that settle nothing (no label yet)."""
    bounds = np.zeros(n_rows, dtype=BOUNDS_DTYPE)
    bounds["label"] = -1
    return bounds


def bounds_of(labels, lower):
    """Bounds (:data:`BOUNDS_DTYPE`) holding ``labels`` and the float64 lower bounds
    ``lower``, rounded down to float32.

    >>> bounds_of(np.array([2]), np.array([1.0 + 2.0**-30]))["lower"].tolist()
    [1.0]
    """
    bounds = np.empty(len(labels), dtype=BOUNDS_DTYPE)
    _store_bounds(bounds, None, labels, lower)
    return bounds


def _store_bounds(bounds, rows, labels, lower):
    """Store ``labels`` and the float64 bounds ``lower``, rounded down to float32."""
    low = lower.astype(np.float32)
    high = low > lower
    low[high] = np.nextafter(low[high], np.float32(-np.inf))
    if rows is None:
        bounds["label"], bounds["lower"] = labels, low
    else:
        bounds["label"][rows], bounds["lower"][rows] = labels, low


def bounded_nearest_centroids(X, C, labels_out, sq_dist_out, bounds, movers, slack, block_rows=None,
                              augmented=None, movers_augmented=None):
    """:func:`nearest_centroids`, skipping the rows that bounds settle; same result.

    ``bounds`` (:data:`BOUNDS_DTYPE`, one per row) is read and rewritten: each row's
    label at the last call and a proven lower bound on its distance, then, to every
    other centroid. Since then each centroid has moved; ``movers`` are the indices of
    those that moved more than ``slack``, the others moved at most ``slack``. A row
    whose own centroid is nearer than the bound less the slack (Hamerly's test) can only
    change to a mover: it is scored against the movers alone (a GEMM of
    ``len(movers)`` columns); every other row against all centroids. Every label is the
    exact nearest centroid either way, so the result is the one
    :func:`nearest_centroids` gives, bit for bit; only the work differs. Pass
    ``movers=None`` for a full pass that only records the bounds.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [2.9, 0.0]], dtype=np.float32)
    >>> C = np.array([[0.0, 1.0], [3.0, 0.0]], dtype=np.float32)
    >>> labels, sq, bounds = np.empty(2, np.int64), np.empty(2), new_bounds(2)
    >>> bounded_nearest_centroids(X, C, labels, sq, bounds, None, 0.0)
    >>> C[1, 0] = 2.8  # only centroid 1 moves, by 0.2
    >>> bounded_nearest_centroids(X, C, labels, sq, bounds, np.array([1]), 0.0)
    >>> labels.tolist(), bounds["label"].tolist()
    ([0, 1], [0, 1])
    """
    n = X.shape[0]
    if n == 0:
        return
    full = None
    if movers is not None:
        previous = bounds["label"].astype(np.int64)
        own_sq = np.empty(n, dtype=np.float64)
        kept_mask = np.empty(n, dtype=np.bool_)
        screen_by_bounds(X, C, previous, bounds["lower"], slack, own_sq, kept_mask)
        kept = np.flatnonzero(kept_mask)
        full = np.flatnonzero(~kept_mask)
        if kept.size:
            _settle_kept(X, C, kept, previous[kept], own_sq[kept],
                         bounds["lower"][kept].astype(np.float64) - slack, movers, movers_augmented, labels_out,
                         sq_dist_out, bounds, block_rows)
    if full is None or full.size == n:
        lower = np.empty(n, dtype=np.float64)
        nearest_centroids(X, C, labels_out, sq_dist_out, block_rows, augmented, lower)
        _store_bounds(bounds, None, labels_out, lower)
    elif full.size:
        labels, sq, lower = np.empty(full.size, np.int64), np.empty(full.size), np.empty(full.size)
        nearest_centroids(np.ascontiguousarray(X[full]), C, labels, sq, block_rows, augmented, lower)
        labels_out[full], sq_dist_out[full] = labels, sq
        _store_bounds(bounds, full, labels, lower)


def _settle_kept(X, C, kept, own, own_sq, rest_lower, movers, movers_augmented, labels_out, sq_dist_out,
                 bounds, block_rows):
    """The rows ``kept`` of :func:`bounded_nearest_centroids`, against the movers."""
    d = X.shape[1]
    if movers.size == 0:
        labels_out[kept], sq_dist_out[kept] = own, own_sq
        _store_bounds(bounds, kept, own, rest_lower)
        return
    if movers_augmented is None:
        movers_augmented = augmented_centroids(np.ascontiguousarray(C[movers]))
    c_max_norm = max_norm(C[movers])
    factors = _error_factors(d, X.dtype)
    step = min(kept.size, block_rows or default_block_rows(movers.size, X.dtype.itemsize))
    rows = np.empty((step, d + 1), dtype=X.dtype)
    rows[:, d] = 1
    scores = np.empty((step, movers.size), dtype=X.dtype)
    labels, sq, lower = (np.empty(kept.size, dtype=t) for t in (np.int64, np.float64, np.float64))
    for lo in range(0, kept.size, step):
        hi = min(kept.size, lo + step)
        rows[:hi - lo, :d] = X[kept[lo:hi]]
        np.matmul(rows[:hi - lo], movers_augmented, out=scores[:hi - lo])
        settle_among_movers(scores[:hi - lo], X, kept[lo:hi], C, movers, c_max_norm, *factors, own[lo:hi],
                            own_sq[lo:hi], rest_lower[lo:hi], labels[lo:hi], sq[lo:hi], lower[lo:hi])
    labels_out[kept], sq_dist_out[kept] = labels, sq
    _store_bounds(bounds, kept, labels, lower)
