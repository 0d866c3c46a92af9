"""The Lloyd loop, written once for every place rows can live.

In memory, in blocks of an ``np.memmap`` and on Dask workers, a fit is the same
sequence of calls on an executor (:mod:`ivfpq.cluster.executor`):

1. ``assigner.prepare(centers, sample_x, sample_state)`` once per iteration, in one
   task (for the graph assigner: the HNSW graph over the centroids, and the audits
   that decide how this iteration searches, made on a fixed sample of rows chosen by
   global row number);
2. one task per block: assign the block's rows (:meth:`Assigner.assign`), then
   reduce them to the fixed-point changes of the per-cluster sums and counts caused
   by the points that moved, the fixed-point inertia and the number of moved points
   (:mod:`ivfpq.kernels.lloyd`);
3. the partials are added (integers: in any order, with the same result), empty
   clusters get the farthest points (ties to the lower global row), and the update
   step makes the new centroids in one task;
4. only a few numbers come back to the caller: inertia, changed labels, convergence.

Every per-row decision depends only on the row, its own state and values computed
from all rows in an order-free way, so the result is the same bit for bit whatever
the blocks, the executor and the thread count.
"""

from __future__ import annotations

import copy
import operator
import time
from dataclasses import dataclass, field

import numpy as np

from ..kernels.lloyd import (
    add_moved_points,
    feature_scales,
    fixed_moments,
    fixed_point_scale,
    fixed_total,
    updated_centers,
)
from .assign import ExactAssigner, exact_audit
from .executor import RowChanges, add_partials, block_of_rows, gather_rows, local_executor

__all__ = ["lloyd", "lloyd_on_array", "predict", "LloydResult", "BlockState", "FitScales", "WIDEN_BELOW"]

#: Relative inertia decrease per iteration under which an approximate assigner is
#: asked to search wider (see :meth:`Assigner.widen`).
WIDEN_BELOW = 1e-4
#: A search the audit widened is narrowed again once the audit's excess cost is at most
#: this fraction of the assigner's ``audit_tolerance``.
NARROW_BELOW = 0.25


@dataclass
class BlockState:
    """A block's per-point state between Lloyd iterations."""

    block: object  # executor.Block: offset and weights
    labels: np.ndarray  # int64, -1 before the first assignment
    sq_dists: np.ndarray  # float64, exact squared distance to the assigned centroid
    state: object  # the assigner's memory for these rows (None for the exact assigner)


@dataclass
class FitScales:
    """The fixed-point scales of one fit, from the order-free statistics of its data."""

    n_rows: int
    max_weight: float
    max_abs: np.ndarray  # per feature, of the loop data
    features: np.ndarray  # scales of the weighted per-cluster sums
    weight: float  # scale of the per-cluster weights
    moments: np.ndarray  # scales of the per-feature sums of x (tolerance)
    sq_moments: np.ndarray  # ... and of x**2

    @classmethod
    def from_stats(cls, stats):
        n, max_abs, max_weight = stats
        max_abs = np.asarray(max_abs, dtype=np.float64)
        return cls(int(n), float(max_weight), max_abs, feature_scales(n, max_weight, max_abs),
                   fixed_point_scale(float(n) * float(max_weight)), feature_scales(n, 1.0, max_abs),
                   feature_scales(n, 1.0, max_abs * max_abs))

    def inertia_scale(self, centers):
        """Scale of the weighted total of squared distances to ``centers``."""
        reach = self.max_abs + np.max(np.abs(centers), axis=0).astype(np.float64)
        return fixed_point_scale(self.n_rows * self.max_weight * float(np.sum(reach * reach)))


@dataclass
class LloydResult:
    """What :func:`lloyd` returns; ``labels`` are filled by the caller from ``states``."""

    centers: np.ndarray
    states: list
    inertia: float
    n_iter: int
    history: list = field(default_factory=list)
    changed_fraction: list = field(default_factory=list)
    work: list = field(default_factory=list)
    audit: list = field(default_factory=list)
    labels: object = None
    handed_over_at: object = None  # the iteration after which the assigner's successor took over


# ----------------------------------------------------------------------------- tasks


def _new_block_state(block, assigner):
    n = block.weights.shape[0]
    return BlockState(block, np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.float64),
                      assigner.new_state(n))


