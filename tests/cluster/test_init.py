"""Initialisations over executors: hand-checked cases and independence of the blocking."""

import numpy as np
import pytest

from ivfpq.cluster.executor import LocalBlocks, local_executor
from hypothesis import given, settings
from hypothesis import strategies as st

from ivfpq import KMeans
from ivfpq.cluster.init import (
    hierarchical_centers,
    kmeans_parallel,
    kmeans_plusplus,
    random_centers,
    random_rows,
    row_uniforms,
    split_counts,
)

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


def test_split_counts_by_hand():
    # Shares 3, 1.5 and 0.5: the one left over goes to the lower of the tied remainders.
    assert split_counts(np.array([6, 3, 1]), 5).tolist() == [3, 2, 0]
    # A group of one row takes one cluster at most; the rest go to the others.
    assert split_counts(np.array([1, 1, 10]), 12).tolist() == [1, 1, 10]
    assert split_counts(np.array([0, 5, 2, 1]), 7).tolist() == [0, 4, 2, 1]
    # By weight: shares 1.25, 1.25 and 2.5, but the last group has one row only.
    assert split_counts(np.array([6, 3, 1]), 5, weights=np.array([1.0, 1.0, 2.0])).tolist() == [2, 2, 1]
    with pytest.raises(ValueError, match="cannot share 4 clusters among 3 rows"):
        split_counts(np.array([1, 2]), 4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=12), st.data())
def test_split_counts_sums_to_the_total_and_fits_the_groups(sizes, data):
    sizes = np.array(sizes)
    total = data.draw(st.integers(0, int(sizes.sum())))
    counts = split_counts(sizes, total)
    assert counts.sum() == total and np.all(counts >= 0) and np.all(counts <= sizes)
    # Proportional, up to the rounding: no group under its floor share unless it is full.
    if total:
        floor_share = np.floor(total * sizes / sizes.sum())
        assert np.all((counts >= floor_share) | (counts == sizes))


def _far_blobs(n_per_blob, n_blobs, d=4, seed=0, std=None):
    rng = np.random.default_rng(seed)
    means = 1000.0 * np.eye(n_blobs, d)
    std = np.ones(n_blobs) if std is None else std
    X = np.concatenate([m + s * rng.standard_normal((n_per_blob, d)) for m, s in zip(means, std)])
    return X.astype(np.float32), np.repeat(np.arange(n_blobs), n_per_blob)


def test_hierarchical_shares_the_centroids_among_far_blobs_alike():
    # Four far blobs alike and k = 16: four groups, one per blob, four centroids
    # each, every one a mean of rows of its blob.
    X, blob = _far_blobs(500, 4)
    ex, blocks, _ = _executor(X, 300)
    centers = hierarchical_centers(ex, blocks, 16, np.random.default_rng(0))
    nearest_blob = np.argmin(((centers[:, None, :] - 1000.0 * np.eye(4)[None]) ** 2).sum(-1), axis=1)
    assert np.bincount(nearest_blob, minlength=4).tolist() == [4, 4, 4, 4]
    assert np.all(np.abs(centers - 1000.0 * np.eye(4)[nearest_blob]).max(axis=1) < 5)


def test_hierarchical_gives_every_group_one_centroid_and_the_rest_by_cost():
    # Two far blobs of 500 rows, spreads 3 and 1 (costs 9 : 1), k = 4: two groups,
    # one centroid each, then the two left shared 1.8 : 0.2, so 3 and 1.
    X, _ = _far_blobs(500, 2, std=np.array([3.0, 1.0]))
    ex, blocks, _ = _executor(X, 256)
    centers = hierarchical_centers(ex, blocks, 4, np.random.default_rng(0))
    assert np.bincount(np.argmax(centers[:, :2], axis=1), minlength=2).tolist() == [3, 1]


def test_hierarchical_does_not_depend_on_the_blocking_and_is_seeded():
    X = gaussian_mixture(3000, 6, 30, seed=4)
    w = np.random.default_rng(1).random(3000)
    results = []
    for block_rows in (3000, 401, 97):
        ex, blocks, _ = _executor(X, block_rows, w)
        results.append(hierarchical_centers(ex, blocks, 40, np.random.default_rng(3)))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    assert results[0].shape == (40, 6) and np.isfinite(results[0]).all()
    ex, blocks, _ = _executor(X, 3000, w)
    assert not np.array_equal(hierarchical_centers(ex, blocks, 40, np.random.default_rng(4)), results[0])


def test_hierarchical_with_as_many_rows_as_clusters_returns_the_rows():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    ex, blocks, _ = _executor(X, 4)
    centers = hierarchical_centers(ex, blocks, 10, np.random.default_rng(0))
    assert sorted(map(tuple, centers.tolist())) == sorted(map(tuple, X.tolist()))


def test_kmeans_with_the_hierarchical_start_beats_random_on_far_blobs():
    # Random rows leave some blobs with too few centroids; the hierarchical start
    # shares them by size, so Lloyd from it ends lower.
    X, _ = _far_blobs(400, 5, d=5, seed=2)
    hierarchical = KMeans(25, init="hierarchical", max_iter=10, random_state=0).fit(X)
    rand = KMeans(25, init="random", n_init=1, max_iter=10, random_state=0).fit(X)
    assert hierarchical.inertia_ < rand.inertia_
    cosine = KMeans(9, init="hierarchical", metric="cosine", max_iter=2, random_state=0).fit(X)
    np.testing.assert_allclose(np.linalg.norm(cosine.cluster_centers_, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("init", ["random", "hierarchical"])
def test_a_start_with_fewer_weighted_rows_than_clusters_still_gives_k_centroids(init):
    # Five rows of positive weight for ten clusters: the five, and five of zero weight.
    X = np.arange(300, dtype=np.float32).reshape(100, 3)
    w = np.zeros(100)
    w[[10, 30, 50, 70, 90]] = 1.0
    model = KMeans(10, init=init, n_init=1, max_iter=1, random_state=0).fit(X, sample_weight=w)
    assert model.cluster_centers_.shape == (10, 3)


def test_kmeans_plusplus_past_the_distinct_rows_does_not_depend_on_the_blocking():
    # Three distinct rows, seven centroids: after three, every row sits on a centroid
    # and the candidates are drawn by weight alone; one block (the whole-loop kernel)
    # and several (the executor loop) must still agree.
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0], [-3.0, 4.0]], dtype=np.float32), 20, axis=0)
    results = []
    for block_rows in (60, 7):
        ex, blocks, stats = _executor(X, block_rows)
        results.append(kmeans_plusplus(ex, blocks, stats, 7, np.random.default_rng(4)))
    np.testing.assert_array_equal(results[0], results[1])
    assert {tuple(c) for c in results[0].tolist()} == {tuple(r) for r in X.tolist()}
