"""k-means over blocks of rows: out-of-core on one machine, and the loop Dask runs.

The in-memory :func:`ivfpq.cluster.kmeans.lloyd` is the reference. This module runs
the same iterations over row blocks that never need to be in memory together:

* every block is assigned with the same assigner (``prepare`` once per iteration,
  ``assign`` per block) and reduced to per-cluster weighted sums and counts with the
  same kernel (:func:`ivfpq.kernels.lloyd.cluster_sums`) and the number of its labels
  that changed; the inertia comes from the reduced sums, as in ``lloyd``;
* the per-block partials are added in a fixed binary tree over the block index, so
  the result does not depend on the order blocks finish in;
* per-point state (labels, squared distances, the assigner's memory) stays with its
  block between iterations;
* the update, empty-cluster repair, convergence test, history and callback are those
  of ``lloyd``.

From the same initial centroids the result equals ``lloyd``'s up to the float
rounding of the float64 sums (added per block, then across blocks). The graph
assigner (``algorithm="mop"``) orders each block's rows and audits its shortcuts on
a sample of each block, so with several blocks its fit is as good but not identical.

Where blocks live is an *executor*'s business. :class:`LocalBlocks` (here) reads
them one at a time in this process, from an ``np.memmap`` or any array it can slice;
``ivfpq.distributed.DaskBlocks`` keeps them, and every per-block state, on the
workers of a Dask cluster. Both answer the same few calls (``map``, ``map_reduce``,
``submit``, ``put``, ``gather``), so the loop and the initialisations below are
written once. A value a call returns is a *handle*: the value itself here, a Dask
future there. Functions called through an executor must not modify their arguments
(Dask may run a task again from the same inputs after losing a worker).
"""

from __future__ import annotations

import copy
import operator
import time
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_block, check_block_weights, check_lazy_array, check_positive_int
from ..kernels.distances import exact_sq_distances, nearest_centroids, sq_norms
from ..kernels.lloyd import cluster_sums
from .init import kmeans_plusplus

__all__ = [
    "LocalBlocks",
    "BlockedResult",
    "blocked_lloyd",
    "kmeans_parallel",
    "random_rows",
    "tree_reduce",
    "fit_blocks",
    "DEFAULT_BLOCK_BYTES",
]

#: Bytes of data per block when reading an out-of-core array (``block_rows=None``).
DEFAULT_BLOCK_BYTES = 64 << 20


# ----------------------------------------------------------------------------- reduction


