"""One-dimensional k-means on sorted data: the k-means codebooks of PQ at one dimension per segment.

In 1-D the nearest centroid of a point is decided by the midpoints between sorted
centroids, so a whole Lloyd iteration is ``k`` binary searches over the sorted
distinct values plus prefix sums: O(k log n) instead of O(n k). Sorting the column
(O(n log n)) is the only per-point cost. The initialisations are the ones
:class:`ivfpq.KMeans` uses ("k-means++" greedy, "random" rows); k-means++ keeps its
candidates' gains local to the interval between the neighbouring centroids, so it
costs O(trials * n) per dimension instead of O(trials * n * k).

Columns are independent: ``fit_columns`` runs one per thread (``prange``), and each
column's result depends only on its data and its own random numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["sorted_unique", "kmeanspp_1d", "lloyd_1d", "fit_columns"]

INIT_KMEANSPP = 0
INIT_GIVEN = 1


@njit(cache=True)
def sorted_unique(sorted_values):
    """Distinct values (float64) and their counts (float64) of an ascending array."""
    n = sorted_values.shape[0]
    values = np.empty(n, dtype=np.float64)
    counts = np.empty(n, dtype=np.float64)
    u = 0
    for i in range(n):
        v = np.float64(sorted_values[i])
        if u > 0 and values[u - 1] == v:
            counts[u - 1] += 1.0
        else:
            values[u] = v
            counts[u] = 1.0
            u += 1
    return values[:u].copy(), counts[:u].copy()


@njit(cache=True)
def _searchsorted_right(a, x):
    lo = 0
    hi = a.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _searchsorted_left(a, x, lo, hi):
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _draw(pot, block_sums, n_blocks, block, target):
    """Index i with cumsum(pot)[i-1] <= target < cumsum(pot)[i] (last positive on overflow)."""
    n = pot.shape[0]
    acc = 0.0
    b = 0
    while b < n_blocks - 1 and acc + block_sums[b] <= target:
        acc += block_sums[b]
        b += 1
    i = b * block
    stop = min(n, i + block)
    while i < stop - 1 and acc + pot[i] <= target:
        acc += pot[i]
        i += 1
    while i > 0 and pot[i] <= 0.0:  # rounding ran past the mass: step back onto it
        i -= 1
    return i


@njit(cache=True)
def kmeanspp_1d(values, weights, k, uniforms, n_trials):
    """Greedy k-means++ on weighted distinct values; returns k sorted centres.

    ``uniforms`` holds ``1 + (k - 1) * n_trials`` numbers in [0, 1): the first picks
    the first centre with probability proportional to weight, then each step draws
    ``n_trials`` candidates with probability proportional to weight times squared
    distance to the nearest centre and keeps the one that lowers the potential most
    (the first on ties), as :func:`ivfpq.cluster.init.kmeans_plusplus` does. When
    every point already sits on a centre (fewer distinct values than ``k``), the
    remaining centres repeat the chosen ones.
    """
    n = values.shape[0]
    block = max(16, int(np.sqrt(n)))
    n_blocks = (n + block - 1) // block
    closest = np.empty(n, dtype=np.float64)
    pot = np.empty(n, dtype=np.float64)
    block_sums = np.zeros(n_blocks, dtype=np.float64)
    centers = np.empty(k, dtype=np.float64)  # kept sorted: centers[:n_centers]

    # First centre, by weight.
    for b in range(n_blocks):
        s = 0.0
        for i in range(b * block, min(n, (b + 1) * block)):
            s += weights[i]
        block_sums[b] = s
    total_w = 0.0
    for b in range(n_blocks):
        total_w += block_sums[b]
    first = _draw(weights, block_sums, n_blocks, block, uniforms[0] * total_w)
    v0 = values[first]
    centers[0] = v0
    n_centers = 1
    for i in range(n):
        diff = values[i] - v0
        closest[i] = diff * diff
        pot[i] = weights[i] * closest[i]
    for b in range(n_blocks):
        s = 0.0
        for i in range(b * block, min(n, (b + 1) * block)):
            s += pot[i]
        block_sums[b] = s

    u = 1
    for step in range(1, k):
        total = 0.0
        for b in range(n_blocks):
            total += block_sums[b]
        if total <= 0.0:
            for c in range(n_centers, k):
                centers[c] = centers[(c - n_centers) % n_centers]
            u += (k - step) * n_trials
            break
        best_gain = -1.0
        best_i = -1
        best_lo = 0
        best_hi = 0
        for t in range(n_trials):
            cand = _draw(pot, block_sums, n_blocks, block, uniforms[u + t] * total)
            v = values[cand]
            # Only points between the neighbouring centres can move to v.
            pos = _searchsorted_left(centers, v, 0, n_centers)
            lo = 0
            hi = n
            if pos > 0:
                lo = _searchsorted_right(values, centers[pos - 1])
            if pos < n_centers:
                hi = _searchsorted_left(values, centers[pos], 0, n)
            gain = 0.0
            for i in range(lo, hi):
                diff = values[i] - v
                d2 = diff * diff
                if d2 < closest[i]:
                    gain += weights[i] * (closest[i] - d2)
            if gain > best_gain:
                best_gain = gain
                best_i = cand
                best_lo = lo
                best_hi = hi
        u += n_trials
        v = values[best_i]
        pos = _searchsorted_left(centers, v, 0, n_centers)
        for c in range(n_centers, pos, -1):
            centers[c] = centers[c - 1]
        centers[pos] = v
        n_centers += 1
        for i in range(best_lo, best_hi):
            diff = values[i] - v
            d2 = diff * diff
            if d2 < closest[i]:
                closest[i] = d2
                pot[i] = weights[i] * d2
        for b in range(best_lo // block, min(n_blocks, (best_hi + block - 1) // block)):
            s = 0.0
            for i in range(b * block, min(n, (b + 1) * block)):
                s += pot[i]
            block_sums[b] = s
    out = centers.copy()
    out.sort()
    return out


@njit(cache=True)
def _assign_bounds(values, centers, bounds):
    """bounds[j]..bounds[j+1] = the values whose nearest centre is j (ties to the lower)."""
    k = centers.shape[0]
    n = values.shape[0]
    bounds[0] = 0
    for j in range(k - 1):
        mid = 0.5 * (centers[j] + centers[j + 1])
        bounds[j + 1] = _searchsorted_right(values, mid)
    bounds[k] = n


@njit(cache=True)
def lloyd_1d(values, weights, centers, max_iter):
    """Lloyd's algorithm on weighted distinct sorted values, from sorted ``centers``.

    Returns ``(centers, n_iter, inertia)`` with centres sorted ascending. Like
    :func:`ivfpq.cluster.kmeans.lloyd`: each iteration assigns every point to its
    nearest centre, stops when no assignment changed, and otherwise moves each
    centre to its points' weighted mean (``n_iter`` counts these moves). An empty
    cluster takes the point farthest from its centre (points at the ends of the
    occupied clusters, farthest first) when that distance is positive.
    """
    n = values.shape[0]
    k = centers.shape[0]
    c = centers.astype(np.float64).copy()
    c.sort()
    s0 = np.zeros(n + 1, dtype=np.float64)
    s1 = np.zeros(n + 1, dtype=np.float64)
    for i in range(n):
        s0[i + 1] = s0[i] + weights[i]
        s1[i + 1] = s1[i] + weights[i] * values[i]
    bounds = np.empty(k + 1, dtype=np.int64)
    previous = np.full(k + 1, -1, dtype=np.int64)
    n_iter = 0
    for iteration in range(max_iter):
        _assign_bounds(values, c, bounds)
        same = True
        for j in range(k + 1):
            if bounds[j] != previous[j]:
                same = False
                break
        if same:
            break
        previous[:] = bounds
        n_iter = iteration + 1
        new = c.copy()
        n_empty = 0
        for j in range(k):
            lo = bounds[j]
            hi = bounds[j + 1]
            count = s0[hi] - s0[lo]
            if count > 0.0:
                # The mean of a contiguous run, clipped into it against rounding.
                mean = (s1[hi] - s1[lo]) / count
                new[j] = min(max(mean, values[lo]), values[hi - 1])
            else:
                n_empty += 1
        if n_empty > 0:
            cand_d = np.empty(2 * k, dtype=np.float64)
            cand_v = np.empty(2 * k, dtype=np.float64)
            n_cand = 0
            for j in range(k):
                lo = bounds[j]
                hi = bounds[j + 1]
                if hi > lo:
                    cand_d[n_cand] = (values[lo] - c[j]) ** 2
                    cand_v[n_cand] = values[lo]
                    n_cand += 1
                    if hi - 1 > lo:
                        cand_d[n_cand] = (values[hi - 1] - c[j]) ** 2
                        cand_v[n_cand] = values[hi - 1]
                        n_cand += 1
            order = np.argsort(-cand_d[:n_cand], kind="mergesort")
            r = 0
            for j in range(k):
                if s0[bounds[j + 1]] - s0[bounds[j]] > 0.0:
                    continue
                if r < n_cand and cand_d[order[r]] > 0.0:
                    new[j] = cand_v[order[r]]
                    r += 1
        new.sort()
        moved = False
        for j in range(k):
            if new[j] != c[j]:
                moved = True
                break
        c = new
        if not moved:
            break
    _assign_bounds(values, c, bounds)
    inertia = 0.0
    for j in range(k):
        for i in range(bounds[j], bounds[j + 1]):
            diff = values[i] - c[j]
            inertia += weights[i] * diff * diff
    return c, n_iter, inertia


@njit(parallel=True, cache=True)
def fit_columns(Xt, k, init_kind, uniforms, n_trials, init_centers, max_iter,
                centers_out, n_iter_out, inertia_out):
    """k-means with ``k`` centres on each row of ``Xt`` (``(d, n)``: one column of the data per row).

    ``init_kind`` is ``INIT_KMEANSPP`` (``uniforms`` ``(d, 1 + (k-1)*n_trials)``) or
    ``INIT_GIVEN`` (``init_centers`` ``(d, k)``). Writes sorted centres into
    ``centers_out`` ``(d, k)`` float64, iterations into ``n_iter_out`` ``(d,)`` int64
    and each column's inertia into ``inertia_out`` ``(d,)`` float64.
    """
    d = Xt.shape[0]
    for j in prange(d):
        col = Xt[j].copy()
        col.sort()
        values, weights = sorted_unique(col)
        if init_kind == INIT_KMEANSPP:
            start = kmeanspp_1d(values, weights, k, uniforms[j], n_trials)
        else:
            start = init_centers[j].astype(np.float64)
        c, n_iter, inertia = lloyd_1d(values, weights, start, max_iter)
        centers_out[j, :] = c
        n_iter_out[j] = n_iter
        inertia_out[j] = inertia
