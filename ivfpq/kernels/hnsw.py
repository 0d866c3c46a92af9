"""HNSW graph kernels: flat arrays, neighbour-selection heuristic, seeded beam search.

One graph serves three callers: the graph assigner of MOPBucket k-means (a graph over
the centroids), the HNSW index (a graph over the data) and IVF's coarse quantizer.

Layout (all arrays are plain NumPy arrays, so a graph saves to ``.npz`` as it is):

``data``          float32 (n, d): the vectors the nodes stand for.
``levels``        int32 (n,): the top layer of each node (0 = bottom layer only).
``links0``        int32 (n, 2*M): bottom-layer neighbours, nearest first after a
                  selection, padded with -1.
``upper``         int32 (sum(levels), M): the rows of layers >= 1. Node ``v``'s row on
                  layer ``l >= 1`` is ``upper[upper_offset[v] + l - 1]``.
``upper_offset``  int64 (n,): first row of each node in ``upper`` (-1 when level 0).
``entry_point``, ``max_level``: where every descent starts.

Distances are squared L2 accumulated in float32 (``fastmath``: the search only
ranks; callers that need exact distances recompute them in float64). All distance
code goes through :func:`node_distance`, a small helper that a compressed-vector
variant (PQ lookup tables) can replace.

The build is parallel and deterministic: nodes are inserted in batches; within a
batch each new node searches the graph as it stood before the batch (read-only) and
writes only its own rows; then the reverse edges are grouped by target node and each
target merges its new edges, with the heuristic when its row overflows. The result
does not depend on the number of threads.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from numba import get_thread_id, njit, prange

__all__ = [
    "HNSWGraph",
    "draw_levels",
    "empty_graph",
    "thread_scratch",
    "build_graph",
    "insert_nodes",
    "repair_nodes",
    "knn_search",
    "node_distance",
    "greedy_descent",
    "search_layer",
    "select_neighbours",
    "neighbour_row",
]

_EMPTY = -1


# ----------------------------------------------------------------------------- distances


@njit(cache=True, fastmath=True)
def node_distance(data, node, query):
    """Squared L2 between ``data[node]`` and ``query`` (float32 accumulation)."""
    acc = np.float32(0.0)
    for j in range(query.shape[0]):
        diff = data[node, j] - query[j]
        acc += diff * diff
    return acc


@njit(cache=True, fastmath=True)
def _pair_distance(data, a, b):
    acc = np.float32(0.0)
    for j in range(data.shape[1]):
        diff = data[a, j] - data[b, j]
        acc += diff * diff
    return acc


# ----------------------------------------------------------------------------- heaps
# Binary heaps on flat arrays: (dists, ids, size). The candidate heap is a min-heap,
# the result heap a max-heap (its root is the worst result kept).


@njit(cache=True)
def _min_push(dists, ids, size, dist, node):
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if dists[parent] <= dist:
            break
        dists[i] = dists[parent]
        ids[i] = ids[parent]
        i = parent
    dists[i] = dist
    ids[i] = node
    return size + 1


@njit(cache=True)
def _min_pop(dists, ids, size):
    """Remove the root; returns the new size (the root must be read before)."""
    size -= 1
    last_d = dists[size]
    last_i = ids[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and dists[child + 1] < dists[child]:
            child += 1
        if dists[child] >= last_d:
            break
        dists[i] = dists[child]
        ids[i] = ids[child]
        i = child
    dists[i] = last_d
    ids[i] = last_i
    return size


@njit(cache=True)
def _max_push(dists, ids, size, dist, node):
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if dists[parent] >= dist:
            break
        dists[i] = dists[parent]
        ids[i] = ids[parent]
        i = parent
    dists[i] = dist
    ids[i] = node
    return size + 1


@njit(cache=True)
def _max_pop(dists, ids, size):
    size -= 1
    last_d = dists[size]
    last_i = ids[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and dists[child + 1] > dists[child]:
            child += 1
        if dists[child] <= last_d:
            break
        dists[i] = dists[child]
        ids[i] = ids[child]
        i = child
    dists[i] = last_d
    ids[i] = last_i
    return size


# ----------------------------------------------------------------------------- search


@njit(cache=True)
def neighbour_row(links0, upper, upper_offset, node, layer):
    """The neighbour row (a view) of ``node`` on ``layer``."""
    if layer == 0:
        return links0[node]
    return upper[upper_offset[node] + layer - 1]


@njit(cache=True)
def greedy_descent(data, query, links0, upper, upper_offset, start, start_dist, top_layer, bottom_layer):
    """Greedy walk from ``start`` on layers ``top_layer`` down to ``bottom_layer`` (inclusive).

    On each layer, move to the nearest neighbour while it is closer. Returns the node
    reached and its distance; ``bottom_layer`` > ``top_layer`` returns ``start``.
    """
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
                dist = node_distance(data, other, query)
                if dist < best:
                    best = dist
                    node = other
                    improved = True
    return node, best


@njit(cache=True)
def search_layer(data, query, links0, upper, upper_offset, layer, seeds, n_seeds, ef,
                 min_iterations, visited, epoch, cand_d, cand_i, res_d, res_i):
    """Beam search on one layer, started from caller-given seed nodes.

    Parameters
    ----------
    seeds : int32 array; the first ``n_seeds`` entries are start nodes (-1 and repeats
        are skipped).
    ef : int
        Size of the result set (beam width).
    min_iterations : int
        Expand at least this many nodes (while any are reachable), even once the beam
        cannot improve: candidates worse than the beam are kept until then.
    visited, epoch : int32 array of length n and the mark of this search; ``visited[v]
        == epoch`` means seen. The caller increments ``epoch`` between searches.
    cand_d, cand_i : float32 / int32 scratch of length n (candidate min-heap).
    res_d, res_i : float32 / int32 scratch of length >= ef + 1 (result max-heap).

    Returns
    -------
    n_results : int
        ``res_d[:n_results]`` / ``res_i[:n_results]`` hold the results, nearest first.
    n_expanded : int
        Nodes whose neighbours were visited.
    """
    n_cand = 0
    n_res = 0
    for s in range(n_seeds):
        node = seeds[s]
        if node < 0 or visited[node] == epoch:
            continue
        visited[node] = epoch
        dist = node_distance(data, node, query)
        n_cand = _min_push(cand_d, cand_i, n_cand, dist, node)
        n_res = _max_push(res_d, res_i, n_res, dist, node)
        if n_res > ef:
            n_res = _max_pop(res_d, res_i, n_res)

    expanded = 0
    while n_cand > 0:
        dist_c = cand_d[0]
        node_c = cand_i[0]
        if expanded >= min_iterations and n_res >= ef and dist_c > res_d[0]:
            break
        n_cand = _min_pop(cand_d, cand_i, n_cand)
        expanded += 1
        row = neighbour_row(links0, upper, upper_offset, node_c, layer)
        for t in range(row.shape[0]):
            other = row[t]
            if other < 0:
                break
            if visited[other] == epoch:
                continue
            visited[other] = epoch
            dist = node_distance(data, other, query)
            if n_res < ef or dist < res_d[0]:
                n_cand = _min_push(cand_d, cand_i, n_cand, dist, other)
                n_res = _max_push(res_d, res_i, n_res, dist, other)
                if n_res > ef:
                    n_res = _max_pop(res_d, res_i, n_res)
            elif expanded < min_iterations:
                n_cand = _min_push(cand_d, cand_i, n_cand, dist, other)

    # Empty the max-heap from the back: results come out nearest first.
    count = n_res
    while n_res > 0:
        d0 = res_d[0]
        i0 = res_i[0]
        n_res = _max_pop(res_d, res_i, n_res)
        res_d[n_res] = d0
        res_i[n_res] = i0
    return count, expanded


@njit(cache=True)
def select_neighbours(data, cand_i, cand_d, n_cand, limit, out):
    """Relative-neighbourhood heuristic: keep a candidate only if it is closer to the base
    than to every candidate kept so far.

    ``cand_i[:n_cand]`` must be sorted by ``cand_d`` (their distance to the base),
    nearest first. Writes at most ``limit`` ids to ``out``, pads it with -1 and
    returns how many were kept.
    """
    kept = 0
    for a in range(n_cand):
        if kept >= limit:
            break
        c = cand_i[a]
        good = True
        for b in range(kept):
            if _pair_distance(data, c, out[b]) <= cand_d[a]:
                good = False
                break
        if good:
            out[kept] = c
            kept += 1
    for b in range(kept, out.shape[0]):
        out[b] = _EMPTY
    return kept


# ----------------------------------------------------------------------------- build


@njit(cache=True)
def _connect_node(data, links0, upper, upper_offset, node, node_level, entry, max_level,
                  seed_from_rows, ef_construction, out0, out_upper, visited, epoch,
                  cand_d, cand_i, res_d, res_i, seeds):
    """Search the graph for ``node``'s neighbours on each of its layers and select them
    with the heuristic; write them to ``out0`` (bottom row) and ``out_upper`` (rows of
    layers 1..node_level), not to the graph.

    Insertion descends from ``entry``. With ``seed_from_rows`` (repair of a node that
    moved) each layer's search is seeded with the node's current row there instead,
    falling back to ``entry`` when the row is empty. Returns the next epoch.
    """
    query = data[node]
    ep = entry
    if not seed_from_rows:
        ep_dist = node_distance(data, ep, query)
        ep, ep_dist = greedy_descent(data, query, links0, upper, upper_offset, ep, ep_dist,
                                     max_level, node_level + 1)
    top = min(node_level, max_level)
    for layer in range(top, -1, -1):
        n_seeds = 0
        if seed_from_rows:
            row = neighbour_row(links0, upper, upper_offset, node, layer)
            for t in range(row.shape[0]):
                if row[t] < 0:
                    break
                seeds[n_seeds] = row[t]
                n_seeds += 1
        if n_seeds == 0:
            seeds[0] = ep
            n_seeds = 1
        visited[node] = epoch  # a node is never its own neighbour
        n_res, _ = search_layer(data, query, links0, upper, upper_offset, layer, seeds, n_seeds,
                                ef_construction, 0, visited, epoch, cand_d, cand_i, res_d, res_i)
        epoch += 1
        out = out0 if layer == 0 else out_upper[layer - 1]
        kept = select_neighbours(data, res_i, res_d, n_res, out.shape[0], out)
        if seed_from_rows:
            # A repaired row keeps its old neighbours while it has room: dropping them
            # could leave a node that only this row linked to unreachable.
            for t in range(n_seeds):
                if kept >= out.shape[0]:
                    break
                old = seeds[t]
                present = False
                for u in range(kept):
                    if out[u] == old:
                        present = True
                        break
                if not present and old != node:
                    out[kept] = old
                    kept += 1
        if n_res > 0:
            ep = res_i[0]
    return epoch


@njit(cache=True)
def thread_scratch(visited_all, epochs, n, ef):
    """This thread's visited marks and epoch, and fresh heaps for searches of width ``ef``.

    ``visited_all`` (n_threads, n) int32 and ``epochs`` (n_threads,) int64 persist
    across calls so the marks are never cleared in bulk; they are reset only when
    the epoch nears the int32 limit. The caller stores the epoch back when done.
    """
    tid = get_thread_id()
    visited = visited_all[tid]
    epoch = epochs[tid]
    if epoch > (1 << 30):
        visited[:] = 0
        epoch = 1
    cand_d = np.empty(n + 1, dtype=np.float32)
    cand_i = np.empty(n + 1, dtype=np.int32)
    res_d = np.empty(ef + 2, dtype=np.float32)
    res_i = np.empty(ef + 2, dtype=np.int32)
    return tid, visited, epoch, cand_d, cand_i, res_d, res_i


@njit(parallel=True, cache=True)
def _search_new_rows(data, links0, upper, upper_offset, levels, nodes, entry, max_level,
                     seed_from_rows, ef_construction, new0, new_upper, new_upper_offset,
                     visited_all, epochs, n_chunks):
    """Phase 1 of a batch: each node searches the current graph (read-only) for its rows."""
    n = data.shape[0]
    count = nodes.shape[0]
    for chunk in prange(n_chunks):
        lo = chunk * count // n_chunks
        hi = (chunk + 1) * count // n_chunks
        if lo >= hi:
            continue
        tid, visited, epoch, cand_d, cand_i, res_d, res_i = thread_scratch(
            visited_all, epochs, n, ef_construction)
        seeds = np.empty(max(links0.shape[1], 1), dtype=np.int32)
        for p in range(lo, hi):
            node = nodes[p]
            lv = levels[node]
            o = new_upper_offset[p]
            out_upper = new_upper[o:o + lv]
            epoch = _connect_node(data, links0, upper, upper_offset, node, lv, entry, max_level,
                                  seed_from_rows, ef_construction, new0[p], out_upper, visited,
                                  epoch, cand_d, cand_i, res_d, res_i, seeds)
        epochs[tid] = epoch


@njit(cache=True)
def _commit_rows(links0, upper, upper_offset, levels, nodes, new0, new_upper, new_upper_offset):
    for p in range(nodes.shape[0]):
        node = nodes[p]
        links0[node, :] = new0[p]
        o = new_upper_offset[p]
        for layer in range(1, levels[node] + 1):
            upper[upper_offset[node] + layer - 1, :] = new_upper[o + layer - 1]


@njit(cache=True)
def _reverse_edges(links0, upper, upper_offset, levels, nodes, max_level, n_total):
    """Every (layer, target, source) edge the rows of ``nodes`` add, sorted, as one key each."""
    count = 0
    for p in range(nodes.shape[0]):
        node = nodes[p]
        for layer in range(min(levels[node], max_level) + 1):
            row = neighbour_row(links0, upper, upper_offset, node, layer)
            for t in range(row.shape[0]):
                if row[t] < 0:
                    break
                count += 1
    keys = np.empty(count, dtype=np.int64)
    count = 0
    for p in range(nodes.shape[0]):
        node = nodes[p]
        for layer in range(min(levels[node], max_level) + 1):
            row = neighbour_row(links0, upper, upper_offset, node, layer)
            for t in range(row.shape[0]):
                if row[t] < 0:
                    break
                keys[count] = (np.int64(layer) * n_total + row[t]) * n_total + node
                count += 1
    keys.sort()
    return keys


@njit(parallel=True, cache=True)
def _merge_reverse_edges(data, links0, upper, upper_offset, keys, group_starts, n_total):
    """Phase 2 of a batch: each target adds its new incoming edges to its row, re-running
    the heuristic over old and new neighbours when the row overflows."""
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
            cand_d[t] = _pair_distance(data, target, cand_i[t])
        order = np.argsort(cand_d, kind="mergesort")
        sorted_i = cand_i[order]
        sorted_d = cand_d[order]
        select_neighbours(data, sorted_i, sorted_d, n_cand, width, row)


def _group_starts(keys, n_total):
    """Boundaries of runs of equal (layer, target) in sorted edge keys."""
    if keys.size == 0:
        return np.zeros(1, dtype=np.int64)
    head = keys // n_total
    change = np.flatnonzero(head[1:] != head[:-1]) + 1
    return np.concatenate(([0], change, [keys.size])).astype(np.int64)


# ----------------------------------------------------------------------------- Python side


class HNSWGraph:
    """A multi-layer navigable small-world graph over the rows of ``data``, as flat arrays.

    Build it with :func:`build_graph`; search it with :func:`knn_search` (top-k), or
    call the kernels :func:`greedy_descent` and :func:`search_layer` on its arrays from
    Numba code. See the module docstring for the layout. ``n_linked`` counts the nodes
    inserted so far.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq.kernels.hnsw import build_graph, knn_search
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
        import numba

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
    links0 = np.full((n, 2 * M), _EMPTY, dtype=np.int32)
    upper = np.full((int(levels.sum()), M), _EMPTY, dtype=np.int32)
    return HNSWGraph(data, levels, links0, upper, offsets, -1, -1, M, 0)


