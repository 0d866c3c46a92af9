"""Product quantization: each vector stored as the ids of its nearest centroids in M sub-spaces.

The codebooks come from k-means in each sub-space (``codebook="kmeans"``) or, at one
dimension per segment, from each dimension's distribution (``codebook="tile"``, see
:class:`ivfpq.TileEncoder`). Either way the fitted state is the same pair of arrays,
``codebooks_`` ``(M, K, dsub)`` and, at one dimension per segment, the bin
``edges_`` ``(M, K - 1)``; encoding, decoding, distance tables and the ADC scan only
use those, so indexes built on a quantizer (IVF-PQ on residuals, HNSW with
compressed distances) work with either kind.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _faiss
from .._base import MetricMixin, ParamsMixin
from .._storage import (
    Persistable,
    attributes_state,
    params_from_state,
    params_state,
    register_format,
    restore_attributes,
)
from .._threads import numba_threads, resolve_n_threads, thread_limits
from .._validation import (
    Interval,
    Metric,
    Options,
    check_array,
    check_codes,
    check_is_fitted,
    check_n_features,
    check_positive_int,
    check_random_state,
    validate_params,
)
from ..cluster.assign import ExactAssigner
from ..cluster.kmeans import KMeans
from ..kernels import kmeans1d
from ..kernels import pq as kernels
from .tile import DISTRIBUTIONS, TileEncoder, code_dtype

__all__ = ["ProductQuantizer", "CODEBOOKS", "METRICS"]

CODEBOOKS = ("kmeans", "tile")
METRICS = ("l2", "ip")
INITS = ("auto", "k-means++", "random")
POINTS_PER_CENTROID = 256  # the default training size is this many rows per centroid
SUBSPACE_BLOCK_ROWS = 512  # BLAS blocks of (rows x 2**nbits) scores that stay in cache


class _SubspaceKMeans(KMeans):
    """KMeans with assignment blocks suited to PQ sub-spaces of a few dimensions.

    At a few dimensions the GEMM is cheap and writing the (rows x k) scores is the
    cost: blocks of 512 rows keep them in cache (benchmarks/README.md, "Figures
    behind the code's constants").
    """

    def _make_assigner(self, seed):
        # 256 centroids of a few dimensions: a settled row's own work would cost more
        # than its scores against every centroid (``BOUNDED_ROW_COST``), so no bounds.
        return ExactAssigner(block_rows=SUBSPACE_BLOCK_ROWS, bounds=False)


@register_format("product_quantizer", version=1)
class ProductQuantizer(MetricMixin, ParamsMixin, Persistable):
    """Product quantizer with k-means or tile codebooks, and brute-force ADC search.

    ``X`` of ``d`` features is cut into ``M`` contiguous sub-spaces of ``dsub = d / M``
    features; each sub-vector is replaced by the id of one of ``K = 2**nbits``
    centroids of its sub-space. A query is compared with the codes through per-query
    tables of its distance to every centroid (asymmetric distance computation, ADC).

    Parameters
    ----------
    M : int
        Number of sub-spaces; must divide ``n_features``.
    nbits : int in [1, 16], default=8
        Bits per sub-space code. Codes are uint8 for ``nbits <= 8``, uint16 above.
    codebook : {"kmeans", "tile"}, default="kmeans"
        "kmeans": Lloyd's k-means in each sub-space with :class:`ivfpq.KMeans`; at one
        dimension per segment (``M == n_features``) a sorted 1-D k-means with the same
        initialisations and update does the same in O(n log n) per dimension.
        "tile": no k-means; bins are quantiles of each dimension's distribution
        (:class:`ivfpq.TileEncoder`); needs ``M == n_features``.
    distribution : {"auto", "normal", "lognormal", "empirical"}, default="auto"
        The tile encoder's distribution (ignored for k-means codebooks).
    metric : {"l2", "ip"}, default="l2"
        What :meth:`search` ranks by (other spellings: "sqeuclidean" or "euclidean"
        for "l2", "inner_product" or "dot" for "ip"; see
        :data:`ivfpq._validation.METRIC_ALIASES`). "l2": squared Euclidean distance, smallest
        first. "ip": inner product, **largest first**, and the distances returned are
        the estimated inner products themselves (not negated). Codebooks are fitted
        for L2 reconstruction either way.
    init : {"auto", "k-means++", "random"}, default="auto"
        k-means initialisation in each sub-space. "auto" is "k-means++" at one
        dimension per segment (linear time there, see :mod:`ivfpq.kernels.kmeans1d`)
        and "random" otherwise, as faiss: greedy k-means++ costs
        O(n * K * trials * dsub) per sub-space, for no better recall
        (benchmarks/README.md, "Figures behind the code's constants").
    max_iter : int, default=25
        Lloyd iterations per sub-space (k-means codebooks).
    max_train_points : int, "auto" or None, default="auto"
        Rows used to train. "auto" means ``256 * 2**nbits`` (65,536 at 8 bits, as
        faiss); None means every row. When ``X`` has more rows, a uniform random
        subset is used and :attr:`train_message_` says so. For tile codebooks the
        moments always use every row; this bounds the sample the empirical quantiles
        (and the "auto" choice) come from.
    random_state : int, Generator, RandomState or None, default=None
        Makes subsampling and initialisation reproducible.
    n_threads : int or None, default=None
        Threads for the kernels (encode, decode, tables, search, 1-D and tile fits);
        None follows Numba's setting (every core unless
        ``numba.set_num_threads`` lowered it). k-means in sub-spaces of several dimensions runs one
        thread per sub-space, as these problems are small. Results do not depend on it.

    Attributes
    ----------
    codebooks_ : ndarray of shape (M, 2**nbits, dsub), float32
        Centroids of each sub-space (for tile: the bin-midpoint quantiles).
    edges_ : ndarray of shape (M, 2**nbits - 1), float64, or None
        At one dimension per segment, the bin boundaries that encoding uses: midpoints
        between the sorted k-means centroids (exact nearest-centroid assignment), or the
        tile encoder's quantiles ``F^{-1}(c / K)``. None when ``dsub > 1``.
    dsub_ : int
        Features per sub-space.
    n_train_used_ : int
        Rows the codebooks were trained on.
    train_message_ : str
        Why fewer rows than given were used; empty when all were.
    n_iter_ : ndarray of shape (M,), int64
        Lloyd iterations in each sub-space (k-means; zeros for tile).
    inertia_ : float
        Sum over sub-spaces of the training rows' squared distance to their centroid
        (k-means; NaN for tile).
    encoder_ : TileEncoder or None
        The fitted tile encoder (``codebook="tile"``).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq import ProductQuantizer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((5_000, 16)).astype(np.float32)
    >>> pq = ProductQuantizer(M=4, nbits=6, random_state=0).fit(X)
    >>> codes = pq.encode(X)
    >>> codes.shape, codes.dtype
    ((5000, 4), dtype('uint8'))
    >>> distances, ids = pq.search(codes, X[:3], k=5)
    >>> ids[:, 0].tolist()        # each query finds itself first
    [0, 1, 2]
    >>> tile = ProductQuantizer(M=16, codebook="tile", distribution="normal").fit(X)
    >>> tile.codebooks_.shape
    (16, 256, 1)
    """

    def __init__(self, M, nbits=8, *, codebook="kmeans", distribution="auto", metric="l2",
                 init="auto", max_iter=25, max_train_points="auto", random_state=None,
                 n_threads=None):
        self.M = M
        self.nbits = nbits
        self.codebook = codebook
        self.distribution = distribution
        self.metric = metric
        self.init = init
        self.max_iter = max_iter
        self.max_train_points = max_train_points
        self.random_state = random_state
        self.n_threads = n_threads

    # -- parameters ------------------------------------------------------------------

    _parameter_constraints = {
        "M": [Interval(int, 1, None)],
        "nbits": [Interval(int, 1, 16)],
        "codebook": [Options(CODEBOOKS)],
        "distribution": [Options(DISTRIBUTIONS)],
        "metric": [Metric(METRICS)],
        "init": [Options(INITS)],
        "max_iter": [Interval(int, 1, None)],
        "max_train_points": [Interval(int, 1, None), Options(("auto",)), None],
        "random_state": ["random_state"],
        "n_threads": [Interval(int, 1, None), None],
    }

    def _check_params(self, n_features=None):
        validate_params(self, self._parameter_constraints)
        M, nbits = int(self.M), int(self.nbits)
        K = 1 << nbits
        mtp = self.max_train_points
        if isinstance(mtp, str):
            mtp = POINTS_PER_CENTROID * K
        elif mtp is not None:
            minimum = K if self.codebook == "kmeans" else 2
            mtp = check_positive_int(mtp, "max_train_points", minimum=minimum)
        if n_features is not None:
            if n_features % M:
                divisors = [m for m in range(1, n_features + 1) if n_features % m == 0]
                shown = divisors if len(divisors) <= 12 else divisors[:6] + ["..."] + divisors[-3:]
                raise ValueError(
                    f"M={M} does not divide n_features={n_features}: each of the M sub-spaces "
                    f"needs n_features / M dimensions; divisors of {n_features}: {shown}"
                )
            if self.codebook == "tile" and M != n_features:
                raise ValueError(
                    f"codebook='tile' encodes one dimension per segment, so M must equal "
                    f"n_features={n_features}; got M={M}"
                )
        return M, nbits, int(self.max_iter), mtp, resolve_n_threads(self.n_threads)

    @property
    def code_dtype(self):
        """The dtype of codes: uint8 for nbits <= 8, uint16 above."""
        return np.dtype(code_dtype(check_positive_int(self.nbits, "nbits", minimum=1, maximum=16)))

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X, y=None):
        """Train the codebooks on ``X`` (n_samples, n_features).

        Returns
        -------
        self
        """
        X = check_array(X, "X")
        n, d = X.shape
        M, nbits, max_iter, mtp, n_threads = self._check_params(d)
        K = 1 << nbits
        rng = check_random_state(self.random_state)
        dsub = d // M

        if self.codebook == "tile":
            if n < 2:
                raise ValueError(
                    f"X has n_samples={n}; the tile encoder needs at least 2 rows to fit a distribution"
                )
            sample_size = n if mtp is None else min(mtp, n)
            tile = TileEncoder(self.distribution, nbits, sample_size=max(2, sample_size),
                               random_state=rng, n_threads=self.n_threads).fit(X)
            self._set_tile(tile, d, dsub)
            message = ""
            if self.distribution in ("empirical", "auto") and sample_size < n:
                message = (f"quantiles from a uniform sample of {sample_size} of {n} rows "
                           f"(max_train_points={self.max_train_points!r}); moments from all rows")
            self.train_message_ = message
            return self

        if n < K:
            raise ValueError(
                f"X has n_samples={n}, but nbits={nbits} needs at least 2**nbits={K} training "
                f"rows (one per centroid); pass more rows or lower nbits"
            )
        X_train, message = X, ""
        if mtp is not None and n > mtp:
            rows = np.sort(rng.choice(n, size=mtp, replace=False))
            X_train = X[rows]
            message = (f"trained on a uniform sample of {mtp} of {n} rows "
                       f"(max_train_points={self.max_train_points!r})")

        codebooks = np.empty((M, K, dsub), dtype=np.float32)
        n_iter = np.zeros(M, dtype=np.int64)
        inertia = 0.0
        init = self.init
        if init == "auto":
            init = "k-means++" if dsub == 1 else "random"
        if dsub == 1:
            centers, n_iter, inertias = _fit_kmeans_1d(X_train, K, init, max_iter, rng, n_threads)
            codebooks[:, :, 0] = centers
            inertia = float(inertias.sum())
        else:
            # One thread per sub-space problem: each is small (at most max_train_points
            # x dsub), too small to share between threads (benchmarks/README.md,
            # "Figures behind the code's constants").
            seeds = rng.integers(0, 2**31 - 1, size=M)
            for m in range(M):
                km = _SubspaceKMeans(K, init=init, n_init=1, max_iter=max_iter,
                                     random_state=int(seeds[m]), n_threads=1)
                km.fit(X_train[:, m * dsub:(m + 1) * dsub])
                codebooks[m] = km.cluster_centers_
                n_iter[m] = km.n_iter_
                inertia += km.inertia_

        self.codebooks_ = codebooks
        self.edges_ = _midpoint_edges(codebooks[:, :, 0]) if dsub == 1 else None
        self.dsub_ = dsub
        self.n_features_in_ = d
        self.n_train_used_ = X_train.shape[0]
        self.train_message_ = message
        self.n_iter_ = n_iter
        self.inertia_ = inertia
        self.encoder_ = None
        return self

    def partial_fit(self, X, y=None):
        """Update tile codebooks with a batch of rows (``codebook="tile"`` only).

        k-means codebooks have no streaming update; refit them instead. Codes made
        before an update refer to the old bins.

        Returns
        -------
        self
        """
        X = check_array(X, "X")
        if self.codebook != "tile":
            raise ValueError(
                f"partial_fit needs codebook='tile' (streamed distribution fits); got "
                f"codebook={self.codebook!r}, which must be refitted with fit()"
            )
        if getattr(self, "encoder_", None) is None:
            return self.fit(X)
        check_n_features(X, self.n_features_in_, "X")
        self.encoder_.partial_fit(X)
        self._set_tile(self.encoder_, self.n_features_in_, 1)
        return self

    def _set_tile(self, tile, d, dsub):
        self.codebooks_ = tile.codebooks_
        self.edges_ = tile.edges_
        self.dsub_ = dsub
        self.n_features_in_ = d
        self.n_train_used_ = tile.n_samples_seen_
        self.n_iter_ = np.zeros(d, dtype=np.int64)
        self.inertia_ = float("nan")
        self.encoder_ = tile

    # -- codes -----------------------------------------------------------------------

    def _fitted_nbits(self):
        return int(self.codebooks_.shape[1]).bit_length() - 1

    def encode(self, X):
        """PQ codes of ``X``: shape (n_samples, M), uint8 (nbits <= 8) or uint16.

        Each sub-vector gets the id of its nearest centroid (k-means), or of its bin
        (tile; values beyond the fitted range are clamped to the first/last code).
        """
        check_is_fitted(self, "codebooks_")
        X = check_array(X, "X")
        check_n_features(X, self.n_features_in_, "X")
        M = self.codebooks_.shape[0]
        codes = np.empty((X.shape[0], M), dtype=code_dtype(self._fitted_nbits()))
        with numba_threads(resolve_n_threads(self.n_threads)):
            if self.edges_ is not None:
                kernels.encode_by_edges(X, self.edges_, codes)
            else:
                kernels.encode_nearest(X, self.codebooks_, codes)
        return codes

    def decode(self, codes):
        """Reconstructed vectors (n, n_features), float32: the centroids the codes name."""
        check_is_fitted(self, "codebooks_")
        codes = check_codes(codes, self.codebooks_.shape[0], self._fitted_nbits())
        out = np.empty((codes.shape[0], self.n_features_in_), dtype=np.float32)
        with numba_threads(resolve_n_threads(self.n_threads)):
            kernels.decode(codes, self.codebooks_, out)
        return out

    # -- distances -------------------------------------------------------------------

    def distance_tables(self, Q):
        """Asymmetric distance tables (n_queries, M, 2**nbits), float32.

        ``tables[q, m, c]`` is the squared distance ("l2") or the inner product ("ip")
        between sub-vector ``m`` of ``Q[q]`` and centroid ``c`` of sub-space ``m``; the
        ADC distance of a code is the sum of its M entries.
        """
        with numba_threads(resolve_n_threads(self.n_threads)):
            return self._tables(Q)

    def _tables(self, Q):
        check_is_fitted(self, "codebooks_")
        Q = check_array(Q, "Q")
        check_n_features(Q, self.n_features_in_, "Q")
        M, K, _ = self.codebooks_.shape
        tables = np.empty((Q.shape[0], M, K), dtype=np.float32)
        if self._metric == "ip":
            kernels.distance_tables(Q, self.codebooks_, tables, True)
        else:
            kernels.distance_tables(Q, self.codebooks_, tables, False)
        return tables

    def adc_distances(self, codes, Q):
        """ADC distance from every query to every code, shape (n_queries, n_codes), float32.

        Squared L2 or inner product (``metric``). Bit for bit the values :meth:`search`
        ranks. Builds the full matrix: use it for small inputs.
        """
        codes = self._check_codes(codes)
        with numba_threads(resolve_n_threads(self.n_threads)):
            tables = self._tables(Q)
            out = np.empty((tables.shape[0], codes.shape[0]), dtype=np.float32)
            for q in range(tables.shape[0]):
                kernels.adc_distances(codes, tables[q], out[q])
        return out

    def search(self, codes, Q, k):
        """The ``k`` codes nearest to each query by ADC: a brute-force scan with a top-k heap.

        Parameters
        ----------
        codes : array of shape (n_codes, M)
            Codes from :meth:`encode`.
        Q : array-like of shape (n_queries, n_features)
        k : int
            Neighbours per query. When ``k > n_codes`` the rows are padded with id -1
            and distance +inf ("l2") or -inf ("ip").

        Returns
        -------
        distances : ndarray of shape (n_queries, k), float32
            "l2": estimated squared distances, ascending. "ip": estimated inner
            products, descending (largest first).
        ids : ndarray of shape (n_queries, k), int64
            Row numbers into ``codes``. Ties go to the lower row number.
        """
        codes = self._check_codes(codes)
        k = check_positive_int(k, "k")
        n_threads = resolve_n_threads(self.n_threads)
        with numba_threads(n_threads):
            tables = self._tables(Q)
            ip = self._metric == "ip"
            if ip:
                np.negative(tables, out=tables)  # the kernel keeps the smallest sums
            distances = np.empty((tables.shape[0], k), dtype=np.float32)
            ids = np.empty((tables.shape[0], k), dtype=np.int64)
            kernels.adc_topk(codes, tables, distances, ids, n_threads=n_threads)
        if ip:
            np.negative(distances, out=distances)
        return distances, ids

    def _check_codes(self, codes):
        check_is_fitted(self, "codebooks_")
        return check_codes(codes, self.codebooks_.shape[0], self._fitted_nbits())


    # -- faiss ---------------------------------------------------------------------

    def to_faiss(self):
        """The fitted codebooks as a ``faiss.ProductQuantizer`` (needs faiss).

        faiss's ``compute_codes`` then gives the codes of :meth:`encode` (packed as
        faiss packs them: ``ceil(M * nbits / 8)`` bytes per vector, least significant
        bit first), and its ``centroids`` are :attr:`codebooks_` in the same
        (M, 2**nbits, dsub) order.

        Raises
        ------
        ValueError
            For tile codebooks: their codes are bins between quantiles, which are not
            always the nearest code word, while faiss encodes to the nearest one.
        ImportError
            When faiss is not installed.

        Examples
        --------
        >>> import numpy as np
        >>> from ivfpq import ProductQuantizer
        >>> X = np.random.default_rng(0).standard_normal((2000, 8)).astype(np.float32)
        >>> pq = ProductQuantizer(M=2, nbits=4, random_state=0).fit(X)
        >>> fpq = pq.to_faiss()                               # doctest: +SKIP
        >>> bool((fpq.decode(fpq.compute_codes(X[:5])) == pq.decode(pq.encode(X[:5]))).all())  # doctest: +SKIP
        True
        >>> ProductQuantizer.from_faiss(fpq).codebooks_.shape     # doctest: +SKIP
        (2, 16, 4)
        """
        faiss = _faiss.require_faiss()
        check_is_fitted(self, "codebooks_")
        if getattr(self, "encoder_", None) is not None:
            raise ValueError(
                "tile codebooks cannot be exported to faiss: a tile code is the bin between "
                "two quantiles of its dimension, not always the nearest code word, and faiss "
                "encodes every sub-vector to its nearest code word"
            )
        M, K, dsub = self.codebooks_.shape
        pq = faiss.ProductQuantizer(M * dsub, M, self._fitted_nbits())
        faiss.copy_array_to_vector(np.ascontiguousarray(self.codebooks_, dtype=np.float32).ravel(),
                                   pq.centroids)
        return pq

    @classmethod
    def from_faiss(cls, pq, *, metric=None, n_threads=None):
        """A fitted quantizer with the codebooks of a trained faiss ``ProductQuantizer``.

        Parameters
        ----------
        pq : faiss.ProductQuantizer or faiss.IndexPQ
            For an ``IndexPQ``, its ``pq`` (and its metric, unless ``metric`` is given).
        metric : {"l2", "ip"} or None, default=None
            What :meth:`search` ranks by; None: the ``IndexPQ``'s metric, else "l2".
        n_threads : int or None, default=None

        Returns
        -------
        ProductQuantizer
            ``codebook="kmeans"``; :meth:`encode` gives faiss's ``compute_codes``
            codes, one per sub-space. ``n_train_used_`` is 0 and ``inertia_`` NaN:
            faiss keeps neither.
        """
        faiss = _faiss.require_faiss()
        if isinstance(pq, faiss.IndexPQ):
            if metric is None:
                metric = _faiss.metric_from_faiss(faiss, pq.metric_type, "this IndexPQ")
            pq = pq.pq
        if not isinstance(pq, faiss.ProductQuantizer):
            raise TypeError(f"pq must be a faiss.ProductQuantizer or faiss.IndexPQ, got {type(pq).__name__}")
        M, nbits, d = int(pq.M), int(pq.nbits), int(pq.d)
        if not 1 <= nbits <= 16:
            raise ValueError(f"the faiss quantizer has nbits={nbits}; ivfpq codes hold 1 to 16 bits")
        K, dsub = 1 << nbits, d // M
        centroids = faiss.vector_to_array(pq.centroids)
        # faiss allocates the centroids zeroed and has no trained flag: all zeros (every
        # code the same vector) is what an untrained quantizer looks like.
        if centroids.size != M * K * dsub or not centroids.any():
            raise ValueError("the faiss ProductQuantizer is not trained (its centroids are all zero)")
        obj = cls(M, nbits, metric="l2" if metric is None else metric, n_threads=n_threads)
        obj._check_params(d)
        codebooks = np.ascontiguousarray(centroids.reshape(M, K, dsub), dtype=np.float32)
        obj.codebooks_ = codebooks
        # At one dimension per sub-space, encoding by bin edges is nearest-centroid
        # encoding only when the code words are in ascending order.
        ascending = dsub == 1 and bool((np.diff(codebooks[:, :, 0], axis=1) > 0).all())
        obj.edges_ = _midpoint_edges(codebooks[:, :, 0]) if ascending else None
        obj.dsub_ = dsub
        obj.n_features_in_ = d
        obj.n_train_used_ = 0
        obj.train_message_ = "codebooks read from a faiss ProductQuantizer"
        obj.n_iter_ = np.zeros(M, dtype=np.int64)
        obj.inertia_ = float("nan")
        obj.encoder_ = None
        return obj

    # -- persistence: save(path) comes from Persistable; ivfpq.load(path) reads it --------

    _saved_attributes = (
        "codebooks_", "edges_", "dsub_", "n_features_in_", "n_train_used_", "train_message_",
        "n_iter_", "inertia_", "encoder_",
    )

    def _to_arrays(self):
        meta, arrays = params_state(self)
        meta["fitted"] = hasattr(self, "codebooks_")
        if meta["fitted"]:
            attributes_state(self, self._saved_attributes, meta, arrays)
        return meta, arrays

    @classmethod
    def _from_arrays(cls, archive):
        obj = cls(**params_from_state(cls, archive))
        if archive.param("fitted"):
            restore_attributes(obj, archive, cls._saved_attributes)
            cb = obj.codebooks_
            if cb.ndim != 3 or cb.dtype != np.float32 or cb.shape[0] * cb.shape[2] != obj.n_features_in_:
                raise ValueError(f"codebooks_ of shape {cb.shape} and dtype {cb.dtype} do not fit the quantizer")
        return obj

def _midpoint_edges(centers):
    """Boundaries between sorted 1-D centroids: x <= edge goes left (nearest centroid)."""
    c = centers.astype(np.float64)
    return np.ascontiguousarray(0.5 * (c[:, :-1] + c[:, 1:]))


def _fit_kmeans_1d(X_train, K, init, max_iter, rng, n_threads):
    """k-means with K centres on each column of ``X_train``; see :mod:`ivfpq.kernels.kmeans1d`."""
    n, d = X_train.shape
    Xt = np.ascontiguousarray(X_train.T)
    n_trials = 2 + int(math.log(K))
    if init == "k-means++":
        kind = kmeans1d.INIT_KMEANSPP
        uniforms = rng.random((d, 1 + (K - 1) * n_trials))
        given = np.empty((d, 0))
    else:  # "random": K distinct rows of each column, as ivfpq.cluster.init.random_init
        kind = kmeans1d.INIT_GIVEN
        uniforms = np.empty((d, 0))
        given = np.empty((d, K))
        for j in range(d):
            given[j] = Xt[j, rng.choice(n, size=K, replace=False)]
    centers = np.empty((d, K), dtype=np.float64)
    n_iter = np.empty(d, dtype=np.int64)
    inertia = np.empty(d, dtype=np.float64)
    with thread_limits(n_threads):
        kmeans1d.fit_columns(Xt, K, kind, uniforms, n_trials, given, max_iter, centers, n_iter, inertia)
    return centers.astype(np.float32), n_iter, inertia
