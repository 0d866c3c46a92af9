"""ProductQuantizer: round-trips, ADC agreement, search, parameters and errors."""

import numpy as np
import pytest

from ivfpq import NotFittedError, ProductQuantizer, TileEncoder


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((1500, 8)) * [1, 2, 3, 4, 1, 2, 3, 4]).astype(np.float32)
    Q = rng.standard_normal((7, 8)).astype(np.float32)
    return X, Q


CONFIGS = [
    dict(M=2, nbits=5),                                   # k-means, 4-d segments (KMeans)
    dict(M=8, nbits=6),                                   # k-means, 1-d segments (sorted)
    dict(M=8, nbits=6, init="random"),
    dict(M=8, nbits=6, codebook="tile", distribution="normal"),
    dict(M=8, nbits=6, codebook="tile", distribution="empirical"),
    dict(M=8, nbits=6, codebook="tile", distribution="auto"),
]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def fitted(request, data):
    X, _ = data
    return ProductQuantizer(**request.param, random_state=0).fit(X)


def test_codes_round_trip_through_decode(fitted, data):
    X, _ = data
    codes = fitted.encode(X)
    assert codes.shape == (len(X), fitted.M) and codes.dtype == np.uint8
    assert fitted.codebooks_.shape == (fitted.M, 1 << fitted.nbits, 8 // fitted.M)
    decoded = fitted.decode(codes)
    assert decoded.dtype == np.float32 and decoded.shape == X.shape
    assert np.array_equal(fitted.encode(decoded), codes)
    assert np.array_equal(fitted.decode(fitted.encode(decoded)), decoded)


def test_adc_distances_agree_with_distances_to_decoded_vectors(fitted, data):
    X, Q = data
    codes = fitted.encode(X)
    decoded = fitted.decode(codes).astype(np.float64)
    exact = ((Q[:, None, :].astype(np.float64) - decoded[None]) ** 2).sum(-1)
    np.testing.assert_allclose(fitted.adc_distances(codes, Q), exact, rtol=2e-5, atol=1e-3)
    ip = ProductQuantizer(**fitted.get_params()).set_params(metric="ip")
    ip.codebooks_, ip.edges_, ip.n_features_in_ = fitted.codebooks_, fitted.edges_, 8
    np.testing.assert_allclose(ip.adc_distances(codes, Q), Q.astype(np.float64) @ decoded.T,
                               rtol=2e-5, atol=1e-3)


def test_search_returns_the_best_adc_distances_in_order(fitted, data):
    X, Q = data
    codes = fitted.encode(X)
    dist, ids = fitted.search(codes, Q, k=15)
    full = fitted.adc_distances(codes, Q)
    for q in range(len(Q)):
        order = np.lexsort((np.arange(len(X)), full[q]))[:15]
        assert np.array_equal(ids[q], order)
        assert np.array_equal(dist[q], full[q, order])


def test_inner_product_search_returns_largest_first(data):
    X, Q = data
    pq = ProductQuantizer(M=4, nbits=4, metric="ip", random_state=0).fit(X)
    codes = pq.encode(X)
    dist, ids = pq.search(codes, Q, k=5)
    ip = pq.decode(codes).astype(np.float64) @ Q.T.astype(np.float64)
    assert np.all(np.diff(dist, axis=1) <= 0)
    np.testing.assert_allclose(dist, np.take_along_axis(ip.T, ids, axis=1), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dist[:, 0], ip.max(axis=0), rtol=1e-5, atol=1e-4)


def test_k_larger_than_the_number_of_codes_is_padded(data):
    X, Q = data
    pq = ProductQuantizer(M=8, nbits=4, random_state=0).fit(X)
    dist, ids = pq.search(pq.encode(X[:3]), Q[:2], k=5)
    assert (ids[:, 3:] == -1).all() and np.isinf(dist[:, 3:]).all() and (ids[:, :3] >= 0).all()
    pq.set_params(metric="ip")
    dist, ids = pq.search(pq.encode(X[:3]), Q[:2], k=5)
    assert (dist[:, 3:] == -np.inf).all()


def test_nbits_above_8_gives_uint16_codes(data):
    X, Q = data
    pq = ProductQuantizer(M=8, nbits=9, random_state=0).fit(X)
    codes = pq.encode(X)
    assert codes.dtype == np.uint16 and codes.max() >= 256
    assert np.array_equal(pq.encode(pq.decode(codes)), codes)
    tile = ProductQuantizer(M=8, nbits=12, codebook="tile", distribution="normal").fit(X)
    codes = tile.encode(X)
    assert codes.dtype == np.uint16 and codes.max() < 4096
    assert tile.search(codes, Q, 3)[1].shape == (7, 3)


def test_tile_codebook_equals_the_tile_encoder(data):
    X, _ = data
    pq = ProductQuantizer(M=8, codebook="tile", distribution="empirical", random_state=1).fit(X)
    tile = TileEncoder("empirical", random_state=1).fit(X)
    assert np.array_equal(pq.encode(X), tile.encode(X))
    assert np.array_equal(pq.codebooks_, tile.codebooks_)
    assert pq.encoder_ is not None and pq.train_message_ == ""


def test_results_do_not_depend_on_threads(data):
    X, Q = data
    out = []
    for n_threads in (1, 2):
        pq = ProductQuantizer(M=8, nbits=5, random_state=3, n_threads=n_threads).fit(X)
        codes = pq.encode(X)
        out.append((pq.codebooks_, codes, *pq.search(codes, Q[:1], 10)))
    for a, b in zip(*out):
        assert np.array_equal(a, b)


def test_training_subsample_is_explicit_and_reported(data):
    X, _ = data
    pq = ProductQuantizer(M=8, nbits=4, max_train_points=300, random_state=0).fit(X)
    assert pq.n_train_used_ == 300
    assert "300 of 1500" in pq.train_message_
    pq = ProductQuantizer(M=8, nbits=4, max_train_points=None, random_state=0).fit(X)
    assert pq.n_train_used_ == 1500 and pq.train_message_ == ""
    pq = ProductQuantizer(M=8, nbits=2, random_state=0).fit(X)     # "auto" = 256 * 4 rows
    assert pq.n_train_used_ == 1024 and "1024 of 1500" in pq.train_message_


def test_fit_does_not_modify_its_input(data):
    X, _ = data
    copy = X.copy()
    ProductQuantizer(M=8, nbits=4, random_state=0).fit(X)
    ProductQuantizer(M=8, codebook="tile").fit(X)
    assert np.array_equal(X, copy)


def test_tile_partial_fit_and_kmeans_refusal(data):
    X, _ = data
    pq = ProductQuantizer(M=8, codebook="tile", distribution="normal")
    pq.partial_fit(X[:700]).partial_fit(X[700:])
    whole = ProductQuantizer(M=8, codebook="tile", distribution="normal").fit(X)
    np.testing.assert_allclose(pq.edges_, whole.edges_, rtol=1e-9, atol=1e-9)
    assert pq.n_train_used_ == 1500
    with pytest.raises(ValueError, match="codebook='tile'"):
        ProductQuantizer(M=8).partial_fit(X)


@pytest.mark.parametrize("params, error, message", [
    (dict(M=3), ValueError, r"M=3 does not divide n_features=8"),
    (dict(M=0), ValueError, r"M must be an integer >= 1, got 0"),
    (dict(M=2.0), TypeError, r"M must be an integer"),
    (dict(M=8, nbits=0), ValueError, r"nbits must be an integer in \[1, 16\], got 0"),
    (dict(M=8, nbits=17), ValueError, r"nbits must be an integer in \[1, 16\], got 17"),
    (dict(M=8, nbits=4.0), TypeError, r"nbits must be an integer"),
    (dict(M=8, codebook="opq"), ValueError, r"codebook must be one of 'kmeans', 'tile'"),
    (dict(M=8, metric="cosine"), ValueError, r"metric must be one of 'l2', 'ip'"),
    (dict(M=8, init="pca"), ValueError, r"init must be one of"),
    (dict(M=8, codebook="tile", distribution="gamma"), ValueError, r"distribution must be one of"),
    (dict(M=4, codebook="tile"), ValueError, r"codebook='tile' encodes one dimension per segment"),
    (dict(M=8, nbits=11), ValueError, r"n_samples=1500, but nbits=11 needs at least 2\*\*nbits=2048"),
    (dict(M=8, nbits=4, max_train_points=10), ValueError, r"max_train_points must be an integer >= 16"),
    (dict(M=8, max_train_points="all"), ValueError, r"max_train_points must be an integer >= 1, 'auto' or None, got 'all'"),
    (dict(M=8, max_train_points=1e5), TypeError, r"max_train_points must be an integer >= 1, 'auto' or None, got 100000.0 \(float\)"),
])
def test_bad_parameters_raise_clear_errors(data, params, error, message):
    X, _ = data
    with pytest.raises(error, match=message):
        ProductQuantizer(**params).fit(X)


def test_bad_inputs_raise_clear_errors(data):
    X, Q = data
    with pytest.raises(NotFittedError):
        ProductQuantizer(M=8).encode(X)
    pq = ProductQuantizer(M=8, nbits=4, random_state=0).fit(X)
    codes = pq.encode(X)
    with pytest.raises(ValueError, match="X has 4 features"):
        pq.encode(X[:, :4])
    with pytest.raises(ValueError, match=r"codes has entries in \[16, 16\]"):
        pq.decode(np.full((2, 8), 16, dtype=np.int64))
    with pytest.raises(ValueError, match=r"codes has a maximum entry of 200"):
        pq.decode(np.full((2, 8), 200, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"codes must have shape \(n, M\) = \(n, 8\)"):
        pq.decode(codes[:, :4])
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        pq.decode(codes.astype(np.float32))
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        pq.search(codes, Q, 0)
    with pytest.raises(ValueError, match="Q contains NaN"):
        pq.search(codes, np.full((1, 8), np.nan), 3)
    with pytest.raises(ValueError, match="X contains NaN"):
        ProductQuantizer(M=8).fit(np.where(X > 3, np.nan, X))
