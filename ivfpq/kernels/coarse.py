"""Two-level BLAS assignment for points that have no previous centroid.

MOPBucket's searches are cheap because every point brings seeds from the previous
iteration. The first iteration has none, and a graph search from the upper layers
alone can be both the slowest assignment of a run and a poor one: on a 1M x 128
Gaussian mixture with k=10,000 it took 4.3 s (against 0.9 s for a seeded
iteration) and sent 1.6% of the points to another mixture component (cost 17% above
exact). This module assigns them with dense blocks that BLAS runs at full speed:

1. the centroids are grouped by a short k-means into ``g ~ sqrt(nprobe * k)``
   groups;
2. each point goes to the bucket of its nearest group (one GEMM against the ``g``
   group means);
3. each bucket is scored by one GEMM against the members of the ``nprobe`` groups
   nearest its group, and every point keeps its nearest ``width`` candidates: the
   label and the runners-up that seed the next iteration's graph search.

Per point this costs about ``g + nprobe * k / g`` distances at GEMM speed instead of
``k`` (exact) or a few hundred at graph-search speed, which is 20 to 30 times
slower per distance than BLAS. It works where the data's clusters are coarser than
the centroids (the mixture above: 98% of the points get their exact nearest
centroid, in 0.9 s); where they are not, the groups cut through neighbourhoods
(GloVe: 48%, Fashion-MNIST: 77% at k=10,000), so the graph assigner checks it on a
sample first (``GraphAssigner(cold_start="auto")``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .distances import nearest_centroids
from .lloyd import cluster_sums
from .mop import exact_sq_distance

__all__ = ["coarse_groups", "counting_order", "default_n_groups", "two_level_assign"]


@njit(cache=True, nogil=True)
def _keep_nearest(products, candidate_sq_norms, candidates, rows, X, centers, state, labels_out,
                  sq_dist_out):
    """Per row ``r`` of ``products`` (``-2 x.c`` against ``candidates``), the nearest
    ``state.shape[1]`` candidates into ``state[rows[r]]``, nearest first, ties to the
    lower centroid index; the first is the label, with its exact squared distance."""
    width = state.shape[1]
    last = width - 1
    best_d = np.empty(width, dtype=products.dtype)
    best_i = np.empty(width, dtype=np.int64)
    for r in range(products.shape[0]):
        best_d[:] = np.inf
        best_i[:] = -1
        worst = best_d[last]
        for t in range(products.shape[1]):
            dist = products[r, t] + candidate_sq_norms[t]
            if dist > worst:  # most candidates rank nowhere: one comparison
                continue
            node = candidates[t]
            slot = last
            if dist == worst and best_i[slot] >= 0 and node > best_i[slot]:
                continue
            while slot > 0 and (best_d[slot - 1] > dist or (best_d[slot - 1] == dist and best_i[slot - 1] > node)):
                best_d[slot] = best_d[slot - 1]
                best_i[slot] = best_i[slot - 1]
                slot -= 1
            best_d[slot] = dist
            best_i[slot] = node
            worst = best_d[last]
        i = rows[r]
        for t in range(width):
            state[i, t] = best_i[t]
        labels_out[i] = best_i[0]
        sq_dist_out[i] = exact_sq_distance(X, i, centers, best_i[0])


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


def coarse_groups(centers, n_groups, nprobe, width, seed, iterations=8):
    """Group the centroids by a short k-means over them.

    Returns ``(group_means, candidates, starts)``: the float (g, d) group means and,
    for group ``j``, the centroid indices ``candidates[starts[j]:starts[j + 1]]``: the
    members of the ``nprobe`` groups nearest to ``j`` (``j`` first), extended through
    farther groups until there are at least ``width`` of them.
    """
    k = centers.shape[0]
    n_groups = int(min(max(1, n_groups), k))
    rng = np.random.default_rng(seed)
    means = np.ascontiguousarray(centers[np.sort(rng.choice(k, n_groups, replace=False))])
    member_of = np.empty(k, dtype=np.int64)
    sq = np.empty(k, dtype=np.float64)
    unit = np.ones(k, dtype=np.float64)
    for _ in range(iterations):
        nearest_centroids(centers, means, member_of, sq)
        sums, counts = cluster_sums(centers, member_of, unit, n_groups)
        filled = counts > 0
        means[filled] = (sums[filled] / counts[filled, None]).astype(means.dtype)
    nearest_centroids(centers, means, member_of, sq)

    by_group = np.argsort(member_of, kind="stable")
    sizes = np.bincount(member_of, minlength=n_groups)
    group_starts = np.concatenate(([0], np.cumsum(sizes)))
    means64 = means.astype(np.float64)
    norms = np.einsum("ij,ij->i", means64, means64)
    between = norms[:, None] + norms[None, :] - 2.0 * (means64 @ means64.T)
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


def two_level_assign(X, centers, state, labels_out, sq_dist_out, nprobe=1, seed=0,
                     n_groups=None, block_rows=1024, groups=None, n_threads=None):
    """Assign every row of ``X`` among the centroids of its nearest groups (see module).

    Parameters
    ----------
    X : (n, d) float32 or float64, C-contiguous.
    centers : (k, d) centroids in ``X``'s dtype.
    state : (n, width) int32, overwritten: the nearest ``width`` candidates found,
        nearest first, -1 where fewer exist.
    labels_out, sq_dist_out : (n,) int64 / float64: the nearest candidate and its
        squared distance accumulated in float64.
    nprobe : groups scanned per bucket (the bucket's own and its nearest others).
    seed : seeds the grouping.
    n_groups : number of groups, :func:`default_n_groups` by default.
    block_rows : rows per GEMM; the block of products stays in cache for the selection.
    groups : the result of :func:`coarse_groups`, to reuse one grouping for several
        calls (``nprobe``, ``seed`` and ``n_groups`` are then not used).
    n_threads : threads, each taking a contiguous share of the rows through both
        stages with single-threaded BLAS (default: Numba's thread count). A row's
        candidates depend only on the row; which rows share its GEMM block does depend
        on the thread count, so near-ties may round differently.
    """
    import numba
    from concurrent.futures import ThreadPoolExecutor

    from .._threads import thread_limits

    n = X.shape[0]
    k = centers.shape[0]
    width = state.shape[1]
    if groups is None:
        groups = coarse_groups(centers, n_groups or default_n_groups(k, nprobe), nprobe, width, seed)
    n_threads = max(1, min(n_threads or numba.get_num_threads(), n // block_rows + 1))
    bounds = np.linspace(0, n, n_threads + 1).astype(np.int64)
    # Each share runs a GEMM, then a selection kernel, in turn: one BLAS thread per
    # share keeps both cores busy without a BLAS pool spinning against the kernels.
    with thread_limits(1):
        if n_threads == 1:
            _assign_rows(X, centers, state, labels_out, sq_dist_out, groups, 0, n, block_rows)
            return
        with ThreadPoolExecutor(n_threads) as pool:
            jobs = [pool.submit(_assign_rows, X, centers, state, labels_out, sq_dist_out, groups,
                                bounds[t], bounds[t + 1], block_rows) for t in range(n_threads)]
            for job in jobs:
                job.result()


def _assign_rows(X, centers, state, labels_out, sq_dist_out, groups, start, stop, block_rows):
    """:func:`two_level_assign` for the rows ``start:stop``."""
    means, candidates, starts = groups
    n_groups = means.shape[0]
    n, d = stop - start, X.shape[1]
    if n == 0:
        return
    bucket = np.empty(n, dtype=np.int64)
    nearest_centroids(X[start:stop], means, bucket, np.empty(n, dtype=np.float64))
    order, bucket_starts = counting_order(bucket, n_groups)
    order += start

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
            _keep_nearest(products, member_sq_norms, members, rows, X, centers, state, labels_out,
                          sq_dist_out)
