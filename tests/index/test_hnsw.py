import numpy as np
import pytest

import ivfpq
from ivfpq import HNSW, NotFittedError, ground_truth, recall

from .._data import gaussian_mixture


@pytest.fixture(scope="module")
def data():
    X = gaussian_mixture(3000, 16, 20, seed=5, spread=3.0)
    return X[:2900], X[2900:]


@pytest.fixture(scope="module")
def built(data):
    X, _ = data
    index = HNSW(M=8, ef_construction=64, random_state=0)
    index.add(X)
    return index


def test_recall_and_exact_distances(built, data):
    X, Q = data
    truth_dist, truth = ground_truth(X, Q, 10)
    dist, ids = built.search(Q, 10, ef_search=64)
    assert recall(ids, truth, 10) > 0.97
    exact = ((Q[:, None, :].astype(np.float64) - X[ids]) ** 2).sum(-1)
    np.testing.assert_allclose(dist, exact, rtol=1e-5, atol=1e-4)
    assert (np.diff(dist, axis=1) >= 0).all()
    assert recall(built.search(Q, 10, ef_search=10)[1], truth, 10) <= recall(ids, truth, 10)


def test_beam_as_wide_as_the_data_is_exact(data):
    X, Q = data
    index = HNSW(M=8, ef_construction=32, random_state=1)
    index.add(X[:400])
    _, ids = index.search(Q, 10, ef_search=400)
    np.testing.assert_array_equal(ids, ground_truth(X[:400], Q, 10)[1])


def test_results_do_not_depend_on_threads_or_batching(data):
    X, Q = data
    one = HNSW(M=8, ef_construction=48, random_state=2, n_threads=1)
    one.add(X)
    two = HNSW(M=8, ef_construction=48, random_state=2, n_threads=2)
    two.add(X)
    np.testing.assert_array_equal(one.search(Q, 5)[1], two.search(Q, 5)[1])
    np.testing.assert_array_equal(one._graph.links0, two._graph.links0)
    parts = HNSW(M=8, ef_construction=48, random_state=2)
    for start in range(0, len(X), 700):  # capacity grows several times
        parts.add(X[start:start + 700])
    assert parts.ntotal == len(X)
    np.testing.assert_array_equal(parts._graph.levels[: len(X)], one._graph.levels[: len(X)])
    assert recall(parts.search(Q, 10)[1], ground_truth(X, Q, 10)[1], 10) > 0.95


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_one_query_at_a_time_equals_the_batch(data, metric):
    X, Q = data
    index = HNSW(M=8, ef_construction=48, metric=metric, random_state=2)
    index.add(X)
    dist, ids = index.search(Q, 5)
    for q in range(0, len(Q), 9):
        one_dist, one_ids = index.search(Q[q:q + 1], 5)
        np.testing.assert_array_equal(one_ids[0], ids[q])
        np.testing.assert_array_equal(one_dist[0], dist[q])


def test_custom_ids(data):
    X, Q = data
    index = HNSW(M=8, ef_construction=32, random_state=0)
    index.add(X[:500], ids=np.arange(500) * 3 + 1)
    index.add(X[500:600])  # continues after the largest id
    _, ids = index.search(X[[0, 1, 550]], 1, ef_search=32)
    assert ids.ravel().tolist() == [1, 4, 1498 + 51]


