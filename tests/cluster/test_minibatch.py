"""MiniBatchKMeans: hand-computed steps, invariants, reproducibility, streams, sklearn."""

import numpy as np
import pytest

from ivfpq import MiniBatchKMeans
from ivfpq.io import iter_vector_blocks, write_vectors
from ivfpq.kernels.lloyd import minibatch_update


def _data(n=3000, d=8, k=10, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-8, 8, size=(k, d))
    return (centers[rng.integers(0, k, n)] + rng.standard_normal((n, d))).astype(np.float32)


def _exact_inertia(X, centers, weights=None):
    sq = ((X.astype(np.float64)[:, None, :] - centers.astype(np.float64)[None]) ** 2).sum(-1)
    w = np.ones(len(X)) if weights is None else weights
    return float((sq.min(1) * w).sum()), sq.argmin(1)


def test_update_kernel_by_hand():
    X = np.array([[0, 0], [2, 0], [10, 10], [4, 0]], dtype=np.float64)
    centers = np.array([[1.0, 0.0], [10.0, 0.0]])
    counts = np.array([2.0, 0.0])
    labels = np.array([0, 0, 1, 0])
    minibatch_update(X, np.array([1.0, 1.0, 1.0, 2.0]), labels, np.argsort(labels, kind="stable"),
                     centers, counts, False)
    # centroid 0: (2 * [1, 0] + [0, 0] + [2, 0] + 2 * [4, 0]) / (2 + 4); centroid 1: its one point
    np.testing.assert_allclose(centers, [[12 / 6, 0.0], [10.0, 10.0]])
    np.testing.assert_allclose(counts, [6.0, 1.0])


def test_partial_fit_steps_by_hand():
    init = np.array([[0.0, 0.0], [10.0, 0.0]])
    model = MiniBatchKMeans(2, init=init, reassignment_ratio=0.0)
    model.partial_fit(np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]]))
    np.testing.assert_allclose(model.cluster_centers_, [[1.0, 0.0], [10.0, 10.0]])
    model.partial_fit(np.array([[4.0, 0.0]]), sample_weight=[2.0])
    np.testing.assert_allclose(model.cluster_centers_, [[2.5, 0.0], [10.0, 10.0]])
    assert model.n_steps_ == 2
    assert model.labels_.tolist() == [0] and model.inertia_ == pytest.approx(2 * 1.5**2)


@pytest.mark.parametrize("algorithm", ["lloyd", "mop"])
def test_fit_invariants(algorithm):
    X = _data()
    model = MiniBatchKMeans(10, batch_size=256, random_state=0, algorithm=algorithm).fit(X)
    inertia, labels = _exact_inertia(X, model.cluster_centers_)
    assert model.inertia_ == pytest.approx(inertia, rel=1e-6)
    np.testing.assert_array_equal(model.labels_, labels)
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    assert model.labels_.dtype == np.int32
    assert model.n_iter_ == int(np.ceil(model.n_steps_ * 256 / len(X)))
    assert len(model.history_) == model.n_steps_
    assert model.algorithm_ == algorithm
    assert MiniBatchKMeans(3).fit(X).algorithm_ == "lloyd"
    assert model.score(X) == pytest.approx(-model.inertia_, rel=1e-6)


@pytest.mark.parametrize("algorithm, extra", [("lloyd", {}), ("mop", {}), ("mop", {"cold_start": "graph"})])
def test_same_result_whatever_the_thread_count(algorithm, extra):
    X = _data(seed=1)
    fits = [MiniBatchKMeans(12, batch_size=200, random_state=3, algorithm=algorithm, n_threads=t,
                            max_iter=3, **extra).fit(X) for t in (1, 2)]
    np.testing.assert_array_equal(fits[0].cluster_centers_, fits[1].cluster_centers_)
    np.testing.assert_array_equal(fits[0].labels_, fits[1].labels_)
    assert fits[0].n_steps_ == fits[1].n_steps_


def test_same_random_state_same_result_and_another_differs():
    X = _data(seed=2)
    a, b, c = (MiniBatchKMeans(8, random_state=s, batch_size=100).fit(X) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)


def test_input_is_not_modified():
    X = _data()
    before = X.copy()
    MiniBatchKMeans(5, random_state=0, metric="cosine").fit(X)
    np.testing.assert_array_equal(X, before)