def tree_reduce(items, combine):
    """Combine ``items`` pairwise, level by level: ((0, 1), (2, 3)), ... in index order.

    The shape of the tree depends only on ``len(items)``, so float sums come out the
    same however the items were computed. An odd item at the end of a level moves
    up unchanged.
    """
    items = list(items)
    if not items:
        raise ValueError("tree_reduce needs at least one item")
    while len(items) > 1:
        paired = [combine(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            paired.append(items[-1])
        items = paired
    return items[0]


class _StreamingTree:
    """The tree of :func:`tree_reduce`, built while items arrive one at a time.

    Holds at most log2(n) partial results (a binary counter), so a reduction over
    many blocks never keeps every block's partial in memory.
    """

    def __init__(self, combine):
        self.combine = combine
        self.stack = []  # (number of leaves, value), sizes strictly decreasing

    def push(self, value):
        size = 1
        while self.stack and self.stack[-1][0] == size:
            left_size, left = self.stack.pop()
            value = self.combine(left, value)
            size += left_size
        self.stack.append((size, value))

    def result(self):
        size, value = self.stack.pop()
        while self.stack:
            left_size, left = self.stack.pop()
            value = self.combine(left, value)
        return value


def _add(a, b):
    """Element-wise sum of two partials (tuples of arrays and numbers; None stays None)."""
    return tuple(None if x is None else x + y for x, y in zip(a, b))


# ----------------------------------------------------------------------------- per-block state


@dataclass
class Block:
    """What a block keeps for the whole fit: where its rows start and their weights."""

    offset: int
    weights: np.ndarray  # float64, one per row


@dataclass
class LloydBlock:
    """A block's per-point state between Lloyd iterations."""

    block: Block
    labels: np.ndarray  # int64, -1 before the first assignment
    sq_dists: np.ndarray  # float64, exact squared distance to the assigned centroid
    state: object  # the assigner's memory for these rows (None for ExactAssigner)


def _normalize_block(x):
    norms = np.sqrt(sq_norms(x).astype(np.float64))
    return x / norms[:, None].astype(x.dtype)


def _check_data_block(x, w, offset, dtype, cosine, name="X"):
    """Validate one raw block; returns (Block, data block, statistics of the raw rows)."""
    x = check_block(x, dtype, offset, name)
    weights = check_block_weights(w, x.shape[0], offset)
    if cosine and x.shape[0]:
        zero = np.flatnonzero(sq_norms(x) == 0)
        if zero.size:
            raise ValueError(
                f"{name} has {zero.size} rows of zero norm in the block starting at row {offset} "
                f"(first at row {offset + int(zero[0])}); the cosine metric needs every row to "
                "have a direction"
            )
    # (count, mean, M2) per feature, combined across blocks with Chan's formula, for
    # the tolerance (mean per-feature variance of the raw X, as the in-memory fit).
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=0) if x.shape[0] else np.zeros(x.shape[1])
    m2 = ((x64 - mean) ** 2).sum(axis=0)
    data = _normalize_block(x) if cosine else x
    # sum_i w_i |x_i|^2 of the rows the loop sees: with the cluster sums it gives the
    # exact inertia (kmeans.cost_from_sums).
    weighted_sq_norms = float(weights @ np.einsum("ij,ij->i", data, data, dtype=np.float64))
    stats = (x.shape[0], mean, m2, float(weights.sum()), weighted_sq_norms)
    return Block(offset, weights), data, stats


def _combine_moments(a, b):
    n_a, mean_a, m2_a, w_a, sq_a = a
    n_b, mean_b, m2_b, w_b, sq_b = b
    n = n_a + n_b
    if n == 0:
        return a
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta**2 * (n_a * n_b / n)
    return (n, mean, m2, w_a + w_b, sq_a + sq_b)


def _new_lloyd_block(block, assigner):
    n = block.weights.shape[0]
    return LloydBlock(block, np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.float64),
                      assigner.new_state(n))


def _lloyd_step(x, previous, model, n_clusters, copy_state):
    """Assign one block; returns its new state and its partial (sums, counts, changed).

    The distances the assigner writes only rank points for empty-cluster repair; the
    inertia comes from the reduced sums (as in ``lloyd``).
    """
    n = x.shape[0]
    assigner = model[0]
    state = copy.deepcopy(previous.state) if copy_state else previous.state
    labels = np.empty(n, dtype=np.int64)
    sq_dists = np.empty(n, dtype=np.float64)
    if n:
        assigner.assign(x, state, labels, sq_dists)
    weights = previous.block.weights
    changed = int(np.count_nonzero(labels != previous.labels))
    sums, counts = cluster_sums(x, labels, weights, n_clusters)
    return LloydBlock(previous.block, labels, sq_dists, state), (sums, counts, changed)


def _widen_model(model, copy_assigner):
    """The model with its assigner's search widened (see ``GraphAssigner.widen``)."""
    assigner, centers = model
    if copy_assigner:
        assigner = copy.deepcopy(assigner)
    assigner.widen()
    return assigner, centers


def _prepare_model(previous, centers, copy_assigner):
    """(assigner ready for ``centers``, centers): for the graph assigner the graph is
    built (or warm-started from ``previous``'s) here, once per iteration.

    ``previous`` is the unprepared assigner or the previous model. The model carries
    its centers so that the update step needs nothing older than the model, which the
    loop keeps: a lost worker never forces a replay from the first iteration.
    """
    assigner = previous[0] if isinstance(previous, tuple) else previous
    if copy_assigner:
        assigner = copy.deepcopy(assigner)
    centers = np.ascontiguousarray(centers)
    assigner.prepare(centers)
    getattr(assigner, "ready", lambda: None)()  # every block must see the same graph
    return assigner, centers


