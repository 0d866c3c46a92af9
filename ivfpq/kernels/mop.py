"""MOPBucket assignment: every point's nearest centroid by a seeded search of an HNSW
graph built over the centroids.

For each point, a base seed: a greedy descent through the upper layers (for points
with no previous centroid, or for every point with ``descend_warm``), else the
previous centroid. The bottom-layer beam search starts from that seed, the point's
previous centroid and its runners-up from the previous iteration: nothing but the
point's own row and state, so its label does not depend on which other rows share its
block, its bulk or its thread.

Points go in bulks: consecutive runs of a row order that the caller groups by
previous centroid (a counting sort), so a bulk holds a few whole neighbourhoods of
the graph rather than a random sample. Within a bulk, points are sorted by the
rank of their base seed in a locality order of the centroids, then by a random 1-D
projection, so consecutive queries touch the same part of the graph and the
centroids they read are still in cache. The order only changes the speed, never a
label.

The search ranks with float32 distances; the winner is chosen by exact float64
distances among the best results *and the previous centroid*, so a point's distance
to its centroid never grows from one iteration to the next.

Points without a previous centroid (the first iteration) are usually assigned by
:mod:`ivfpq.kernels.coarse` instead, a two-level BLAS pass that is both faster and
more accurate than an unseeded graph search.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .distances import exact_sq_distance
from .hnsw import greedy_descent, node_distance, search_layer, thread_scratch

__all__ = ["mop_assign", "nearest_link_distances"]


@njit(cache=True)
def _stays(data, links0, query, previous, seeds, n_seeds):
    """True when ``previous`` is at least as near to ``query`` as every other seed and
    every bottom-layer neighbour of it: a local minimum of the graph where the point
    already is.

    Late in a run most points are in that case, and this check (one expansion) costs
    a fraction of a beam search (about eight). A point can still have a nearer
    centroid beyond the neighbours; the loop's wider searches before it stops (see
    ``GraphAssigner.widen``) run without this check and find those.
    """
    best = node_distance(data, previous, query)
    for s in range(n_seeds):
        node = seeds[s]
        if node >= 0 and node != previous and node_distance(data, node, query) < best:
            return False
    for t in range(links0.shape[1]):
        node = links0[previous, t]
        if node < 0:
            break
        if node_distance(data, node, query) < best:
            return False
    return True


@njit(cache=True, fastmath=True)
def _project(X, i, direction):
    acc = 0.0
    for j in range(X.shape[1]):
        acc += np.float64(X[i, j]) * direction[j]
    return acc


@njit(parallel=True, cache=True)
def nearest_link_distances(data, links0):
    """Distance from each node to its nearest bottom-layer neighbour (inf if it has none)."""
    n = data.shape[0]
    out = np.empty(n, dtype=np.float32)
    for v in prange(n):
        best = np.float32(np.inf)
        for t in range(links0.shape[1]):
            u = links0[v, t]
            if u < 0:
                break
            acc = np.float32(0.0)
            for j in range(data.shape[1]):
                diff = data[v, j] - data[u, j]
                acc += diff * diff
            if acc < best:
                best = acc
        out[v] = np.sqrt(best)
    return out


@njit(parallel=True, cache=True)
def mop_assign(X, centers, data, links0, upper, upper_offset, entry, max_level, state,
               labels_out, sq_dist_out, projection, node_rank, order, bulk_size, ef, ef_cold, min_iterations,
               seed_previous, sort_bulks, descend_warm, stay_check, visited_all, epochs):
    """Assign every row of ``X`` to a centroid with seeded graph searches.

    Parameters
    ----------
    X : (n, d) float32 or float64 points.
    centers : (k, d) centroids in ``X``'s dtype (for the exact distances).
    data, links0, upper, upper_offset, entry, max_level : the HNSW graph over the
        centroids (``data`` is their float32 copy).
    state : (n, 1 + A) int32, read and rewritten: the previous nearest centroids of
        each point, nearest first, -1 for none. Column 0 is the previous label.
    labels_out, sq_dist_out : (n,) int64 / float64 outputs (exact float64 distance).
    projection : (d,) float64 random direction for the within-bulk order.
    node_rank : (k,) int64, a permutation of the centroids in which near ones are
        near: within a bulk, points are sorted by the rank of their base seed.
    order : (n,) int64 permutation of the rows; bulk ``b`` is the rows
        ``order[b * bulk_size:(b + 1) * bulk_size]``.
    bulk_size, ef, min_iterations : see ``GraphAssigner``.
    ef_cold : beam width for points without a previous centroid (first iteration).
    seed_previous, sort_bulks : bool, ablation switches (the previous centroid stays a
        candidate of the final exact comparison even without ``seed_previous``).
    descend_warm : bool; False skips the upper-layer descent for points that have a
        previous centroid and uses that centroid as their base seed and sort key
        (only with ``seed_previous``: without it every point descends).
    stay_check : bool; a point whose previous centroid is at least as near as all of
        that centroid's bottom-layer neighbours and all its other seeds keeps it
        without a beam search (see :func:`_stays`).
    visited_all, epochs : per-thread scratch (see :func:`thread_scratch`).

    Returns
    -------
    expansions : int64, the number of node expansions over all searches.
    """
    n, d = X.shape
    k = data.shape[0]
    width = state.shape[1]
    n_bulks = (n + bulk_size - 1) // bulk_size
    expansions = np.zeros(n_bulks, dtype=np.int64)
    for b in prange(n_bulks):
        lo = b * bulk_size
        hi = min(n, lo + bulk_size)
        size = hi - lo
        tid, visited, epoch, cand_d, cand_i, res_d, res_i = thread_scratch(
            visited_all, epochs, k, max(ef, ef_cold))
        query = np.empty(d, dtype=np.float32)
        base = np.empty(size, dtype=np.int32)
        seeds = np.empty(1 + width, dtype=np.int32)

        # Base seeds: the previous centroid, or a greedy descent through the upper layers.
        entry_dist = np.float32(0.0)
        for p in range(size):
            row = order[lo + p]
            if seed_previous and not descend_warm and state[row, 0] >= 0:
                base[p] = state[row, 0]
                continue
            for j in range(d):
                query[j] = X[row, j]
            entry_dist = node_distance(data, entry, query)
            node, _ = greedy_descent(data, query, links0, upper, upper_offset, entry, entry_dist,
                                     max_level, 1)
            base[p] = node

        if sort_bulks:
            proj = np.empty(size, dtype=np.float64)
            for p in range(size):
                proj[p] = _project(X, order[lo + p], projection)
            rank = np.empty(size, dtype=np.int64)
            by_proj = np.argsort(proj, kind="mergesort")
            for r in range(size):
                rank[by_proj[r]] = r
            keys = np.empty(size, dtype=np.int64)
            for p in range(size):
                keys[p] = node_rank[base[p]] * size + rank[p]
            within = np.argsort(keys, kind="mergesort")
        else:
            within = np.arange(size)

        total = 0
        for r in range(size):
            p = within[r]
            i = order[lo + p]
            for j in range(d):
                query[j] = X[i, j]
            n_seeds = 0
            seeds[n_seeds] = base[p]
            n_seeds += 1
            if seed_previous:
                for t in range(width):
                    seeds[n_seeds] = state[i, t]
                    n_seeds += 1
            previous = state[i, 0]
            if stay_check and previous >= 0 and _stays(data, links0, query, previous, seeds, n_seeds):
                labels_out[i] = previous
                sq_dist_out[i] = exact_sq_distance(X, i, centers, previous)
                total += 1
                continue
            beam = ef if previous >= 0 else ef_cold
            n_res, expanded = search_layer(data, query, links0, upper, upper_offset, 0, seeds,
                                           n_seeds, beam, min_iterations, visited, epoch,
                                           cand_d, cand_i, res_d, res_i)
            epoch += 1
            total += expanded

            # The search's best against the previous centroid, by exact distance: a
            # point never moves to a farther centroid; ties keep the previous one.
            winner = res_i[0]
            winner_d = exact_sq_distance(X, i, centers, winner)
            if previous >= 0 and previous != winner:
                previous_d = exact_sq_distance(X, i, centers, previous)
                if previous_d <= winner_d:
                    winner = previous
                    winner_d = previous_d
            labels_out[i] = winner
            sq_dist_out[i] = winner_d
            # Remember the winner and the search's runners-up (search order).
            state[i, 0] = winner
            slot = 1
            for t in range(n_res):
                if slot >= width:
                    break
                if res_i[t] != winner:
                    state[i, slot] = res_i[t]
                    slot += 1
            for t in range(slot, width):
                state[i, t] = -1
        expansions[b] = total
        epochs[tid] = epoch
    return expansions.sum()
