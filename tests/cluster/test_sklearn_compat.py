"""KMeans follows scikit-learn's estimator contract and agrees with its Lloyd."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import KMeans as SklearnKMeans  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from ivfpq import KMeans, MiniBatchKMeans  # noqa: E402

# Like scikit-learn's own KMeans: integer weights cannot equal repeated rows, because
# the random initialisation draws from a different number of rows.
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data":
        "initialisation draws from rows, so weighting a row is not the same as repeating it",
}


@pytest.mark.parametrize("estimator", [KMeans(n_clusters=3, random_state=0),
                                       MiniBatchKMeans(n_clusters=3, random_state=0)],
                         ids=["KMeans", "MiniBatchKMeans"])
def test_passes_check_estimator(estimator):
    results = check_estimator(
        estimator, on_fail=None, on_skip=None,
        expected_failed_checks=EXPECTED_FAILED,
    )
    failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    assert not failed, failed
    assert len(results) > 40


def _data(n, d, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-5, 5, size=(12, d))
    return (centers[rng.integers(0, 12, n)] + rng.standard_normal((n, d))).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_iter", [1, 3, 15])
def test_inertia_agrees_with_sklearn_from_the_same_centroids(dtype, max_iter):
    X = _data(3000, 10, seed=max_iter, dtype=dtype)
    init = X[np.random.default_rng(1).choice(len(X), 20, replace=False)]
    ours = KMeans(20, init=init, max_iter=max_iter, tol=0).fit(X)
    theirs = SklearnKMeans(20, init=init, n_init=1, max_iter=max_iter, tol=0, algorithm="lloyd").fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    assert abs(ours.inertia_ / theirs.inertia_ - 1) < 1e-4
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-3, atol=1e-3)


def test_weighted_inertia_agrees_with_sklearn():
    X = _data(2000, 6, seed=7, dtype=np.float64)
    w = np.random.default_rng(3).uniform(0.1, 3.0, len(X))
    init = X[:15].copy()
    ours = KMeans(15, init=init, max_iter=10, tol=0).fit(X, sample_weight=w)
    theirs = SklearnKMeans(15, init=init, n_init=1, max_iter=10, tol=0).fit(X, sample_weight=w)
    assert abs(ours.inertia_ / theirs.inertia_ - 1) < 1e-4


def test_tol_stops_like_sklearn():
    X = _data(3000, 5, seed=11, dtype=np.float64)
    init = X[:30].copy()
    ours = KMeans(30, init=init, max_iter=300, tol=1e-2).fit(X)
    theirs = SklearnKMeans(30, init=init, n_init=1, max_iter=300, tol=1e-2).fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    assert abs(ours.inertia_ / theirs.inertia_ - 1) < 1e-4
