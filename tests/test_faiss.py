"""faiss interop: our quantizers and indexes exported to faiss search as ours do, and
faiss-trained ones read back search as faiss's do (ivfpq/_faiss.py and the
``to_faiss`` / ``from_faiss`` methods). Skipped where faiss is not installed."""

import sys

import numpy as np
import pytest

from ivfpq import IVFPQ, IVFFlat, KMeans, NotFittedError, ProductQuantizer
from ivfpq._faiss import pack_codes, unpack_codes

from ._data import SHARED_DATA, gaussian_mixture

faiss = pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def sift():
    """SIFT10K base and queries (real data: uneven lists, near ties), or a skip."""
    folder = SHARED_DATA / "sift10k"
    if not (folder / "base.npy").exists():
        pytest.skip(f"{folder} is not here")
    return np.load(folder / "base.npy"), np.load(folder / "query.npy")


@pytest.fixture(scope="module")
def small():
    X = gaussian_mixture(3000, 16, 12, seed=0)
    return X[:2800], X[2800:]


def assert_same_neighbours(d_ours, i_ours, d_faiss, i_faiss, rtol):
    """The same neighbours, but for the order of ties within ``rtol``.

    Both sides rank their own distances, so at every rank the distances agree; where the
    ids differ, faiss's id must be tied with ours at that rank: it appears in our list
    at a tied distance, or the tie runs past rank k (our k-th distance is the same).
    """
    finite = np.isfinite(d_ours)
    np.testing.assert_array_equal(finite, np.isfinite(d_faiss) & (i_faiss >= 0))
    scale = np.abs(d_ours[finite]).max()
    np.testing.assert_allclose(d_faiss[finite], d_ours[finite], rtol=0, atol=rtol * scale)
    for q, j in zip(*np.nonzero((i_ours != i_faiss) & finite)):
        tied = np.abs(d_ours[q] - d_ours[q, j]) <= rtol * scale
        assert i_faiss[q, j] in i_ours[q][tied] or tied[-1], (q, j)
    assert ((i_ours != i_faiss) & finite).mean() < 0.01


# ----------------------------------------------------------------------------- PQ codes


@pytest.mark.parametrize("nbits", list(range(1, 17)))
def test_pack_codes_matches_faiss_layout(nbits):
    rng = np.random.default_rng(nbits)
    M, dsub = 5, 2
    pq = faiss.ProductQuantizer(M * dsub, M, nbits)
    cb = rng.standard_normal((M, 1 << nbits, dsub)).astype(np.float32)
    faiss.copy_array_to_vector(cb.ravel(), pq.centroids)
    dtype = np.uint8 if nbits <= 8 else np.uint16
    codes = rng.integers(0, 1 << nbits, (300, M)).astype(dtype)
    packed = pack_codes(codes, nbits)
    assert packed.shape == (300, pq.code_size)
    # faiss decodes our packing to the code words our codes name
    np.testing.assert_array_equal(pq.decode(packed), cb[np.arange(M), codes].reshape(300, -1))
    np.testing.assert_array_equal(unpack_codes(packed, M, nbits, dtype), codes)


@pytest.mark.parametrize("M,nbits", [(16, 8), (8, 6), (32, 4), (128, 5)])
def test_pq_to_faiss_compute_codes_gives_our_codes(sift, M, nbits):
    X = sift[0][:4000]
    pq = ProductQuantizer(M, nbits, random_state=0).fit(X)
    fpq = pq.to_faiss()
    assert (fpq.M, fpq.nbits, fpq.d) == (M, nbits, 128)
    ours = pq.encode(X)
    theirs = unpack_codes(fpq.compute_codes(X), M, nbits, ours.dtype)
    # Different codes only where the two code words are equally near (float32 rounding).
    rows, subs = np.nonzero(ours != theirs)
    assert rows.size <= 1e-4 * ours.size
    dsub = 128 // M
    for i, m in zip(rows, subs):
        x = X[i, m * dsub:(m + 1) * dsub].astype(np.float64)
        a, b = (((pq.codebooks_[m, c] - x) ** 2).sum() for c in (ours[i, m], theirs[i, m]))
        assert abs(a - b) <= 1e-5 * max(a, b, 1.0)