def _summarize(reduced, model, weighted_sq_norms, moves, spherical, tol, stop_when_allclose):
    """The update step on the reduced partials: (new centers, small statistics)."""
    from ..kernels.lloyd import updated_centers
    from .kmeans import cost_from_sums

    centers = model[1]
    sums, counts, changed = reduced
    inertia = cost_from_sums(weighted_sq_norms, sums, counts, centers)
    if moves is not None:
        sums, counts = sums.copy(), counts.copy()
        for cluster, old, weight, point in zip(*moves):
            sums[old] -= weight * point
            counts[old] -= weight
            sums[cluster] = weight * point
            counts[cluster] = weight
    updated, shift = updated_centers(np.ascontiguousarray(centers), sums, counts, spherical)
    converged = bool(np.allclose(updated, centers)) if stop_when_allclose else shift <= tol
    stats = {
        "inertia": float(inertia),
        "changed": int(changed),
        "empty": np.flatnonzero(counts == 0),
        "converged": converged,
        "shift": shift,
    }
    return updated, stats


def _farthest_rows(x, state, m):
    """The ``m`` rows of positive weight farthest from their centroid, farthest first."""
    candidates = np.flatnonzero(state.block.weights > 0)
    order = candidates[np.argsort(-state.sq_dists[candidates], kind="stable")][:m]
    return (state.sq_dists[order], state.block.offset + order, state.block.weights[order],
            x[order].astype(np.float64), state.labels[order])


def _apply_moves(state, local_rows, clusters, model):
    """The block after empty-cluster repair moved ``local_rows`` to ``clusters``."""
    labels = state.labels.copy()
    sq_dists = state.sq_dists.copy()
    labels[local_rows] = clusters
    sq_dists[local_rows] = 0.0
    memory = state.state
    if hasattr(model[0], "relabel"):  # assigners that remember labels (mop), as in lloyd
        memory = copy.deepcopy(memory)
        model[0].relabel(memory, local_rows, clusters)
    return LloydBlock(state.block, labels, sq_dists, memory)


def _labels_of(state):
    return state.labels


def _relocate_empty_clusters(ex, states, reduced, model, weighted_sq_norms, empty, spherical, tol,
                             allclose):
    """Give each empty cluster one of the farthest points, as ``lloyd`` does.

    The candidates are the farthest points of every block; the farthest of all win,
    ties going to the lowest row, so the choice equals the in-memory one.
    """
    m = len(empty)
    found = ex.gather(ex.map(_farthest_rows, states, shared=(m,)))
    sq, rows, weights, points, old = (np.concatenate([f[j] for f in found]) for j in range(5))
    chosen = np.lexsort((rows, -sq))[:m]
    clusters = np.asarray(empty[: chosen.size], dtype=np.int64)
    moves = (clusters, old[chosen], weights[chosen], points[chosen])
    starts = np.asarray(ex.offsets[:-1])
    owner = np.searchsorted(starts, rows[chosen], side="right") - 1
    # Empty blocks share their offset with the next block; searchsorted picks the last
    # of them, which is the one holding the row.
    states = list(states)
    for b in np.unique(owner):
        mine = owner == b
        local = rows[chosen][mine] - starts[b]
        states[b] = ex.submit(_apply_moves, states[b], local, clusters[mine], model)
    summary = ex.submit(_summarize, reduced, model, weighted_sq_norms, moves, spherical, tol, allclose)
    return states, summary, ex.gather(ex.submit(operator.getitem, summary, 1))


# ----------------------------------------------------------------------------- the loop


