"""k-means: the Lloyd loop, the ``kmeans`` function and the ``KMeans`` estimator.

The loop does not know how points find their centroid; it asks an assigner
(:mod:`ivfpq.cluster.assign`). It owns everything else: the update step, empty
clusters, convergence, timing history and progress.
"""

from __future__ import annotations

import inspect
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .._storage import Persistable, register_format
from .._validation import (
    check_array,
    check_choice,
    check_is_fitted,
    check_n_features,
    check_positive_float,
    check_positive_int,
    check_random_state,
    check_sample_weight,
)
from .._threads import resolve_n_threads, thread_limits
from ..kernels.distances import exact_sq_distances, sq_norms
from ..kernels.lloyd import cluster_sums, move_points, updated_centers, weighted_sq_norm_total
from .assign import ExactAssigner, GraphAssigner
from .init import kmeans_plusplus, random_init

__all__ = ["kmeans", "KMeans", "lloyd", "LloydResult"]

ALGORITHMS = ("lloyd", "mop", "auto")
INITS = ("k-means++", "random", "k-means||")
METRICS = ("sqeuclidean", "cosine")
COLD_STARTS = ("auto", "two-level", "graph")


# ----------------------------------------------------------------------------- the loop


@dataclass
class LloydResult:
    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    history: list = field(default_factory=list)
    changed_fraction: list = field(default_factory=list)


def _normalize_rows(A):
    norms = np.sqrt(sq_norms(A).astype(np.float64))
    out = A.copy()
    nonzero = norms > 0
    out[nonzero] /= norms[nonzero, None].astype(A.dtype)
    return out


def cost_from_sums(weighted_sq_norm_total, sums, counts, centers):
    """Exact weighted cost of a labelling against ``centers``, from its cluster sums.

    sum_i w_i |x_i - c_l(i)|^2 = sum_i w_i |x_i|^2 - 2 sum_c c.S_c + sum_c W_c |c|^2,
    all in float64: one O(k d) step instead of a pass over the points.
    """
    C = centers.astype(np.float64, copy=False)
    cost = weighted_sq_norm_total - 2.0 * np.einsum("ij,ij->", C, sums) + float(counts @ np.einsum("ij,ij->i", C, C))
    return max(cost, 0.0)


def _relocate_empty_clusters(X, weights, labels, sq_dists, sums, counts):
    """Give each empty cluster one of the points farthest from their centroid.

    The point leaves its old cluster's sum and count. Only points with positive
    weight are moved, farthest first, ties by row order, so the result is deterministic.
    Returns the rows moved.
    """
    empty = np.flatnonzero(counts == 0)
    if empty.size == 0:
        return np.empty(0, dtype=np.int64)
    candidates = np.flatnonzero(weights > 0)
    if candidates.size > 4 * empty.size:  # only the farthest few are needed, not a full sort
        keep = np.argpartition(-sq_dists[candidates], empty.size - 1)[:empty.size]
        threshold = sq_dists[candidates[keep]].min()
        candidates = candidates[sq_dists[candidates] >= threshold]
    order = candidates[np.argsort(-sq_dists[candidates], kind="stable")]
    moved = order[:empty.size]
    empty = empty[:moved.size]
    old = labels[moved]
    w = weights[moved]
    points = w[:, None] * X[moved].astype(np.float64)
    # Rows are distinct and every receiving cluster was empty, so one vectorised step
    # does what a loop over the pairs would, in the same order (``ufunc.at`` applies
    # repeated indices in turn).
    np.subtract.at(sums, old, points)
    np.subtract.at(counts, old, w)
    sums[empty] = points
    counts[empty] = w
    labels[moved] = empty
    sq_dists[moved] = 0.0
    return moved.astype(np.int64, copy=False)


# Relative inertia decrease per iteration under which an approximate assigner is asked
# to search wider. Measured on GloVe (200k x 50, k=10,000): the beam of 8 settles near
# 1.004 of exact Lloyd's 10-iteration cost with gains falling below 1e-4 per
# iteration, while exact Lloyd goes on to 0.997; doubled there it keeps gaining.
WIDEN_BELOW = 1e-4


