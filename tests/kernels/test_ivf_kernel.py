"""kernels/ivf.py: list scans with one top-k heap per query (ties by lower id), probes,
re-ranking and list maintenance, against NumPy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivfpq.kernels import ivf


def _lists(n, nlist, rng):
    labels = rng.integers(0, nlist, n)
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels, minlength=nlist).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    return order, offsets, sizes


def test_topk_probes_are_the_smallest_columns_ties_to_the_lower():
    scores = np.array([[3.0, 1.0, 1.0, 0.5, 2.0]])
    probes = np.empty((1, 3), dtype=np.int64)
    probe_scores = np.empty((1, 3))
    ivf.ivf_topk_probes(scores, 3, probes, probe_scores)
    assert probes.tolist() == [[3, 1, 2]] and probe_scores.tolist() == [[0.5, 1.0, 1.0]]


def _scan_all_lists(X, Q, nlist, k, rng, inner_product=False, vector_max_norm=0.0):
    """``ivf_flat_search`` of every query through all ``nlist`` lists of ``X``."""
    order, offsets, sizes = _lists(X.shape[0], nlist, rng)
    probes = np.tile(np.arange(nlist), (Q.shape[0], 1))
    out_d = np.empty((Q.shape[0], k))
    out_i = np.empty((Q.shape[0], k), dtype=np.int64)
    ivf.ivf_flat_search(Q, probes, np.ascontiguousarray(X[order]), order.astype(np.int64), offsets, sizes,
                        inner_product, vector_max_norm, out_d, out_i)
    return out_d, out_i


def _assert_brute_force(out_d, out_i, cost, k):
    """Each row of ``out_i`` is the ``k`` least ``cost`` (ties to the lower id), ``out_d``
    their costs."""
    for q in range(cost.shape[0]):
        expect = sorted(range(cost.shape[1]), key=lambda i: (cost[q, i], i))[:k]
        assert out_i[q].tolist() == expect
        np.testing.assert_array_equal(out_d[q], cost[q, expect])


def test_flat_search_of_all_lists_is_brute_force_with_ties_by_id():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, (300, 4)).astype(np.float32)  # many equal distances
    Q = rng.integers(0, 3, (20, 4)).astype(np.float32)
    out_d, out_i = _scan_all_lists(X, Q, 7, 10, rng)
    _assert_brute_force(out_d, out_i, ((Q[:, None, :].astype(np.float64) - X[None]) ** 2).sum(-1), 10)


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e3])
def test_inner_product_search_of_all_lists_is_float64_brute_force(scale):
    # Integer coordinates make many exact ties and near ties that the float32 screen
    # must hand to the float64 comparison; the scale moves them away from unit norm.
    rng = np.random.default_rng(2)
    X = (rng.integers(-2, 3, (400, 24)) * scale).astype(np.float32)
    Q = (rng.integers(-2, 3, (30, 24)) * scale).astype(np.float32)
    max_norm = float(np.sqrt((X.astype(np.float64) ** 2).sum(1).max()))
    out_d, out_i = _scan_all_lists(X, Q, 9, 12, rng, inner_product=True, vector_max_norm=max_norm)
    # The kernel's heap holds negated inner products: the least is the largest product.
    _assert_brute_force(out_d, out_i, -(Q.astype(np.float64) @ X.astype(np.float64).T), 12)


def test_pq_search_carries_the_pool_row_of_each_result():
    rng = np.random.default_rng(1)
    n, M, K = 200, 4, 8
    codes = rng.integers(0, K, (n, M)).astype(np.uint8)
    order, offsets, sizes = _lists(n, 5, rng)
    pool_codes = np.ascontiguousarray(codes[order])
    pool_ids = (order * 10).astype(np.int64)  # ids differ from rows
    tables = rng.integers(0, 4, (3, M, K)).astype(np.float32)  # ties
    probes = np.tile(np.arange(5), (3, 1))
    coarse = np.zeros((3, 5), dtype=np.float32)
    out_d = np.empty((3, 6))
    out_i = np.empty((3, 6), dtype=np.int64)
    out_r = np.empty((3, 6), dtype=np.int64)
    empty = np.zeros((1, 1, 1), np.float32)
    ivf.ivf_pq_search(probes, coarse, tables, empty, np.zeros((1, 1), np.float32),
                      np.zeros((M, K, 1), np.float32), np.zeros((3, 1), np.float32),
                      ivf.TABLE_PER_QUERY, pool_codes, pool_ids, offsets, sizes, out_d, out_i, out_r)
    for q in range(3):
        adc = tables[q][np.arange(M)[None, :], pool_codes].sum(1)
        expect = sorted(range(n), key=lambda r: (adc[r], pool_ids[r]))[:6]
        assert out_r[q].tolist() == expect
        assert out_i[q].tolist() == pool_ids[expect].tolist()


def test_rerank_exact_skips_missing_candidates():
    raw = np.array([[0, 0], [1, 0], [0, 1], [3, 3]], dtype=np.float32)
    Q = np.zeros((1, 2), dtype=np.float32)
    rows = np.array([[3, -1, 2, 1]])
    cand_ids = np.array([[30, -1, 20, 10]])
    out_d = np.empty((1, 3))
    out_i = np.empty((1, 3), dtype=np.int64)
    ivf.rerank_exact(Q, rows, cand_ids, raw, False, out_d, out_i)
    assert out_i.tolist() == [[10, 20, 30]] and out_d.tolist() == [[1.0, 1.0, 18.0]]


def test_mark_removed_and_compact_keep_the_other_rows_in_order():
    pool = np.arange(10, dtype=np.int64)
    offsets = np.array([0, 4, 7], dtype=np.int64)
    sizes = np.array([4, 3, 3], dtype=np.int64)
    keep = np.empty(10, dtype=np.bool_)
    removed = ivf.mark_removed(pool, offsets, sizes, np.array([1, 5, 6]), keep)
    assert removed.tolist() == [1, 2, 0]
    ivf.compact_lists(pool, offsets, sizes, keep)
    assert pool[0:3].tolist() == [0, 2, 3] and pool[4:5].tolist() == [4]
    src = np.array([0]); dst = np.array([10]); counts = np.array([2])
    big = np.concatenate([pool, np.zeros(3, np.int64)])
    ivf.move_segments(big, src, dst, counts)
    assert big[10:12].tolist() == [0, 2]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), nq=st.integers(1, 5), d=st.integers(1, 40), nlist=st.integers(1, 300),
       l2=st.booleans())
def test_probe_scores_few_is_the_batch_product(seed, nq, d, nlist, l2):
    rng = np.random.default_rng(seed)
    # Small integers: every product and sum is exact in float32, whatever the order.
    Q = rng.integers(-4, 5, (nq, d)).astype(np.float32)
    C = rng.integers(-4, 5, (nlist, d)).astype(np.float32)
    scaled_t = np.ascontiguousarray(C.T * np.float32(-2.0 if l2 else -1.0))
    c_sq = (C * C).sum(axis=1).astype(np.float32)
    scores = np.empty((nq, nlist), dtype=np.float32)
    ivf.probe_scores_few(Q, scaled_t, c_sq, l2, scores)
    np.testing.assert_array_equal(scores, Q @ scaled_t + (c_sq if l2 else 0))
