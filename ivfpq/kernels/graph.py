"""HNSW graph kernels written once, for any distance: search, neighbour selection, insertion.

Layout (all arrays are plain NumPy arrays, so a graph saves to ``.npz`` as it is):

``levels``        int32 (n,): the top layer of each node (0 = bottom layer only).
``links0``        int32 (n, 2*M): bottom-layer neighbours, nearest first after a
                  selection, padded with -1.
``upper``         int32 (sum(levels), M): the rows of layers >= 1. Node ``v``'s row on
                  layer ``l >= 1`` is ``upper[upper_offset[v] + l - 1]``.
``upper_offset``  int64 (n,): first row of each node in ``upper`` (-1 when level 0).
``entry_point``, ``max_level``: where every descent starts.

The vectors are not part of the graph: the kernels see them only through a *space*
(any value Numba can pass: an array, a tuple of arrays) and five jitted functions,
the *distance*:

``query_buffer(space)``
    Scratch that one thread reuses for every query it prepares.
``prepare_query(space, vector, buffer)``
    What the distance to a raw query vector needs (the vector itself, a lookup table).
``query_distance(space, node, query)``
    Distance from a stored node to a prepared query: what the searches rank by.
``pair_distance(space, a, b)``
    Distance between two stored nodes: what the neighbour-selection heuristic and the
    reverse-edge merge rank by.
``prefetch_node(space, node)``
    Start loading what ``query_distance`` will read of ``node`` (a hint; no result
    depends on it).

:func:`bind_distance` compiles the kernels of this module for one distance (the model
is pynndescent's factories, which build search functions around a jitted metric).

The build is parallel and deterministic: nodes are inserted in batches; within a
batch each new node searches the graph as it stood before the batch (read-only),
adds its nearest nodes of the batch itself to the candidates (the graph cannot lead
to them yet) and writes only its own rows (:func:`search_new_rows`); then the reverse edges are
grouped by target node (:func:`reverse_edges`, :func:`group_starts`) and each target
merges its new edges, with the heuristic when its row overflows
(:func:`merge_reverse_edges`). The result does not depend on the number of threads.
"""

from __future__ import annotations

import types

import numpy as np
from numba import get_thread_id, njit, prange

from ._jit import copy_function, serial_twin
from .heap import heap_init, heap_push, heap_sort, max_pop, max_push, min_pop, min_push, worse

__all__ = [
    "EMPTY",
    "bind_distance",
    "neighbour_row",
    "thread_scratch",
    "commit_rows",
    "reverse_edges",
    "group_starts",
]

EMPTY = -1


# ----------------------------------------------------------------------------- distance-free


@njit(cache=True)
def neighbour_row(links0, upper, upper_offset, node, layer):
    """The neighbour row (a view) of ``node`` on ``layer``."""
    if layer == 0:
        return links0[node]
    return upper[upper_offset[node] + layer - 1]


