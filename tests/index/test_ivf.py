import numpy as np
import pytest

from ivfpq import IVFFlat, NotFittedError, ground_truth, recall
from ivfpq.index._lists import InvertedLists

from .._data import gaussian_mixture


@pytest.fixture(scope="module")
def clustered():
    X = gaussian_mixture(3000, 16, 20, seed=1, spread=5.0)
    return X[:2900], X[2900:]


@pytest.fixture(scope="module")
def trained(clustered):
    X, _ = clustered
    index = IVFFlat(nlist=16, random_state=0)
    index.train(X)
    index.add(X)
    return index


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_nprobe_equal_nlist_is_brute_force(clustered, metric):
    X, Q = clustered
    index = IVFFlat(nlist=16, metric=metric, random_state=0)
    index.train(X)
    index.add(X)
    dist, ids = index.search(Q, 10, nprobe=16)
    ref_dist, ref_ids = ground_truth(X, Q, 10, metric)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-5, atol=1e-3)


def test_exact_with_ties_on_integer_data():
    """Integer data: every distance is exact, many tie; ties go to the smaller id."""
    rng = np.random.default_rng(2)
    X = rng.integers(0, 3, (500, 4)).astype(np.float32)
    index = IVFFlat(nlist=5, random_state=0)
    index.train(X)
    index.add(X)
    _, ids = index.search(X[:40], 7, nprobe=5)
    _, ref = ground_truth(X, X[:40], 7)
    np.testing.assert_array_equal(ids, ref)


def test_recall_grows_with_nprobe(trained, clustered):
    X, Q = clustered
    _, truth = ground_truth(X, Q, 10)
    recalls = [recall(trained.search(Q, 10, nprobe=p)[1], truth, 10) for p in (1, 4, 16)]
    assert recalls[0] < recalls[2] == 1.0
    assert recalls[0] <= recalls[1] <= recalls[2]
    assert recalls[1] > 0.9


def test_incremental_add_matches_one_add(clustered):
    X, Q = clustered
    one = IVFFlat(nlist=16, random_state=0)
    one.train(X)
    one.add(X)
    many = IVFFlat(nlist=16, random_state=0)
    many.train(X)
    start = 0
    for size in [1, 2, 5, 50, 7, 300, 1, 1000, 1534]:  # lists grow, move and get compacted
        many.add(X[start:start + size])
        start += size
    assert start == len(X) and many.ntotal == len(X)
    for nprobe in (2, 16):
        d1, i1 = one.search(Q, 8, nprobe=nprobe)
        d2, i2 = many.search(Q, 8, nprobe=nprobe)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(d1, d2)


def test_custom_ids_remove_and_readd(clustered):
    X, Q = clustered
    index = IVFFlat(nlist=8, random_state=0)
    index.train(X)
    ids = np.arange(len(X)) * 10 + 7
    index.add(X, ids=ids)
    _, found = index.search(X[:5], 1, nprobe=8)
    assert found.ravel().tolist() == ids[:5].tolist()
    assert index.remove(ids[:5].tolist() + [1, 2, 3]) == 5  # absent ids are ignored
    assert index.ntotal == len(X) - 5
    _, found = index.search(X[:5], 3, nprobe=8)
    assert not np.isin(found, ids[:5]).any()
    _, all_found = index.search(Q, 50, nprobe=8)
    assert not np.isin(all_found, ids[:5]).any()
    index.add(X[:2])  # default ids continue after the largest id so far
    _, found = index.search(X[:2], 1, nprobe=8)
    assert found.ravel().tolist() == [ids.max() + 1, ids.max() + 2]
    np.testing.assert_array_equal(index.reconstruct(ids[10]), X[10])
    with pytest.raises(KeyError, match="not in the index"):
        index.reconstruct(ids[0])


def test_fewer_results_than_k_are_padded(clustered):
    X, _ = clustered
    index = IVFFlat(nlist=4, random_state=0)
    index.train(X)
    index.add(X[:3])
    dist, ids = index.search(X[:2], 5, nprobe=4)
    assert (ids[:, 3:] == -1).all() and np.isinf(dist[:, 3:]).all()
    assert sorted(ids[0, :3].tolist()) == [0, 1, 2]