def test_pq_from_faiss_round_trip(sift):
    X = sift[0][:4000]
    trained = faiss.ProductQuantizer(128, 16, 8)
    trained.train(X)
    pq = ProductQuantizer.from_faiss(trained)
    np.testing.assert_array_equal(pq.codebooks_.ravel(), faiss.vector_to_array(trained.centroids))
    codes = pq.encode(X)
    np.testing.assert_array_equal(pack_codes(codes, 8), trained.compute_codes(X))
    again = pq.to_faiss()
    np.testing.assert_array_equal(faiss.vector_to_array(again.centroids),
                                  faiss.vector_to_array(trained.centroids))


def test_pq_from_faiss_index_pq_reads_the_metric(small):
    X, Q = small
    index = faiss.IndexPQ(16, 4, 6, faiss.METRIC_INNER_PRODUCT)
    index.train(X)
    pq = ProductQuantizer.from_faiss(index)
    assert pq._metric == "ip" and pq.M == 4 and pq.nbits == 6
    assert ProductQuantizer.from_faiss(index, metric="l2")._metric == "l2"


def test_pq_from_faiss_one_dimension_per_subspace(small):
    X, _ = small
    trained = faiss.ProductQuantizer(16, 16, 4)
    trained.train(X)
    pq = ProductQuantizer.from_faiss(trained)
    ours = pq.encode(X)
    theirs = unpack_codes(trained.compute_codes(X), 16, 4, ours.dtype)
    assert (ours != theirs).mean() < 1e-4


def test_pq_tile_codebooks_are_refused(small):
    X, _ = small
    pq = ProductQuantizer(16, 4, codebook="tile").fit(X)
    with pytest.raises(ValueError, match="tile codebooks"):
        pq.to_faiss()


def test_pq_from_faiss_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="not trained"):
        ProductQuantizer.from_faiss(faiss.ProductQuantizer(8, 2, 4))
    with pytest.raises(TypeError, match="ProductQuantizer"):
        ProductQuantizer.from_faiss(faiss.IndexFlatL2(8))
    with pytest.raises(NotFittedError):
        ProductQuantizer(2).to_faiss()


# ----------------------------------------------------------------------------- IVF-Flat


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_ivfflat_to_faiss_searches_as_ours(sift, metric):
    X, Q = sift
    index = IVFFlat(256, metric, nprobe=8, random_state=0).train(X)
    index.add(X)
    findex = index.to_faiss()
    assert isinstance(findex, faiss.IndexIVFFlat)
    assert (findex.ntotal, findex.nlist, findex.nprobe) == (10000, 256, 8)
    np.testing.assert_array_equal(faiss.downcast_index(findex.quantizer).reconstruct_n(0, 256),
                                  index.centroids_)
    for nprobe in (1, 8, 32):
        findex.nprobe = nprobe
        d_f, i_f = findex.search(Q, 10)
        d_o, i_o = index.search(Q, 10, nprobe=nprobe)
        assert_same_neighbours(d_o, i_o, d_f, i_f, rtol=1e-6)


def test_ivfflat_to_faiss_then_add_goes_to_the_same_lists(small):
    X, Q = small
    index = IVFFlat(16, nprobe=3, random_state=0).train(X)
    index.add(X[:1000])
    findex = index.to_faiss()
    index.add(X[1000:])
    findex.add_with_ids(X[1000:], np.arange(1000, len(X)))
    assert_same_neighbours(*index.search(Q, 5), *findex.search(Q, 5), rtol=1e-6)


def test_ivfflat_round_trip_keeps_lists_and_ids(small):
    X, Q = small
    index = IVFFlat(16, nprobe=4, random_state=0).train(X)
    ids = np.random.default_rng(0).permutation(10 * len(X))[: len(X)]
    index.add(X, ids)
    back = IVFFlat.from_faiss(index.to_faiss(), n_threads=1)
    assert back.nprobe == 4 and back.n_threads == 1 and back.ntotal == len(X)
    np.testing.assert_array_equal(back.centroids_, index.centroids_)
    for l in range(16):
        np.testing.assert_array_equal(back._lists.list_ids(l), index._lists.list_ids(l))
        np.testing.assert_array_equal(back._lists.list_data("vectors", l),
                                      index._lists.list_data("vectors", l))
    d1, i1 = index.search(Q, 7)
    d2, i2 = back.search(Q, 7)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)
    back.add(X[:3])  # fresh ids continue after the largest one read
    assert back._next_id == ids.max() + 4


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_ivfflat_from_faiss_trained_index_searches_as_faiss(sift, metric):
    X, Q = sift
    d = X.shape[1]
    quantizer = faiss.IndexFlatIP(d) if metric == "ip" else faiss.IndexFlatL2(d)
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    findex = faiss.IndexIVFFlat(quantizer, d, 128, faiss_metric)
    findex.train(X)
    findex.add(X)
    findex.nprobe = 6
    ours = IVFFlat.from_faiss(findex)
    assert ours._metric == metric and ours.nprobe == 6 and ours.nlist == 128
    assert_same_neighbours(*ours.search(Q, 10), *findex.search(Q, 10), rtol=1e-6)


