"""Exact nearest neighbours (the ground truth) and recall, to measure an index by."""

from __future__ import annotations

import numpy as np

from .._threads import resolve_n_threads, thread_limits
from .._validation import canonical_metric, check_array, check_n_features, check_positive_int
from ..kernels.topk import merge_block_topk, sort_heaps

__all__ = ["ground_truth", "recall", "METRICS"]

METRICS = ("l2", "ip")

# Distances are computed in float64 blocks of about this many bytes.
_BLOCK_BYTES = 16 << 20


def ground_truth(base, queries, k, metric="l2", *, block_rows=None, n_threads=None):
    """Exact ``k`` nearest neighbours of each query in ``base``, by blocked BLAS.

    Distances are computed in float64 (``|q|^2 - 2 q.b + |b|^2`` from one GEMM per
    block of base rows), and a top-k heap per query keeps the best; ties go to the
    smaller row index. Memory is O(queries * block_rows), never n_queries x n_base.

    Parameters
    ----------
    base : array-like of shape (n_base, d)
    queries : array-like of shape (n_queries, d)
    k : int
        Neighbours per query; at most ``n_base``.
    metric : {"l2", "ip"}, default="l2"
        "l2": squared Euclidean distance, smallest first. "ip": inner product,
        largest first. Other spellings: "sqeuclidean" or "euclidean" for "l2",
        "inner_product" or "dot" for "ip" (:data:`ivfpq._validation.METRIC_ALIASES`).
    block_rows : int, optional
        Base rows per block (default: about 16 MB of float64 distances per block).
    n_threads : int or None
        Threads for BLAS and the selection kernel; None follows Numba's setting
        (every core unless ``numba.set_num_threads`` lowered it).

    Returns
    -------
    distances : ndarray of shape (n_queries, k), float32
        Squared L2 distances (ascending) or inner products (descending).
    ids : ndarray of shape (n_queries, k), int64
        Row indices into ``base``.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq import ground_truth
    >>> base = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    >>> distances, ids = ground_truth(base, [[0.9, 0.1]], k=2)
    >>> ids.tolist(), np.round(distances.astype(float), 2).tolist()
    ([[1, 0]], [[0.02, 0.82]])
    """
    base = check_array(base, "base")
    queries = check_array(queries, "queries")
    check_n_features(queries, base.shape[1], "queries", owner="the base")
    k = check_positive_int(k, "k", maximum=base.shape[0])
    metric = canonical_metric(metric, allowed=METRICS)
    n_base = base.shape[0]
    n_queries = queries.shape[0]
    if block_rows is None:
        block_rows = max(256, _BLOCK_BYTES // (8 * max(1, n_queries)))
    else:
        block_rows = check_positive_int(block_rows, "block_rows")
    n_threads = resolve_n_threads(n_threads)

    q64 = queries.astype(np.float64)
    heap_dist = np.full((n_queries, k), np.inf, dtype=np.float64)
    heap_ids = np.full((n_queries, k), -1, dtype=np.int64)
    with thread_limits(n_threads):
        for start in range(0, n_base, block_rows):
            stop = min(n_base, start + block_rows)
            b64 = base[start:stop].astype(np.float64)
            block = q64 @ (b64.T * -2.0) if metric == "l2" else q64 @ (b64.T * -1.0)
            if metric == "l2":
                block += np.einsum("ij,ij->i", b64, b64)[None, :]
            merge_block_topk(block, start, heap_dist, heap_ids)
        sort_heaps(heap_dist, heap_ids)
    if metric == "l2":
        heap_dist += np.einsum("ij,ij->i", q64, q64)[:, None]
        np.maximum(heap_dist, 0.0, out=heap_dist)
    else:
        heap_dist = -heap_dist
    return heap_dist.astype(np.float32), heap_ids


def recall(found, truth, k):
    """Recall@k: the fraction of the true ``k`` nearest ids found among the first ``k`` returned.

    Averaged over queries. Missing results (id -1) count as misses; the order within
    the first ``k`` does not matter.

    Parameters
    ----------
    found : array-like of shape (n_queries, >= k), integer ids returned by an index
    truth : array-like of shape (n_queries, >= k), the exact neighbours' ids
    k : int

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> from ivfpq import recall
    >>> recall([[1, 2, 3], [4, 5, -1]], [[3, 2, 9], [4, 5, 6]], k=2)
    0.75
    """
    found = np.asarray(found)
    truth = np.asarray(truth)
    for name, arr in (("found", found), ("truth", truth)):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_queries, n_neighbours), got shape {arr.shape}")
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    if found.shape[0] != truth.shape[0]:
        raise ValueError(
            f"found has {found.shape[0]} queries but truth has {truth.shape[0]}; they must match"
        )
    k = check_positive_int(k, "k", maximum=min(found.shape[1], truth.shape[1]))
    if found.shape[0] == 0:
        raise ValueError("found and truth hold no queries; recall is undefined")
    f = found[:, :k].astype(np.int64)
    t = truth[:, :k].astype(np.int64)
    n_hits = 0
    chunk = max(1, (1 << 22) // (k * k))  # k x k comparisons per query, a few MB at a time
    for start in range(0, f.shape[0], chunk):
        fc = f[start:start + chunk]
        tc = t[start:start + chunk]
        hits = (fc[:, :, None] == tc[:, None, :]) & (fc[:, :, None] >= 0)
        # Each true id counts once, even if an index returned it twice.
        n_hits += int(hits.any(axis=1).sum())
    return float(n_hits / (k * f.shape[0]))
