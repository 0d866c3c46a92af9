"""k-means: the ``kmeans`` function and the ``KMeans`` estimator.

Both run the one Lloyd loop of :mod:`ivfpq.cluster.lloyd` on an executor: the rows in
memory (:func:`ivfpq.cluster.executor.local_executor`), in blocks of an ``np.memmap``,
or on Dask workers (:mod:`ivfpq.cluster.dask_blocks`). Which executor holds the rows
never changes the result.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager

import numpy as np
from tqdm.auto import tqdm

from .._base import ClustererMixin, MetricMixin, ParamsMixin
from .._storage import Persistable, register_format
from .._threads import resolve_n_threads, thread_limits
from .._validation import (
    Interval,
    Metric,
    Options,
    check_array,
    check_feature_names,
    check_is_fitted,
    check_n_features,
    check_positive_int,
    check_random_state,
    validate_params,
    warn_convergence,
)
from ..kernels.distances import sq_norms
from . import dask_blocks
from .assign import ExactAssigner, GraphAssigner
from .executor import gather_rows, local_executor, normalize_rows
from .init import hierarchical_centers, kmeans_parallel, kmeans_plusplus, random_centers
from .checkpoint import Checkpoint, data_fingerprint, params_fingerprint
from .lloyd import LloydResult, _restored_block, lloyd, predict

__all__ = ["kmeans", "KMeans", "choose_algorithm"]

ALGORITHMS = ("lloyd", "mop", "auto")
#: scikit-learn's other exact algorithm: accepted, and run as "lloyd" (same result).
ELKAN = "elkan"
INITS = ("auto", "k-means++", "random", "k-means||", "hierarchical")
#: ``init="auto"`` is greedy "k-means++" below this many clusters, "hierarchical" from it
#: on: greedy k-means++ makes two passes over the data per centroid, and from about a
#: thousand clusters it costs more than the whole fit after it (benchmarks/README.md,
#: "kmeans_init.py"; the code constants table).
HIERARCHICAL_FROM = 1000
COLD_STARTS = ("auto", "two-level", "exact", "graph")


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
    ex = local_executor(X, None, None, cosine=False)
    blocks, stats = ex.validate()
    result = lloyd(ex, blocks, stats, X[rows].copy(), ExactAssigner(), iters, stop_when_allclose=True)
    return result.centers, ex.labels(result.states)


# ----------------------------------------------------------------------------- auto


# The crossover measured by ``benchmarks/kmeans_large_k.py`` (``--crossover`` at d = 16,
# 50 and 128, and the suite at k = 1,000 at d = 384 and 784; tables in
# benchmarks/README.md). Exact Lloyd costs ``k * d`` per point; a seeded graph search
# costs a fixed part per point beyond its distances, which large ``d`` hides. Over
# d = 50 to 784 the measured crossover falls about as 1 / d (k of about 8,000 at d = 50,
# 3,000 at d = 128, 1,000 at d = 384, below 1,000 at d = 784), hence one bound on
# ``k * d``. Below some tens of thousands of points the graph build is not paid back.
MOP_MIN_CLUSTERS_TIMES_FEATURES = 400_000
MOP_MIN_SAMPLES = 20_000


def choose_algorithm(n_samples, n_clusters, n_features):
    """"lloyd" or "mop": the faster one for this shape, by the measured crossover.

    "mop" from ``MOP_MIN_SAMPLES`` samples on, where ``n_clusters * n_features`` is at
    least ``MOP_MIN_CLUSTERS_TIMES_FEATURES``.

    Examples
    --------
    >>> choose_algorithm(1_000_000, 10_000, 128), choose_algorithm(100_000, 256, 128)
    ('mop', 'lloyd')
    >>> choose_algorithm(100_000, 5000, 128), choose_algorithm(100_000, 5000, 50)
    ('mop', 'lloyd')
    >>> choose_algorithm(60_000, 1000, 784)
    'mop'
    """
    if n_clusters * n_features >= MOP_MIN_CLUSTERS_TIMES_FEATURES and n_samples >= MOP_MIN_SAMPLES:
        return "mop"
    return "lloyd"


# ----------------------------------------------------------------------------- shared


def check_centers(centers, n_clusters, n_features, dtype, what):
    """Initial centroids given by the user (``what`` says how), checked: shape
    (n_clusters, n_features), finite, in ``dtype``."""
    centers = check_array(centers, what, dtype=str(np.dtype(dtype)))
    if centers.shape != (n_clusters, n_features):
        raise ValueError(
            f"{what} must have shape (n_clusters, n_features) = ({n_clusters}, {n_features}), "
            f"got {centers.shape}"
        )
    return centers


def _data_for_callable(ex, X):
    """What a callable ``init`` receives: the rows as the fit sees them when they are in
    memory (float, unit rows for the cosine metric); a memory-map or Dask array as given."""
    if isinstance(X, np.memmap) or dask_blocks.is_dask_array(X):
        return X
    return gather_rows(ex, ex.validate()[0], np.arange(ex.n_rows))


class _BaseKMeans(ClustererMixin, MetricMixin, ParamsMixin):
    """What KMeans and MiniBatchKMeans share: the initial centroids, the executor of a
    fit, prediction, distances and scores, scikit-learn's warnings."""

    _metrics = ("l2", "cosine")

    def _n_init(self, default_n_init, stacklevel):
        """Runs to make: ``n_init``, with "auto" and explicit centroids as scikit-learn reads them."""
        init = self.init
        if self.n_init == "auto":
            repeated = callable(init) or (isinstance(init, str) and init == "random")
            n_init = default_n_init if repeated else 1
        else:
            n_init = self.n_init
        if not isinstance(init, str) and not callable(init) and n_init != 1:
            warnings.warn(
                "Explicit initial center position passed: performing only one init in "
                f"{type(self).__name__} instead of n_init={n_init}.",
                RuntimeWarning, stacklevel=stacklevel + 1,
            )
            n_init = 1
        return n_init

    def _check_init(self, n_clusters, n_features, dtype):
        """``init`` with an array checked against the data's shape."""
        if isinstance(self.init, str) or callable(self.init):
            return self.init
        return check_centers(self.init, n_clusters, n_features, dtype, "init array")

    @staticmethod
    def _resolved_init(init, n_clusters):
        """The start that the string ``init`` names: "auto" is "k-means++" below
        ``HIERARCHICAL_FROM`` clusters and "hierarchical" from there on."""
        if init == "auto":
            return "hierarchical" if n_clusters >= HIERARCHICAL_FROM else "k-means++"
        return init

    def _initial_centers(self, ex, blocks, stats, init, n_clusters, rng, X=None):
        if isinstance(init, str):
            init = self._resolved_init(init, n_clusters)
            if init == "random":
                return random_centers(ex, blocks, n_clusters, rng)
            if init == "k-means||":
                return kmeans_parallel(ex, blocks, stats, n_clusters, rng)
            if init == "hierarchical":
                return hierarchical_centers(ex, blocks, n_clusters, rng, spherical=self._metric == "cosine")
            return kmeans_plusplus(ex, blocks, stats, n_clusters, rng)
        if callable(init):
            # A RandomState, as scikit-learn passes, drawn from this fit's generator.
            random_state = np.random.RandomState(int(rng.integers(2**32 - 1)))
            centers = init(_data_for_callable(ex, X), n_clusters, random_state=random_state)
            centers = check_centers(centers, n_clusters, ex.n_features, ex.dtype, "the array init returned")
        else:
            centers = init
        centers = centers.astype(ex.dtype, copy=True)
        return normalize_rows(centers) if self._metric == "cosine" else centers

    def _executor(self, X, sample_weight, block_rows):
        """Where the rows live: Dask workers, blocks of a memory-map, or memory."""
        cosine = self._metric == "cosine"
        if dask_blocks.is_dask_array(X):
            return dask_blocks.dask_executor(X, sample_weight, block_rows, cosine, self.n_threads)
        if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf" or X.ndim != 2:
            X = check_array(X, "X")  # lists and the like become arrays, checked once
        return local_executor(X, sample_weight, block_rows, cosine)

    def _warn_if_fewer_clusters(self, labels, n_clusters):
        """scikit-learn's ConvergenceWarning when the labels use fewer than ``n_clusters`` clusters."""
        if dask_blocks.is_dask_array(labels):
            import dask.array as da

            distinct = len(da.unique(labels).compute())
        else:
            distinct = len(np.unique(labels))
        if distinct < n_clusters:
            warn_convergence(
                f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
                f"({n_clusters}). Possibly due to duplicate points in X.", stacklevel=3)

    # -- using a fitted model ----------------------------------------------------------

    def _assign(self, X, sample_weight=None):
        """(labels, weighted total of squared distances) of ``X`` against the centroids."""
        check_is_fitted(self, "cluster_centers_")
        check_feature_names(self, X, reset=False)
        ex = self._executor(X, sample_weight, None)
        if ex.n_features != self.n_features_in_:
            check_n_features(X, self.n_features_in_, "X", type(self).__name__)
        with thread_limits(resolve_n_threads(self.n_threads)):
            states, total = predict(ex, self.cluster_centers_)
        return ex.labels(states).astype(np.int32), total

    def predict(self, X):
        """Index of the nearest centroid of each row of ``X`` (int32, as scikit-learn's).

        A Dask array gives a Dask array (computed chunk by chunk); an ``np.memmap``
        is read block by block.
        """
        return self._assign(X)[0]

    def _transform(self, X):
        """Distances from each row to every centroid, shape (n_samples, n_clusters).

        Euclidean distances, or cosine distances ``1 - cos`` with ``metric="cosine"``.
        """
        check_is_fitted(self, "cluster_centers_")
        check_feature_names(self, X, reset=False)
        X = check_array(X, "X")
        check_n_features(X, self.n_features_in_, "X", type(self).__name__)
        if self._metric == "cosine":
            X = normalize_rows(X)
        centers = self.cluster_centers_.astype(np.float64)
        sq = (
            sq_norms(X).astype(np.float64)[:, None]
            - 2.0 * (X.astype(np.float64) @ centers.T)
            + np.einsum("ij,ij->i", centers, centers)[None, :]
        )
        np.maximum(sq, 0.0, out=sq)
        out = 0.5 * sq if self._metric == "cosine" else np.sqrt(sq)
        return out.astype(X.dtype, copy=False)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the inertia of ``X`` against the fitted centroids (higher is better)."""
        scale = 0.5 if self._metric == "cosine" else 1.0
        return -self._assign(X, sample_weight)[1] * scale


# ----------------------------------------------------------------------------- KMeans


@register_format("kmeans", version=1)
class KMeans(_BaseKMeans, Persistable):
    """k-means clustering, compatible with scikit-learn.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {"auto", "k-means++", "random", "k-means||", "hierarchical"}, callable or \
            array of shape (n_clusters, n_features), default="auto"
        "k-means++" is the greedy variant scikit-learn uses; "random" picks distinct rows;
        "k-means||" is the scalable k-means++ of Bahmani et al. (7 passes over the
        data, then weighted k-means++ on about ``10 * n_clusters`` candidates);
        "hierarchical" reads a sample of about ``32 * n_clusters`` rows once, clusters it
        into about ``sqrt(n_clusters)`` groups and each group into its share of the
        centroids (a few Lloyd iterations at each level). "auto" is "k-means++" below
        1,000 clusters and "hierarchical" from there on, where greedy k-means++ (two
        passes over the data per centroid) would cost more than the fit after it.
        Each gives the same centroids wherever the rows are.
        A callable is called as ``init(X, n_clusters, random_state=random_state)``, with
        a ``numpy.random.RandomState`` drawn from ``random_state``, and returns the
        (n_clusters, n_features) centroids. For rows in memory it gets them as an
        array (float; unit rows with ``metric="cosine"``); an ``np.memmap`` or a Dask
        array is passed as given. ``sample_weight`` plays no part in a callable or
        array ``init`` (as in scikit-learn).
    n_init : int or "auto", default="auto"
        Independent runs from different initialisations; the lowest inertia wins.
        "auto" means 10 for "random" or a callable, else 1. With an array, only one
        run is made (a ``RuntimeWarning`` says so when ``n_init`` asks for more).
    max_iter : int, default=300
        Maximum Lloyd iterations per run.
    tol : float, default=1e-4
        Stop when the summed squared centroid shift is at most ``tol`` times the
        mean per-feature variance of ``X`` (as scikit-learn).
    copy_x : bool, default=True
        Accepted for scikit-learn compatibility. ivfpq never modifies ``X``, whatever
        its value (scikit-learn centres ``X`` in place when it is False); data already
        float32 or float64 and C-contiguous is never copied.
    algorithm : {"lloyd", "elkan", "mop", "auto"}, default="lloyd"
        How points find their centroid: "lloyd" compares with every centroid
        (BLAS blocks, cost n*k*d per iteration); "mop" (MOPBucket) searches an HNSW
        graph over the centroids, seeded with each point's previous centroids (cost
        about n*ef_search*2M*d, less once most points stay put; the objective still
        never rises); "auto" picks "mop" where it was measured to be faster (see
        ``algorithm_``). "elkan" is run as "lloyd" (the same clustering). How mop starts, skips settled points and widens its search
        before stopping is described in :class:`ivfpq.cluster.assign.GraphAssigner`.
    metric : {"l2", "cosine"}, default="sqeuclidean"
        "l2" (also spelled "sqeuclidean" or "euclidean") is the usual k-means; "cosine"
        runs spherical k-means: rows are L2-normalised and centroids kept at
        unit norm; ``inertia_`` is then the sum of cosine distances ``1 - cos``.
    random_state : int, Generator, RandomState or None, default=None
        Makes initialisation, and so the whole fit, reproducible.
    verbose : bool, default=False
        Show a progress bar with the inertia and the fraction of points that moved.
    n_threads : int or None, default=None
        Threads for the kernels and BLAS; None follows Numba's setting (every core unless
        ``numba.set_num_threads`` lowered it). Results do not
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
        "mop" only: points per bulk, the unit of parallel work; within a bulk,
        queries are sorted so that consecutive ones read the same part of the graph
        (the order changes the speed, never a label).
    cold_start : {"auto", "two-level", "exact", "graph"}, default="auto"
        "mop" only: how the first assignment, which has no previous centroids to
        seed from, is made. "two-level" groups the centroids by a short k-means and
        scores each point against the centroids of its nearest group with BLAS (fast
        and accurate when the data's clusters are coarser than the centroids);
        "exact" scores each point against every centroid (one exact Lloyd pass);
        "graph" searches the graph from its upper layers (beam ``max(64,
        2*ef_search)``). "auto" is "two-level" where there are at least 64 points
        per cluster or where, on the audit sample, it puts at least 95% of the rows
        at their exact nearest centroid (the seeded searches of the following
        iterations correct a rough start for less than a better start costs);
        otherwise, where a rough start leads to a worse local minimum, "exact" up to
        16,384 clusters and "graph" above (measured in ``benchmarks/README.md``).
    cold_nprobe : int, default=1
        "mop" only: groups of centroids each point is scored against by the
        two-level start (its nearest group and the groups nearest to that one).
    max_ef_search : int or None, default=None
        "mop" only: where the run would stop (no label changed, or the centroids
        stopped moving), the beam is doubled, up to this width, and the run goes on
        while a wider search still moves points. So it is where an iteration gains
        less than 1e-4 of the inertia, unless the wider pass gains less per node
        expansion than the narrow one before it (then the beam narrows again and such
        gains no longer widen it). None means ``4 * ef_search``; set it to
        ``ef_search`` to stop at the first standstill.
    audit_size : int, default=1024
        "mop" only: rows of a fixed sample (chosen by global row number) assigned
        exactly after every iteration, one BLAS pass, to measure the search: the
        fraction of points at their exact nearest centroid and the excess cost over
        exact assignment (``audit_``, and the progress bar). 0 turns it off.
    audit_tolerance : float or None, default=1e-3
        "mop" only: an excess cost above this widens the search at once (up to
        ``max_ef_search``; beyond it, the next iteration is an exact pass over all
        points), and an excess at most a quarter of it narrows a search so widened
        again, one step per iteration; None never widens.
    handover : bool, default=True
        "mop" only: price, on the audit rows, the next iteration both ways, and once a
        bounded exact pass (exact Lloyd that rescores only the rows whose proven bounds
        do not settle them) is the cheaper, go on as exact Lloyd with bounds to the end
        (``handed_over_at_``). False keeps the graph search to the end. Needs
        ``audit_size > 0``.
    checkpoint : str, path or None, default=None
        A file where the whole state of the fit is written every ``checkpoint_every``
        iterations (versioned ``.npz``, written atomically, no pickle; see
        :mod:`ivfpq.cluster.checkpoint`). If the file exists when ``fit`` starts, the
        fit resumes from it and ends exactly as the uninterrupted fit would; a file of
        other data or other parameters is refused with a ``ValueError`` saying which.
        The file is removed when the fit completes.
    checkpoint_every : int, default=1
        Counted iterations between two checkpoints.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,), int32
    inertia_ : float
        Sum of weighted squared distances of the samples to their centroid: the
        true cost of ``labels_`` against ``cluster_centers_``.
    n_iter_ : int
        Iterations of the best run, counting the one in which convergence was
        detected (as scikit-learn counts).
    n_features_in_ : int
    feature_names_in_ : ndarray of str objects
        Only when ``X`` was a data frame with string column names.
    algorithm_ : str
        The algorithm used: ``algorithm``, or what "auto" chose.
    history_ : list of (float, float)
        One ``(seconds_since_fit_start, inertia)`` pair per counted iteration of the best run.

    Warns
    -----
    RuntimeWarning
        When ``init`` is an array and ``n_init`` asks for more than one run.
    ConvergenceWarning
        When the labels use fewer than ``n_clusters`` clusters (duplicate points:
        fewer distinct points than clusters). scikit-learn's class when it is loaded,
        else :class:`ivfpq.ConvergenceWarning`.
    changed_fraction_ : list of float
        Fraction of points whose cluster changed, per iteration of the best run.
    audit_ : list of (float, float)
        "mop" only: per iteration of the best run, the fraction of the audit rows at
        their exact nearest centroid and the relative excess cost of their assignment
        over exact assignment (see ``audit_size``). Empty for exact Lloyd.
    handed_over_at_ : int or None
        "mop" only: the iteration after which the best run went on as exact Lloyd with
        bounds, because a bounded exact pass was priced below the graph search (late in
        a fit, or where the data keeps the search wide); None when the graph searched to
        the end, and for exact Lloyd.
    resumed_at_ : int
        The iteration a fit resumed from a checkpoint (0 for a fresh fit);
        ``n_iter_`` and ``history_`` count the whole run.

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
    _parameter_constraints = {
        "n_clusters": [Interval(int, 1, None)],
        "init": [Options(INITS), callable, "array-like"],
        "n_init": [Interval(int, 1, None), Options(("auto",))],
        "max_iter": [Interval(int, 1, None)],
        "tol": [Interval(float, 0, None)],
        "copy_x": ["boolean"],
        "algorithm": [Options(ALGORITHMS + (ELKAN,))],
        "metric": [Metric(_BaseKMeans._metrics)],
        "random_state": ["random_state"],
        "verbose": ["boolean", Interval(int, 0, None)],
        "n_threads": [Interval(int, 1, None), None],
        "M": [Interval(int, 2, None)],
        "ef_construction": [Interval(int, 1, None)],
        "ef_search": [Interval(int, 1, None)],
        "additional_centroids": [Interval(int, 0, None)],
        "min_iterations": [Interval(int, 0, None)],
        "bulk_size": [Interval(int, 1, None)],
        "cold_start": [Options(COLD_STARTS)],
        "cold_nprobe": [Interval(int, 1, None)],
        "max_ef_search": [Interval(int, 1, None), None],
        "audit_size": [Interval(int, 0, None)],
        "audit_tolerance": [Interval(float, 0, None), None],
        "handover": ["boolean"],
        "checkpoint": [str, os.PathLike, None],
        "checkpoint_every": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        init="auto",
        n_init="auto",
        max_iter=300,
        tol=1e-4,
        copy_x=True,
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
        audit_size=1024,
        audit_tolerance=1e-3,
        handover=True,
        checkpoint=None,
        checkpoint_every=1,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.copy_x = copy_x
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
        self.audit_size = audit_size
        self.audit_tolerance = audit_tolerance
        self.handover = handover
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    # -- parameters ------------------------------------------------------------------

    def _check_params(self, n_samples, n_features, dtype):
        """The parameters checked, also against the data's shape; returns what the fit needs."""
        validate_params(self, self._parameter_constraints)
        n_clusters = self.n_clusters
        if n_samples < n_clusters:
            raise ValueError(
                f"n_samples={n_samples} should be >= n_clusters={n_clusters}: "
                "X has fewer samples than clusters"
            )
        init = self._check_init(n_clusters, n_features, dtype)
        return n_clusters, init, self._n_init(10, stacklevel=3), self.max_iter, float(self.tol)

    def _assigner_seed(self, rng):
        """The seed of a run's graph assigner, drawn after its initialisation (None for exact)."""
        return int(rng.integers(2**31 - 1)) if self.algorithm_ == "mop" else None

    def _make_assigner(self, seed):
        """The assigner for this fit's algorithm (``algorithm_``)."""
        if self.algorithm_ == "mop":
            return GraphAssigner(
                M=self.M, ef_construction=self.ef_construction, ef_search=self.ef_search,
                additional_centroids=self.additional_centroids,
                min_iterations=self.min_iterations, bulk_size=self.bulk_size, seed=seed,
                cold_start=self.cold_start, cold_nprobe=self.cold_nprobe,
                max_ef_search=self.max_ef_search, audit_size=self.audit_size,
                audit_tolerance=np.inf if self.audit_tolerance is None else self.audit_tolerance,
                handover=bool(self.handover),
            )
        return ExactAssigner()

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
            memory whole. The result is the same, bit for bit, wherever the rows are.
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each sample (a Dask array for Dask input works too).
        block_rows : int, optional
            Rows per block when reading a NumPy array or memory-map block by block
            (default: the whole array in memory; about 64 MB of rows of a memory-map).
            Not for Dask arrays, whose row chunks are the blocks.

        Returns
        -------
        self
        """
        n_threads = resolve_n_threads(self.n_threads)
        ex = self._executor(X, sample_weight, block_rows)
        n_clusters, init, n_init, max_iter, tol = self._check_params(ex.n_rows, ex.n_features, ex.dtype)
        rng = check_random_state(self.random_state)
        check_feature_names(self, X, reset=True)
        self.algorithm_ = "lloyd" if self.algorithm == ELKAN else self.algorithm
        if self.algorithm == "auto":
            self.algorithm_ = choose_algorithm(ex.n_rows, n_clusters, ex.n_features)

        best = None
        self.resumed_at_ = 0
        with thread_limits(n_threads):
            blocks, stats = ex.validate()
            if not stats[2] > 0:
                raise ValueError("sample_weight is zero everywhere; at least one weight must be positive")
            ckpt = None
            first_run = 0
            if self.checkpoint is not None:
                ckpt = Checkpoint.open(self.checkpoint, self.checkpoint_every,
                                       data_fingerprint(ex, blocks, stats), params_fingerprint(self.get_params()))
                if ckpt.resume is not None:
                    first_run = ckpt.run
                    ckpt.restore_rng(rng)
                    self.resumed_at_ = ckpt.resumed_at
                    if ckpt.best is not None:
                        best = _result_from_state(ex, blocks, *ckpt.best)
            for run in range(first_run, n_init):
                if ckpt is not None and ckpt.resume is not None:
                    centers, seed = ckpt.resume[1]["centers"], ckpt.assigner_seed
                else:
                    centers = self._initial_centers(ex, blocks, stats, init, n_clusters, rng, X)
                    seed = self._assigner_seed(rng)
                    if ckpt is not None:
                        ckpt.start_run(run, rng, seed)
                with _progress(self.verbose, max_iter, run, n_init) as callback:
                    result = lloyd(ex, blocks, stats, centers, self._make_assigner(seed), max_iter, tol,
                                   spherical=self._metric == "cosine", callback=callback, checkpoint=ckpt)
                if best is None or result.inertia < best.inertia:
                    best = result
                if ckpt is not None and run + 1 < n_init:
                    ckpt.finish_run(*_result_state(ex, best))
            if ckpt is not None:
                ckpt.remove()
        best.labels = ex.labels(best.states).astype(np.int32)
        self._warn_if_fewer_clusters(best.labels, n_clusters)
        return self._store_fit(best, ex.n_features)

    def _store_fit(self, best, n_features):
        """Set the fitted attributes from the best run."""
        scale = 0.5 if self._metric == "cosine" else 1.0  # |x - c|^2 = 2 (1 - cos) on the sphere
        self.cluster_centers_ = best.centers
        self.labels_ = best.labels
        self.inertia_ = best.inertia * scale
        self.n_iter_ = best.n_iter
        self.history_ = [(seconds, inertia * scale) for seconds, inertia in best.history]
        self.changed_fraction_ = list(best.changed_fraction)
        self.audit_ = [tuple(a) for a in best.audit]
        self.handed_over_at_ = best.handed_over_at
        self.n_features_in_ = n_features
        return self

    # -- persistence: save(path) comes from Persistable; ivfpq.load(path) reads it --------

    def _to_arrays(self):
        meta, arrays = {"params": {}, "array_params": []}, {}
        for name, value in self.get_params().items():
            if isinstance(value, np.ndarray):
                arrays["param_" + name] = value
                meta["array_params"].append(name)
            elif value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating)):
                meta["params"][name] = value
            elif name == "init":  # a callable: the fitted centroids are what is kept
                meta["params"][name] = "k-means++"
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
            labels = archive.array("labels", ndim=1)
            if labels.dtype.kind not in "iu":
                raise ValueError(f"labels has dtype {labels.dtype}")
            model.labels_ = labels.astype(np.int32)  # files written before labels_ was int32 hold int64
            model.inertia_ = float(archive.param("inertia"))
            model.n_iter_ = int(archive.param("n_iter"))
            model.n_features_in_ = d
            model.history_ = [tuple(row) for row in archive.array("history", ndim=2).tolist()]
            model.changed_fraction_ = archive.array("changed_fraction", ndim=1).tolist()
        return model


def _result_state(ex, result):
    """A finished run as JSON values and arrays, for a checkpoint."""
    meta = {"inertia": result.inertia, "n_iter": result.n_iter, "history": result.history,
            "changed_fraction": result.changed_fraction, "work": result.work, "audit": result.audit,
            "handed_over_at": result.handed_over_at}
    return meta, {"centers": result.centers, "labels": np.asarray(ex.labels(result.states))}


def _result_from_state(ex, blocks, meta, arrays):
    labels = arrays["labels"]
    parts = [labels[ex.offsets[b]:ex.offsets[b + 1]] for b in range(ex.n_blocks)]
    states = ex.map(_restored_block, blocks, parts, [None] * ex.n_blocks, [None] * ex.n_blocks, data=False)
    return LloydResult(arrays["centers"], states, float(meta["inertia"]), int(meta["n_iter"]),
                       [tuple(h) for h in meta["history"]], list(meta["changed_fraction"]), list(meta["work"]),
                       [tuple(a) for a in meta["audit"]], handed_over_at=meta.get("handed_over_at"))


@contextmanager
def _progress(verbose, max_iter, run, n_init):
    """A tqdm bar fed by the loop's callback; nothing at all when not verbose.

    It shows the iteration against ``max_iter``, the seconds per iteration and the time
    left at that pace, the inertia, the fraction of points that moved and, for mop, the
    audit: the excess cost of the assignment over exact assignment on the audit rows.
    """
    if not verbose:
        yield None
        return
    desc = "k-means" if n_init == 1 else f"k-means run {run + 1}/{n_init}"
    with tqdm(total=max_iter, desc=desc, unit="it", leave=False) as bar:

        def callback(iteration, inertia, changed, audit=None):
            figures = {"inertia": f"{inertia:.6g}", "moved": f"{changed:.2%}"}
            if audit is not None:
                figures["excess"] = f"{audit[1]:.1e}"
            bar.set_postfix(figures, refresh=False)
            bar.update(iteration - bar.n)

        yield callback
