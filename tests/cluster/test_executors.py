"""One loop, several executors: in memory, in blocks, on a memory-map; bit for bit the same."""

import tracemalloc

import numpy as np
import pytest

from ivfpq import KMeans as _KMeans
from ivfpq.cluster import init as init_module
from ivfpq.cluster.executor import tree_reduce
from ivfpq.io import read_vectors

from .._data import gaussian_mixture


def KMeans(*args, **kwargs):
    # One thread: the blocks are tiny; results do not depend on it.
    kwargs.setdefault("n_threads", 1)
    return _KMeans(*args, **kwargs)


def _blobs(n=3000, d=8, centers=6, seed=0, dtype=np.float32):
    return gaussian_mixture(n, d, centers, seed, spread=6.0, dtype=dtype)


def _assert_same_fit(a, b):
    """Bit for bit: labels, centroids, inertia, iterations and the inertia history."""
    assert b.n_iter_ == a.n_iter_
    np.testing.assert_array_equal(np.asarray(b.labels_), a.labels_)
    np.testing.assert_array_equal(b.cluster_centers_, a.cluster_centers_)
    assert b.inertia_ == a.inertia_
    assert [h[1] for h in b.history_] == [h[1] for h in a.history_]


def write_fvecs(path, X):
    X = np.asarray(X, dtype=np.float32)
    rows = np.empty((X.shape[0], X.shape[1] + 1), dtype=np.float32)
    rows[:, 0] = np.array([X.shape[1]], dtype=np.int32).view(np.float32)[0]
    rows[:, 1:] = X
    rows.tofile(path)


def open_fvecs_memmap(path):
    """A read-only (n, d) memmap view of an .fvecs file (each row: int32 d, then d float32)."""
    d = int(np.fromfile(path, dtype=np.int32, count=1)[0])
    rows = np.memmap(path, dtype=np.float32, mode="r").reshape(-1, d + 1)
    assert (rows[:, 0].view(np.int32) == d).all()
    return rows[:, 1:]


# ----------------------------------------------------------------------------- reduction order


def test_tree_reduce_pairs_neighbours_level_by_level():
    def combine(a, b):
        return f"({a}+{b})"

    assert tree_reduce(list("abcde"), combine) == "(((a+b)+(c+d))+e)"
    assert tree_reduce(["a"], combine) == "a"
    with pytest.raises(ValueError):
        tree_reduce([], combine)


# ----------------------------------------------------------------------------- equality with lloyd


@pytest.mark.parametrize("block_rows", [7, 257, 1000, 5000])
def test_blocked_fit_equals_in_memory_fit(block_rows):
    X = _blobs(1200)
    init = X[:12].copy()
    reference = KMeans(12, init=init, max_iter=40, tol=0).fit(X)
    _assert_same_fit(reference, KMeans(12, init=init, max_iter=40, tol=0).fit(X, block_rows=block_rows))


@pytest.mark.parametrize("algorithm", ["lloyd", "mop"])
@pytest.mark.parametrize("init", ["given", "random", "k-means++", "k-means||", "hierarchical"])
def test_near_ties_give_identical_fits_for_any_blocking_and_thread_count(near_ties, algorithm, init):
    X = near_ties
    start = X[np.random.default_rng(1).choice(X.shape[0], 200, replace=False)].copy()
    params = dict(init=start if init == "given" else init, max_iter=8, tol=0, random_state=0,
                  algorithm=algorithm, n_init=1)
    reference = _KMeans(200, n_threads=2, **params).fit(X)
    for block_rows, threads in ((7000, 2), (777, 1), (2048, 2)):
        _assert_same_fit(reference, _KMeans(200, n_threads=threads, **params).fit(X, block_rows=block_rows))


def test_blocked_fit_with_weights_cosine_and_float64_equals_in_memory():
    X = _blobs(900, dtype=np.float64)
    w = np.random.default_rng(1).random(900)
    init = X[::90].copy()
    for params in ({}, {"metric": "cosine"}):
        reference = KMeans(10, init=init, max_iter=30, tol=0, **params).fit(X, sample_weight=w)
        fitted = KMeans(10, init=init, max_iter=30, tol=0, **params).fit(X, sample_weight=w, block_rows=100)
        _assert_same_fit(reference, fitted)
        assert fitted.cluster_centers_.dtype == np.float64


