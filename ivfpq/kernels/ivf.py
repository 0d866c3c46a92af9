"""Inverted-list kernels: moving list segments, removing ids, scanning lists.

The lists live in one pool of rows (``pool[rows, width]`` and ``pool_ids[rows]``);
list ``l`` occupies rows ``offsets[l] : offsets[l] + sizes[l]``. Searches run in
parallel over queries; each query owns its heap, so results do not depend on the
thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import serial_twin
from .heap import heap_sort, heap_sort_rows, sift_down, sift_down_rows, worse

# Reassociation lets LLVM vectorise the distance sums (the float64 sum of float32
# products changes only in its last bits). No "nnan"/"ninf": heaps start at +inf.
SAFE_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

__all__ = [
    "move_segments",
    "mark_removed",
    "compact_lists",
    "ivf_flat_search",
    "ivf_topk_probes",
    "probe_scores_few",
    "ivf_pq_search",
    "rerank_exact",
    "rerank_exact_serial",
    "ivf_flat_search_serial",
    "ivf_pq_search_serial",
    "ivf_topk_probes_serial",
    "query_tables",
    "TABLE_PER_QUERY",
    "TABLE_PRECOMPUTED",
    "TABLE_PER_LIST",
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


@njit(parallel=True, cache=True)
def ivf_topk_probes(scores, nprobe, probes, probe_scores):
    """probes[q] = the ``nprobe`` columns of ``scores[q]`` with the smallest values, best
    first (ties to the lower column); ``probe_scores[q]`` their values. Queries run in
    parallel."""
    nq, nlist = scores.shape
    for q in prange(nq):
        dist = np.empty(nprobe, dtype=np.float64)
        ids = np.empty(nprobe, dtype=np.int64)
        dist[:] = np.inf
        ids[:] = -1
        for c in range(nlist):
            s = scores[q, c]
            if worse(dist[0], ids[0], s, c):
                sift_down(dist, ids, nprobe, s, c)
        heap_sort(dist, ids)
        for p in range(nprobe):
            probes[q, p] = ids[p]
            probe_scores[q, p] = dist[p]


@njit(cache=True, fastmath=SAFE_FASTMATH)
def probe_scores_few(Q, scaled_t, c_sq, l2, scores):
    """The coarse scores of a few queries on the calling thread, without BLAS:
    ``Q @ scaled_t`` (``scaled_t`` is ``-2 C^T`` for L2, ``-C^T`` for inner product),
    plus ``|c|^2`` for L2, in float32, as the batch path's product computes them (up
    to the order of the additions). A single row's product through BLAS costs more
    than this loop, and would need BLAS's threads fixed around it."""
    nq, d = Q.shape
    nlist = scaled_t.shape[1]
    for q in range(nq):
        row = scores[q]
        if l2:
            row[:] = c_sq
        else:
            row[:] = 0
        for j in range(d):
            w = Q[q, j]
            for c in range(nlist):
                row[c] += w * scaled_t[j, c]


@njit(inline="always")
def _exact_l2(q, x):
    acc = 0.0
    for j in range(q.shape[0]):
        diff = np.float64(q[j]) - np.float64(x[j])
        acc += diff * diff
    return acc