# A parallel region costs a wake-up of every worker thread. Measured on the shared
# 2-core machine under load, a 10,000-node build ran 5x faster on one thread than on
# two, because most batches and edge merges are small; so small steps run serially.
PARALLEL_MIN_NODES = 512


@contextmanager
def _serial_below(count, minimum=PARALLEL_MIN_NODES):
    """Run the Numba kernels inside on one thread when ``count`` is below ``minimum``."""
    import numba

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
    import numba

    threads = numba.get_num_threads()
    return int(max(1, min(count // min_per_chunk, 8 * threads)) if count else 0)


def _new_rows(graph, nodes, ef_construction, seed_from_rows):
    """Phase 1 for ``nodes``: their new rows, computed against the current graph."""
    node_levels = graph.levels[nodes]
    new_offset = np.zeros(nodes.size, dtype=np.int64)
    if nodes.size > 1:
        new_offset[1:] = np.cumsum(node_levels, dtype=np.int64)[:-1]
    new0 = np.full((nodes.size, graph.links0.shape[1]), _EMPTY, dtype=np.int32)
    new_upper = np.full((max(1, int(node_levels.sum())), graph.M), _EMPTY, dtype=np.int32)
    visited, epochs = graph.scratch()
    with _serial_below(nodes.size):
        _search_new_rows(graph.data, graph.links0, graph.upper, graph.upper_offset, graph.levels,
                         nodes, graph.entry_point, graph.max_level, seed_from_rows,
                         ef_construction, new0, new_upper, new_offset, visited, epochs,
                         _n_chunks(nodes.size))
    _commit_rows(graph.links0, graph.upper, graph.upper_offset, graph.levels, nodes,
                 new0, new_upper, new_offset)


def _add_reverse_edges(graph, nodes):
    n = graph.n_nodes
    keys = _reverse_edges(graph.links0, graph.upper, graph.upper_offset, graph.levels, nodes,
                          graph.max_level, n)
    starts = _group_starts(keys, n)
    with _serial_below(nodes.size):
        _merge_reverse_edges(graph.data, graph.links0, graph.upper, graph.upper_offset, keys,
                             starts, n)


def insert_nodes(graph, nodes, ef_construction=64, batch_fraction=0.1, max_batch=4096):
    """Link ``nodes`` (ids of rows of ``graph.data`` not linked yet) into ``graph``.

    Batches grow with the graph: each holds at most ``batch_fraction`` of the nodes
    already linked (at least one, at most ``max_batch``), so that a new node rarely
    misses a neighbour from its own batch. A batch node of a level above the graph's
    becomes the entry point.
    """
    nodes = np.ascontiguousarray(nodes, dtype=np.int64)
    start = 0
    if nodes.size and graph.entry_point < 0:
        graph.entry_point = int(nodes[0])
        graph.max_level = int(graph.levels[nodes[0]])
        graph.n_linked = 1
        start = 1
    while start < nodes.size:
        size = int(min(max_batch, max(1, int(graph.n_linked * batch_fraction)), nodes.size - start))
        batch = nodes[start:start + size]
        _new_rows(graph, batch, ef_construction, False)
        _add_reverse_edges(graph, batch)
        batch_levels = graph.levels[batch]
        if int(batch_levels.max()) > graph.max_level:
            top = int(np.argmax(batch_levels))
            graph.entry_point = int(batch[top])
            graph.max_level = int(batch_levels[top])
        start += size
        graph.n_linked += size
    return graph


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
    _new_rows(graph, nodes, ef_construction, True)
    _add_reverse_edges(graph, nodes)
    return graph


@njit(parallel=True, cache=True)
def _knn_search(data, links0, upper, upper_offset, entry, max_level, queries, k, ef,
                out_i, out_d, visited_all, epochs, n_chunks):
    n = data.shape[0]
    count = queries.shape[0]
    for chunk in prange(n_chunks):
        lo = chunk * count // n_chunks
        hi = (chunk + 1) * count // n_chunks
        if lo >= hi:
            continue
        tid, visited, epoch, cand_d, cand_i, res_d, res_i = thread_scratch(visited_all, epochs, n, ef)
        seeds = np.empty(1, dtype=np.int32)
        for q in range(lo, hi):
            query = queries[q]
            ep_dist = node_distance(data, entry, query)
            ep, ep_dist = greedy_descent(data, query, links0, upper, upper_offset, entry, ep_dist,
                                         max_level, 1)
            seeds[0] = ep
            n_res, _ = search_layer(data, query, links0, upper, upper_offset, 0, seeds, 1, ef, 0,
                                    visited, epoch, cand_d, cand_i, res_d, res_i)
            epoch += 1
            for t in range(min(k, n_res)):
                out_i[q, t] = res_i[t]
                out_d[q, t] = res_d[t]
        epochs[tid] = epoch


def knn_search(graph, queries, k=1, ef=32):
    """Approximate ``k`` nearest nodes of each query: greedy descent, then a beam of
    width ``max(ef, k)`` on the bottom layer.

    Returns ids (int32, -1 where fewer were found) and float32 squared distances,
    both of shape (n_queries, k), nearest first.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    out_i = np.full((queries.shape[0], k), -1, dtype=np.int32)
    out_d = np.full((queries.shape[0], k), np.inf, dtype=np.float32)
    if graph.n_linked == 0 or queries.shape[0] == 0:
        return out_i, out_d
    visited, epochs = graph.scratch()
    _knn_search(graph.data, graph.links0, graph.upper, graph.upper_offset, graph.entry_point,
                graph.max_level, queries, k, max(ef, k), out_i, out_d, visited, epochs,
                _n_chunks(queries.shape[0], 16))
    return out_i, out_d