def _prepare_model(previous, centers, sample_x, sample_state, scales, copy_assigner):
    """(assigner prepared for ``centers``, centers, inertia scale), in one task.

    The model carries its centers so that the update step needs nothing older than
    the model, which the loop keeps: a lost worker never forces a replay from the
    first iteration.
    """
    assigner = previous[0] if isinstance(previous, tuple) else previous
    if copy_assigner:
        assigner = copy.deepcopy(assigner)
    centers = np.ascontiguousarray(centers)
    assigner.prepare(centers, sample_x, sample_state)
    return assigner, centers, scales.inertia_scale(centers)


def _hands_over(model):
    return model[0].hands_over()


def _handover_block(x, state, model):
    """The block's state for the successor of the model's assigner."""
    return BlockState(state.block, state.labels, state.sq_dists, model[0].handover_state(x, state.state))


def _successor_model(model, sample_x, sample_state, scales):
    """The model with the successor of its assigner, prepared for its centers."""
    assigner, centers, _ = model
    return _prepare_model(assigner.successor(), centers, sample_x, sample_state, scales, False)


def _widen_model(model, copy_assigner, how="wider"):
    """The model with its assigner widened, narrowed or switched to one exact pass."""
    assigner, centers, inertia_scale = model
    if copy_assigner:
        assigner = copy.deepcopy(assigner)
    {"wider": assigner.widen, "narrower": assigner.narrow, "exact": assigner.exact_pass}[how]()
    return assigner, centers, inertia_scale


def _lloyd_step(x, previous, model, scales, with_moments, copy_state):
    """Assign one block; returns its new state and its partial
    ``(sum changes, count changes, inertia, moved, work, sum x, sum x**2)``."""
    assigner, centers, inertia_scale = model
    n, d = x.shape
    k = centers.shape[0]
    state = copy.deepcopy(previous.state) if copy_state else previous.state
    labels = np.empty(n, dtype=np.int64)
    sq_dists = np.empty(n, dtype=np.float64)
    work = int(assigner.assign(x, state, labels, sq_dists) or 0) if n else 0
    weights = previous.block.weights
    counts = np.zeros(k, dtype=np.int64)
    sums, moved = _moved_sums(x, weights, previous.labels, labels, scales, counts)
    inertia = int(fixed_total(sq_dists, weights, inertia_scale))
    first = second = None
    if with_moments:
        first, second = np.zeros(d, dtype=np.int64), np.zeros(d, dtype=np.int64)
        fixed_moments(x, scales.moments, scales.sq_moments, first, second)
    return BlockState(previous.block, labels, sq_dists, state), (sums, counts, inertia, moved, work,
                                                                 first, second)


def _moved_sums(x, weights, before, after, scales, counts):
    """The changes of the cluster sums as the rows of ``x`` move from ``before`` to
    ``after`` (adding to ``counts``): a dense (k, d) array where the moves touch most
    clusters, else the :class:`RowChanges` of the touched ones. Returns (sums, moved)."""
    k, d = counts.shape[0], x.shape[1]
    moving = np.flatnonzero(before != after)
    touched = np.unique(np.concatenate((before[moving], after[moving])))
    touched = touched[touched >= 0]
    if 2 * touched.size > k:
        sums = np.zeros((k, d), dtype=np.int64)
        moved = add_moved_points(x, weights, before, after, scales.features, scales.weight, sums, counts)
        return sums, int(moved)
    old, new = before[moving], after[moving]
    local_old = np.where(old >= 0, np.searchsorted(touched, old), -1)
    values = np.zeros((touched.size, d), dtype=np.int64)
    local_counts = np.zeros(touched.size, dtype=np.int64)
    moved = add_moved_points(np.ascontiguousarray(x[moving]), weights[moving], local_old,
                             np.searchsorted(touched, new), scales.features, scales.weight, values, local_counts)
    counts[touched] += local_counts
    return RowChanges(touched, values, k), int(moved)


def _fixed_point_rows(points, weights, scales):
    """The fixed-point contributions of ``points`` with ``weights`` (as the kernel makes them)."""
    values = weights[:, None] * points.astype(np.float64) * scales.features[None, :]
    return np.rint(values).astype(np.int64), np.rint(weights * scales.weight).astype(np.int64)


