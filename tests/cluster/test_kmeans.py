"""KMeans and kmeans(): results, invariants, reproducibility and input errors."""

import numba
import numpy as np
import pytest

import ivfpq
from ivfpq import KMeans, NotFittedError, kmeans
from ivfpq.datasets import make_blobs


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(4000, 8, centers=10, cluster_std=1.5, random_state=0)
    return X, y


# ----------------------------------------------------------------------------- results


def test_recovers_well_separated_blobs():
    X, y = make_blobs(3000, 2, centers=5, cluster_std=0.3, spread=20, random_state=1)
    model = KMeans(5, random_state=0).fit(X)
    # each true blob maps to exactly one cluster
    pairs = {(int(a), int(b)) for a, b in zip(y, model.labels_)}
    assert len(pairs) == 5
    assert model.labels_.dtype == np.int32  # as scikit-learn
    assert model.cluster_centers_.dtype == np.float32


def test_inertia_is_the_true_cost_of_labels_against_centers(blobs):
    X, _ = blobs
    model = KMeans(25, init="random", random_state=3, max_iter=7).fit(X)
    X64 = X.astype(np.float64)
    dist = ((X64[:, None, :] - model.cluster_centers_.astype(np.float64)[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(model.labels_, dist.argmin(1))
    assert model.inertia_ == pytest.approx(dist.min(1).sum(), rel=1e-9)
    assert model.score(X) == pytest.approx(-model.inertia_, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("init", ["random", "k-means++"])
def test_inertia_never_rises_between_iterations(blobs, seed, init):
    X, _ = blobs
    model = KMeans(40, init=init, random_state=seed, max_iter=50, tol=0).fit(X)
    inertias = [inertia for _, inertia in model.history_]
    assert len(inertias) == model.n_iter_
    assert all(b <= a * (1 + 1e-9) for a, b in zip(inertias, inertias[1:]))
    assert model.inertia_ <= inertias[-1] * (1 + 1e-9)
    seconds = [s for s, _ in model.history_]
    assert seconds == sorted(seconds)
    assert len(model.changed_fraction_) == model.n_iter_
    assert all(0 <= c <= 1 for c in model.changed_fraction_)


def test_same_random_state_same_result(blobs):
    X, _ = blobs
    a = KMeans(30, random_state=42).fit(X)
    b = KMeans(30, random_state=42).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.inertia_ == b.inertia_


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two cores")
def test_result_does_not_depend_on_thread_count(blobs):
    X, _ = blobs
    one = KMeans(30, random_state=5, n_threads=1).fit(X)
    two = KMeans(30, random_state=5, n_threads=2).fit(X)
    np.testing.assert_array_equal(one.cluster_centers_, two.cluster_centers_)
    np.testing.assert_array_equal(one.labels_, two.labels_)
    assert one.inertia_ == two.inertia_


def test_n_init_keeps_the_best_run(blobs):
    X, _ = blobs
    best = KMeans(20, init="random", n_init=4, random_state=0).fit(X)
    singles = [KMeans(20, init="random", n_init=1, random_state=s).fit(X).inertia_ for s in range(3)]
    assert best.inertia_ <= max(singles)


def test_empty_clusters_are_reseeded_never_nan():
    # Two far-apart groups and four initial centroids far from all data: three
    # start empty and must be re-seeded from the farthest points.
    X = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10]], dtype=np.float64)
    init = np.array([[0.3, 0.3], [100, 100], [-100, 100], [100, -100]], dtype=np.float64)
    model = KMeans(4, init=init, max_iter=10, tol=0).fit(X)
    assert np.isfinite(model.cluster_centers_).all()
    assert len(np.unique(model.labels_)) == 4
    assert model.inertia_ < 4.0


def test_duplicate_points_more_clusters_than_distinct_rows():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 5, axis=0)
    with pytest.warns(ivfpq.ConvergenceWarning, match=r"distinct clusters \(2\).*n_clusters \(3\)"):
        model = KMeans(3, init="random", random_state=0, n_init=1).fit(X)
    assert np.isfinite(model.cluster_centers_).all()
    assert model.inertia_ == pytest.approx(0.0)


