"""HNSW on product-quantized vectors: the graph of :mod:`ivfpq.kernels.hnsw`, distances on codes.

The graph arrays are the same (``links0``, ``upper``, ``upper_offset``, ``levels``);
only the distances change:

* a query (or a node being inserted, whose raw vector is at hand) is compared with a
  node through an asymmetric table: ``sum_m table[m, codes[node, m]]`` with
  ``table[m, c] = |x_m - codebooks[m, c]|^2`` (ADC, float32 sum in order m = 0..M-1);
* two stored nodes are compared through their reconstructions (symmetric distance,
  SDC, read from the code words), for the neighbour-selection heuristic.

Insertion follows the kernel's batch scheme, so the graph does not depend on the
thread count: within a batch each new node searches the graph as it stood before the
batch and writes only its own rows; then each target merges its new reverse edges.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .hnsw import (
    _EMPTY,
    _commit_rows,
    _group_starts,
    _max_pop,
    _max_push,
    _min_pop,
    _min_push,
    _reverse_edges,
    neighbour_row,
    thread_scratch,
)

__all__ = [
    "fill_table_l2",
    "pq_insert_batch",
    "pq_merge_reverse_edges",
    "pq_knn_search",
]


@njit(inline="always")
def _adc(codes, node, table):
    acc = np.float32(0.0)
    for m in range(codes.shape[1]):
        acc += table[m, codes[node, m]]
    return acc


@njit(inline="always")
def _sdc(codes, a, b, codebooks):
    """Squared distance between the reconstructions of nodes ``a`` and ``b``.

    Read from the code words (d * K floats, which stay in cache) rather than from
    (M, K, K) symmetric tables, whose random reads miss the cache at M >= 10.
    """
    acc = np.float32(0.0)
    dsub = codebooks.shape[2]
    for m in range(codes.shape[1]):
        ca = codes[a, m]
        cb = codes[b, m]
        if ca != cb:
            for t in range(dsub):
                diff = codebooks[m, ca, t] - codebooks[m, cb, t]
                acc += diff * diff
    return acc


@njit(cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def fill_table_l2(vector, codebooks_t, table):
    """table[m, c] = |vector[m-th sub-space] - code word c of sub-space m|^2 (float32).

    ``codebooks_t`` is (M, dsub, K): code words stored by coordinate, so the inner
    loop runs over the K code words and vectorises.
    """
    M, dsub, K = codebooks_t.shape
    for m in range(M):
        row = table[m]
        for c in range(K):
            row[c] = 0.0
        for t in range(dsub):
            v = vector[m * dsub + t]
            for c in range(K):
                diff = v - codebooks_t[m, t, c]
                row[c] += diff * diff


# ----------------------------------------------------------------------------- search


@njit(cache=True)
def _greedy_descent(codes, table, links0, upper, upper_offset, start, start_dist, top_layer, bottom_layer):
    node = start
    best = start_dist
    for layer in range(top_layer, bottom_layer - 1, -1):
        improved = True
        while improved:
            improved = False
            row = neighbour_row(links0, upper, upper_offset, node, layer)
            for t in range(row.shape[0]):
                other = row[t]
                if other < 0:
                    break
                dist = _adc(codes, other, table)
                if dist < best:
                    best = dist
                    node = other
                    improved = True
    return node, best


@njit(cache=True)
def _search_layer(codes, table, links0, upper, upper_offset, layer, seeds, n_seeds, ef,
                  visited, epoch, cand_d, cand_i, res_d, res_i):
    """Beam search of width ``ef`` on one layer by ADC; results nearest first."""
    n_cand = 0
    n_res = 0
    for s in range(n_seeds):
        node = seeds[s]
        if node < 0 or visited[node] == epoch:
            continue
        visited[node] = epoch
        dist = _adc(codes, node, table)
        n_cand = _min_push(cand_d, cand_i, n_cand, dist, node)
        n_res = _max_push(res_d, res_i, n_res, dist, node)
        if n_res > ef:
            n_res = _max_pop(res_d, res_i, n_res)
    while n_cand > 0:
        dist_c = cand_d[0]
        node_c = cand_i[0]
        if n_res >= ef and dist_c > res_d[0]:
            break
        n_cand = _min_pop(cand_d, cand_i, n_cand)
        row = neighbour_row(links0, upper, upper_offset, node_c, layer)
        for t in range(row.shape[0]):
            other = row[t]
            if other < 0:
                break
            if visited[other] == epoch:
                continue
            visited[other] = epoch
            dist = _adc(codes, other, table)
            if n_res < ef or dist < res_d[0]:
                n_cand = _min_push(cand_d, cand_i, n_cand, dist, other)
                n_res = _max_push(res_d, res_i, n_res, dist, other)
                if n_res > ef:
                    n_res = _max_pop(res_d, res_i, n_res)
    count = n_res
    while n_res > 0:
        d0 = res_d[0]
        i0 = res_i[0]
        n_res = _max_pop(res_d, res_i, n_res)
        res_d[n_res] = d0
        res_i[n_res] = i0
    return count


@njit(parallel=True, cache=True)
def pq_knn_search(codes, codebooks_t, links0, upper, upper_offset, entry, max_level, queries, ef,
                  out_i, out_d, visited_all, epochs, n_chunks):
    """For each query, the ``out_i.shape[1]`` best nodes of a beam of width ``ef`` by ADC.

    ``out_i``/``out_d`` come pre-filled with -1 / inf; results are nearest first.
    """
    n = links0.shape[0]
    count = queries.shape[0]
    M, _, K = codebooks_t.shape
    width = out_i.shape[1]
    for chunk in prange(n_chunks):
        lo = chunk * count // n_chunks
        hi = (chunk + 1) * count // n_chunks
        if lo >= hi:
            continue
        tid, visited, epoch, cand_d, cand_i, res_d, res_i = thread_scratch(visited_all, epochs, n, ef)
        table = np.empty((M, K), dtype=np.float32)
        seeds = np.empty(1, dtype=np.int32)
        for q in range(lo, hi):
            fill_table_l2(queries[q], codebooks_t, table)
            ep_dist = _adc(codes, entry, table)
            ep, ep_dist = _greedy_descent(codes, table, links0, upper, upper_offset, entry, ep_dist,
                                          max_level, 1)
            seeds[0] = ep
            n_res = _search_layer(codes, table, links0, upper, upper_offset, 0, seeds, 1, ef,
                                  visited, epoch, cand_d, cand_i, res_d, res_i)
            epoch += 1
            for t in range(min(width, n_res)):
                out_i[q, t] = res_i[t]
                out_d[q, t] = res_d[t]
        epochs[tid] = epoch


# ----------------------------------------------------------------------------- insertion


@njit(cache=True)
def _select_neighbours(codes, codebooks, cand_i, cand_d, n_cand, limit, out):
    """The heuristic of :func:`ivfpq.kernels.hnsw.select_neighbours`, on SDC distances."""
    kept = 0
    for a in range(n_cand):
        if kept >= limit:
            break
        c = cand_i[a]
        good = True
        for b in range(kept):
            if _sdc(codes, c, out[b], codebooks) <= cand_d[a]:
                good = False
                break
        if good:
            out[kept] = c
            kept += 1
    for b in range(kept, out.shape[0]):
        out[b] = _EMPTY
    return kept


@njit(parallel=True, cache=True)
def pq_insert_batch(codes, codebooks, codebooks_t, vectors, links0, upper, upper_offset, levels, nodes,
                    entry, max_level, ef_construction, new0, new_upper, new_upper_offset,
                    visited_all, epochs, n_chunks):
    """Phase 1 of a batch: node ``nodes[p]`` (raw vector ``vectors[p]``, its codes already
    stored) searches the graph read-only and writes its rows to ``new0``/``new_upper``."""
    n = links0.shape[0]
    count = nodes.shape[0]
    M, K, _ = codebooks.shape
    for chunk in prange(n_chunks):
        lo = chunk * count // n_chunks
        hi = (chunk + 1) * count // n_chunks
        if lo >= hi:
            continue
        tid, visited, epoch, cand_d, cand_i, res_d, res_i = thread_scratch(
            visited_all, epochs, n, ef_construction)
        table = np.empty((M, K), dtype=np.float32)
        seeds = np.empty(1, dtype=np.int32)
        for p in range(lo, hi):
            node = nodes[p]
            node_level = levels[node]
            fill_table_l2(vectors[p], codebooks_t, table)
            ep = entry
            ep_dist = _adc(codes, ep, table)
            ep, ep_dist = _greedy_descent(codes, table, links0, upper, upper_offset, ep, ep_dist,
                                          max_level, node_level + 1)
            o = new_upper_offset[p]
            for layer in range(min(node_level, max_level), -1, -1):
                seeds[0] = ep
                visited[node] = epoch  # a node is never its own neighbour
                n_res = _search_layer(codes, table, links0, upper, upper_offset, layer, seeds, 1,
                                      ef_construction, visited, epoch, cand_d, cand_i, res_d, res_i)
                epoch += 1
                out = new0[p] if layer == 0 else new_upper[o + layer - 1]
                _select_neighbours(codes, codebooks, res_i, res_d, n_res, out.shape[0], out)
                if n_res > 0:
                    ep = res_i[0]
        epochs[tid] = epoch


@njit(parallel=True, cache=True)
def pq_merge_reverse_edges(codes, codebooks, links0, upper, upper_offset, keys, group_starts, n_total):
    """Phase 2 of a batch: each target adds its new incoming edges, re-selecting by SDC
    when its row overflows."""
    n_groups = group_starts.shape[0] - 1
    for g in prange(n_groups):
        lo = group_starts[g]
        hi = group_starts[g + 1]
        key = keys[lo]
        layer = np.int64(key // (np.int64(n_total) * n_total))
        target = (key // n_total) % n_total
        row = neighbour_row(links0, upper, upper_offset, target, layer)
        width = row.shape[0]
        filled = 0
        while filled < width and row[filled] >= 0:
            filled += 1
        cand_i = np.empty(filled + hi - lo, dtype=np.int32)
        n_cand = 0
        for t in range(filled):
            cand_i[n_cand] = row[t]
            n_cand += 1
        for p in range(lo, hi):
            source = np.int32(keys[p] % n_total)
            seen = False
            for t in range(filled):
                if row[t] == source:
                    seen = True
                    break
            if not seen and source != target:
                cand_i[n_cand] = source
                n_cand += 1
        if n_cand <= width:
            for t in range(filled, n_cand):
                row[t] = cand_i[t]
            continue
        cand_d = np.empty(n_cand, dtype=np.float32)
        for t in range(n_cand):
            cand_d[t] = _sdc(codes, target, cand_i[t], codebooks)
        order = np.argsort(cand_d, kind="mergesort")
        _select_neighbours(codes, codebooks, cand_i[order], cand_d[order], n_cand, width, row)


def pq_insert_nodes(graph, codes, codebooks, codebooks_t, nodes, vectors, ef_construction,
                    batch_fraction=0.1, max_batch=4096, n_chunks=None):
    """Link ``nodes`` (codes stored, raw ``vectors`` aligned with them) into ``graph``.

    The same batch sizes as :func:`ivfpq.kernels.hnsw.insert_nodes`; a batch node of a
    level above the graph's becomes the entry point.
    """
    import numba

    nodes = np.ascontiguousarray(nodes, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    start = 0
    if nodes.size and graph.entry_point < 0:
        graph.entry_point = int(nodes[0])
        graph.max_level = int(graph.levels[nodes[0]])
        graph.n_linked = 1
        start = 1
    n = graph.n_nodes
    threads = numba.get_num_threads()
    while start < nodes.size:
        size = int(min(max_batch, max(1, int(graph.n_linked * batch_fraction)), nodes.size - start))
        batch = nodes[start:start + size]
        batch_levels = graph.levels[batch]
        new_offset = np.zeros(size, dtype=np.int64)
        if size > 1:
            new_offset[1:] = np.cumsum(batch_levels, dtype=np.int64)[:-1]
        new0 = np.full((size, graph.links0.shape[1]), _EMPTY, dtype=np.int32)
        new_upper = np.full((max(1, int(batch_levels.sum())), graph.M), _EMPTY, dtype=np.int32)
        visited, epochs = graph.scratch()
        chunks = int(max(1, min(size // 4, 8 * threads)))
        pq_insert_batch(codes, codebooks, codebooks_t, vectors[start:start + size], graph.links0, graph.upper,
                        graph.upper_offset, graph.levels, batch, graph.entry_point, graph.max_level,
                        ef_construction, new0, new_upper, new_offset, visited, epochs, chunks)
        _commit_rows(graph.links0, graph.upper, graph.upper_offset, graph.levels, batch,
                     new0, new_upper, new_offset)
        keys = _reverse_edges(graph.links0, graph.upper, graph.upper_offset, graph.levels, batch,
                              graph.max_level, n)
        pq_merge_reverse_edges(codes, codebooks, graph.links0, graph.upper, graph.upper_offset, keys,
                               _group_starts(keys, n), n)
        if int(batch_levels.max()) > graph.max_level:
            top = int(np.argmax(batch_levels))
            graph.entry_point = int(batch[top])
            graph.max_level = int(batch_levels[top])
        start += size
        graph.n_linked += size
    return graph
