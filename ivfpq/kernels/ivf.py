"""Inverted-list kernels: moving list segments, removing ids, scanning lists.

The lists live in one pool of rows (``pool[rows, width]`` and ``pool_ids[rows]``);
list ``l`` occupies rows ``offsets[l] : offsets[l] + sizes[l]``. Searches run in
parallel over queries; each query owns its heap, so results do not depend on the
thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .topk import _sift_down, _worse, heap_sort

# Reassociation lets LLVM vectorise the distance sums (the float64 sum of float32
# products changes only in its last bits). No "nnan"/"ninf": heaps start at +inf.
SAFE_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

__all__ = [
    "move_segments",
    "mark_removed",
    "compact_lists",
    "ivf_flat_search",
    "ivf_topk_probes",
]


@njit(cache=True)
def move_segments(pool, src, dst, counts):
    """Copy rows ``src[s]:src[s]+counts[s]`` to ``dst[s]:...`` for each segment ``s``.

    Destinations never overlap a live source (they lie past the pool's used end).
    """
    for s in range(src.shape[0]):
        a = src[s]
        b = dst[s]
        for r in range(counts[s]):
            pool[b + r] = pool[a + r]


@njit(parallel=True, cache=True)
def mark_removed(pool_ids, offsets, sizes, sorted_ids, keep):
    """keep[row] = False for every live row whose id is in ``sorted_ids``; return per-list removals."""
    nlist = offsets.shape[0]
    removed = np.zeros(nlist, dtype=np.int64)
    m = sorted_ids.shape[0]
    for l in prange(nlist):
        count = 0
        for r in range(offsets[l], offsets[l] + sizes[l]):
            i = pool_ids[r]
            pos = np.searchsorted(sorted_ids, i)
            if pos < m and sorted_ids[pos] == i:
                keep[r] = False
                count += 1
            else:
                keep[r] = True
        removed[l] = count
    return removed


@njit(parallel=True, cache=True)
def compact_lists(pool, offsets, sizes, keep):
    """Within each list, shift the kept rows forward, in order."""
    for l in prange(offsets.shape[0]):
        w = offsets[l]
        for r in range(offsets[l], offsets[l] + sizes[l]):
            if keep[r]:
                if w != r:
                    pool[w] = pool[r]
                w += 1


@njit(cache=True)
def ivf_topk_probes(scores, nprobe, probes):
    """probes[q] = the ``nprobe`` columns of ``scores[q]`` with the smallest values, best first."""
    nq, nlist = scores.shape
    dist = np.empty(nprobe, dtype=np.float64)
    ids = np.empty(nprobe, dtype=np.int64)
    for q in range(nq):
        dist[:] = np.inf
        ids[:] = -1
        for c in range(nlist):
            s = scores[q, c]
            if _worse(dist[0], ids[0], s, c):
                _sift_down(dist, ids, nprobe, s, c)
        heap_sort(dist, ids)
        for p in range(nprobe):
            probes[q, p] = ids[p]


@njit(parallel=True, cache=True, fastmath=SAFE_FASTMATH)
def ivf_flat_search(Q, probes, pool, pool_ids, offsets, sizes, inner_product, out_dist, out_ids):
    """Exact scan of each query's probed lists; float64 accumulation, top-k heap per query.

    For L2, ``out_dist`` holds squared distances (ascending). For inner product the
    heap holds negated scores; the caller negates them back.
    """
    nq, d = Q.shape
    k = out_dist.shape[1]
    for qi in prange(nq):
        dist = out_dist[qi]
        ids = out_ids[qi]
        dist[:] = np.inf
        ids[:] = -1
        for p in range(probes.shape[1]):
            l = probes[qi, p]
            if l < 0:
                continue
            start = offsets[l]
            for r in range(start, start + sizes[l]):
                acc = 0.0
                if inner_product:
                    for j in range(d):
                        acc -= np.float64(Q[qi, j]) * np.float64(pool[r, j])
                else:
                    for j in range(d):
                        diff = np.float64(Q[qi, j]) - np.float64(pool[r, j])
                        acc += diff * diff
                if _worse(dist[0], ids[0], acc, pool_ids[r]):
                    _sift_down(dist, ids, k, acc, pool_ids[r])
        heap_sort(dist, ids)
