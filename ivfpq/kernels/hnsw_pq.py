"""HNSW kernels on product-quantized vectors: the graph kernels of
:mod:`ivfpq.kernels.graph` bound to distances on codes.

The space is the tuple ``(codes, codebooks, codebooks_t)``: ``codes`` (n, M) uint8 or
uint16, ``codebooks`` (M, K, dsub) float32 and ``codebooks_t`` (M, dsub, K), the same
code words stored by coordinate.

* a query (or a node being inserted, whose raw vector is at hand) is compared with a
  node through an asymmetric table: ``sum_m table[m, codes[node, m]]`` with
  ``table[m, c] = |x_m - codebooks[m, c]|^2`` (ADC, float32 sum in order m = 0..M-1);
  the prepared query is that (M, K) table;
* two stored nodes are compared through their reconstructions (symmetric distance,
  SDC, read from the code words), for the neighbour-selection heuristic.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import prefetch_row
from .graph import bind_distance

__all__ = [
    "fill_table_l2",
    "adc_distance",
    "sdc_distance",
    "KERNELS",
]


@njit(inline="always")
def adc_distance(space, node, table):
    """``sum_m table[m, codes[node, m]]`` (float32, in order m = 0..M-1)."""
    codes = space[0]
    acc = np.float32(0.0)
    for m in range(codes.shape[1]):
        acc += table[m, codes[node, m]]
    return acc


@njit(inline="always")
def sdc_distance(space, a, b):
    """Squared distance between the reconstructions of nodes ``a`` and ``b``.

    Read from the code words (d * K floats, which stay in cache) rather than from
    (M, K, K) symmetric tables, whose random reads miss the cache at M >= 10.
    """
    codes = space[0]
    codebooks = space[1]
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


@njit(cache=True)
def _query_buffer(space):
    M, _, K = space[2].shape
    return np.empty((M, K), dtype=np.float32)


@njit(inline="always")
def _prepare_query(space, vector, table):
    fill_table_l2(vector, space[2], table)
    return table


# greedy_descent, search_layer, select_neighbours, connect_node, search_new_rows,
# merge_reverse_edges, knn_search: see ivfpq.kernels.graph.
@njit(inline="always")
def _prefetch_node(space, node):
    prefetch_row(space[0], node)  # the node's codes


KERNELS = bind_distance("pq_adc_sdc", _query_buffer, _prepare_query, adc_distance, sdc_distance,
                        _prefetch_node)
