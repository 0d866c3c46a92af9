"""Checkpoints: a fit killed with SIGKILL and started again ends bit for bit as the
uninterrupted one; checkpoints of other data or parameters are refused."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ivfpq import KMeans

from .._data import gaussian_mixture

KILL_SCRIPT = textwrap.dedent("""
    import contextlib, importlib, os, signal, sys
    import numpy as np
    from ivfpq import KMeans

    kmeans_module = importlib.import_module("ivfpq.cluster.kmeans")

    data, checkpoint, kill_at, params = sys.argv[1], sys.argv[2], int(sys.argv[3]), eval(sys.argv[4])
    X = np.load(data, mmap_mode="r") if params.pop("memmap") else np.load(data)
    @contextlib.contextmanager
    def progress(verbose, max_iter, run, n_init):
        def callback(iteration, inertia, changed, audit=None):
            if run == n_init - 1 and iteration == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, as a crash
        yield callback

    kmeans_module._progress = progress
    block_rows = params.pop("block_rows")
    KMeans(checkpoint=checkpoint, **params).fit(X, block_rows=block_rows)
""")


def _assert_same_fit(a, b):
    assert b.n_iter_ == a.n_iter_
    np.testing.assert_array_equal(b.labels_, a.labels_)
    np.testing.assert_array_equal(b.cluster_centers_, a.cluster_centers_)
    assert b.inertia_ == a.inertia_
    assert [h[1] for h in b.history_] == [h[1] for h in a.history_]
    assert b.changed_fraction_ == a.changed_fraction_


CASES = {
    "exact": dict(n_clusters=40, init="k-means++", max_iter=12, tol=0, random_state=0, memmap=False,
                  block_rows=None),
    "mop": dict(n_clusters=120, algorithm="mop", init="random", n_init=1, max_iter=12, tol=0, random_state=1,
                memmap=False, block_rows=None),
    "mop-memmap-two-runs": dict(n_clusters=120, algorithm="mop", init="random", n_init=2, max_iter=10, tol=0,
                                random_state=2, memmap=True, block_rows=1500),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_killed_fit_resumes_to_the_uninterrupted_result(tmp_path, case):
    X = gaussian_mixture(4000, 10, 30, seed=5)
    np.save(tmp_path / "x.npy", X)
    params = dict(CASES[case])
    memmap, block_rows = params.pop("memmap"), params.pop("block_rows")
    data = np.load(tmp_path / "x.npy", mmap_mode="r") if memmap else X
    reference = KMeans(**params).fit(data, block_rows=block_rows)
    assert reference.n_iter_ > 5 and reference.resumed_at_ == 0

    path = tmp_path / "run.ckpt"
    child = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "x.npy"), str(path), "5",
         repr(dict(CASES[case]))], capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr
    assert path.exists()
    resumed = KMeans(checkpoint=str(path), **params).fit(data, block_rows=block_rows)
    assert resumed.resumed_at_ == 4
    _assert_same_fit(reference, resumed)
    assert not path.exists()  # removed once the fit completes


def test_other_data_or_parameters_are_refused(tmp_path):
    X = gaussian_mixture(2000, 6, 10, seed=1)
    path = tmp_path / "run.ckpt"
    np.save(tmp_path / "x.npy", X)
    child = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "x.npy"), str(path), "3",
         repr(dict(n_clusters=20, max_iter=10, tol=0, random_state=0, memmap=False, block_rows=None))],
        capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr
    with pytest.raises(ValueError, match="other data"):
        KMeans(20, max_iter=10, tol=0, random_state=0, checkpoint=str(path)).fit(X[::-1])
    with pytest.raises(ValueError, match="max_iter=10 there, 11 now"):
        KMeans(20, max_iter=11, tol=0, random_state=0, checkpoint=str(path)).fit(X)
    # Parameters that cannot change the result may differ.
    resumed = KMeans(20, max_iter=10, tol=0, random_state=0, checkpoint=str(path), n_threads=1).fit(X)
    assert resumed.resumed_at_ == 2


def test_checkpoint_parameters_are_checked():
    with pytest.raises(ValueError, match="checkpoint_every"):
        KMeans(2, checkpoint_every=0).fit([[0.0], [1.0]])
    with pytest.raises(TypeError, match="checkpoint"):
        KMeans(2, checkpoint=3).fit([[0.0], [1.0]])
