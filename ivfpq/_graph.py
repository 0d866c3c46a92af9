"""HNSW graphs on the Python side: the graph object, random levels, batched insertion,
repair and k-NN search, over the kernels of :mod:`ivfpq.kernels.graph`.

Used by the HNSW index (:mod:`ivfpq.index.hnsw`), IVF's graph coarse quantizer and
the graph assigner of MOPBucket k-means (:mod:`ivfpq.cluster.assign`); it sits below
both, above the kernels. See :mod:`ivfpq.kernels.graph` for the array layout.

The same orchestration serves every distance: raw vectors (:mod:`ivfpq.kernels.hnsw`,
the space is ``graph.data``) and PQ codes (:mod:`ivfpq.kernels.hnsw_pq`, the space is
``(codes, codebooks, codebooks_t)`` and the raw vectors of new nodes are passed in).
"""

from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np

from .kernels._jit import for_queries
from .kernels.hnsw import KERNELS as _raw
from .kernels.hnsw_pq import KERNELS as _pq
from .kernels.graph import EMPTY, commit_rows, group_starts, reverse_edges

__all__ = [
    "HNSWGraph",
    "draw_levels",
    "empty_graph",
    "build_graph",
    "insert_nodes",
    "repair_nodes",
    "knn_search",
    "pq_insert_nodes",
    "pq_knn_search",
    "PARALLEL_MIN_NODES",
]


class HNSWGraph:
    """A multi-layer navigable small-world graph over the rows of ``data``, as flat arrays.

    Build it with :func:`build_graph`; search it with :func:`knn_search` (top-k), or
    call the kernels :func:`ivfpq.kernels.hnsw.greedy_descent` and
    :func:`ivfpq.kernels.hnsw.search_layer` on its arrays from Numba code. See
    :mod:`ivfpq.kernels.graph` for the layout. ``n_linked`` counts the nodes inserted
    so far.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq._graph import build_graph, knn_search
    >>> data = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    >>> graph = build_graph(data, M=8, ef_construction=32, seed=0)
    >>> ids, dists = knn_search(graph, data[:3], k=1, ef=16)
    >>> ids[:, 0].tolist()
    [0, 1, 2]
    """

    def __init__(self, data, levels, links0, upper, upper_offset, entry_point=-1, max_level=-1,
                 M=16, n_linked=0):
        self.data = data
        self.levels = levels
        self.links0 = links0
        self.upper = upper
        self.upper_offset = upper_offset
        self.entry_point = int(entry_point)
        self.max_level = int(max_level)
        self.M = int(M)
        self.n_linked = int(n_linked)
        self._visited = None
        self._epochs = None

    @property
    def n_nodes(self):
        return self.data.shape[0]

    def scratch(self):
        """Per-thread visited marks and epochs for the search kernels (kept between calls)."""
        threads = numba.config.NUMBA_NUM_THREADS
        if self._visited is None or self._visited.shape != (threads, self.n_nodes):
            self._visited = np.zeros((threads, self.n_nodes), dtype=np.int32)
            self._epochs = np.ones(threads, dtype=np.int64)
        return self._visited, self._epochs

    def degree(self, layer=0):
        """Number of neighbours of every node on ``layer`` (nodes below it get 0)."""
        if layer == 0:
            return (self.links0 >= 0).sum(axis=1)
        out = np.zeros(self.n_nodes, dtype=np.int64)
        has = self.levels >= layer
        rows = self.upper_offset[has] + layer - 1
        out[has] = (self.upper[rows] >= 0).sum(axis=1)
        return out

    def neighbours(self, node, layer=0):
        """Neighbour ids of ``node`` on ``layer`` (without the -1 padding)."""
        if layer == 0:
            row = self.links0[node]
        elif self.levels[node] >= layer:
            row = self.upper[self.upper_offset[node] + layer - 1]
        else:
            return np.empty(0, dtype=np.int32)
        return row[row >= 0]


def draw_levels(n, M, rng):
    """Top layer of each node: ``floor(-ln(U) / ln(M))``, as in the HNSW paper."""
    uniform = 1.0 - rng.random(n)  # in (0, 1]
    return np.floor(-np.log(uniform) / np.log(max(M, 2))).astype(np.int32)


def empty_graph(data, levels, M):
    """A graph over ``data`` with the given levels and no edges yet."""
    n = data.shape[0]
    offsets = np.full(n, -1, dtype=np.int64)
    has_upper = levels > 0
    starts = np.concatenate(([0], np.cumsum(levels, dtype=np.int64)[:-1])) if n else np.zeros(0, np.int64)
    offsets[has_upper] = starts[has_upper]
    links0 = np.full((n, 2 * M), EMPTY, dtype=np.int32)
    upper = np.full((int(levels.sum()), M), EMPTY, dtype=np.int32)
    return HNSWGraph(data, levels, links0, upper, offsets, -1, -1, M, 0)


