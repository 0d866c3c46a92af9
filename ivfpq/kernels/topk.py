"""Top-k selection with a bounded max-heap of (distance, id) pairs.

A heap is a pair of flat arrays ``(dist[k], ids[k])`` whose root is the worst entry
kept so far; an empty slot holds ``(+inf, -1)``. Ties in distance are broken by id
(the smaller id is better; an empty slot ranks after every real pair), so results
never depend on scan order or thread count.
Smaller is better: callers searching by inner product push negated scores.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "heap_init",
    "heap_push",
    "heap_sort",
    "merge_block_topk",
]


@njit(inline="always")
def _worse(d1, i1, d2, i2):
    """Is (d1, i1) ranked after (d2, i2)? Ties go by id; an empty slot's -1 ranks last."""
    # As unsigned, -1 is the largest id, so padding sorts after real pairs at +inf too.
    return d1 > d2 or (d1 == d2 and np.uint64(i1) > np.uint64(i2))


@njit(inline="always")
def _sift_down(dist, ids, size, d, i):
    """Place (d, i) at the root of the heap of ``size`` entries and restore the order."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _worse(dist[right], ids[right], dist[child], ids[child]):
            child = right
        if _worse(dist[child], ids[child], d, i):
            dist[pos] = dist[child]
            ids[pos] = ids[child]
            pos = child
        else:
            break
    dist[pos] = d
    ids[pos] = i


@njit(cache=True)
def heap_init(dist, ids):
    dist[:] = np.inf
    ids[:] = -1


@njit(inline="always")
def heap_push(dist, ids, d, i):
    """Offer (d, i) to a full heap of ``len(dist)`` entries; keeps the best ones."""
    if _worse(dist[0], ids[0], d, i):
        _sift_down(dist, ids, dist.shape[0], d, i)


@njit(inline="always")
def heap_sort(dist, ids):
    """Sort a heap in place, best first (heapsort: pop the root to the end)."""
    for end in range(dist.shape[0] - 1, 0, -1):
        d = dist[end]
        i = ids[end]
        dist[end] = dist[0]
        ids[end] = ids[0]
        _sift_down(dist, ids, end, d, i)


@njit(parallel=True, cache=True)
def merge_block_topk(block, first_id, heap_dist, heap_ids):
    """Offer ``block[r, j]`` with id ``first_id + j`` to heap ``r``, for every row ``r``."""
    n_rows, n_cols = block.shape
    for r in prange(n_rows):
        dist = heap_dist[r]
        ids = heap_ids[r]
        for j in range(n_cols):
            d = block[r, j]
            if d < dist[0]:
                _sift_down(dist, ids, dist.shape[0], d, first_id + j)


@njit(parallel=True, cache=True)
def sort_heaps(heap_dist, heap_ids):
    for r in prange(heap_dist.shape[0]):
        heap_sort(heap_dist[r], heap_ids[r])