def test_ip_returns_largest_inner_products_first(clustered):
    X, Q = clustered
    index = IVFFlat(nlist=4, metric="ip", random_state=0)
    index.train(X)
    index.add(X)
    dist, ids = index.search(Q[:3], 5, nprobe=4)
    assert (np.diff(dist, axis=1) <= 0).all()
    np.testing.assert_allclose(dist, np.einsum("qd,qkd->qk", Q[:3], X[ids]), rtol=1e-5)


def test_ip_search_stays_exact_after_adding_longer_vectors(clustered):
    # The scan's float32 screen is bounded by the largest stored norm; a search made
    # before an add must not leave a stale, smaller bound behind.
    X, Q = clustered
    index = IVFFlat(nlist=4, metric="ip", random_state=0)
    index.train(X)
    index.add(X[:100])
    index.search(Q[:2], 5, nprobe=4)
    longer = X[100:200] * np.float32(50.0)
    index.add(longer)
    stored = np.concatenate([X[:100], longer]).astype(np.float64)
    dist, ids = index.search(Q[:5], 10, nprobe=4)
    ip = Q[:5].astype(np.float64) @ stored.T
    expect = np.array([sorted(range(200), key=lambda i: (-row[i], i))[:10] for row in ip])
    np.testing.assert_array_equal(ids, expect)


def test_ip_norm_bound_covers_exactly_the_live_rows(clustered):
    X, _ = clustered
    X = X.copy()
    X[7] *= np.float32(30.0)
    index = IVFFlat(nlist=4, metric="ip", random_state=0)
    index.train(X)
    index.add(X)
    assert index._vector_max_norm() == pytest.approx(np.linalg.norm(X, axis=1).max(), rel=1e-6)
    index.remove([7])
    index.compact()
    index._max_norm_of = None  # as after a load: found again from the lists
    assert index._vector_max_norm() == pytest.approx(np.linalg.norm(np.delete(X, 7, 0), axis=1).max(), rel=1e-6)


def test_float64_input_and_caller_arrays_untouched(clustered):
    X, Q = clustered
    X64 = X.astype(np.float64)
    before = X64.copy()
    index = IVFFlat(nlist=4, random_state=0)
    index.train(X64)
    index.add(X64)
    np.testing.assert_array_equal(X64, before)
    _, ids = index.search(Q.astype(np.float64), 1, nprobe=4)
    _, ref = ground_truth(X, Q, 1)
    np.testing.assert_array_equal(ids, ref)


def test_results_do_not_depend_on_threads(trained, clustered):
    _, Q = clustered
    trained.n_threads = 1
    one = trained.search(Q, 10, nprobe=3)
    trained.n_threads = None
    two = trained.search(Q, 10, nprobe=3)
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[0], two[0])


def test_errors(clustered, trained):
    X, Q = clustered
    fresh = IVFFlat(nlist=4)
    with pytest.raises(NotFittedError, match="call train\\(X\\) before search"):
        fresh.search(Q, 1)
    with pytest.raises(NotFittedError, match="before add"):
        fresh.add(X)
    with pytest.raises(ValueError, match="nlist=4000"):
        IVFFlat(nlist=4000).train(X)
    with pytest.raises(ValueError, match="metric must be one of"):
        IVFFlat(nlist=4, metric="cosine").train(X)
    with pytest.raises(TypeError, match="nlist must be an integer"):
        IVFFlat(nlist=2.5).train(X)
    with pytest.raises(ValueError, match="Q has 3 features, but IVFFlat is expecting 16 features"):
        trained.search(np.zeros((1, 3)), 1)
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        trained.search(Q, 0)
    with pytest.raises(ValueError, match="nprobe must be an integer >= 1, got 0"):
        trained.search(Q, 1, nprobe=0)
    with pytest.raises(ValueError, match="ids must have length 2"):
        trained.add(X[:2], ids=[1, 2, 3])
    with pytest.raises(ValueError, match="ids must be non-negative"):
        trained.add(X[:1], ids=[-4])
    with pytest.raises(TypeError, match="ids must hold integers"):
        trained.add(X[:1], ids=[1.5])
    with pytest.raises(ValueError, match="NaN"):
        trained.add(np.full((1, 16), np.nan))
    # nprobe above nlist is clipped to nlist
    np.testing.assert_array_equal(trained.search(Q, 3, nprobe=99)[1], trained.search(Q, 3, nprobe=16)[1])