@dataclass
class BlockedResult:
    """What :func:`blocked_lloyd` returns: as ``LloydResult``, labels as block handles."""

    centers: np.ndarray
    states: list
    inertia: float
    n_iter: int
    history: list = field(default_factory=list)
    changed_fraction: list = field(default_factory=list)


def blocked_lloyd(
    ex,
    blocks,
    weighted_sq_norms,
    centers,
    assigner,
    max_iter,
    tol=0.0,
    *,
    spherical=False,
    stop_when_allclose=False,
    callback=None,
):
    """Lloyd iterations over the blocks of executor ``ex``, from ``centers``.

    The same iterations, stopping rules, history and callback as
    :func:`ivfpq.cluster.kmeans.lloyd`; ``blocks`` are the handles the executor's
    validation pass returned, ``weighted_sq_norms`` the sum of w_i |x_i|^2 it found. Per iteration the only values that come back to the
    caller are a few numbers (inertia, changed labels, convergence); centroids go
    from one task to the next as handles.
    """
    start = time.perf_counter()
    n, k = ex.n_rows, centers.shape[0]
    centers = np.ascontiguousarray(centers, dtype=ex.dtype)
    template = ex.put(assigner)
    states = ex.map(_new_lloyd_block, blocks, shared=(template,), data=False)
    model = ex.submit(_prepare_model, template, ex.put(centers), ex.remote, heavy=True)
    history, changed_fraction = [], []
    labels_match_centers = False
    n_iter = 0
    stats = None
    from .kmeans import WIDEN_BELOW

    widen_left = assigner.widen_steps() if hasattr(assigner, "widen_steps") else 0
    previous_inertia = np.inf

    for iteration in range(max_iter):
        ex.keep(model)
        states, reduced = ex.map_reduce(
            _lloyd_step, _add, states, shared=(model, k, ex.remote), name="lloyd-step"
        )
        summary = ex.submit(_summarize, reduced, model, weighted_sq_norms, None, spherical, tol,
                            stop_when_allclose)
        stats = ex.gather(ex.submit(operator.getitem, summary, 1))
        changed = stats["changed"]
        if changed == 0:  # strict convergence: the update would not move anything
            if widen_left:  # ... unless a wider search finds something (see ``lloyd``)
                widen_left -= 1
                model = ex.submit(_widen_model, model, ex.remote, heavy=True)
                continue
            labels_match_centers = True
            break
        n_iter += 1
        if stats["empty"].size:
            states, summary, stats = _relocate_empty_clusters(
                ex, states, reduced, model, weighted_sq_norms, stats["empty"], spherical, tol,
                stop_when_allclose,
            )
        del reduced
        model = ex.submit(_prepare_model, model, ex.submit(operator.getitem, summary, 0), ex.remote,
                          heavy=True)

        history.append((time.perf_counter() - start, stats["inertia"]))
        changed_fraction.append(changed / n)
        if callback is not None:
            callback(n_iter, stats["inertia"], changed / n)
        if stats["converged"]:
            if not widen_left:
                break
            widen_left -= 1
            model = ex.submit(_widen_model, model, ex.remote, heavy=True)
        elif widen_left and previous_inertia - stats["inertia"] < WIDEN_BELOW * stats["inertia"]:
            widen_left -= 1  # as in ``lloyd``: a stalling approximate search looks further
            model = ex.submit(_widen_model, model, ex.remote, heavy=True)
        previous_inertia = stats["inertia"]

    if labels_match_centers:
        inertia = stats["inertia"]
    else:
        ex.keep(model)
        states, reduced = ex.map_reduce(
            _lloyd_step, _add, states, shared=(model, k, ex.remote), name="lloyd-final"
        )
        summary = ex.submit(_summarize, reduced, model, weighted_sq_norms, None, spherical, tol,
                            stop_when_allclose)
        inertia = ex.gather(ex.submit(operator.getitem, summary, 1))["inertia"]
    final_centers = ex.gather(ex.submit(operator.getitem, model, 1))
    ex.drop_kept()
    return BlockedResult(final_centers, states, inertia, n_iter, history, changed_fraction)


