"""k-means on a Dask cluster: two local worker processes, started and stopped here.

Deselect with ``-m "not dask"``.
"""

import contextlib
import importlib
import os
import signal

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from ivfpq import KMeans  # noqa: E402
from .._data import gaussian_mixture
kmeans_module = importlib.import_module("ivfpq.cluster.kmeans")

pytestmark = pytest.mark.dask

TEST_SECONDS = 90  # each test, cluster start included; a hung cluster fails, not blocks


@pytest.fixture(autouse=True)
def _deadline():
    def expire(signum, frame):
        raise TimeoutError(f"a Dask test ran for more than {TEST_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
    )
    dask_client = distributed.Client(cluster, timeout=60)
    try:
        yield dask_client
    finally:
        dask_client.close(timeout=30)
        cluster.close(timeout=30)


def _blobs(n=2000, d=6, centers=8, seed=0):
    return gaussian_mixture(n, d, centers, seed, spread=5.0)


# Unequal chunks and an empty one.
CHUNKS = (700, 0, 300, 1000)


def test_without_a_client_chunks_are_read_in_this_process():
    # Runs before the module's cluster starts: Dask without distributed's Client.
    from ivfpq.cluster.dask_blocks import _current_client

    assert _current_client() is None
    X = _blobs()
    init = X[:10].copy()
    reference = _reference(X, init, max_iter=30, tol=0)
    fitted = KMeans(10, init=init, max_iter=30, tol=0, n_threads=1).fit(
        da.from_array(X, chunks=(CHUNKS, X.shape[1])))
    _assert_same_fit(reference, fitted)


def _reference(X, init, **params):
    return KMeans(init.shape[0], init=init, n_threads=1, **params).fit(X)


def _assert_same_fit(reference, fitted, chunks=CHUNKS):
    assert isinstance(fitted.labels_, da.Array)
    assert fitted.labels_.chunks == (chunks,)
    assert fitted.n_iter_ == reference.n_iter_
    np.testing.assert_array_equal(fitted.labels_.compute(), reference.labels_)
    np.testing.assert_array_equal(fitted.cluster_centers_, reference.cluster_centers_)
    assert fitted.inertia_ == reference.inertia_
    assert [h[1] for h in fitted.history_] == [h[1] for h in reference.history_]


def test_exact_fit_equals_in_memory_fit(client):
    X = _blobs()
    init = X[:10].copy()
    params = dict(max_iter=40, tol=0)
    reference = _reference(X, init, **params)
    X_dask = da.from_array(X, chunks=(CHUNKS, X.shape[1]))
    fitted = KMeans(10, init=init, **params).fit(X_dask)
    _assert_same_fit(reference, fitted)
    np.testing.assert_array_equal(fitted.predict(X_dask).compute(), reference.labels_)
    # Columns split across chunks are joined into whole rows.
    split = da.from_array(X, chunks=(CHUNKS, 4))
    np.testing.assert_array_equal(KMeans(10, init=init, **params).fit(split).labels_.compute(),
                                  reference.labels_)


def test_mop_fit_equals_in_memory_fit(client):
    X = _blobs(n=2048, d=8, centers=40, seed=4)
    init = X[:60].copy()
    # Each point's search depends only on its own row and state, and the audits run on
    # rows chosen by global row number: any chunking gives the in-memory result.
    chunks = (1000, 0, 333, 715)
    params = dict(algorithm="mop", max_iter=15, tol=0, random_state=0, bulk_size=256)
    reference = KMeans(60, init=init, n_threads=1, **params).fit(X)
    fitted = KMeans(60, init=init, **params).fit(da.from_array(X, chunks=(chunks, X.shape[1])))
    _assert_same_fit(reference, fitted, chunks)


