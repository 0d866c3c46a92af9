"""Product-quantization kernels: encode, decode, distance tables, ADC scans with a top-k heap.

Contracts shared by every function here (callers validate, kernels trust):

* ``codebooks`` has shape ``(M, K, dsub)``, float32, C-contiguous: ``K = 2**nbits``
  centroids for each of the ``M`` sub-spaces; sub-space ``m`` holds the features
  ``m*dsub : (m+1)*dsub``. ``d = M * dsub``.
* ``codes`` has shape ``(n, M)``, C-contiguous, uint8 (``nbits <= 8``) or uint16
  (``nbits <= 16``); every entry is ``< K``. Row ``i`` is the code of vector ``i``.
* ``tables`` has shape ``(nq, M, K)`` (or ``(M, K)`` for one query), float32,
  C-contiguous: ``tables[q, m, c]`` is the contribution of centroid ``c`` of sub-space
  ``m`` to the distance from query ``q``. The asymmetric distance (ADC) of code row
  ``i`` is ``sum_m tables[q, m, codes[i, m]]``, summed in float32 in the order
  ``m = 0..M-1`` by every kernel (tables are built with float64 sums).
* The scans always keep the *smallest* sums. For inner product (larger is better)
  pass the negated tables and negate the distances that come back.
* Top-k results are the ``k`` smallest ``(distance, id)`` pairs in lexicographic
  order (ties go to the lower id), sorted ascending. Rows with fewer than ``k``
  candidates are padded with ``(inf, -1)``. They do not depend on the thread count or
  on how the scan was split into blocks.

Nothing here allocates per code; every kernel writes into arrays the caller owns.

How the indexes use them (sketch)::

    # IVF-PQ, one query: a table per probed list (residual to its centroid), one heap
    heap_init(heap_dist, heap_ids)                          # float32 / int64, length k
    for list_id in probed:
        distance_tables(residual(q, list_id)[None], codebooks, table, False)   # (1, M, K)
        adc_scan_into_heap(list_codes[list_id], list_ids[list_id], table[0],
                           heap_dist, heap_ids)
    heap_sort(heap_dist, heap_ids)

    # HNSW over codes: one table per query, then distances of the nodes visited
    adc_distance(codes, node, table)                        # inside a Numba kernel
    adc_distances_at(codes, nodes, table, out)              # a batch of neighbours
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# The bounded (distance, id) max-heap shared by every top-k kernel.
from .heap import heap_init, heap_push, heap_sort

__all__ = [
    "encode_by_edges",
    "encode_nearest",
    "decode",
    "distance_tables",
    "adc_distance",
    "adc_distances",
    "adc_distances_at",
    "adc_topk",
    "adc_scan_into_heap",
    "heap_init",
    "heap_push",
    "heap_sort",
    "DEFAULT_SCAN_BLOCK",
]

# Codes per block when a few queries are spread over threads (fewer queries than
# threads). Fixed, so that the blocks, and hence the results, never depend on threads.
DEFAULT_SCAN_BLOCK = 65536


# ----------------------------------------------------------------------------- encode


@njit(parallel=True, cache=True)
def encode_by_edges(X, edges, codes):
    """One dimension per segment: ``codes[i, j]`` = the bin of ``X[i, j]`` among ``edges[j]``.

    ``X`` is ``(n, d)`` float32 or float64; ``edges`` is ``(d, K-1)`` float64 and
    non-decreasing along each row: bin ``c`` is ``[edges[j, c-1], edges[j, c])``.
    The code is the number of edges strictly below ``x``, so it is always in
    ``[0, K-1]``: values below the first edge get 0, values at or above the last get
    ``K-1`` (this is the clamping). When ``x`` equals ``t`` edges exactly (an atom of
    the distribution spans ``t`` bins), the code is the middle one,
    ``count_below + (t + 1) // 2``; for ``t = 1`` that is ``floor(K * F(x))``.

    With ``edges`` the midpoints between sorted 1-D centroids this is exact
    nearest-centroid assignment; with ``edges[j, c-1] = F_j^{-1}(c / K)`` it is the
    tile encoder's ``floor(K * F_j(x))``. ``K`` must be a power of two.
    """
    n, d = X.shape
    n_edges = edges.shape[1]
    half = (n_edges + 1) >> 1
    for i in prange(n):
        for j in range(d):
            x = np.float64(X[i, j])
            # Branch-free binary search over K-1 sorted edges (K a power of two):
            # afterwards `pos` is the number of edges < x.
            pos = 0
            step = half
            while step > 0:
                if edges[j, pos + step - 1] < x:
                    pos += step
                step >>= 1
            if pos < n_edges and edges[j, pos] == x:
                lo = pos
                hi = n_edges
                while lo < hi:  # first edge > x
                    mid = (lo + hi) >> 1
                    if edges[j, mid] <= x:
                        lo = mid + 1
                    else:
                        hi = mid
                pos += (lo - pos + 1) >> 1
            codes[i, j] = pos


_LANES = 16  # running minima kept in this many lanes, so that LLVM can vectorise them


@njit(cache=True, fastmath=True)
def _min_and_count(score, threshold_gap):
    """``(min(score) + threshold_gap, number of entries <= that)``.

    Written lane-wise because a plain running minimum does not vectorise; a
    minimum and a count are exact in any order, so fastmath cannot change the
    result here.
    """
    K = score.shape[0]
    if K < _LANES or K % _LANES:
        best = score[0]
        for c in range(1, K):
            if score[c] < best:
                best = score[c]
    else:
        lanes = score[:_LANES].copy()
        for c in range(_LANES, K, _LANES):
            for lane in range(_LANES):
                v = score[c + lane]
                lanes[lane] = v if v < lanes[lane] else lanes[lane]
        best = lanes[0]
        for lane in range(1, _LANES):
            if lanes[lane] < best:
                best = lanes[lane]
    threshold = best + threshold_gap
    count = 0
    for c in range(K):
        count += score[c] <= threshold
    return threshold, count


@njit(cache=True, fastmath=True)
def _scores(X, i, offset, C_t, c_sq, score):
    """``score[c] = |c|^2 - 2 x.c`` in float32; returns ``|x|^2`` (float64).

    fastmath lets LLVM fuse multiply-adds; these scores only shortlist centroids
    (within a rounding bound that fused operations only tighten) and every
    shortlisted one is rescored exactly, so the result cannot change.
    """
    dsub, K = C_t.shape
    x_sq = 0.0
    for c in range(K):
        score[c] = c_sq[c]
    for t in range(dsub):
        xt = X[i, offset + t]
        x_sq += np.float64(xt) * np.float64(xt)
        xv = np.float32(-2.0) * np.float32(xt)
        for c in range(K):
            score[c] += xv * C_t[t, c]
    return x_sq


@njit(cache=True)
def _nearest_in_subspace(X, i, offset, C, C_t, c_sq, c_sq_max, score):
    """Nearest row of ``C`` (K, dsub) to ``X[i, offset:offset+dsub]``: (id, exact squared distance).

    A float32 pass scores all K centroids with ``|c|^2 - 2 x.c`` (SIMD over the
    centroids; ``C_t`` is ``C`` transposed, float32). The expansion can misorder
    centroids whose distances differ by less than its rounding error, so every
    centroid scoring within twice a bound on that error of the best is rescored as
    ``|x - c|^2`` in float64 against ``C`` itself; the smallest wins, ties to the
    lower id. Usually only the winner is within the bound.
    """
    dsub, K = C_t.shape
    x_sq = _scores(X, i, offset, C_t, c_sq, score)
    gap = np.float32(4.0 * (dsub + 2) * 1.2e-7 * (x_sq + c_sq_max) + 1e-30)
    threshold, count = _min_and_count(score, gap)
    if count == 1:  # the usual case: no other centroid is close enough to be in doubt
        arg = 0
        while score[arg] > threshold:
            arg += 1
        acc = 0.0
        for t in range(dsub):
            diff = np.float64(X[i, offset + t]) - np.float64(C[arg, t])
            acc += diff * diff
        return arg, acc
    best = -1
    best_d = np.inf
    for c in range(K):
        if score[c] <= threshold:
            acc = 0.0
            for t in range(dsub):
                diff = np.float64(X[i, offset + t]) - np.float64(C[c, t])
                acc += diff * diff
            if acc < best_d:
                best_d = acc
                best = c
    return best, best_d


@njit(parallel=True, cache=True)
def _nearest_codes(X, codebooks, codebooks_t, c_sq, c_sq_max, codes):
    n = X.shape[0]
    M, dsub, K = codebooks_t.shape
    chunk = 256
    for ch in prange((n + chunk - 1) // chunk):
        score = np.empty(K, dtype=np.float32)
        for i in range(ch * chunk, min(n, (ch + 1) * chunk)):
            for m in range(M):
                best, _ = _nearest_in_subspace(X, i, m * dsub, codebooks[m], codebooks_t[m],
                                               c_sq[m], c_sq_max[m], score)
                codes[i, m] = best


def encode_nearest(X, codebooks, codes):
    """Nearest centroid (squared L2) in each sub-space: ``codes[i, m]``.

    ``X`` is ``(n, M*dsub)`` float32 or float64; ``codebooks`` ``(M, K, dsub)`` float32;
    ``codes`` ``(n, M)`` uint8/uint16, filled in place. Exact: near-ties of the float32
    scores are re-decided in float64 (ties to the lower centroid id), so a vector
    equal to a centroid encodes to it. Cost O(n * K * d) without BLAS, which suits
    PQ's few dimensions per sub-space; parallel over blocks of rows.
    """
    codebooks_t = np.ascontiguousarray(codebooks.transpose(0, 2, 1), dtype=np.float32)
    c_sq64 = np.einsum("mkt,mkt->mk", codebooks, codebooks, dtype=np.float64)
    _nearest_codes(X, codebooks, codebooks_t, c_sq64.astype(np.float32), c_sq64.max(axis=1), codes)
    return codes


# ----------------------------------------------------------------------------- decode


@njit(parallel=True, cache=True)
def decode(codes, codebooks, out):
    """``out[i, m*dsub:(m+1)*dsub] = codebooks[m, codes[i, m]]``; ``out`` is ``(n, d)``."""
    n, M = codes.shape
    dsub = codebooks.shape[2]
    for i in prange(n):
        for m in range(M):
            c = codes[i, m]
            for t in range(dsub):
                out[i, m * dsub + t] = codebooks[m, c, t]


# ----------------------------------------------------------------------------- tables


@njit(cache=True)
def _transpose_codebooks(codebooks):
    M, K, dsub = codebooks.shape
    out = np.empty((M, dsub, K), dtype=np.float64)
    for m in range(M):
        for c in range(K):
            for t in range(dsub):
                out[m, t, c] = codebooks[m, c, t]
    return out


@njit(parallel=True, cache=True)
def distance_tables(Q, codebooks, tables, inner_product):
    """``tables[q, m, c]``: ``|Q[q, sub m] - codebooks[m, c]|^2``, or with
    ``inner_product`` ``<Q[q, sub m], codebooks[m, c]>`` (float64 sums, stored float32).

    ``Q`` is ``(nq, M*dsub)``; parallel over queries, vectorised over centroids (the
    branch on ``inner_product`` is outside the vectorised loop).
    """
    nq = Q.shape[0]
    M, K, dsub = codebooks.shape
    cb_t = _transpose_codebooks(codebooks)
    for q in prange(nq):
        acc = np.empty(K, dtype=np.float64)
        for m in range(M):
            acc[:] = 0.0
            for t in range(dsub):
                qv = np.float64(Q[q, m * dsub + t])
                if inner_product:
                    for c in range(K):
                        acc[c] += qv * cb_t[m, t, c]
                else:
                    for c in range(K):
                        diff = qv - cb_t[m, t, c]
                        acc[c] += diff * diff
            for c in range(K):
                tables[q, m, c] = acc[c]


# ----------------------------------------------------------------------------- ADC


@njit(cache=True)
def _adc_row(codes, i, table):
    """``sum_m table[m, codes[i, m]]``, summed in float32 in the order m = 0, 1, ..., M-1.

    Float32 like the tables: a float64 sum costs a conversion per lookup and buys
    nothing, since every term is a float32 estimate (benchmarks/README.md, "Figures
    behind the code's constants"). The order
    is fixed (no fastmath), so a distance never depends on which kernel computed it.
    """
    acc = np.float32(0.0)
    for m in range(codes.shape[1]):
        acc += table[m, codes[i, m]]
    return acc


adc_distance = _adc_row
"""``adc_distance(codes, i, table)``: the ADC distance of code row ``i`` (for other kernels)."""


@njit(cache=True)
def adc_distances_at(codes, rows, table, out):
    """``out[r] = adc_distance(codes, rows[r], table)`` for a few rows (one thread)."""
    for r in range(rows.shape[0]):
        out[r] = _adc_row(codes, rows[r], table)


@njit(parallel=True, cache=True)
def adc_distances(codes, table, out):
    """ADC distances of every code row to one query: ``out[i] = sum_m table[m, codes[i, m]]``.

    ``table`` is ``(M, K)`` float32; ``out`` is ``(n,)`` float32. The sums are the
    same, bit for bit, as the distances the top-k scans report.
    """
    n = codes.shape[0]
    for i in prange(n):
        out[i] = _adc_row(codes, i, table)


@njit(cache=True)
def adc_scan_into_heap(codes, ids, table, heap_dist, heap_ids):
    """Offer every code row to an existing heap (one query, one thread).

    ``codes`` ``(n, M)``, ``ids`` ``(n,)`` int64: the id reported for row ``i``
    (e.g. the vector ids of an inverted list), ``table`` ``(M, K)`` float32,
    ``heap_dist`` float32 / ``heap_ids`` int64 of length k, a max-heap as left by
    :func:`heap_init` / :func:`heap_push`. Call :func:`heap_sort` when done.
    IVF-PQ calls this once per probed list with that list's (residual) table.
    """
    if heap_dist.shape[0] == 0:
        return
    for i in range(codes.shape[0]):
        dist = _adc_row(codes, i, table)
        if dist <= heap_dist[0]:
            heap_push(heap_dist, heap_ids, dist, ids[i])


_PRUNE_EVERY = 8  # sub-spaces between early-abandon checks


@njit(cache=True, fastmath=True)
def _min_value(table):
    """Smallest entry of a C-contiguous table (lane-wise, so it vectorises; min is exact)."""
    flat = table.ravel()
    n = flat.shape[0]
    lanes = np.full(_LANES, np.inf, dtype=np.float32)
    stop = n - n % _LANES
    for c in range(0, stop, _LANES):
        for lane in range(_LANES):
            v = flat[c + lane]
            lanes[lane] = v if v < lanes[lane] else lanes[lane]
    best = np.float32(np.inf)
    for lane in range(_LANES):
        if lanes[lane] < best:
            best = lanes[lane]
    for c in range(stop, n):
        if flat[c] < best:
            best = flat[c]
    return best


@njit(cache=True)
def _offer4(heap_dist, heap_ids, i, a0, a1, a2, a3):
    if a0 < heap_dist[0]:
        heap_push(heap_dist, heap_ids, a0, i)
    if a1 < heap_dist[0]:
        heap_push(heap_dist, heap_ids, a1, i + 1)
    if a2 < heap_dist[0]:
        heap_push(heap_dist, heap_ids, a2, i + 2)
    if a3 < heap_dist[0]:
        heap_push(heap_dist, heap_ids, a3, i + 3)


@njit(cache=True)
def _scan_plain(codes, start, stop, table, heap_dist, heap_ids):
    """Rows four at a time: four independent chains of loads and adds."""
    M = codes.shape[1]
    i = start
    while i + 4 <= stop:
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        for m in range(M):
            a0 += table[m, codes[i, m]]
            a1 += table[m, codes[i + 1, m]]
            a2 += table[m, codes[i + 2, m]]
            a3 += table[m, codes[i + 3, m]]
        top = heap_dist[0]
        if a0 < top or a1 < top or a2 < top or a3 < top:
            _offer4(heap_dist, heap_ids, i, a0, a1, a2, a3)
        i += 4
    return i


@njit(cache=True)
def _scan_pruned(codes, start, stop, table, heap_dist, heap_ids):
    """``_scan_plain`` that gives up on four rows once all their partial sums exceed the heap's top.

    Valid only when every table entry is >= 0: a partial sum can then only grow,
    in float32 too, so none of the four rows could enter the heap.
    """
    M = codes.shape[1]
    M_chunks = M - M % _PRUNE_EVERY
    i = start
    while i + 4 <= stop:
        top = heap_dist[0]
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        m = 0
        alive = True
        while m < M_chunks:
            for mm in range(m, m + _PRUNE_EVERY):
                a0 += table[mm, codes[i, mm]]
                a1 += table[mm, codes[i + 1, mm]]
                a2 += table[mm, codes[i + 2, mm]]
                a3 += table[mm, codes[i + 3, mm]]
            m += _PRUNE_EVERY
            if a0 > top and a1 > top and a2 > top and a3 > top:
                alive = False
                break
        if alive:
            for mm in range(M_chunks, M):
                a0 += table[mm, codes[i, mm]]
                a1 += table[mm, codes[i + 1, mm]]
                a2 += table[mm, codes[i + 2, mm]]
                a3 += table[mm, codes[i + 3, mm]]
            _offer4(heap_dist, heap_ids, i, a0, a1, a2, a3)
        i += 4
    return i


@njit(cache=True)
def _scan_range(codes, start, stop, table, heap_dist, heap_ids):
    """Rows ``start..stop-1`` into the heap, ids = row numbers.

    With squared-L2 tables (every entry >= 0) and at least 32 sub-spaces, groups of
    four rows are abandoned once all four partial sums exceed the heap's largest
    distance. The rows that are kept have been summed in full, in the usual order,
    so the result is the same as without the shortcut. Ids increase, so a tie with
    the root never displaces it and ``<`` suffices.
    """
    M = codes.shape[1]
    if M >= 4 * _PRUNE_EVERY and _min_value(table) >= 0:
        i = _scan_pruned(codes, start, stop, table, heap_dist, heap_ids)
    else:
        i = _scan_plain(codes, start, stop, table, heap_dist, heap_ids)
    while i < stop:
        dist = _adc_row(codes, i, table)
        if dist < heap_dist[0]:
            heap_push(heap_dist, heap_ids, dist, i)
        i += 1


@njit(parallel=True, cache=True)
def _topk_by_query(codes, tables, out_dist, out_ids):
    nq = tables.shape[0]
    n = codes.shape[0]
    for q in prange(nq):
        heap_init(out_dist[q], out_ids[q])
        _scan_range(codes, 0, n, tables[q], out_dist[q], out_ids[q])
        heap_sort(out_dist[q], out_ids[q])


@njit(parallel=True, cache=True)
def _topk_by_block(codes, tables, out_dist, out_ids, block):
    nq, k = out_dist.shape
    n = codes.shape[0]
    n_blocks = (n + block - 1) // block
    part_dist = np.empty((nq, n_blocks, k), dtype=np.float32)
    part_ids = np.empty((nq, n_blocks, k), dtype=np.int64)
    for task in prange(nq * n_blocks):
        q = task // n_blocks
        b = task % n_blocks
        heap_init(part_dist[q, b], part_ids[q, b])
        _scan_range(codes, b * block, min(n, (b + 1) * block), tables[q],
                    part_dist[q, b], part_ids[q, b])
    for q in range(nq):  # merge in block order; the result is the same as one scan
        heap_init(out_dist[q], out_ids[q])
        for b in range(n_blocks):
            for s in range(k):
                if part_ids[q, b, s] >= 0:
                    heap_push(out_dist[q], out_ids[q], part_dist[q, b, s], part_ids[q, b, s])
        heap_sort(out_dist[q], out_ids[q])


def adc_topk(codes, tables, out_dist, out_ids, n_threads=1, block=DEFAULT_SCAN_BLOCK):
    """Brute-force ADC search: the k smallest ``sum_m tables[q, m, codes[i, m]]`` per query.

    ``codes`` ``(n, M)`` uint8/uint16; ``tables`` ``(nq, M, K)`` float32;
    ``out_dist`` ``(nq, k)`` float32 and ``out_ids`` ``(nq, k)`` int64 are filled with
    each query's k smallest (distance, id) pairs, ascending, padded with
    ``(inf, -1)`` when ``k > n``. Parallel over queries when there are at least
    ``n_threads`` of them, otherwise over (query, block of ``block`` codes) tasks whose
    heaps are merged in block order. Either way the result is the same.
    """
    nq = tables.shape[0]
    if out_dist.shape[1] == 0 or nq == 0:
        return out_dist, out_ids
    if nq >= n_threads or codes.shape[0] <= block:
        _topk_by_query(codes, tables, out_dist, out_ids)
    else:
        _topk_by_block(codes, tables, out_dist, out_ids, block)
    return out_dist, out_ids