def test_partial_fit_on_a_stream_equals_partial_fit_in_memory(tmp_path):
    X = _data(n=2500, seed=4)
    path = tmp_path / "x.npy"
    write_vectors(path, X)
    streamed = MiniBatchKMeans(6, random_state=0)
    for _, block in iter_vector_blocks(path, block_rows=500):
        streamed.partial_fit(block)
    in_memory = MiniBatchKMeans(6, random_state=0)
    for start in range(0, len(X), 500):
        in_memory.partial_fit(X[start:start + 500])
    np.testing.assert_array_equal(streamed.cluster_centers_, in_memory.cluster_centers_)
    assert streamed.n_steps_ == 5


def test_fit_on_a_memmap_equals_fit_in_memory(tmp_path):
    X = _data(seed=5)
    path = tmp_path / "x.npy"
    np.save(path, X)
    a = MiniBatchKMeans(6, random_state=0, batch_size=128).fit(np.load(path, mmap_mode="r"))
    b = MiniBatchKMeans(6, random_state=0, batch_size=128).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_


def test_spherical_keeps_unit_centroids_and_cosine_inertia():
    X = _data(d=16, seed=6)
    model = MiniBatchKMeans(7, metric="cosine", random_state=0, batch_size=200).fit(X)
    np.testing.assert_allclose(np.linalg.norm(model.cluster_centers_, axis=1), 1.0, rtol=1e-5)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = unit.astype(np.float64) @ model.cluster_centers_.T.astype(np.float64)
    assert model.inertia_ == pytest.approx(float((1 - cos.max(1)).sum()), rel=1e-5)
    np.testing.assert_array_equal(model.labels_, cos.argmax(1))
    # Scaling rows changes nothing under the cosine metric.
    scaled = MiniBatchKMeans(7, metric="cosine", random_state=0, batch_size=200).fit(X * 3)
    np.testing.assert_allclose(scaled.cluster_centers_, model.cluster_centers_, atol=1e-5)


def test_reassignment_moves_starved_centroids():
    X = _data(k=4, seed=7)
    far = np.full((4, X.shape[1]), 1000.0, dtype=np.float32) + np.arange(4, dtype=np.float32)[:, None]
    init = np.concatenate([X[:4], far])  # four centroids no point is near
    kwargs = dict(init=init, batch_size=300, random_state=0, max_iter=5, max_no_improvement=None)
    model = MiniBatchKMeans(8, **kwargs).fit(X)
    frozen = MiniBatchKMeans(8, reassignment_ratio=0.0, **kwargs).fit(X)
    np.testing.assert_array_equal(frozen.cluster_centers_[4:], far)
    assert len(np.unique(frozen.labels_)) <= 4
    assert len(np.unique(model.labels_)) > 4
    assert model.inertia_ < frozen.inertia_


def test_early_stopping():
    X = _data(seed=8)
    long = MiniBatchKMeans(10, batch_size=100, random_state=0, max_no_improvement=None, max_iter=3).fit(X)
    assert long.n_steps_ == 3 * len(X) // 100
    short = MiniBatchKMeans(10, batch_size=100, random_state=0, max_no_improvement=2, max_iter=3).fit(X)
    assert short.n_steps_ < long.n_steps_
    by_tol = MiniBatchKMeans(10, batch_size=100, random_state=0, max_no_improvement=None, max_iter=3,
                             tol=1e-2).fit(X)
    assert by_tol.n_steps_ < long.n_steps_


def test_sample_weight_draws_batches():
    X = np.array([[0.0], [10.0]] * 50)
    w = np.tile([1.0, 0.0], 50)
    model = MiniBatchKMeans(1, random_state=0, batch_size=10, init=np.array([[5.0]])).fit(X, sample_weight=w)
    np.testing.assert_allclose(model.cluster_centers_, [[0.0]])
    assert model.inertia_ == pytest.approx(0.0)


def test_init_size_warning_and_explicit_init_warning():
    X = _data()
    with pytest.warns(RuntimeWarning, match="init_size=5 should be larger than n_clusters=10"):
        MiniBatchKMeans(10, init_size=5, random_state=0).fit(X)
    with pytest.warns(RuntimeWarning, match="only one init in MiniBatchKMeans instead of n_init=3"):
        MiniBatchKMeans(10, init=X[:10], n_init=3).fit(X)


