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
    Measured at k=10,000, d=128: repairing every node (a local search seeded with its
    old row) costs 0.1 to 0.5 of a rebuild and gives the same k-means trajectory, so
    by default (1.0) it never rebuilds after the first iteration.

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
    bulk_size : points per bulk (the unit of parallel work and of the sorted order).
    ef_cold : beam width for points with no previous centroid (the first iteration),
        by default ``2 * ef_search``: the first assignment has no seeds but the
        descent, and its quality shapes the whole run.
    seed : seeds the graph levels and the projection of the within-bulk order.
    warm_start, seed_previous, sort_bulks : the improvements over a black-box HNSW; they
        can be switched off one by one (ablation).
    repair_shift, rebuild_fraction : the warm-start policy above.
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
                 seed_previous=True, sort_bulks=True, descend_warm=False, repair_shift=0.05, rebuild_fraction=1.0,
                 cold_start="two-level", cold_nprobe=1):
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
        self.graph = None
        self.centroids = None
        self.stats = []  # per prepare(): dict(build, repaired, seconds)
        self._levels = None
        self._projection = None
        self._radius = None
        self._anchor = None
        self._graph_pending = False

    def _build(self, data):
        from ..kernels.hnsw import build_graph

        return build_graph(data, self.M, self.ef_construction, levels=self._levels)

    def prepare(self, centroids):
        self.centroids = np.ascontiguousarray(centroids)
        k, d = self.centroids.shape
        if self._levels is None or self._levels.shape[0] != k:
            from ..kernels.hnsw import draw_levels

            rng = np.random.default_rng(self.seed)
            self._levels = draw_levels(k, self.M, rng)
            direction = rng.standard_normal(d)
            self._projection = direction / max(np.linalg.norm(direction), 1e-300)
            self.graph = None
        if self.cold_start == "two-level" and not self.stats:
            # The first assignment of a run has no seeds and does not search the
            # graph (see ``cold_start``): build it when a search first needs it.
            self._graph_pending = True
            self.stats.append({"graph": "deferred", "nodes": 0, "seconds": 0.0})
            return
        self._refresh_graph()

    def _refresh_graph(self):
        import time

        from ..kernels.hnsw import repair_nodes
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
        return np.full((n_samples, 1 + self.additional_centroids), -1, dtype=np.int32)

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

    def assign(self, X, state, labels_out, sq_dist_out):
        from ..kernels.mop import mop_assign

        centers = self.centroids if self.centroids.dtype == X.dtype else self.centroids.astype(X.dtype)
        if self.cold_start == "two-level" and X.shape[0] and bool((state[:, 0] < 0).all()):
            from ..kernels.coarse import two_level_assign

            two_level_assign(X, np.ascontiguousarray(centers), state, labels_out, sq_dist_out,
                             nprobe=self.cold_nprobe, seed=self.seed)
            self.last_expansions = 0
            return labels_out, sq_dist_out
        if self._graph_pending:
            self._refresh_graph()
        graph = self.graph
        visited, epochs = graph.scratch()
        self.last_expansions = int(mop_assign(
            X, centers, graph.data, graph.links0, graph.upper, graph.upper_offset,
            graph.entry_point, graph.max_level, state, labels_out, sq_dist_out,
            self._projection, self._bulk_order(state), self.bulk_size, self.ef_search, self._ef_cold(),
            self.min_iterations,            self.seed_previous, self.sort_bulks, self.descend_warm, visited, epochs))
        return labels_out, sq_dist_out