@njit(parallel=True, cache=True, fastmath=SAFE_FASTMATH)
def ivf_flat_search(Q, probes, pool, pool_ids, offsets, sizes, inner_product, vector_max_norm, out_dist, out_ids):
    """Exact scan of each query's probed lists with a top-k heap per query.

    L2: a float32 distance (8 lanes per instruction) screens each vector; only those
    within a rounding margin of the heap's worst entry get their distance recomputed
    in float64, which is what the heap holds and compares. So the result equals a
    float64 brute force (ties by id) at float32 speed. ``out_dist`` holds squared
    distances, ascending. Inner product: the same with a float32 dot product, whose
    error is at most ``gamma_d |q| |x|``, with ``|x|`` at most ``vector_max_norm`` (any
    upper bound on the norms of the stored vectors); the heap holds negated float64
    scores, which the caller negates back.
    """
    nq, d = Q.shape
    k = out_dist.shape[1]
    # float32 rounding of d squared differences and their sum stays far below this
    margin = 1.0 + max(1e-4, 4.0 * (d + 2) * 2.0 ** -24)
    gamma = (d + 2) * 2.0 ** -24 / (1.0 - (d + 2) * 2.0 ** -24)
    for qi in prange(nq):
        dist = out_dist[qi]
        ids = out_ids[qi]
        dist[:] = np.inf
        ids[:] = -1
        q = Q[qi]
        screen = np.float32(np.inf)
        q_norm = 0.0
        for j in range(d):
            q_norm += np.float64(q[j]) * np.float64(q[j])
        # Four times the float32 dot product's error bound (gamma_d |q| |x|), so the
        # screen never drops a row that the float64 score would keep.
        ip_slack = 4.0 * gamma * np.sqrt(q_norm) * vector_max_norm
        ip_screen = np.inf
        for p in range(probes.shape[1]):
            l = probes[qi, p]
            if l < 0:
                continue
            start = offsets[l]
            for r in range(start, start + sizes[l]):
                x = pool[r]
                if inner_product:
                    approx = np.float32(0.0)
                    for j in range(d):
                        approx += q[j] * x[j]
                    if -np.float64(approx) <= ip_screen:
                        acc = 0.0
                        for j in range(d):
                            acc -= np.float64(q[j]) * np.float64(x[j])
                        if worse(dist[0], ids[0], acc, pool_ids[r]):
                            sift_down(dist, ids, k, acc, pool_ids[r])
                            ip_screen = dist[0] + ip_slack
                else:
                    approx = np.float32(0.0)
                    for j in range(d):
                        diff = q[j] - x[j]
                        approx += diff * diff
                    if approx <= screen:
                        exact = _exact_l2(q, x)
                        if worse(dist[0], ids[0], exact, pool_ids[r]):
                            sift_down(dist, ids, k, exact, pool_ids[r])
                            if dist[0] < np.inf:
                                screen = np.float32(dist[0] * margin)
        heap_sort(dist, ids)


# ----------------------------------------------------------------------------- IVF-PQ


# How the table of a (query, list) pair is made (see ivf_pq_search).
TABLE_PER_QUERY = 0
TABLE_PRECOMPUTED = 1
TABLE_PER_LIST = 2


@njit(parallel=True, cache=True)
def ivf_pq_search(probes, coarse, tables_q, list_tables, centroids, codebooks, Q, mode,
                  codes, pool_ids, offsets, sizes, out_dist, out_ids, out_rows):
    """ADC scan of each query's probed lists of PQ codes, top-k heap per query.

    The distance of code row ``r`` in list ``l`` probed at position ``p`` is
    ``coarse[q, p] + sum_m T[m, codes[r, m]]`` (float32 sums, in order m = 0..M-1),
    where the table ``T`` depends on ``mode``:

    * ``TABLE_PER_QUERY``: ``T = tables_q[q]`` (no residuals, or inner product on
      residuals, where ``coarse`` carries ``-<q, c_l>``);
    * ``TABLE_PRECOMPUTED``: ``T = list_tables[l] + tables_q[q]``, the L2 residual
      decomposition ``|q - c - r|^2 = |q - c|^2 + (|r|^2 + 2<c, r>) - 2<q, r>`` with
      ``coarse = |q - c|^2``;
    * ``TABLE_PER_LIST``: ``T[m, j] = |(q - c_l)_m - codebooks[m, j]|^2`` computed
      here, ``coarse = 0`` (when precomputed tables would take too much memory).

    ``out_dist``/``out_ids``/``out_rows`` (nq, kk) receive the ``kk`` best, sorted,
    with the pool row of each result (for exact re-ranking); ties go to the smaller id.
    """
    nq = probes.shape[0]
    nprobe = probes.shape[1]
    M = codes.shape[1]
    K = codebooks.shape[1]
    dsub = codebooks.shape[2]
    kk = out_dist.shape[1]
    for qi in prange(nq):
        dist = out_dist[qi]
        ids = out_ids[qi]
        rows = out_rows[qi]
        dist[:] = np.inf
        ids[:] = -1
        rows[:] = -1
        table = np.empty((M, K), dtype=np.float32)
        if mode == TABLE_PER_QUERY:
            table[:, :] = tables_q[qi]
        for p in range(nprobe):
            l = probes[qi, p]
            if l < 0 or sizes[l] == 0:
                continue
            if mode == TABLE_PRECOMPUTED:
                for m in range(M):
                    for j in range(K):
                        table[m, j] = list_tables[l, m, j] + tables_q[qi, m, j]
            elif mode == TABLE_PER_LIST:
                for m in range(M):
                    for j in range(K):
                        acc = 0.0
                        for t in range(dsub):
                            f = m * dsub + t
                            diff = (np.float64(Q[qi, f]) - np.float64(centroids[l, f])
                                    - np.float64(codebooks[m, j, t]))
                            acc += diff * diff
                        table[m, j] = acc
            base = coarse[qi, p]
            start = offsets[l]
            for r in range(start, start + sizes[l]):
                acc32 = np.float32(0.0)
                for m in range(M):
                    acc32 += table[m, codes[r, m]]
                d = np.float64(base + acc32)
                if worse(dist[0], ids[0], d, pool_ids[r]):
                    sift_down_rows(dist, ids, rows, kk, d, pool_ids[r], r)
        heap_sort_rows(dist, ids, rows, kk)


