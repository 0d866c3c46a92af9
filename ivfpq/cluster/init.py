"""Initial centroids over any executor: "random", greedy "k-means++", "k-means||" and
"hierarchical".

Each is written once against the executor protocol (:mod:`ivfpq.cluster.executor`)
and gives the same centroids, bit for bit, however the rows are blocked: random
numbers belong to global row numbers (a counter-based generator), distances that
decide anything are exact (a BLAS screen with an exact float64 recheck), and every
total is a fixed-point integer sum (:mod:`ivfpq.kernels.lloyd`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from .._threads import numba_threads, thread_limits
from ..kernels.distances import (
    _error_factors,
    augmented_centroids,
    exact_sq_distance,
    nearest_centroids,
    score_error_bound,
)
from ..kernels.lloyd import fixed_point_scale, fixed_total
from ..kernels.seeding import closest_with, fixed_totals, greedy_kmeanspp_rows
from .assign import ExactAssigner
from .executor import LocalBlocks, add_partials, gather_rows
from .lloyd import lloyd

__all__ = ["random_centers", "kmeans_plusplus", "kmeans_parallel", "hierarchical_centers", "random_rows",
           "row_uniforms", "split_counts"]


def row_uniforms(seed, draw, start, n):
    """Uniform numbers in (0, 1) for rows ``start:start + n`` of draw ``draw``.

    SplitMix64 of the global row index, keyed by seed and draw: a row gets the same
    number however the data is split into blocks.
    """
    key = np.random.SeedSequence(seed, spawn_key=(int(draw),)).generate_state(1, np.uint64)[0]
    z = np.arange(start, start + n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _sample_keys(block, m, seed, draw):
    """Weighted sampling without replacement (Efraimidis-Spirakis): the block's top-``m``
    keys ``log(u_i) / w_i``; the ``m`` largest over all rows are the sample."""
    u = row_uniforms(seed, draw, block.offset, block.weights.shape[0])
    with np.errstate(divide="ignore"):
        keys = np.where(block.weights > 0, np.log(u) / block.weights, -np.inf)
    top = np.argsort(-keys, kind="stable")[:m]
    top = top[np.isfinite(keys[top])]
    return keys[top], block.offset + top


def random_rows(ex, blocks, m, seed, draw=0):
    """Global indices of ``m`` distinct rows drawn with probability proportional to weight."""
    found = ex.gather(ex.map(_sample_keys, blocks, shared=(m, seed, draw), data=False))
    keys = np.concatenate([f[0] for f in found])
    rows = np.concatenate([f[1] for f in found])
    return rows[np.lexsort((rows, -keys))[:m]]


def enough_rows(ex, blocks, m, seed):
    """:func:`random_rows`, made up to ``m`` with the first rows of zero weight where
    fewer than ``m`` rows have a positive weight."""
    rows = random_rows(ex, blocks, m, seed)
    if rows.size < m:
        first = np.arange(min(ex.n_rows, m + rows.size), dtype=np.int64)
        rows = np.concatenate([rows, first[~np.isin(first, rows)][: m - rows.size]])
    return rows


def random_centers(ex, blocks, n_clusters, rng):
    """"random": ``n_clusters`` distinct rows drawn by weight, in one pass."""
    return gather_rows(ex, blocks, enough_rows(ex, blocks, n_clusters, int(rng.integers(2**63))))


def _cost_scale(ex, stats):
    """Scale of weighted totals of squared distances between rows of the data."""
    n, max_abs, max_weight = stats
    return fixed_point_scale(float(n) * float(max_weight) * 4.0 * float(np.sum(np.square(max_abs))))


# ----------------------------------------------------------------------------- k-means++


def _row_sq_norms(x, block):
    """Squared norms of a block's rows, in float64 (their norms are a column of it)."""
    x_sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    return np.stack([x_sq, np.sqrt(x_sq)])


