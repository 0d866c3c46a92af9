"""Figures are produced, carry labels and titles, and save as valid PNG files."""

import numpy as np
import pytest

from ivfpq.plot import (
    pca_2d,
    plot_clusters,
    plot_pq_centroid_distributions,
    plot_recall_latency,
    plot_score_over_time,
    save_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0  # not a blank canvas
    assert list(path.parent.glob(".*tmp*")) == []


def test_clusters_2d(tmp_path):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-3, 1, (50, 2)), rng.normal(3, 1, (50, 2))])
    labels = np.repeat([0, 1], 50)
    fig = plot_clusters(X, labels, [[-3, 0], [3, 0]])
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x[0]", "x[1]")
    assert "100 points, 2 clusters" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cluster 0", "cluster 1", "centroid"]
    _check_png(save_figure(fig, tmp_path / "clusters.png"))


def test_clusters_high_dimensional_uses_pca_and_samples(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3000, 12)).astype(np.float32)
    labels = rng.integers(0, 40, 3000)
    fig = plot_clusters(X, labels, rng.standard_normal((40, 12)), max_points=500)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("principal component 1 (")
    assert "PCA projection" in ax.get_title() and "500 of 3,000 points shown" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["centroids (k=40)"]
    _check_png(save_figure(fig, tmp_path / "pca.png"))


def test_pca_matches_svd():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((400, 6)) @ rng.standard_normal((6, 6))
    mean, components, explained = pca_2d(X)
    centered = X - X.mean(axis=0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    for i in range(2):
        assert abs(abs(components[i] @ vt[i]) - 1) < 1e-8
    np.testing.assert_allclose(explained, (s**2 / (s**2).sum())[:2], rtol=1e-8)
    np.testing.assert_allclose(mean, X.mean(axis=0))


def test_score_over_time(tmp_path):
    histories = {"lloyd": [(0.1, 90.0), (0.2, 60.0), (0.3, 55.0)], "mop": [(0.05, 95.0), (0.1, 58.0)]}
    fig = plot_score_over_time(histories, title="two runs")
    ax = fig.axes[0]
    assert ax.get_title() == "two runs"
    assert ax.get_xlabel() == "seconds since start"
    assert len(ax.lines) == 2
    assert ax.get_legend().get_texts()[0].get_text() == "lloyd: 3 iterations in 0.3 s, final 55"
    _check_png(save_figure(fig, tmp_path / "score.png"))
    fig = plot_score_over_time([5.0, 3.0, 2.5], x="iteration", logy=True)
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="no times"):
        plot_score_over_time({"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="x must be"):
        plot_score_over_time({"a": [1.0]}, x="minutes")


def test_recall_latency(tmp_path):
    curves = {
        "IVFFlat": [{"recall": 0.9, "latency_ms": 0.5, "param": "nprobe=4"},
                    {"recall": 0.6, "latency_ms": 0.1, "param": "nprobe=1"}],
        "HNSW": [{"recall": 0.95, "qps": 5000.0}],
    }
    fig = plot_recall_latency(curves, k=10)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "recall@10"
    assert ax.get_yscale() == "log"
    assert ax.lines[0].get_xdata().tolist() == [0.6, 0.9]  # sorted by recall
    assert ax.lines[1].get_ydata().tolist() == [0.2]  # qps converted to ms per query
    assert "nprobe=1" in [t.get_text() for t in ax.texts]
    _check_png(save_figure(fig, tmp_path / "recall.png"))
    fig = plot_recall_latency(curves, y="qps")
    assert fig.axes[0].get_ylabel().startswith("queries per second")
    with pytest.raises(ValueError, match="y must be"):
        plot_recall_latency(curves, y="speed")


def test_pq_centroid_distributions(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 20))
    codebooks = {"k-means": rng.standard_normal((10, 16, 2)), "tile": rng.standard_normal((10, 16, 2))}
    fig = plot_pq_centroid_distributions(codebooks, X, max_subspaces=6)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 6
    assert visible[0].get_title() == "subspace 0 (dims 0-1)"
    assert [t.get_text() for t in visible[0].get_legend().get_texts()] == ["data", "k-means", "tile"]
    assert "first 6 of 10" in fig._suptitle.get_text()
    _check_png(save_figure(fig, tmp_path / "pq.png"))
    with pytest.raises(ValueError, match=r"shape \(M, ksub, dsub\)"):
        plot_pq_centroid_distributions(np.zeros(5))


def test_figures_do_not_touch_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_score_over_time([1.0, 0.5], x="iteration")
    assert plt.get_fignums() == before