@njit(cache=True)
def thread_scratch(visited_all, epochs, n, ef):
    """This thread's visited marks and epoch, and fresh heaps for searches of width ``ef``.

    ``visited_all`` (n_threads, n) int32 and ``epochs`` (n_threads,) int64 persist
    across calls so the marks are never cleared in bulk; they are reset only when
    the epoch nears the int32 limit. The caller stores the epoch back when done.

    Returns
    -------
    tid, visited, epoch, cand_d, cand_i, res_d, res_i
        The heaps: a candidate min-heap of length ``n + 1`` and a result max-heap of
        length ``ef + 2`` (float32 distances, int32 ids).
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


@njit(inline="always")
def chunk_bounds(chunk, count, n_chunks):
    """Items ``lo:hi`` of chunk ``chunk`` when ``count`` items are cut into ``n_chunks``
    (empty when there are more chunks than items)."""
    return chunk * count // n_chunks, (chunk + 1) * count // n_chunks


@njit(cache=True)
def commit_rows(links0, upper, upper_offset, levels, nodes, new0, new_upper, new_upper_offset):
    """Copy the rows found by :func:`search_new_rows` into the graph."""
    for p in range(nodes.shape[0]):
        node = nodes[p]
        links0[node, :] = new0[p]
        o = new_upper_offset[p]
        for layer in range(1, levels[node] + 1):
            upper[upper_offset[node] + layer - 1, :] = new_upper[o + layer - 1]


@njit(cache=True)
def _edge_keys(links0, upper, upper_offset, levels, nodes, max_level, n_total, keys, fill):
    """Count the edges of the rows of ``nodes``; with ``fill``, also write their keys."""
    count = 0
    for p in range(nodes.shape[0]):
        node = nodes[p]
        for layer in range(min(levels[node], max_level) + 1):
            row = neighbour_row(links0, upper, upper_offset, node, layer)
            for t in range(row.shape[0]):
                if row[t] < 0:
                    break
                if fill:
                    keys[count] = (np.int64(layer) * n_total + row[t]) * n_total + node
                count += 1
    return count


@njit(cache=True)
def reverse_edges(links0, upper, upper_offset, levels, nodes, max_level, n_total):
    """Every (layer, target, source) edge the rows of ``nodes`` add, sorted, as one key each.

    The key is ``(layer * n_total + target) * n_total + source`` (int64).
    """
    keys = np.empty(0, dtype=np.int64)
    count = _edge_keys(links0, upper, upper_offset, levels, nodes, max_level, n_total, keys, False)
    keys = np.empty(count, dtype=np.int64)
    _edge_keys(links0, upper, upper_offset, levels, nodes, max_level, n_total, keys, True)
    keys.sort()
    return keys


@njit(cache=True)
def group_starts(keys, n_total):
    """Boundaries of the runs of equal (layer, target) in sorted edge keys (int64, with
    ``0`` first and ``len(keys)`` last)."""
    n = keys.shape[0]
    out = np.empty(n + 1, dtype=np.int64)
    out[0] = 0
    g = 1
    for p in range(1, n):
        if keys[p] // n_total != keys[p - 1] // n_total:
            out[g] = p
            g += 1
    if n > 0:
        out[g] = n
        g += 1
    return out[:g].copy()


# ----------------------------------------------------------------------------- templates
# The functions below are compiled once per distance by bind_distance, which supplies
# the names query_buffer, prepare_query, query_distance, pair_distance and
# prefetch_node (and the
# other bound kernels they call); they are not jitted here.


def greedy_descent(space, query, links0, upper, upper_offset, start, start_dist, top_layer,
                   bottom_layer):
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
                dist = query_distance(space, other, query)  # noqa: F821 (bound)
                if dist < best:
                    best = dist
                    node = other
                    improved = True
    return node, best


def search_layer(space, query, links0, upper, upper_offset, layer, seeds, n_seeds, ef,
                 min_iterations, visited, epoch, cand_d, cand_i, res_d, res_i):
    """Beam search on one layer, started from caller-given seed nodes.

    Parameters
    ----------
    space, query
        The stored vectors and a prepared query (see the module docstring).
    links0, upper, upper_offset : the graph.
    layer : int
    seeds : int32 array
        The first ``n_seeds`` entries are start nodes (-1 and repeats are skipped).
    n_seeds : int
    ef : int
        Size of the result set (beam width).
    min_iterations : int
        Expand at least this many nodes (while any are reachable), even once the beam
        cannot improve: candidates worse than the beam are kept until then.
    visited, epoch : int32 array of length n and the mark of this search
        ``visited[v] == epoch`` means seen. The caller increments ``epoch`` between
        searches.
    cand_d, cand_i : float32 / int32 scratch of length n + 1 (candidate min-heap).
    res_d, res_i : float32 / int32 scratch of length >= ef + 1 (result max-heap).

    Returns
    -------
    n_results : int
        ``res_d[:n_results]`` / ``res_i[:n_results]`` hold the results, nearest first
        (ties by the smaller id).
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
        dist = query_distance(space, node, query)  # noqa: F821 (bound)
        n_cand = min_push(cand_d, cand_i, n_cand, dist, node)
        n_res = max_push(res_d, res_i, n_res, dist, node)
        if n_res > ef:
            n_res = max_pop(res_d, res_i, n_res)

    expanded = 0
    fresh = np.empty(links0.shape[1], dtype=np.int32)
    while n_cand > 0:
        dist_c = cand_d[0]
        node_c = cand_i[0]
        if expanded >= min_iterations and n_res >= ef and dist_c > res_d[0]:
            break
        n_cand = min_pop(cand_d, cand_i, n_cand)
        expanded += 1
        row = neighbour_row(links0, upper, upper_offset, node_c, layer)
        # The unvisited neighbours first, each one's vector requested from memory at
        # once, so that the loads overlap the distance computations that follow.
        n_fresh = 0
        for t in range(row.shape[0]):
            other = row[t]
            if other < 0:
                break
            if visited[other] == epoch:
                continue
            visited[other] = epoch
            prefetch_node(space, other)  # noqa: F821 (bound)
            fresh[n_fresh] = other
            n_fresh += 1
        for t in range(n_fresh):
            other = fresh[t]
            dist = query_distance(space, other, query)  # noqa: F821 (bound)
            if n_res < ef or dist < res_d[0]:
                n_cand = min_push(cand_d, cand_i, n_cand, dist, other)
                n_res = max_push(res_d, res_i, n_res, dist, other)
                if n_res > ef:
                    n_res = max_pop(res_d, res_i, n_res)
            elif expanded < min_iterations:
                n_cand = min_push(cand_d, cand_i, n_cand, dist, other)

    # Empty the max-heap from the back: results come out nearest first.
    count = n_res
    while n_res > 0:
        d0 = res_d[0]
        i0 = res_i[0]
        n_res = max_pop(res_d, res_i, n_res)
        res_d[n_res] = d0
        res_i[n_res] = i0
    return count, expanded


