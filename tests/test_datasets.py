"""Seeded synthetic data and dataset folders."""

import numpy as np
import pytest

from ivfpq.datasets import dataset_files, make_blobs


def test_anisotropic_blobs_scale_each_dimension_within_the_range():
    X, y = make_blobs(20_000, 6, centers=2, cluster_std=1.0, spread=100.0, std_range=(0.5, 2.0), random_state=3)
    for c in range(2):
        std = X[y == c].std(axis=0)
        assert np.all(std > 0.45) and np.all(std < 2.1)
        assert std.max() / std.min() > 1.2  # not isotropic
    again, _ = make_blobs(20_000, 6, centers=2, cluster_std=1.0, spread=100.0, std_range=(0.5, 2.0), random_state=3)
    np.testing.assert_array_equal(X, again)
    with pytest.raises(ValueError, match="std_range"):
        make_blobs(10, 2, std_range=(2.0, 1.0))


def test_dataset_files_read_a_dtype_tag_in_the_name(tmp_path):
    for name in ("base.u8.npy", "query.u8.npy", "query.bvecs", "groundtruth.npy", "build.py"):
        (tmp_path / name).write_bytes(b"")
    found = dataset_files(tmp_path)
    assert found["base"].name == "base.u8.npy"
    assert found["query"].name == "query.u8.npy"  # .npy first
    assert found["groundtruth"].name == "groundtruth.npy"