@njit(parallel=True, cache=True, fastmath=SAFE_FASTMATH)
def rerank_exact(Q, cand_rows, cand_ids, raw, inner_product, out_dist, out_ids):
    """Re-rank candidates (pool rows, -1 = none) by exact float64 distance to the raw vectors.

    ``out_dist``/``out_ids`` (nq, k) receive the best ``k``, ties by smaller id.
    """
    nq, d = Q.shape
    k = out_dist.shape[1]
    for qi in prange(nq):
        dist = out_dist[qi]
        ids = out_ids[qi]
        dist[:] = np.inf
        ids[:] = -1
        for c in range(cand_rows.shape[1]):
            r = cand_rows[qi, c]
            if r < 0:
                continue
            acc = 0.0
            if inner_product:
                for j in range(d):
                    acc -= np.float64(Q[qi, j]) * np.float64(raw[r, j])
            else:
                for j in range(d):
                    diff = np.float64(Q[qi, j]) - np.float64(raw[r, j])
                    acc += diff * diff
            if worse(dist[0], ids[0], acc, cand_ids[qi, c]):
                sift_down(dist, ids, k, acc, cand_ids[qi, c])
        heap_sort(dist, ids)


rerank_exact_serial = serial_twin(rerank_exact, fastmath=SAFE_FASTMATH)
ivf_flat_search_serial = serial_twin(ivf_flat_search, fastmath=SAFE_FASTMATH)
ivf_pq_search_serial = serial_twin(ivf_pq_search)
ivf_topk_probes_serial = serial_twin(ivf_topk_probes)


@njit(parallel=True, cache=True, fastmath=SAFE_FASTMATH)
def query_tables(Q, codebooks_t, scale, q_sq_weight, c_sq, out):
    """out[q, m, c] = scale * <Q[q]_m, codebook[m, c]> + q_sq_weight * |Q[q]_m|^2 + c_sq[m, c].

    ``codebooks_t`` is (M, dsub, K): the code words of sub-space ``m`` stored by
    coordinate, so the inner loop runs over the K code words (vectorised). Float32,
    as the tables are: ``scale=-2, q_sq_weight=1`` and the code words' squared norms
    give squared distances; ``scale=-2`` (or -1) and zeros give the cross terms.
    """
    nq = Q.shape[0]
    M, dsub, K = codebooks_t.shape
    for q in prange(nq):
        for m in range(M):
            row = out[q, m]
            q_sq = np.float32(0.0)
            for t in range(dsub):
                v = Q[q, m * dsub + t]
                q_sq += v * v
            base = q_sq_weight * q_sq
            for c in range(K):
                row[c] = base + c_sq[m, c]
            for t in range(dsub):
                v = scale * Q[q, m * dsub + t]
                for c in range(K):
                    row[c] += v * codebooks_t[m, t, c]
