"""Per-dimension statistics for the tile encoder: streaming moments, sorted samples, KS tests.

Moments are computed per fixed block of rows (one pass with sums shifted by a value
of the block, so no catastrophic cancellation) and merged in block order with the
pairwise update of Chan, Golub and LeVeque; the result does not depend on the
thread count.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["column_moments", "merge_moments", "sort_columns", "merge_sorted_columns", "held_out_ks",
           "normal_cdf", "MOMENT_BLOCK_ROWS"]

MOMENT_BLOCK_ROWS = 4096


@njit(cache=True)
def normal_cdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


@njit(cache=True)
def merge_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Pairwise merge of (count, mean, sum of squared deviations); arrays of shape (d,)."""
    d = mean_a.shape[0]
    n = np.empty(d, dtype=np.float64)
    mean = np.empty(d, dtype=np.float64)
    m2 = np.empty(d, dtype=np.float64)
    for j in range(d):
        na = n_a[j]
        nb = n_b[j]
        total = na + nb
        n[j] = total
        if nb == 0.0:
            mean[j] = mean_a[j]
            m2[j] = m2_a[j]
        elif na == 0.0:
            mean[j] = mean_b[j]
            m2[j] = m2_b[j]
        else:
            delta = mean_b[j] - mean_a[j]
            mean[j] = mean_a[j] + delta * (nb / total)
            m2[j] = m2_a[j] + m2_b[j] + delta * delta * (na * nb / total)
    return n, mean, m2


@njit(parallel=True, cache=True)
def _block_moments(X, block_rows, with_log, counts, means, m2s, pos_counts, log_means, log_m2s):
    """One pass per block of rows with the shifted-data sums (shift = a value of the block).

    Sums of ``x - K`` and ``(x - K)^2`` with ``K`` one of the block's own values
    stay well conditioned (the cancellation in ``M2`` is relative to ``(mean - K)^2``,
    not ``mean^2``); blocks are then merged pairwise. The same for ``log x``, where
    ``K`` is the block's first positive value of the column.
    """
    n, d = X.shape
    n_blocks = counts.shape[0]
    for b in prange(n_blocks):
        start = b * block_rows
        stop = min(n, start + block_rows)
        rows = stop - start
        shift = np.empty(d, dtype=np.float64)
        s = np.zeros(d, dtype=np.float64)
        q = np.zeros(d, dtype=np.float64)
        log_shift = np.zeros(d, dtype=np.float64)
        c = np.zeros(d, dtype=np.float64)
        ls = np.zeros(d, dtype=np.float64)
        lq = np.zeros(d, dtype=np.float64)
        for j in range(d):
            shift[j] = X[start, j]
        for i in range(start, stop):
            for j in range(d):
                x = np.float64(X[i, j])
                diff = x - shift[j]
                s[j] += diff
                q[j] += diff * diff
                if with_log and x > 0.0:
                    y = math.log(x)
                    if c[j] == 0.0:
                        log_shift[j] = y
                    dy = y - log_shift[j]
                    c[j] += 1.0
                    ls[j] += dy
                    lq[j] += dy * dy
        for j in range(d):
            counts[b, j] = rows
            means[b, j] = shift[j] + s[j] / rows
            m2s[b, j] = max(0.0, q[j] - s[j] * s[j] / rows)
            if with_log:
                pos_counts[b, j] = c[j]
                if c[j] > 0.0:
                    log_means[b, j] = log_shift[j] + ls[j] / c[j]
                    log_m2s[b, j] = max(0.0, lq[j] - ls[j] * ls[j] / c[j])


@njit(cache=True)
def _merge_blocks(counts, means, m2s):
    n = counts[0].copy()
    mean = means[0].copy()
    m2 = m2s[0].copy()
    for b in range(1, counts.shape[0]):
        n, mean, m2 = merge_moments(n, mean, m2, counts[b], means[b], m2s[b])
    return n, mean, m2