def test_weights_cosine_and_empty_clusters_equal_in_memory(client):
    X = _blobs(seed=1)
    w = np.random.default_rng(1).random(X.shape[0])
    init = np.vstack([X[:6], np.full((2, X.shape[1]), 500, dtype=X.dtype)])  # two start empty
    X_dask = da.from_array(X, chunks=(CHUNKS, X.shape[1]))
    for params in ({}, {"metric": "cosine"}):
        reference = KMeans(8, init=init, max_iter=25, tol=0, n_threads=1, **params).fit(X, sample_weight=w)
        fitted = KMeans(8, init=init, max_iter=25, tol=0, **params).fit(
            X_dask, sample_weight=da.from_array(w, chunks=500))
        _assert_same_fit(reference, fitted)


def test_every_init_on_dask_equals_in_memory(client):
    X = _blobs(seed=2)
    X_dask = da.from_array(X, chunks=(CHUNKS, X.shape[1]))
    for init in ("k-means++", "k-means||", "random", "hierarchical"):
        on_dask = KMeans(8, init=init, random_state=5, max_iter=3).fit(X_dask)
        in_memory = KMeans(8, init=init, random_state=5, max_iter=3, n_threads=1).fit(X)
        _assert_same_fit(in_memory, on_dask)


def test_a_worker_killed_mid_fit_does_not_change_the_result(client, monkeypatch):
    X = _blobs(seed=3)
    init = X[:12].copy()
    params = dict(max_iter=30, tol=0)
    reference = _reference(X, init, **params)
    assert reference.n_iter_ > 4
    X_dask = da.from_array(X, chunks=(CHUNKS, X.shape[1]))
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    killed = []

    def kill_after_second_iteration(iteration, inertia, changed, audit=None):
        if iteration == 2:
            # The victim holds chunks and their per-point state (labels): both are lost.
            held = [key for key, where in client.who_has().items() if victim in where]
            assert any("-out-" in str(key) for key in held), held
            os.kill(pids[victim], signal.SIGKILL)  # a crash: no goodbye to the scheduler
            killed.append(victim)

    # The loop calls the progress callback after each iteration; kill from there.
    monkeypatch.setattr(kmeans_module, "_progress",
                        lambda *args: contextlib.nullcontext(kill_after_second_iteration))
    fitted = KMeans(12, init=init, **params).fit(X_dask)
    assert killed
    assert victim not in client.scheduler_info()["workers"]
    _assert_same_fit(reference, fitted)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def test_bad_input_is_refused(client):
    X = da.from_array(_blobs(), chunks=(CHUNKS, 6))
    with pytest.raises(ValueError, match="block_rows"):
        KMeans(3).fit(X, block_rows=100)
    bad = _blobs()
    bad[1234, 0] = np.inf
    with pytest.raises(ValueError, match="first at row 1234"):
        KMeans(3, init=bad[:3]).fit(da.from_array(bad, chunks=500))
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        KMeans(3).fit(X, sample_weight=np.ones(5))


def test_one_worker_gives_the_same_fit_as_two(client):
    X = _blobs(n=2048, d=8, centers=40, seed=4)
    params = dict(algorithm="mop", init="k-means++", max_iter=10, tol=0, random_state=3, bulk_size=256)
    on_two = KMeans(60, **params).fit(da.from_array(X, chunks=((1000, 0, 333, 715), X.shape[1])))
    two_labels = on_two.labels_.compute()
    single = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None, silence_logs=40)
    try:
        with distributed.Client(single, timeout=60) as one_client, one_client.as_current():
            on_one = KMeans(60, **params).fit(da.from_array(X, chunks=((2048,), X.shape[1])))
            one_labels = on_one.labels_.compute()
    finally:
        single.close(timeout=30)
    in_memory = KMeans(60, n_threads=2, **params).fit(X)
    for fitted, labels in ((on_two, two_labels), (on_one, one_labels)):
        np.testing.assert_array_equal(labels, in_memory.labels_)
        np.testing.assert_array_equal(fitted.cluster_centers_, in_memory.cluster_centers_)
        assert fitted.inertia_ == in_memory.inertia_ and fitted.n_iter_ == in_memory.n_iter_