def test_ivfflat_from_faiss_quantizer_only(small):
    """faiss k-means centroids become an empty, trained IVFFlat."""
    X, Q = small
    km = faiss.Kmeans(16, 12, niter=10, seed=1)
    km.train(X)
    ours = IVFFlat.from_faiss(km.index, nprobe=2)
    assert ours.is_trained and ours.ntotal == 0 and ours.nlist == 12
    np.testing.assert_array_equal(ours.centroids_, km.centroids)
    ours.add(X)
    findex = faiss.IndexIVFFlat(km.index, 16, 12)
    findex.add(X)
    findex.nprobe = 2
    assert_same_neighbours(*ours.search(Q, 5), *findex.search(Q, 5), rtol=1e-6)


def test_kmeans_centroids_into_faiss_ivf(small):
    """The README's recipe: our k-means as the coarse quantizer of a faiss IVF index."""
    X, Q = small
    model = KMeans(n_clusters=12, random_state=0).fit(X)
    quantizer = faiss.IndexFlatL2(X.shape[1])
    quantizer.add(model.cluster_centers_.astype(np.float32))
    findex = faiss.IndexIVFFlat(quantizer, X.shape[1], 12)
    assert findex.is_trained  # a quantizer that holds nlist centroids needs no training
    findex.add(X)
    findex.nprobe = 3
    # the same as our index over the same centroids
    ours = IVFFlat.from_faiss(quantizer, nprobe=3)
    ours.add(X)
    np.testing.assert_array_equal(ours.centroids_, model.cluster_centers_.astype(np.float32))
    assert_same_neighbours(*ours.search(Q, 5), *findex.search(Q, 5), rtol=1e-6)
    # and its lists are our k-means labels
    _, lists = quantizer.search(X, 1)
    np.testing.assert_array_equal(lists[:, 0], model.predict(X))


def test_ivfflat_from_faiss_refuses_what_it_cannot_read(small):
    X, _ = small
    with pytest.raises(ValueError, match="not trained"):
        IVFFlat.from_faiss(faiss.IndexIVFFlat(faiss.IndexFlatL2(16), 16, 4))
    with pytest.raises(ValueError, match="empty"):
        IVFFlat.from_faiss(faiss.IndexFlatL2(16))
    with pytest.raises(TypeError, match="IndexIVFFlat"):
        IVFFlat.from_faiss(faiss.IndexHNSWFlat(16, 8))
    trained = IVFFlat(4, random_state=0).train(X).to_faiss()
    with pytest.raises(TypeError, match="nlist"):
        IVFFlat.from_faiss(trained, nlist=4)
    with pytest.raises(ValueError, match="nprobe"):
        IVFFlat.from_faiss(trained, nprobe=0)
    with pytest.raises(NotFittedError):
        IVFFlat(4).to_faiss()


def test_missing_faiss_says_how_to_install(monkeypatch, small):
    X, _ = small
    index = IVFFlat(4, random_state=0).train(X)
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        index.to_faiss()
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        IVFPQ.from_faiss(object())


# ----------------------------------------------------------------------------- IVF-PQ


@pytest.fixture(scope="module")
def sift_ivfpq(sift):
    X, _ = sift
    cache = {}

    def build(**params):
        key = tuple(sorted(params.items()))
        if key not in cache:
            index = IVFPQ(64, params.pop("M", 16), nprobe=4, random_state=0, **params).train(X)
            index.add(X)
            cache[key] = index
        return cache[key]

    return build


