"""Property tests of the first-assignment kernels (two-level BLAS)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ivfpq.kernels.coarse import assign_rows, coarse_groups, counting_order, default_n_groups


def two_level_assign(X, C, state, labels, sq, nprobe=1, seed=0, n_groups=None, block_rows=1024):
    groups = coarse_groups(C, n_groups or default_n_groups(C.shape[0], nprobe), nprobe, state.shape[1],
                           seed)
    assign_rows(X, C, state, labels, sq, groups, 0, X.shape[0], block_rows)


def _integer_data(rng, n, k, d, dtype):
    # Integer values keep every product exact in float32 too, so ties are real ties.
    return rng.integers(-6, 7, (n, d)).astype(dtype), rng.integers(-6, 7, (k, d)).astype(dtype)


def _full(X, C):
    return ((X.astype(np.float64)[:, None] - C.astype(np.float64)[None]) ** 2).sum(-1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 250), k=st.integers(1, 60), d=st.integers(1, 12), width=st.integers(1, 5),
       seed=st.integers(0, 2**31), dtype=st.sampled_from([np.float32, np.float64]))
def test_scanning_every_group_gives_the_exact_nearest_in_order(n, k, d, width, seed, dtype):
    rng = np.random.default_rng(seed)
    X, C = _integer_data(rng, n, k, d, dtype)
    state = np.full((n, width), -7, dtype=np.int32)
    labels = np.empty(n, np.int64)
    sq = np.empty(n)
    two_level_assign(X, C, state, labels, sq, nprobe=k, seed=seed % 1000, n_groups=max(1, k // 4),
                     block_rows=int(rng.integers(1, 64)))
    full = _full(X, C)
    expected = np.argsort(full, axis=1, kind="stable")[:, :width]  # ties: lower index
    got = state[:, :min(width, k)]
    np.testing.assert_array_equal(got, expected[:, :min(width, k)])
    assert np.all(state[:, k:] == -1)
    np.testing.assert_array_equal(labels, full.argmin(1))
    np.testing.assert_array_equal(sq, full.min(1))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(4, 80), d=st.integers(1, 10),
       nprobe=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_partial_scan_keeps_consistent_sorted_candidates(n, k, d, nprobe, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    C = rng.standard_normal((k, d)).astype(np.float32)
    state = np.empty((n, 4), dtype=np.int32)
    labels = np.empty(n, np.int64)
    sq = np.empty(n)
    two_level_assign(X, C, state, labels, sq, nprobe=nprobe, seed=1)
    full = _full(X, C)
    assert np.all((state >= 0) & (state < k))  # k >= 4: always four candidates
    assert np.all([len(set(row)) == 4 for row in state.tolist()])
    np.testing.assert_array_equal(labels, state[:, 0])
    np.testing.assert_allclose(sq, full[np.arange(n), labels], rtol=1e-12)
    kept = np.take_along_axis(full, state.astype(np.int64), axis=1)
    assert np.all(np.diff(kept, axis=1) >= -1e-12 * (1 + kept[:, 1:]))  # nearest first, exactly


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 120), n_groups=st.integers(1, 30), nprobe=st.integers(1, 4),
       width=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_coarse_groups_cover_their_own_members(k, n_groups, nprobe, width, seed):
    C = np.random.default_rng(seed).standard_normal((k, 5)).astype(np.float32)
    means, candidates, starts = coarse_groups(C, n_groups, nprobe, width, seed)
    g = means.shape[0]
    assert g == min(n_groups, k) and starts.shape == (g + 1,) and starts[0] == 0
    assert np.all((candidates >= 0) & (candidates < k))
    member_of = _full(C, means).argmin(1)
    for j in range(g):
        listed = candidates[starts[j]:starts[j + 1]]
        assert len(set(listed.tolist())) == listed.size  # no repeats
        assert listed.size >= min(width, k)
        assert set(np.flatnonzero(member_of == j).tolist()) <= set(listed.tolist())


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 400), n_keys=st.integers(1, 30), seed=st.integers(0, 2**31))
def test_counting_order_is_a_stable_sort(n, n_keys, seed):
    keys = np.random.default_rng(seed).integers(0, n_keys, n).astype(np.int32)
    order, starts = counting_order(keys, n_keys)
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    np.testing.assert_array_equal(starts, np.concatenate(([0], np.cumsum(np.bincount(keys, minlength=n_keys)))))
