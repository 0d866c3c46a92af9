"""Lloyd's update step on exact integer sums.

Per-cluster sums are kept as int64 fixed-point numbers: each row's weighted value
``w * x[j]`` is rounded once to a multiple of ``2**-s_j`` (one power of two per
feature, chosen from the data's range so that no total can overflow), and those
integers are added. Integer addition is associative, so the sums, and the centroids
made from them, are the same bit for bit however the rows are split into blocks,
threads or Dask workers and in whatever order the partial sums are combined; a point
that moves is subtracted from one sum and added to another exactly, so following
only the moved points gives the same sums as a full pass. With ``n`` rows the
resolution is about ``2**-61 * n * max|x_j|``, far finer than float32 data.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "finite_max_abs",
    "fixed_point_scale",
    "feature_scales",
    "add_moved_points",
    "fixed_total",
    "fixed_moments",
    "updated_centers",
]

_HEADROOM_BITS = 61  # totals stay below 2**61, a quarter of int64's range


def fixed_point_scale(bound):
    """The largest power of two ``2**s <= 2**1000`` with ``bound * 2**s < 2**61`` (1.0 for
    bound 0).

    Examples
    --------
    >>> fixed_point_scale(1.0), fixed_point_scale(3.0) * 3.0 < 2.0**61
    (1.152921504606847e+18, True)
    """
    bound = float(bound)
    if not bound > 0 or not np.isfinite(bound):
        return 1.0
    _, exponent = np.frexp(bound)
    # Capped where a tiny bound would overflow the scale: the totals are then far
    # below 2**61 anyway.
    return float(np.ldexp(1.0, min(_HEADROOM_BITS - int(exponent), 1000)))


def feature_scales(n_rows, max_weight, max_abs):
    """Per-feature scales for the weighted sums of ``n_rows`` rows (see module)."""
    bound = float(n_rows) * float(max_weight)
    return np.array([fixed_point_scale(bound * float(v)) for v in np.asarray(max_abs)], dtype=np.float64)


_STAT_ROWS = 4096


@njit(parallel=True, cache=True)
def finite_max_abs(X):
    """``(all values finite, max |X[:, j]| per feature as float64)`` in one pass with no
    temporaries, in parallel over fixed blocks of rows (a maximum does not depend on
    the order it is taken in)."""
    n, d = X.shape
    n_chunks = (n + _STAT_ROWS - 1) // _STAT_ROWS
    partial = np.zeros((max(1, n_chunks), d), dtype=np.float64)
    finite = np.ones(max(1, n_chunks), dtype=np.bool_)
    for b in prange(n_chunks):
        for i in range(b * _STAT_ROWS, min(n, (b + 1) * _STAT_ROWS)):
            for j in range(d):
                value = np.float64(X[i, j])
                if not np.isfinite(value):
                    finite[b] = False
                elif abs(value) > partial[b, j]:
                    partial[b, j] = abs(value)
    out = np.zeros(d, dtype=np.float64)
    for b in range(n_chunks):
        for j in range(d):
            if partial[b, j] > out[j]:
                out[j] = partial[b, j]
    return finite.all(), out


@njit(cache=True)
def add_moved_points(X, weights, before, after, scales, weight_scale, sums, counts):
    """Move each row ``i`` with ``before[i] != after[i]`` from cluster ``before[i]``
    (-1: none) to ``after[i]`` in the fixed-point ``sums`` (k, d) and ``counts`` (k,).

    Returns the number of rows moved.
    """
    n, d = X.shape
    moved = 0
    for i in range(n):
        old = before[i]
        new = after[i]
        if old == new:
            continue
        moved += 1
        w = weights[i]
        count = np.int64(np.rint(w * weight_scale))
        counts[new] += count
        if old >= 0:
            counts[old] -= count
        for j in range(d):
            value = np.int64(np.rint(w * np.float64(X[i, j]) * scales[j]))
            sums[new, j] += value
            if old >= 0:
                sums[old, j] -= value
    return moved


@njit(cache=True)
def fixed_total(values, weights, scale):
    """sum_i round(w_i * v_i * scale) in int64: an order-free total of float64 values."""
    total = np.int64(0)
    for i in range(values.shape[0]):
        total += np.int64(np.rint(weights[i] * values[i] * scale))
    return total


@njit(cache=True)
def fixed_moments(X, scales, sq_scales, sums, sq_sums):
    """Add the fixed-point per-feature sums of ``x`` and of ``x**2`` of ``X``'s rows."""
    n, d = X.shape
    for i in range(n):
        for j in range(d):
            value = np.float64(X[i, j])
            sums[j] += np.int64(np.rint(value * scales[j]))
            sq_sums[j] += np.int64(np.rint(value * value * sq_scales[j]))


@njit(cache=True)
def _update(centers, sums, counts, scales, weight_scale, spherical, out):
    k, d = centers.shape
    shift = 0.0
    mean = np.empty(d, dtype=np.float64)
    for c in range(k):
        if counts[c] > 0:
            count = np.float64(counts[c]) / weight_scale
            for j in range(d):
                mean[j] = (np.float64(sums[c, j]) / scales[j]) / count
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


def updated_centers(centers, sums, counts, scales, weight_scale, spherical=False):
    """Lloyd's update from fixed-point sums: each centroid with points moves to their
    weighted mean (unit norm with ``spherical``); one without points stays.

    Returns the new centroids in ``centers``' dtype and the summed squared shift
    (float64, from the rounded new centroids), in one pass with no (k, d) temporaries.
    """
    out = np.empty_like(centers)
    shift = _update(centers, sums, counts, scales, float(weight_scale), bool(spherical), out)
    return out, float(shift)


@njit(cache=True)
def minibatch_update(X, weights, labels, order, centers, counts, spherical):
    """The mini-batch update, in place: each centroid ``c`` that got batch points moves
    to ``(counts[c] * centers[c] + sum of w * x) / (counts[c] + sum of w)``, i.e. with
    learning rate ``(sum of w) / (counts[c] + sum of w)``, and ``counts[c]`` grows by
    the weight. ``order`` lists the rows grouped by label (any order within a group is
    summed in row order: ``np.argsort(labels, kind="stable")``). Sums in float64.
    """
    n, d = X.shape
    acc = np.empty(d, dtype=np.float64)
    i = 0
    while i < n:
        c = labels[order[i]]
        for j in range(d):
            acc[j] = 0.0
        weight = 0.0
        while i < n and labels[order[i]] == c:
            row = order[i]
            w = weights[row]
            weight += w
            for j in range(d):
                acc[j] += w * np.float64(X[row, j])
            i += 1
        if weight <= 0:
            continue
        total = counts[c] + weight
        norm = 0.0
        for j in range(d):
            acc[j] = (np.float64(centers[c, j]) * counts[c] + acc[j]) / total
            norm += acc[j] * acc[j]
        if spherical and norm > 0:
            norm = np.sqrt(norm)
            for j in range(d):
                acc[j] /= norm
        for j in range(d):
            centers[c, j] = acc[j]
        counts[c] = total