def _trial_distances(x, block, closest, norms, candidates, scale):
    """Per row, the squared distance to the nearest centroid so far if each candidate
    joined; and each candidate's weighted potential (fixed point). ``norms`` is the
    block's :func:`_row_sq_norms`."""
    n, m = x.shape[0], candidates.shape[0]
    out = np.empty((n, m), dtype=np.float64)
    if n:
        augmented = augmented_centroids(candidates)
        scores = x @ augmented[:-1] + augmented[-1]
        c_max = float(np.sqrt(np.max(np.einsum("ij,ij->i", candidates, candidates, dtype=np.float64))))
        bound = score_error_bound(norms[1], c_max, x.shape[1], x.dtype)
        closest_with(scores, norms[0], bound, x, np.ascontiguousarray(candidates), closest, out)
    return out, (fixed_totals(out, block.weights, scale),)


def _column(values, column):
    return np.ascontiguousarray(values[:, column])


def _block_totals(block, values, scale):
    return int(fixed_total(values, block.weights, scale))


def _pick_in_block(block, values, scale, targets):
    """Local rows where the fixed-point cumulative sum of ``w * values`` passes each target."""
    cumulative = np.cumsum(np.rint(block.weights * values * scale).astype(np.int64))
    return np.minimum(np.searchsorted(cumulative, targets, side="right"), max(0, values.shape[0] - 1))


def _draw_by(ex, blocks, values, scale, draws):
    """Global rows drawn with probability proportional to ``w * values``, one per number
    in ``draws`` (uniforms in [0, 1)); None where the total is zero."""
    totals = np.array(ex.gather(ex.map(_block_totals, blocks, values, shared=(scale,), data=False)),
                      dtype=object)
    total = int(sum(totals))
    if total <= 0:
        return None
    ends = np.cumsum(totals)
    targets = [min(int(u * total), total - 1) for u in draws]
    owner = [int(np.searchsorted(ends, t, side="right")) for t in targets]
    rows = np.empty(len(targets), dtype=np.int64)
    for b in sorted(set(owner)):
        mine = [i for i, o in enumerate(owner) if o == b]
        before = int(ends[b] - totals[b])
        local = ex.gather(ex.submit(_pick_in_block, blocks[b], values[b], scale,
                                    np.array([targets[i] - before for i in mine], dtype=np.int64)))
        rows[mine] = np.asarray(local) + ex.offsets[b]
    return rows


def _initial_closest(x, block, first):
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = exact_sq_distance(x, i, first, 0)
    return out


def _plusplus_in_block(x, block, scale, uniforms, n_clusters, n_trials):
    rows = greedy_kmeanspp_rows(x, block.weights, scale, uniforms, n_clusters, n_trials,
                                *_error_factors(x.shape[1], x.dtype))
    return x[rows]


def kmeans_plusplus(ex, blocks, stats, n_clusters, rng, n_local_trials=None):
    """Greedy k-means++ (Arthur & Vassilvitskii), as scikit-learn runs it.

    Each new centroid is the best of ``n_local_trials`` candidates (default
    ``2 + int(ln k)``) drawn with probability proportional to weight times squared
    distance to the nearest centroid so far (by weight alone once every row sits on a
    centroid); "best" means lowest resulting potential. Two passes over the data per
    centroid; distances by BLAS blocks with an exact recheck wherever they could change
    a minimum. Data of one block runs the whole loop in one task
    (:func:`~ivfpq.kernels.seeding.greedy_kmeanspp_rows`), with the same draws and the
    same exact decisions, so the same centroids.
    """
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    scale = _cost_scale(ex, stats)
    uniforms = rng.random(1 + (n_clusters - 1) * n_local_trials)
    if ex.n_blocks == 1:
        return ex.gather(ex.submit(_plusplus_in_block, ex.data[0], blocks[0], scale, uniforms, n_clusters,
                                   n_local_trials, heavy=True))
    ones = [ex.put(np.ones(ex.offsets[b + 1] - ex.offsets[b])) for b in range(ex.n_blocks)]
    first = _draw_by(ex, blocks, ones, scale, uniforms[:1])
    centers = np.empty((n_clusters, ex.n_features), dtype=ex.dtype)
    centers[0] = gather_rows(ex, blocks, first)[0]
    closest = ex.map(_initial_closest, blocks, shared=(ex.put(centers[:1].copy()),))
    norms = ex.map(_row_sq_norms, blocks)
    for c in range(1, n_clusters):
        draws = uniforms[1 + (c - 1) * n_local_trials: 1 + c * n_local_trials]
        rows = _draw_by(ex, blocks, closest, scale, draws)
        if rows is None:  # every point sits on a centroid already: any rows will do
            rows = np.minimum((draws * ex.n_rows).astype(np.int64), ex.n_rows - 1)
        candidates = gather_rows(ex, blocks, rows)
        trials, potentials = ex.map_reduce(_trial_distances, add_partials, blocks, closest, norms,
                                           shared=(ex.put(candidates), scale), name="kmeans++")
        best = int(np.argmin(ex.gather(potentials)[0]))
        centers[c] = candidates[best]
        closest = ex.map(_column, trials, shared=(best,), data=False)
    return centers


