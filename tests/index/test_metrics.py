import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivfpq import ground_truth, recall
from ivfpq.kernels.topk import merge_block_topk, sort_heaps


def brute_force(base, queries, k, metric="l2"):
    b = base.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "l2":
        d = ((q[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    else:
        d = -(q @ b.T)
    ids = np.array([np.lexsort((np.arange(len(b)), row))[:k] for row in d])
    dist = np.take_along_axis(d, ids, axis=1)
    return (dist if metric == "l2" else -dist), ids


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("block_rows", [None, 7])
def test_ground_truth_matches_brute_force(metric, block_rows):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((300, 12), dtype=np.float32)
    queries = rng.standard_normal((25, 12), dtype=np.float32)
    dist, ids = ground_truth(base, queries, 10, metric, block_rows=block_rows)
    ref_dist, ref_ids = brute_force(base, queries, 10, metric)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-5, atol=1e-4)
    assert dist.dtype == np.float32 and ids.dtype == np.int64


def test_ground_truth_breaks_ties_by_smaller_index_and_allows_k_equal_n():
    base = np.array([[1, 0], [0, 1], [-1, 0], [0, -1], [0, 0]], dtype=np.float32)
    dist, ids = ground_truth(base, [[0, 0]], k=5, block_rows=2)
    assert ids.tolist() == [[4, 0, 1, 2, 3]]
    assert dist.tolist() == [[0, 1, 1, 1, 1]]


def test_ground_truth_validates():
    base = np.zeros((5, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 5\\]"):
        ground_truth(base, base, 6)
    with pytest.raises(ValueError, match="queries has 2 features, but the base is expecting 3"):
        ground_truth(base, np.zeros((1, 2)), 1)
    with pytest.raises(ValueError, match="metric must be one of 'l2', 'ip'"):
        ground_truth(base, base, 1, metric="cosine")
    with pytest.raises(ValueError, match="NaN"):
        ground_truth(base, [[np.nan, 0, 0]], 1)


def test_recall_counts_true_ids_among_first_k():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall(truth, truth, 3) == 1.0
    assert recall([[3, 2, 1], [6, 5, 4]], truth, 3) == 1.0  # order within k is irrelevant
    assert recall([[1, 9, 9], [-1, -1, -1]], truth, 3) == pytest.approx(1 / 6)  # duplicates once
    assert recall([[1, 2, 7], [4, 0, 5]], truth, 2) == 0.75  # only the first k of each


def test_recall_validates():
    with pytest.raises(ValueError, match="found has 1 queries but truth has 2"):
        recall([[1]], [[1], [2]], 1)
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 1\\]"):
        recall([[1]], [[1, 2]], 2)
    with pytest.raises(TypeError, match="integer ids"):
        recall([[1.0]], [[1]], 1)
    with pytest.raises(ValueError, match="2-D"):
        recall([1], [[1]], 1)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(0, 5), min_size=1, max_size=40),
    k=st.integers(1, 8),
    split=st.integers(0, 40),
)
def test_topk_kernel_is_the_lexicographic_prefix(values, k, split):
    """Merging in two blocks keeps the k smallest (value, index) pairs, ties by index."""
    row = np.array(values, dtype=np.float64)
    split = min(split, row.size)
    heap_d = np.full((1, k), np.inf)
    heap_i = np.full((1, k), -1, dtype=np.int64)
    merge_block_topk(row[None, :split], 0, heap_d, heap_i)
    merge_block_topk(row[None, split:], split, heap_d, heap_i)
    sort_heaps(heap_d, heap_i)
    order = np.lexsort((np.arange(row.size), row))[:k]
    expected = np.full(k, -1)
    expected[: order.size] = order
    assert heap_i[0].tolist() == expected.tolist()
