"""Figures: clusters, score over time, recall against latency, PQ centroid distributions.

Every function returns a :class:`matplotlib.figure.Figure` drawn on the Agg canvas
(files only, no window), without touching pyplot's global state, so it is safe in
scripts, servers and tests. Pass ``ax=`` to draw into an existing axes instead, and
save with :func:`save_figure`. The command line and the benchmarks use these.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from ivfpq.plot import plot_score_over_time, save_figure
>>> fig = plot_score_over_time({"lloyd": [(0.1, 50.0), (0.2, 41.0), (0.3, 40.5)]})
>>> path = save_figure(fig, os.path.join(tempfile.mkdtemp(), "score.png"))
>>> path.stat().st_size > 0
True
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = [
    "new_figure",
    "save_figure",
    "pca_2d",
    "plot_clusters",
    "plot_score_over_time",
    "plot_recall_latency",
    "plot_pq_centroid_distributions",
]


def new_figure(width=7.0, height=5.0):
    """An empty Figure on the Agg canvas (no pyplot, no window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure_and_axes(ax, width=7.0, height=5.0):
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(width, height)
    return fig, fig.add_subplot()


def save_figure(fig, path, dpi=100):
    """Write ``fig`` to ``path`` (format from the extension, PNG usually); return the Path.

    The file is written under a temporary name and renamed, so it is never half-written.
    """
    path = Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _sample_rows(n, max_rows, random_state):
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


def pca_2d(X, max_rows=20000, random_state=0):
    """The two principal axes of ``X``, estimated on at most ``max_rows`` rows.

    Returns
    -------
    mean : ndarray of shape (d,)
    components : ndarray of shape (2, d)
        Unit rows; project with ``(Y - mean) @ components.T``.
    explained : ndarray of shape (2,)
        Fraction of the total variance along each axis.

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq.plot import pca_2d
    >>> X = np.random.default_rng(0).standard_normal((500, 5)) * [10, 3, 1, 1, 1]
    >>> mean, components, explained = pca_2d(X)
    >>> int(np.abs(components[0]).argmax()), bool(explained[0] > 0.8)
    (0, True)
    """
    rows = _sample_rows(X.shape[0], max_rows, random_state)
    sample = np.asarray(X[rows], dtype=np.float64)
    mean = sample.mean(axis=0)
    centered = sample - mean
    covariance = centered.T @ centered / max(1, sample.shape[0] - 1)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1][:2]
    components = vectors[:, order].T
    # A fixed sign per axis, so that the same data always gives the same picture.
    signs = np.sign(components[np.arange(components.shape[0]), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    total = values.sum()
    explained = values[order] / total if total > 0 else np.zeros(len(order))
    if components.shape[0] < 2:  # d == 1: a second, empty axis
        components = np.vstack([components, np.zeros_like(components)])
        explained = np.append(explained, 0.0)
    return mean, components, explained


def _cluster_colors(k):
    from matplotlib import colormaps

    if k <= 10:
        return colormaps["tab10"](np.arange(k))
    if k <= 20:
        return colormaps["tab20"](np.arange(k))
    # Many clusters: spread hues, then shuffle so that neighbouring ids differ.
    colors = colormaps["turbo"](np.linspace(0.05, 0.95, k))
    return colors[np.random.default_rng(0).permutation(k)]


def plot_clusters(X, labels, centers=None, *, title=None, max_points=20000, random_state=0, ax=None):
    """Points coloured by cluster, centroids marked; a PCA projection when d > 2.

    Parameters
    ----------
    X : array-like of shape (n, d)
    labels : array-like of shape (n,)
        Cluster of each point, in ``[0, k)``.
    centers : array-like of shape (k, d), optional
        Drawn as large crosses in their cluster's colour.
    title : str, optional
    max_points : int, default=20000
        At most this many points are drawn (a seeded random sample); the title says so.
    random_state : int, default=0
        Seed of the sample.
    ax : matplotlib Axes, optional

    Returns
    -------
    Figure

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq.plot import plot_clusters
    >>> X = np.random.default_rng(0).standard_normal((100, 2))
    >>> fig = plot_clusters(X, (X[:, 0] > 0).astype(int), [[-1, 0], [1, 0]])
    >>> fig.axes[0].get_xlabel()
    'x[0]'
    """
    X = np.asarray(X)
    labels = np.asarray(labels)
    n, d = X.shape
    k = int(labels.max()) + 1 if labels.size else 0
    if centers is not None:
        centers = np.asarray(centers, dtype=np.float64)
        k = max(k, centers.shape[0])
    rows = _sample_rows(n, max_points, random_state)
    points = np.asarray(X[rows], dtype=np.float64)
    if d == 2:
        xlabel, ylabel = "x[0]", "x[1]"
        project = lambda A: A  # noqa: E731
    else:
        mean, components, explained = pca_2d(X, random_state=random_state)
        xlabel = f"principal component 1 ({explained[0]:.0%} of variance)"
        ylabel = f"principal component 2 ({explained[1]:.0%} of variance)"
        project = lambda A: (A - mean) @ components.T  # noqa: E731
    points = project(points)

    fig, ax = _figure_and_axes(ax)
    colors = _cluster_colors(max(k, 1))
    size = float(np.clip(40000 / max(len(rows), 1), 2, 12))
    point_colors = colors[labels[rows] % len(colors)]
    ax.scatter(points[:, 0], points[:, 1], c=point_colors, s=size, alpha=0.6, linewidths=0,
               rasterized=True)
    if centers is not None:
        projected = project(centers)
        ax.scatter(projected[:, 0], projected[:, 1], marker="X", s=160, c=colors[: len(projected)],
                   edgecolors="black", linewidths=1.2, label=f"centroids (k={len(projected)})", zorder=3)
    if 0 < k <= 10:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", linestyle="", color=colors[i], label=f"cluster {i}")
                   for i in range(k)]
        if centers is not None:
            handles.append(Line2D([], [], marker="X", linestyle="", markersize=11,
                                  markerfacecolor="white", markeredgecolor="black", label="centroid"))
        ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.85)
    elif centers is not None:
        ax.legend(loc="best", fontsize="small", framealpha=0.85)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    shown = f"; {len(rows):,} of {n:,} points shown" if len(rows) < n else ""
    heading = title or (f"k-means: {n:,} points, {k} clusters" if d == 2
                        else f"k-means: {n:,} points in {d}-D, {k} clusters (PCA projection)")
    ax.set_title(heading + shown, fontsize="medium")
    if d == 2:
        ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.25)
    return fig