def lloyd(
    X,
    weights,
    centers,
    assigner,
    max_iter,
    tol=0.0,
    *,
    spherical=False,
    stop_when_allclose=False,
    callback=None,
):
    """Lloyd iterations from ``centers``; inputs must already be validated.

    Each iteration assigns every point with ``assigner`` and moves each centroid to
    the weighted mean of its points. ``history`` gets one ``(seconds, inertia)``
    pair per iteration: the time since the call began and the inertia of that
    iteration's assignment (its cost against the centroids it was made with).
    Stops when no label changes, when the squared centroid shift is at most ``tol`` (or,
    with ``stop_when_allclose``, when the centroids are ``allclose`` to the previous
    ones), or after ``max_iter`` iterations. An assigner with a ``widen()`` method (the
    graph search) is asked to search wider before either of the first two stops (the
    run stops there only when it cannot), and whenever an iteration lowers the inertia
    by less than ``WIDEN_BELOW`` of it. The returned labels and inertia belong to the
    returned centers.
    """
    start = time.perf_counter()
    n, k = X.shape[0], centers.shape[0]
    centers = np.ascontiguousarray(centers, dtype=X.dtype)
    labels = np.full(n, -1, dtype=np.int64)
    new_labels = np.empty(n, dtype=np.int64)
    sq_dists = np.empty(n, dtype=np.float64)
    sq_norm_total = weighted_sq_norm_total(X, weights)
    state = assigner.new_state(n)
    history, changed_fraction = [], []
    labels_match_centers = False
    n_iter = 0
    # With unit weights the sums follow the points that moved (a few percent late in a
    # run) instead of a full pass; ``sums`` always matches ``labels``.
    unit_weights = bool(np.all(weights == 1.0))
    sums = counts = None
    widen = getattr(assigner, "widen", lambda: False)
    previous_inertia = np.inf

    def sums_for(new, old):
        if unit_weights and sums is not None:
            return move_points(X, old, new, sums, counts)
        return cluster_sums(X, new, weights, k)

    for iteration in range(max_iter):
        assigner.prepare(centers)
        assigner.assign(X, state, new_labels, sq_dists)
        changed = int(np.count_nonzero(new_labels != labels))
        labels, new_labels = new_labels, labels
        if changed == 0:  # strict convergence: the update would not move anything
            if widen():  # ... unless a wider search finds something: look again
                continue
            labels_match_centers = True
            break
        n_iter += 1

        sums, counts = sums_for(labels, new_labels)
        inertia = cost_from_sums(sq_norm_total, sums, counts, centers)
        moved = _relocate_empty_clusters(X, weights, labels, sq_dists, sums, counts)
        if moved.size and hasattr(assigner, "relabel"):  # assigners that remember labels
            assigner.relabel(state, moved, labels[moved])
        updated, shift = updated_centers(centers, sums, counts, spherical)
        converged = np.allclose(updated, centers) if stop_when_allclose else shift <= tol
        centers = updated

        history.append((time.perf_counter() - start, inertia))
        changed_fraction.append(changed / n)
        if callback is not None:
            callback(n_iter, inertia, changed / n)
        if converged and not widen():
            break
        if not converged and previous_inertia - inertia < WIDEN_BELOW * inertia:
            widen()  # an approximate search that has all but stalled looks further
        previous_inertia = inertia

    if not labels_match_centers:
        assigner.prepare(centers)
        assigner.assign(X, state, new_labels, sq_dists)
        labels, new_labels = new_labels, labels
    sums, counts = sums_for(labels, new_labels)
    inertia = cost_from_sums(sq_norm_total, sums, counts, centers)
    return LloydResult(centers, labels, inertia, n_iter, history, changed_fraction)


# ----------------------------------------------------------------------------- kmeans()


def kmeans(X, k, iters=25, seed=0):
    """Cluster ``X`` into ``k`` groups with Lloyd's algorithm.

    Starts from ``k`` distinct rows chosen by
    ``numpy.random.default_rng(seed).choice(n, size=k, replace=False)`` and works in
    float64. Stops when the centroids stop moving (``numpy.allclose``) or after
    ``iters`` iterations. ``k`` larger than the number of rows is clipped to it.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    k : int
        Number of clusters.
    iters : int, default=25
        Maximum number of Lloyd iterations.
    seed : int or None, default=0
        Seed of the initial choice of rows.

    Returns
    -------
    centroids : ndarray of shape (k, n_features), float64
    assignments : ndarray of shape (n_samples,), int64
        Index of the nearest centroid of each row.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq import kmeans
    >>> X = [[0, 0], [0.2, 0.1], [0.1, 0.2], [5, 5], [5.1, 4.9], [4.9, 5.1]]
    >>> centroids, assignments = kmeans(X, k=2, seed=0)
    >>> np.round(centroids, 2).tolist(), assignments.tolist()
    ([[5.0, 5.0], [0.1, 0.1]], [1, 1, 1, 0, 0, 0])
    """
    X = check_array(X, "X", dtype="float64")
    k = min(check_positive_int(k, "k"), X.shape[0])
    iters = check_positive_int(iters, "iters", minimum=0)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, got {seed!r} ({type(seed).__name__})")
    rows = np.random.default_rng(seed).choice(X.shape[0], size=k, replace=False)
    result = lloyd(
        X, np.ones(X.shape[0]), X[rows].copy(), ExactAssigner(), iters, stop_when_allclose=True
    )
    return result.centers, result.labels


