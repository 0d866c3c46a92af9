"""KMeans and MiniBatchKMeans behave as scikit-learn's, item by item, checked against it."""

import pickle
import warnings

import numpy as np
import pytest

import ivfpq
from ivfpq import KMeans, MiniBatchKMeans

sklearn = pytest.importorskip("sklearn")
from sklearn import cluster as skcluster  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning  # noqa: E402

PAIRS = [(KMeans, skcluster.KMeans), (MiniBatchKMeans, skcluster.MiniBatchKMeans)]


def _data(n=600, d=4, k=5, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-6, 6, size=(k, d))
    return (centers[rng.integers(0, k, n)] + rng.standard_normal((n, d))).astype(np.float64)


class _Frame:
    """The little of a data frame that feature-name handling reads."""

    def __init__(self, values, columns):
        self._values = np.asarray(values)
        self.columns = list(columns)
        self.shape = self._values.shape

    def __array__(self, dtype=None, copy=None):
        return self._values if dtype is None else self._values.astype(dtype)

    def __len__(self):
        return self.shape[0]


def _messages(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize("seed", range(4))
def test_n_iter_counts_the_converged_iteration(seed):
    X = _data(seed=seed)
    init = X[:5].copy()
    ours = KMeans(5, init=init, tol=0).fit(X)
    theirs = skcluster.KMeans(5, init=init, n_init=1, tol=0).fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    assert len(ours.history_) == ours.n_iter_
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9)


def test_labels_dtype_is_sklearns():
    X = _data()
    for ours, theirs in PAIRS:
        a = ours(3, random_state=0).fit(X)
        b = theirs(3, random_state=0, n_init=1).fit(X)
        assert a.labels_.dtype == b.labels_.dtype
        assert a.predict(X).dtype == b.predict(X).dtype


def test_callable_init_is_called_like_sklearns():
    X = _data()
    calls = []

    def init(data, n_clusters, random_state):
        calls.append((data.shape, n_clusters, type(random_state)))
        return data[random_state.choice(data.shape[0], n_clusters, replace=False)]

    skcluster.KMeans(4, init=init, n_init=1, random_state=0).fit(X)
    KMeans(4, init=init, n_init=1, random_state=0).fit(X)
    assert calls[0] == calls[1]
    # "auto" makes 10 runs from a callable, as scikit-learn does.
    calls.clear()
    KMeans(4, init=init, random_state=0).fit(X)
    assert len(calls) == 10


def test_callable_init_equals_its_array():
    X = _data()
    fixed = X[[3, 50, 100, 200]].copy()
    a = KMeans(4, init=lambda data, k, random_state: fixed, n_init=1).fit(X)
    b = KMeans(4, init=fixed).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_runtime_warning_for_n_init_with_explicit_centers(ours, theirs):
    X = _data()
    init = X[:3].copy()
    mine = _messages(lambda: ours(3, init=init, n_init=4).fit(X))
    sk = _messages(lambda: theirs(3, init=init, n_init=4).fit(X))
    assert [m for m in mine if m[0] is RuntimeWarning] == [m for m in sk if m[0] is RuntimeWarning]
    assert any(m[0] is RuntimeWarning for m in mine)
    # "auto" with an array is one run, and no warning, in both.
    assert not [m for m in _messages(lambda: ours(3, init=init).fit(X)) if m[0] is RuntimeWarning]


def test_convergence_warning_for_duplicate_points():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 10, axis=0)
    mine = [m for m in _messages(lambda: KMeans(5, random_state=0).fit(X)) if issubclass(m[0], UserWarning)]
    sk = [m for m in _messages(lambda: skcluster.KMeans(5, random_state=0).fit(X))
          if issubclass(m[0], UserWarning)]
    assert [m[1] for m in mine] == [m[1] for m in sk]
    assert issubclass(mine[0][0], SklearnConvergenceWarning)
    assert issubclass(mine[0][0], ivfpq.ConvergenceWarning)
    with pytest.warns(SklearnConvergenceWarning):
        KMeans(5, random_state=0).fit(X)


def test_no_warning_with_enough_distinct_points():
    X = _data()
    assert not _messages(lambda: KMeans(5, random_state=0).fit(X))


@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_feature_names_out(ours, theirs):
    X = _data()
    a = ours(3, random_state=0).fit(X)
    b = theirs(3, random_state=0, n_init=1).fit(X)
    np.testing.assert_array_equal(a.get_feature_names_out(), b.get_feature_names_out())
    assert a.get_feature_names_out().dtype == object


@pytest.mark.parametrize("ours", [KMeans, MiniBatchKMeans])
def test_set_output_and_clone(ours):
    X = _data()
    model = ours(3, random_state=0).set_output(transform="default")
    assert isinstance(model.fit_transform(X), np.ndarray)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy._sklearn_output_config == {"transform": "default"}
    with pytest.raises(ValueError, match="transform"):
        model.set_output(transform="arrow")


@pytest.mark.parametrize("ours", [KMeans, MiniBatchKMeans])
def test_set_output_pandas(ours):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_data(), columns=list("abcd"))
    out = ours(3, random_state=0).set_output(transform="pandas").fit(X).transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"{ours.__name__.lower()}{i}" for i in range(3)]


@pytest.mark.parametrize("ours", [KMeans, MiniBatchKMeans])
def test_pickle_round_trip(ours):
    X = _data()
    model = ours(3, random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    np.testing.assert_array_equal(again.transform(X), model.transform(X))


@pytest.mark.parametrize("ours", [KMeans, MiniBatchKMeans])
def test_feature_names_in(ours):
    X = _data()
    frame = _Frame(X, ["a", "b", "c", "d"])
    model = ours(3, random_state=0).fit(frame)
    assert model.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        model.predict(X)
    with pytest.raises(ValueError, match="feature names should match"):
        model.predict(_Frame(X, ["a", "b", "c", "e"]))
    assert not hasattr(ours(3, random_state=0).fit(X), "feature_names_in_")


def test_integer_weights_equal_repeated_rows_like_sklearn():
    X = _data(n=200)
    w = np.random.default_rng(1).integers(1, 4, size=len(X))
    init = X[:4].copy()
    weighted = KMeans(4, init=init, tol=0).fit(X, sample_weight=w)
    repeated = KMeans(4, init=init, tol=0).fit(np.repeat(X, w, axis=0))
    sk = skcluster.KMeans(4, init=init, n_init=1, tol=0).fit(X, sample_weight=w)
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-12)
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-9)
    assert weighted.inertia_ == pytest.approx(sk.inertia_, rel=1e-9)


def test_copy_x_false_leaves_x_alone_and_changes_nothing():
    X = _data()
    before = X.copy()
    a = KMeans(4, random_state=0, copy_x=False).fit(X)
    b = KMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


def test_elkan_is_run_as_lloyd():
    X = _data()
    a = KMeans(4, random_state=0, algorithm="elkan").fit(X)
    b = KMeans(4, random_state=0, algorithm="lloyd").fit(X)
    assert a.algorithm_ == "lloyd"
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_parameters_are_a_superset_of_sklearns(ours, theirs):
    mine = set(ours().get_params())
    sk = set(theirs().get_params())
    assert sk <= mine, sk - mine
    for name in sk:
        default = theirs().get_params()[name]
        if name not in ("verbose", "algorithm", "init"):
            assert ours().get_params()[name] == default, name