def test_sample_weight_zero_rows_are_ignored(blobs):
    X, _ = blobs
    w = np.ones(len(X))
    w[::2] = 0
    init = X[1:60:2][:20].copy()
    weighted = KMeans(20, init=init, max_iter=20).fit(X, sample_weight=w)
    subset = KMeans(20, init=init, max_iter=20).fit(X[1::2])
    np.testing.assert_allclose(weighted.cluster_centers_, subset.cluster_centers_, rtol=1e-5, atol=1e-5)
    assert weighted.inertia_ == pytest.approx(subset.inertia_, rel=1e-6)


def test_cosine_metric_gives_unit_centroids_and_cosine_inertia():
    rng = np.random.default_rng(0)
    directions = rng.standard_normal((5, 16))
    X = directions[rng.integers(0, 5, 2000)] + 0.05 * rng.standard_normal((2000, 16))
    X *= rng.uniform(0.5, 20, (2000, 1))  # scale must not matter
    model = KMeans(5, metric="cosine", random_state=0).fit(X)
    np.testing.assert_allclose(np.linalg.norm(model.cluster_centers_, axis=1), 1.0, rtol=1e-6)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = (Xn @ model.cluster_centers_.T)[np.arange(len(X)), model.labels_]
    assert model.inertia_ == pytest.approx(np.sum(1 - cos), rel=1e-6)
    np.testing.assert_allclose(model.transform(X[:3]).min(1), 1 - cos[:3], atol=1e-9)


def test_predict_transform_fit_predict(blobs):
    X, _ = blobs
    model = KMeans(12, random_state=0)
    labels = model.fit_predict(X)
    np.testing.assert_array_equal(labels, model.predict(X))
    D = model.transform(X[:50])
    assert D.shape == (50, 12)
    np.testing.assert_array_equal(D.argmin(1), labels[:50])


def test_float32_stays_float32_float64_stays_float64(blobs):
    X, _ = blobs
    assert KMeans(5, random_state=0).fit(X).cluster_centers_.dtype == np.float32
    assert KMeans(5, random_state=0).fit(X.astype(np.float64)).cluster_centers_.dtype == np.float64


def test_callers_arrays_are_not_modified(blobs):
    X, _ = blobs
    X_before = X.copy()
    init = X[:10].copy()
    init_before = init.copy()
    w = np.ones(len(X))
    KMeans(10, init=init, metric="cosine").fit(X, sample_weight=w)
    KMeans(10, init=init).fit(X, sample_weight=w)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(init, init_before)
    assert (w == 1).all()


def test_kmeans_function_clips_k_and_is_reproducible():
    X = np.arange(10, dtype=np.float64).reshape(5, 2)
    centroids, labels = kmeans(X, k=9, seed=1)
    assert centroids.shape == (5, 2)
    np.testing.assert_array_equal(np.sort(labels), np.arange(5))
    a = kmeans(np.random.default_rng(0).standard_normal((200, 3)), 7, seed=3)
    b = kmeans(np.random.default_rng(0).standard_normal((200, 3)), 7, seed=3)
    np.testing.assert_array_equal(a[0], b[0])