# ----------------------------------------------------------------------------- initialisation


def _row_uniforms(seed, draw, start, n):
    """Uniform numbers in (0, 1) for rows ``start:start + n`` of draw ``draw``.

    A counter-based generator (SplitMix64 of the global row index, keyed by seed and
    draw): a row gets the same number however the data is split into blocks, so
    sampling does not depend on the chunking or on the scheduling.
    """
    key = np.random.SeedSequence(seed, spawn_key=(int(draw),)).generate_state(1, np.uint64)[0]
    z = np.arange(start, start + n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _sample_keys(block, m, seed, draw):
    """Weighted sampling without replacement (Efraimidis-Spirakis): top-``m`` keys of a block.

    Row i gets key log(u_i) / w_i; the m largest keys over all rows are a sample of m
    rows drawn with probability proportional to weight.
    """
    n = block.weights.shape[0]
    u = _row_uniforms(seed, draw, block.offset, n)
    with np.errstate(divide="ignore"):
        keys = np.where(block.weights > 0, np.log(u) / block.weights, -np.inf)
    top = np.argsort(-keys, kind="stable")[:m]
    top = top[np.isfinite(keys[top])]
    return keys[top], block.offset + top


def _take_rows(x, block, rows):
    return x[np.asarray(rows, dtype=np.int64) - block.offset]


def _gather_rows(ex, blocks, rows):
    """The rows of X with global indices ``rows`` (any order), as one array in that order."""
    rows = np.asarray(rows, dtype=np.int64)
    starts = np.asarray(ex.offsets[:-1])
    owner = np.searchsorted(starts, rows, side="right") - 1
    out = np.empty((rows.size, ex.n_features), dtype=ex.dtype)
    wanted = [rows[owner == b] for b in range(ex.n_blocks)]
    picked = [b for b in range(ex.n_blocks) if wanted[b].size]
    handles = [ex.submit(_take_rows, ex.data[b], blocks[b], wanted[b], heavy=False) for b in picked]
    for b, values in zip(picked, ex.gather(handles)):
        out[owner == b] = values
    return out


def random_rows(ex, blocks, m, seed, draw=0):
    """Indices of ``m`` distinct rows drawn with probability proportional to weight."""
    found = ex.gather(ex.map(_sample_keys, blocks, shared=(m, seed, draw), data=False))
    keys = np.concatenate([f[0] for f in found])
    rows = np.concatenate([f[1] for f in found])
    order = np.lexsort((rows, -keys))[:m]
    return rows[order]


def _closest_to(x, block, previous, candidates):
    """Squared distance of each row to its nearest candidate (min with ``previous``) and
    the block's weighted cost."""
    n = x.shape[0]
    closest = np.empty(n, dtype=np.float64)
    if n:
        labels = np.empty(n, dtype=np.int64)
        candidates = np.ascontiguousarray(candidates, dtype=x.dtype)
        nearest_centroids(x, candidates, labels, closest)
        # Exact, so that a candidate is at distance 0 from itself and is never drawn again.
        exact_sq_distances(x, candidates, labels, closest)
    if previous is not None:
        closest = np.minimum(closest, previous)
    return closest, (float(np.dot(block.weights, closest)),)


def _oversample(block, closest, factor, cost, seed, draw):
    """Rows picked independently with probability min(1, factor * w * d^2 / cost)."""
    u = _row_uniforms(seed, draw, block.offset, block.weights.shape[0])
    p = np.minimum(1.0, factor * block.weights * closest / cost)
    return block.offset + np.flatnonzero(u < p)


def _candidate_weights(x, block, candidates):
    """Total weight of the rows whose nearest candidate is each candidate."""
    n = x.shape[0]
    if n == 0:
        return (np.zeros(candidates.shape[0]),)
    labels = np.empty(n, dtype=np.int64)
    sq = np.empty(n, dtype=np.float64)
    nearest_centroids(x, np.ascontiguousarray(candidates, dtype=x.dtype), labels, sq)
    return (np.bincount(labels, weights=block.weights, minlength=candidates.shape[0]),)


def kmeans_parallel(ex, blocks, n_clusters, rng, oversampling_factor=None, n_rounds=5):
    """k-means|| (Bahmani et al., 2012): k-means++ seeding in a few passes over the data.

    Starts from one row drawn with probability proportional to weight; each of
    ``n_rounds`` rounds then picks every row independently with probability
    ``min(1, l * w * d^2 / cost)`` (``l = oversampling_factor``, default ``2 * n_clusters``;
    ``d`` the distance to the nearest candidate so far, ``cost`` the weighted sum of
    ``d^2``). Each candidate is then weighted by the total weight of the rows nearest
    to it, and weighted greedy k-means++ (:func:`ivfpq.cluster.init.kmeans_plusplus`)
    picks ``n_clusters`` of them, in this process. About ``1 + l * n_rounds``
    candidates; ``n_rounds + 2`` passes over the data.
    """
    factor = float(2 * n_clusters if oversampling_factor is None else oversampling_factor)
    seed = int(rng.integers(2**63))
    chosen = [random_rows(ex, blocks, 1, seed, draw=0)]
    candidates = _gather_rows(ex, blocks, chosen[0])
    closest, cost = ex.map_reduce(_closest_to, _add, blocks, [None] * ex.n_blocks,
                                  shared=(ex.put(candidates),), name="kmeans||-cost")
    cost = ex.gather(cost)[0]
    for round_ in range(1, n_rounds + 1):
        if cost <= 0:
            break
        picked = ex.gather(ex.map(_oversample, blocks, closest, shared=(factor, cost, seed, round_),
                                  data=False))
        new_rows = np.concatenate(picked)
        if new_rows.size == 0:
            continue
        chosen.append(new_rows)
        new = _gather_rows(ex, blocks, new_rows)
        candidates = np.concatenate([candidates, new])
        closest, cost = ex.map_reduce(_closest_to, _add, blocks, closest,
                                      shared=(ex.put(new),), name="kmeans||-cost")
        cost = ex.gather(cost)[0]
    del closest
    rows = np.concatenate(chosen)
    if rows.size < n_clusters:
        # Fewer candidates than clusters (few distinct rows, or a tiny factor): add
        # rows drawn by weight that are not candidates yet.
        extra = random_rows(ex, blocks, n_clusters + rows.size, seed, draw=n_rounds + 1)
        extra = extra[~np.isin(extra, rows)][: n_clusters - rows.size]
        candidates = np.concatenate([candidates, _gather_rows(ex, blocks, extra)])
    weights = ex.map_reduce(_candidate_weights, _add, blocks, shared=(ex.put(candidates),),
                            name="kmeans||-weights", outputs=False)
    weights = ex.gather(weights)[0]
    if candidates.shape[0] == n_clusters:
        return candidates
    return kmeans_plusplus(candidates, n_clusters, rng, sample_weight=weights)


# ----------------------------------------------------------------------------- executor


class LocalBlocks:
    """Blocks of rows read one at a time in this process; state kept in lists here.

    ``read(start, stop)`` returns rows ``start:stop`` of the data (a slice of an
    ``np.memmap``, a computed Dask chunk...). The first pass (:meth:`validate`) checks
    every block; later passes read blocks again, so the data is never whole in memory.
    Partials are reduced as blocks arrive (:class:`_StreamingTree`), holding at most
    log2(n_blocks) of them.
    """

    remote = False  # tasks run here, on arguments nothing else will read again

    def __init__(self, read, bounds, n_features, dtype, weights=None, cosine=False, name="X"):
        self._read = read
        self.offsets = [int(b) for b in bounds]
        self.n_blocks = len(self.offsets) - 1
        self.n_rows = self.offsets[-1]
        self.n_features = int(n_features)
        self.dtype = np.dtype(dtype)
        self._weights = weights
        self._cosine = cosine
        self._name = name
        self.data = [_BlockIndex(b) for b in range(self.n_blocks)]  # read when a task needs it

    @classmethod
    def from_array(cls, X, block_rows, weights=None, cosine=False, name="X"):
        """Blocks of ``block_rows`` rows of an array-like that can be sliced by rows."""
        dtype = check_lazy_array(X, name)
        n = X.shape[0]
        bounds = list(range(0, n, block_rows)) + [n]
        return cls(lambda start, stop: X[start:stop], bounds, X.shape[1], dtype, weights, cosine, name)

    def _block(self, b):
        start, stop = self.offsets[b], self.offsets[b + 1]
        x = np.ascontiguousarray(self._read(start, stop), dtype=self.dtype)
        if self._cosine:
            x = _normalize_block(x)
        return x

    def validate(self):
        """Check every block; returns (block handles, total weight, mean feature variance,
        sum of w_i |x_i|^2)."""
        blocks = []
        tree = _StreamingTree(_combine_moments)
        for b in range(self.n_blocks):
            start, stop = self.offsets[b], self.offsets[b + 1]
            w = None if self._weights is None else self._weights[start:stop]
            block, _, stats = _check_data_block(self._read(start, stop), w, start, self.dtype,
                                                self._cosine, self._name)
            blocks.append(block)
            tree.push(stats)
        n, _, m2, total_weight, weighted_sq_norms = tree.result()
        return blocks, total_weight, float(np.mean(m2 / n)), weighted_sq_norms

    # -- the executor protocol -----------------------------------------------------------

    def put(self, value):
        return value

    def keep(self, handle):
        pass

    def drop_kept(self):
        pass

    def gather(self, handles):
        return handles

    def submit(self, fn, *args, heavy=False):
        args = [self._block(a) if isinstance(a, _BlockIndex) else a for a in args]
        return fn(*args)

    def map(self, fn, *per_block, shared=(), data=True, name=None):
        out = []
        for b in range(self.n_blocks):
            head = (self._block(b),) if data else ()
            out.append(fn(*head, *(p[b] for p in per_block), *shared))
        return out

    def map_reduce(self, fn, combine, *per_block, shared=(), data=True, name=None, outputs=True):
        """``fn`` returns (output, partial) per block (or just the partial with
        ``outputs=False``); returns (outputs, tree-reduced partial)."""
        out = []
        tree = _StreamingTree(combine)
        for b in range(self.n_blocks):
            head = (self._block(b),) if data else ()
            result = fn(*head, *(p[b] for p in per_block), *shared)
            if outputs:
                out.append(result[0])
                tree.push(result[1])
            else:
                tree.push(result)
        return (out, tree.result()) if outputs else tree.result()

    def labels(self, states):
        return np.concatenate([s.labels for s in states])


class _BlockIndex(int):
    """A block's data handle in :class:`LocalBlocks`: ``submit`` reads the block."""


# ----------------------------------------------------------------------------- fitting


def fit_blocks(model, ex, X, run_loop=blocked_lloyd):
    """Fit ``model`` (a :class:`~ivfpq.cluster.kmeans.KMeans`) on the blocks of ``ex``.

    The body of ``KMeans.fit`` for data that is read block by block: the same
    parameters, ``n_init`` runs, progress bar and best-of-runs choice. Initialisations:
    an array, "random" (distinct rows drawn by weight, in one pass) and "k-means||";
    "k-means++" runs as "k-means||" (greedy k-means++ needs one pass over the data per
    centroid). Returns the best run's :class:`BlockedResult`.
    """
    from .._validation import check_random_state
    from .kmeans import _normalize_rows, _progress

    spec = _ArraySpec(X.shape, ex.dtype)
    n_clusters, init, n_init, max_iter, tol, _ = model._check_params(spec)
    blocks, total_weight, variance, weighted_sq_norms = ex.validate()
    if not total_weight > 0:
        raise ValueError("sample_weight is zero everywhere; at least one weight must be positive")
    tol_abs = variance * tol
    rng = check_random_state(model.random_state)
    cosine = model.metric == "cosine"
    _set_algorithm(model, X.shape[0], n_clusters, X.shape[1])

    best = None
    for run in range(n_init):
        if isinstance(init, str) and init == "random":
            centers = _gather_rows(ex, blocks, random_rows(ex, blocks, n_clusters, int(rng.integers(2**63))))
        elif isinstance(init, str):
            centers = kmeans_parallel(ex, blocks, n_clusters, rng)
        else:
            centers = init.astype(ex.dtype, copy=True)
            if cosine:
                centers = _normalize_rows(centers)
        assigner = _make_assigner(model, X, n_clusters, rng)
        with _progress(model.verbose, max_iter, run, n_init) as callback:
            result = run_loop(ex, blocks, weighted_sq_norms, centers, assigner, max_iter, tol_abs,
                              spherical=cosine, callback=callback)
        if best is None or result.inertia < best.inertia:
            best = result
    return best


def _set_algorithm(model, n_samples, n_clusters, n_features):
    """``algorithm_`` as ``KMeans.fit`` sets it, where the estimator has "auto" (mop)."""
    try:
        from .kmeans import choose_algorithm
    except ImportError:  # a KMeans without "auto" sets no algorithm_
        return
    model.algorithm_ = (choose_algorithm(n_samples, n_clusters, n_features) if model.algorithm == "auto"
                        else model.algorithm)


def _make_assigner(model, X, n_clusters, rng):
    """``model._make_assigner``, given the run's generator where it takes one (the graph
    assigner draws its seed from it, in the same order as the in-memory fit)."""
    import inspect

    if "rng" in inspect.signature(model._make_assigner).parameters:
        return model._make_assigner(X, n_clusters, rng)
    return model._make_assigner(X, n_clusters)


@dataclass
class _ArraySpec:
    """Shape and (float) dtype of data that is not an in-memory array, for parameter checks."""

    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self):
        return len(self.shape)