def select_neighbours(space, cand_i, cand_d, n_cand, limit, out):
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
            if pair_distance(space, c, out[b]) <= cand_d[a]:  # noqa: F821 (bound)
                good = False
                break
        if good:
            out[kept] = c
            kept += 1
    for b in range(kept, out.shape[0]):
        out[b] = EMPTY
    return kept


def merge_candidates(res_i, res_d, n_res, mates_i, mates_d, levels, layer, out_i, out_d):
    """Merge two candidate lists sorted nearest first (ties by id) into ``out``: the
    beam ``res[:n_res]`` and the batch mates of ``mates`` (padded with -1) whose level
    reaches ``layer``. Returns the merged count."""
    a = 0
    b = 0
    n = 0
    n_mates = mates_i.shape[0]
    while True:
        while b < n_mates and mates_i[b] >= 0 and levels[mates_i[b]] < layer:
            b += 1
        has_b = b < n_mates and mates_i[b] >= 0
        if a < n_res and (not has_b or not worse(res_d[a], res_i[a], mates_d[b], mates_i[b])):
            out_i[n] = res_i[a]
            out_d[n] = res_d[a]
            a += 1
        elif has_b:
            out_i[n] = mates_i[b]
            out_d[n] = mates_d[b]
            b += 1
        else:
            return n
        n += 1


def nearest_mates(space, query, node, batch, mates_i, mates_d):
    """The ``len(mates_i)`` nodes of ``batch`` nearest to ``query`` (``node``'s own
    vector, prepared), ``node`` excluded, nearest first; -1 pads."""
    heap_init(mates_d, mates_i)
    for q in range(batch.shape[0]):
        other = batch[q]
        if other != node:
            heap_push(mates_d, mates_i, query_distance(space, other, query), other)  # noqa: F821 (bound)
    heap_sort(mates_d, mates_i)


