"""The MOPBucket search kernel: per-row results, never worse than the previous centroid."""

import numpy as np
import pytest

from ivfpq.kernels.coarse import counting_order
from ivfpq._graph import build_graph, draw_levels
from ivfpq.kernels.mop import mop_assign, nearest_link_distances

from .._data import gaussian_mixture


def _run(X, C, graph, state, order, bulk_size=64, ef=8, stay_check=False, projection=None, node_rank=None):
    n = X.shape[0]
    labels, sq = np.empty(n, np.int64), np.empty(n)
    projection = np.ones(X.shape[1]) / np.sqrt(X.shape[1]) if projection is None else projection
    node_rank = np.arange(C.shape[0], dtype=np.int64) if node_rank is None else node_rank
    visited, epochs = graph.scratch()
    mop_assign(X, C, graph.data, graph.links0, graph.upper, graph.upper_offset, graph.entry_point,
               graph.max_level, state, labels, sq, projection, node_rank, order, bulk_size, ef, 2 * ef, 2, True,
               True, False, stay_check, visited, epochs)
    return labels, sq


@pytest.fixture(scope="module")
def problem():
    X = gaussian_mixture(3000, 12, 30, seed=3)
    C = X[np.random.default_rng(0).choice(3000, 150, replace=False)].copy()
    graph = build_graph(C.copy(), 8, 32, levels=draw_levels(150, 8, np.random.default_rng(1)))
    return X, C, graph


def test_a_beam_as_wide_as_k_finds_the_exact_nearest(problem):
    X, C, graph = problem
    state = np.full((3000, 3), -1, np.int32)
    labels, sq = _run(X, C, graph, state, np.arange(3000), ef=150)
    full = ((X[:, None].astype(np.float64) - C[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, full.argmin(1))
    np.testing.assert_allclose(sq, full.min(1), rtol=1e-12)
    assert np.all(state[:, 0] == labels)


def test_results_depend_only_on_each_row_not_on_order_bulks_or_threads(problem):
    import numba

    X, C, graph = problem
    start = np.full((3000, 3), -1, np.int32)
    first, _ = _run(X, C, graph, start, np.arange(3000))  # a warm state to start from
    outcomes = []
    shuffled_rank = np.random.default_rng(3).permutation(150).astype(np.int64)
    for bulk, order, threads, rank in ((64, np.arange(3000), 1, None),
                                       (500, np.random.default_rng(2).permutation(3000), 2, None),
                                       (7, counting_order(first, 150)[0], 2, shuffled_rank),
                                       (300, counting_order(shuffled_rank[first], 150)[0], 2, shuffled_rank)):
        numba.set_num_threads(threads)
        state = start.copy()
        outcomes.append((*_run(X, C, graph, state, order, bulk_size=bulk, node_rank=rank), state))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for labels, sq, state in outcomes[1:]:
        np.testing.assert_array_equal(labels, outcomes[0][0])
        np.testing.assert_array_equal(sq, outcomes[0][1])
        np.testing.assert_array_equal(state, outcomes[0][2])


@pytest.mark.parametrize("stay_check", [False, True])
def test_a_point_never_moves_to_a_farther_centroid(problem, stay_check):
    X, C, graph = problem
    state = np.full((3000, 3), -1, np.int32)
    rng = np.random.default_rng(4)
    state[:, 0] = rng.integers(0, 150, 3000)  # arbitrary previous centroids
    previous = state[:, 0].copy()
    before = ((X.astype(np.float64) - C[previous].astype(np.float64)) ** 2).sum(1)
    labels, sq = _run(X, C, graph, state, np.arange(3000), ef=2, stay_check=stay_check)
    assert np.all(sq <= before * (1 + 1e-12))


def test_nearest_link_distances_are_the_distance_to_the_nearest_neighbour(problem):
    _, C, graph = problem
    radius = nearest_link_distances(graph.data, graph.links0)
    for v in range(0, 150, 17):
        row = graph.links0[v][graph.links0[v] >= 0]
        expected = np.sqrt(((C[row] - C[v]) ** 2).sum(1)).min()
        assert radius[v] == pytest.approx(expected, rel=1e-5)