def default_block_rows(n_features, itemsize):
    return max(1, DEFAULT_BLOCK_BYTES // max(1, n_features * itemsize))


def local_executor(X, sample_weight, block_rows, cosine, name="X"):
    """A :class:`LocalBlocks` over an array-like sliceable by rows (np.memmap, ndarray)."""
    dtype = check_lazy_array(X, name)
    if block_rows is None:
        block_rows = default_block_rows(X.shape[1], dtype.itemsize)
    block_rows = check_positive_int(block_rows, "block_rows")
    weights = None
    if sample_weight is not None:
        from .._validation import check_sample_weight

        weights = check_sample_weight(sample_weight, X.shape[0])
    return LocalBlocks.from_array(X, block_rows, weights, cosine, name)


def predict_blocks(model, X, block_rows=None):
    """``KMeans.predict`` for an array read block by block (``np.memmap``)."""
    from .._validation import check_is_fitted, check_n_features
    from .assign import ExactAssigner
    from .._threads import resolve_n_threads, thread_limits

    check_is_fitted(model, "cluster_centers_")
    ex = local_executor(X, None, block_rows, cosine=model.metric == "cosine")
    check_n_features(X, model.n_features_in_, "X", type(model).__name__)
    assigner = ExactAssigner()
    assigner.prepare(np.ascontiguousarray(model.cluster_centers_, dtype=ex.dtype))
    labels = np.empty(ex.n_rows, dtype=np.int64)
    sq_dists = np.empty(ex.n_rows, dtype=np.float64)
    with thread_limits(resolve_n_threads(model.n_threads)):
        for b in range(ex.n_blocks):
            start, stop = ex.offsets[b], ex.offsets[b + 1]
            x = check_block(ex._read(start, stop), ex.dtype, start)
            if ex._cosine:
                x = _normalize_block(x)
            assigner.assign(x, None, labels[start:stop], sq_dists[start:stop])
    return labels