def connect_node(space, query, links0, upper, upper_offset, levels, node, node_level, entry,
                 max_level, seed_from_rows, ef_construction, out0, out_upper, visited, epoch,
                 cand_d, cand_i, res_d, res_i, seeds, mates_i, mates_d, merged_i, merged_d):
    """Search the graph for ``node``'s neighbours on each of its layers and select them
    with the heuristic; write them to ``out0`` (bottom row) and ``out_upper`` (rows of
    layers 1..node_level), not to the graph.

    ``query`` is the node's own vector, prepared. Insertion descends from ``entry``.
    With ``seed_from_rows`` (repair of a node that moved) each layer's search is
    seeded with the node's current row there instead, falling back to ``entry`` when
    the row is empty. ``seeds`` is int32 scratch of the width of ``links0``.

    ``mates_i``/``mates_d`` (nearest first, -1 padded; may be empty) are the node's
    nearest nodes of its own batch, which the graph does not hold yet: each layer's
    heuristic chooses from the beam and the mates of that layer together, so that
    points inserted together still link to each other. ``merged_i``/``merged_d`` are
    scratch of length ``ef_construction + len(mates_i)``. Returns the next epoch.
    """
    ep = entry
    if not seed_from_rows:
        ep_dist = query_distance(space, ep, query)  # noqa: F821 (bound)
        ep, ep_dist = greedy_descent(space, query, links0, upper, upper_offset, ep, ep_dist,
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
        n_res, _ = search_layer(space, query, links0, upper, upper_offset, layer, seeds, n_seeds,
                                ef_construction, 0, visited, epoch, cand_d, cand_i, res_d, res_i)
        epoch += 1
        out = out0 if layer == 0 else out_upper[layer - 1]
        if mates_i.shape[0] > 0:
            n_merged = merge_candidates(res_i, res_d, n_res, mates_i, mates_d, levels, layer,
                                        merged_i, merged_d)
            kept = select_neighbours(space, merged_i, merged_d, n_merged, out.shape[0], out)
        else:
            kept = select_neighbours(space, res_i, res_d, n_res, out.shape[0], out)
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


def search_new_rows(space, vectors, links0, upper, upper_offset, levels, nodes, entry, max_level,
                    seed_from_rows, ef_construction, n_mates, new0, new_upper, new_upper_offset,
                    visited_all, epochs, n_chunks):
    """Phase 1 of a batch: node ``nodes[p]`` (raw vector ``vectors[p]``) searches the
    current graph (read-only) for its rows and writes them to ``new0[p]`` and
    ``new_upper[new_upper_offset[p]:...]``; its ``n_mates`` nearest nodes of the batch
    are candidates too (0: none). Chunks of nodes run in parallel."""
    n = links0.shape[0]
    count = nodes.shape[0]
    n_mates = min(n_mates, count - 1)
    for chunk in prange(n_chunks):
        lo, hi = chunk_bounds(chunk, count, n_chunks)
        tid, visited, epoch, cand_d, cand_i, res_d, res_i = thread_scratch(
            visited_all, epochs, n, ef_construction)
        buffer = query_buffer(space)  # noqa: F821 (bound)
        seeds = np.empty(max(links0.shape[1], 1), dtype=np.int32)
        mates_i = np.empty(max(n_mates, 0), dtype=np.int32)
        mates_d = np.empty(max(n_mates, 0), dtype=np.float32)
        merged_i = np.empty(ef_construction + 2 + max(n_mates, 0), dtype=np.int32)
        merged_d = np.empty(ef_construction + 2 + max(n_mates, 0), dtype=np.float32)
        for p in range(lo, hi):
            node = nodes[p]
            lv = levels[node]
            o = new_upper_offset[p]
            out_upper = new_upper[o:o + lv]
            query = prepare_query(space, vectors[p], buffer)  # noqa: F821 (bound)
            if n_mates > 0:
                nearest_mates(space, query, node, nodes, mates_i, mates_d)
            epoch = connect_node(space, query, links0, upper, upper_offset, levels, node, lv, entry,
                                 max_level, seed_from_rows, ef_construction, new0[p], out_upper,
                                 visited, epoch, cand_d, cand_i, res_d, res_i, seeds, mates_i,
                                 mates_d, merged_i, merged_d)
        epochs[tid] = epoch


def merge_reverse_edges(space, links0, upper, upper_offset, keys, group_starts, n_total):
    """Phase 2 of a batch: each target adds its new incoming edges (sorted keys of
    :func:`reverse_edges`, runs bounded by ``group_starts``) to its row, re-running the
    heuristic over old and new neighbours when the row overflows. Targets run in
    parallel."""
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
            cand_d[t] = pair_distance(space, target, cand_i[t])  # noqa: F821 (bound)
        order = np.argsort(cand_d, kind="mergesort")
        sorted_i = cand_i[order]
        sorted_d = cand_d[order]
        select_neighbours(space, sorted_i, sorted_d, n_cand, width, row)


def knn_search(space, queries, links0, upper, upper_offset, entry, max_level, ef, out_i, out_d,
               visited_all, epochs, n_chunks):
    """For each raw query vector, the ``out_i.shape[1]`` best nodes of a beam of width
    ``ef`` (at least that width) on the bottom layer, after a greedy descent through
    the upper layers from ``entry``.

    Results are nearest first; the slots beyond the nodes found get -1 / inf.
    Chunks of queries run in parallel.
    """
    n = links0.shape[0]
    count = queries.shape[0]
    width = out_i.shape[1]
    for chunk in prange(n_chunks):
        lo, hi = chunk_bounds(chunk, count, n_chunks)
        tid, visited, epoch, cand_d, cand_i, res_d, res_i = thread_scratch(visited_all, epochs, n, ef)
        buffer = query_buffer(space)  # noqa: F821 (bound)
        seeds = np.empty(1, dtype=np.int32)
        for q in range(lo, hi):
            query = prepare_query(space, queries[q], buffer)  # noqa: F821 (bound)
            ep_dist = query_distance(space, entry, query)  # noqa: F821 (bound)
            ep, ep_dist = greedy_descent(space, query, links0, upper, upper_offset, entry, ep_dist,
                                         max_level, 1)
            seeds[0] = ep
            n_res, _ = search_layer(space, query, links0, upper, upper_offset, 0, seeds, 1, ef, 0,
                                    visited, epoch, cand_d, cand_i, res_d, res_i)
            epoch += 1
            for t in range(min(width, n_res)):
                out_i[q, t] = res_i[t]
                out_d[q, t] = res_d[t]
            for t in range(n_res, width):
                out_i[q, t] = EMPTY
                out_d[q, t] = np.inf
        epochs[tid] = epoch


# Parallel kernels also compiled serially, as ``<name>_serial`` (see
# ivfpq.kernels._jit.for_queries).
_SERIAL_TWINS = ("knn_search",)

# name -> parallel?
_TEMPLATES = {
    "greedy_descent": False,
    "search_layer": False,
    "select_neighbours": False,
    "merge_candidates": False,
    "nearest_mates": False,
    "connect_node": False,
    "search_new_rows": True,
    "merge_reverse_edges": True,
    "knn_search": True,
}


def bind_distance(name, query_buffer, prepare_query, query_distance, pair_distance, prefetch_node):
    """Compile this module's graph kernels for one distance.

    Parameters
    ----------
    name : str
        A name unique among the bound distances (it names the cache files).
    query_buffer, prepare_query, query_distance, pair_distance, prefetch_node : numba dispatchers
        The distance; see the module docstring for their arguments.

    Returns
    -------
    types.SimpleNamespace
        ``greedy_descent``, ``search_layer``, ``select_neighbours``, ``connect_node``,
        ``search_new_rows``, ``merge_reverse_edges``, ``knn_search``: jitted
        (``cache=True``), with the space as their first argument; and
        ``knn_search_serial``, ``knn_search`` on the calling thread only (for a few
        queries).

    Notes
    -----
    Each kernel is a copy of its template whose globals hold the distance, rather
    than a closure over it: Numba keys the on-disk cache of a closure by a pickle of
    its cells, and a pickled dispatcher carries a per-process id, so closures over
    dispatchers would be recompiled in every process. A copy has no cells; its
    qualified name (``name.kernel``) keeps the cache files of two distances apart.
    Calls to the distance are direct (inlined by LLVM where it sees fit), as in a
    hand-written kernel.
    """
    scope = dict(globals())
    scope.update(query_buffer=query_buffer, prepare_query=prepare_query,
                 query_distance=query_distance, pair_distance=pair_distance,
                 prefetch_node=prefetch_node)
    bound = {}
    for kernel, parallel in _TEMPLATES.items():
        fn = copy_function(globals()[kernel], scope, kernel, f"{name}.{kernel}")
        jitted = njit(cache=True, parallel=True)(fn) if parallel else njit(cache=True)(fn)
        scope[kernel] = bound[kernel] = jitted
    for kernel in _SERIAL_TWINS:
        bound[kernel + "_serial"] = serial_twin(bound[kernel])
    return types.SimpleNamespace(**bound)
