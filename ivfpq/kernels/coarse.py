"""Two-level BLAS assignment for points that have no previous centroid.

MOPBucket's searches are cheap because every point brings seeds from the previous
iteration. The first iteration has none, and a graph search from the upper layers
alone is both the slowest assignment of a run and often a poor one. This module
assigns such points with dense blocks that BLAS runs at full speed:

1. the centroids are grouped by a short k-means into ``g ~ sqrt(nprobe * k)``
   groups;
2. each point goes to the bucket of its nearest group (one GEMM against the ``g``
   group means);
3. each bucket is scored by one GEMM against the members of the ``nprobe`` groups
   nearest its group, and every point keeps its exact nearest ``width`` candidates:
   the label and the runners-up that seed the next iteration's graph search.

Per point this costs about ``g + nprobe * k / g`` distances at GEMM speed instead of
``k``. It finds the exact nearest centroid where the data's clusters are coarser than
the centroids; where they are not, the groups cut through neighbourhoods, and a
point lands in a farther centroid, which matters where clusters have few points
(``GraphAssigner(cold_start="auto")`` checks it on a sample where they have few; figures
in ``benchmarks/README.md``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .distances import exact_sq_distance, nearest_centroids, score_error_bound

__all__ = ["coarse_groups", "counting_order", "default_n_groups", "assign_rows"]


@njit(cache=True, nogil=True, inline="always")
def _insert(best_d, best_i, dist, node):
    """Insert (dist, node) into the sorted arrays if it ranks (ties to the lower node)."""
    last = best_d.shape[0] - 1
    if dist > best_d[last] or (dist == best_d[last] and best_i[last] >= 0 and node > best_i[last]):
        return
    slot = last
    while slot > 0 and (best_d[slot - 1] > dist or (best_d[slot - 1] == dist and best_i[slot - 1] > node)):
        best_d[slot] = best_d[slot - 1]
        best_i[slot] = best_i[slot - 1]
        slot -= 1
    best_d[slot] = dist
    best_i[slot] = node


@njit(cache=True, nogil=True)
def _keep_nearest(products, candidate_sq_norms, candidates, rows, bound, X, centers, state, labels_out,
                  sq_dist_out):
    """Per row ``r`` of ``products`` (``-2 x.c`` against ``candidates``), the exact
    nearest ``state.shape[1]`` candidates into ``state[rows[r]]``, nearest first, ties
    to the lower centroid index; the first is the label, with its exact distance.

    The screened scores give the order wherever they are farther apart than twice the
    row's error ``bound`` (the kept ones from each other, and the last kept one from
    the best of the rest); otherwise every candidate within that margin of the last
    kept one is ranked by exact distance. Either way the result is the exact order,
    whatever the GEMM's rounding.
    """
    width = state.shape[1]
    last = width - 1
    screen_d = np.empty(width, dtype=products.dtype)
    screen_i = np.empty(width, dtype=np.int64)
    best_d = np.empty(width, dtype=np.float64)
    best_i = np.empty(width, dtype=np.int64)
    for r in range(products.shape[0]):
        screen_d[:] = np.inf
        screen_i[:] = -1
        worst = screen_d[last]
        rest = np.inf  # the best score of the candidates not kept
        for t in range(products.shape[1]):
            score = products[r, t] + candidate_sq_norms[t]
            if score > worst:
                rest = min(rest, score)
                continue
            node = candidates[t]
            if score == worst and screen_i[last] >= 0 and node > screen_i[last]:
                rest = min(rest, score)
                continue
            if screen_i[last] >= 0:
                rest = min(rest, screen_d[last])
            slot = last
            while slot > 0 and (screen_d[slot - 1] > score
                                or (screen_d[slot - 1] == score and screen_i[slot - 1] > node)):
                screen_d[slot] = screen_d[slot - 1]
                screen_i[slot] = screen_i[slot - 1]
                slot -= 1
            screen_d[slot] = score
            screen_i[slot] = node
            worst = screen_d[last]
        gap = 2.0 * bound[r]
        i = rows[r]
        clear = np.float64(rest) - np.float64(screen_d[last]) > gap
        for t in range(1, width):
            if screen_i[t] >= 0 and np.float64(screen_d[t]) - np.float64(screen_d[t - 1]) <= gap:
                clear = False
        if clear:
            for t in range(width):
                state[i, t] = screen_i[t]
            labels_out[i] = screen_i[0]
            sq_dist_out[i] = exact_sq_distance(X, i, centers, screen_i[0])
            continue
        limit = np.float64(screen_d[last]) + gap
        best_d[:] = np.inf
        best_i[:] = -1
        for t in range(products.shape[1]):
            if np.float64(products[r, t] + candidate_sq_norms[t]) <= limit:
                node = candidates[t]
                _insert(best_d, best_i, exact_sq_distance(X, i, centers, node), node)
        for t in range(width):
            state[i, t] = best_i[t]
        labels_out[i] = best_i[0]
        sq_dist_out[i] = best_d[0]


@njit(cache=True, nogil=True)
def counting_order(keys, n_keys):
    """Stable order of ``keys`` (ints in [0, n_keys)) and the start of each key's run."""
    starts = np.zeros(n_keys + 1, dtype=np.int64)
    for i in range(keys.shape[0]):
        starts[keys[i] + 1] += 1
    for g in range(n_keys):
        starts[g + 1] += starts[g]
    fill = starts[:-1].copy()
    order = np.empty(keys.shape[0], dtype=np.int64)
    for i in range(keys.shape[0]):
        order[fill[keys[i]]] = i
        fill[keys[i]] += 1
    return order, starts


