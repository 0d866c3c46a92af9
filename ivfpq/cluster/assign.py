"""Assigners: how the Lloyd loop finds each point's nearest centroid.

The loop in :mod:`ivfpq.cluster.kmeans` only knows this protocol::

    assigner.prepare(centroids)          # once per iteration
    state = assigner.new_state(n)        # per-point memory, or None
    assigner.assign(X, state, labels_out, sq_dist_out)

``sq_dist_out`` receives the squared distance (float64) from each point to the
centroid it was given, as accurately as the assigner computes it: it ranks points
(empty-cluster repair) but the loop takes the inertia from exact cluster sums. ``state``
belongs to the rows it was made for; an assigner may read and update it, and a
block of rows carries the matching slice of it (threads, Dask workers).
"""

from __future__ import annotations

import numpy as np

from ..kernels.distances import augmented_centroids, default_block_rows, nearest_centroids

__all__ = ["ExactAssigner", "GraphAssigner"]

# ``cold_start="auto"``: the two-level pass is used when it finds the exact nearest
# centroid of at least this fraction of a sample of this many rows. Measured at
# k=10,000 with cold_nprobe=1: 98% on a 1M x 128 Gaussian mixture (where it is 3x
# faster than the graph search and more accurate), 77% on Fashion-MNIST and 48% on
# GloVe (where the graph search agrees with exact for 99% and 84%).
COLD_AGREEMENT = 0.95
COLD_SAMPLE = 2000

# ``stay_check``: used in an iteration only when, on a sample of this many rows, the
# points it keeps in place cost at most this fraction more than full searches would.
STAY_SAMPLE = 4096
STAY_TOLERANCE = 2e-4


class ExactAssigner:
    """Brute-force assignment: BLAS distance blocks with a fused argmin. Cost n*k*d."""

    name = "lloyd"

    def __init__(self, block_rows=None):
        self.block_rows = block_rows
        self.centroids = None
        self._augmented = None

    def prepare(self, centroids):
        self.centroids = centroids
        self._augmented = augmented_centroids(centroids)

    def new_state(self, n_samples):
        return None

    def assign(self, X, state, labels_out, sq_dist_out):
        block_rows = self.block_rows or default_block_rows(self.centroids.shape[0], X.dtype.itemsize)
        nearest_centroids(X, self.centroids, labels_out, sq_dist_out, block_rows, self._augmented)
        return labels_out, sq_dist_out