def _summarize(reduced, totals, model, scales, spherical, tol, tol_abs, stop_when_allclose, moves):
    """The update step on the reduced partials: (new centers, new totals, statistics)."""
    _, centers, inertia_scale = model
    delta_sums, delta_counts, inertia, moved, work, first, second = reduced
    if totals is None:
        sums = delta_sums.dense() if isinstance(delta_sums, RowChanges) else delta_sums.copy()
        counts = delta_counts.copy()
    else:
        sums, counts = totals[0] + delta_sums, totals[1] + delta_counts
    if first is not None:  # first iteration: the tolerance, from the data's variance
        n = scales.n_rows
        mean = first.astype(np.float64) / scales.moments / n
        variance = np.maximum(second.astype(np.float64) / scales.sq_moments / n - mean * mean, 0.0)
        tol_abs = float(np.mean(variance)) * tol
    if moves is not None:
        clusters, old, weights, points = moves
        point_sums, point_counts = _fixed_point_rows(points, weights, scales)
        np.subtract.at(sums, old, point_sums)
        np.subtract.at(counts, old, point_counts)
        sums[clusters] = point_sums
        counts[clusters] = point_counts
    updated, shift = updated_centers(np.ascontiguousarray(centers), sums, counts, scales.features,
                                     scales.weight, spherical)
    converged = bool(np.allclose(updated, centers)) if stop_when_allclose else shift <= tol_abs
    stats = {
        "inertia": float(inertia) / inertia_scale,
        "changed": int(moved),
        "work": int(work),
        "empty": np.flatnonzero(counts == 0),
        "converged": converged,
        "tol_abs": tol_abs,
    }
    return updated, (sums, counts), stats


def _final_inertia(reduced, model):
    return float(reduced[2]) / model[2]


def _farthest_rows(x, state, m):
    """The ``m`` rows of positive weight farthest from their centroid, farthest first,
    ties to the lower row."""
    candidates = np.flatnonzero(state.block.weights > 0)
    sq = state.sq_dists[candidates]
    if candidates.size > m:
        cut = np.partition(sq, candidates.size - m)[candidates.size - m]
        candidates, sq = candidates[sq >= cut], sq[sq >= cut]
    order = candidates[np.lexsort((candidates, -sq))][:m]
    return (state.sq_dists[order], state.block.offset + order, state.block.weights[order],
            x[order], state.labels[order])


def _apply_moves(state, local_rows, clusters, model):
    """The block after empty-cluster repair moved ``local_rows`` to ``clusters``."""
    labels = state.labels.copy()
    sq_dists = state.sq_dists.copy()
    labels[local_rows] = clusters
    sq_dists[local_rows] = 0.0
    memory = copy.deepcopy(state.state)
    model[0].relabel(memory, local_rows, clusters)
    return BlockState(state.block, labels, sq_dists, memory)


def _sample_state(state, local_rows):
    return None if state.state is None else state.state[local_rows].copy()


def _sample_sq_dists(state, local_rows):
    return state.sq_dists[local_rows]


def _audit(model, sample_x, sample_sq):
    """:func:`ivfpq.cluster.assign.exact_audit` of an assignment to the model's centers."""
    return exact_audit(sample_x, model[1], sample_sq)


def _relocate_empty_clusters(ex, states, empty):
    """Give each empty cluster one of the farthest points of all blocks (ties to the
    lower global row). Returns the new states and the moves for :func:`_summarize`."""
    m = len(empty)
    found = ex.gather(ex.map(_farthest_rows, states, shared=(m,)))
    sq, rows, weights, points, old = (np.concatenate([f[j] for f in found]) for j in range(5))
    chosen = np.lexsort((rows, -sq))[:m]
    clusters = np.asarray(empty[: chosen.size], dtype=np.int64)
    moves = (clusters, old[chosen], weights[chosen], points[chosen])
    owner = block_of_rows(ex, rows[chosen])
    return clusters, owner, rows[chosen], moves


# ----------------------------------------------------------------------------- snapshots


def _state_arrays(state):
    return state.labels, state.sq_dists, state.state


