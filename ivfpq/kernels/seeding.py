"""Kernels of greedy k-means++ seeding (:func:`ivfpq.cluster.init.kmeans_plusplus`).

Draws are fixed-point: a row's share of a draw is ``rint(w * value * scale)`` in int64,
so a total, and the row a target falls on, do not depend on the order of a sum. Every
distance that decides anything is exact (:func:`~ivfpq.kernels.distances.exact_sq_distance`);
a float32 GEMM only screens out the rows that a candidate clearly cannot serve.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .distances import _bound, exact_sq_distance


@njit(cache=True, nogil=True)
def closest_with(scores, x_sq, bound, X, candidates, closest, out):
    """``out[i, t] = min(closest[i], |X[i] - candidates[t]|^2)``, exact: the GEMM score
    (``|c|^2 - 2 x.c``, within ``bound[i]`` of its exact value) settles the rows where
    the candidate is clearly farther than ``closest``."""
    n, m = scores.shape
    for i in range(n):
        for t in range(m):
            if x_sq[i] + scores[i, t] - bound[i] > closest[i]:
                out[i, t] = closest[i]
            else:
                out[i, t] = min(closest[i], exact_sq_distance(X, i, candidates, t))


@njit(cache=True, nogil=True)
def fixed_totals(values, weights, scale):
    """Per column of ``values`` (rows x columns), ``sum_i rint(w_i * v_i * scale)`` in int64."""
    n, m = values.shape
    out = np.zeros(m, dtype=np.int64)
    for i in range(n):
        for t in range(m):
            out[t] += np.int64(np.rint(weights[i] * values[i, t] * scale))
    return out


@njit(cache=True, nogil=True)
def draw_rows(values, weights, scale, draws, rows_out):
    """Rows drawn with probability proportional to ``w * values``, one per uniform in
    ``draws``: the first row whose fixed-point cumulative sum passes
    ``min(floor(u * total), total - 1)``. Returns False (and draws nothing) where the
    total is zero."""
    n = values.shape[0]
    cumulative = np.empty(n, dtype=np.int64)
    total = np.int64(0)
    for i in range(n):
        total += np.int64(np.rint(weights[i] * values[i] * scale))
        cumulative[i] = total
    if total <= 0:
        return False
    for s in range(draws.shape[0]):
        target = min(np.int64(draws[s] * np.float64(total)), total - 1)
        rows_out[s] = min(np.searchsorted(cumulative, target, side="right"), n - 1)
    return True


@njit(cache=True, nogil=True)
def greedy_kmeanspp_rows(X, weights, scale, uniforms, n_clusters, n_trials, gamma, u, gamma64):
    """The rows of ``X`` that greedy k-means++ picks as ``n_clusters`` centroids, all in
    one call.

    ``uniforms`` holds ``1 + (n_clusters - 1) * n_trials`` numbers in [0, 1): the first
    draws the first centroid by weight, each next ``n_trials`` the candidates of one
    centroid, by weight times squared distance to the nearest centroid so far (by
    weight alone, ``floor(u * n)``, once every row sits on a centroid). The candidate of
    lowest potential joins (the first on ties). ``gamma, u, gamma64`` are the GEMM
    screen's error factors for ``X``'s dtype and dimension.
    """
    n, d = X.shape
    chosen = np.empty(n_clusters, dtype=np.int64)
    rows = np.empty(n_trials, dtype=np.int64)
    if not draw_rows(np.ones((n,)), weights, scale, uniforms[:1], rows):
        rows[0] = min(np.int64(uniforms[0] * n), n - 1)
    chosen[0] = rows[0]
    x_sq = np.zeros(n, dtype=np.float64)
    for i in range(n):
        for j in range(d):
            x_sq[i] += np.float64(X[i, j]) * np.float64(X[i, j])
    x_norm = np.sqrt(x_sq)
    closest = np.empty(n, dtype=np.float64)
    for i in range(n):
        closest[i] = exact_sq_distance(X, i, X, chosen[0])
    candidates = np.empty((n_trials, d), dtype=X.dtype)
    augmented = np.empty((d, n_trials), dtype=X.dtype)
    c_sq = np.empty(n_trials, dtype=X.dtype)
    bound = np.empty(n, dtype=np.float64)
    out = np.empty((n, n_trials), dtype=np.float64)
    for c in range(1, n_clusters):
        draws = uniforms[1 + (c - 1) * n_trials: 1 + c * n_trials]
        if not draw_rows(closest, weights, scale, draws, rows):
            for s in range(n_trials):
                rows[s] = min(np.int64(draws[s] * n), n - 1)
        c_max_sq = 0.0
        for s in range(n_trials):
            candidates[s] = X[rows[s]]
            sq = 0.0
            for j in range(d):
                value = np.float64(candidates[s, j])
                sq += value * value
                augmented[j, s] = X.dtype.type(-2) * candidates[s, j]
            c_sq[s] = sq
            c_max_sq = max(c_max_sq, sq)
        c_max = np.sqrt(c_max_sq)
        scores = np.dot(X, augmented)
        for i in range(n):
            bound[i] = _bound(x_norm[i], c_max, gamma, u, gamma64)
            for s in range(n_trials):
                scores[i, s] += c_sq[s]
        closest_with(scores, x_sq, bound, X, candidates, closest, out)
        potentials = fixed_totals(out, weights, scale)
        best = int(np.argmin(potentials))
        chosen[c] = rows[best]
        closest[:] = out[:, best]
    return chosen