def test_inverted_lists_keep_contents_through_growth_and_removal():
    rng = np.random.default_rng(0)
    lists = InvertedLists(7, {"v": (3, np.float32), "c": (2, np.uint8)})
    expected = {}
    next_id = 0
    for step in range(60):
        n = int(rng.integers(0, 200))
        labels = rng.integers(0, 7, n)
        ids = np.arange(next_id, next_id + n)
        next_id += n
        v = rng.standard_normal((n, 3), dtype=np.float32)
        c = rng.integers(0, 255, (n, 2)).astype(np.uint8)
        lists.add(labels, ids, v=v, c=c)
        for i in range(n):
            expected[ids[i]] = (labels[i], v[i], c[i])
        if step % 10 == 9:
            gone = rng.choice(next_id, 100, replace=False)
            removed = lists.remove(gone)
            assert removed == sum(1 for g in gone if g in expected)
            for g in gone:
                expected.pop(g, None)
    assert lists.ntotal == len(expected)
    assert lists.end <= 4 * max(1, lists.ntotal) + 7 * 8  # garbage is reclaimed
    for l in range(7):
        for pos, i in enumerate(lists.list_ids(l)):
            label, v, c = expected[i]
            assert label == l
            np.testing.assert_array_equal(lists.list_data("v", l)[pos], v)
            np.testing.assert_array_equal(lists.list_data("c", l)[pos], c)


# ----------------------------------------------------------------------------- IVFPQ

from ivfpq import IVFPQ  # noqa: E402


@pytest.fixture(scope="module")
def pq_data():
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((30, 16)).astype(np.float32) * 4
    X = centers[rng.integers(0, 30, 4000)] + rng.standard_normal((4000, 16), dtype=np.float32)
    return X[:3800], X[3800:]


def _adc_reference(index, Q, ids_found):
    """|q - (c + decode(code))|^2 for each returned id, from the public pieces."""
    lists = index._lists
    out = np.empty(ids_found.shape)
    for qi in range(Q.shape[0]):
        for t, i in enumerate(ids_found[qi]):
            for l in range(index.nlist):
                hit = np.flatnonzero(lists.list_ids(l) == i)
                if hit.size:
                    code = lists.list_data("codes", l)[hit[:1]]
                    recon = index.pq_.decode(code)[0]
                    if index.by_residual:
                        recon = recon + index.centroids_[l]
                    out[qi, t] = ((Q[qi].astype(np.float64) - recon) ** 2).sum()
    return out


@pytest.mark.parametrize("options", [
    dict(), dict(precompute_tables=False), dict(by_residual=False),
])
def test_ivfpq_distances_are_adc_to_the_reconstruction(pq_data, options):
    X, Q = pq_data
    index = IVFPQ(nlist=8, M=4, nbits=5, random_state=0, **options)
    index.train(X)
    index.add(X)
    dist, ids = index.search(Q[:10], 5, nprobe=3)
    np.testing.assert_allclose(dist, _adc_reference(index, Q[:10], ids), rtol=1e-4, atol=1e-3)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_ivfpq_table_modes_agree(pq_data):
    X, Q = pq_data
    results = []
    for pre in (True, False):
        index = IVFPQ(nlist=8, M=4, nbits=5, precompute_tables=pre, random_state=0)
        index.train(X)
        index.add(X)
        results.append(index.search(Q, 10, nprobe=4))
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_ivfpq_recall_and_exact_refine(pq_data, metric):
    X, Q = pq_data
    index = IVFPQ(nlist=8, M=8, nbits=6, metric=metric, keep_raw=True, random_state=0)
    index.train(X)
    index.add(X)
    _, truth = ground_truth(X, Q, 10, metric)
    plain = recall(index.search(Q, 10, nprobe=8)[1], truth, 10)
    refined_dist, refined_ids = index.search(Q, 10, nprobe=8, refine=20)
    assert plain > 0.4
    assert recall(refined_ids, truth, 10) > max(plain, 0.97)
    # re-ranked distances are exact
    exact = ((Q[:, None, :].astype(np.float64) - X[refined_ids]) ** 2).sum(-1) if metric == "l2" \
        else np.einsum("qd,qkd->qk", Q.astype(np.float64), X[refined_ids].astype(np.float64))
    np.testing.assert_allclose(refined_dist, exact, rtol=1e-5, atol=1e-3)