# ----------------------------------------------------------------------------- auto


# Measured with ``benchmarks/kmeans_large_k.py --crossover --n 50000`` (5 iterations
# from the same init, median of 3, quiet 2-core machine, 2026-11-23): exact / mop time
# was 1.1 at k=2,000 and 3.3 at k=4,000 for d=128, but 0.6-0.8 at k=2,000 and 1.1-1.3
# at k=4,000 for d=16 and d=50 (exact Lloyd is cheap per distance at small d, a graph
# search is not). Below ~20,000 points the graph build, which costs about as much as
# tens of assignments per centroid, is not paid back.
MOP_MIN_CLUSTERS = 2000
MOP_MIN_CLUSTERS_NARROW = 4000  # below MOP_WIDE_FEATURES features
MOP_WIDE_FEATURES = 100
MOP_MIN_SAMPLES = 20_000


def choose_algorithm(n_samples, n_clusters, n_features):
    """"lloyd" or "mop": the faster one for this shape, by the measured crossover.

    "mop" from ``MOP_MIN_SAMPLES`` samples and ``MOP_MIN_CLUSTERS`` clusters on (from
    ``MOP_MIN_CLUSTERS_NARROW`` below ``MOP_WIDE_FEATURES`` features).

    Examples
    --------
    >>> choose_algorithm(1_000_000, 10_000, 128), choose_algorithm(100_000, 256, 128)
    ('mop', 'lloyd')
    >>> choose_algorithm(100_000, 3000, 128), choose_algorithm(100_000, 3000, 50)
    ('mop', 'lloyd')
    """
    min_clusters = MOP_MIN_CLUSTERS if n_features >= MOP_WIDE_FEATURES else MOP_MIN_CLUSTERS_NARROW
    if n_clusters >= min_clusters and n_samples >= MOP_MIN_SAMPLES:
        return "mop"
    return "lloyd"


# ----------------------------------------------------------------------------- KMeans