def test_empty_clusters_are_repaired_as_in_memory():
    X = _blobs(600, centers=3)
    # Centroids far away from every point end up empty after the first assignment.
    init = np.vstack([X[:5], np.full((3, X.shape[1]), 1e3, dtype=X.dtype)])
    reference = KMeans(8, init=init, max_iter=20, tol=0).fit(X)
    fitted = KMeans(8, init=init, max_iter=20, tol=0).fit(X, block_rows=70)
    _assert_same_fit(reference, fitted)
    assert len(np.unique(fitted.labels_)) == 8


def test_convergence_by_tolerance_matches():
    X = _blobs(2000)
    init = X[:20].copy()
    reference = KMeans(20, init=init, tol=1e-2).fit(X)
    fitted = KMeans(20, init=init, tol=1e-2).fit(X, block_rows=300)
    _assert_same_fit(reference, fitted)


# ----------------------------------------------------------------------------- out of core


def test_npy_memmap_is_read_in_blocks_and_never_whole(tmp_path):
    X = _blobs(60_000, d=128, centers=10)  # 31 MB on disk
    path = tmp_path / "x.npy"
    np.save(path, X)
    init = X[:10].copy()
    reference = KMeans(10, init=init, max_iter=8, tol=0).fit(X)
    X_file = np.load(path, mmap_mode="r")
    assert isinstance(X_file, np.memmap)

    KMeans(10, init=init, max_iter=1).fit(X_file, block_rows=2_000)  # kernels loaded before tracing
    tracemalloc.start()
    fitted = KMeans(10, init=init, max_iter=8, tol=0).fit(X_file, block_rows=2_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    _assert_same_fit(reference, fitted)
    # Per-point state (labels, distances, weights: 24 bytes a row, 40 while an
    # iteration replaces them) and one block, but never the 31 MB of data.
    assert peak < X.nbytes / 4, peak
    np.testing.assert_array_equal(fitted.predict(X_file), reference.labels_)


def test_fvecs_memmap_fit_equals_in_memory(tmp_path):
    X = _blobs(3000, d=12)
    path = tmp_path / "x.fvecs"
    write_fvecs(path, X)
    X_file = open_fvecs_memmap(path)
    assert isinstance(X_file, np.memmap) and not X_file.flags.c_contiguous
    init = X[:9].copy()
    reference = KMeans(9, init=init, max_iter=25, tol=0).fit(X)
    _assert_same_fit(reference, KMeans(9, init=init, max_iter=25, tol=0).fit(X_file, block_rows=128))


def test_fvecs_opened_by_ivfpq_io_is_clustered_block_by_block(tmp_path):
    X = _blobs(2500, d=10)
    path = tmp_path / "x.fvecs"
    write_fvecs(path, X)
    X_file = read_vectors(path)
    assert isinstance(X_file, np.memmap)
    init = X[:7].copy()
    reference = KMeans(7, init=init, max_iter=20, tol=0).fit(X)
    _assert_same_fit(reference, KMeans(7, init=init, max_iter=20, tol=0).fit(X_file, block_rows=300))


def test_default_init_on_a_memmap_equals_the_in_memory_fit(tmp_path):
    X = _blobs(2000)
    np.save(tmp_path / "x.npy", X)
    X_file = np.load(tmp_path / "x.npy", mmap_mode="r")
    on_file = KMeans(6, random_state=3, max_iter=4).fit(X_file, block_rows=300)
    _assert_same_fit(KMeans(6, random_state=3, max_iter=4).fit(X), on_file)


def test_nan_in_a_block_names_the_row(tmp_path):
    X = _blobs(500)
    X[321, 2] = np.nan
    np.save(tmp_path / "x.npy", X)
    X_file = np.load(tmp_path / "x.npy", mmap_mode="r")
    with pytest.raises(ValueError, match="first at row 321"):
        KMeans(4, init=X[:4], max_iter=3).fit(X_file, block_rows=100)


def test_bad_block_rows_and_weights_are_refused():
    X = _blobs(100)
    with pytest.raises(ValueError, match="block_rows"):
        KMeans(2).fit(X, block_rows=0)
    with pytest.raises(TypeError, match="block_rows"):
        KMeans(2).fit(X, block_rows=2.5)
    with pytest.raises(ValueError, match="non-negative"):
        KMeans(2).fit(X, sample_weight=-np.ones(100), block_rows=10)


# ----------------------------------------------------------------------------- initialisations


def test_kmeans_parallel_weights_candidates_by_the_rows_nearest_to_them(monkeypatch):
    X = _blobs(1500, d=4)
    w = np.random.default_rng(2).random(1500)
    seen = {}

    def spy(ex, blocks, stats, n_clusters, rng):
        seen["candidates"] = ex._read(0, ex.n_rows)
        seen["weights"] = ex._weights
        return seen["candidates"][:n_clusters]

    monkeypatch.setattr(init_module, "kmeans_plusplus", spy)
    KMeans(5, init="k-means||", random_state=0, max_iter=1).fit(X, sample_weight=w, block_rows=200)
    C = seen["candidates"].astype(np.float64)
    nearest = ((X[:, None, :].astype(np.float64) - C[None]) ** 2).sum(-1).argmin(axis=1)
    np.testing.assert_allclose(seen["weights"], np.bincount(nearest, weights=w, minlength=len(C)))
    # About 1 + 2k candidates per round over 5 rounds, never all the data.
    assert 5 < len(C) < 200


def test_kmeans_parallel_does_not_depend_on_the_blocking():
    X = _blobs(2000)
    a = KMeans(8, init="k-means||", random_state=7, max_iter=1).fit(X, block_rows=2000)
    b = KMeans(8, init="k-means||", random_state=7, max_iter=1).fit(X, block_rows=123)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


def test_kmeans_parallel_seeds_as_well_as_kmeans_plusplus():
    X = _blobs(3000, centers=12)
    parallel = [KMeans(12, init="k-means||", random_state=s, max_iter=1).fit(X).inertia_ for s in range(4)]
    greedy = [KMeans(12, init="k-means++", random_state=s, max_iter=1).fit(X).inertia_ for s in range(4)]
    assert np.median(parallel) < 1.5 * np.median(greedy)


def test_random_init_picks_distinct_rows_with_positive_weight():
    X = np.arange(200, dtype=np.float32).reshape(100, 2)
    w = np.zeros(100)
    w[[3, 10, 20, 50, 77, 90]] = 1.0
    model = KMeans(6, init="random", random_state=0, max_iter=1).fit(X, sample_weight=w, block_rows=7)
    # One iteration moves each centroid onto its single weighted row.
    assert sorted(model.cluster_centers_[:, 0].tolist()) == sorted(X[[3, 10, 20, 50, 77, 90], 0].tolist())


def test_importing_ivfpq_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, ivfpq; ivfpq.KMeans(2).fit([[0.0], [1.0]]); print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_block_rows_accepts_any_array_like():
    X = _blobs(300).tolist()
    reference = KMeans(3, init=np.asarray(X[:3], dtype=np.float64), max_iter=5).fit(X)
    fitted = KMeans(3, init=np.asarray(X[:3], dtype=np.float64), max_iter=5).fit(X, block_rows=50)
    _assert_same_fit(reference, fitted)


def test_mop_fit_on_a_memmap_equals_in_memory_fit(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((4000, 12)) + rng.integers(0, 40, (4000, 1))).astype(np.float32)
    init = X[:150].copy()
    params = dict(algorithm="mop", max_iter=12, tol=0, random_state=0, bulk_size=256)
    reference = KMeans(150, init=init, **params).fit(X)
    np.save(tmp_path / "x.npy", X)
    for block_rows in (4000, 1024, 333):
        fitted = KMeans(150, init=init, **params).fit(np.load(tmp_path / "x.npy", mmap_mode="r"),
                                                      block_rows=block_rows)
        _assert_same_fit(reference, fitted)
    assert fitted.algorithm_ == "mop"
    inertias = np.array([h[1] for h in fitted.history_])
    assert np.all(np.diff(inertias) <= 1e-9 * inertias[:-1])


# ----------------------------------------------------------------------------- compact input


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.float16, np.uint16])
def test_compact_input_is_read_as_float32_blocks_and_fits_as_its_float32_copy(tmp_path, dtype):
    rng = np.random.default_rng(0)
    X = _blobs(3000, d=16, centers=8) * 4 + (0 if dtype in (np.int8, np.float16) else 60)
    X = np.clip(np.round(X), np.iinfo(dtype).min if dtype != np.float16 else -1e4,
                np.iinfo(dtype).max if dtype != np.float16 else 1e4).astype(dtype)
    init = X[rng.choice(3000, 20, replace=False)].astype(np.float32)
    reference = KMeans(20, init=init, max_iter=10, tol=0).fit(X.astype(np.float32))
    np.save(tmp_path / "x.npy", X)
    on_file = np.load(tmp_path / "x.npy", mmap_mode="r")
    for data, block_rows in ((X, None), (X, 777), (on_file, 500)):
        fitted = KMeans(20, init=init, max_iter=10, tol=0).fit(data, block_rows=block_rows)
        _assert_same_fit(reference, fitted)
        assert fitted.cluster_centers_.dtype == np.float32