def _in_memory(rows, weights=None):
    """(executor, blocks, statistics) of rows in memory, as one block."""
    local = LocalBlocks(lambda start, stop: rows[start:stop], [0, rows.shape[0]], rows.shape[1], rows.dtype,
                        weights, cache=True)
    return (local, *local.validate())


# ----------------------------------------------------------------------------- k-means||


def _closest_to(x, block, previous, candidates, scale):
    """Squared distance of each row to its nearest candidate (min with ``previous``)
    and the block's weighted cost (fixed point)."""
    n = x.shape[0]
    closest = np.empty(n, dtype=np.float64)
    if n:
        nearest_centroids(x, np.ascontiguousarray(candidates, dtype=x.dtype), np.empty(n, np.int64), closest)
    if previous is not None:
        closest = np.minimum(closest, previous)
    return closest, (int(fixed_total(closest, block.weights, scale)),)


def _oversample(block, closest, factor, cost, seed, draw):
    """Rows picked independently with probability min(1, factor * w * d^2 / cost)."""
    u = row_uniforms(seed, draw, block.offset, block.weights.shape[0])
    p = np.minimum(1.0, factor * block.weights * closest / cost)
    return block.offset + np.flatnonzero(u < p)


def _candidate_weights(x, block, candidates, weight_scale):
    """Fixed-point total weight of the rows whose nearest candidate is each candidate."""
    n = x.shape[0]
    out = np.zeros(candidates.shape[0], dtype=np.int64)
    if n:
        labels = np.empty(n, dtype=np.int64)
        nearest_centroids(x, np.ascontiguousarray(candidates, dtype=x.dtype), labels, np.empty(n))
        np.add.at(out, labels, np.rint(block.weights * weight_scale).astype(np.int64))
    return (out,)


