"""Mini-batch k-means (Sculley, 2010), with scikit-learn's ``MiniBatchKMeans`` API.

Each step draws a batch of rows with a seeded generator, assigns them to the current
centroids (exactly, or through the graph assigner), and moves each centroid toward
the mean of its batch points with a per-centroid learning rate ``1 / count``.
Centroids whose count stays far below the largest are moved onto random batch points
(``reassignment_ratio``); the run stops early when an exponentially weighted average
of the batch inertia stops improving (``max_no_improvement``) or the centroids stop
moving (``tol``). Every random choice comes from the one generator of
``random_state`` and every assignment is exact or decided row by row, so the result
does not depend on the thread count.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .._threads import resolve_n_threads, thread_limits
from .._validation import (
    Interval,
    Metric,
    Options,
    check_array,
    check_feature_names,
    check_n_features,
    check_random_state,
    check_sample_weight,
    validate_params,
)
from ..kernels.lloyd import minibatch_update
from .assign import ExactAssigner, GraphAssigner
from .executor import local_executor, normalize_rows
from .init import SAMPLE_PER_CLUSTER
from .kmeans import ALGORITHMS, INITS, _BaseKMeans
from .lloyd import predict

__all__ = ["MiniBatchKMeans"]

COLD_STARTS = ("two-level", "graph")


class MiniBatchKMeans(_BaseKMeans):
    """Mini-batch k-means, compatible with scikit-learn's ``MiniBatchKMeans``.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"auto", "k-means++", "random", "k-means||", "hierarchical"}, callable or \
            array of shape (n_clusters, n_features), default="auto"
        As in :class:`ivfpq.KMeans`, run on ``init_size`` rows drawn at random.
    max_iter : int, default=100
        Passes over the data (epochs): at most ``max_iter * n_samples // batch_size``
        steps.
    batch_size : int, default=1024
        Rows per step, drawn with replacement, with probability proportional to
        ``sample_weight``.
    verbose : int, default=0
        Ignored (accepted for compatibility); ``history_`` records the run.
    compute_labels : bool, default=True
        After ``fit`` (or each ``partial_fit``), assign every row exactly and set
        ``labels_`` and ``inertia_`` on all of it.
    random_state : int, Generator, RandomState or None, default=None
        Seeds the initialisation, the batches and the reassignments: with the same
        seed, the same result whatever ``n_threads``.
    tol : float, default=0.0
        Stop when the summed squared centroid change of a step is at most ``tol``
        times the mean per-feature variance of ``X`` (0: never on this rule).
    max_no_improvement : int or None, default=10
        Stop after this many steps without a new minimum of the smoothed batch
        inertia (None: never on this rule).
    init_size : int or None, default=None
        Rows drawn for the initialisation; None means ``3 * batch_size``, at least
        ``3 * n_clusters`` (for the hierarchical start, at least ``32 * n_clusters``, the
        sample it clusters), at most ``n_samples``.
    n_init : int or "auto", default="auto"
        Initialisations tried, each judged by its inertia on one common draw of
        ``init_size`` rows; "auto" means 3 for "random" or a callable, else 1.
    reassignment_ratio : float, default=0.01
        A centroid whose count is below this fraction of the largest count is moved
        onto a random point of the batch (checked each time ``10 * n_clusters`` rows
        have been processed, or whenever a centroid has none). 0 never reassigns.
    algorithm : {"lloyd", "mop", "auto"}, default="auto"
        How each batch finds its centroids: "lloyd" exactly (BLAS), "mop" through the
        graph assigner (:class:`ivfpq.cluster.assign.GraphAssigner`), whose search
        structure is rebuilt every ``refresh_every`` steps and searches the current
        centroids in between; "auto" is "lloyd", which was the faster to a given
        inertia wherever it was measured (``benchmarks/README.md``). The final
        ``labels_`` and ``inertia_`` are always exact.
    metric : {"l2", "cosine"}, default="sqeuclidean"
        "cosine": spherical mini-batch k-means: rows are L2-normalised, centroids
        kept at unit norm and ``inertia_`` is the sum of cosine distances ``1 - cos``.
    n_threads : int or None, default=None
        Threads for the kernels and BLAS; None follows Numba's setting (every core unless
        ``numba.set_num_threads`` lowered it).
    cold_start : {"two-level", "graph"}, default="two-level"
        "mop" only: the search structure. "two-level" scores each row against groups
        of centroids, then the centroids of its nearest group; "graph" searches an
        HNSW graph over the centroids.
    refresh_every : int, default=8
        "mop" only: steps between two rebuilds of the search structure.
    ef_search, M, ef_construction, cold_nprobe : "mop" only, as in :class:`ivfpq.KMeans`.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,), int32
        Only with ``compute_labels``.
    inertia_ : float
        With ``compute_labels``, the exact inertia of ``X`` against the centroids;
        otherwise the smoothed batch inertia times the total weight.
    n_iter_ : int
        Passes over the data started: ``ceil(n_steps_ * batch_size / n_samples)``.
    n_steps_ : int
        Mini-batch steps made.
    n_features_in_ : int
    feature_names_in_ : ndarray of str objects (data frames only)
    algorithm_ : str
    history_ : list of (float, float)
        ``(seconds since the fit began, mean batch inertia)`` per step (for
        ``partial_fit``: seconds since its first call).

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq import MiniBatchKMeans
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 0.1, (500, 2)), rng.normal(5, 0.1, (500, 2))])
    >>> model = MiniBatchKMeans(n_clusters=2, batch_size=100, random_state=0).fit(X)
    >>> sorted(np.abs(np.round(model.cluster_centers_)).tolist())
    [[0.0, 0.0], [5.0, 5.0]]
    >>> model.labels_.dtype, model.predict([[5.0, 5.1]]) == model.labels_[-1]
    (dtype('int32'), array([ True]))
    """

    _parameter_constraints = {
        "n_clusters": [Interval(int, 1, None)],
        "init": [Options(INITS), callable, "array-like"],
        "max_iter": [Interval(int, 1, None)],
        "batch_size": [Interval(int, 1, None)],
        "verbose": ["boolean", Interval(int, 0, None)],
        "compute_labels": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(float, 0, None)],
        "max_no_improvement": [Interval(int, 0, None), None],
        "init_size": [Interval(int, 1, None), None],
        "n_init": [Interval(int, 1, None), Options(("auto",))],
        "reassignment_ratio": [Interval(float, 0, None)],
        "algorithm": [Options(ALGORITHMS)],
        "metric": [Metric(_BaseKMeans._metrics)],
        "n_threads": [Interval(int, 1, None), None],
        "cold_start": [Options(COLD_STARTS)],
        "refresh_every": [Interval(int, 1, None)],
        "ef_search": [Interval(int, 1, None)],
        "M": [Interval(int, 2, None)],
        "ef_construction": [Interval(int, 1, None)],
        "cold_nprobe": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        init="auto",
        max_iter=100,
        batch_size=1024,
        verbose=0,
        compute_labels=True,
        random_state=None,
        tol=0.0,
        max_no_improvement=10,
        init_size=None,
        n_init="auto",
        reassignment_ratio=0.01,
        algorithm="auto",
        metric="sqeuclidean",
        n_threads=None,
        cold_start="two-level",
        refresh_every=8,
        ef_search=8,
        M=16,
        ef_construction=40,
        cold_nprobe=1,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.algorithm = algorithm
        self.metric = metric
        self.n_threads = n_threads
        self.cold_start = cold_start
        self.refresh_every = refresh_every
        self.ef_search = ef_search
        self.M = M
        self.ef_construction = ef_construction
        self.cold_nprobe = cold_nprobe

    # -- set-up ------------------------------------------------------------------------

    def _setup(self, X, stacklevel):
        """Check the parameters against ``X`` (validated) and fix what the steps need."""
        validate_params(self, self._parameter_constraints)
        n, d = X.shape
        k = self.n_clusters
        if n < k:
            raise ValueError(f"n_samples={n} should be >= n_clusters={k}: X has fewer samples than clusters")
        self._init = self._check_init(k, d, X.dtype)
        self._n_init_runs = self._n_init(3, stacklevel + 1)
        self._batch_size = min(self.batch_size, n)
        init_size = self.init_size
        if init_size is None:
            init_size = 3 * self._batch_size
            if init_size < k:
                init_size = 3 * k
            if isinstance(self._init, str) and self._resolved_init(self._init, k) == "hierarchical":
                # The hierarchical start clusters a sample of SAMPLE_PER_CLUSTER rows per
                # cluster; on 3 rows per cluster its groups would be as coarse as its rows.
                init_size = max(init_size, SAMPLE_PER_CLUSTER * k)
        elif init_size < k:
            warnings.warn(
                f"init_size={init_size} should be larger than n_clusters={k}. Setting it to "
                "min(3*n_clusters, n_samples)", RuntimeWarning, stacklevel=stacklevel + 1)
            init_size = 3 * k
        self._init_size = min(init_size, n)
        # "auto" is exact: measured on sift and MiniLM embeddings at k = 1,000 and
        # 10,000 (benchmarks/minibatch.py), the per-batch graph or two-level searches
        # were cheaper per row but never reached scikit-learn's inertia in one epoch,
        # since fresh batch rows have no previous centroid to seed them.
        self.algorithm_ = "lloyd" if self.algorithm == "auto" else self.algorithm
        self._counts = np.zeros(k, dtype=np.float64)
        self._n_since_last_reassign = 0
        self._assigner = None
        self._steps_since_refresh = 0

    def __getstate__(self):
        # The search structure is rebuilt on the next step; the pickle holds the model.
        state = dict(self.__dict__)
        state["_assigner"] = None
        state["_steps_since_refresh"] = 0
        return state

    def _check_X(self, X, reset):
        check_feature_names(self, X, reset=reset)
        X = X if isinstance(X, np.memmap) else check_array(X, "X")
        if not reset:
            check_n_features(X, self.n_features_in_, "X", type(self).__name__)
        return X

    def _rows(self, X, rows):
        """Rows ``rows`` of ``X`` as the steps see them (unit rows for the cosine metric)."""
        x = np.ascontiguousarray(X[rows])
        if self._metric == "cosine":
            if np.any(~np.any(x != 0, axis=1)):
                raise ValueError("X has rows of zero norm; the cosine metric needs every row to have a direction")
            x = normalize_rows(x)
        return x

    def _init_centers(self, X, weights, rng):
        """Initial centroids from ``init_size`` rows drawn with replacement (as scikit-learn)."""
        n = X.shape[0]
        if self._init_size < n:
            rows = rng.integers(0, n, self._init_size)
            X, weights = X[rows], None if weights is None else weights[rows]
        ex = local_executor(check_array(X, "X"), weights, None, self._metric == "cosine")
        blocks, stats = ex.validate()
        return self._initial_centers(ex, blocks, stats, self._init, self.n_clusters, rng, X)

    # -- one step ------------------------------------------------------------------------

    def _make_assigner(self):
        if self.algorithm_ != "mop":
            # Each batch is new rows, with no bounds from an earlier pass to use.
            return ExactAssigner(bounds=False)
        # A fixed seed (graph levels, group means): an assigner rebuilt after unpickling
        # draws nothing from the generator of the batches.
        return GraphAssigner(M=self.M, ef_construction=self.ef_construction, ef_search=self.ef_search,
                             additional_centroids=0, seed=0,
                             cold_start=self.cold_start, cold_nprobe=self.cold_nprobe,
                             max_ef_search=self.ef_search, stay_check=False)

    def _labels(self, x):
        """Nearest centroids of the batch rows ``x`` and the exact squared distances."""
        centers = self.cluster_centers_
        if self._assigner is None:
            self._assigner = self._make_assigner()
            self._assigner.reset()
        if self._steps_since_refresh % self.refresh_every == 0 or self.algorithm_ != "mop":
            self._assigner.prepare(centers)
        else:
            self._assigner.move(centers)
        self._steps_since_refresh += 1
        n = x.shape[0]
        labels, sq = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float64)
        self._assigner.assign(x, self._assigner.new_state(n), labels, sq)
        return labels, sq

    def _random_reassign(self):
        """Whether this step reassigns: every ``10 * n_clusters`` rows, or while a centroid
        has no weight."""
        self._n_since_last_reassign += self._batch_size
        if (self._counts == 0).any() or self._n_since_last_reassign >= 10 * self.n_clusters:
            self._n_since_last_reassign = 0
            return True
        return False

    def _step(self, x, weights, rng, reassign):
        """One mini-batch step on rows ``x``; returns the batch's weighted inertia before
        the update."""
        labels, sq = self._labels(x)
        order = np.argsort(labels, kind="stable")
        centers = self.cluster_centers_
        minibatch_update(x, weights, labels, order, centers, self._counts, self._metric == "cosine")
        if reassign and self.reassignment_ratio > 0:
            counts = self._counts
            low = counts < self.reassignment_ratio * counts.max()
            most = int(0.5 * x.shape[0])
            if low.sum() > most:  # at most half a batch of new centroids, the lowest counts
                low[np.argsort(counts, kind="stable")[most:]] = False
            n_low = int(low.sum())
            if n_low:
                centers[low] = x[rng.choice(x.shape[0], size=n_low, replace=False)]
                # Not back to zero, or they would be reassigned again at once.
                counts[low] = np.min(counts[~low])
                # A graph that still links the moved centroids where they were would
                # hide them from the points now near them: the next step repairs it.
                self._steps_since_refresh = 0
        return float(np.dot(sq, weights))

    # -- fitting -------------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Compute the centroids by mini-batch steps over rows of ``X``.

        Parameters
        ----------
        X : array-like or np.memmap of shape (n_samples, n_features)
            A memory-map is read a batch of rows at a time (plus the final exact pass,
            block by block, with ``compute_labels``).
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Batches draw rows with probability proportional to it; the rows of a
            batch then count once each (as in scikit-learn).

        Returns
        -------
        self
        """
        X = self._check_X(X, reset=True)
        self._setup(X, stacklevel=2)
        n, d = X.shape
        weights = None if sample_weight is None else check_sample_weight(sample_weight, n)
        if weights is not None and not weights.sum() > 0:
            raise ValueError("sample_weight is zero everywhere; at least one weight must be positive")
        rng = self._rng = check_random_state(self.random_state)  # partial_fit goes on with it
        batch = self._batch_size
        with thread_limits(resolve_n_threads(self.n_threads)):
            # Drawn even for one start, which has nothing to be compared with and leaves
            # them unscored: the random stream after them is the same either way.
            valid_rows = rng.integers(0, n, self._init_size)
            if self._n_init_runs == 1:
                best = self._init_centers(X, weights, rng)
            else:
                valid = self._rows(X, valid_rows)
                valid_w = np.ones(valid.shape[0])
                best, best_inertia = None, np.inf
                for _ in range(self._n_init_runs):
                    centers = self._init_centers(X, weights, rng)
                    labels, sq = np.empty(valid.shape[0], np.int64), np.empty(valid.shape[0])
                    scorer = ExactAssigner()
                    scorer.prepare(centers)
                    scorer.assign(valid.astype(centers.dtype, copy=False), None, labels, sq)
                    inertia = float(np.dot(sq, valid_w))
                    if best is None or inertia < best_inertia:
                        best, best_inertia = centers, inertia
            self.cluster_centers_ = np.array(best, copy=True)
            tol_abs = self._absolute_tol(X) if self.tol > 0 else 0.0
            p = None if weights is None else weights / weights.sum()
            ones = np.ones(batch)
            n_steps = (self.max_iter * n) // batch
            ewa, ewa_min, no_improvement = None, None, 0
            self.history_ = []
            start = self._started = time.perf_counter()
            step = 0
            for step in range(n_steps):
                rows = rng.integers(0, n, batch) if p is None else rng.choice(n, batch, p=p)
                x = self._rows(X, rows).astype(self.cluster_centers_.dtype, copy=False)
                before = self.cluster_centers_.copy() if tol_abs > 0 else None
                batch_inertia = self._step(x, ones, rng, self._random_reassign()) / batch
                self.history_.append((time.perf_counter() - start, batch_inertia * self._scale))
                if step == 0:
                    continue
                alpha = min(1.0, batch * 2.0 / (n + 1))
                ewa = batch_inertia if ewa is None else ewa * (1 - alpha) + batch_inertia * alpha
                if tol_abs > 0 and float(np.sum((self.cluster_centers_ - before) ** 2)) <= tol_abs:
                    break
                if ewa_min is None or ewa < ewa_min:
                    no_improvement, ewa_min = 0, ewa
                else:
                    no_improvement += 1
                if self.max_no_improvement is not None and no_improvement >= self.max_no_improvement:
                    break
            self.n_steps_ = step + 1 if n_steps else 0
            self.n_iter_ = int(np.ceil(self.n_steps_ * batch / n))
            self.n_features_in_ = d
            if self.compute_labels:
                self._full_pass(X, sample_weight)
            else:
                total = n if weights is None else float(weights.sum())
                self.inertia_ = (ewa if ewa is not None else 0.0) * total * self._scale
        return self

    @property
    def _scale(self):
        return 0.5 if self._metric == "cosine" else 1.0  # |x - c|^2 = 2 (1 - cos) on the sphere

    def _absolute_tol(self, X):
        """``tol`` times the mean per-feature variance of the data the steps see."""
        first = np.zeros(X.shape[1])
        second = np.zeros(X.shape[1])
        step = 65536
        for start in range(0, X.shape[0], step):
            x = self._rows(X, slice(start, start + step)).astype(np.float64)
            first += x.sum(axis=0)
            second += (x * x).sum(axis=0)
        mean = first / X.shape[0]
        return float(np.mean(np.maximum(second / X.shape[0] - mean * mean, 0.0))) * self.tol

    def _full_pass(self, X, sample_weight):
        """Exact ``labels_`` and ``inertia_`` of all of ``X``, block by block."""
        ex = local_executor(X, sample_weight, None, self._metric == "cosine")
        states, total = predict(ex, self.cluster_centers_)
        self.labels_ = ex.labels(states).astype(np.int32)
        self.inertia_ = total * self._scale

    def partial_fit(self, X, y=None, sample_weight=None):
        """One mini-batch step on all rows of ``X`` (the first call also initialises).

        Calls on consecutive blocks of a stream, e.g. from
        :func:`ivfpq.io.iter_vector_blocks`, give the same model as the same calls on
        the same blocks in memory.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
        y : ignored
        sample_weight : array-like of shape (n_rows,), optional
            Weight of each row in the update.

        Returns
        -------
        self
        """
        first = not hasattr(self, "cluster_centers_")
        X = self._check_X(X, reset=first)
        n = X.shape[0]
        weights = np.ones(n) if sample_weight is None else check_sample_weight(sample_weight, n)
        with thread_limits(resolve_n_threads(self.n_threads)):
            if first:
                self._setup(X, stacklevel=2)
                self._rng = check_random_state(self.random_state)
                self.cluster_centers_ = np.array(self._init_centers(X, weights, self._rng), copy=True)
                self.n_features_in_ = X.shape[1]
                self.n_steps_ = 0
                self.history_ = []
                self._started = time.perf_counter()
            x = self._rows(X, slice(None)).astype(self.cluster_centers_.dtype, copy=False)
            inertia = self._step(x, weights, self._rng, self._random_reassign())
            self.history_.append((time.perf_counter() - self._started, inertia / n * self._scale))
            self.n_steps_ += 1
            if self.compute_labels:
                self._full_pass(X, sample_weight)
        return self
