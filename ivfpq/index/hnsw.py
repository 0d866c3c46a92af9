"""HNSW over the data, on raw vectors or, after ``compress()``, on PQ codes.

The graph is the one of :mod:`ivfpq.kernels.hnsw` (flat arrays, heuristic neighbour
selection, parallel deterministic batch insertion). Its arrays are kept with spare
capacity, so ``add`` can be called any number of times without quadratic copying.

``compress()`` fits a product quantizer (k-means or tile codebooks) on the vectors
stored so far and replaces them by their codes; from then on every distance runs on
the codes (:mod:`ivfpq.kernels.hnsw_pq`) and vectors added later are stored as codes
only, which is Weaviate's workflow: index the first part of the data uncompressed,
compress, add the rest. With ``keep_raw=True`` the raw vectors stay, and searches
re-score the beam with exact distances.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from .._base import MetricMixin, ParamsMixin
from .._storage import Persistable, load_nested, register_format
from .._threads import numba_threads, resolve_n_threads, thread_limits
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
from .._graph import HNSWGraph, draw_levels, insert_nodes, knn_search, pq_insert_nodes, pq_knn_search
from ..kernels._jit import SERIAL_BELOW, for_queries
from ..kernels.hnsw import search_few
from ..kernels.ivf import rerank_exact
from ..quantize.pq import ProductQuantizer
from ._memory import MemoryUsage, array_bytes, quantizer_bytes
from .metrics import METRICS

__all__ = ["HNSW"]

_MIN_CAPACITY = 1024
# Insertion batches: a batch holds at most this fraction of the nodes already linked
# (and at most _MAX_BATCH nodes). Nodes of one batch do not see each other while they
# search, so smaller batches give better graphs (benchmarks/README.md, "Figures behind
# the code's constants").
_BATCH_FRACTION = 0.02
_MAX_BATCH = 512


def _placeholder(rows, width):
    """A read-only (rows, width) float32 array that takes no memory: the graph object
    reads its shape (the node count), while compressed searches never read vectors."""
    return np.broadcast_to(np.zeros((1, width), dtype=np.float32), (rows, width))


def _default_pq_m(d, codebook):
    if codebook == "tile":
        return d
    for dsub in (4, 5, 3, 6, 8, 2, 7):
        if d % dsub == 0:
            return d // dsub
    return d


@register_format("hnsw", version=1)
class HNSW(MetricMixin, ParamsMixin, Persistable):
    """Hierarchical navigable small-world graph index, optionally over PQ codes.

    Parameters
    ----------
    M : int, default=16
        Neighbours per node on the upper layers; the bottom layer keeps up to ``2 * M``.
    ef_construction : int, default=200
        Beam width of the searches that link a new vector.
    metric : {"l2", "ip"}, default="l2"
        "l2": squared Euclidean distance, smallest first. "ip": inner product, largest
        first (the graph runs on L2 over vectors augmented with
        ``sqrt(R^2 - |x|^2)``, which ranks like the inner product; raw vectors only).
        Other spellings: "sqeuclidean" or "euclidean" for "l2", "inner_product" or
        "dot" for "ip" (:data:`ivfpq._validation.METRIC_ALIASES`).
    ef_search : int, default=64
        Beam width of ``search`` when it is not given one (at least ``k`` is used).
    random_state : int or None, default=None
        Seed of the random node levels, the only randomness of the build.
    n_threads : int or None, default=None
        Threads for adding and searching; None follows Numba's setting (every core unless
        ``numba.set_num_threads`` lowered it). The graph and the
        results do not depend on it.

    Attributes
    ----------
    ntotal : int
    n_features_in_ : int
    pq_ : ProductQuantizer or None
        The quantizer of the codes, after ``compress()``.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq import HNSW
    >>> X = np.random.default_rng(0).standard_normal((3000, 16), dtype=np.float32)
    >>> index = HNSW(M=8, ef_construction=64, random_state=0)
    >>> index.add(X[:1000])
    >>> index.compress(codebook="kmeans", M=8, keep_raw=True)
    >>> index.add(X[1000:])        # stored compressed (and raw, since keep_raw=True)
    >>> distances, ids = index.search(X[:3], k=1, ef_search=32)
    >>> ids.ravel().tolist()
    [0, 1, 2]
    """

    def __init__(self, M=16, ef_construction=200, metric="l2", *, ef_search=64, random_state=None,
                 n_threads=None):
        self.M = M
        self.ef_construction = ef_construction
        self.metric = metric
        self.ef_search = ef_search
        self.random_state = random_state
        self.n_threads = n_threads

    _parameter_constraints = {
        "M": [Interval(int, 2, None)],
        "ef_construction": [Interval(int, 1, None)],
        "metric": [Metric(METRICS)],
        "ef_search": [Interval(int, 1, None)],
        "random_state": ["random_state"],
        "n_threads": [Interval(int, 1, None), None],
    }

    # The arguments of compress(), checked the same way.
    _compress_constraints = {
        "codebook": [Options(("tile", "kmeans"))],
        "M": [Interval(int, 1, None), None],
        "keep_raw": ["boolean"],
        "max_train_points": [Interval(int, 2, None)],
    }

    def _check_params(self):
        validate_params(self, self._parameter_constraints)

    # -- state -------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        """Number of vectors in the index."""
        return getattr(self, "_n", 0)

    def __len__(self):
        return self.ntotal

    @property
    def is_compressed(self) -> bool:
        return getattr(self, "pq_", None) is not None

    @property
    def has_raw(self) -> bool:
        """Whether the raw vectors are stored (always, unless compressed without keep_raw)."""
        return getattr(self, "_has_raw", True)

    def _n_threads(self):
        return resolve_n_threads(self.n_threads)

    def _init_storage(self, d):
        self.n_features_in_ = int(d)
        self._width = d + 1 if self._metric == "ip" else d
        self._n = 0
        self._next_id = 0
        self._radius2 = 0.0
        self._rng = check_random_state(self.random_state)
        self._has_raw = True
        self.pq_ = None
        self._codes = None
        self._upper_rows = 0
        M = self.M
        self._labels = np.zeros(0, dtype=np.int64)
        self._graph = HNSWGraph(
            np.zeros((0, self._width), dtype=np.float32), np.zeros(0, dtype=np.int32),
            np.full((0, 2 * M), -1, dtype=np.int32), np.full((0, M), -1, dtype=np.int32),
            np.full(0, -1, dtype=np.int64), -1, -1, M, 0,
        )

    def _reserve(self, n_needed):
        """Grow the per-node arrays (doubling) to hold ``n_needed`` nodes."""
        g = self._graph
        capacity = g.levels.shape[0]
        if n_needed <= capacity:
            return
        new_cap = max(n_needed, 2 * capacity, _MIN_CAPACITY)
        n = self._n

        def grown(old, fill, shape_tail=()):
            new = np.full((new_cap,) + shape_tail, fill, dtype=old.dtype)
            new[:n] = old[:n]
            return new

        if self._has_raw:
            data = np.zeros((new_cap, self._width), dtype=np.float32)
            data[:n] = g.data[:n]
        else:
            data = _placeholder(new_cap, self._width)
        g.data = data
        g.levels = grown(g.levels, 0)
        g.links0 = grown(g.links0, -1, (g.links0.shape[1],))
        g.upper_offset = grown(g.upper_offset, -1)
        self._labels = grown(self._labels, 0)
        if self._codes is not None:
            self._codes = grown(self._codes, 0, (self._codes.shape[1],))

    def _reserve_upper(self, rows_needed):
        g = self._graph
        if rows_needed <= g.upper.shape[0]:
            return
        new_rows = max(rows_needed, 2 * g.upper.shape[0], 256)
        upper = np.full((new_rows, self.M), -1, dtype=np.int32)
        upper[: self._upper_rows] = g.upper[: self._upper_rows]
        g.upper = upper

    # -- adding ------------------------------------------------------------------------

    def add(self, X, ids=None):
        """Insert vectors into the graph (in parallel batches; deterministic).

        Parameters
        ----------
        X : array-like of shape (n, d)
        ids : array-like of n non-negative ints, optional
            Labels returned by ``search``; default: consecutive numbers after the
            largest id so far.

        After ``compress()``, the vectors are encoded and linked by distances on codes;
        their raw values are kept only with ``compress(keep_raw=True)``.
        """
        self._check_params()
        X = check_array(X, "X", dtype="float32", min_rows=0)
        if not hasattr(self, "_graph"):
            if X.shape[0] == 0:
                return
            self._init_storage(X.shape[1])
        check_n_features(X, self.n_features_in_, "X", owner="HNSW")
        m = X.shape[0]
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + m, dtype=np.int64)
        else:
            ids = check_ids(ids, m, "ids")
        if m == 0:
            return
        self._next_id = max(self._next_id, int(ids.max()) + 1)

        n = self._n
        g = self._graph
        self._reserve(n + m)
        levels = draw_levels(m, self.M, self._rng)
        nodes = np.arange(n, n + m, dtype=np.int64)
        g.levels[n:n + m] = levels
        has_upper = levels > 0
        offsets = self._upper_rows + np.concatenate(([0], np.cumsum(levels, dtype=np.int64)[:-1]))
        g.upper_offset[n:n + m] = np.where(has_upper, offsets, -1)
        self._reserve_upper(self._upper_rows + int(levels.sum()))
        self._upper_rows += int(levels.sum())
        self._labels[n:n + m] = ids
        if self._has_raw:
            self._store_raw(X, n)

        order = nodes
        if g.entry_point < 0:  # the highest node first, so that it is the entry point
            first = int(np.argmax(levels))
            order = np.concatenate(([n + first], np.delete(nodes, first)))
        with thread_limits(self._n_threads()):
            if self.is_compressed:
                self._codes[n:n + m] = self.pq_.encode(X)
                pq_insert_nodes(g, self._codes, self._codebooks, self._codebooks_t, order, X[order - n],
                                self.ef_construction, _BATCH_FRACTION, _MAX_BATCH)
            else:
                insert_nodes(g, order, self.ef_construction, _BATCH_FRACTION, _MAX_BATCH)
        self._n = n + m

    def _store_raw(self, X, start):
        g = self._graph
        d = self.n_features_in_
        g.data[start:start + X.shape[0], :d] = X
        if self._metric == "ip":
            norms2 = np.einsum("ij,ij->i", X, X, dtype=np.float64)
            if norms2.max() > self._radius2:
                self._radius2 = float(norms2.max())
                # The extra coordinate of the vectors already there moves with R; the
                # graph stays valid (query distances shift by a constant).
                old = g.data[:start, :d]
                old2 = np.einsum("ij,ij->i", old, old, dtype=np.float64)
                g.data[:start, d] = np.sqrt(np.maximum(self._radius2 - old2, 0.0))
            g.data[start:start + X.shape[0], d] = np.sqrt(np.maximum(self._radius2 - norms2, 0.0))

    # -- compression -------------------------------------------------------------------

    def compress(self, codebook="tile", M=None, *, nbits=8, keep_raw=False, distribution="auto",
                 max_train_points=65536):
        """Replace the stored vectors by PQ codes; later distances run on the codes.

        Parameters
        ----------
        codebook : {"tile", "kmeans"}, default="tile"
            "tile": one dimension per segment, bins from each dimension's distribution
            (no k-means; ``M`` must be the dimension). "kmeans": k-means codebooks.
        M : int, optional
            Segments. Default: the dimension for "tile"; for "kmeans" about 4
            dimensions per segment.
        nbits : int, default=8
        keep_raw : bool, default=False
            Keep the raw vectors (now and for later additions) so that searches can
            re-score candidates exactly.
        distribution : str, default="auto"
            Tile encoder distribution.
        max_train_points : int, default=65536
            The quantizer is trained on a random sample of at most this many stored vectors.
        """
        self._check_params()
        if not hasattr(self, "_graph") or self._n == 0:
            raise NotFittedError("This HNSW is empty; add vectors before compress()")
        if self.is_compressed:
            raise ValueError("this index is already compressed")
        if self._metric != "l2":
            raise ValueError(
                f"compress() supports metric='l2' only, got metric={self.metric!r}; for cosine "
                "similarity normalise the vectors and use metric='l2'"
            )
        validate_params(dict(codebook=codebook, M=M, keep_raw=keep_raw,
                             max_train_points=max_train_points), self._compress_constraints)
        d = self.n_features_in_
        M = _default_pq_m(d, codebook) if M is None else int(M)
        n = self._n
        X = self._graph.data[:n, :d]
        seed = int(self._rng.integers(0, 2**31 - 1))
        if n > max_train_points:
            rows = np.sort(np.random.default_rng(seed).choice(n, size=max_train_points, replace=False))
            sample = X[rows]
        else:
            sample = X
        pq = ProductQuantizer(M, nbits, codebook=codebook, distribution=distribution,
                              max_train_points=None, random_state=seed, n_threads=self.n_threads)
        pq.fit(sample)
        codes = np.zeros((self._graph.levels.shape[0], M), dtype=pq.code_dtype)
        codes[:n] = pq.encode(X)
        self._set_pq(pq)
        self._codes = codes
        if not keep_raw:
            self._has_raw = False
            self._graph.data = _placeholder(self._graph.levels.shape[0], self._width)

    def _set_pq(self, pq):
        self.pq_ = pq
        self._codebooks = np.ascontiguousarray(pq.codebooks_, dtype=np.float32)
        self._codebooks_t = np.ascontiguousarray(self._codebooks.transpose(0, 2, 1))

    # -- searching ---------------------------------------------------------------------

    def search(self, Q, k, ef_search=None, rescore=None):
        """The (approximate) ``k`` nearest vectors of each query.

        Parameters
        ----------
        Q : array-like of shape (nq, d)
        k : int
        ef_search : int, optional
            Beam width (at least ``k`` is used); default: the index's ``ef_search``.
        rescore : bool, optional
            Compressed index only: re-rank the whole beam by exact distance to the raw
            vectors (needs ``keep_raw=True``). Default: True when raw vectors are kept.

        Returns
        -------
        distances : ndarray of shape (nq, k), float32
            Squared L2 distances ascending (exact, or estimated from the codes for a
            compressed index without re-scoring), or inner products descending.
        ids : ndarray of shape (nq, k), int64
            -1 where fewer than ``k`` vectors were found.
        """
        # The index's parameters were checked when it was built; a search checks only
        # its own arguments (a call can take well under a millisecond).
        if not hasattr(self, "_graph") or self._n == 0:
            raise NotFittedError("This HNSW is empty; add vectors before search()")
        Q = check_array(Q, "Q", dtype="float32")
        check_n_features(Q, self.n_features_in_, "Q", owner="HNSW")
        k = check_positive_int(k, "k")
        ef = max(check_positive_int(self.ef_search if ef_search is None else ef_search, "ef_search"), k)
        compressed = self.is_compressed
        if rescore is None:
            rescore = compressed and self._has_raw
        elif not isinstance(rescore, (bool, np.bool_)):
            raise TypeError(f"rescore must be True or False, got {rescore!r} ({type(rescore).__name__})")
        if rescore and not self._has_raw:
            raise ValueError(
                "rescore needs the raw vectors, but this index was compressed with keep_raw=False"
            )
        g = self._graph
        nq = Q.shape[0]
        inner_product = self._metric == "ip"
        raw = g.data if self._width == self.n_features_in_ else g.data[:, : self.n_features_in_]
        out_dist = np.empty((nq, k), dtype=np.float64)
        out_ids = np.empty((nq, k), dtype=np.int64)
        # A graph search calls no BLAS; n_threads=None keeps the caller's Numba setting.
        threads = nullcontext() if self.n_threads is None else numba_threads(self._n_threads())
        with threads:
            if compressed:
                nodes, approx = pq_knn_search(g, self._codes, self._codebooks, self._codebooks_t, Q,
                                              ef if rescore else k, ef)
            else:
                Qg = Q
                if inner_product:
                    Qg = np.zeros((nq, self._width), dtype=np.float32)
                    Qg[:, : self.n_features_in_] = Q
                if nq < SERIAL_BELOW and g.n_linked > 0:
                    # The same search and re-ranking as below, in one call.
                    visited, epochs = g.scratch()
                    search_few(g.data, Qg, g.links0, g.upper, g.upper_offset, g.entry_point, g.max_level, ef,
                               visited, epochs, self._labels, Q, raw, inner_product, out_dist, out_ids)
                    return self._finish(out_dist, out_ids, inner_product)
                nodes, approx = knn_search(g, Qg, k, ef)
                rescore = True  # exact distances for the k found, sorted with ties by id
            # Where a node is -1 its label is read from the last row and never used:
            # the re-ranking skips those slots, and the copy below overwrites them.
            labels = self._labels[nodes]
            if rescore:
                for_queries(rerank_exact, nq)(Q, nodes, labels, raw, inner_product, out_dist, out_ids)
            else:
                out_dist[:] = approx
                out_ids[:] = np.where(nodes >= 0, labels, -1)
        return self._finish(out_dist, out_ids, inner_product)

    @staticmethod
    def _finish(out_dist, out_ids, inner_product):
        if inner_product:
            np.negative(out_dist, out=out_dist)
        return out_dist.astype(np.float32), out_ids

    # -- memory ------------------------------------------------------------------------

    def memory_usage(self):
        """Bytes this index holds, by part (a :class:`~ivfpq.index._memory.MemoryUsage`).

        Parts: "vectors" (raw float32 rows; with ``metric="ip"`` one extra coordinate
        each; none after ``compress()`` without ``keep_raw``), "codes" (after
        ``compress()``), "links" (the bottom layer's ``2 M`` int32 neighbours per node,
        the upper layers' ``M`` per level, and each node's level and upper offset),
        "ids" (8 bytes each), "codebooks" (the PQ's), "spare" (rows allocated for
        later additions) and "scratch" (the searches' visited marks, one int32 per node
        and thread, kept between calls).

        Examples
        --------
        >>> import numpy as np
        >>> from ivfpq import HNSW
        >>> X = np.random.default_rng(0).standard_normal((1000, 16), dtype=np.float32)
        >>> index = HNSW(M=8, ef_construction=32, random_state=0)
        >>> index.add(X)
        >>> usage = index.memory_usage()
        >>> usage["vectors"] == 1000 * 16 * 4, usage["ids"] == 1000 * 8
        (True, True)
        >>> usage.bytes_per_vector == usage.used / 1000
        True
        """
        if not hasattr(self, "_graph"):
            return MemoryUsage({}, 0)
        g, n = self._graph, self._n
        rows = self._upper_rows
        parts = {
            "vectors": n * self._width * 4 if self._has_raw else 0,
            "codes": self._codes[:n].nbytes if self._codes is not None else 0,
            "links": (g.links0[:n].nbytes + g.upper[:rows].nbytes + g.upper_offset[:n].nbytes
                      + g.levels[:n].nbytes),
            "ids": self._labels[:n].nbytes,
            "codebooks": 0,
        }
        if self.is_compressed:
            parts["codebooks"] = quantizer_bytes(self.pq_, self._codebooks, self._codebooks_t)
        held = array_bytes(g.data if self._has_raw else None, self._codes, g.links0, g.upper,
                           g.upper_offset, g.levels, self._labels)
        parts["spare"] = held - sum(parts[k] for k in ("vectors", "codes", "links", "ids"))
        parts["scratch"] = array_bytes(g._visited, g._epochs)
        return MemoryUsage(parts, n)

    @property
    def nbytes(self) -> int:
        """Bytes this index holds: ``memory_usage().total``."""
        return self.memory_usage().total

    # -- persistence -------------------------------------------------------------------

    def _to_arrays(self):
        meta = {name: getattr(self, name) for name in self._param_names()}
        if not isinstance(meta.get("random_state"), (int, type(None))):
            meta["random_state"] = None
        meta["built"] = hasattr(self, "_graph")
        arrays = {}
        if not meta["built"]:
            return meta, arrays
        g = self._graph
        n = self._n
        meta.update(
            n=n, n_features_in=self.n_features_in_, next_id=self._next_id, radius2=self._radius2,
            entry_point=g.entry_point, max_level=g.max_level, n_linked=g.n_linked,
            upper_rows=self._upper_rows, has_raw=self._has_raw, compressed=self.is_compressed,
            rng_state=self._rng.bit_generator.state,
        )
        arrays.update(
            levels=g.levels[:n], links0=g.links0[:n], upper=g.upper[: self._upper_rows],
            upper_offset=g.upper_offset[:n], labels=self._labels[:n],
        )
        if self._has_raw:
            arrays["vectors"] = g.data[:n]
        if self.is_compressed:
            arrays["codes"] = self._codes[:n]
            pq_meta, pq_arrays = self.pq_._to_arrays()
            meta["pq"] = {"format": self.pq_._format_name, "version": self.pq_._format_version,
                          "meta": pq_meta}
            arrays.update({"pq." + name: value for name, value in pq_arrays.items()})
        return meta, arrays

    @classmethod
    def _from_arrays(cls, archive):
        params = {name: archive.param(name) for name in cls._param_names()}
        obj = cls(**params)
        obj._check_params()
        if not archive.param("built"):
            return obj
        n = int(archive.param("n"))
        d = int(archive.param("n_features_in"))
        obj._init_storage(d)
        M = obj.M
        upper_rows = int(archive.param("upper_rows"))
        levels = archive.array("levels", dtype=np.int32, shape=(n,))
        links0 = archive.array("links0", dtype=np.int32, shape=(n, 2 * M))
        upper = archive.array("upper", dtype=np.int32, shape=(upper_rows, M))
        upper_offset = archive.array("upper_offset", dtype=np.int64, shape=(n,))
        labels = archive.array("labels", dtype=np.int64, shape=(n,))
        if int(levels.sum()) != upper_rows or (n and (links0.max() >= n or upper_offset.max() >= max(upper_rows, 1))):
            raise ValueError("the graph arrays are inconsistent")
        has_raw = bool(archive.param("has_raw"))
        data = archive.array("vectors", dtype=np.float32, shape=(n, obj._width)) if has_raw \
            else _placeholder(n, obj._width)
        g = obj._graph
        g.data = np.ascontiguousarray(data) if has_raw else data
        g.levels, g.links0, g.upper, g.upper_offset = (
            levels.copy(), links0.copy(), upper.copy(), upper_offset.copy())
        g.entry_point = int(archive.param("entry_point"))
        g.max_level = int(archive.param("max_level"))
        g.n_linked = int(archive.param("n_linked"))
        obj._labels = labels.copy()
        obj._n = n
        obj._upper_rows = upper_rows
        obj._has_raw = has_raw
        obj._next_id = int(archive.param("next_id"))
        obj._radius2 = float(archive.param("radius2"))
        obj._rng = np.random.default_rng()
        obj._rng.bit_generator.state = archive.param("rng_state")
        if archive.param("compressed"):
            pq = load_nested(archive, "pq", ProductQuantizer)
            if pq.n_features_in_ != d:
                raise ValueError("the stored quantizer does not match the index's dimension")
            obj._set_pq(pq)
            obj._codes = archive.array("codes", dtype=pq.code_dtype,
                                       shape=(n, pq.codebooks_.shape[0])).copy()
        return obj

