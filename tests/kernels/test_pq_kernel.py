"""Kernels of ivfpq.kernels.pq and ivfpq.kernels.kmeans1d against plain-numpy references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivfpq import KMeans
from ivfpq.kernels import kmeans1d
from ivfpq.kernels import pq as kernels

SETTINGS = settings(max_examples=40, deadline=None)


def reference_edge_codes(X, edges):
    codes = np.empty(X.shape, dtype=np.int64)
    for j in range(X.shape[1]):
        left = np.searchsorted(edges[j], X[:, j], side="left")
        right = np.searchsorted(edges[j], X[:, j], side="right")
        codes[:, j] = left + (right - left + 1) // 2
    return codes


def sequential_adc(codes, table):
    """float32 sums in the order m = 0..M-1, the kernels' documented order."""
    acc = np.zeros(codes.shape[0], dtype=np.float32)
    for m in range(codes.shape[1]):
        acc = acc + table[m, codes[:, m].astype(np.int64)]
    return acc


def reference_topk(dist, k):
    order = np.lexsort((np.arange(dist.shape[0]), dist))[:k]
    return dist[order], order


@SETTINGS
@given(nbits=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_encode_by_edges_counts_edges_below_and_splits_ties(nbits, seed):
    rng = np.random.default_rng(seed)
    K = 1 << nbits
    d = 3
    # Small integers make repeated edges (atoms) and values equal to edges common.
    edges = np.sort(rng.integers(-3, 4, size=(d, K - 1)), axis=1).astype(np.float64)
    X = rng.integers(-5, 6, size=(50, d)).astype(np.float32)
    codes = np.empty(X.shape, dtype=np.uint8)
    kernels.encode_by_edges(X, edges, codes)
    assert np.array_equal(codes, reference_edge_codes(X, edges))
    assert codes.max() <= K - 1


def test_encode_by_edges_clamps_at_both_ends():
    edges = np.array([[-1.0, 0.0, 1.0]])
    X = np.array([[-1e30], [-1.0001], [5.0], [1e30], [0.5]], dtype=np.float32)
    codes = np.empty((5, 1), dtype=np.uint8)
    kernels.encode_by_edges(X, edges, codes)
    assert codes[:, 0].tolist() == [0, 0, 3, 3, 2]


@SETTINGS
@given(dsub=st.integers(1, 4), nbits=st.integers(1, 4), integer=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_encode_nearest_is_exact_argmin_with_ties_to_lowest(dsub, nbits, integer, seed):
    rng = np.random.default_rng(seed)
    M, K = 3, 1 << nbits
    if integer:  # many exact ties
        codebooks = rng.integers(-2, 3, size=(M, K, dsub)).astype(np.float32)
        X = rng.integers(-2, 3, size=(40, M * dsub)).astype(np.float32)
    else:
        codebooks = rng.standard_normal((M, K, dsub)).astype(np.float32)
        X = rng.standard_normal((40, M * dsub)).astype(np.float32)
    codes = np.empty((40, M), dtype=np.uint8)
    kernels.encode_nearest(X, codebooks, codes)
    for m in range(M):
        sub = X[:, m * dsub:(m + 1) * dsub].astype(np.float64)
        dist = ((sub[:, None, :] - codebooks[m][None].astype(np.float64)) ** 2).sum(-1)
        assert np.array_equal(codes[:, m], dist.argmin(axis=1))


def test_encode_nearest_maps_centroids_to_themselves_even_when_close():
    # Centroids 1e-4 apart on vectors of norm ~1e3: the float32 expansion alone misorders them.
    rng = np.random.default_rng(0)
    base = rng.standard_normal(8).astype(np.float32) * 400
    codebooks = (base[None, None, :] + rng.standard_normal((1, 16, 8)).astype(np.float32) * 1e-3)
    codes = np.empty((16, 1), dtype=np.uint8)
    kernels.encode_nearest(codebooks[0], codebooks.astype(np.float32), codes)
    assert codes[:, 0].tolist() == list(range(16))


def test_decode_and_tables_match_numpy():
    rng = np.random.default_rng(1)
    M, K, dsub = 4, 16, 3
    codebooks = rng.standard_normal((M, K, dsub)).astype(np.float32)
    codes = rng.integers(0, K, size=(30, M)).astype(np.uint16)
    out = np.empty((30, M * dsub), dtype=np.float32)
    kernels.decode(codes, codebooks, out)
    expected = np.concatenate([codebooks[m][codes[:, m]] for m in range(M)], axis=1)
    assert np.array_equal(out, expected)

    Q = rng.standard_normal((5, M * dsub)).astype(np.float32)
    tables = np.empty((5, M, K), dtype=np.float32)
    kernels.distance_tables(Q, codebooks, tables, False)
    Qs = Q.reshape(5, M, 1, dsub).astype(np.float64)
    l2 = ((Qs - codebooks[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_allclose(tables, l2, rtol=1e-6)
    kernels.distance_tables(Q, codebooks, tables, True)
    np.testing.assert_allclose(tables, (Qs * codebooks[None]).sum(-1), rtol=1e-5, atol=1e-6)


@SETTINGS
@given(n=st.integers(0, 60), k=st.integers(1, 12), M=st.sampled_from([1, 2, 3, 5, 8, 9, 32, 37, 48]),
       nq=st.integers(1, 5),
       integer=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_adc_topk_is_the_k_smallest_pairs_on_every_path(n, k, M, nq, integer, seed):
    rng = np.random.default_rng(seed)
    K = 8
    codes = rng.integers(0, K, size=(n, M)).astype(np.uint8)
    if integer:  # ties everywhere
        tables = rng.integers(0, 3, size=(nq, M, K)).astype(np.float32)
    else:
        tables = rng.random((nq, M, K)).astype(np.float32)
    if seed % 3 == 0:  # negative entries: no early abandoning (inner-product tables)
        tables -= np.float32(0.5)
    results = []
    for n_threads, block in ((1, 65536), (8, 7), (8, 1)):
        dist = np.empty((nq, k), dtype=np.float32)
        ids = np.empty((nq, k), dtype=np.int64)
        kernels.adc_topk(codes, tables, dist, ids, n_threads=n_threads, block=block)
        results.append((dist, ids))
    for q in range(nq):
        full = sequential_adc(codes, tables[q])
        ref_d, ref_i = reference_topk(full, k)
        pad = k - len(ref_i)
        ref_d = np.concatenate([ref_d, np.full(pad, np.inf, np.float32)])
        ref_i = np.concatenate([ref_i, np.full(pad, -1)])
        for dist, ids in results:
            assert np.array_equal(ids[q], ref_i)
            assert np.array_equal(dist[q], ref_d)
        single = np.empty(n, dtype=np.float32)
        kernels.adc_distances(codes, tables[q], single)
        assert np.array_equal(single, full)
        rows = np.arange(n)[::-2].copy()
        some = np.empty(len(rows), dtype=np.float32)
        kernels.adc_distances_at(codes, rows, tables[q], some)
        assert np.array_equal(some, full[rows])


def test_adc_scan_into_heap_reports_given_ids_across_calls():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 16, size=(100, 6)).astype(np.uint8)
    table = rng.integers(0, 4, size=(6, 16)).astype(np.float32)
    ids = rng.permutation(1000)[:100].astype(np.int64)
    heap_d = np.empty(10, dtype=np.float32)
    heap_i = np.empty(10, dtype=np.int64)
    kernels.heap_init(heap_d, heap_i)
    kernels.adc_scan_into_heap(codes[:37], ids[:37], table, heap_d, heap_i)   # two "lists"
    kernels.adc_scan_into_heap(codes[37:], ids[37:], table, heap_d, heap_i)
    kernels.heap_sort(heap_d, heap_i)
    full = sequential_adc(codes, table)
    order = np.lexsort((ids, full))[:10]
    assert np.array_equal(heap_i, ids[order])
    assert np.array_equal(heap_d, full[order])


def test_lloyd_1d_matches_kmeans_from_the_same_start():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 1, 400), rng.normal(6, 0.5, 200)])
    values = np.sort(x)
    init = np.sort(rng.choice(values, size=6, replace=False))
    centers, n_iter, inertia = kmeans1d.lloyd_1d(values, np.ones_like(values), init, 100)
    km = KMeans(6, init=init[:, None], n_init=1, max_iter=100, tol=0.0).fit(x[:, None])
    np.testing.assert_allclose(centers, np.sort(km.cluster_centers_[:, 0]), rtol=1e-9, atol=1e-9)
    assert inertia == pytest.approx(km.inertia_, rel=1e-9)


def test_kmeanspp_1d_picks_distinct_data_values_and_handles_few_distinct_values():
    rng = np.random.default_rng(7)
    values, weights = kmeans1d.sorted_unique(np.sort(rng.standard_normal(500)))
    centers = kmeans1d.kmeanspp_1d(values, weights, 32, rng.random(1 + 31 * 5), 5)
    assert np.all(np.diff(centers) > 0) and np.isin(centers, values).all()

    values, weights = kmeans1d.sorted_unique(np.sort(rng.integers(0, 3, 200).astype(np.float64)))
    assert values.tolist() == [0, 1, 2] and weights.sum() == 200
    centers = kmeans1d.kmeanspp_1d(values, weights, 8, rng.random(1 + 7 * 4), 4)
    assert set(centers.tolist()) == {0.0, 1.0, 2.0}
    final, _, inertia = kmeans1d.lloyd_1d(values, weights, centers, 25)
    assert inertia == 0.0 and set(final.tolist()) == {0.0, 1.0, 2.0}