@pytest.mark.parametrize("params", [
    {},
    {"metric": "ip"},
    {"by_residual": False},
    {"nbits": 6},
    {"precompute_tables": False},
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
def test_ivfpq_to_faiss_searches_as_ours(sift, sift_ivfpq, params):
    _, Q = sift
    index = sift_ivfpq(**params)
    findex = index.to_faiss()
    assert isinstance(findex, faiss.IndexIVFPQ)
    assert findex.by_residual == index.by_residual and findex.pq.nbits == index.nbits
    assert findex.ntotal == index.ntotal and findex.nprobe == 4
    for nprobe in (1, 4, 16):
        findex.nprobe = nprobe
        assert_same_neighbours(*index.search(Q, 10, nprobe=nprobe), *findex.search(Q, 10), rtol=1e-5)


def test_ivfpq_round_trip_keeps_codes(sift, sift_ivfpq):
    _, Q = sift
    index = sift_ivfpq(nbits=6)
    back = IVFPQ.from_faiss(index.to_faiss())
    assert (back.M, back.nbits, back.by_residual, back.nprobe) == (16, 6, True, 4)
    np.testing.assert_array_equal(back.pq_.codebooks_, index.pq_.codebooks_)
    for l in range(64):
        np.testing.assert_array_equal(back._lists.list_ids(l), index._lists.list_ids(l))
        np.testing.assert_array_equal(back._lists.list_data("codes", l), index._lists.list_data("codes", l))
    d1, i1 = index.search(Q, 10)
    d2, i2 = back.search(Q, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)


@pytest.mark.parametrize("by_residual", [True, False])
def test_ivfpq_from_faiss_trained_index_searches_as_faiss(sift, by_residual):
    X, Q = sift
    findex = faiss.IndexIVFPQ(faiss.IndexFlatL2(128), 128, 64, 16, 8)
    findex.by_residual = by_residual
    findex.cp.seed = 0
    findex.train(X)
    findex.add(X)
    findex.nprobe = 5
    ours = IVFPQ.from_faiss(findex, n_threads=1)
    assert ours.by_residual == by_residual and ours.nprobe == 5 and ours.n_threads == 1
    assert_same_neighbours(*ours.search(Q, 10), *findex.search(Q, 10), rtol=1e-5)
    # vectors added on both sides get the same codes and lists
    ours.add(X[:50], np.arange(20000, 20050))
    findex.add_with_ids(X[:50], np.arange(20000, 20050))
    assert_same_neighbours(*ours.search(Q, 10), *findex.search(Q, 10), rtol=1e-5)


def test_ivfpq_refine_exports_index_refine_flat(sift, sift_ivfpq):
    _, Q = sift
    index = sift_ivfpq(keep_raw=True, refine=4)
    findex = index.to_faiss()
    assert isinstance(findex, faiss.IndexRefineFlat) and findex.k_factor == 4
    ivf = faiss.downcast_index(findex.base_index)
    for nprobe in (1, 8):
        ivf.nprobe = nprobe
        assert_same_neighbours(*index.search(Q, 10, nprobe=nprobe), *findex.search(Q, 10), rtol=1e-6)
    # its IVF-PQ part, handed out by faiss as a bare Index, reads back without the raw vectors
    back = IVFPQ.from_faiss(findex.base_index)
    assert back.ntotal == index.ntotal and not back.keep_raw and back.refine is None
    assert_same_neighbours(*back.search(Q, 10, nprobe=8), *ivf.search(Q, 10), rtol=1e-5)


def test_ivfpq_to_faiss_refuses_what_it_cannot_represent(small):
    X, _ = small
    tile = IVFPQ(4, 16, nbits=4, codebook="tile", random_state=0).train(X)
    with pytest.raises(ValueError, match="tile codebooks"):
        tile.to_faiss()
    refined = IVFPQ(4, 4, nbits=4, keep_raw=True, refine=2, random_state=0).train(X)
    refined.add(X, ids=np.arange(len(X)) * 2)
    with pytest.raises(ValueError, match="0 .. ntotal - 1"):
        refined.to_faiss()
    assert isinstance(refined.set_params(refine=None).to_faiss(), faiss.IndexIVFPQ)
    with pytest.raises(NotFittedError):
        IVFPQ(4, 4).to_faiss()


def test_ivfpq_from_faiss_refuses_what_it_cannot_read(small):
    X, _ = small
    findex = faiss.IndexIVFPQ(faiss.IndexFlatL2(16), 16, 4, 4, 4)
    with pytest.raises(ValueError, match="not trained"):
        IVFPQ.from_faiss(findex)
    findex.train(X)
    with pytest.raises(ValueError, match="keep_raw"):
        IVFPQ.from_faiss(findex, keep_raw=True)
    with pytest.raises(TypeError, match="IndexIVFPQ"):
        IVFPQ.from_faiss(faiss.IndexIVFFlat(faiss.IndexFlatL2(16), 16, 4))
    pqr = faiss.IndexIVFPQR(faiss.IndexFlatL2(16), 16, 4, 4, 4, 4, 4)
    with pytest.raises(ValueError, match="IndexIVFPQR"):
        IVFPQ.from_faiss(pqr)