def kmeans_parallel(ex, blocks, stats, n_clusters, rng, oversampling_factor=None, n_rounds=5):
    """k-means|| (Bahmani et al., 2012): k-means++ seeding in a few passes over the data.

    Starts from one row drawn with probability proportional to weight; each of
    ``n_rounds`` rounds then picks every row independently with probability
    ``min(1, l * w * d^2 / cost)`` (``l = oversampling_factor``, default
    ``2 * n_clusters``; ``d`` the distance to the nearest candidate so far, ``cost``
    the weighted sum of ``d^2``). Each candidate is then weighted by the total weight
    of the rows nearest to it, and weighted greedy k-means++ picks ``n_clusters`` of
    them, in this process. About ``1 + l * n_rounds`` candidates; ``n_rounds + 2``
    passes over the data.
    """
    factor = float(2 * n_clusters if oversampling_factor is None else oversampling_factor)
    seed = int(rng.integers(2**63))
    scale = _cost_scale(ex, stats)
    chosen = [random_rows(ex, blocks, 1, seed, draw=0)]
    candidates = gather_rows(ex, blocks, chosen[0])
    closest, cost = ex.map_reduce(_closest_to, add_partials, blocks, [None] * ex.n_blocks,
                                  shared=(ex.put(candidates), scale), name="kmeans||-cost")
    cost = ex.gather(cost)[0] / scale
    for round_ in range(1, n_rounds + 1):
        if cost <= 0:
            break
        picked = ex.gather(ex.map(_oversample, blocks, closest, shared=(factor, cost, seed, round_),
                                  data=False))
        new_rows = np.concatenate(picked)
        if new_rows.size == 0:
            continue
        chosen.append(new_rows)
        new = gather_rows(ex, blocks, new_rows)
        candidates = np.concatenate([candidates, new])
        closest, cost = ex.map_reduce(_closest_to, add_partials, blocks, closest,
                                      shared=(ex.put(new), scale), name="kmeans||-cost")
        cost = ex.gather(cost)[0] / scale
    del closest
    rows = np.concatenate(chosen)
    if rows.size < n_clusters:
        # Fewer candidates than clusters (few distinct rows, or a tiny factor): add
        # rows drawn by weight that are not candidates yet.
        extra = random_rows(ex, blocks, n_clusters + rows.size, seed, draw=n_rounds + 1)
        extra = extra[~np.isin(extra, rows)][: n_clusters - rows.size]
        candidates = np.concatenate([candidates, gather_rows(ex, blocks, extra)])
    if candidates.shape[0] == n_clusters:
        return candidates
    weight_scale = fixed_point_scale(float(stats[0]) * float(stats[2]))
    weights = ex.map_reduce(_candidate_weights, add_partials, blocks,
                            shared=(ex.put(candidates), weight_scale), name="kmeans||-weights",
                            outputs=False)
    weights = ex.gather(weights)[0].astype(np.float64) / weight_scale
    return kmeans_plusplus(*_in_memory(candidates, weights), n_clusters, rng)


# ----------------------------------------------------------------------------- hierarchical

#: Sample rows per cluster that the hierarchical start clusters, and its cap in bytes:
#: the start reads ``min(n, SAMPLE_PER_CLUSTER * k, HIERARCHICAL_SAMPLE_BYTES / row)``
#: rows once and works in memory from there.
SAMPLE_PER_CLUSTER = 32
HIERARCHICAL_SAMPLE_BYTES = 1 << 28
#: Lloyd iterations within each level of the hierarchical start.
LEVEL_ITERS = 4