def test_ivfpq_tile_codebook_and_remove(pq_data):
    X, Q = pq_data
    index = IVFPQ(nlist=8, M=16, codebook="tile", random_state=0)
    index.train(X)
    index.add(X[:2000])
    index.add(X[2000:])
    _, truth = ground_truth(X, Q, 10)
    assert recall(index.search(Q, 10, nprobe=8)[1], truth, 10) > 0.8
    assert index.remove(np.arange(0, 3800, 2)) == 1900 and index.ntotal == 1900
    _, ids = index.search(Q, 20, nprobe=8)
    assert (ids % 2 == 1).all()


def test_ivfpq_errors(pq_data):
    X, Q = pq_data
    with pytest.raises(ValueError, match="M=5 must divide the dimension d=16"):
        IVFPQ(nlist=4, M=5).train(X)
    with pytest.raises(ValueError, match="M must equal d=16"):
        IVFPQ(nlist=4, M=4, codebook="tile").train(X)
    with pytest.raises(ValueError, match="refine needs the raw vectors"):
        IVFPQ(nlist=4, M=4, refine=4).train(X)
    index = IVFPQ(nlist=4, M=4, nbits=4, random_state=0)
    index.train(X)
    index.add(X[:100])
    with pytest.raises(ValueError, match="built with keep_raw=False"):
        index.search(Q, 1, refine=2)
    with pytest.raises(TypeError, match="by_residual must be True or False"):
        IVFPQ(nlist=4, M=4, by_residual=1).train(X)


def test_graph_coarse_quantizer(clustered):
    X, Q = clustered
    exact = IVFFlat(nlist=64, random_state=0, quantizer="exact")
    exact.train(X)
    exact.add(X)
    graph = IVFFlat(nlist=64, random_state=0, quantizer="hnsw", quantizer_ef=64)
    graph.train(X)
    graph.add(X)
    assert graph._quantizer.graph is not None and exact._quantizer.graph is None
    # a beam as wide as nlist finds every list: the same lists, hence the same answer
    np.testing.assert_array_equal(graph.search(Q, 10, nprobe=8)[1], exact.search(Q, 10, nprobe=8)[1])
    np.testing.assert_array_equal(graph.search(Q, 10, nprobe=64)[1], ground_truth(X, Q, 10)[1])
    pq = IVFPQ(nlist=64, M=4, nbits=5, random_state=0, quantizer="hnsw")
    pq.train(X)
    pq.add(X)
    pq_exact = IVFPQ(nlist=64, M=4, nbits=5, random_state=0, quantizer="exact")
    pq_exact.train(X)
    pq_exact.add(X)
    np.testing.assert_array_equal(pq.search(Q, 5, nprobe=4)[1], pq_exact.search(Q, 5, nprobe=4)[1])
    with pytest.raises(ValueError, match="quantizer='hnsw' needs metric='l2'"):
        IVFFlat(nlist=4, metric="ip", quantizer="hnsw").train(X)
    with pytest.raises(ValueError, match="quantizer must be one of"):
        IVFFlat(nlist=4, quantizer="graph").train(X)


@pytest.mark.parametrize("kind", ["flat", "pq"])
def test_one_query_at_a_time_equals_the_batch_ivf(kind):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3000, 16)).astype(np.float32)
    Q = rng.standard_normal((40, 16)).astype(np.float32)
    if kind == "flat":
        index = IVFFlat(nlist=32, random_state=0)
        search = lambda q: index.search(q, 5, nprobe=4)  # noqa: E731
    else:
        index = IVFPQ(nlist=32, M=4, keep_raw=True, random_state=0)
        search = lambda q: index.search(q, 5, nprobe=4, refine=2)  # noqa: E731
    index.train(X)
    index.add(X)
    dist, ids = search(Q)  # 40 queries: the parallel kernels
    for q in range(0, len(Q), 6):
        one_dist, one_ids = search(Q[q:q + 1])  # one query: the serial twins
        np.testing.assert_array_equal(one_ids[0], ids[q])
        np.testing.assert_array_equal(one_dist[0], dist[q])