def plot_score_over_time(histories, *, x="seconds", ylabel="inertia (sum of squared distances)",
                         title=None, logy=False, ax=None):
    """Score against time (or iteration) for one or more runs.

    Parameters
    ----------
    histories : dict
        Run label -> sequence of ``(seconds, score)`` pairs (``KMeans.history_``), or a
        plain sequence of scores (one per iteration). A bare list of pairs is taken as
        one run labelled "k-means".
    x : {"seconds", "iteration"}, default="seconds"
    ylabel, title : str
    logy : bool, default=False
        Logarithmic score axis.
    ax : matplotlib Axes, optional

    Returns
    -------
    Figure

    Examples
    --------
    >>> from ivfpq.plot import plot_score_over_time
    >>> fig = plot_score_over_time({"a": [9.0, 5.0, 4.5]}, x="iteration")
    >>> fig.axes[0].get_xlabel()
    'iteration'
    """
    if x not in ("seconds", "iteration"):
        raise ValueError(f"x must be 'seconds' or 'iteration', got {x!r}")
    if not isinstance(histories, dict):
        histories = {"k-means": histories}
    fig, ax = _figure_and_axes(ax)
    for label, history in histories.items():
        values = np.asarray(history, dtype=np.float64)
        if values.size == 0:
            continue
        if values.ndim == 2:
            seconds, scores = values[:, 0], values[:, 1]
        else:
            seconds, scores = None, values
        if x == "seconds":
            if seconds is None:
                raise ValueError(f"run {label!r} has no times; pass (seconds, score) pairs or x='iteration'")
            xs = seconds
        else:
            xs = np.arange(1, len(scores) + 1)
        took = f" in {seconds[-1]:.3g} s" if seconds is not None else ""
        ax.plot(xs, scores, marker="o", markersize=3.5, linewidth=1.5,
                label=f"{label}: {len(scores)} iterations{took}, final {scores[-1]:.4g}")
    ax.set_xlabel("seconds since start" if x == "seconds" else "iteration")
    if x == "seconds":
        ax.set_xlim(left=0)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    else:
        # Plain tick labels: the default "1e10" offset text collides with the title.
        from matplotlib.ticker import FuncFormatter

        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.6g}"))
    ax.set_title(title or f"k-means score over {'time' if x == 'seconds' else 'iterations'}",
                 fontsize="medium")
    ax.grid(True, alpha=0.3)
    if ax.lines:  # handles passed explicitly: a label may start with "_" (a class name)
        ax.legend(ax.lines, [line.get_label() for line in ax.lines], loc="best", fontsize="small")
    return fig