def split_counts(sizes, total, weights=None):
    """``total`` clusters shared among groups in proportion to their ``weights`` (default:
    their ``sizes``; largest remainders, ties to the lower index), no group given more
    clusters than it has rows.

    >>> split_counts(np.array([6, 3, 1]), 5).tolist()
    [3, 2, 0]
    >>> split_counts(np.array([6, 3, 1]), 5, weights=np.array([1.0, 1.0, 2.0])).tolist()
    [2, 2, 1]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    weights = sizes.astype(np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    if total > sizes.sum():
        raise ValueError(f"cannot share {total} clusters among {sizes.sum()} rows")
    counts = np.zeros(sizes.size, dtype=np.int64)
    open_ = sizes > 0
    left = int(total)
    while left > 0:
        # Each round hands out what is left in proportion to the weights of groups not
        # yet full; a group capped at its row count leaves its share to the next round.
        # Groups of zero weight share among themselves only when no other has room.
        weighted = weights * open_
        if not weighted.sum() > 0:
            weighted = sizes * open_.astype(np.float64)
        share = left * weighted / weighted.sum()
        whole = np.minimum(np.floor(share).astype(np.int64), sizes - counts)
        counts += whole
        left -= int(whole.sum())
        room = open_ & (counts < sizes)
        if left > 0:
            remainder = np.where(room, share - np.floor(share), -1.0)
            order = np.argsort(-remainder, kind="stable")[: min(left, int(room.sum()))]
            counts[order] += 1
            left -= order.size
        open_ = counts < sizes
    return counts


def _lloyd_in_memory(rows, centers, spherical):
    """``LEVEL_ITERS`` exact Lloyd iterations (spherical ones for the cosine metric) on
    rows in memory from ``centers``: (centroids, labels, squared distances of the rows to
    the centroids of the last assignment)."""
    local, local_blocks, local_stats = _in_memory(rows)
    result = lloyd(local, local_blocks, local_stats, centers, ExactAssigner(), LEVEL_ITERS,
                   spherical=spherical)
    return result.centers, local.labels(result.states), np.concatenate([st.sq_dists for st in result.states])


def hierarchical_centers(ex, blocks, n_clusters, rng, spherical=False):
    """"hierarchical": a two-level k-means of a sample, for large ``n_clusters``.

    Reads a sample of ``min(n, SAMPLE_PER_CLUSTER * k)`` rows drawn by weight (at most
    ``HIERARCHICAL_SAMPLE_BYTES`` of them), clusters it into about ``sqrt(k)`` groups
    (greedy k-means++ on 64 rows per group, then ``LEVEL_ITERS`` Lloyd iterations on the
    sample), gives each group one centroid and shares the rest in proportion to the
    groups' costs (the squared distances of their rows to their centroid;
    :func:`split_counts`), and
    clusters each group into its share (greedy k-means++ on the group's rows, then
    ``LEVEL_ITERS`` Lloyd iterations). A Lloyd iteration of either level costs about
    ``SAMPLE_PER_CLUSTER * k**1.5 * d``, and k-means++ within a group about ``32 k_g``
    rows per centroid, against greedy k-means++'s two passes over all
    ``n`` rows per centroid. The same centroids however the rows are blocked and
    whatever the thread count: the sample is drawn by global row number, everything
    after it runs in this process, and the groups, clustered side by side on Numba's
    thread count (one thread each), each draw from a seed of their own.
    """
    itemsize = np.dtype(ex.dtype).itemsize
    cap = max(n_clusters, HIERARCHICAL_SAMPLE_BYTES // (ex.n_features * itemsize))
    n_sample = min(ex.n_rows, SAMPLE_PER_CLUSTER * n_clusters, cap)
    rows = enough_rows(ex, blocks, n_sample, int(rng.integers(2**63)))
    sample = gather_rows(ex, blocks, np.sort(rows))
    if rows.size <= n_clusters:
        return sample[:n_clusters]
    n_groups = max(1, int(round(np.sqrt(n_clusters))))
    # The groups start from greedy k-means++ on a few rows per group: its two passes per
    # centroid over the whole sample would cost more than the rest of the start.
    seeding = sample[np.sort(rng.choice(sample.shape[0], min(sample.shape[0], 64 * n_groups), replace=False))]
    _, groups, sq_dists = _lloyd_in_memory(sample, kmeans_plusplus(*_in_memory(seeding), n_groups, rng),
                                           spherical)
    order = np.argsort(groups, kind="stable")
    sizes = np.bincount(groups, minlength=n_groups)
    costs = np.bincount(groups, weights=sq_dists, minlength=n_groups)
    # An optimal quantizer puts about cost**(d / (d + 2)) of its centroids in a region:
    # nearly in proportion to the cost in many dimensions. Every group keeps one, so
    # that a tight, far group is never left for later iterations to reach.
    occupied = (sizes > 0).astype(np.int64)
    counts = occupied + split_counts(sizes - occupied, n_clusters - int(occupied.sum()), weights=costs)
    ends, filled = np.cumsum(sizes), np.cumsum(counts)
    members = [sample[order[ends[g] - sizes[g]:ends[g]]] for g in range(n_groups)]
    # A seed per group: the groups are independent tasks, so their centroids do not
    # depend on the order the threads take them in.
    seeds = rng.integers(2**63, size=n_groups)

    def cluster_group(g):
        if counts[g] == sizes[g]:
            return members[g]
        with numba_threads(1):
            first = kmeans_plusplus(*_in_memory(members[g]), int(counts[g]), np.random.default_rng(seeds[g]))
            return _lloyd_in_memory(members[g], first, spherical)[0]

    centers = np.empty((n_clusters, ex.n_features), dtype=ex.dtype)
    busy = [g for g in np.argsort(-counts * sizes, kind="stable") if counts[g] > 0]
    n_threads = max(1, numba.get_num_threads())
    with thread_limits(1), ThreadPoolExecutor(n_threads) as pool:
        for g, group_centers in zip(busy, pool.map(cluster_group, busy)):
            centers[filled[g] - counts[g]:filled[g]] = group_centers
    return centers