def test_inner_product(data):
    X, Q = data
    rng = np.random.default_rng(0)
    Xs = X[:600] * rng.uniform(0.5, 2.0, (600, 1)).astype(np.float32)
    index = HNSW(M=8, ef_construction=64, metric="ip", random_state=0)
    index.add(Xs[:300])
    index.add(Xs[300:] * 2)  # larger norms: the augmentation radius grows
    Xall = np.concatenate([Xs[:300], Xs[300:] * 2])
    dist, ids = index.search(Q, 10, ef_search=600)
    truth_dist, truth = ground_truth(Xall, Q, 10, "ip")
    np.testing.assert_array_equal(ids, truth)
    np.testing.assert_allclose(dist, truth_dist, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("codebook,M", [("tile", 16), ("kmeans", 8)])
def test_compress_then_add_compressed_only(data, codebook, M):
    X, Q = data
    index = HNSW(M=8, ef_construction=64, random_state=0)
    index.add(X[:600])  # 20% uncompressed
    index.compress(codebook=codebook, M=M)
    assert index.is_compressed and not index.has_raw
    index.add(X[600:])
    assert index._graph.data.strides[0] == 0  # no raw vector is stored (a broadcast row)
    assert index._codes.shape[1] == M and index._codes.dtype == np.uint8
    truth = ground_truth(X, Q, 10)[1]
    dist, ids = index.search(Q, 10, ef_search=64)
    assert recall(ids, truth, 10) > (0.8 if codebook == "tile" else 0.5)
    # distances are ADC estimates: the distance to the decoded vectors
    decoded = index.pq_.decode(index._codes[ids.ravel()]).reshape(ids.shape + (16,))
    approx = ((Q[:, None, :].astype(np.float64) - decoded) ** 2).sum(-1)
    np.testing.assert_allclose(dist, approx, rtol=1e-3, atol=1e-2)
    with pytest.raises(ValueError, match="keep_raw=False"):
        index.search(Q, 1, rescore=True)


def test_compress_keep_raw_rescores_exactly(data):
    X, Q = data
    index = HNSW(M=8, ef_construction=64, random_state=0)
    index.add(X[:600])
    index.compress(codebook="kmeans", M=4, keep_raw=True)
    index.add(X[600:])
    truth = ground_truth(X, Q, 10)[1]
    plain = recall(index.search(Q, 10, ef_search=64, rescore=False)[1], truth, 10)
    dist, ids = index.search(Q, 10, ef_search=64)
    assert recall(ids, truth, 10) > max(plain, 0.9)
    exact = ((Q[:, None, :].astype(np.float64) - X[ids]) ** 2).sum(-1)
    np.testing.assert_allclose(dist, exact, rtol=1e-5, atol=1e-4)


def test_errors(data, built):
    X, Q = data
    with pytest.raises(NotFittedError, match="empty"):
        HNSW().search(Q, 1)
    with pytest.raises(NotFittedError, match="empty"):
        HNSW().compress()
    with pytest.raises(ValueError, match="M must be an integer >= 2, got 1"):
        HNSW(M=1).add(X)
    with pytest.raises(ValueError, match="Q has 3 features, but HNSW is expecting 16"):
        built.search(np.zeros((1, 3)), 1)
    with pytest.raises(ValueError, match="ef_search must be an integer >= 1, got 0"):
        built.search(Q, 1, ef_search=0)
    ip = HNSW(M=4, metric="ip")
    ip.add(X[:50])
    with pytest.raises(ValueError, match="metric='l2' only"):
        ip.compress()
    small = HNSW(M=4, random_state=0)
    small.add(X[:300])
    with pytest.raises(ValueError, match="M must equal n_features=16"):
        small.compress("tile", M=8)
    small.compress("tile")
    with pytest.raises(ValueError, match="already compressed"):
        small.compress("tile")


@pytest.mark.parametrize("mode", ["raw", "compressed", "compressed+raw", "ip"])
def test_round_trip_and_continue(tmp_path, data, mode):
    X, Q = data
    index = HNSW(M=8, ef_construction=32, metric="ip" if mode == "ip" else "l2", random_state=3)
    index.add(X[:800])
    if mode.startswith("compressed"):
        index.compress("kmeans", M=4, keep_raw=mode.endswith("raw"))
    loaded = ivfpq.load(index.save(tmp_path / "hnsw.npz"))
    assert isinstance(loaded, HNSW) and loaded.ntotal == 800
    np.testing.assert_array_equal(loaded.search(Q, 5)[1], index.search(Q, 5)[1])
    # the level generator's state is saved: adding more gives the same graph
    index.add(X[800:1200])
    loaded.add(X[800:1200])
    d1, i1 = index.search(Q, 5)
    d2, i2 = loaded.search(Q, 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)


def test_empty_round_trip(tmp_path):
    loaded = ivfpq.load(HNSW(M=6, ef_search=20).save(tmp_path / "e.npz"))
    assert loaded.ntotal == 0 and loaded.M == 6 and loaded.ef_search == 20