def test_kmeans_function_stops_after_iters():
    X = np.random.default_rng(0).standard_normal((500, 2))
    c0, _ = kmeans(X, 20, iters=0, seed=0)
    rows = np.random.default_rng(0).choice(500, size=20, replace=False)
    np.testing.assert_array_equal(c0, X[rows])


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "X, exc, words",
    [
        ([[0.0, np.nan], [1.0, 2.0]], ValueError, ["X", "NaN"]),
        ([[0.0, np.inf], [1.0, 2.0]], ValueError, ["X", "inf"]),
        (np.empty((0, 3)), ValueError, ["X", "n_samples=0"]),
        ([1.0, 2.0, 3.0], ValueError, ["X", "1-D"]),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, ["X", "dtype"]),
        (np.array([[1 + 1j, 2], [3, 4]]), ValueError, ["X", "Complex"]),
    ],
)
def test_bad_X_is_rejected_with_a_clear_message(X, exc, words):
    with pytest.raises(exc) as info:
        KMeans(1).fit(X)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "params, exc, words",
    [
        ({"n_clusters": 0}, ValueError, ["n_clusters", "0"]),
        ({"n_clusters": 2.5}, TypeError, ["n_clusters", "2.5"]),
        ({"n_clusters": "8"}, TypeError, ["n_clusters"]),
        ({"n_clusters": 50}, ValueError, ["n_samples=20", "n_clusters=50"]),
        ({"max_iter": 0}, ValueError, ["max_iter"]),
        ({"tol": -1.0}, ValueError, ["tol"]),
        ({"algorithm": "hamerly"}, ValueError, ["algorithm", "hamerly", "elkan"]),
        ({"copy_x": 1}, TypeError, ["copy_x"]),
        ({"init": lambda X, k, random_state: X[:2]}, ValueError, ["init returned", "(3, 3)", "(2, 3)"]),
        ({"metric": "manhattan"}, ValueError, ["metric", "manhattan"]),
        ({"init": "forgy"}, ValueError, ["init", "forgy"]),
        ({"init": np.zeros((3, 2))}, ValueError, ["init", "(3, 2)"]),
        ({"n_init": 0}, ValueError, ["n_init"]),
        ({"random_state": "seed"}, TypeError, ["random_state"]),
        ({"n_threads": 0}, ValueError, ["n_threads"]),
    ],
)
def test_bad_parameters_are_rejected(params, exc, words):
    X = np.random.default_rng(0).standard_normal((20, 3))
    params = {"n_clusters": 3, **params}
    with pytest.raises(exc) as info:
        KMeans(**params).fit(X)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    "weights, words",
    [
        (-np.ones(20), ["sample_weight", "non-negative"]),
        (np.full(20, np.nan), ["sample_weight", "NaN"]),
        (np.ones(19), ["sample_weight", "(20,)", "(19,)"]),
        (np.zeros(20), ["sample_weight", "zero"]),
    ],
)
def test_bad_sample_weight(weights, words):
    X = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(ValueError) as info:
        KMeans(3).fit(X, sample_weight=weights)
    for word in words:
        assert word in str(info.value)


def test_predict_checks_fitted_and_feature_count():
    X = np.random.default_rng(0).standard_normal((30, 4))
    with pytest.raises(NotFittedError, match="not fitted"):
        KMeans(3).predict(X)
    model = KMeans(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 4"):
        model.predict(X[:, :3])


def test_kmeans_function_errors():
    with pytest.raises(ValueError, match="k must be"):
        kmeans([[0.0, 1.0]], 0)
    with pytest.raises(TypeError, match="seed"):
        kmeans([[0.0, 1.0]], 1, seed="zero")
    with pytest.raises(ValueError, match="NaN"):
        kmeans([[0.0, np.nan]], 1)


def test_relocation_takes_the_farthest_points_lower_row_first_on_ties():
    from ivfpq.cluster.executor import Block
    from ivfpq.cluster.lloyd import BlockState, _farthest_rows

    rng = np.random.default_rng(3)
    X = rng.standard_normal((500, 3)).astype(np.float32)
    sq = np.round(rng.random(500) * 4) / 4  # many ties
    weights = np.ones(500)
    weights[7] = 0.0  # never moved
    state = BlockState(Block(1000, weights), rng.integers(0, 5, 500), sq, None)
    _, rows, _, points, _ = _farthest_rows(X, state, 3)
    candidates = np.flatnonzero(weights > 0)
    expected = candidates[np.argsort(-sq[candidates], kind="stable")[:3]]
    np.testing.assert_array_equal(rows, 1000 + expected)
    np.testing.assert_array_equal(points, X[expected])


@pytest.mark.parametrize("n_clusters, means", [(999, "k-means++"), (1000, "hierarchical")])
def test_auto_init_is_kmeans_plusplus_below_a_thousand_clusters_then_hierarchical(n_clusters, means):
    X = np.random.default_rng(0).standard_normal((1200, 3)).astype(np.float32)
    params = dict(max_iter=1, tol=0.0, random_state=4)
    auto = KMeans(n_clusters, **params).fit(X)
    assert auto.init == "auto"
    explicit = KMeans(n_clusters, init=means, **params).fit(X)
    np.testing.assert_array_equal(auto.cluster_centers_, explicit.cluster_centers_)