class _ParamsMixin:
    """get_params / set_params / repr as scikit-learn defines them, without importing it."""

    @classmethod
    def _param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values() if p.name != "self")

    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; valid parameters: {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = []
        for name in self._param_names():
            value = getattr(self, name)
            default = defaults.get(name, inspect.Parameter.empty)
            same = value is default or (
                not isinstance(value, np.ndarray) and not isinstance(default, np.ndarray)
                and value == default
            )
            if not same:
                shown = f"array{value.shape}" if isinstance(value, np.ndarray) else repr(value)
                changed.append(f"{name}={shown}")
        return f"{type(self).__name__}({', '.join(changed)})"


@register_format("kmeans", version=1)
class KMeans(_ParamsMixin, Persistable):
    """k-means clustering, compatible with scikit-learn.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {"k-means++", "random", "k-means||"} or array of shape (n_clusters, n_features), \
            default="k-means++"
        "k-means++" is the greedy variant scikit-learn uses; "random" picks distinct rows;
        "k-means||" is the scalable k-means++ of Bahmani et al. (a few passes over the
        data, then weighted k-means++ on about ``10 * n_clusters`` candidates). On a
        Dask array or an ``np.memmap`` "k-means++" runs as "k-means||".
    n_init : int or "auto", default="auto"
        Independent runs from different initialisations; the lowest inertia wins.
        "auto" means 1 for "k-means++" or an array, 10 for "random".
    max_iter : int, default=300
        Maximum Lloyd iterations per run.
    tol : float, default=1e-4
        Stop when the summed squared centroid shift is at most ``tol`` times the
        mean per-feature variance of ``X`` (as scikit-learn).
    algorithm : {"lloyd", "mop", "auto"}, default="lloyd"
        How points find their centroid: "lloyd" compares with every centroid
        (BLAS blocks, cost n*k*d per iteration); "mop" (MOPBucket) searches an HNSW
        graph over the centroids, seeded with each point's previous centroids (cost
        about n*ef_search*2M*d, less once most points stay put; the objective still
        never rises); "auto" picks "mop" where it was measured to be faster (see
        ``algorithm_``). How mop starts, skips settled points and widens its search
        before stopping is described in :class:`ivfpq.cluster.assign.GraphAssigner`.
    metric : {"sqeuclidean", "cosine"}, default="sqeuclidean"
        "cosine" runs spherical k-means: rows are L2-normalised and centroids kept at
        unit norm; ``inertia_`` is then the sum of cosine distances ``1 - cos``.
    random_state : int, Generator, RandomState or None, default=None
        Makes initialisation, and so the whole fit, reproducible.
    verbose : bool, default=False
        Show a progress bar with the inertia and the fraction of points that moved.
    n_threads : int or None, default=None
        Threads for the kernels and BLAS; None uses every core. Results do not
        depend on it.
    M : int, default=16
        "mop" only: graph degree (``2*M`` neighbours on the bottom layer).
    ef_construction : int, default=40
        "mop" only: beam width when the centroid graph is built or repaired.
    ef_search : int, default=8
        "mop" only: beam width of each point's search.
    additional_centroids : int, default=3
        "mop" only: runners-up remembered per point (memory ``n*(1+additional_centroids)``
        int32) and used, with the previous centroid, as seeds of the next search.
    min_iterations : int, default=2
        "mop" only: node expansions each search makes at least.
    bulk_size : int, default=2048
        "mop" only: points per bulk; within a bulk, queries are sorted so that each
        one starts near the previous one.
    cold_start : {"auto", "two-level", "graph"}, default="auto"
        "mop" only: how the first assignment, which has no previous centroids to
        seed from, is made. "two-level" groups the centroids by a short k-means and
        scores each point against the centroids of its nearest group with BLAS (fast
        and accurate when the data's clusters are coarser than the centroids);
        "graph" searches the graph from its upper layers (beam ``2*ef_search``);
        "auto" uses "two-level" where it finds the exact nearest centroid for 95% of
        a sample of 2,000 rows, else "graph".
    cold_nprobe : int, default=1
        "mop" only, with ``cold_start="two-level"``: groups of centroids each point
        is scored against (its nearest group and the groups nearest to that one).
    max_ef_search : int or None, default=None
        "mop" only: where the run would stop (no label changed, or the centroids
        stopped moving), the beam is doubled, up to this width, and the run goes on
        while a wider search still moves points. None means ``4 * ef_search``; set
        it to ``ef_search`` to stop at the first standstill.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,), int64
    inertia_ : float
        Sum of weighted squared distances of the samples to their centroid: the
        true cost of ``labels_`` against ``cluster_centers_``.
    n_iter_ : int
    n_features_in_ : int
    algorithm_ : str
        The algorithm used: ``algorithm``, or what "auto" chose.
    history_ : list of (float, float)
        One ``(seconds_since_fit_start, inertia)`` pair per iteration of the best run.
    changed_fraction_ : list of float
        Fraction of points whose cluster changed, per iteration of the best run.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq import KMeans
    >>> X = np.array([[0, 0], [0.2, 0.1], [0.1, 0.2], [5, 5], [5.1, 4.9], [4.9, 5.1]])
    >>> model = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(np.round(model.cluster_centers_, 2).tolist())
    [[0.1, 0.1], [5.0, 5.0]]
    >>> model.predict([[0.3, 0.0]]) == model.labels_[0]
    array([ True])
    """

    _algorithms = ALGORITHMS

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        n_init="auto",
        max_iter=300,
        tol=1e-4,
        algorithm="lloyd",
        metric="sqeuclidean",
        random_state=None,
        verbose=False,
        n_threads=None,
        M=16,
        ef_construction=40,
        ef_search=8,
        additional_centroids=3,
        min_iterations=2,
        bulk_size=2048,
        cold_start="auto",
        cold_nprobe=1,
        max_ef_search=None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.algorithm = algorithm
        self.metric = metric
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.additional_centroids = additional_centroids
        self.min_iterations = min_iterations
        self.bulk_size = bulk_size
        self.cold_start = cold_start
        self.cold_nprobe = cold_nprobe
        self.max_ef_search = max_ef_search

    # -- scikit-learn protocol -------------------------------------------------------

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags, TransformerTags

        tags = Tags(
            estimator_type="clusterer",
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
        )
        tags.input_tags.sparse = False
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "cluster_centers_")

    # -- parameters ------------------------------------------------------------------

    def _check_params(self, X):
        n_samples, n_features = X.shape
        n_clusters = check_positive_int(self.n_clusters, "n_clusters")
        if n_samples < n_clusters:
            raise ValueError(
                f"n_samples={n_samples} should be >= n_clusters={n_clusters}: "
                "X has fewer samples than clusters"
            )
        check_choice(self.algorithm, "algorithm", self._algorithms)
        check_choice(self.metric, "metric", METRICS)
        max_iter = check_positive_int(self.max_iter, "max_iter")
        tol = check_positive_float(self.tol, "tol", allow_zero=True)
        if isinstance(self.init, str):
            check_choice(self.init, "init", INITS)
            init = self.init
        else:
            init = check_array(self.init, "init", dtype=str(X.dtype))
            if init.shape != (n_clusters, n_features):
                raise ValueError(
                    f"init array must have shape (n_clusters, n_features) = "
                    f"({n_clusters}, {n_features}), got {init.shape}"
                )
        if isinstance(self.n_init, str):
            check_choice(self.n_init, "n_init", ("auto",))
            n_init = 10 if isinstance(init, str) and init == "random" else 1
        else:
            n_init = check_positive_int(self.n_init, "n_init")
            if not isinstance(init, str):
                n_init = 1  # the given centroids are one start; more runs would repeat it
        if not isinstance(self.verbose, (bool, np.bool_, int)):
            raise TypeError(f"verbose must be a bool, got {self.verbose!r}")
        n_threads = resolve_n_threads(self.n_threads)
        check_positive_int(self.M, "M", minimum=2)
        check_positive_int(self.ef_construction, "ef_construction")
        check_positive_int(self.ef_search, "ef_search")
        check_positive_int(self.additional_centroids, "additional_centroids", minimum=0)
        check_positive_int(self.min_iterations, "min_iterations", minimum=0)
        check_positive_int(self.bulk_size, "bulk_size")
        check_choice(self.cold_start, "cold_start", COLD_STARTS)
        check_positive_int(self.cold_nprobe, "cold_nprobe")
        if self.max_ef_search is not None:
            check_positive_int(self.max_ef_search, "max_ef_search")
        return n_clusters, init, n_init, max_iter, tol, n_threads

    def _prepare_X(self, X, name="X", reset=True):
        X = check_array(X, name)
        if not reset:
            check_n_features(X, self.n_features_in_, name, type(self).__name__)
        if self.metric == "cosine":
            norms = sq_norms(X)
            if (norms == 0).any():
                raise ValueError(
                    f"{name} has {int((norms == 0).sum())} rows of zero norm; the cosine "
                    "metric needs every row to have a direction"
                )
            X = _normalize_rows(X)
        return X

    def _make_assigner(self, X, n_clusters, rng=None):
        """The assigner for this fit's algorithm (subclasses and later algorithms extend)."""
        algorithm = getattr(self, "algorithm_", self.algorithm)
        if algorithm == "auto":
            algorithm = choose_algorithm(X.shape[0], n_clusters, X.shape[1])
        if algorithm == "mop":
            seed = 0 if rng is None else int(rng.integers(2**31 - 1))
            return GraphAssigner(
                M=self.M, ef_construction=self.ef_construction, ef_search=self.ef_search,
                additional_centroids=self.additional_centroids,
                min_iterations=self.min_iterations, bulk_size=self.bulk_size, seed=seed,
                cold_start=self.cold_start, cold_nprobe=self.cold_nprobe,
                max_ef_search=self.max_ef_search,
            )
        return ExactAssigner()

    def _initial_centers(self, X, init, n_clusters, weights, rng):
        if isinstance(init, str) and init == "random":
            centers = random_init(X, n_clusters, rng, weights)
        elif isinstance(init, str) and init == "k-means||":
            from .blocked import kmeans_parallel, local_executor

            executor = local_executor(X, weights, None, cosine=False)
            centers = kmeans_parallel(executor, executor.validate()[0], n_clusters, rng)
        elif isinstance(init, str):
            centers = kmeans_plusplus(X, n_clusters, rng, weights)
        else:
            centers = init.astype(X.dtype, copy=True)
        if self.metric == "cosine":
            centers = _normalize_rows(centers)
        return centers

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None, *, block_rows=None):
        """Compute the clustering.

        Parameters
        ----------
        X : array-like, np.memmap or dask.array.Array of shape (n_samples, n_features)
            A Dask array (rows in chunks) is clustered on the Dask cluster of the
            current ``distributed.Client`` (or chunk by chunk in this process when
            there is none); ``labels_`` is then a Dask array. An ``np.memmap`` (e.g.
            ``np.load(path, mmap_mode="r")``) is read block by block and never held in
            memory whole. See :mod:`ivfpq.distributed`.
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each sample (a Dask array for Dask input works too).
        block_rows : int, optional
            Rows per block when reading a NumPy array block by block. Given, or for an
            ``np.memmap``, the blocked loop runs (default: about 64 MB of rows per block).
            Not for Dask arrays, whose row chunks are the blocks.

        Returns
        -------
        self
        """
        if _is_dask_array(X):
            from ..distributed import fit_dask  # Dask is optional: imported only for Dask input

            return self._store_fit(fit_dask(self, X, sample_weight, block_rows=block_rows), X.shape[1])
        if isinstance(X, np.memmap) or block_rows is not None:
            from .blocked import fit_blocks, local_executor

            if not isinstance(X, np.memmap):
                X = check_array(X, "X")  # in memory anyway: lists and the like become arrays

            executor = local_executor(X, sample_weight, block_rows, cosine=self.metric == "cosine")
            with thread_limits(resolve_n_threads(self.n_threads)):
                best = fit_blocks(self, executor, X)
            best.labels = executor.labels(best.states)
            return self._store_fit(best, X.shape[1])

        X = self._prepare_X(X)
        n_clusters, init, n_init, max_iter, tol, n_threads = self._check_params(X)
        weights = check_sample_weight(sample_weight, X.shape[0])
        tol_abs = float(np.mean(np.var(X, axis=0, dtype=np.float64))) * tol if tol > 0 else 0.0
        rng = check_random_state(self.random_state)
        self.algorithm_ = self.algorithm
        if self.algorithm == "auto":
            self.algorithm_ = choose_algorithm(X.shape[0], n_clusters, X.shape[1])

        best = None
        with thread_limits(n_threads):
            for run in range(n_init):
                centers = self._initial_centers(X, init, n_clusters, weights, rng)
                assigner = self._make_assigner(X, n_clusters, rng)
                with _progress(self.verbose, max_iter, run, n_init) as callback:
                    result = lloyd(
                        X, weights, centers, assigner, max_iter, tol_abs,
                        spherical=self.metric == "cosine", callback=callback,
                    )
                if best is None or result.inertia < best.inertia:
                    best = result

        return self._store_fit(best, X.shape[1])

    def _store_fit(self, best, n_features):
        """Set the fitted attributes from the best run (a LloydResult or BlockedResult)."""
        scale = 0.5 if self.metric == "cosine" else 1.0  # |x - c|^2 = 2 (1 - cos) on the sphere
        self.cluster_centers_ = best.centers
        self.labels_ = best.labels
        self.inertia_ = best.inertia * scale
        self.n_iter_ = best.n_iter
        self.history_ = [(seconds, inertia * scale) for seconds, inertia in best.history]
        self.changed_fraction_ = list(best.changed_fraction)
        self.n_features_in_ = n_features
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    # -- using a fitted model ----------------------------------------------------------

    def _assign(self, X):
        check_is_fitted(self, "cluster_centers_")
        X = self._prepare_X(X, reset=False)
        centers = self.cluster_centers_.astype(X.dtype, copy=False)
        centers = np.ascontiguousarray(centers)
        labels = np.empty(X.shape[0], dtype=np.int64)
        sq_dists = np.empty(X.shape[0], dtype=np.float64)
        with thread_limits(resolve_n_threads(self.n_threads)):
            assigner = ExactAssigner()
            assigner.prepare(centers)
            assigner.assign(X, None, labels, sq_dists)
            exact_sq_distances(X, centers, labels, sq_dists)
        return X, labels, sq_dists

    def predict(self, X):
        """Index of the nearest centroid of each row of ``X``.

        A Dask array gives a Dask array (computed lazily, chunk by chunk); an
        ``np.memmap`` is read block by block.
        """
        if _is_dask_array(X):
            from ..distributed import predict_dask

            return predict_dask(self, X)
        if isinstance(X, np.memmap):
            from .blocked import predict_blocks

            return predict_blocks(self, X)
        return self._assign(X)[1]

    def transform(self, X):
        """Distances from each row to every centroid, shape (n_samples, n_clusters).

        Euclidean distances, or cosine distances ``1 - cos`` with ``metric="cosine"``.
        """
        check_is_fitted(self, "cluster_centers_")
        X = self._prepare_X(X, reset=False)
        centers = self.cluster_centers_.astype(np.float64)
        sq = (
            sq_norms(X).astype(np.float64)[:, None]
            - 2.0 * (X.astype(np.float64) @ centers.T)
            + np.einsum("ij,ij->i", centers, centers)[None, :]
        )
        np.maximum(sq, 0.0, out=sq)
        out = 0.5 * sq if self.metric == "cosine" else np.sqrt(sq)
        return out.astype(X.dtype, copy=False)

    def fit_transform(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the inertia of ``X`` against the fitted centroids (higher is better)."""
        X, labels, sq_dists = self._assign(X)
        weights = check_sample_weight(sample_weight, X.shape[0])
        scale = 0.5 if self.metric == "cosine" else 1.0
        return -float(np.dot(weights, sq_dists)) * scale

    # -- persistence: save(path) comes from Persistable; ivfpq.load(path) reads it --------

    def _to_arrays(self):
        meta, arrays = {"params": {}, "array_params": []}, {}
        for name, value in self.get_params().items():
            if isinstance(value, np.ndarray):
                arrays["param_" + name] = value
                meta["array_params"].append(name)
            elif value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating)):
                meta["params"][name] = value
            else:  # e.g. a Generator as random_state: the fitted state is what is kept
                meta["params"][name] = None
        meta["fitted"] = hasattr(self, "cluster_centers_")
        if meta["fitted"]:
            meta.update(inertia=self.inertia_, n_iter=self.n_iter_, n_features_in=self.n_features_in_)
            arrays["cluster_centers"] = self.cluster_centers_
            arrays["labels"] = self.labels_
            arrays["history"] = np.asarray(self.history_, dtype=np.float64).reshape(-1, 2)
            arrays["changed_fraction"] = np.asarray(self.changed_fraction_, dtype=np.float64)
        return meta, arrays

    @classmethod
    def _from_arrays(cls, archive):
        known = set(cls._param_names())
        params = {k: v for k, v in archive.param("params").items() if k in known}
        for name in archive.param("array_params"):
            if name in known:
                params[name] = archive.array("param_" + name)
        model = cls(**params)
        if archive.param("fitted"):
            d = int(archive.param("n_features_in"))
            centers = archive.array("cluster_centers", ndim=2, shape=(None, d))
            if centers.dtype.kind != "f":
                raise ValueError(f"cluster_centers has dtype {centers.dtype}")
            model.cluster_centers_ = centers
            model.labels_ = archive.array("labels", dtype=np.int64, ndim=1)
            model.inertia_ = float(archive.param("inertia"))
            model.n_iter_ = int(archive.param("n_iter"))
            model.n_features_in_ = d
            model.history_ = [tuple(row) for row in archive.array("history", ndim=2).tolist()]
            model.changed_fraction_ = archive.array("changed_fraction", ndim=1).tolist()
        return model


def _is_dask_array(X):
    """True for a ``dask.array.Array``, without importing Dask."""
    return type(X).__name__ == "Array" and type(X).__module__.startswith("dask.array")


@contextmanager
def _progress(verbose, max_iter, run, n_init):
    """A tqdm bar fed by the loop's callback; nothing at all when not verbose."""
    if not verbose:
        yield None
        return
    from tqdm.auto import tqdm

    desc = "k-means" if n_init == 1 else f"k-means run {run + 1}/{n_init}"
    with tqdm(total=max_iter, desc=desc, unit="it", leave=False) as bar:

        def callback(iteration, inertia, changed):
            bar.set_postfix(inertia=f"{inertia:.6g}", changed=f"{changed:.2%}", refresh=False)
            bar.update(1)

        yield callback
