"""Inverted-file indexes: the lists are the k-means regions of the data.

``IVFFlat`` stores the vectors themselves; ``IVFPQ`` stores product-quantized codes
of their residuals to the list's centroid. A search looks at the ``nprobe`` lists
whose centroids are nearest to the query.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from .. import _faiss
from .._base import MetricMixin, ParamsMixin
from .._storage import Persistable, load_nested, register_format
from .._threads import resolve_n_threads, search_threads, thread_limits
from .._validation import (
    Interval,
    Metric,
    NotFittedError,
    Options,
    check_array,
    check_ids,
    check_n_features,
    check_positive_int,
    check_random_state,
    validate_params,
)
from ..cluster.kmeans import KMeans
from ..kernels._jit import SERIAL_BELOW, for_queries
from ..kernels.distances import augmented_centroids, default_block_rows, max_norm, nearest_centroids, sq_norms
from ..kernels.ivf import (
    TABLE_PER_LIST,
    TABLE_PER_QUERY,
    TABLE_PRECOMPUTED,
    ivf_flat_search,
    ivf_pq_search,
    ivf_topk_probes,
    ivf_topk_probes_serial,
    probe_scores_few,
    query_tables,
    rerank_exact,
)
from .._graph import build_graph, knn_search
from ..quantize.pq import CODEBOOKS, ProductQuantizer
from ..quantize.tile import DISTRIBUTIONS
from ._lists import InvertedLists
from ._memory import MemoryUsage, array_bytes, quantizer_bytes
from .metrics import METRICS

__all__ = ["IVFFlat", "IVFPQ"]


# Graph coarse quantizer (quantizer="hnsw", or "auto" with nlist >= _GRAPH_NLIST, L2 only)
_GRAPH_NLIST = 16384
_QUANTIZER_M = 16
_QUANTIZER_EFC = 64


class CoarseQuantizer:
    """Nearest centroids of vectors (to fill lists) and of queries (lists to probe).

    L2: by squared distance. Inner product: by largest inner product, as faiss's
    ``IndexIVF*`` with ``METRIC_INNER_PRODUCT`` does.
    """

    def __init__(self, centroids, metric, graph=False, graph_ef=64):
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.metric = metric
        self.graph = None
        self.graph_ef = graph_ef
        if graph:
            # An HNSW graph over the centroids (L2): a query visits about
            # ef * 2M centroids instead of all nlist of them.
            self.graph = build_graph(self.centroids, M=_QUANTIZER_M, ef_construction=_QUANTIZER_EFC,
                                     seed=0)
        self._c_sq = sq_norms(self.centroids)
        self._augmented = augmented_centroids(self.centroids, self._c_sq)
        self._scaled_t = np.ascontiguousarray(
            self.centroids.T * np.float32(-2.0 if metric == "l2" else -1.0)
        )

    @property
    def nlist(self):
        return self.centroids.shape[0]

    def arrays(self):
        """Every array the quantizer holds: centroids, norms, their scaled copies, graph."""
        out = [self.centroids, self._c_sq, self._augmented, self._scaled_t]
        g = self.graph
        if g is not None:
            out += [g.levels, g.links0, g.upper, g.upper_offset, g._visited, g._epochs]
        return out

    def assign(self, X):
        """List number of each row of ``X``."""
        n = X.shape[0]
        if self.graph is not None:
            return self.probes(X, 1)[:, 0]
        labels = np.empty(n, dtype=np.int64)
        if self.metric == "l2":
            sq = np.empty(n, dtype=np.float64)
            nearest_centroids(X, self.centroids, labels, sq, augmented=self._augmented)
        else:
            block = default_block_rows(self.nlist)
            for start in range(0, n, block):
                stop = min(n, start + block)
                labels[start:stop] = (X[start:stop] @ self.centroids.T).argmax(axis=1)
        return labels

    def probes(self, Q, nprobe, with_scores=False):
        """(nq, nprobe) list numbers, best first; ties go to the lower list number.

        With ``with_scores``, also their scores (float32): the squared distance
        ``|q - c|^2`` (L2) or the negated inner product ``-<q, c>`` (IP).
        """
        nq = Q.shape[0]
        if self.graph is not None:
            ids, dists = knn_search(self.graph, Q, nprobe, max(self.graph_ef, nprobe))
            out = ids.astype(np.int64)
            return (out, dists) if with_scores else out
        out = np.empty((nq, nprobe), dtype=np.int64)
        scores_out = np.empty((nq, nprobe), dtype=np.float64)
        if nq < SERIAL_BELOW:
            scores = np.empty((nq, self.nlist), dtype=np.float32)
            probe_scores_few(Q, self._scaled_t, self._c_sq, self.metric == "l2", scores)
            ivf_topk_probes_serial(scores, nprobe, out, scores_out)
        else:
            block = default_block_rows(self.nlist)
            ct = self._scaled_t
            for start in range(0, nq, block):
                stop = min(nq, start + block)
                scores = Q[start:stop] @ ct
                if self.metric == "l2":
                    scores += self._c_sq
                for_queries(ivf_topk_probes, stop - start)(scores, nprobe, out[start:stop],
                                                           scores_out[start:stop])
        if not with_scores:
            return out
        if self.metric == "l2":
            scores_out += sq_norms(Q).astype(np.float64)[:, None]
            np.maximum(scores_out, 0.0, out=scores_out)
        return out, scores_out.astype(np.float32)


class _IVFBase(MetricMixin, ParamsMixin, Persistable):
    """What IVFFlat and IVFPQ share: coarse training, ids, lists, probing, persistence."""

    _parameter_constraints = {
        "nlist": [Interval(int, 1, None)],
        "metric": [Metric(METRICS)],
        "nprobe": [Interval(int, 1, None)],
        "kmeans_iter": [Interval(int, 1, None)],
        "max_points_per_centroid": [Interval(int, 1, None)],
        "kmeans_algorithm": [Options(KMeans._algorithms)],
        "quantizer": [Options(("auto", "exact", "hnsw"))],
        "quantizer_ef": [Interval(int, 1, None)],
        "random_state": ["random_state"],
        "n_threads": [Interval(int, 1, None), None],
    }

    def _check_params(self):
        validate_params(self, self._parameter_constraints)
        if self.quantizer == "hnsw" and self._metric != "l2":
            raise ValueError("quantizer='hnsw' needs metric='l2' (the centroid graph ranks by L2)")

    def _uses_graph(self):
        if self.quantizer == "auto":
            return self._metric == "l2" and self.nlist >= _GRAPH_NLIST
        return self.quantizer == "hnsw"

    # -- state -------------------------------------------------------------------------

    @property
    def is_trained(self) -> bool:
        return hasattr(self, "centroids_")

    @property
    def ntotal(self) -> int:
        """Number of vectors in the index."""
        return self._lists.ntotal if self.is_trained else 0

    def __len__(self):
        return self.ntotal

    def _check_trained(self, what):
        if not self.is_trained:
            raise NotFittedError(
                f"This {type(self).__name__} is not trained yet; call train(X) before {what}()"
            )

    def _n_threads(self):
        return resolve_n_threads(self.n_threads)

    # -- training ----------------------------------------------------------------------

    def _train_sample(self, X, rng):
        """At most ``max_points_per_centroid * nlist`` rows, drawn without replacement."""
        limit = self.max_points_per_centroid * self.nlist
        if X.shape[0] <= limit:
            return X
        rows = np.sort(rng.choice(X.shape[0], size=limit, replace=False))
        return X[rows]

    def _train_coarse(self, X, rng):
        kmeans = KMeans(
            n_clusters=self.nlist,
            algorithm=self.kmeans_algorithm,
            init="random",
            n_init=1,
            max_iter=self.kmeans_iter,
            tol=0.0,
            random_state=int(rng.integers(0, 2**31 - 1)),
            n_threads=self.n_threads,
            # Probes rank lists by <q, c>: with unit centroids that is by direction, and
            # no list draws the queries for being long.
            metric="cosine" if self._metric == "ip" else "l2",
        ).fit(X)
        return kmeans.cluster_centers_.astype(np.float32)

    def _check_train_input(self, X):
        self._check_params()
        X = check_array(X, "X", dtype="float32")
        if X.shape[0] < self.nlist:
            raise ValueError(
                f"X has {X.shape[0]} training vectors but nlist={self.nlist}; at least nlist "
                "vectors are needed to train the coarse quantizer"
            )
        return X

    def _set_coarse(self, centroids, n_features):
        self.centroids_ = np.ascontiguousarray(centroids, dtype=np.float32)
        self.n_features_in_ = int(n_features)
        self._quantizer = CoarseQuantizer(self.centroids_, self._metric, self._uses_graph(),
                                          self.quantizer_ef)
        self._next_id = 0

    # -- adding, removing --------------------------------------------------------------

    def _check_add_input(self, X, ids):
        self._check_trained("add")
        X = check_array(X, "X", dtype="float32", min_rows=0)
        check_n_features(X, self.n_features_in_, "X", owner=type(self).__name__)
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + X.shape[0], dtype=np.int64)
        else:
            ids = check_ids(ids, X.shape[0], "ids")
        if ids.size:
            self._next_id = max(self._next_id, int(ids.max()) + 1)
        return X, ids

    def remove(self, ids):
        """Remove every vector whose id is in ``ids``; return how many were removed.

        Ids that are not in the index are ignored. Cost: one pass over the ids stored.
        """
        self._check_trained("remove")
        ids = check_ids(ids, -1, "ids")
        return self._lists.remove(ids)

    # -- searching ---------------------------------------------------------------------

    def _check_search_input(self, Q, k, nprobe):
        self._check_trained("search")
        Q = check_array(Q, "Q", dtype="float32")
        check_n_features(Q, self.n_features_in_, "Q", owner=type(self).__name__)
        k = check_positive_int(k, "k")
        nprobe = self.nprobe if nprobe is None else nprobe
        nprobe = min(check_positive_int(nprobe, "nprobe"), self.nlist)
        return Q, k, nprobe

    def _finish(self, dist, ids):
        """Heaps hold squared L2 or negated inner products in float64; return float32."""
        if self._metric == "ip":
            dist = -dist
        return dist.astype(np.float32), ids

    # -- memory ------------------------------------------------------------------------

    def _payload_parts(self):
        """Part name of each list payload (the lists' rows, e.g. "vectors", "codes")."""
        return {"vectors": "vectors"}

    def _fixed_parts(self):
        return {}

    def memory_usage(self):
        """Bytes this index holds, by part (a :class:`~ivfpq.index._memory.MemoryUsage`).

        Parts: the payloads of the stored vectors ("vectors" for IVFFlat and for IVFPQ
        with ``keep_raw``, "codes" for IVFPQ), "ids" (8 bytes each), "centroids" (the
        coarse quantizer: centroids, norms and the copies its searches multiply by, and
        its graph if any), "lists" (offset, size and capacity of each list), "spare"
        (rows allocated for later additions), and for IVFPQ "codebooks" and "tables"
        (the precomputed per-list tables). ``bytes_per_vector`` shares the fixed parts
        out over the vectors; :meth:`compact` drops the spare rows.
        """
        if not self.is_trained:
            return MemoryUsage({}, 0)
        lists = self._lists
        n = lists.ntotal
        parts = {name: 0 for name in self._payload_parts().values()}
        for name, (width, dtype) in lists.specs.items():
            parts[self._payload_parts()[name]] += n * width * dtype.itemsize
        parts["ids"] = n * 8
        parts["centroids"] = array_bytes(self.centroids_, *self._quantizer.arrays())
        parts.update(self._fixed_parts())
        parts["lists"] = array_bytes(lists.offsets, lists.sizes, lists.capacities)
        held = array_bytes(lists.ids, *lists.data.values())
        parts["spare"] = held - n * 8 - sum(n * w * dt.itemsize for w, dt in lists.specs.values())
        return MemoryUsage(parts, n)

    @property
    def nbytes(self) -> int:
        """Bytes this index holds: ``memory_usage().total``."""
        return self.memory_usage().total

    def compact(self):
        """Release the rows the lists keep for later additions (see :meth:`memory_usage`)."""
        self._check_trained("compact")
        self._lists.compact(spare=False)

    # -- faiss helpers -----------------------------------------------------------------

    def _faiss_ivf_parts(self, faiss):
        """(quantizer, packed lists) for an export; the quantizer is an exact IndexFlat."""
        self._check_trained("to_faiss")
        quantizer = _faiss.flat_quantizer(faiss, self.centroids_, self._metric)
        return quantizer, self._lists.packed()

    @staticmethod
    def _adopt_quantizer(index, quantizer):
        # The faiss index frees its quantizer when it is freed itself, so the pair
        # outlives this Python reference to the quantizer.
        index.own_fields = True
        quantizer.this.disown()

    @classmethod
    def _from_faiss_ivf(cls, faiss, index, params, kind):
        """(obj, (sizes, ids, codes)) from a trained faiss IVF index of class ``kind``."""
        if not isinstance(index, kind):
            raise TypeError(f"index must be a faiss.{kind.__name__}, got {type(index).__name__}")
        if not index.is_trained:
            raise ValueError(f"the faiss {kind.__name__} is not trained: there is no quantizer to read")
        nlist = int(index.nlist)
        metric = _faiss.metric_from_faiss(faiss, index.metric_type, f"this {kind.__name__}")
        centroids = _faiss.read_centroids(index.quantizer)
        if centroids.shape[0] != nlist:
            raise ValueError(f"the faiss quantizer holds {centroids.shape[0]} centroids for nlist={nlist}")
        for name in ("nlist", "metric"):
            if name in params:
                raise TypeError(f"{name} is read from the faiss index; do not pass it")
        params.setdefault("nprobe", max(1, min(int(index.nprobe), nlist)))
        obj = cls(nlist, metric=metric, **params)
        obj._check_params()
        obj._set_coarse(centroids, index.d)
        packed = _faiss.read_invlists(faiss, index)
        ids = packed[1]
        if ids.size:
            check_ids(ids, -1, "the faiss index's ids")
            obj._next_id = int(ids.max()) + 1
        return obj, packed

    # -- persistence helpers -----------------------------------------------------------

    def _base_meta(self):
        meta = {name: getattr(self, name) for name in self._param_names()}
        if not isinstance(meta.get("random_state"), (int, type(None))):
            meta["random_state"] = None  # a Generator cannot be stored; the trained state is
        meta["trained"] = self.is_trained
        if self.is_trained:
            meta["next_id"] = self._next_id
            meta["n_features_in"] = self.n_features_in_
        return meta

    def _base_arrays(self, payload_names):
        if not self.is_trained:
            return {}
        sizes, ids, data = self._lists.packed()
        arrays = {"centroids": self.centroids_, "list_sizes": sizes, "list_ids": ids}
        for name in payload_names:
            arrays[name] = data[name]
        return arrays

    @classmethod
    def _restore_base(cls, archive, params):
        obj = cls(**params)
        obj._check_params()
        if not archive.param("trained"):
            return obj, None
        d = int(archive.param("n_features_in"))
        nlist = obj.nlist
        centroids = archive.array("centroids", dtype=np.float32, shape=(nlist, d))
        sizes = archive.array("list_sizes", dtype=np.int64, shape=(nlist,))
        total = int(sizes.sum())
        if (sizes < 0).any():
            raise ValueError("negative list size")
        ids = archive.array("list_ids", dtype=np.int64, shape=(total,))
        obj._set_coarse(centroids, d)
        obj._next_id = int(archive.param("next_id"))
        return obj, (sizes, ids)


@register_format("ivf_flat", version=1)
class IVFFlat(_IVFBase):
    """Inverted file over raw vectors: exact distances within the probed lists.

    Parameters
    ----------
    nlist : int
        Number of lists (k-means regions).
    metric : {"l2", "ip"}, default="l2"
        "l2": squared Euclidean distance, smallest first. "ip": inner product,
        largest first, with the lists made by spherical k-means (unit centroids, as
        faiss trains for inner product), so that a list is a cone of directions. Other
        spellings: "sqeuclidean" or "euclidean" for "l2", "inner_product" or "dot" for
        "ip" (:data:`ivfpq._validation.METRIC_ALIASES`).
    nprobe : int, default=1
        Lists searched per query when ``search`` is not given one.
    kmeans_iter : int, default=10
        Lloyd iterations of the coarse k-means (faiss uses 10).
    max_points_per_centroid : int, default=256
        ``train`` clusters a random sample of at most this many vectors per list.
    kmeans_algorithm : {"auto", "lloyd", ...}, default="auto"
        Algorithm of the coarse :class:`ivfpq.KMeans`; "auto" lets KMeans choose
        (its graph assigner for large ``nlist`` where available).
    quantizer : {"auto", "exact", "hnsw"}, default="auto"
        How vectors and queries find their nearest lists: "exact" compares with every
        centroid (BLAS); "hnsw" searches an HNSW graph over the centroids (L2 only),
        cheaper for large ``nlist``; "auto" uses the graph from 16,384 lists.
    quantizer_ef : int, default=64
        Beam width of the graph quantizer (at least ``nprobe`` is used).
    random_state : int or None, default=None
        Seed of the training sample and the k-means initialisation.
    n_threads : int or None, default=None
        Threads for training, adding and searching; None follows Numba's setting
        (every core unless ``numba.set_num_threads`` lowered it). Results do not
        depend on it.

    Attributes
    ----------
    centroids_ : ndarray of shape (nlist, d), float32
    ntotal : int
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq import IVFFlat
    >>> X = np.random.default_rng(0).standard_normal((2000, 16), dtype=np.float32)
    >>> index = IVFFlat(nlist=16, random_state=0)
    >>> _ = index.train(X)
    >>> index.add(X)
    >>> distances, ids = index.search(X[:3], k=1, nprobe=16)
    >>> ids.ravel().tolist()
    [0, 1, 2]
    """

    def __init__(
        self,
        nlist,
        metric="l2",
        *,
        nprobe=1,
        kmeans_iter=10,
        max_points_per_centroid=256,
        kmeans_algorithm="auto",
        quantizer="auto",
        quantizer_ef=64,
        random_state=None,
        n_threads=None,
    ):
        self.nlist = nlist
        self.metric = metric
        self.nprobe = nprobe
        self.kmeans_iter = kmeans_iter
        self.max_points_per_centroid = max_points_per_centroid
        self.kmeans_algorithm = kmeans_algorithm
        self.quantizer = quantizer
        self.quantizer_ef = quantizer_ef
        self.random_state = random_state
        self.n_threads = n_threads
        self._max_norm_of = None  # the lists whose largest vector norm _max_norm holds
        self._max_norm = 0.0

    def train(self, X):
        """Learn the ``nlist`` centroids by k-means on (a sample of) ``X``; empties the index."""
        X = self._check_train_input(X)
        rng = check_random_state(self.random_state)
        with thread_limits(self._n_threads()):
            centroids = self._train_coarse(self._train_sample(X, rng), rng)
        self._set_coarse(centroids, X.shape[1])
        self._lists = InvertedLists(self.nlist, {"vectors": (X.shape[1], np.float32)})
        return self

    def add(self, X, ids=None):
        """Add vectors to the lists of their nearest centroids.

        Parameters
        ----------
        X : array-like of shape (n, d)
        ids : array-like of n non-negative ints, optional
            Default: consecutive numbers after the largest id so far.
        """
        X, ids = self._check_add_input(X, ids)
        if X.shape[0] == 0:
            return
        with thread_limits(self._n_threads()):
            labels = self._quantizer.assign(X)
            self._lists.add(labels, ids, vectors=X)
        if self._max_norm_of is self._lists:
            self._max_norm = max(self._max_norm, max_norm(X))

    def search(self, Q, k, nprobe=None):
        """The ``k`` nearest stored vectors of each query among its ``nprobe`` nearest lists.

        Returns
        -------
        distances : ndarray of shape (nq, k), float32
            Squared L2 distances (ascending) or inner products (descending).
        ids : ndarray of shape (nq, k), int64
            -1 where fewer than ``k`` vectors were found.

        With ``nprobe == nlist`` the answer is exact (ties go to the smaller id).
        """
        Q, k, nprobe = self._check_search_input(Q, k, nprobe)
        dist = np.empty((Q.shape[0], k), dtype=np.float64)
        ids = np.empty((Q.shape[0], k), dtype=np.int64)
        lists = self._lists
        scan = for_queries(ivf_flat_search, Q.shape[0])
        # A few queries run serial kernels and no BLAS: no thread count to set.
        threads = nullcontext() if Q.shape[0] < SERIAL_BELOW else search_threads(self._n_threads())
        with threads:
            probes = self._quantizer.probes(Q, nprobe)
            scan(Q, probes, lists.data["vectors"], lists.ids, lists.offsets, lists.sizes,
                 self._metric == "ip", self._vector_max_norm() if self._metric == "ip" else 0.0, dist, ids)
        return self._finish(dist, ids)

    def _vector_max_norm(self):
        """An upper bound on the norms of the stored vectors (for the inner-product
        screen of the scan): the largest norm ever added, found once per set of lists."""
        lists = self._lists
        if self._max_norm_of is not lists:
            rows = lists.live_rows()
            vectors = lists.data["vectors"]
            self._max_norm = max((max_norm(vectors[rows[i:i + 65536]]) for i in range(0, rows.size, 65536)),
                                 default=0.0)
            self._max_norm_of = lists
        return self._max_norm

    def reconstruct(self, id_):
        """The stored vector with id ``id_`` (the first one, if the id was added twice)."""
        self._check_trained("reconstruct")
        id_ = int(check_ids(id_, 1, "id_")[0])
        lists = self._lists
        live = np.flatnonzero(lists.sizes)
        for l in live:
            hit = np.flatnonzero(lists.list_ids(l) == id_)
            if hit.size:
                return lists.list_data("vectors", l)[hit[0]].copy()
        raise KeyError(f"id {id_} is not in the index")

    # -- faiss -------------------------------------------------------------------------

    def to_faiss(self):
        """This index as a ``faiss.IndexIVFFlat`` (needs faiss).

        The faiss index gets the same centroids (in an ``IndexFlatL2``, or
        ``IndexFlatIP`` for ``metric="ip"``), the same lists in the same order (ids and
        vectors), and ``nprobe``: at equal ``nprobe`` a search returns the same
        neighbours, up to the order of exactly tied distances. Vectors added to it
        later go to the same lists as here. The faiss quantizer compares a query with
        every centroid, so an index built with ``quantizer="hnsw"`` (whose graph finds
        the nearest centroids approximately) may probe slightly different lists.

        Returns
        -------
        faiss.IndexIVFFlat
            It owns its quantizer.

        Examples
        --------
        >>> import numpy as np
        >>> from ivfpq import IVFFlat
        >>> X = np.random.default_rng(0).standard_normal((2000, 16), dtype=np.float32)
        >>> index = IVFFlat(nlist=16, nprobe=4, random_state=0).train(X)
        >>> index.add(X)
        >>> findex = index.to_faiss()                       # doctest: +SKIP
        >>> bool((findex.search(X[:5], 3)[1] == index.search(X[:5], 3)[1]).all())  # doctest: +SKIP
        True
        >>> IVFFlat.from_faiss(findex).ntotal               # doctest: +SKIP
        2000
        """
        faiss = _faiss.require_faiss()
        quantizer, (sizes, ids, data) = self._faiss_ivf_parts(faiss)
        index = faiss.IndexIVFFlat(quantizer, self.n_features_in_, self.nlist,
                                   _faiss.faiss_metric(faiss, self._metric))
        self._adopt_quantizer(index, quantizer)
        index.nprobe = min(self.nprobe, self.nlist)
        _faiss.fill_invlists(faiss, index, sizes, ids, data["vectors"].view(np.uint8))
        return index

    @classmethod
    def from_faiss(cls, index, **params):
        """An IVFFlat with the centroids (and lists) of a trained faiss index.

        Parameters
        ----------
        index : faiss.IndexIVFFlat or faiss.IndexFlat
            An ``IndexIVFFlat``: its quantizer's centroids, its metric, ``nprobe`` and
            its lists (ids and vectors, in faiss's order). An ``IndexFlatL2`` /
            ``IndexFlatIP`` (e.g. the ``index`` of a trained ``faiss.Kmeans``): its
            vectors become the centroids of an empty index.
        **params
            Other parameters of :class:`IVFFlat` (``n_threads``, ``quantizer``, ...);
            ``nlist`` and ``metric`` come from the faiss index.

        Returns
        -------
        IVFFlat
            Trained; searches give faiss's neighbours at the same ``nprobe``.
        """
        faiss = _faiss.require_faiss()
        index = _faiss.concrete(faiss, index)
        if isinstance(index, faiss.IndexIVFFlatDedup):
            raise ValueError("an IndexIVFFlatDedup keeps one copy of duplicate vectors in its "
                             "lists; IVFFlat has no such lists")
        if isinstance(index, faiss.IndexFlat):
            centroids = _faiss.read_centroids(index)
            if centroids.shape[0] == 0:
                raise ValueError("the faiss IndexFlat is empty: it holds no centroids")
            metric = _faiss.metric_from_faiss(faiss, index.metric_type, "this IndexFlat")
            obj = cls(centroids.shape[0], metric=metric, **params)
            obj._check_params()
            obj._set_coarse(centroids, centroids.shape[1])
            obj._lists = InvertedLists(obj.nlist, {"vectors": (centroids.shape[1], np.float32)})
            return obj
        obj, (sizes, ids, codes) = cls._from_faiss_ivf(faiss, index, params, faiss.IndexIVFFlat)
        d = obj.n_features_in_
        vectors = codes.view(np.float32).reshape(ids.shape[0], d)
        obj._lists = InvertedLists.from_packed(obj.nlist, {"vectors": (d, np.float32)}, sizes, ids,
                                               {"vectors": vectors})
        return obj

    # -- persistence -------------------------------------------------------------------

    def _to_arrays(self):
        return self._base_meta(), self._base_arrays(["vectors"])

    @classmethod
    def _from_arrays(cls, archive):
        params = {name: archive.param(name) for name in cls._param_names()}
        obj, packed = cls._restore_base(archive, params)
        if packed is None:
            return obj
        sizes, ids = packed
        d = obj.n_features_in_
        vectors = archive.array("vectors", dtype=np.float32, shape=(ids.shape[0], d))
        obj._lists = InvertedLists.from_packed(
            obj.nlist, {"vectors": (d, np.float32)}, sizes, ids, {"vectors": vectors}
        )
        return obj


# ----------------------------------------------------------------------------- IVF-PQ

# Precomputed per-list tables (nlist x M x 2**nbits float32) are used up to this size.
_PRECOMPUTED_TABLE_BYTES = 256 << 20
# Per-query tables of one search block take at most about this much memory.
_QUERY_TABLE_BYTES = 32 << 20


@register_format("ivf_pq", version=1)
class IVFPQ(_IVFBase):
    """Inverted file over product-quantized residuals (or vectors): compact and fast.

    Each vector goes to the list of its nearest centroid ``c`` and is stored as the PQ
    code of ``x - c`` (``by_residual=True``) or of ``x``: ``M`` bytes at ``nbits=8``.
    A search scans the probed lists' codes with asymmetric distance tables (ADC);
    for L2 on residuals the per-list part of the table is precomputed at training,
    as in faiss, so a probed list costs one table addition and the scan.

    Parameters
    ----------
    nlist : int
        Number of lists (k-means regions).
    M : int
        PQ sub-spaces; must divide the dimension. Must equal it for ``codebook="tile"``.
    nbits : int, default=8
        Bits per sub-space code (codes are uint8 up to 8 bits, uint16 above).
    codebook : {"kmeans", "tile"}, default="kmeans"
        How the PQ codebooks are made (see :class:`ivfpq.ProductQuantizer`).
    by_residual : bool, default=True
        Encode ``x - c`` (more accurate) rather than ``x``.
    metric : {"l2", "ip"}, default="l2"
    nprobe : int, default=1
        Lists searched per query when ``search`` is not given one.
    keep_raw : bool, default=False
        Also keep the raw vectors (4 d bytes each), so that searches can re-rank
        candidates exactly (``refine``).
    refine : int or None, default=None
        Default re-ranking factor of ``search``: the ``k * refine`` best candidates by
        ADC are re-ranked by exact distance. Needs ``keep_raw=True``.
    distribution : str, default="auto"
        Tile encoder distribution (``codebook="tile"`` only).
    kmeans_iter : int, default=10
        Lloyd iterations of the coarse k-means.
    max_points_per_centroid : int, default=256
        The coarse k-means trains on at most this many vectors per list.
    kmeans_algorithm : {"auto", "lloyd", ...}, default="auto"
        Algorithm of the coarse :class:`ivfpq.KMeans`; "auto" lets KMeans choose
        (its graph assigner for large ``nlist`` where available).
    quantizer : {"auto", "exact", "hnsw"}, default="auto"
        How vectors and queries find their nearest lists: "exact" compares with every
        centroid (BLAS); "hnsw" searches an HNSW graph over the centroids (L2 only),
        cheaper for large ``nlist``; "auto" uses the graph from 16,384 lists.
    quantizer_ef : int, default=64
        Beam width of the graph quantizer (at least ``nprobe`` is used).
    pq_iter : int, default=25
        Lloyd iterations of each sub-space's k-means (faiss uses 25).
    pq_init : {"random", "k-means++"}, default="random"
        Initialisation of the sub-space k-means ("random" as faiss).
    precompute_tables : {"auto", True, False}, default="auto"
        Precompute the per-list L2 tables when they take at most 256 MB ("auto").
    random_state : int or None, default=None
    n_threads : int or None, default=None
        Threads for training, adding and searching; results do not depend on it.

    Attributes
    ----------
    centroids_ : ndarray of shape (nlist, d), float32
    pq_ : ProductQuantizer
        The fitted quantizer of the residuals (or vectors).
    ntotal : int

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq import IVFPQ
    >>> X = np.random.default_rng(0).standard_normal((5000, 16), dtype=np.float32)
    >>> index = IVFPQ(nlist=16, M=4, nbits=6, keep_raw=True, random_state=0)
    >>> _ = index.train(X)
    >>> index.add(X)
    >>> distances, ids = index.search(X[:3], k=1, nprobe=16, refine=8)
    >>> ids.ravel().tolist()
    [0, 1, 2]
    """

    def __init__(
        self,
        nlist,
        M,
        nbits=8,
        codebook="kmeans",
        by_residual=True,
        metric="l2",
        *,
        nprobe=1,
        keep_raw=False,
        refine=None,
        distribution="auto",
        kmeans_iter=10,
        max_points_per_centroid=256,
        pq_iter=25,
        pq_init="random",
        precompute_tables="auto",
        kmeans_algorithm="auto",
        quantizer="auto",
        quantizer_ef=64,
        random_state=None,
        n_threads=None,
    ):
        self.nlist = nlist
        self.M = M
        self.nbits = nbits
        self.codebook = codebook
        self.by_residual = by_residual
        self.metric = metric
        self.nprobe = nprobe
        self.keep_raw = keep_raw
        self.refine = refine
        self.distribution = distribution
        self.kmeans_iter = kmeans_iter
        self.max_points_per_centroid = max_points_per_centroid
        self.pq_iter = pq_iter
        self.pq_init = pq_init
        self.precompute_tables = precompute_tables
        self.kmeans_algorithm = kmeans_algorithm
        self.quantizer = quantizer
        self.quantizer_ef = quantizer_ef
        self.random_state = random_state
        self.n_threads = n_threads

    _parameter_constraints = {
        **_IVFBase._parameter_constraints,
        "M": [Interval(int, 1, None)],
        "nbits": [Interval(int, 1, 16)],
        "codebook": [Options(CODEBOOKS)],
        "by_residual": ["boolean"],
        "keep_raw": ["boolean"],
        "refine": [Interval(int, 1, None), None],
        "distribution": [Options(DISTRIBUTIONS)],
        "pq_iter": [Interval(int, 1, None)],
        "pq_init": [Options(("random", "k-means++"))],
        "precompute_tables": [Options(("auto",)), "boolean"],
    }

    def _check_params(self):
        super()._check_params()
        if self.refine is not None and not self.keep_raw:
            raise ValueError("refine needs the raw vectors: set keep_raw=True or refine=None")

    def _make_pq(self, seed, d):
        # Sub-space k-means multiplies blocks of (rows x dsub+1) by (dsub+1 x 2**nbits):
        # at dsub <= 16 such GEMMs are too thin for BLAS threads (benchmarks/README.md,
        # "Figures behind the code's constants"). The codebooks do not depend on the
        # thread count.
        n_threads = 1 if d // self.M <= 16 else self.n_threads
        return ProductQuantizer(
            self.M, self.nbits, codebook=self.codebook, distribution=self.distribution,
            metric="l2", init=self.pq_init, max_iter=self.pq_iter, max_train_points=None,
            random_state=seed, n_threads=n_threads,
        )

    # -- training ----------------------------------------------------------------------

    def train(self, X):
        """Learn the coarse centroids and the PQ codebooks of the residuals; empties the index."""
        X = self._check_train_input(X)
        n, d = X.shape
        if d % self.M:
            raise ValueError(f"M={self.M} must divide the dimension d={d}")
        if self.codebook == "tile" and self.M != d:
            raise ValueError(
                f"codebook='tile' encodes one dimension per segment, so M must equal d={d}; got M={self.M}"
            )
        rng = check_random_state(self.random_state)
        with thread_limits(self._n_threads()):
            centroids = self._train_coarse(self._train_sample(X, rng), rng)
            self._set_coarse(centroids, d)
            # The PQ trains on at most 256 vectors per code word, as faiss's does.
            limit = 256 * (1 << self.nbits)
            sample = X if n <= limit else X[np.sort(rng.choice(n, size=limit, replace=False))]
            if self.by_residual:
                sample = sample - self.centroids_[self._quantizer.assign(sample)]
            pq = self._make_pq(int(rng.integers(0, 2**31 - 1)), d)
            pq.fit(sample)
        pq.n_threads = self.n_threads  # encoding, unlike the thin k-means, uses every thread
        self._set_pq(pq)
        self._new_lists()
        return self

    def _new_lists(self):
        payloads = {"codes": (self.M, self.pq_.code_dtype)}
        if self.keep_raw:
            payloads["vectors"] = (self.n_features_in_, np.float32)
        self._lists = InvertedLists(self.nlist, payloads)

    def _set_pq(self, pq):
        self.pq_ = pq
        codebooks = np.ascontiguousarray(pq.codebooks_, dtype=np.float32)
        self._codebooks = codebooks
        M, K, dsub = codebooks.shape
        self._codebooks_t = np.ascontiguousarray(codebooks.transpose(0, 2, 1))
        self._c_sq = np.einsum("mkd,mkd->mk", codebooks, codebooks).astype(np.float32)
        self._zero_c_sq = np.zeros((M, K), dtype=np.float32)
        self._mode = TABLE_PER_QUERY
        self._list_tables = np.zeros((0, M, K), dtype=np.float32)
        if self.by_residual and self._metric == "l2":
            size = self.nlist * M * K * 4
            auto = isinstance(self.precompute_tables, str)
            if (auto and size <= _PRECOMPUTED_TABLE_BYTES) or (not auto and self.precompute_tables):
                self._mode = TABLE_PRECOMPUTED
                # |r|^2 + 2 <c, r> for every list c and code word r of each sub-space
                C = self.centroids_.reshape(self.nlist, M, dsub).transpose(1, 0, 2)
                cross = np.matmul(C, codebooks.transpose(0, 2, 1))  # (M, nlist, K)
                norms = np.einsum("mkd,mkd->mk", codebooks, codebooks)
                tables = 2.0 * cross + norms[:, None, :]
                self._list_tables = np.ascontiguousarray(tables.transpose(1, 0, 2), dtype=np.float32)
            else:
                self._mode = TABLE_PER_LIST

    # -- memory ------------------------------------------------------------------------

    def _payload_parts(self):
        return {"codes": "codes", "vectors": "vectors"}

    def _fixed_parts(self):
        return {
            "codebooks": quantizer_bytes(self.pq_, self._codebooks, self._codebooks_t, self._c_sq,
                                         self._zero_c_sq),
            "tables": array_bytes(self._list_tables),
        }

    # -- adding ------------------------------------------------------------------------

    def add(self, X, ids=None):
        """Encode and add vectors to the lists of their nearest centroids.

        Parameters
        ----------
        X : array-like of shape (n, d)
        ids : array-like of n non-negative ints, optional
            Default: consecutive numbers after the largest id so far.
        """
        X, ids = self._check_add_input(X, ids)
        if X.shape[0] == 0:
            return
        with thread_limits(self._n_threads()):
            labels = self._quantizer.assign(X)
            residuals = X - self.centroids_[labels] if self.by_residual else X
        codes = self.pq_.encode(residuals)
        rows = {"codes": codes}
        if self.keep_raw:
            rows["vectors"] = X
        self._lists.add(labels, ids, **rows)

    # -- searching ---------------------------------------------------------------------

    def _query_tables(self, Q):
        """Per-query tables (nq, M, K) for the scan kernel's mode (see ivf_pq_search)."""
        M, K, _ = self._codebooks.shape
        tables = np.empty((Q.shape[0], M, K), dtype=np.float32)
        if self._mode == TABLE_PER_LIST:
            return np.zeros((Q.shape[0], 1, 1), dtype=np.float32)  # unused by the kernel
        if self._mode == TABLE_PRECOMPUTED:  # the -2 <q, r> term
            query_tables(Q, self._codebooks_t, np.float32(-2.0), np.float32(0.0), self._zero_c_sq, tables)
        elif self._metric == "ip":  # -<q, r>: the scan keeps the smallest
            query_tables(Q, self._codebooks_t, np.float32(-1.0), np.float32(0.0), self._zero_c_sq, tables)
        else:  # |q - r|^2
            query_tables(Q, self._codebooks_t, np.float32(-2.0), np.float32(1.0), self._c_sq, tables)
        return tables

    def search(self, Q, k, nprobe=None, refine=None):
        """The ``k`` nearest stored vectors of each query among its ``nprobe`` nearest lists.

        Parameters
        ----------
        Q : array-like of shape (nq, d)
        k : int
        nprobe : int, optional
            Default: the index's ``nprobe``; clipped to ``nlist``.
        refine : int, optional
            Re-rank the ``k * refine`` best candidates by ADC with exact distances to
            the raw vectors (needs ``keep_raw=True``). Default: the index's ``refine``.

        Returns
        -------
        distances : ndarray of shape (nq, k), float32
            Estimated (or, with ``refine``, exact) squared L2 distances ascending, or
            inner products descending.
        ids : ndarray of shape (nq, k), int64
            -1 where fewer than ``k`` vectors were found.
        """
        Q, k, nprobe = self._check_search_input(Q, k, nprobe)
        refine = self.refine if refine is None else refine
        if refine is not None:
            refine = check_positive_int(refine, "refine")
            if not self.keep_raw:
                raise ValueError(
                    "refine needs the raw vectors, but this index was built with keep_raw=False"
                )
        kk = k * refine if refine else k
        nq = Q.shape[0]
        M, K, _ = self._codebooks.shape
        out_dist = np.empty((nq, k), dtype=np.float64)
        out_ids = np.empty((nq, k), dtype=np.int64)
        lists = self._lists
        block = max(1, _QUERY_TABLE_BYTES // (M * K * 4))
        scan = for_queries(ivf_pq_search, nq)
        rerank = for_queries(rerank_exact, nq)
        with search_threads(self._n_threads()):
            for start in range(0, nq, block):
                stop = min(nq, start + block)
                Qb = Q[start:stop]
                probes, coarse = self._quantizer.probes(Qb, nprobe, with_scores=True)
                if not self.by_residual or self._mode == TABLE_PER_LIST:
                    coarse = np.zeros_like(coarse)
                tables = self._query_tables(Qb)
                dist = np.empty((stop - start, kk), dtype=np.float64)
                ids = np.empty((stop - start, kk), dtype=np.int64)
                rows = np.empty((stop - start, kk), dtype=np.int64)
                scan(probes, coarse, tables, self._list_tables, self.centroids_, self._codebooks,
                     Qb, self._mode, lists.data["codes"], lists.ids, lists.offsets, lists.sizes,
                     dist, ids, rows)
                if refine:
                    rerank(Qb, rows, ids, lists.data["vectors"], self._metric == "ip",
                           out_dist[start:stop], out_ids[start:stop])
                else:
                    out_dist[start:stop] = dist
                    out_ids[start:stop] = ids
        return self._finish(out_dist, out_ids)

    # -- faiss -------------------------------------------------------------------------

    def to_faiss(self):
        """This index as a ``faiss.IndexIVFPQ`` (needs faiss).

        The same centroids (in an ``IndexFlatL2`` / ``IndexFlatIP``), PQ codebooks
        (``pq.centroids``), ``by_residual``, ``nprobe`` and lists (ids and codes, packed
        as faiss packs ``nbits``-bit codes): at equal ``nprobe`` a search returns the
        same neighbours, up to the order of distances tied within float32 rounding
        (faiss adds the table entries in another order). faiss encodes vectors added
        to it later as :meth:`add` does. The faiss quantizer is exact (see
        :meth:`IVFFlat.to_faiss` on ``quantizer="hnsw"``).

        With ``refine`` set the result is a ``faiss.IndexRefineFlat`` over the
        ``IndexIVFPQ``, with ``k_factor = refine`` and the raw vectors: it re-ranks
        the ``k * refine`` best candidates exactly, as :meth:`search` does. faiss finds
        a candidate's raw vector by its position, so this needs the ids to be
        ``0 .. ntotal - 1``. With ``keep_raw`` and no ``refine``, the raw vectors are
        not exported.

        Raises
        ------
        ValueError
            For tile codebooks (see :meth:`ProductQuantizer.to_faiss`), and for
            ``refine`` with ids other than ``0 .. ntotal - 1``.

        Examples
        --------
        >>> import numpy as np
        >>> from ivfpq import IVFPQ
        >>> X = np.random.default_rng(0).standard_normal((5000, 16), dtype=np.float32)
        >>> index = IVFPQ(nlist=16, M=4, nprobe=4, random_state=0).train(X)
        >>> index.add(X)
        >>> findex = index.to_faiss()                       # doctest: +SKIP
        >>> findex.pq.M, findex.nprobe, findex.ntotal       # doctest: +SKIP
        (4, 4, 5000)
        >>> IVFPQ.from_faiss(findex).search(X[:2], 1)[1].shape   # doctest: +SKIP
        (2, 1)
        """
        faiss = _faiss.require_faiss()
        self._check_trained("to_faiss")
        fpq = self.pq_.to_faiss()  # raises for tile codebooks
        if self.refine is not None:
            ids = self._lists.packed()[1]
            if not np.array_equal(np.sort(ids), np.arange(ids.shape[0])):
                raise ValueError(
                    "refine cannot be exported to faiss with these ids: faiss's IndexRefineFlat "
                    "finds a candidate's raw vector by its id as a position, so the ids must be "
                    "0 .. ntotal - 1, each once; export with refine=None (set_params) instead"
                )
        quantizer, (sizes, ids, data) = self._faiss_ivf_parts(faiss)
        d, M, nbits = self.n_features_in_, self.M, self.pq_._fitted_nbits()
        index = faiss.IndexIVFPQ(quantizer, d, self.nlist, M, nbits,
                                 _faiss.faiss_metric(faiss, self._metric))
        self._adopt_quantizer(index, quantizer)
        index.by_residual = bool(self.by_residual)
        faiss.copy_array_to_vector(faiss.vector_to_array(fpq.centroids), index.pq.centroids)
        index.is_trained = True
        index.precompute_table()
        index.nprobe = min(self.nprobe, self.nlist)
        _faiss.fill_invlists(faiss, index, sizes, ids, _faiss.pack_codes(data["codes"], nbits))
        if self.refine is None:
            return index
        raw = np.empty((ids.shape[0], d), dtype=np.float32)
        raw[ids] = data["vectors"]
        refined = faiss.IndexRefineFlat(index, faiss.swig_ptr(raw))
        refined.k_factor = float(self.refine)
        # The refine index keeps the IVF-PQ alive and frees it with itself.
        refined.own_fields = True
        index.this.disown()
        return refined

    @classmethod
    def from_faiss(cls, index, **params):
        """An IVFPQ with the centroids, PQ codebooks and lists of a trained faiss ``IndexIVFPQ``.

        Parameters
        ----------
        index : faiss.IndexIVFPQ
            Its metric, ``nlist``, ``pq`` (M, nbits, codebooks), ``by_residual``,
            ``nprobe`` and lists (ids and codes, in faiss's order) are read.
        **params
            Other parameters of :class:`IVFPQ` (``n_threads``, ``precompute_tables``,
            ...). ``keep_raw`` must stay False: the faiss lists hold codes only.

        Returns
        -------
        IVFPQ
            Trained (``codebook="kmeans"``); ``pq_`` is
            :meth:`ProductQuantizer.from_faiss` of the index's ``pq``.
        """
        faiss = _faiss.require_faiss()
        index = _faiss.concrete(faiss, index)
        if isinstance(index, faiss.IndexIVFPQR):
            raise ValueError("an IndexIVFPQR re-ranks with a second PQ of the residuals, which "
                             "IVFPQ does not have; export its IndexIVFPQ part only")
        if isinstance(index, faiss.IndexIVFPQ):
            fpq = index.pq
            params = {"M": int(fpq.M), "nbits": int(fpq.nbits), "by_residual": bool(index.by_residual),
                      **params}
        if params.get("keep_raw"):
            raise ValueError("keep_raw=True needs raw vectors, which a faiss IndexIVFPQ does not store")
        obj, (sizes, ids, packed) = cls._from_faiss_ivf(faiss, index, params, faiss.IndexIVFPQ)
        pq = ProductQuantizer.from_faiss(index.pq, n_threads=obj.n_threads)
        obj._set_pq(pq)
        codes = _faiss.unpack_codes(packed, obj.M, pq._fitted_nbits(), pq.code_dtype)
        obj._lists = InvertedLists.from_packed(obj.nlist, {"codes": (obj.M, pq.code_dtype)}, sizes,
                                               ids, {"codes": codes})
        return obj

    # -- persistence -------------------------------------------------------------------

    def _to_arrays(self):
        meta = self._base_meta()
        payloads = ["codes"] + (["vectors"] if self.keep_raw else [])
        arrays = self._base_arrays(payloads)
        if self.is_trained:
            pq_meta, pq_arrays = self.pq_._to_arrays()
            meta["pq"] = {"format": self.pq_._format_name, "version": self.pq_._format_version,
                          "meta": pq_meta}
            arrays.update({"pq." + name: value for name, value in pq_arrays.items()})
        return meta, arrays

    @classmethod
    def _from_arrays(cls, archive):
        params = {name: archive.param(name) for name in cls._param_names()}
        obj, packed = cls._restore_base(archive, params)
        if packed is None:
            return obj
        sizes, ids = packed
        pq = load_nested(archive, "pq", ProductQuantizer)
        d = obj.n_features_in_
        if pq.codebooks_.shape[0] != obj.M or pq.n_features_in_ != d:
            raise ValueError("the stored quantizer does not match the index's M and dimension")
        obj._set_pq(pq)
        payloads = {"codes": (obj.M, pq.code_dtype)}
        data = {"codes": archive.array("codes", dtype=pq.code_dtype, shape=(ids.shape[0], obj.M))}
        if obj.keep_raw:
            payloads["vectors"] = (d, np.float32)
            data["vectors"] = archive.array("vectors", dtype=np.float32, shape=(ids.shape[0], d))
        obj._lists = InvertedLists.from_packed(obj.nlist, payloads, sizes, ids, data)
        return obj