def plot_recall_latency(curves, *, k=None, y="latency", title=None, ax=None):
    """Recall against latency (or queries per second), one curve per method.

    Parameters
    ----------
    curves : dict
        Method label -> list of points, each a dict with ``"recall"`` and
        ``"latency_ms"`` (milliseconds per query) or ``"qps"``, and optionally ``"param"``
        (e.g. ``"nprobe=8"``), which is written next to the point.
    k : int, optional
        Shown in the axis label as recall@k.
    y : {"latency", "qps"}, default="latency"
        Milliseconds per query (lower is better) or queries per second (higher is better),
        on a log axis.
    title : str, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    Figure

    Examples
    --------
    >>> from ivfpq.plot import plot_recall_latency
    >>> points = [{"recall": 0.7, "latency_ms": 0.1, "param": "nprobe=1"},
    ...           {"recall": 0.95, "latency_ms": 0.4, "param": "nprobe=8"}]
    >>> fig = plot_recall_latency({"IVFFlat": points}, k=10)
    >>> fig.axes[0].get_xlabel()
    'recall@10'
    """
    if y not in ("latency", "qps"):
        raise ValueError(f"y must be 'latency' or 'qps', got {y!r}")
    fig, ax = _figure_and_axes(ax)
    for label, points in curves.items():
        points = sorted(points, key=lambda p: p["recall"])
        recalls = [p["recall"] for p in points]
        if y == "latency":
            values = [p["latency_ms"] if "latency_ms" in p else 1000.0 / p["qps"] for p in points]
        else:
            values = [p["qps"] if "qps" in p else 1000.0 / p["latency_ms"] for p in points]
        (line,) = ax.plot(recalls, values, marker="o", markersize=4, linewidth=1.5, label=label)
        for p, r, v in zip(points, recalls, values):
            if p.get("param") is not None:
                ax.annotate(str(p["param"]), (r, v), textcoords="offset points", xytext=(4, 4),
                            fontsize="x-small", color=line.get_color())
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    ax.margins(x=0.12, y=0.12)
    low, high = ax.get_ylim()
    # Within about a decade there are no major ticks: label every minor one then.
    narrow = high / low < 15 if low > 0 else False
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(
        lambda value, _: f"{value:.3g}" if narrow or f"{value:.1e}"[0] in "25" else ""))
    ax.set_xlabel(f"recall@{k}" if k else "recall")
    ax.set_ylabel("milliseconds per query (log)" if y == "latency" else "queries per second (log)")
    better = "lower right is better" if y == "latency" else "upper right is better"
    ax.set_title(title or f"recall against {'latency' if y == 'latency' else 'throughput'} ({better})",
                 fontsize="medium")
    ax.grid(True, which="both", alpha=0.25)
    if ax.lines:  # handles passed explicitly: a label may start with "_" (a class name)
        ax.legend(ax.lines, [line.get_label() for line in ax.lines], loc="best", fontsize="small")
    return fig


