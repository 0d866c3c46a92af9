import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivfpq._graph import build_graph, draw_levels, knn_search, repair_nodes
from ivfpq.kernels.hnsw import search_layer, select_neighbours
from .._data import gaussian_mixture


def _brute_sq(A, B):
    A = A.astype(np.float64)
    B = B.astype(np.float64)
    return ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)


def _blobs(n, d, seed):
    return gaussian_mixture(n, d, 20, seed, spread=3.0)


def _search(graph, query, seeds, ef, min_iterations):
    n = graph.n_nodes
    visited = np.zeros(n, dtype=np.int32)
    cand_d = np.empty(n + 1, np.float32)
    cand_i = np.empty(n + 1, np.int32)
    res_d = np.empty(ef + 2, np.float32)
    res_i = np.empty(ef + 2, np.int32)
    seeds = np.asarray(seeds, dtype=np.int32)
    count, expanded = search_layer(graph.data, np.ascontiguousarray(query, np.float32),
                                   graph.links0, graph.upper, graph.upper_offset, 0, seeds,
                                   seeds.size, ef, min_iterations, visited, 1, cand_d, cand_i,
                                   res_d, res_i)
    return res_i[:count].copy(), res_d[:count].copy(), expanded


@pytest.fixture(scope="module")
def blob_graph():
    data = _blobs(1500, 12, seed=1)
    return data, build_graph(data, M=8, ef_construction=48, seed=0)


def test_knn_search_recall_against_brute_force(blob_graph):
    data, graph = blob_graph
    queries = _blobs(200, 12, seed=2)
    ids, dists = knn_search(graph, queries, k=10, ef=64)
    truth = np.argsort(_brute_sq(queries, data), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])
    assert recall >= 0.95
    # Distances are those of the returned ids, nearest first.
    expected = _brute_sq(queries, data)[np.arange(200)[:, None], ids]
    np.testing.assert_allclose(dists, expected, rtol=1e-4, atol=1e-3)
    assert np.all(np.diff(dists, axis=1) >= 0)


def test_graph_structure(blob_graph):
    data, graph = blob_graph
    n = data.shape[0]
    assert graph.links0.shape == (n, 16)
    assert graph.levels[graph.entry_point] == graph.max_level == graph.levels.max()
    for layer in range(graph.max_level + 1):
        for node in np.flatnonzero(graph.levels >= layer):
            row = graph.neighbours(node, layer)
            assert node not in row
            assert len(set(row.tolist())) == row.size
            assert np.all(graph.levels[row] >= layer)  # links stay on their layer
    assert graph.degree(0).min() >= 1


def test_build_is_deterministic_and_independent_of_threads():
    import numba

    data = _blobs(800, 6, seed=3)
    a = build_graph(data, M=6, ef_construction=32, seed=5)
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = build_graph(data, M=6, ef_construction=32, seed=5)
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(a.links0, b.links0)
    np.testing.assert_array_equal(a.upper, b.upper)
    assert a.entry_point == b.entry_point


def test_select_neighbours_is_the_relative_neighbourhood_rule():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((60, 3)).astype(np.float32)
    base = 0
    cand = np.arange(1, 60, dtype=np.int32)
    dist = _brute_sq(data[base:base + 1], data[cand])[0].astype(np.float32)
    order = np.argsort(dist, kind="stable")
    cand, dist = cand[order], dist[order]
    out = np.empty(12, dtype=np.int32)
    kept = select_neighbours(data, cand, dist, cand.size, 12, out)
    chosen = out[:kept]
    assert np.all(out[kept:] == -1)
    assert chosen[0] == cand[0]  # the nearest candidate is always kept
    pair = _brute_sq(data, data)
    position = {c: i for i, c in enumerate(cand)}
    for a_pos, c in enumerate(chosen):
        for r in chosen[:a_pos]:  # kept: closer to the base than to every earlier kept one
            assert pair[c, r] > dist[position[c]] - 1e-4
    if kept < 12:  # every rejected candidate has a kept one closer to it than the base
        for c in set(cand.tolist()) - set(chosen.tolist()):
            assert any(pair[c, r] <= dist[position[c]] + 1e-4 for r in chosen if position[r] < position[c])


