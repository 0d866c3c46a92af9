"""Binary heaps of (distance, id) pairs on flat arrays: the one heap of every top-k.

Two shapes of use:

* a *bounded* max-heap of fixed length k (``heap_init``, ``heap_push``, ``heap_sort``):
  the root is the worst pair kept; an empty slot holds ``(+inf, -1)``. This is the
  top-k of the scans (PQ/ADC scans, IVF list scans, BLAS blocks).
* *growing* heaps with an explicit size (``min_push``/``min_pop``, ``max_push``/
  ``max_pop``): the candidate queue (min-heap) and the result set (max-heap) of a
  graph search; the caller owns arrays long enough for the largest size.

One tie rule everywhere: pairs are ranked by distance, then by id, the smaller id
first; an id of -1 (an empty slot) ranks after every real id at the same distance.
So a heap's contents never depend on the order in which pairs were offered.
Smaller is better: callers ranking by inner product push negated scores.

A heap may carry a payload array beside ``ids`` (``*_rows`` functions: e.g. the pool
row of each result); the payload follows its pair and takes no part in the order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "worse",
    "sift_down",
    "sift_down_rows",
    "heap_init",
    "heap_push",
    "heap_sort",
    "heap_sort_rows",
    "min_push",
    "min_pop",
    "max_push",
    "max_pop",
]


@njit(inline="always")
def worse(d1, i1, d2, i2):
    """Is (d1, i1) ranked after (d2, i2)? Ties go by id; an empty slot's -1 ranks last."""
    # As unsigned, -1 is the largest id, so padding sorts after real pairs at +inf too.
    return d1 > d2 or (d1 == d2 and np.uint64(i1) > np.uint64(i2))


@njit(inline="always")
def _above(d1, i1, d2, i2, is_max):
    """Does (d1, i1) belong nearer the root than (d2, i2)? (``is_max``: a max-heap.)"""
    if is_max:
        return worse(d1, i1, d2, i2)
    return worse(d2, i2, d1, i1)


@njit(inline="always")
def _sift_down(dist, ids, rows, size, d, i, row, is_max):
    """Place (d, i) (payload ``row``) at the root of a heap of ``size`` and restore the order.

    ``rows`` may be ``ids`` itself when the heap carries no payload: the two stores
    to one slot then write the same value.
    """
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _above(dist[right], ids[right], dist[child], ids[child], is_max):
            child = right
        if _above(dist[child], ids[child], d, i, is_max):
            dist[pos] = dist[child]
            ids[pos] = ids[child]
            rows[pos] = rows[child]
            pos = child
        else:
            break
    dist[pos] = d
    ids[pos] = i
    rows[pos] = row


@njit(inline="always")
def _sift_up(dist, ids, size, d, i, is_max):
    """Append (d, i) to a heap of ``size`` entries; returns the new size."""
    pos = size
    while pos > 0:
        parent = (pos - 1) >> 1
        if not _above(d, i, dist[parent], ids[parent], is_max):
            break
        dist[pos] = dist[parent]
        ids[pos] = ids[parent]
        pos = parent
    dist[pos] = d
    ids[pos] = i
    return size + 1


@njit(inline="always")
def _pop(dist, ids, size, is_max):
    """Move the last entry to the root and sift it down; returns the new size."""
    size -= 1
    _sift_down(dist, ids, ids, size, dist[size], ids[size], ids[size], is_max)
    return size


# ----------------------------------------------------------------------------- bounded top-k


@njit(inline="always")
def sift_down(dist, ids, size, d, i):
    """Replace the root of the max-heap of ``size`` entries by (d, i)."""
    _sift_down(dist, ids, ids, size, d, i, i, True)


@njit(inline="always")
def sift_down_rows(dist, ids, rows, size, d, i, row):
    """:func:`sift_down` for a max-heap whose entries carry a payload (``rows``)."""
    _sift_down(dist, ids, rows, size, d, i, row, True)


@njit(cache=True)
def heap_init(dist, ids):
    """Fill a bounded heap with empty slots ``(+inf, -1)``."""
    dist[:] = np.inf
    ids[:] = -1


@njit(inline="always")
def heap_push(dist, ids, d, i):
    """Offer (d, i) to a full heap of ``len(dist)`` entries; keeps the best ones."""
    if worse(dist[0], ids[0], d, i):
        _sift_down(dist, ids, ids, dist.shape[0], d, i, i, True)


@njit(inline="always")
def heap_sort_rows(dist, ids, rows, size):
    """Sort the first ``size`` entries of a max-heap in place, best first (with payload)."""
    for end in range(size - 1, 0, -1):
        d = dist[end]
        i = ids[end]
        row = rows[end]
        dist[end] = dist[0]
        ids[end] = ids[0]
        rows[end] = rows[0]
        _sift_down(dist, ids, rows, end, d, i, row, True)


@njit(inline="always")
def heap_sort(dist, ids):
    """Sort a bounded heap in place, best first (heapsort: pop the root to the end)."""
    heap_sort_rows(dist, ids, ids, dist.shape[0])


# ----------------------------------------------------------------------------- growing heaps


@njit(inline="always")
def min_push(dist, ids, size, d, i):
    """Add (d, i) to the min-heap of ``size`` entries; returns the new size."""
    return _sift_up(dist, ids, size, d, i, False)


@njit(inline="always")
def min_pop(dist, ids, size):
    """Remove the root (best pair; read it before) of the min-heap; returns the new size."""
    return _pop(dist, ids, size, False)


@njit(inline="always")
def max_push(dist, ids, size, d, i):
    """Add (d, i) to the max-heap of ``size`` entries; returns the new size."""
    return _sift_up(dist, ids, size, d, i, True)


@njit(inline="always")
def max_pop(dist, ids, size):
    """Remove the root (worst pair; read it before) of the max-heap; returns the new size."""
    return _pop(dist, ids, size, True)