def _restored_block(block, labels, sq_dists, state):
    return BlockState(block, labels, sq_dists, state)


def _model_from(assigner, centers, scales):
    return assigner, centers, scales.inertia_scale(centers)


def _snapshot(ex, states, totals, model, loop):
    """The loop's whole state, as JSON values and arrays (see ``checkpoint``)."""
    parts = ex.gather(ex.map(_state_arrays, states, data=False))
    sums, counts = ex.gather(totals)
    assigner, centers, _ = ex.gather(model)
    assigner_meta, assigner_arrays = assigner.get_state()
    arrays = {"centers": centers, "sums": sums, "counts": counts,
              "labels": np.concatenate([p[0] for p in parts]),
              "sq_dists": np.concatenate([p[1] for p in parts])}
    if parts[0][2] is not None:
        row_state = np.concatenate([p[2] for p in parts])
        # Record arrays (the exact assigner's bounds) are stored field by field: files
        # hold plain numeric arrays only.
        for name in row_state.dtype.names or ():
            arrays["row_state." + name] = row_state[name]
        if row_state.dtype.names is None:
            arrays["row_state"] = row_state
    arrays.update({"assigner_" + name: value for name, value in assigner_arrays.items()})
    return {"loop": loop, "assigner": assigner_meta}, arrays


def _restore(ex, blocks, snapshot, assigner, scales_handle):
    """(loop values, block states, totals, model) from a :func:`_snapshot`."""
    meta, arrays = snapshot
    bounds = ex.offsets

    template = assigner.new_state(0)
    if template is not None and template.dtype.names:
        row_state = np.empty(arrays["labels"].shape[0], dtype=template.dtype)
        for name in template.dtype.names:
            row_state[name] = arrays["row_state." + name]
        arrays = dict(arrays, row_state=row_state)

    def split(name):
        if name not in arrays:
            return [None] * ex.n_blocks
        return [arrays[name][bounds[b]:bounds[b + 1]].copy() for b in range(ex.n_blocks)]

    states = ex.map(_restored_block, blocks, split("labels"), split("sq_dists"), split("row_state"),
                    data=False)
    prefix = "assigner_"
    assigner.set_state(meta["assigner"], {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)},
                       arrays["centers"])
    model = ex.submit(_model_from, ex.put(assigner), ex.put(arrays["centers"]), scales_handle, heavy=True)
    totals = ex.put((arrays["sums"], arrays["counts"]))
    loop = dict(meta["loop"])
    loop["history"] = [tuple(h) for h in loop["history"]]
    loop["audit"] = [tuple(a) for a in loop["audit"]]
    return loop, states, totals, model


# ----------------------------------------------------------------------------- the loop


