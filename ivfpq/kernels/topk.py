"""Top-k of blocks of distances (BLAS blocks of brute-force searches), one bounded
heap per row.

The heaps are those of :mod:`ivfpq.kernels.heap`: ``(dist[k], ids[k])`` with the
worst entry at the root, empty slots ``(+inf, -1)``, ties by the smaller id, so the
result does not depend on how the columns were split into blocks or on the thread
count.
"""

from __future__ import annotations

from numba import njit, prange

from .heap import heap_sort, sift_down

__all__ = [
    "merge_block_topk",
    "sort_heaps",
]


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
                sift_down(dist, ids, dist.shape[0], d, first_id + j)


@njit(parallel=True, cache=True)
def sort_heaps(heap_dist, heap_ids):
    """Sort every row's heap in place, best first."""
    for r in prange(heap_dist.shape[0]):
        heap_sort(heap_dist[r], heap_ids[r])