def test_seeded_search_returns_the_seeds_neighbourhood(blob_graph):
    data, graph = blob_graph
    seed = 17
    ids, dists, expanded = _search(graph, data[seed], [seed], ef=graph.n_nodes, min_iterations=1)
    assert ids[0] == seed and dists[0] == 0
    assert set(graph.neighbours(seed).tolist()) <= set(ids.tolist())
    # An unbounded beam from one seed visits the whole (connected) bottom layer, in order.
    assert ids.size == graph.n_nodes
    true = _brute_sq(data[seed:seed + 1], data)[0]
    np.testing.assert_allclose(np.sort(true), dists, rtol=1e-4, atol=1e-3)


def test_min_iterations_is_respected(blob_graph):
    data, graph = blob_graph
    node = 5
    # Seeded at the exact answer with ef=1 the search stops after expanding the seed...
    _, _, expanded = _search(graph, data[node], [node], ef=1, min_iterations=0)
    assert expanded == 1
    # ...unless it is told to expand more.
    for m in (3, 10, 40):
        ids, _, expanded = _search(graph, data[node], [node], ef=1, min_iterations=m)
        assert expanded >= m
        assert ids.tolist() == [node]  # extra expansions never lose the best result


def test_seeds_skip_negative_and_repeated_ids(blob_graph):
    data, graph = blob_graph
    ids, _, _ = _search(graph, data[3], [-1, 3, 3, -1], ef=4, min_iterations=0)
    assert ids[0] == 3 and len(set(ids.tolist())) == ids.size


def test_repair_after_moving_nodes_keeps_search_accurate(blob_graph):
    data, graph = blob_graph
    rng = np.random.default_rng(4)
    moved = rng.choice(data.shape[0], 300, replace=False)
    new_data = data.copy()
    new_data[moved] += rng.standard_normal((300, data.shape[1])).astype(np.float32)
    repaired = build_graph(data, M=8, ef_construction=48, seed=0)
    repaired.data[:] = new_data
    repair_nodes(repaired, moved, ef_construction=48)
    ids, _ = knn_search(repaired, new_data[moved], k=1, ef=32)
    assert np.mean(ids[:, 0] == moved) >= 0.99
    for node in moved[:50]:
        row = repaired.neighbours(node)
        assert node not in row and len(set(row.tolist())) == row.size


def test_draw_levels_follow_the_geometric_law():
    levels = draw_levels(200_000, 16, np.random.default_rng(0))
    share_above = np.mean(levels >= 1)
    assert abs(share_above - 1 / 16) < 0.005
    assert levels.min() == 0


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 80),
    d=st.integers(1, 4),
    M=st.integers(2, 6),
    seed=st.integers(0, 2**16),
    duplicates=st.booleans(),
)
def test_property_structure_and_exact_distances(n, d, M, seed, duplicates):
    rng = np.random.default_rng(seed)
    data = rng.integers(-3, 4, (n, d)).astype(np.float32) if duplicates else \
        rng.standard_normal((n, d)).astype(np.float32)
    graph = build_graph(data, M=M, ef_construction=16, seed=seed)
    assert graph.links0.shape == (n, 2 * M)
    for layer in range(graph.max_level + 1):
        for node in np.flatnonzero(graph.levels >= layer):
            row = graph.neighbours(node, layer)
            assert row.size <= (2 * M if layer == 0 else M)
            assert node not in row and len(set(row.tolist())) == row.size
            assert np.all((row >= 0) & (row < n))
    queries = rng.standard_normal((5, d)).astype(np.float32)
    ids, dists = knn_search(graph, queries, k=3, ef=8)
    for q in range(5):
        found = ids[q][ids[q] >= 0]
        assert 1 <= found.size <= min(3, n)
        assert len(set(found.tolist())) == found.size
        true = _brute_sq(queries[q:q + 1], data[found])[0]
        np.testing.assert_allclose(dists[q][:found.size], true, rtol=1e-4, atol=1e-4)
        assert np.all(np.diff(dists[q][:found.size]) >= 0)
