"""memory_usage(): every part of IVFFlat, IVFPQ and HNSW in bytes, from the arrays' layout."""

import math

import numpy as np
import pytest

from ivfpq import HNSW, IVFPQ, IVFFlat

from .._data import gaussian_mixture

N, D = 2000, 16


@pytest.fixture(scope="module")
def X():
    return gaussian_mixture(N, D, 10, seed=3)


def check_totals(usage, n):
    assert usage.ntotal == n
    assert usage.total == sum(usage.values())
    assert usage.used == usage.total - usage.get("spare", 0) - usage.get("scratch", 0)
    assert usage.bytes_per_vector == pytest.approx(usage.used / n)
    assert all(v >= 0 for v in usage.values())


def test_empty_indexes_hold_nothing():
    for index in (IVFFlat(4), IVFPQ(4, 4), HNSW()):
        usage = index.memory_usage()
        assert usage.total == 0 and index.nbytes == 0 and math.isnan(usage.bytes_per_vector)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_ivfflat_parts(X, metric):
    index = IVFFlat(8, metric, random_state=0).train(X)
    index.add(X[:1000])
    index.add(X[1000:1500])
    usage = index.memory_usage()
    check_totals(usage, 1500)
    assert usage["vectors"] == 1500 * D * 4 and usage["ids"] == 1500 * 8
    assert usage["lists"] == 3 * 8 * 8
    # centroids, their norms, the augmented (d+1, nlist) and scaled (d, nlist) copies
    assert usage["centroids"] == 8 * D * 4 + 8 * 4 + 8 * (D + 1) * 4 + 8 * D * 4
    assert usage["spare"] > 0  # the lists grow by doubling
    assert index.nbytes == usage.total
    index.compact()
    assert index.memory_usage()["spare"] == 0
    assert index.memory_usage().used == usage.used
    if metric == "l2":  # compacted lists still answer
        assert index.search(X[:3], 1, nprobe=8)[1].ravel().tolist() == [0, 1, 2]


def test_ivfflat_graph_quantizer_counts_its_graph(X):
    exact = IVFFlat(32, quantizer="exact", random_state=0).train(X)
    graph = IVFFlat(32, quantizer="hnsw", random_state=0).train(X)
    assert graph.memory_usage()["centroids"] > exact.memory_usage()["centroids"]


def test_ivfpq_parts(X):
    index = IVFPQ(8, 4, nbits=6, random_state=0).train(X)
    index.add(X)
    usage = index.memory_usage()
    check_totals(usage, N)
    assert usage["codes"] == N * 4 and usage["vectors"] == 0 and usage["ids"] == N * 8
    assert usage["tables"] == 8 * 4 * 64 * 4  # precomputed (nlist, M, 2**nbits) float32
    # codebooks and their transpose, plus two (M, K) norm tables
    assert usage["codebooks"] == 2 * 4 * 64 * 4 * 4 + 2 * 4 * 64 * 4
    raw = IVFPQ(8, 4, nbits=6, keep_raw=True, precompute_tables=False, random_state=0).train(X)
    raw.add(X)
    usage = raw.memory_usage()
    assert usage["vectors"] == N * D * 4 and usage["codes"] == N * 4
    assert usage["tables"] < 8 * 4 * 64 * 4


def test_ivfpq_tile_counts_the_encoder_sample(X):
    index = IVFPQ(4, D, nbits=4, codebook="tile", distribution="empirical", random_state=0).train(X)
    assert index.memory_usage()["codebooks"] >= index.pq_.encoder_.sample_.nbytes


def test_hnsw_parts(X):
    index = HNSW(M=8, ef_construction=32, random_state=0)
    index.add(X[:1200])
    usage = index.memory_usage()
    check_totals(usage, 1200)
    g = index._graph
    assert usage["vectors"] == 1200 * D * 4 and usage["codes"] == 0 and usage["ids"] == 1200 * 8
    upper = int(g.levels[:1200].sum())
    assert usage["links"] == 1200 * 16 * 4 + upper * 8 * 4 + 1200 * 8 + 1200 * 4
    index.search(X[:2], 1)
    # the visited marks stay for the next search: one int32 per node and thread
    assert index.memory_usage()["scratch"] == g._visited.nbytes + g._epochs.nbytes > 0
    index.compress("kmeans", M=4, nbits=6)
    index.add(X[1200:])
    usage = index.memory_usage()
    check_totals(usage, N)
    assert usage["vectors"] == 0 and usage["codes"] == N * 4
    assert usage["codebooks"] == 2 * 4 * 64 * 4 * 4  # codebooks and their transpose


def test_hnsw_ip_stores_one_more_coordinate(X):
    index = HNSW(M=8, ef_construction=32, metric="ip", random_state=0)
    index.add(X[:500])
    assert index.memory_usage()["vectors"] == 500 * (D + 1) * 4


def test_hnsw_compressed_with_raw_keeps_both(X):
    index = HNSW(M=8, ef_construction=32, random_state=0)
    index.add(X[:1000])
    index.compress("kmeans", M=4, nbits=6, keep_raw=True)
    usage = index.memory_usage()
    assert usage["vectors"] == 1000 * D * 4 and usage["codes"] == 1000 * 4