def lloyd(ex, blocks, stats, centers, assigner, max_iter, tol=0.0, *, spherical=False,
          stop_when_allclose=False, callback=None, checkpoint=None):
    """Lloyd iterations over the blocks of executor ``ex``, from ``centers``.

    Each iteration assigns every point with ``assigner`` and moves each centroid to
    the weighted mean of its points. ``history`` gets one ``(seconds, inertia)`` pair
    per counted iteration (``n_iter``): the time since the call began and the inertia of
    that iteration's assignment. The iteration that finds no label changed is counted,
    as scikit-learn counts it; a look again with a wider search is not. An audit
    excess above the assigner's ``audit_tolerance`` widens the search, and, once it is
    at its widest, makes the next iteration an exact pass (also where the widest
    search would stop, with no label changed). An assigner that :meth:`hands_over`
    after its ``prepare`` is replaced by its successor for the rest of the run (the
    graph search by exact Lloyd with bounds, where that costs less), from the state
    it hands over. Stops when no
    label changes, when the squared centroid shift is at
    most ``tol`` times the mean per-feature variance of the data (or, with
    ``stop_when_allclose``, when the centroids are ``allclose`` to the previous
    ones), or after ``max_iter`` iterations. An assigner that can widen its search is
    asked to before either of the first two stops, and whenever an iteration lowers
    the inertia by less than ``WIDEN_BELOW`` of it, unless a search widened for such a
    stall gained less inertia per unit of search work (the assigner's ``work``) than
    the narrow one before it: the loop then narrows it again and widens on stalls no
    more (the audit still widens it). The returned inertia belongs to
    the returned centers and the labels in ``states``.

    Parameters
    ----------
    ex : executor (see :mod:`ivfpq.cluster.executor`).
    blocks, stats : what ``ex.validate()`` returned.
    centers : (k, d) initial centroids.
    assigner : an :class:`ivfpq.cluster.assign.Assigner`; it is reset first.
    max_iter : int
    tol : float, relative to the mean per-feature variance of the data.
    checkpoint : object with ``every`` (iterations between snapshots), ``resume`` (a
        snapshot to continue from, or None) and ``save(meta, arrays)``; see
        :mod:`ivfpq.cluster.checkpoint`. A resumed run ends as the uninterrupted one.
    """
    start = time.perf_counter()
    n = ex.n_rows
    scales = FitScales.from_stats(stats)
    centers = np.ascontiguousarray(centers, dtype=ex.dtype)
    assigner.reset(n)
    audit_rows = assigner.audit_rows(n)
    sample_x, local_rows = None, None
    if audit_rows is not None:
        sample_x = gather_rows(ex, blocks, audit_rows)
        owner = block_of_rows(ex, audit_rows)
        local_rows = [audit_rows[owner == b] - ex.offsets[b] for b in range(ex.n_blocks)]

    def sample_state(states):
        if local_rows is None:
            return None
        parts = ex.gather(ex.map(_sample_state, states, local_rows, data=False))
        return np.concatenate(parts) if parts[0] is not None else None

    # The exact audit: a fixed part of the sample, assigned exactly after every iteration.
    audit_at = None if audit_rows is None else assigner.audit_positions(len(audit_rows))
    audit_x = None if audit_at is None or audit_at.size == 0 else ex.put(sample_x[audit_at])
    sample_x = None if sample_x is None else ex.put(sample_x)  # sent to the workers once

    def audit(states, model):
        if audit_x is None:
            return None
        parts = ex.gather(ex.map(_sample_sq_dists, states, local_rows, data=False))
        return ex.gather(ex.submit(_audit, model, audit_x, np.concatenate(parts)[audit_at], heavy=True))

    scales_handle = ex.put(scales)
    resume = None if checkpoint is None else checkpoint.resume
    if resume is None:
        template = ex.put(assigner)
        states = ex.map(_new_block_state, blocks, shared=(template,), data=False)
        model = ex.submit(_prepare_model, template, ex.put(centers), sample_x, sample_state(states),
                          scales_handle, ex.remote, heavy=True)
        loop = {"iteration": 0, "n_iter": 0, "tol_abs": 0.0, "widen_left": assigner.widen_steps(),
                "audit_widened": 0, "previous_inertia": None, "history": [], "changed_fraction": [], "work": [],
                "audit": []}
        totals = None
    else:
        if resume[0]["loop"].get("handed_over_at") is not None:
            assigner = ExactAssigner()
        loop, states, totals, model = _restore(ex, blocks, resume, assigner, scales_handle)
        start -= loop["history"][-1][0] if loop["history"] else 0.0
    tol_abs = loop["tol_abs"]
    history, changed_fraction, work = loop["history"], loop["changed_fraction"], loop["work"]
    audits = loop["audit"]
    labels_match_centers = False
    looked_exactly = False  # since the last iteration that moved points
    n_iter = loop["n_iter"]
    stats_now = None
    widen_left = loop["widen_left"]
    audit_widened = loop.get("audit_widened", 0)  # widenings the audit asked for, not yet undone
    # Gain per unit of search work of the iteration before a stall widening (None: the
    # last iteration did not widen on a stall); once a wider beam gained less per unit
    # of work than the narrow one, stalls no longer widen.
    stall_rate = loop.get("stall_rate")
    stall_declined = loop.get("stall_declined", False)
    previous_inertia = np.inf if loop["previous_inertia"] is None else loop["previous_inertia"]
    handed_over_at = loop.get("handed_over_at")

    for iteration in range(loop["iteration"], max_iter):
        ex.keep(model)
        states, reduced = ex.map_reduce(_lloyd_step, add_partials, states,
                                        shared=(model, scales_handle, iteration == 0, ex.remote),
                                        name="lloyd-step")
        summary = ex.submit(_summarize, reduced, totals, model, scales_handle, spherical, tol, tol_abs,
                            stop_when_allclose, None)
        stats_now = ex.gather(ex.submit(operator.getitem, summary, 2))
        tol_abs = stats_now["tol_abs"]
        changed = stats_now["changed"]
        if changed == 0:  # strict convergence: the update would not move anything
            if widen_left:  # ... unless a wider search finds something: look again
                widen_left -= 1
                model = ex.submit(_widen_model, model, ex.remote, heavy=True)
                continue
            audit_now = audit(states, model)
            if (not looked_exactly and audit_now is not None and audit_now[1] > assigner.audit_tolerance
                    and assigner.can_pass_exactly()):
                # The widest search stands still where the audit still sees points away
                # from their nearest centroid: look once more, exactly.
                looked_exactly = True
                model = ex.submit(_widen_model, model, ex.remote, "exact", heavy=True)
                continue
            labels_match_centers = True
            # Counted, as scikit-learn counts the iteration in which it detects convergence.
            n_iter += 1
            history.append((time.perf_counter() - start, stats_now["inertia"]))
            changed_fraction.append(0.0)
            work.append(stats_now["work"])
            if audit_now is not None:
                audits.append(audit_now)
            if callback is not None:
                callback(n_iter, stats_now["inertia"], 0.0, audit_now)
            break
        n_iter += 1
        looked_exactly = False
        audit_now = audit(states, model)
        if stats_now["empty"].size:
            clusters, owner, rows, moves = _relocate_empty_clusters(ex, states, stats_now["empty"])
            states = list(states)
            for b in np.unique(owner):
                mine = owner == b
                states[b] = ex.submit(_apply_moves, states[b], rows[mine] - ex.offsets[b], clusters[mine],
                                      model)
            summary = ex.submit(_summarize, reduced, totals, model, scales_handle, spherical, tol,
                                tol_abs, stop_when_allclose, moves)
            stats_now = ex.gather(ex.submit(operator.getitem, summary, 2))
        del reduced
        totals = ex.submit(operator.getitem, summary, 1)
        model = ex.submit(_prepare_model, model, ex.submit(operator.getitem, summary, 0), sample_x,
                          sample_state(states), scales_handle, ex.remote, heavy=True)

        inertia = stats_now["inertia"]
        history.append((time.perf_counter() - start, inertia))
        changed_fraction.append(changed / n)
        work.append(stats_now["work"])
        if audit_now is not None:
            audits.append(audit_now)
        if callback is not None:
            callback(n_iter, inertia, changed / n, audit_now)
        # The first assignment has no previous centroids to search from (its audit
        # measures the cold start); from the second on, a high excess means the search
        # leaves points where it should not.
        too_far = iteration > 0 and audit_now is not None and audit_now[1] > assigner.audit_tolerance
        rate = (previous_inertia - inertia) / max(1, stats_now["work"])
        widened_on_stall, stall_rate = stall_rate, None
        if too_far and widen_left:
            widen_left -= 1
            audit_widened += 1
            model = ex.submit(_widen_model, model, ex.remote, heavy=True)
        elif too_far and assigner.can_pass_exactly():
            # The widest search still leaves points where the graph cannot lead them
            # out (well-separated clusters): one exact pass puts every point at its
            # nearest centroid and reseeds the next searches from there.
            model = ex.submit(_widen_model, model, ex.remote, "exact", heavy=True)
        elif stats_now["converged"]:
            if not widen_left:
                break
            widen_left -= 1
            model = ex.submit(_widen_model, model, ex.remote, heavy=True)
        elif widened_on_stall is not None and rate < widened_on_stall:
            # The wider beam bought less inertia per expansion than the narrow one: the
            # stall was the data's, not the search's. Back to the narrow beam, for good.
            widen_left += 1
            stall_declined = True
            model = ex.submit(_widen_model, model, ex.remote, "narrower", heavy=True)
        elif widen_left and not stall_declined and previous_inertia - inertia < WIDEN_BELOW * inertia:
            widen_left -= 1  # an approximate search that has all but stalled looks further
            stall_rate = rate
            model = ex.submit(_widen_model, model, ex.remote, heavy=True)
        elif audit_widened and audit_now is not None and audit_now[1] <= NARROW_BELOW * assigner.audit_tolerance:
            # The excess that called for a wider beam (centroids still moving far) is
            # gone: the narrow beam, and the stay check it allows, cost a fraction.
            widen_left += 1
            audit_widened -= 1
            model = ex.submit(_widen_model, model, ex.remote, "narrower", heavy=True)
        if handed_over_at is None and ex.gather(ex.submit(_hands_over, model)):
            # From here on exact Lloyd with bounds costs less than the graph search.
            states = ex.map(_handover_block, states, shared=(model,))
            model = ex.submit(_successor_model, model, sample_x, sample_state(states), scales_handle, heavy=True)
            assigner = ExactAssigner()
            handed_over_at, widen_left, audit_widened = n_iter, 0, 0
        previous_inertia = inertia
        if checkpoint is not None and n_iter % checkpoint.every == 0:
            loop = {"iteration": iteration + 1, "n_iter": n_iter, "tol_abs": tol_abs,
                    "widen_left": widen_left, "audit_widened": audit_widened, "handed_over_at": handed_over_at,
                    "stall_rate": stall_rate, "stall_declined": stall_declined,
                    "previous_inertia": previous_inertia, "history": history,
                    "changed_fraction": changed_fraction, "work": work, "audit": audits}
            checkpoint.save(*_snapshot(ex, states, totals, model, loop))

    if labels_match_centers:
        inertia = stats_now["inertia"]
    else:
        ex.keep(model)
        states, reduced = ex.map_reduce(_lloyd_step, add_partials, states,
                                        shared=(model, scales_handle, False, ex.remote), name="lloyd-final")
        inertia = ex.gather(ex.submit(_final_inertia, reduced, model))
    final_centers = ex.gather(ex.submit(operator.getitem, model, 1))
    ex.drop_kept()
    return LloydResult(final_centers, states, inertia, n_iter, history, changed_fraction, work, audits,
                       handed_over_at=handed_over_at)