@pytest.mark.parametrize("init, expected", [("auto", 32 * 1000), ("hierarchical", 32 * 1000),
                                             ("k-means++", 3 * 1024), ("random", 3 * 1024)])
def test_default_init_size_gives_the_hierarchical_start_its_sample(init, expected):
    # 3 * batch_size rows by default; the hierarchical start ("auto" from 1,000 clusters
    # on) clusters 32 rows per cluster, so its default sample is that large.
    X = np.zeros((50_000, 2), np.float32)
    model = MiniBatchKMeans(1000, init=init, batch_size=1024)
    model._setup(X, 1)
    assert model._init_size == expected


@pytest.mark.parametrize(
    "params, exc, words",
    [
        ({"batch_size": 0}, ValueError, ["batch_size", "0"]),
        ({"batch_size": 2.5}, TypeError, ["batch_size"]),
        ({"max_no_improvement": -1}, ValueError, ["max_no_improvement"]),
        ({"reassignment_ratio": -0.1}, ValueError, ["reassignment_ratio"]),
        ({"init_size": 0}, ValueError, ["init_size"]),
        ({"algorithm": "elkan"}, ValueError, ["algorithm", "elkan"]),
        ({"metric": "ip"}, ValueError, ["metric"]),
        ({"compute_labels": 1}, TypeError, ["compute_labels"]),
        ({"refresh_every": 0}, ValueError, ["refresh_every"]),
        ({"n_clusters": 5000}, ValueError, ["n_samples=3000", "n_clusters=5000"]),
        ({"init": np.zeros((3, 8))}, ValueError, ["init array", "(3, 8)"]),
    ],
)
def test_bad_parameters(params, exc, words):
    with pytest.raises(exc) as info:
        MiniBatchKMeans(**{"n_clusters": 4, **params}).fit(_data())
    for word in words:
        assert word in str(info.value)


def test_partial_fit_checks_features():
    model = MiniBatchKMeans(2, random_state=0).partial_fit(_data(n=100))
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(np.zeros((10, 3)))


# ----------------------------------------------------------------------------- scikit-learn


def test_partial_fit_equals_sklearns_without_reassignment():
    skcluster = pytest.importorskip("sklearn.cluster")
    X = _data(n=600, seed=9).astype(np.float64)
    init = X[:5].copy()
    ours = MiniBatchKMeans(5, init=init, reassignment_ratio=0.0)
    theirs = skcluster.MiniBatchKMeans(5, init=init, n_init=1, reassignment_ratio=0.0)
    w = np.random.default_rng(0).uniform(0.5, 2, len(X))
    for start in range(0, 600, 100):
        ours.partial_fit(X[start:start + 100], sample_weight=w[start:start + 100])
        theirs.partial_fit(X[start:start + 100], sample_weight=w[start:start + 100])
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-10)
    np.testing.assert_allclose(ours._counts, theirs._counts, rtol=1e-12)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9)
    assert ours.n_steps_ == theirs.n_steps_


@pytest.mark.parametrize("metric_algorithm", ["lloyd", "mop"])
def test_fit_quality_close_to_sklearns(metric_algorithm):
    skcluster = pytest.importorskip("sklearn.cluster")
    X = _data(n=6000, k=20, seed=10)
    ours = [MiniBatchKMeans(20, random_state=s, algorithm=metric_algorithm).fit(X).inertia_ for s in range(3)]
    theirs = [skcluster.MiniBatchKMeans(20, random_state=s).fit(X).inertia_ for s in range(3)]
    assert np.median(ours) < 1.05 * np.median(theirs)


def test_sklearn_attributes_present():
    skcluster = pytest.importorskip("sklearn.cluster")
    X = _data(n=500)
    ours = MiniBatchKMeans(3, random_state=0).fit(X)
    theirs = skcluster.MiniBatchKMeans(3, random_state=0).fit(X)
    for name in ("cluster_centers_", "labels_", "inertia_", "n_iter_", "n_steps_", "n_features_in_"):
        assert hasattr(ours, name) and hasattr(theirs, name), name
    no_labels = MiniBatchKMeans(3, random_state=0, compute_labels=False).fit(X)
    assert not hasattr(no_labels, "labels_") and no_labels.inertia_ > 0