def test_a_uint8_memmap_is_never_copied_whole(tmp_path):
    X = np.clip(np.round(_blobs(200_000, d=64, centers=10) * 8 + 100), 0, 255).astype(np.uint8)  # 12.8 MB
    np.save(tmp_path / "x.npy", X)
    X_file = np.load(tmp_path / "x.npy", mmap_mode="r")
    init = X[:10].astype(np.float32)
    KMeans(10, init=init, max_iter=1).fit(X_file, block_rows=4096)  # kernels compiled before tracing
    tracemalloc.start()
    KMeans(10, init=init, max_iter=3, tol=0).fit(X_file, block_rows=4096)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Per-point state (labels, distances and weights, 24 bytes a row, more while an
    # iteration replaces them) and a few float32 blocks: less than the uint8 data
    # itself, where a float32 copy alone would be four times it.
    assert peak < X.nbytes, peak


def test_row_changes_add_like_the_dense_arrays_they_stand_for():
    from ivfpq.cluster.executor import RowChanges, add_partials

    rng = np.random.default_rng(0)
    k, d = 12, 3
    a_ids, b_ids = np.array([1, 4, 7]), np.array([0, 4, 11])
    a = RowChanges(a_ids, rng.integers(-5, 5, (3, d)), k)
    b = RowChanges(b_ids, rng.integers(-5, 5, (3, d)), k)
    dense = rng.integers(-9, 9, (k, d))
    both = a + b
    assert isinstance(both, RowChanges) and both.ids.tolist() == [0, 1, 4, 7, 11]
    np.testing.assert_array_equal(both.dense(), a.dense() + b.dense())
    for total in (dense + a, a + dense):
        assert isinstance(total, np.ndarray)
        np.testing.assert_array_equal(total, dense + a.dense())
    np.testing.assert_array_equal(dense, dense.copy())  # dense + changes leaves dense alone
    summed = add_partials((a, 3, None), (dense, 4, None))
    np.testing.assert_array_equal(summed[0], dense + a.dense())
    assert summed[1:] == (7, None)


def test_moved_sums_are_the_same_dense_or_sparse():
    from ivfpq.cluster.executor import RowChanges
    from ivfpq.cluster.lloyd import FitScales, _moved_sums

    rng = np.random.default_rng(1)
    n, d, k = 500, 4, 300
    x = rng.standard_normal((n, d)).astype(np.float32)
    weights = rng.random(n) + 0.5
    before = rng.integers(-1, k, n)
    after = before.copy()
    few = rng.choice(n, 20, replace=False)
    after[few] = rng.integers(0, k, 20)
    scales = FitScales.from_stats((n, np.abs(x).max(axis=0), float(weights.max())))
    counts = np.zeros(k, np.int64)
    sparse, moved = _moved_sums(x, weights, before, after, scales, counts)
    assert isinstance(sparse, RowChanges) and moved == int(np.sum(before != after))
    dense_counts = np.zeros(k, np.int64)
    dense, moved_dense = _moved_sums(x, weights, np.full(n, -1), after, scales, dense_counts)  # all move: dense
    assert isinstance(dense, np.ndarray) and moved_dense == int(np.sum(after >= 0))
    from ivfpq.kernels.lloyd import add_moved_points

    expected, expected_counts = np.zeros((k, d), np.int64), np.zeros(k, np.int64)
    add_moved_points(x, weights, before, after, scales.features, scales.weight, expected, expected_counts)
    np.testing.assert_array_equal(sparse.dense(), expected)
    np.testing.assert_array_equal(counts, expected_counts)