# ----------------------------------------------------------------------------- predict


def _predict_block(x, block, centers):
    n = x.shape[0]
    labels = np.empty(n, dtype=np.int64)
    sq_dists = np.empty(n, dtype=np.float64)
    if n:
        assigner = ExactAssigner()
        assigner.prepare(centers)
        assigner.assign(x, None, labels, sq_dists)
    return BlockState(block, labels, sq_dists, None)


def _weighted_block_total(state, scale):
    return (int(fixed_total(state.sq_dists, state.block.weights, scale)),)


def predict(ex, centers):
    """The exact nearest centroid of every row of ``ex``'s data: (per-block states,
    weighted total of the squared distances). One pass, for every executor."""
    blocks, stats = ex.validate()
    centers = np.ascontiguousarray(centers, dtype=ex.dtype)
    states = ex.map(_predict_block, blocks, shared=(ex.put(centers),))
    scale = FitScales.from_stats(stats).inertia_scale(centers)
    total = ex.map_reduce(_weighted_block_total, add_partials, states, shared=(scale,), data=False,
                          outputs=False)
    return states, float(ex.gather(total)[0]) / scale


def lloyd_on_array(X, centers, assigner, max_iter, tol=0.0, *, sample_weight=None, block_rows=None,
                   spherical=False, stop_when_allclose=False, callback=None):
    """:func:`lloyd` on an in-memory array (validated here); ``labels`` filled in.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq.cluster.assign import ExactAssigner
    >>> X = np.array([[0, 0], [0, 1], [9, 9], [9, 8]], dtype=np.float32)
    >>> result = lloyd_on_array(X, X[[0, 2]], ExactAssigner(), max_iter=10)
    >>> result.labels.tolist(), result.centers.tolist(), result.inertia
    ([0, 0, 1, 1], [[0.0, 0.5], [9.0, 8.5]], 1.0)
    """
    ex = local_executor(X, sample_weight, block_rows, cosine=False)
    blocks, stats = ex.validate()
    result = lloyd(ex, blocks, stats, centers, assigner, max_iter, tol, spherical=spherical,
                   stop_when_allclose=stop_when_allclose, callback=callback)
    result.labels = ex.labels(result.states)
    return result