class GraphAssigner:
    """MOPBucket assignment: seeded searches of an HNSW graph over the centroids.

    Cost per iteration is roughly ``n * ef * 2M * d`` instead of ``n * k * d``. The
    assigner owns the graph across iterations: :meth:`prepare` warm-starts it from the
    previous iteration's graph (same levels, same edges), recomputing only the rows of
    centroids that drifted, since their row was last chosen, by more than
    ``repair_shift`` times the distance to their nearest neighbour. It rebuilds from
    scratch when more than ``rebuild_fraction`` of the centroids drifted that far.
    Measured at n=1M, k=10,000, d=128: a repair of every node (a local search seeded
    with its old row) costs 0.12 s against 0.16 s for a rebuild, but the searches in the
    repaired graph took 1.1 s per iteration against 0.85 s in a rebuilt one; by
    default (0.5) the graph is rebuilt while most centroids still move (the early
    iterations) and repaired once few do.

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
    cold_start : how points with no previous centroid (the first iteration) are
        assigned. "graph": the paper's unseeded search (upper-layer descent, then a
        beam of ``ef_cold``). "two-level": :func:`ivfpq.kernels.coarse.two_level_assign`,
        BLAS blocks against the centroids of each point's nearest group of centroids,
        which also fills the runners-up that seed the second iteration. "auto"
        (default): "two-level" when it finds the exact nearest centroid for at least
        ``COLD_AGREEMENT`` of a sample of rows, else "graph"; the choice is kept in
        ``cold_start_`` and the sample's agreement in ``cold_agreement_``. Measured at
        k=10,000: on a 1M x 128 Gaussian mixture "graph" took 4.3 s and sent 1.6% of
        the points to another mixture component (cost 17% above exact), "two-level"
        0.9 s at 7% above exact; on GloVe and Fashion-MNIST the groups cut across the
        neighbourhoods (48% and 77% agreement) and "graph" is the better start.
    cold_nprobe : groups of centroids scanned per point by the "two-level" start.
    max_ef_search : the widest beam :meth:`widen` goes to (default ``4 * ef_search``).
        Measured on GloVe (200k x 50, k=10,000): with a beam of 8 the run settled at
        1.004 of exact Lloyd's 10-iteration cost; widened where it would have stopped
        or gained less than 1e-4 per iteration, it reached 0.9989 within 25 s.
    ef_cold : beam width of the "graph" cold start, by default ``2 * ef_search``.
    seed : seeds the graph levels and the projection of the within-bulk order.
    warm_start, seed_previous, sort_bulks : the improvements over a black-box HNSW; they
        can be switched off one by one (ablation).
    repair_shift, rebuild_fraction : the warm-start policy above.
    stay_check : a point whose previous centroid is at least as near as its graph
        neighbours and the other seeds keeps it without a beam search (one expansion
        instead of about ``ef_search``). Each iteration audits it on a sample of
        ``STAY_SAMPLE`` rows against full searches from the same state and uses it
        only if the points it keeps cost at most ``STAY_TOLERANCE`` more (kept in
        ``stay_audit_``); never with a widened beam or one as wide as k. Measured at
        n=1M, d=128, k=10,000 (Gaussian mixture): audits of 0.6-1.2e-4, searches 2x
        faster; on GloVe: 3e-4 to 9e-3, so it is mostly off there.
    descend_warm : also run the upper-layer descent for points that have a previous
        centroid (the paper's recipe). Off by default: measured at n=100k, d=128,
        k=5,000, it costs 15-20% of an iteration and the previous centroid is a better
        base seed and sort key; points without one always descend.

    Memory beyond the data: the state (``n * (1 + additional_centroids)`` int32), the
    graph (``k * 2M`` int32 plus the upper layers and a float32 copy of the
    centroids) and per-thread scratch of ``O(k)``.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq.cluster.assign import GraphAssigner
    >>> X = np.random.default_rng(0).standard_normal((2000, 8)).astype(np.float32)
    >>> assigner = GraphAssigner(ef_search=4, additional_centroids=2)
    >>> assigner.prepare(X[:50])
    >>> state = assigner.new_state(2000)
    >>> labels, sq_dists = np.empty(2000, np.int64), np.empty(2000)
    >>> _ = assigner.assign(X, state, labels, sq_dists)
    >>> state.shape, bool((state[:, 0] == labels).all())
    ((2000, 3), True)
    """

    name = "mop"

    def __init__(self, M=16, ef_construction=40, ef_search=8, additional_centroids=3,
                 min_iterations=2, bulk_size=2048, seed=0, *, ef_cold=None, warm_start=True,
                 seed_previous=True, sort_bulks=True, descend_warm=False, repair_shift=0.05,
                 rebuild_fraction=0.5, cold_start="auto", cold_nprobe=1, max_ef_search=None,
                 stay_check=True):
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
        self.stay_audit_ = []
        self._ef = ef_search
        self.graph = None
        self.centroids = None
        self.stats = []  # per prepare(): dict(build, repaired, seconds)
        self._levels = None
        self._projection = None
        self._radius = None
        self._anchor = None
        self._graph_pending = False

    def _build(self, data):
        from .._graph import build_graph

        return build_graph(data, self.M, self.ef_construction, levels=self._levels)

    def prepare(self, centroids):
        self.centroids = np.ascontiguousarray(centroids)
        k, d = self.centroids.shape
        if self._levels is None or self._levels.shape[0] != k:
            from .._graph import draw_levels

            rng = np.random.default_rng(self.seed)
            self._levels = draw_levels(k, self.M, rng)
            direction = rng.standard_normal(d)
            self._projection = direction / max(np.linalg.norm(direction), 1e-300)
            self.graph = None
        if self.cold_start != "graph" and self.graph is None:
            # The first assignment may not search the graph at all (two-level start):
            # it is built by the first search that needs it.
            self._graph_pending = True
            return
        self._refresh_graph()

    def ready(self):
        """Build now what :meth:`prepare` deferred. For callers that hand one prepared
        assigner to several processes (the Dask loop): a graph built lazily in one
        copy would not reach the others, and which copy the next iteration starts
        from would then depend on where tasks ran."""
        if self._graph_pending:
            self._refresh_graph()

    def _refresh_graph(self):
        import time

        from .._graph import repair_nodes
        from ..kernels.mop import nearest_link_distances

        start = time.perf_counter()
        self._graph_pending = False
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
        else:
            self._radius[moved] = radius[moved]
        self.stats.append({"graph": kind, "nodes": repaired, "seconds": time.perf_counter() - start})

    def _ef_cold(self):
        if self.ef_cold is not None:
            return self.ef_cold
        return 2 * self.ef_search

    def new_state(self, n_samples):
        self._ef = self.ef_search
        self.stay_audit_ = []
        return np.full((n_samples, 1 + self.additional_centroids), -1, dtype=np.int32)

    def _widest(self):
        return max(self.ef_search, self.max_ef_search or 4 * self.ef_search)

    def widen(self):
        """Double the beam of the following searches, up to ``max_ef_search``.

        The Lloyd loop calls this when an iteration would end the run (no label
        changed, or the centroids stopped moving): a beam of ``ef_search`` can settle
        where no point finds a nearer centroid *within its reach*, above the cost that
        exact Lloyd goes on to. Returns False when the beam is already the widest.
        """
        if self._ef >= self._widest():
            return False
        self._ef = min(2 * self._ef, self._widest())
        return True

    def widen_steps(self):
        """How many calls of :meth:`widen` succeed from ``ef_search``."""
        steps, ef = 0, self.ef_search
        while ef < self._widest():
            ef, steps = min(2 * ef, self._widest()), steps + 1
        return steps

    def relabel(self, state, rows, clusters):
        """The loop moved ``rows`` to ``clusters`` (empty-cluster repair): remember it."""
        state[rows] = -1
        state[rows, 0] = clusters

    def _bulk_order(self, state):
        """Rows grouped by previous centroid, so that a bulk's queries share their
        neighbourhood of the graph (stable: ties keep row order)."""
        n = state.shape[0]
        previous = state[:, 0]
        if not self.sort_bulks or n == 0:
            return np.arange(n, dtype=np.int64)
        if previous.min() < 0:
            return np.argsort(previous, kind="stable").astype(np.int64, copy=False)
        from ..kernels.coarse import counting_order

        return counting_order(previous, self.centroids.shape[0])[0]

    def _cold_assign(self, X, centers, state, labels_out, sq_dist_out):
        """The first assignment, when no row has a previous centroid: by the two-level
        pass (and then it is done: returns "two-level") or left to the graph search
        (returns "graph"). "auto" checks the two-level pass on a sample first."""
        from ..kernels.coarse import coarse_groups, default_n_groups, two_level_assign
        from ..kernels.distances import exact_sq_distances, nearest_centroids

        method = self.cold_start
        if method != "graph":
            k, width = centers.shape[0], state.shape[1]
            groups = coarse_groups(centers, default_n_groups(k, self.cold_nprobe), self.cold_nprobe,
                                   width, self.seed)
            if method == "auto":
                rng = np.random.default_rng(self.seed)
                n = X.shape[0]
                rows = np.sort(rng.choice(n, min(n, COLD_SAMPLE), replace=False))
                sample = np.ascontiguousarray(X[rows])
                m = sample.shape[0]
                exact_labels, exact_sq = np.empty(m, np.int64), np.empty(m)
                nearest_centroids(sample, centers, exact_labels, exact_sq)
                exact_sq_distances(sample, centers, exact_labels, exact_sq)
                labels, sq = np.empty(m, np.int64), np.empty(m)
                two_level_assign(sample, centers, np.empty((m, width), np.int32), labels, sq,
                                 groups=groups)
                self.cold_agreement_ = float(np.mean(sq <= exact_sq * (1 + 1e-9)))
                method = "two-level" if self.cold_agreement_ >= COLD_AGREEMENT else "graph"
            if method == "two-level":
                two_level_assign(X, centers, state, labels_out, sq_dist_out, groups=groups)
                self.last_expansions = 0
        self.cold_start_ = method
        return method

    def assign(self, X, state, labels_out, sq_dist_out):
        centers = self.centroids if self.centroids.dtype == X.dtype else self.centroids.astype(X.dtype)
        centers = np.ascontiguousarray(centers)
        cold = X.shape[0] > 0 and bool((state[:, 0] < 0).all())
        if cold and self._cold_assign(X, centers, state, labels_out, sq_dist_out) == "two-level":
            return labels_out, sq_dist_out
        if self._graph_pending:
            self._refresh_graph()
        # No shortcut for a widened beam (it is there to look further) or one as wide
        # as the number of centroids (an exhaustive search was asked for).
        stay = self.stay_check and self._ef == self.ef_search < centers.shape[0] and not cold
        if stay:
            stay = self._stay_check_pays(X, centers, state)
        self.last_expansions = self._search(X, centers, state, labels_out, sq_dist_out, stay)
        return labels_out, sq_dist_out

    def _search(self, X, centers, state, labels_out, sq_dist_out, stay_check):
        from ..kernels.mop import mop_assign

        graph = self.graph
        visited, epochs = graph.scratch()
        return int(mop_assign(
            X, centers, graph.data, graph.links0, graph.upper, graph.upper_offset,
            graph.entry_point, graph.max_level, state, labels_out, sq_dist_out,
            self._projection, self._bulk_order(state), self.bulk_size, self._ef, self._ef_cold(),
            self.min_iterations, self.seed_previous, self.sort_bulks, self.descend_warm,
            stay_check, visited, epochs))

    def _stay_check_pays(self, X, centers, state):
        """Audit the stay check on a fixed sample of rows: the relative cost it adds
        over full searches from the same state. Kept in ``stay_audit_``."""
        n = X.shape[0]
        rows = np.sort(np.random.default_rng(self.seed + 1).choice(n, min(n, STAY_SAMPLE), replace=False))
        sample = np.ascontiguousarray(X[rows])
        costs = []
        for check in (True, False):
            sq = np.empty(rows.size)
            self._search(sample, centers, state[rows].copy(), np.empty(rows.size, np.int64), sq, check)
            costs.append(float(sq.sum()))
        excess = (costs[0] - costs[1]) / max(costs[1], 1e-300)
        self.stay_audit_.append(excess)
        return excess <= STAY_TOLERANCE