@njit(parallel=True, cache=True)
def _pairwise_exact(A, out):
    for i in prange(A.shape[0]):
        for j in range(A.shape[0]):
            out[i, j] = exact_sq_distance(A, i, A, j)


def coarse_groups(centers, n_groups, nprobe, width, seed, iterations=8):
    """Group the centroids by a short k-means over them.

    Returns ``(group_means, candidates, starts)``: the float (g, d) group means and,
    for group ``j``, the centroid indices ``candidates[starts[j]:starts[j + 1]]``: the
    members of the ``nprobe`` groups nearest to ``j`` (``j`` first), extended through
    farther groups until there are at least ``width`` of them. Every distance that
    decides a membership or an order is exact, so the grouping depends only on the
    centroids and ``seed``.
    """
    k, d = centers.shape
    n_groups = int(min(max(1, n_groups), k))
    rng = np.random.default_rng(seed)
    means = np.ascontiguousarray(centers[np.sort(rng.choice(k, n_groups, replace=False))])
    member_of = np.empty(k, dtype=np.int64)
    sq = np.empty(k, dtype=np.float64)
    centers64 = centers.astype(np.float64)
    for _ in range(iterations):
        nearest_centroids(centers, means, member_of, sq)
        order, group_starts = counting_order(member_of, n_groups)
        counts = np.diff(group_starts)
        filled = np.flatnonzero(counts > 0)
        # Each group's members summed in index order (as np.add.at would, much faster).
        sums = np.add.reduceat(centers64[order], group_starts[filled], axis=0)
        means[filled] = (sums / counts[filled, None]).astype(means.dtype)
    nearest_centroids(centers, means, member_of, sq)

    by_group = np.argsort(member_of, kind="stable")
    sizes = np.bincount(member_of, minlength=n_groups)
    group_starts = np.concatenate(([0], np.cumsum(sizes)))
    between = np.empty((n_groups, n_groups), dtype=np.float64)
    _pairwise_exact(means, between)
    np.fill_diagonal(between, -np.inf)  # a group is its own nearest
    lists, starts = [], [0]
    for j in range(n_groups):
        chosen, scanned = [], 0
        for other in np.argsort(between[j], kind="stable"):
            if sizes[other] == 0:
                continue
            chosen.append(by_group[group_starts[other]:group_starts[other + 1]])
            scanned += 1
            if scanned >= nprobe and sum(c.size for c in chosen) >= width:
                break
        merged = np.concatenate(chosen)
        lists.append(merged)
        starts.append(starts[-1] + merged.size)
    return means, np.concatenate(lists).astype(np.int64), np.asarray(starts, dtype=np.int64)


def default_n_groups(n_clusters, nprobe):
    """``round(sqrt(nprobe * k))``: about as many group means as candidates per point,
    which balances the two stages."""
    return int(min(n_clusters, max(1, round(np.sqrt(nprobe * n_clusters)))))


def assign_rows(X, centers, state, labels_out, sq_dist_out, groups, start, stop, block_rows=1024):
    """The two-level assignment of rows ``start:stop`` of ``X`` (see the module).

    Parameters
    ----------
    X : (n, d) float32 or float64, C-contiguous.
    centers : (k, d) centroids in ``X``'s dtype.
    state : (n, width) int32, rows ``start:stop`` overwritten: the exact nearest
        ``width`` candidates, nearest first, -1 where fewer exist.
    labels_out, sq_dist_out : (n,) int64 / float64: the nearest candidate and its
        exact squared distance.
    groups : the result of :func:`coarse_groups`.
    block_rows : rows per GEMM; the block of products stays in cache for the selection.

    A row's result depends only on the row, the centroids and the grouping.
    """
    means, candidates, starts = groups
    n_groups = means.shape[0]
    n, d = stop - start, X.shape[1]
    if n == 0:
        return
    bucket = np.empty(n, dtype=np.int64)
    nearest_centroids(X[start:stop], means, bucket, np.empty(n, dtype=np.float64))
    order, bucket_starts = counting_order(bucket, n_groups)
    order += start
    c_max_norm = float(np.sqrt(np.max(np.einsum("ij,ij->i", centers, centers, dtype=np.float64))))
    x_norms = np.sqrt(np.einsum("ij,ij->i", X[start:stop], X[start:stop], dtype=np.float64))
    bounds = score_error_bound(x_norms, c_max_norm, d, X.dtype)

    gathered = np.empty((block_rows, d), dtype=X.dtype)
    flat = np.empty(block_rows * int(np.max(np.diff(starts))), dtype=X.dtype)
    for group in range(n_groups):
        lo, hi = bucket_starts[group], bucket_starts[group + 1]
        if lo == hi:
            continue
        members = candidates[starts[group]:starts[group + 1]]
        member_rows = centers[members]
        weights = np.ascontiguousarray(member_rows.T * X.dtype.type(-2))
        member_sq_norms = np.einsum("ij,ij->i", member_rows, member_rows, dtype=np.float64).astype(X.dtype)
        for chunk in range(lo, hi, block_rows):
            rows = order[chunk:min(hi, chunk + block_rows)]
            m = rows.shape[0]
            np.take(X, rows, axis=0, out=gathered[:m])
            products = flat[:m * members.shape[0]].reshape(m, members.shape[0])
            np.matmul(gathered[:m], weights, out=products)
            _keep_nearest(products, member_sq_norms, members, rows, bounds[rows - start], X, centers, state,
                          labels_out, sq_dist_out)
