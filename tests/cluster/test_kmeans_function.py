import numpy as np

from ivfpq import kmeans

SIX_POINTS = [[0, 0], [0.2, 0.1], [0.1, 0.2], [5, 5], [5.1, 4.9], [4.9, 5.1]]


def test_seed_function_reproduces_the_documented_example():
    centroids, assignments = kmeans(SIX_POINTS, k=2, seed=0)
    assert np.round(centroids, 2).tolist() == [[5, 5], [0.1, 0.1]]
    assert assignments.tolist() == [1, 1, 1, 0, 0, 0]
    assert centroids.dtype == np.float64
