"""Initialisations over executors: hand-checked cases and independence of the blocking."""

import numpy as np
import pytest

from ivfpq.cluster.executor import LocalBlocks, local_executor
from ivfpq.cluster.init import kmeans_parallel, kmeans_plusplus, random_centers, random_rows, row_uniforms

from .._data import gaussian_mixture


def _executor(X, block_rows, weights=None):
    ex = local_executor(X, weights, block_rows, cosine=False)
    return ex, *ex.validate()


def test_row_uniforms_belong_to_global_rows():
    whole = row_uniforms(7, 1, 0, 100)
    np.testing.assert_array_equal(np.concatenate([row_uniforms(7, 1, 0, 30), row_uniforms(7, 1, 30, 70)]),
                                  whole)
    assert np.all((whole > 0) & (whole < 1))
    assert not np.array_equal(whole, row_uniforms(7, 2, 0, 100))


def test_random_rows_are_distinct_positive_weight_and_blocking_free():
    X = np.arange(400, dtype=np.float32).reshape(200, 2)
    w = np.zeros(200)
    w[::9] = 1.0
    picks = []
    for block_rows in (200, 13):
        ex, blocks, _ = _executor(X, block_rows, w)
        picks.append(random_rows(ex, blocks, 10, seed=5))
    np.testing.assert_array_equal(picks[0], picks[1])
    assert len(set(picks[0].tolist())) == 10 and np.all(w[picks[0]] > 0)


def test_kmeans_plusplus_on_two_far_pairs_picks_one_point_of_each():
    # Two pairs a million apart: after the first centroid, the second must come from
    # the other pair (its squared distance dwarfs everything else).
    X = np.array([[0, 0], [0, 1], [1e6, 0], [1e6, 1]], dtype=np.float64)
    for seed in range(5):
        ex, blocks, stats = _executor(X, 3)
        centers = kmeans_plusplus(ex, blocks, stats, 2, np.random.default_rng(seed))
        assert sorted(centers[:, 0].tolist()) == [0.0, 1e6]


@pytest.mark.parametrize("init", [kmeans_plusplus, kmeans_parallel])
def test_seeding_does_not_depend_on_the_blocking(init):
    X = gaussian_mixture(2000, 6, 12, seed=1)
    w = np.random.default_rng(0).random(2000)
    results = []
    for block_rows in (2000, 301, 64):
        ex, blocks, stats = _executor(X, block_rows, w)
        results.append(init(ex, blocks, stats, 12, np.random.default_rng(3)))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    # Rows of X, distinct.
    rows = {tuple(r) for r in X.tolist()}
    assert all(tuple(c) in rows for c in results[0].tolist()) and len({tuple(c) for c in results[0].tolist()}) == 12


def test_random_centers_are_rows_of_the_data():
    X = gaussian_mixture(500, 3, 4, seed=2)
    ex, blocks, _ = _executor(X, 77)
    centers = random_centers(ex, blocks, 9, np.random.default_rng(0))
    assert centers.shape == (9, 3)
    assert all(any(np.array_equal(c, x) for x in X) for c in centers)


def test_local_blocks_cache_checks_in_memory_data_once():
    X = np.ones((10, 2), dtype=np.float32)
    reads = []

    def read(start, stop):
        reads.append((start, stop))
        return X[start:stop]

    ex = LocalBlocks(read, [0, 4, 10], 2, np.float32, cache=True)
    ex.validate()
    ex.map(lambda x: x.sum())
    assert reads == [(0, 4), (4, 10)]