def column_moments(X, with_log, block_rows=MOMENT_BLOCK_ROWS):
    """Per-column (count, mean, M2) of ``X``, and of ``log x`` over ``x > 0`` when ``with_log``.

    Returns six float64 arrays of shape ``(d,)``: ``n, mean, m2, n_pos, log_mean,
    log_m2`` (the last three are zeros unless ``with_log``). ``M2`` is the sum of
    squared deviations from the mean; the variance is ``M2 / n``.
    """
    n, d = X.shape
    n_blocks = max(1, (n + block_rows - 1) // block_rows)
    shape = (n_blocks, d)
    counts, means, m2s = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    pos_counts, log_means, log_m2s = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    _block_moments(X, block_rows, with_log, counts, means, m2s, pos_counts, log_means, log_m2s)
    result = _merge_blocks(counts, means, m2s)
    if with_log:
        result += _merge_blocks(pos_counts, log_means, log_m2s)
    else:
        result += (np.zeros(d), np.zeros(d), np.zeros(d))
    return result


@njit(parallel=True, cache=True)
def sort_columns(sample, out):
    """``out[j] = sorted(sample[:, j])``; ``out`` is ``(d, m)``."""
    m, d = sample.shape
    for j in prange(d):
        col = np.empty(m, dtype=out.dtype)
        for i in range(m):
            col[i] = sample[i, j]
        col.sort()
        out[j, :] = col


@njit(cache=True)
def _ks_parametric(sorted_b, loc, scale, log_scale):
    """max |ECDF - F| over a sorted sample; F normal(loc, scale), or lognormal when log_scale."""
    m = sorted_b.shape[0]
    worst = 0.0
    for i in range(m):
        x = np.float64(sorted_b[i])
        if log_scale:
            if x <= 0.0:
                f = 0.0
            elif scale > 0.0:
                f = normal_cdf((math.log(x) - loc) / scale)
            else:
                f = 1.0 if math.log(x) >= loc else 0.0
        elif scale > 0.0:
            f = normal_cdf((x - loc) / scale)
        else:
            f = 1.0 if x >= loc else 0.0
        above = (i + 1) / m - f
        below = f - i / m
        if above > worst:
            worst = above
        if below > worst:
            worst = below
    return worst


@njit(cache=True)
def _ks_two_sample(a, b):
    """max |F_a - F_b| over all values; a and b sorted ascending (ties allowed)."""
    na = a.shape[0]
    nb = b.shape[0]
    i = 0
    j = 0
    worst = 0.0
    while i < na and j < nb:
        v = min(a[i], b[j])
        while i < na and a[i] == v:
            i += 1
        while j < nb and b[j] == v:
            j += 1
        gap = abs(i / na - j / nb)
        if gap > worst:
            worst = gap
    return worst


@njit(parallel=True, cache=True)
def held_out_ks(fit_sorted, test_sorted, out):
    """Cross-validated Kolmogorov-Smirnov distance of each candidate distribution.

    Per dimension ``j`` the candidates are fitted on ``fit_sorted[j]`` and scored on
    ``test_sorted[j]`` (both ascending): ``out[j, 0]`` normal (mean, std),
    ``out[j, 1]`` lognormal (mean, std of ``log x`` over ``x > 0``; ``x <= 0`` has
    ``F = 0``; ``inf`` when fewer than 2 positive values), ``out[j, 2]`` empirical
    (two-sample KS between the halves). The same held-out protocol for all three
    charges the empirical CDF for its sampling noise and the parametric ones for
    their misfit.
    """
    d, m = fit_sorted.shape
    for j in prange(d):
        col = fit_sorted[j]
        s = 0.0
        for i in range(m):
            s += col[i]
        mean = s / m
        q = 0.0
        for i in range(m):
            diff = col[i] - mean
            q += diff * diff
        out[j, 0] = _ks_parametric(test_sorted[j], mean, math.sqrt(q / m), False)
        n_pos = 0
        ls = 0.0
        for i in range(m):
            if col[i] > 0:
                n_pos += 1
                ls += math.log(col[i])
        if n_pos < 2:
            out[j, 1] = np.inf
        else:
            lmean = ls / n_pos
            lq = 0.0
            for i in range(m):
                if col[i] > 0:
                    diff = math.log(col[i]) - lmean
                    lq += diff * diff
            out[j, 1] = _ks_parametric(test_sorted[j], lmean, math.sqrt(lq / n_pos), True)
        out[j, 2] = _ks_two_sample(fit_sorted[j], test_sorted[j])


@njit(parallel=True, cache=True)
def merge_sorted_columns(a, b, out):
    """``out[j]`` = the ascending merge of ascending rows ``a[j]`` and ``b[j]``."""
    d = a.shape[0]
    na = a.shape[1]
    nb = b.shape[1]
    for j in prange(d):
        i = 0
        k = 0
        w = 0
        while i < na and k < nb:
            if b[j, k] < a[j, i]:
                out[j, w] = b[j, k]
                k += 1
            else:
                out[j, w] = a[j, i]
                i += 1
            w += 1
        while i < na:
            out[j, w] = a[j, i]
            i += 1
            w += 1
        while k < nb:
            out[j, w] = b[j, k]
            k += 1
            w += 1
