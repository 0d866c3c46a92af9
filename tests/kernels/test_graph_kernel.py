"""kernels/graph.py through its two bindings: raw L2 (kernels/hnsw.py) and PQ ADC/SDC
(kernels/hnsw_pq.py): exact results on hand-made graphs, recall against brute force."""

import numpy as np
import pytest

from ivfpq import _graph
from ivfpq.kernels._jit import SERIAL_BELOW
from ivfpq.kernels import hnsw, hnsw_pq
from ivfpq.kernels.graph import group_starts, reverse_edges
from ivfpq.quantize.pq import ProductQuantizer


def _line_graph(n, width=4):
    """Nodes on a line (x = 0, 1, ..., n-1), each linked to its two neighbours; one layer."""
    data = np.zeros((n, 2), dtype=np.float32)
    data[:, 0] = np.arange(n)
    links0 = np.full((n, width), -1, dtype=np.int32)
    for v in range(n):
        row = [u for u in (v - 1, v + 1) if 0 <= u < n]
        links0[v, : len(row)] = row
    upper = np.full((0, width // 2), -1, dtype=np.int32)
    upper_offset = np.full(n, -1, dtype=np.int64)
    return data, links0, upper, upper_offset


def _scratch(n, ef):
    return (np.zeros(n, np.int32), np.empty(n + 1, np.float32), np.empty(n + 1, np.int32),
            np.empty(ef + 2, np.float32), np.empty(ef + 2, np.int32))


def _pq_space(data, M=2, nbits=4, seed=0):
    pq = ProductQuantizer(M, nbits, random_state=seed).fit(data)
    codebooks = np.ascontiguousarray(pq.codebooks_, dtype=np.float32)
    codes = np.ascontiguousarray(pq.encode(data))
    return codes, codebooks, np.ascontiguousarray(codebooks.transpose(0, 2, 1))


def test_raw_search_layer_on_a_line_walks_to_the_query():
    data, links0, upper, offset = _line_graph(10)
    visited, cd, ci, rd, ri = _scratch(10, 3)
    query = np.array([7.2, 0.0], dtype=np.float32)
    seeds = np.array([0], dtype=np.int32)
    count, expanded = hnsw.search_layer(data, query, links0, upper, offset, 0, seeds, 1, 3, 0,
                                        visited, 1, cd, ci, rd, ri)
    assert ri[:count].tolist() == [7, 8, 6]
    np.testing.assert_allclose(rd[:count], [0.04, 0.64, 1.44], rtol=1e-5)
    assert expanded >= 8  # it had to walk the line


def test_raw_search_layer_ties_go_to_the_lower_id():
    data, links0, upper, offset = _line_graph(9)
    visited, cd, ci, rd, ri = _scratch(9, 2)
    query = np.array([4.0, 0.0], dtype=np.float32)
    seeds = np.array([8], dtype=np.int32)
    count, _ = hnsw.search_layer(data, query, links0, upper, offset, 0, seeds, 1, 3, 0,
                                 visited, 1, cd, ci, rd, ri)
    assert ri[:count].tolist() == [4, 3, 5]  # 3 and 5 tie at distance 1


def test_greedy_descent_stops_at_a_local_minimum():
    data, links0, upper, offset = _line_graph(6)
    query = np.array([4.4, 0.0], dtype=np.float32)
    start = 0
    node, dist = hnsw.greedy_descent(data, query, links0, upper, offset, start,
                                     hnsw.node_distance(data, start, query), 0, 0)
    assert node == 4 and dist == pytest.approx(0.16, rel=1e-5)


def test_select_neighbours_drops_a_candidate_behind_a_kept_one():
    # Base at the origin; 1 at x=1, 2 at x=2 (behind 1), 3 at y=1.5.
    data = np.array([[0, 0], [1, 0], [2, 0], [0, 1.5]], dtype=np.float32)
    cand_i = np.array([1, 3, 2], dtype=np.int32)
    cand_d = np.array([1.0, 2.25, 4.0], dtype=np.float32)
    out = np.empty(4, dtype=np.int32)
    kept = hnsw.select_neighbours(data, cand_i, cand_d, 3, 4, out)
    assert kept == 2 and out.tolist() == [1, 3, -1, -1]


def test_pq_kernels_on_a_line_match_raw_when_codes_are_exact():
    # Each coordinate takes few values, so the codes reconstruct the vectors exactly:
    # ADC and SDC then equal raw squared L2 and the PQ search equals the raw one.
    data, links0, upper, offset = _line_graph(16)
    space = _pq_space(data, M=2, nbits=4)
    codes, codebooks, _ = space
    recon = np.concatenate([codebooks[m][codes[:, m]] for m in range(2)], axis=1)
    np.testing.assert_array_equal(recon, data)
    table = np.empty((2, codebooks.shape[1]), dtype=np.float32)
    query = np.array([5.4, 0.0], dtype=np.float32)
    hnsw_pq.fill_table_l2(query, space[2], table)
    for label, kernels, q, sp in (("raw", hnsw.KERNELS, query, data), ("pq", hnsw_pq.KERNELS, table, space)):
        visited, cd, ci, rd, ri = _scratch(16, 4)
        count, _ = kernels.search_layer(sp, q, links0, upper, offset, 0, np.array([15], np.int32), 1,
                                        4, 0, visited, 1, cd, ci, rd, ri)
        assert ri[:count].tolist() == [5, 6, 4, 7], label
        np.testing.assert_allclose(rd[:count], [0.16, 0.36, 1.96, 2.56], rtol=1e-5)
    out = np.empty(4, dtype=np.int32)
    kept = hnsw_pq.KERNELS.select_neighbours(space, np.array([1, 2, 3], np.int32),
                                             np.array([1.0, 4.0, 9.0], np.float32), 3, 4, out)
    assert kept == 1 and out[0] == 1  # 2 and 3 lie behind 1 (SDC between stored nodes)


def test_reverse_edges_keys_and_groups():
    links0 = np.array([[1, 2], [0, -1], [0, 1]], dtype=np.int32)
    upper = np.full((0, 1), -1, dtype=np.int32)
    offset = np.full(3, -1, dtype=np.int64)
    levels = np.zeros(3, dtype=np.int32)
    keys = reverse_edges(links0, upper, offset, levels, np.array([0, 2]), 0, 3)
    # (target, source): (1, 0), (2, 0), (0, 2), (1, 2)
    assert (keys // 3).tolist() == [0, 1, 1, 2] and (keys % 3).tolist() == [2, 0, 2, 0]
    assert group_starts(keys, 3).tolist() == [0, 1, 3, 4]
    assert group_starts(keys[:0], 3).tolist() == [0]


def _brute(queries, data):
    d = ((queries[:, None, :].astype(np.float64) - data[None, :, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((15, 16)) * 3
    data = (centres[rng.integers(0, 15, 1200)] + rng.standard_normal((1200, 16))).astype(np.float32)
    queries = (centres[rng.integers(0, 15, 100)] + rng.standard_normal((100, 16))).astype(np.float32)
    return data, queries


def test_raw_knn_search_recall(blobs):
    data, queries = blobs
    graph = _graph.build_graph(data, M=8, ef_construction=48, seed=0)
    ids, _ = _graph.knn_search(graph, queries, k=10, ef=64)
    truth = _brute(queries, data)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])
    assert recall >= 0.95


def test_pq_knn_search_recall_against_adc_brute_force(blobs):
    data, queries = blobs
    codes, codebooks, codebooks_t = space = _pq_space(data, M=8, nbits=6)
    graph = _graph.empty_graph(np.broadcast_to(np.zeros((1, 16), np.float32), data.shape),
                               _graph.draw_levels(1200, 8, np.random.default_rng(0)), 8)
    order = np.argsort(-graph.levels, kind="stable")
    _graph.pq_insert_nodes(graph, codes, codebooks, codebooks_t, order, data[order], 48)
    ids, dists = _graph.pq_knn_search(graph, codes, codebooks, codebooks_t, queries, 10, 64)
    # Truth: brute force over the same ADC distances.
    table = np.empty((8, codebooks.shape[1]), dtype=np.float32)
    adc = np.empty((100, 1200), dtype=np.float32)
    for q in range(100):
        hnsw_pq.fill_table_l2(queries[q], codebooks_t, table)
        adc[q] = table[np.arange(8)[None, :], codes].sum(1)
    truth = np.argsort(adc, axis=1, kind="stable")[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])
    assert recall >= 0.9
    np.testing.assert_allclose(dists, adc[np.arange(100)[:, None], ids], rtol=1e-5)
    assert np.all(np.diff(dists, axis=1) >= 0)
    del space


def test_pq_build_does_not_depend_on_threads(blobs):
    import numba

    data, _ = blobs
    codes, codebooks, codebooks_t = _pq_space(data, M=8, nbits=6)
    levels = _graph.draw_levels(1200, 8, np.random.default_rng(1))
    order = np.argsort(-levels, kind="stable")
    graphs = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            g = _graph.empty_graph(np.zeros((1200, 16), np.float32), levels, 8)
            _graph.pq_insert_nodes(g, codes, codebooks, codebooks_t, order, data[order], 32,
                                   batch_fraction=0.5)
        finally:
            numba.set_num_threads(previous)
        graphs.append(g)
    np.testing.assert_array_equal(graphs[0].links0, graphs[1].links0)
    np.testing.assert_array_equal(graphs[0].upper, graphs[1].upper)


def test_raw_build_does_not_depend_on_threads(blobs):
    import numba

    data, _ = blobs
    graphs = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            graphs.append(_graph.build_graph(data, M=8, ef_construction=32, seed=2,
                                             batch_fraction=0.5))
        finally:
            numba.set_num_threads(previous)
    np.testing.assert_array_equal(graphs[0].links0, graphs[1].links0)
    np.testing.assert_array_equal(graphs[0].upper, graphs[1].upper)


def test_serial_knn_search_equals_the_parallel_one(blobs):
    data, queries = blobs
    graph = _graph.build_graph(data, M=8, ef_construction=48, seed=0)
    results = []
    for kernel in (hnsw.KERNELS.knn_search, hnsw.KERNELS.knn_search_serial):
        out_i = np.full((len(queries), 10), -1, dtype=np.int32)
        out_d = np.full((len(queries), 10), np.inf, dtype=np.float32)
        visited, epochs = graph.scratch()
        kernel(graph.data, queries, graph.links0, graph.upper, graph.upper_offset,
               graph.entry_point, graph.max_level, 64, out_i, out_d, visited, epochs, 4)
        results.append((out_i, out_d))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_knn_search_of_few_queries_equals_a_batch(blobs):
    data, queries = blobs
    graph = _graph.build_graph(data, M=8, ef_construction=48, seed=0)
    batch_ids, batch_d = _graph.knn_search(graph, queries, k=5, ef=32)
    assert len(queries) >= SERIAL_BELOW  # the batch takes the parallel kernel
    for q in range(0, len(queries), 7):
        ids, dist = _graph.knn_search(graph, queries[q:q + 1], k=5, ef=32)
        np.testing.assert_array_equal(ids[0], batch_ids[q])
        np.testing.assert_array_equal(dist[0], batch_d[q])


def test_nodes_inserted_in_one_batch_link_to_each_other():
    # Node 0 is far away; 1 and 2 arrive in one batch and cannot find each other in
    # the graph (which holds only node 0), so only the batch mates can link them.
    data = np.array([[100.0, 0.0], [0.0, 0.0], [0.1, 0.0], [50.0, 0.0]], dtype=np.float32)
    graph = _graph.empty_graph(data, np.zeros(4, dtype=np.int32), M=2)
    _graph.insert_nodes(graph, np.array([0, 1, 2, 3]), ef_construction=8, batch_fraction=10.0)
    assert graph.neighbours(1)[0] == 2
    assert graph.neighbours(2)[0] == 1
    assert 3 in graph.neighbours(0)
