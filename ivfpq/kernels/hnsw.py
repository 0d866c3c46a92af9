"""HNSW kernels on raw float32 vectors: the graph kernels of :mod:`ivfpq.kernels.graph`
bound to squared L2.

One graph serves three callers: the graph assigner of MOPBucket k-means (a graph over
the centroids), the HNSW index (a graph over the data) and IVF's coarse quantizer.
The space is the ``(n, d)`` float32 array of the vectors the nodes stand for, and a
prepared query is the query vector itself.

Distances are squared L2 accumulated in float32 (``fastmath``: the search only ranks;
callers that need exact distances recompute them in float64). Every query distance
goes through :func:`node_distance`.

The kernels take the space first: ``greedy_descent(data, query, ...)``,
``search_layer(data, query, ...)`` and so on, with the arguments documented in
:mod:`ivfpq.kernels.graph`. The Python side (the graph object, levels, batches) is
:mod:`ivfpq._graph`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import prefetch_row
from .ivf import rerank_exact_serial
from .graph import bind_distance, neighbour_row, thread_scratch

__all__ = [
    "node_distance",
    "pair_distance",
    "greedy_descent",
    "search_layer",
    "select_neighbours",
    "KERNELS",
    "neighbour_row",
    "thread_scratch",
    "search_few",
]


@njit(cache=True, fastmath=True)
def node_distance(data, node, query):
    """Squared L2 between ``data[node]`` and ``query`` (float32 accumulation)."""
    acc = np.float32(0.0)
    for j in range(query.shape[0]):
        diff = data[node, j] - query[j]
        acc += diff * diff
    return acc


@njit(cache=True, fastmath=True)
def pair_distance(data, a, b):
    """Squared L2 between ``data[a]`` and ``data[b]`` (float32 accumulation)."""
    acc = np.float32(0.0)
    for j in range(data.shape[1]):
        diff = data[a, j] - data[b, j]
        acc += diff * diff
    return acc


@njit(cache=True)
def _query_buffer(data):
    return np.empty(0, dtype=np.float32)


@njit(inline="always")
def _prepare_query(data, vector, buffer):
    return vector


@njit(inline="always")
def _prefetch_node(data, node):
    prefetch_row(data, node)


# All the graph kernels (see ivfpq.kernels.graph); the ones other kernels call are
# also module attributes.
KERNELS = bind_distance("l2", _query_buffer, _prepare_query, node_distance, pair_distance, _prefetch_node)
greedy_descent = KERNELS.greedy_descent
search_layer = KERNELS.search_layer
select_neighbours = KERNELS.select_neighbours
knn_search_serial = KERNELS.knn_search_serial


@njit(cache=True)
def search_few(data, queries, links0, upper, upper_offset, entry, max_level, ef, visited_all, epochs,
               labels, raw_queries, raw, inner_product, out_dist, out_ids):
    """A few queries on the calling thread, in one call: the beam search of
    ``knn_search_serial`` (``queries`` as the graph stores them), then the exact
    re-ranking of ``rerank_exact_serial`` of the nodes found (``raw_queries`` against
    ``raw``), under their ``labels``. The batch path makes the same two calls from
    Python; here a single query does not pay for two dispatches and the arrays
    between them (see benchmarks/README.md, "ann")."""
    nq, k = out_ids.shape
    nodes = np.empty((nq, k), dtype=np.int32)
    approx = np.empty((nq, k), dtype=np.float32)
    knn_search_serial(data, queries, links0, upper, upper_offset, entry, max_level, max(ef, k),
                      nodes, approx, visited_all, epochs, 1)
    # Where a node is -1 its label is never read: the re-ranking skips the slot.
    found = np.empty((nq, k), dtype=np.int64)
    for q in range(nq):
        for j in range(k):
            found[q, j] = labels[max(nodes[q, j], 0)]
    rerank_exact_serial(raw_queries, nodes, found, raw, inner_product, out_dist, out_ids)