# A parallel region costs a wake-up of every worker thread (tens of microseconds), so
# batches below this many nodes are inserted on one thread. A new node's search for
# its rows is a beam search of ef_construction, and each of its edges is merged into a
# target's row: even a few nodes per thread outweigh the wake-up. Neither the
# threshold nor the thread count changes a result.
PARALLEL_MIN_NODES = 16


@contextmanager
def _serial_below(count, minimum=PARALLEL_MIN_NODES):
    """Run the Numba kernels inside on one thread when ``count`` is below ``minimum``."""
    if count >= minimum:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _n_chunks(count, min_per_chunk=4):
    if count < 2 * min_per_chunk:  # one chunk, without asking Numba for its thread count
        return 1 if count else 0
    return int(min(count // min_per_chunk, 8 * numba.get_num_threads()))


def _new_rows(graph, kernels, space, vectors, nodes, ef_construction, seed_from_rows, n_mates=0):
    """Phase 1 for ``nodes`` (raw vectors ``vectors``, aligned): their new rows,
    computed against the current graph and, with ``n_mates``, each node's nearest
    nodes of the batch; then written to the graph."""
    node_levels = graph.levels[nodes]
    new_offset = np.zeros(nodes.size, dtype=np.int64)
    if nodes.size > 1:
        new_offset[1:] = np.cumsum(node_levels, dtype=np.int64)[:-1]
    new0 = np.full((nodes.size, graph.links0.shape[1]), EMPTY, dtype=np.int32)
    new_upper = np.full((max(1, int(node_levels.sum())), graph.M), EMPTY, dtype=np.int32)
    visited, epochs = graph.scratch()
    with _serial_below(nodes.size):
        kernels.search_new_rows(space, vectors, graph.links0, graph.upper, graph.upper_offset,
                                graph.levels, nodes, graph.entry_point, graph.max_level,
                                seed_from_rows, ef_construction, n_mates, new0, new_upper, new_offset,
                                visited, epochs, _n_chunks(nodes.size))
    commit_rows(graph.links0, graph.upper, graph.upper_offset, graph.levels, nodes,
                new0, new_upper, new_offset)


def _add_reverse_edges(graph, kernels, space, nodes):
    n = graph.links0.shape[0]
    keys = reverse_edges(graph.links0, graph.upper, graph.upper_offset, graph.levels, nodes,
                         graph.max_level, n)
    starts = group_starts(keys, n)
    with _serial_below(nodes.size):
        kernels.merge_reverse_edges(space, graph.links0, graph.upper, graph.upper_offset, keys,
                                    starts, n)


def _insert(graph, kernels, space, nodes, vectors_of, ef_construction, batch_fraction, max_batch):
    """The batch loop of :func:`insert_nodes`; ``vectors_of(start, stop)`` gives the raw
    vectors of ``nodes[start:stop]``."""
    start = 0
    if nodes.size and graph.entry_point < 0:
        graph.entry_point = int(nodes[0])
        graph.max_level = int(graph.levels[nodes[0]])
        graph.n_linked = 1
        start = 1
    while start < nodes.size:
        size = int(min(max_batch, max(1, int(graph.n_linked * batch_fraction)), nodes.size - start))
        batch = nodes[start:start + size]
        _new_rows(graph, kernels, space, vectors_of(start, start + size), batch, ef_construction,
                  False, graph.M)
        _add_reverse_edges(graph, kernels, space, batch)
        batch_levels = graph.levels[batch]
        if int(batch_levels.max()) > graph.max_level:
            top = int(np.argmax(batch_levels))
            graph.entry_point = int(batch[top])
            graph.max_level = int(batch_levels[top])
        start += size
        graph.n_linked += size
    return graph


def insert_nodes(graph, nodes, ef_construction=64, batch_fraction=0.1, max_batch=4096):
    """Link ``nodes`` (ids of rows of ``graph.data`` not linked yet) into ``graph``.

    Batches grow with the graph: each holds at most ``batch_fraction`` of the nodes
    already linked (at least one, at most ``max_batch``). A new node chooses its
    neighbours among the graph's nodes found by its search and its ``M`` nearest
    nodes of its own batch (found by brute force), so that points inserted together
    still link to each other. A batch node of a level above the graph's becomes the
    entry point.

    Parameters
    ----------
    graph : HNSWGraph
    nodes : array of int
    ef_construction : int, default=64
    batch_fraction : float, default=0.1
    max_batch : int, default=4096

    Returns
    -------
    HNSWGraph
        ``graph``, modified in place.
    """
    nodes = np.ascontiguousarray(nodes, dtype=np.int64)
    data = graph.data
    return _insert(graph, _raw, data, nodes, lambda lo, hi: data[nodes[lo:hi]], ef_construction,
                   batch_fraction, max_batch)


def pq_insert_nodes(graph, codes, codebooks, codebooks_t, nodes, vectors, ef_construction,
                    batch_fraction=0.1, max_batch=4096, n_chunks=None):
    """Link ``nodes`` (codes stored, raw ``vectors`` aligned with them) into ``graph`` by
    distances on the codes (ADC to the new node, SDC between stored nodes).

    The same batches as :func:`insert_nodes`; ``n_chunks`` is ignored (kept for callers).

    Parameters
    ----------
    graph : HNSWGraph
    codes : (n, M) uint8 or uint16 array; the rows of ``nodes`` already hold their codes.
    codebooks : (M, K, dsub) float32
    codebooks_t : (M, dsub, K) float32, the same code words by coordinate.
    nodes : array of int
    vectors : (len(nodes), d) raw vectors of ``nodes``.
    ef_construction : int
    batch_fraction, max_batch : see :func:`insert_nodes`.

    Returns
    -------
    HNSWGraph
        ``graph``, modified in place.
    """
    nodes = np.ascontiguousarray(nodes, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return _insert(graph, _pq, (codes, codebooks, codebooks_t), nodes, lambda lo, hi: vectors[lo:hi],
                   ef_construction, batch_fraction, max_batch)


def build_graph(data, M=16, ef_construction=64, seed=0, levels=None, batch_fraction=0.1):
    """Build an HNSW graph over the rows of ``data``.

    Parameters
    ----------
    data : ndarray of shape (n, d)
        Converted to float32 (the graph keeps its own C-contiguous copy or view).
    M : int, default=16
        Neighbours per node on the upper layers; the bottom layer keeps up to ``2*M``.
    ef_construction : int, default=64
        Beam width of the searches that find a new node's neighbours.
    seed : int, default=0
        Seed of the random levels: the only randomness. The graph does not depend on
        the thread count.
    levels : int32 array of shape (n,), optional
        Use these levels instead of drawing them.
    batch_fraction : float, default=0.1
        See :func:`insert_nodes`.

    Returns
    -------
    HNSWGraph
    """
    data = np.ascontiguousarray(data, dtype=np.float32)
    n = data.shape[0]
    if levels is None:
        levels = draw_levels(n, M, np.random.default_rng(seed))
    levels = np.ascontiguousarray(levels, dtype=np.int32)
    graph = empty_graph(data, levels, M)
    if n:
        # The highest node goes first, so the entry point is fixed from the start.
        first = int(np.argmax(levels))
        order = np.concatenate(([first], np.delete(np.arange(n), first)))
        insert_nodes(graph, order, ef_construction, batch_fraction)
    return graph


def repair_nodes(graph, nodes, ef_construction=64):
    """Recompute the rows of ``nodes`` after their vectors moved (``graph.data`` must
    already hold the new vectors), then give their new neighbours the reverse edges.

    Each node's search on a layer is seeded with its current row there, so a small
    move costs a short local search instead of a descent from the entry point. All
    nodes search the graph as it stood before the call, so the result does not depend
    on the thread count.
    """
    nodes = np.ascontiguousarray(nodes, dtype=np.int64)
    if nodes.size == 0:
        return graph
    _new_rows(graph, _raw, graph.data, graph.data[nodes], nodes, ef_construction, True)
    _add_reverse_edges(graph, _raw, graph.data, nodes)
    return graph


def _search(graph, kernels, space, queries, width, ef, min_per_chunk):
    nq = queries.shape[0]
    if graph.n_linked == 0 or graph.entry_point < 0 or nq == 0:
        return (np.full((nq, width), -1, dtype=np.int32),
                np.full((nq, width), np.inf, dtype=np.float32))
    out_i = np.empty((nq, width), dtype=np.int32)
    out_d = np.empty((nq, width), dtype=np.float32)
    visited, epochs = graph.scratch()
    search = for_queries(kernels.knn_search, nq)
    search(space, queries, graph.links0, graph.upper, graph.upper_offset, graph.entry_point,
           graph.max_level, max(ef, width), out_i, out_d, visited, epochs,
           _n_chunks(nq, min_per_chunk))
    return out_i, out_d


def knn_search(graph, queries, k=1, ef=32):
    """Approximate ``k`` nearest nodes of each query: greedy descent, then a beam of
    width ``max(ef, k)`` on the bottom layer.

    Returns ids (int32, -1 where fewer were found) and float32 squared distances,
    both of shape (n_queries, k), nearest first.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    return _search(graph, _raw, graph.data, queries, k, ef, 16)


def pq_knn_search(graph, codes, codebooks, codebooks_t, queries, width, ef):
    """The ``width`` best nodes of a beam of width ``max(ef, width)`` by ADC, for each
    query (raw vectors), on a graph whose nodes are PQ codes.

    Returns ids (int32, -1 where fewer were found) and float32 ADC distances, both of
    shape (n_queries, width), nearest first.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    return _search(graph, _pq, (codes, codebooks, codebooks_t), queries, width, ef, 16)