def plot_pq_centroid_distributions(codebooks, X=None, *, max_subspaces=8, bins=30, title=None):
    """Where the PQ centroids sit in each subspace, against the data's own distribution.

    Parameters
    ----------
    codebooks : array of shape (M, ksub, dsub), or dict label -> such arrays
        Per-subspace centroids (e.g. ``ProductQuantizer.codebooks_``), or several sets to
        compare (k-means against tile codebooks).
    X : array-like of shape (n, M * dsub), optional
        The data; its coordinates in each subspace are drawn as a grey histogram.
    max_subspaces : int, default=8
        Draw the first this-many subspaces.
    bins : int, default=30
        Bins per panel, shared by the data and every set of centroids.
    title : str, optional

    Returns
    -------
    Figure

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq.plot import plot_pq_centroid_distributions
    >>> rng = np.random.default_rng(0)
    >>> fig = plot_pq_centroid_distributions(rng.standard_normal((4, 16, 2)),
    ...                                      rng.standard_normal((200, 8)))
    >>> len(fig.axes)
    4
    """
    sets = codebooks if isinstance(codebooks, dict) else {"centroids": codebooks}
    sets = {label: np.asarray(c, dtype=np.float64) for label, c in sets.items()}
    sets = {label: (c[None] if c.ndim == 2 else c) for label, c in sets.items()}
    for label, c in sets.items():
        if c.ndim != 3:
            raise ValueError(f"codebooks {label!r} must have shape (M, ksub, dsub), got {c.shape}")
    M, _, dsub = next(iter(sets.values())).shape
    shown = min(M, max_subspaces)
    cols = min(4, shown)
    rows = -(-shown // cols)
    fig = new_figure(3.0 * cols + 0.5, 2.6 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    data = None if X is None else np.asarray(X)
    for m in range(rows * cols):
        ax = axes[m // cols][m % cols]
        if m >= shown:
            ax.set_visible(False)
            continue
        # One set of bins per panel over the centroids' range and the bulk of the data
        # (0.5-99.5 percentiles), so that a few outliers do not squeeze the picture.
        pooled = [c[m].ravel() for c in sets.values()]
        low = min(p.min() for p in pooled)
        high = max(p.max() for p in pooled)
        values = None
        if data is not None:
            values = np.asarray(data[:, m * dsub:(m + 1) * dsub], dtype=np.float64).ravel()
            lo, hi = np.percentile(values, [0.5, 99.5])
            low, high = min(low, lo), max(high, hi)
        if high <= low:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, bins + 1)
        if values is not None:
            ax.hist(values, bins=edges, density=True, color="0.8", label="data")
        for label, c in sets.items():
            ax.hist(c[m].ravel(), bins=edges, density=True, histtype="step", linewidth=1.6,
                    label=label)
        dims = f"dim {m}" if dsub == 1 else f"dims {m * dsub}-{(m + 1) * dsub - 1}"
        ax.set_title(f"subspace {m} ({dims})", fontsize="small")
        ax.tick_params(labelsize="x-small")
        if m % cols == 0:
            ax.set_ylabel("density", fontsize="small")
        if m // cols == rows - 1:
            ax.set_xlabel("coordinate value", fontsize="small")
        if m == 0:
            ax.legend(fontsize="x-small")
    suffix = f" (first {shown} of {M})" if shown < M else ""
    fig.suptitle(title or f"PQ centroid coordinates per subspace{suffix}", fontsize="medium")
    return fig
