"""kernels/heap.py: bounded and growing heaps keep the k smallest pairs, ties by lower id."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from ivfpq.kernels.heap import (
    heap_init,
    heap_push,
    heap_sort,
    heap_sort_rows,
    max_pop,
    max_push,
    min_pop,
    min_push,
    sift_down_rows,
    worse,
)


@njit(cache=True)
def _bounded(dists, ids, k):
    hd = np.empty(k, dtype=np.float64)
    hi = np.empty(k, dtype=np.int64)
    heap_init(hd, hi)
    for t in range(dists.shape[0]):
        heap_push(hd, hi, dists[t], ids[t])
    heap_sort(hd, hi)
    return hd, hi


@njit(cache=True)
def _bounded_rows(dists, ids, k):
    hd = np.full(k, np.inf)
    hi = np.full(k, -1, dtype=np.int64)
    rows = np.full(k, -1, dtype=np.int64)
    for t in range(dists.shape[0]):
        if worse(hd[0], hi[0], dists[t], ids[t]):
            sift_down_rows(hd, hi, rows, k, dists[t], ids[t], t)
    heap_sort_rows(hd, hi, rows, k)
    return hd, hi, rows


@njit(cache=True)
def _growing(dists, ids, k):
    """Keep the k best in a growing max-heap; drain all pushed pairs through a min-heap."""
    n = dists.shape[0]
    rd = np.empty(k + 1, dtype=np.float32)
    ri = np.empty(k + 1, dtype=np.int32)
    cd = np.empty(n + 1, dtype=np.float32)
    ci = np.empty(n + 1, dtype=np.int32)
    n_res = 0
    n_cand = 0
    for t in range(n):
        n_cand = min_push(cd, ci, n_cand, dists[t], ids[t])
        n_res = max_push(rd, ri, n_res, dists[t], ids[t])
        if n_res > k:
            n_res = max_pop(rd, ri, n_res)
    best_d = np.empty(n, dtype=np.float32)
    best_i = np.empty(n, dtype=np.int32)
    for t in range(n):
        best_d[t] = cd[0]
        best_i[t] = ci[0]
        n_cand = min_pop(cd, ci, n_cand)
    kept = n_res
    while n_res > 0:  # max-heap drained from the back: nearest first
        d0 = rd[0]
        i0 = ri[0]
        n_res = max_pop(rd, ri, n_res)
        rd[n_res] = d0
        ri[n_res] = i0
    return rd[:kept].copy(), ri[:kept].copy(), best_d, best_i


def _expected(dists, ids, k):
    order = sorted(range(len(dists)), key=lambda t: (dists[t], ids[t]))
    return order[:k]


# Few distinct values, so that ties are common.
pairs = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40)), min_size=1, max_size=60,
                 unique_by=lambda p: p[1])


@settings(max_examples=150, deadline=None)
@given(pairs, st.integers(1, 12))
def test_bounded_heap_keeps_the_k_smallest_with_ties_by_lower_id(items, k):
    dists = np.array([float(d) for d, _ in items])
    ids = np.array([i for _, i in items], dtype=np.int64)
    hd, hi = _bounded(dists, ids, k)
    order = _expected(dists, ids, k)
    assert hi[: len(order)].tolist() == [int(ids[t]) for t in order]
    assert hd[: len(order)].tolist() == [dists[t] for t in order]
    # Fewer items than k: the rest stays empty (+inf, -1), after every real pair.
    assert np.all(hi[len(order):] == -1) and np.all(np.isinf(hd[len(order):]))


@settings(max_examples=100, deadline=None)
@given(pairs, st.integers(1, 12))
def test_payload_follows_its_pair(items, k):
    dists = np.array([float(d) for d, _ in items])
    ids = np.array([i for _, i in items], dtype=np.int64)
    hd, hi, rows = _bounded_rows(dists, ids, k)
    order = _expected(dists, ids, k)
    assert hi[: len(order)].tolist() == [int(ids[t]) for t in order]
    assert rows[: len(order)].tolist() == order


@settings(max_examples=150, deadline=None)
@given(pairs, st.integers(1, 12))
def test_growing_heaps_share_the_tie_rule(items, k):
    dists = np.array([d for d, _ in items], dtype=np.float32)
    ids = np.array([i for _, i in items], dtype=np.int32)
    rd, ri, all_d, all_i = _growing(dists, ids, k)
    order = _expected(dists.tolist(), ids.tolist(), k)
    assert ri.tolist() == [int(ids[t]) for t in order]
    assert rd.tolist() == [float(dists[t]) for t in order]
    # The min-heap pops every pair, best first, ties by lower id.
    full = _expected(dists.tolist(), ids.tolist(), len(items))
    assert all_i.tolist() == [int(ids[t]) for t in full]


def test_empty_slot_ranks_after_a_real_pair_at_inf():
    hd, hi = _bounded(np.array([np.inf, 1.0]), np.array([7, 3], dtype=np.int64), 3)
    assert hi.tolist() == [3, 7, -1]
