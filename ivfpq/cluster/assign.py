"""Assigners: how the Lloyd loop finds each point's centroid.

The loop in :mod:`ivfpq.cluster.lloyd` knows only the :class:`Assigner` protocol:

.. code-block:: text

    assigner.reset(n_rows)                            # once per run
    rows = assigner.audit_rows(n_rows)                # global rows it wants to watch
    state = assigner.new_state(n_block_rows)          # per-point memory, or None
    assigner.prepare(centroids, sample_x, sample_state)   # once per iteration
    work = assigner.assign(X_block, state, labels_out, sq_dist_out)
    assigner.relabel(state, rows, clusters)           # the loop moved these points
    assigner.widen() -> bool; assigner.widen_steps() -> int; assigner.narrow() -> bool
    assigner.can_pass_exactly() -> bool; assigner.exact_pass()

``prepare`` runs once per iteration, in one place, and makes every decision that
concerns more than one row (a graph over the centroids, audits on the sample of
``audit_rows``, which the loop gathers by global row number). ``assign`` then treats
each row by itself: its result depends only on the row, its own state and what
``prepare`` made, so a block of rows can be assigned anywhere (a thread, a Dask
worker) with the same result. ``sq_dist_out`` receives the exact float64 squared
distance to the centroid given.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from .._threads import thread_limits
from ..kernels.coarse import assign_rows, coarse_groups, counting_order, default_n_groups
from ..kernels.distances import (
    LOWER_MARGIN,
    augmented_centroids,
    bounded_nearest_centroids,
    bounds_of,
    default_block_rows,
    exact_sq_distances,
    nearest_centroids,
    new_bounds,
)
from .._graph import HNSWGraph, build_graph, draw_levels, repair_nodes
from ..kernels.mop import mop_assign, nearest_link_distances

__all__ = ["Assigner", "ExactAssigner", "GraphAssigner", "bounded_pass_plan", "exact_audit", "in_row_shares",
           "two_level_assign"]

#: Rows of the audit sample of :class:`GraphAssigner` (chosen by global row number).
AUDIT_SAMPLE = 4096
#: Rows on which :class:`ExactAssigner` chooses its movers, each iteration.
BOUNDS_SAMPLE = 1024
#: The work of a row that the bounds settle, in scores against one centroid of a full
#: pass, at dimension ``d``: ``(1 + BOUNDED_MOVER_COST / d)`` per mover (a narrow GEMM),
#: plus ``BOUNDED_ROW_COST[0] + BOUNDED_ROW_COST[1] / d`` for its exact distance to its
#: own centroid and the gathering (``benchmarks/README.md``, "Figures behind the code's
#: constants").
BOUNDED_MOVER_COST = 30.0
BOUNDED_ROW_COST = (12.0, 3600.0)
#: Where the bounds would save less than this fraction of a full pass, make a full one.
BOUNDED_MAX_COST = 0.9
#: ``cold_start="auto"``: the two-level start where the data has at least this many
#: points per centroid, or where the start puts at least ``COARSE_MIN_AGREEMENT`` of
#: the audit sample at its exact nearest centroid; the graph start otherwise. With many
#: points per cluster, or few misplaced points, the rows the rough start misplaces
#: barely move their centroids and the seeded searches fix them; with few points per
#: cluster and many misplaced ones, they pull the run into a worse local minimum that
#: later iterations, exact ones included, do not leave (figures in
#: ``benchmarks/README.md``, "k = 10,000 on every set after the cold-start rule").
COARSE_MIN_POINTS = 64
COARSE_MIN_AGREEMENT = 0.95
#: ``cold_start="auto"``, where the two-level start is not used: the exact start (one
#: BLAS pass against every centroid) up to this many centroids, the graph start above.
#: Per point the exact pass costs ``k`` distances at GEMM speed, the graph start about
#: ``2 * M * ef_cold`` scattered ones plus the graph build; at k = 10,000 the exact
#: pass was as cheap or cheaper on the four real sets (``benchmarks/README.md``).
EXACT_COLD_MAX_CLUSTERS = 16384
#: The default beam of the graph start (``ef_cold``), at least ``2 * ef_search``.
COLD_EF = 64
#: ``handover``: the audit rows on which a graph iteration and a bounded exact pass are
#: priced against each other, and the iterations over which the full pass that a
#: handover without fresh bounds costs is spread.
HANDOVER_SAMPLE = 1024
HANDOVER_HORIZON = 4
#: The work of a graph search, in scores against one centroid of a full exact pass (a
#: GEMM): per node expansion (``2 * M`` scattered distances) and per row (sorting into
#: bulks, the exact distance to the winner). Measured at d = 50 and 128, M = 16
#: (``benchmarks/README.md``, "Figures behind the code's constants").
GRAPH_EXPANSION_COST = 190.0
GRAPH_ROW_COST = 250.0
#: ``stay_check``: used in an iteration only when, on the audit sample, the points it
#: keeps in place cost at most this fraction more than full searches would.
STAY_TOLERANCE = 2e-4


class Assigner:
    """The protocol between the Lloyd loop and an assignment method; no-op defaults.

    Subclasses implement :meth:`prepare` and :meth:`assign`; the other hooks matter
    only to assigners that remember something per point or can search wider.
    """

    def reset(self, n_rows=None):
        """Forget everything from a previous run (beam width, audits, graph); the
        coming run has ``n_rows`` rows (None: not known)."""

    #: The excess cost over exact assignment, measured on the audit, above which the
    #: loop asks for a wider search (see :meth:`widen`).
    audit_tolerance = np.inf

    def audit_rows(self, n_rows):
        """Sorted global row numbers whose rows and states ``prepare`` wants, or None."""
        return None

    def audit_positions(self, n_sample):
        """Which of the ``audit_rows`` the loop assigns exactly after every iteration to
        measure this assigner (indices into them), or None."""
        return None

    def new_state(self, n_rows):
        """Per-point memory for a block of ``n_rows`` rows (None: nothing to remember)."""
        return None

    def prepare(self, centroids, sample_x=None, sample_state=None):
        """Get ready to assign to ``centroids``; once per iteration."""
        raise NotImplementedError

    def assign(self, X, state, labels_out, sq_dist_out):
        """Fill ``labels_out`` and ``sq_dist_out`` for the rows of ``X``; returns the work
        done (graph expansions, 0 when not counted)."""
        raise NotImplementedError

    def relabel(self, state, rows, clusters):
        """The loop moved ``rows`` of this block to ``clusters`` (empty-cluster repair)."""

    def widen(self):
        """Search wider from the next ``assign`` on; False when it cannot."""
        return False

    def widen_steps(self):
        """How many calls of :meth:`widen` succeed from a reset."""
        return 0

    def narrow(self):
        """Undo one :meth:`widen` (the loop widened for an excess that its audit no longer
        sees); False when the search is at its narrowest."""
        return False

    def can_pass_exactly(self):
        """Whether :meth:`exact_pass` is supported (for an approximate assigner)."""
        return False

    def exact_pass(self):
        """Make the next :meth:`assign` (until the next :meth:`prepare`) exact."""

    def hands_over(self):
        """Whether the loop should go on with :meth:`successor` (decided in :meth:`prepare`)."""
        return False

    def successor(self):
        """The assigner that takes over the run, prepared for the centroids of the last
        pass (a :meth:`prepare` for the new ones follows), or None."""
        return None

    def handover_state(self, X, state):
        """The successor's per-point state for the rows of ``X``, from this one's."""
        return None

    def get_state(self):
        """``(meta, arrays)``: everything a prepared assigner holds beyond its parameters,
        as JSON values and NumPy arrays (a checkpoint stores them)."""
        return {}, {}

    def set_state(self, meta, arrays, centroids):
        """Become the assigner :meth:`get_state` described, prepared for ``centroids``."""
        self.prepare(centroids)


class ExactAssigner(Assigner):
    """Brute-force assignment: BLAS distance blocks, then an exact float64 decision
    where the BLAS rounding could matter (:func:`ivfpq.kernels.distances.nearest_centroids`).
    Cost ``n * k * d`` at most.

    With ``bounds`` (the default) each point also remembers a proven lower bound on its
    distance to every centroid but its own (Hamerly's bound), and :meth:`prepare`
    measures how far each centroid moved. A point whose own centroid is still nearer
    than that bound less the largest move of the other centroids is scored against the
    few centroids that moved most (the *movers*), not against all of them
    (:func:`ivfpq.kernels.distances.bounded_nearest_centroids`). Which centroids count
    as movers is chosen in :meth:`prepare` to minimise the work on a fixed sample of
    rows. Every label is still the exact nearest centroid, so the results are the same
    bit for bit with and without bounds; late in a fit, when most centroids stand still,
    most points are settled for a small fraction of the cost (the final pass too).

    Parameters
    ----------
    block_rows : rows per block of scores (default: about 8 MB of them).
    bounds : keep the per-point bounds and skip the work they make unnecessary.

    Examples
    --------
    >>> import numpy as np
    >>> assigner = ExactAssigner()
    >>> assigner.prepare(np.array([[0.0, 0.0], [4.0, 0.0]], dtype=np.float32))
    >>> labels, sq = np.empty(2, np.int64), np.empty(2)
    >>> _ = assigner.assign(np.array([[1, 0], [3, 1]], dtype=np.float32), None, labels, sq)
    >>> labels.tolist(), sq.tolist()
    ([0, 1], [1.0, 2.0])
    """

    def __init__(self, block_rows=None, bounds=True):
        self.block_rows = block_rows
        self.bounds = bounds
        self.reset()

    def reset(self, n_rows=None):
        self.centroids = None
        self._augmented = None
        self._movers = None  # None: a full pass
        self._slack = 0.0
        self._movers_augmented = None
        self.bounded_ = []  # per prepare: the movers chosen (-1: a full pass)

    def audit_rows(self, n_rows):
        if not self.bounds:
            return None
        rng = np.random.default_rng(0)
        return np.sort(rng.choice(n_rows, min(n_rows, BOUNDS_SAMPLE), replace=False)).astype(np.int64)

    def new_state(self, n_rows):
        return new_bounds(n_rows) if self.bounds else None

    def prepare(self, centroids, sample_x=None, sample_state=None):
        previous = self.centroids
        self.centroids = np.ascontiguousarray(centroids)
        self._augmented = augmented_centroids(self.centroids)
        self._movers, self._slack, self._movers_augmented = None, 0.0, None
        if (self.bounds and previous is not None and previous.shape == self.centroids.shape
                and sample_state is not None and sample_state.shape[0] > 0):
            self._choose_movers(previous, np.ascontiguousarray(sample_x, dtype=self.centroids.dtype),
                                sample_state)
        self.bounded_.append(-1 if self._movers is None else int(self._movers.size))

    def assign(self, X, state, labels_out, sq_dist_out):
        centroids = self.centroids
        augmented = self._augmented
        movers_augmented = self._movers_augmented
        if centroids.dtype != X.dtype:
            centroids = np.ascontiguousarray(centroids, dtype=X.dtype)
            augmented = augmented_centroids(centroids)
            movers_augmented = None
        block_rows = self.block_rows or default_block_rows(centroids.shape[0], X.dtype.itemsize)

        def share(start, stop):
            if state is None:
                nearest_centroids(X[start:stop], centroids, labels_out[start:stop], sq_dist_out[start:stop],
                                  block_rows, augmented)
            else:
                bounded_nearest_centroids(X[start:stop], centroids, labels_out[start:stop],
                                          sq_dist_out[start:stop], state[start:stop], self._movers,
                                          self._slack, block_rows, augmented, movers_augmented)

        in_row_shares(share, X.shape[0], block_rows)
        return 0

    def relabel(self, state, rows, clusters):
        if state is not None:
            state["label"][rows] = clusters
            state["lower"][rows] = 0.0  # no bound: the next pass scores these rows in full

    def _choose_movers(self, previous, sample_x, sample_state):
        """The movers and slack of :func:`bounded_pass_plan` for the next pass, unless a
        full pass costs about as much."""
        cost, n_movers, slack, order = bounded_pass_plan(previous, self.centroids, sample_x,
                                                         sample_state["label"], sample_state["lower"])
        if n_movers is None or cost > BOUNDED_MAX_COST:
            return
        self._slack = slack
        self._movers = np.sort(order[:n_movers]).astype(np.int64)
        self._movers_augmented = augmented_centroids(np.ascontiguousarray(self.centroids[self._movers]))


def bounded_pass_plan(previous, centroids, sample_x, labels, lower):
    """The cheapest bounded pass over the rows of ``sample_x`` after the centroids moved
    from ``previous`` to ``centroids``, given each row's label and proven lower bound
    (distance, not squared) on its distance to every other centroid under ``previous``.

    A row the bounds settle costs its scores against the movers and a fixed part
    (``BOUNDED_MOVER_COST``, ``BOUNDED_ROW_COST``), any other row ``k`` scores. Returns
    ``(cost, n_movers, slack, order)``: the cost as a fraction of a full pass, the number
    of movers (None: no bounded pass beats a full one), the largest move of the other
    centroids and the centroids by decreasing move (the movers are its first
    ``n_movers``).
    """
    k, d = centroids.shape
    per_mover = 1.0 + BOUNDED_MOVER_COST / d
    per_row = BOUNDED_ROW_COST[0] + BOUNDED_ROW_COST[1] / d
    drift = centroids.astype(np.float64) - previous.astype(np.float64)
    shift = np.sqrt(np.einsum("ij,ij->i", drift, drift)) * (1.0 + LOWER_MARGIN)
    order = np.argsort(-shift, kind="stable")
    labels = np.asarray(labels).astype(np.int64)
    has_label = labels >= 0
    labelled = np.empty(int(np.count_nonzero(has_label)), dtype=np.float64)
    exact_sq_distances(np.ascontiguousarray(sample_x[has_label]), centroids, labels[has_label], labelled)
    own = np.full(labels.size, np.inf)
    own[has_label] = np.sqrt(labelled) * (1.0 + LOWER_MARGIN)
    lower = np.asarray(lower).astype(np.float64)
    m = labels.size
    if m == 0:
        return 1.0, None, 0.0, order
    best_cost, best = float(m) * k, (None, 0.0)
    n_movers = 0
    while n_movers < k:
        slack = float(shift[order[n_movers]])
        settled = int(np.count_nonzero(own < lower - slack))
        cost = float(m - settled) * k + settled * (n_movers * per_mover + per_row)
        if cost < best_cost:
            best_cost, best = cost, (n_movers, slack)
        n_movers = max(8, 2 * n_movers)
    return best_cost / (float(m) * k), best[0], best[1], order


def in_row_shares(work, n_rows, min_rows, n_threads=None):
    """Run ``work(start, stop)`` on ``n_threads`` contiguous shares of ``n_rows`` rows,
    one Python thread each, with single-threaded BLAS and Numba inside.

    For passes that alternate a GEMM with a selection kernel: one BLAS pool would spin
    between the GEMMs against the kernel, while each share here keeps a core busy with
    both. A row's result depends only on the row, so the thread count changes nothing
    but the speed. Shares hold at least ``min_rows`` rows.
    """
    n_threads = max(1, min(n_threads or numba.get_num_threads(), n_rows // max(1, min_rows) + 1))
    bounds = np.linspace(0, n_rows, n_threads + 1).astype(np.int64)
    with thread_limits(1):
        if n_threads == 1:
            work(0, n_rows)
            return
        with ThreadPoolExecutor(n_threads) as pool:
            for job in [pool.submit(work, bounds[t], bounds[t + 1]) for t in range(n_threads)]:
                job.result()


def two_level_assign(X, centers, state, labels_out, sq_dist_out, groups, block_rows=None, n_threads=None):
    """:func:`ivfpq.kernels.coarse.assign_rows` over all rows of ``X``, in row shares
    (:func:`in_row_shares`); by default in blocks of at most 1,024 rows, as many as
    :func:`~ivfpq.kernels.distances.default_block_rows` gives for the largest group's
    candidates (an exact pass, one group of all ``k``, runs at GEMM speed)."""
    if block_rows is None:
        widest = int(np.max(np.diff(groups[2])))
        block_rows = min(1024, default_block_rows(widest, X.dtype.itemsize))
    in_row_shares(lambda start, stop: assign_rows(X, centers, state, labels_out, sq_dist_out, groups, start,
                                                  stop, block_rows), X.shape[0], block_rows, n_threads)


def nearest_in_shares(X, C, labels_out, sq_dist_out, lower_out=None):
    """:func:`~ivfpq.kernels.distances.nearest_centroids` in row shares
    (:func:`in_row_shares`), for the exact passes between a run's graph searches: a
    multi-threaded BLAS would leave its pool spinning into the search that follows."""
    block_rows = default_block_rows(C.shape[0], X.dtype.itemsize)

    def share(start, stop):
        nearest_centroids(X[start:stop], C, labels_out[start:stop], sq_dist_out[start:stop], block_rows,
                          lower_out=None if lower_out is None else lower_out[start:stop])

    in_row_shares(share, X.shape[0], block_rows)


def exact_audit(sample_x, centers, sample_sq):
    """(fraction of the rows at their exact nearest centroid, excess cost over exact
    assignment) of an assignment of the rows of ``sample_x`` to ``centers``, from its
    exact squared distances ``sample_sq``: one exact pass over the sample."""
    m = sample_x.shape[0]
    exact = np.empty(m, dtype=np.float64)
    nearest_in_shares(np.ascontiguousarray(sample_x, dtype=centers.dtype), centers, np.empty(m, np.int64), exact)
    total = float(np.sum(exact))
    excess = (float(np.sum(sample_sq)) - total) / total if total > 0 else 0.0
    return float(np.mean(sample_sq <= exact)), max(excess, 0.0)


def _all_centroids(centers):
    """Groups for :func:`two_level_assign` in which one group holds every centroid: the
    kernel then ranks them all, exactly, and keeps the runners-up as well."""
    k = centers.shape[0]
    return np.ascontiguousarray(centers[:1]), np.arange(k, dtype=np.int64), np.array([0, k], dtype=np.int64)


class GraphAssigner(Assigner):
    """MOPBucket assignment: seeded searches of an HNSW graph over the centroids.

    Cost per iteration is roughly ``n * ef * 2M * d`` instead of ``n * k * d``. The
    assigner owns the graph across iterations: :meth:`prepare` warm-starts it from
    the previous iteration's graph (same levels, same edges), recomputing only the
    rows of centroids that drifted, since their row was last chosen, by more than
    ``repair_shift`` times the distance to their nearest neighbour; it rebuilds from
    scratch when more than ``rebuild_fraction`` of the centroids drifted that far.

    The per-point state is an ``(n, 1 + additional_centroids)`` int32 array of the
    previous nearest centroids (-1 = none). The previous centroid is always compared,
    by exact distance, with what the search finds, so no point's distance to its
    centroid grows between iterations and the k-means objective never rises.

    Parameters
    ----------
    M, ef_construction : graph degree (``2*M`` on the bottom layer) and build beam.
    ef_search : beam width of the assignment searches.
    additional_centroids : runners-up remembered per point and used as seeds.
    min_iterations : node expansions each search makes at least.
    bulk_size : points per bulk (the unit of parallel work and of the sorted order);
        bulks are runs of rows grouped by previous centroid.
    seed : seeds the graph levels, the audit sample and the within-bulk order.
    cold_start : how points with no previous centroid (the first iteration) are
        assigned. "graph": the paper's unseeded search (upper-layer descent, then a
        beam of ``ef_cold``). "two-level": :func:`two_level_assign`, BLAS blocks
        against the centroids of each point's nearest group of centroids, which also
        fills the runners-up that seed the second iteration. "exact": the same
        kernel with every centroid as the candidates of every point (one BLAS pass,
        ``n * k * d``). "auto": "two-level" where the run has at least
        ``COARSE_MIN_POINTS`` rows per centroid or where it puts at least
        ``COARSE_MIN_AGREEMENT`` of the audit sample at its exact nearest centroid
        (the seeded searches of the next iterations correct a rough start for a
        fraction of the cost of a better one: at 10^7 rows and k = 10^5 the run from
        the two-level start is ahead at every iteration); otherwise, where the rows
        a rough start misplaces are many and a large share of their clusters, and
        lead the run to a worse local minimum, "exact" up to
        ``EXACT_COLD_MAX_CLUSTERS`` centroids and "graph" above
        (``benchmarks/README.md``, "Cold start at scale" and "k = 10,000 on every set
        after the cold-start rule"). The choice is kept in ``cold_start_``.
    cold_nprobe : groups of centroids scanned per point by the "two-level" start.
    max_ef_search : the widest beam :meth:`widen` goes to (default ``4 * ef_search``).
    ef_cold : beam width of the "graph" cold start, by default
        ``max(COLD_EF, 2 * ef_search)``.
    warm_start, seed_previous, sort_bulks : the improvements over a black-box HNSW; they
        can be switched off one by one (ablation).
    repair_shift, rebuild_fraction : the warm-start policy above.
    stay_check : a point whose previous centroid is at least as near as its graph
        neighbours and the other seeds keeps it without a beam search. Each iteration
        audits it on the audit sample against full searches from the same state and
        uses it only if the points it keeps cost at most ``STAY_TOLERANCE`` more (kept
        in ``stay_audit_``); never with a widened beam or one as wide as k.
    descend_warm : also run the upper-layer descent for points that have a previous
        centroid (the paper's recipe); points without one always descend.
    audit_size : rows of the audit sample that the loop assigns exactly after every
        iteration (one BLAS pass) to measure the fraction of points at their exact
        nearest centroid and the excess cost of the assignment over exact assignment.
    audit_tolerance : the excess above which the loop widens the search at once (and,
        with the beam at ``max_ef_search``, makes the next iteration an exact pass,
        :meth:`exact_pass`); it narrows it again, one step per iteration, once the
        audit reads at most a quarter of it.
    handover : let the run go on as exact Lloyd with bounds (:class:`ExactAssigner`)
        from the iteration where, priced on the audit rows, a bounded exact pass costs
        less than the graph search (late in a fit, when few centroids move; or where
        the data keeps the search wide): :meth:`prepare` prices both, in scores of a full
        pass (``GRAPH_EXPANSION_COST``, ``GRAPH_ROW_COST``, :func:`bounded_pass_plan`),
        and :meth:`widen` and :meth:`narrow` price the graph again at the new beam.
        After an exact pass the bounds come from its exact runners-up at no cost;
        otherwise the first exact pass is a full one, spread over
        ``HANDOVER_HORIZON`` iterations in the comparison. Kept in ``handover_costs_``.

    The measurements behind the defaults are in ``benchmarks/README.md`` (MOPBucket
    ablation). Memory beyond the data: the state (``n * (1 + additional_centroids)``
    int32), the graph (``k * 2M`` int32 plus the upper layers and a float32 copy of
    the centroids) and per-thread scratch of ``O(k)``.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq.cluster.assign import GraphAssigner
    >>> X = np.random.default_rng(0).standard_normal((2000, 8)).astype(np.float32)
    >>> assigner = GraphAssigner(ef_search=4, additional_centroids=2, cold_start="graph")
    >>> assigner.reset()
    >>> assigner.prepare(X[:50])
    >>> state = assigner.new_state(2000)
    >>> labels, sq_dists = np.empty(2000, np.int64), np.empty(2000)
    >>> _ = assigner.assign(X, state, labels, sq_dists)
    >>> state.shape, bool((state[:, 0] == labels).all())
    ((2000, 3), True)
    """

    def __init__(self, M=16, ef_construction=40, ef_search=8, additional_centroids=3,
                 min_iterations=2, bulk_size=2048, seed=0, *, ef_cold=None, warm_start=True,
                 seed_previous=True, sort_bulks=True, descend_warm=False, repair_shift=0.05,
                 rebuild_fraction=0.5, cold_start="auto", cold_nprobe=1, max_ef_search=None,
                 stay_check=True, audit_size=1024, audit_tolerance=1e-3, handover=True):
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.additional_centroids = additional_centroids
        self.min_iterations = min_iterations
        self.bulk_size = bulk_size
        self.seed = seed
        self.ef_cold = ef_cold
        self.warm_start = warm_start
        self.seed_previous = seed_previous
        self.sort_bulks = sort_bulks
        self.descend_warm = descend_warm
        self.repair_shift = repair_shift
        self.rebuild_fraction = rebuild_fraction
        self.cold_start = cold_start
        self.cold_nprobe = cold_nprobe
        self.max_ef_search = max_ef_search
        self.stay_check = stay_check
        self.audit_size = audit_size
        self.audit_tolerance = audit_tolerance
        self.handover = handover
        self.reset()

    # -- the protocol --------------------------------------------------------------------

    def reset(self, n_rows=None):
        self._n_rows = n_rows
        self._ef = self.ef_search
        self.stay_audit_ = []
        self.stats = []  # per graph refresh: dict(graph, nodes, seconds)
        self.graph = None
        self.centroids = None
        self._levels = None
        self._rank = None
        self._projection = None
        self._radius = None
        self._anchor = None
        self._groups = None
        self._stay = False
        self._cold = True
        self.cold_start_ = None
        self.exact_passes_ = 0
        self._exact_groups = False  # the pass being made is exact (its runners-up too)
        self._hand_over = False
        self._priced = None  # this iteration's pricing: (previous, fresh, sample, state, exact cost)
        self._handover_from = None  # the centroids of the last pass, when handing over
        self._handover_fresh = False
        self.handover_costs_ = []  # per priced iteration: (exact, graph) in full passes

    def audit_rows(self, n_rows):
        rng = np.random.default_rng(self.seed)
        return np.sort(rng.choice(n_rows, min(n_rows, AUDIT_SAMPLE), replace=False)).astype(np.int64)

    def audit_positions(self, n_sample):
        rng = np.random.default_rng(self.seed + 1)
        return np.sort(rng.permutation(n_sample)[:min(n_sample, self.audit_size)]).astype(np.int64)

    def new_state(self, n_rows):
        return np.full((n_rows, 1 + self.additional_centroids), -1, dtype=np.int32)

    def prepare(self, centroids, sample_x=None, sample_state=None):
        previous, fresh = self.centroids, self._exact_groups
        self.centroids = np.ascontiguousarray(centroids)
        k, d = self.centroids.shape
        if self._levels is None or self._levels.shape[0] != k:
            rng = np.random.default_rng(self.seed)
            self._levels = draw_levels(k, self.M, rng)
            direction = rng.standard_normal(d)
            self._projection = direction / max(np.linalg.norm(direction), 1e-300)
            self.graph = None
        self._cold = sample_state is None or bool((sample_state[:, 0] < 0).all())
        self._groups = None
        self._exact_groups = self._hand_over = False
        self._priced = None
        if self._cold:
            self.cold_start_ = self._choose_cold_start(sample_x)
            self._exact_groups = self.cold_start_ == "exact"
            if self.cold_start_ in ("two-level", "exact"):
                return  # the first assignment does not search the graph
        self._refresh_graph()
        sampled = sample_x is not None and sample_x.shape[0] > 0
        self._stay = (self.stay_check and not self._cold and self._ef == self.ef_search < k and sampled
                      and self._stay_check_pays(sample_x, sample_state))
        if (self.handover and not self._cold and sampled and previous is not None
                and previous.shape == self.centroids.shape):
            self._price_handover(previous, fresh, sample_x, sample_state)

    def move(self, centroids):
        """Assign to ``centroids`` (same k) from now on without a :meth:`prepare`: the
        graph keeps its edges (or the two-level start its groups) and searches the new
        positions. For the many small steps between two prepares that mini-batch
        k-means makes."""
        self.centroids = np.ascontiguousarray(centroids)
        if self.graph is not None:
            self.graph.data[:] = self.centroids

    def assign(self, X, state, labels_out, sq_dist_out):
        centers = np.ascontiguousarray(self.centroids, dtype=X.dtype)
        if self._groups is not None:  # the two-level or the exact pass, not the graph
            two_level_assign(X, centers, state, labels_out, sq_dist_out, self._groups)
            return 0
        return self._search(X, centers, state, labels_out, sq_dist_out, self._stay and not self._cold)

    def relabel(self, state, rows, clusters):
        state[rows] = -1
        state[rows, 0] = clusters

    def widen(self):
        """Double the beam of the following searches, up to ``max_ef_search``.

        The Lloyd loop calls this when an iteration would end the run (no label
        changed, or the centroids stopped moving) or gains little: a beam of
        ``ef_search`` can settle where no point finds a nearer centroid *within its
        reach*, above the cost that exact Lloyd goes on to.
        """
        if self._ef >= self._widest():
            return False
        self._ef = min(2 * self._ef, self._widest())
        self._decide_handover(again=True)
        return True

    def widen_steps(self):
        steps, ef = 0, self.ef_search
        while ef < self._widest():
            ef, steps = min(2 * ef, self._widest()), steps + 1
        return steps

    def narrow(self):
        if self._ef <= self.ef_search:
            return False
        self._ef = max(self.ef_search, self._ef // 2)
        self._decide_handover(again=True)
        return True

    def can_pass_exactly(self):
        return True

    def exact_pass(self):
        """Assign every point exactly, with its exact runners-up, until the next
        :meth:`prepare`; the loop asks for it where the audit's excess stays above
        ``audit_tolerance`` at the widest beam. Counted in ``exact_passes_``."""
        self._groups = _all_centroids(self.centroids)
        self._exact_groups = True
        self.exact_passes_ += 1

    def hands_over(self):
        return self._hand_over

    def successor(self):
        """An :class:`ExactAssigner` with bounds, prepared for the centroids of the last
        pass (:meth:`handover_state` gives its bounds)."""
        exact = ExactAssigner(bounds=True)
        exact.prepare(self._handover_from)
        return exact

    def handover_state(self, X, state):
        """Bounds for :class:`ExactAssigner`: each row's label and, after an exact pass,
        the exact distance to its runner-up, a lower bound on its distance to every
        other centroid (else 0, which settles nothing: the next pass is a full one)."""
        labels = state[:, 0].astype(np.int64)
        lower = np.zeros(labels.size, dtype=np.float64)
        if self._handover_fresh and state.shape[1] > 1:
            runner_up = state[:, 1].astype(np.int64)
            has = np.flatnonzero(runner_up >= 0)
            sq = np.empty(has.size, dtype=np.float64)
            centers = np.ascontiguousarray(self._handover_from, dtype=X.dtype)
            exact_sq_distances(np.ascontiguousarray(X[has]), centers, runner_up[has], sq)
            lower[has] = np.sqrt(sq) * (1.0 - LOWER_MARGIN)
        return bounds_of(labels, lower)

    _STATE_ARRAYS = ("_levels", "_projection", "_radius", "_anchor", "_rank")
    _STATE_SCALARS = ("_ef", "_stay", "_cold", "cold_start_", "stay_audit_", "stats", "exact_passes_",
                      "_exact_groups", "handover_costs_")
    _GRAPH_ARRAYS = ("data", "levels", "links0", "upper", "upper_offset")

    def get_state(self):
        meta = {name: getattr(self, name) for name in self._STATE_SCALARS}
        arrays = {name: getattr(self, name) for name in self._STATE_ARRAYS if getattr(self, name) is not None}
        if self._groups is not None:
            arrays.update(zip(("groups_means", "groups_candidates", "groups_starts"), self._groups))
        meta["graph"] = None
        if self.graph is not None:
            g = self.graph
            meta["graph"] = {"entry_point": g.entry_point, "max_level": g.max_level, "M": g.M,
                             "n_linked": g.n_linked}
            arrays.update({"graph_" + name: getattr(g, name) for name in self._GRAPH_ARRAYS})
        return meta, arrays

    def set_state(self, meta, arrays, centroids):
        self.reset()
        self.centroids = np.ascontiguousarray(centroids)
        for name in self._STATE_SCALARS:
            setattr(self, name, meta.get(name, getattr(self, name)))
        for name in self._STATE_ARRAYS:
            setattr(self, name, arrays.get(name))
        if "groups_means" in arrays:
            self._groups = (arrays["groups_means"], arrays["groups_candidates"], arrays["groups_starts"])
        if meta["graph"] is not None:
            self.graph = HNSWGraph(*(np.array(arrays["graph_" + name]) for name in self._GRAPH_ARRAYS),
                                   **meta["graph"])

    # -- the parts -------------------------------------------------------------------------

    def _widest(self):
        return max(self.ef_search, self.max_ef_search or 4 * self.ef_search)

    def _ef_cold(self):
        return max(COLD_EF, 2 * self.ef_search) if self.ef_cold is None else self.ef_cold

    def _build(self, data):
        return build_graph(data, self.M, self.ef_construction, levels=self._levels)

    def _refresh_graph(self):
        start = time.perf_counter()
        data = np.ascontiguousarray(self.centroids, dtype=np.float32)
        k = data.shape[0]
        kind, repaired = "rebuild", k
        if self.graph is None or not self.warm_start:
            self.graph = self._build(data.copy())
            self._anchor = data.copy()
        else:
            # Drift since each row was last chosen, against the node's spacing then.
            drift = data - self._anchor
            shift = np.sqrt(np.einsum("ij,ij->i", drift, drift, dtype=np.float64))
            moved = np.flatnonzero(shift > self.repair_shift * self._radius)
            if moved.size > self.rebuild_fraction * k:
                self.graph = self._build(data.copy())
                self._anchor = data.copy()
            else:
                self.graph.data[:] = data
                repair_nodes(self.graph, moved, self.ef_construction)
                self._anchor[moved] = data[moved]
                kind, repaired = "repair", int(moved.size)
        radius = nearest_link_distances(self.graph.data, self.graph.links0).astype(np.float64)
        if kind == "rebuild":
            self._radius = radius
            self._rank = self._locality_rank(data)
        else:
            self._radius[moved] = radius[moved]
        self.stats.append({"graph": kind, "nodes": repaired, "seconds": time.perf_counter() - start})

    def _choose_cold_start(self, sample_x):
        """"two-level", "exact" or "graph" for the first assignment (see ``cold_start``);
        fills ``_groups`` for the first two."""
        method = self.cold_start
        centers = self.centroids
        k, width = centers.shape[0], 1 + self.additional_centroids
        if method in ("two-level", "auto"):
            self._groups = coarse_groups(centers, default_n_groups(k, self.cold_nprobe), self.cold_nprobe, width,
                                         self.seed)
            few_points = self._n_rows is not None and self._n_rows < COARSE_MIN_POINTS * k
            if (method == "two-level" or not few_points or sample_x is None or sample_x.shape[0] == 0
                    or self._two_level_agreement(sample_x) >= COARSE_MIN_AGREEMENT):
                return "two-level"
            method = "exact" if k <= EXACT_COLD_MAX_CLUSTERS else "graph"
        self._groups = _all_centroids(centers) if method == "exact" else None
        return method

    def _two_level_agreement(self, sample_x):
        """The fraction of the audit rows of ``sample_x`` (:meth:`audit_positions`) that
        the two-level start puts at their exact nearest centroid."""
        rows = self.audit_positions(sample_x.shape[0])
        sample = np.ascontiguousarray(sample_x[rows], dtype=self.centroids.dtype)
        m = sample.shape[0]
        rough = np.empty(m)
        two_level_assign(sample, self.centroids, self.new_state(m), np.empty(m, np.int64), rough, self._groups)
        return exact_audit(sample, self.centroids, rough)[0]

    def _locality_rank(self, data):
        """A rank of the centroids in which near ones are near: by the nearest of
        ``sqrt(k)`` of them drawn with the assigner's seed, then by index.

        The searches run in this order of the points' previous centroids, so that
        consecutive searches read the same few hundred centroids, which stay in cache
        (at k = 100,000 the centroids are 50 MB). Only the speed depends on it."""
        k = data.shape[0]
        pivots = np.sort(np.random.default_rng(self.seed).choice(k, max(1, int(np.sqrt(k))), replace=False))
        nearest = np.empty(k, dtype=np.int64)
        nearest_in_shares(data, np.ascontiguousarray(data[pivots]), nearest, np.empty(k))
        rank = np.empty(k, dtype=np.int64)
        rank[counting_order(nearest, pivots.size)[0]] = np.arange(k)
        return rank

    def _bulk_order(self, state):
        """Rows grouped by previous centroid, the centroids in locality order, so that
        a bulk's queries share their neighbourhood of the graph (stable: ties keep row
        order)."""
        n = state.shape[0]
        previous = state[:, 0]
        if not self.sort_bulks or n == 0:
            return np.arange(n, dtype=np.int64)
        if previous.min() < 0:
            return np.argsort(previous, kind="stable").astype(np.int64, copy=False)
        return counting_order(self._rank[previous], self.centroids.shape[0])[0]

    def _search(self, X, centers, state, labels_out, sq_dist_out, stay_check):
        graph = self.graph
        if self._rank is None:  # restored from a checkpoint without it
            self._rank = self._locality_rank(graph.data)
        visited, epochs = graph.scratch()
        return int(mop_assign(
            X, centers, graph.data, graph.links0, graph.upper, graph.upper_offset,
            graph.entry_point, graph.max_level, state, labels_out, sq_dist_out,
            self._projection, self._rank, self._bulk_order(state), self.bulk_size, self._ef, self._ef_cold(),
            self.min_iterations, self.seed_previous, self.sort_bulks, self.descend_warm,
            stay_check, visited, epochs))

    def _price_handover(self, previous, fresh, sample_x, sample_state):
        """Price a bounded exact pass on the audit rows: the bounds that an exact pass
        under ``previous`` (the last pass's centroids) would leave; then decide."""
        rows = self.audit_positions(sample_x.shape[0])[:HANDOVER_SAMPLE]
        sample = np.ascontiguousarray(sample_x[rows], dtype=self.centroids.dtype)
        m = sample.shape[0]
        labels, lower = np.empty(m, dtype=np.int64), np.empty(m, dtype=np.float64)
        nearest_in_shares(sample, np.ascontiguousarray(previous, dtype=sample.dtype), labels, np.empty(m),
                          lower_out=lower)
        exact_cost = bounded_pass_plan(previous, self.centroids, sample, labels, lower)[0]
        self._priced = (previous, fresh, sample, sample_state[rows].copy(), exact_cost)
        self._decide_handover()

    def _decide_handover(self, again=False):
        """Hand over where the priced bounded pass costs less than the graph searches the
        next pass would make (node expansions on the same rows, at the current beam);
        ``again``: the beam changed since this iteration's pricing."""
        if self._priced is None:
            return
        previous, fresh, sample, state, exact_cost = self._priced
        m, k = sample.shape[0], self.centroids.shape[0]
        expansions = self._search(sample, self.centroids, state.copy(), np.empty(m, np.int64), np.empty(m),
                                  self._stay)
        graph_cost = (expansions * GRAPH_EXPANSION_COST + m * GRAPH_ROW_COST) / (float(m) * k)
        if again:
            self.handover_costs_.pop()
        self.handover_costs_.append((exact_cost, graph_cost))
        if fresh:
            self._hand_over = exact_cost < graph_cost
        else:
            self._hand_over = 1.0 + (HANDOVER_HORIZON - 1) * exact_cost < HANDOVER_HORIZON * graph_cost
        self._handover_from, self._handover_fresh = previous, fresh

    def _stay_check_pays(self, sample_x, sample_state):
        """The relative cost the stay check adds over full searches from the same state,
        on the audit sample; kept in ``stay_audit_``."""
        sample = np.ascontiguousarray(sample_x, dtype=self.centroids.dtype)
        m = sample.shape[0]
        costs = []
        for check in (True, False):
            sq = np.empty(m)
            self._search(sample, self.centroids, sample_state.copy(), np.empty(m, np.int64), sq, check)
            costs.append(float(np.sum(sq)))
        excess = (costs[0] - costs[1]) / max(costs[1], 1e-300)
        self.stay_audit_.append(excess)
        return excess <= STAY_TOLERANCE
