"""The tile encoder: scalar codes from each dimension's distribution, with no k-means.

Each dimension is one segment. Its values are mapped through their cumulative
distribution function ``F`` onto ``K = 2**nbits`` equally likely bins::

    code(x)   = min(K - 1, floor(K * F(x)))          (>= 0 since F >= 0)
    decode(c) = F^{-1}((c + 0.5) / K)                the quantile of the bin's
                                                     probability midpoint

so a fit only needs ``F``: a mean and a variance for the normal and lognormal
families (one streaming pass), or the quantiles of a sample for the empirical CDF.
Weaviate's tile encoder introduced the idea for a known distribution; "empirical"
and "auto" remove the need to know it.
"""

from __future__ import annotations


import numpy as np
from scipy.special import ndtri

from .._base import ParamsMixin
from .._storage import (
    Persistable,
    attributes_state,
    params_from_state,
    params_state,
    register_format,
    restore_attributes,
)
from .._threads import numba_threads, resolve_n_threads, thread_limits
from .._validation import (
    Interval,
    Options,
    check_array,
    check_codes,
    check_is_fitted,
    check_n_features,
    check_random_state,
    validate_params,
)
from ..kernels.pq import decode as _decode_kernel
from ..kernels.pq import encode_by_edges
from ..kernels.tile import (
    column_moments,
    held_out_ks,
    merge_moments,
    merge_sorted_columns,
    sort_columns,
)

__all__ = ["TileEncoder", "DISTRIBUTIONS"]

DISTRIBUTIONS = ("normal", "lognormal", "empirical", "auto")
_CANDIDATES = ("normal", "lognormal", "empirical")


def code_dtype(nbits: int):
    """uint8 for nbits <= 8, uint16 up to 16."""
    return np.uint8 if nbits <= 8 else np.uint16


def _empirical_quantiles(sorted_cols, probs):
    """Quantiles of each ascending row at ``probs`` (linear interpolation, numpy's default)."""
    m = sorted_cols.shape[1]
    pos = probs * (m - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, m - 1)
    frac = pos - lo
    low = sorted_cols[:, lo].astype(np.float64)
    high = sorted_cols[:, hi].astype(np.float64)
    return low + frac[None, :] * (high - low)


@register_format("tile_encoder", version=1)
class TileEncoder(ParamsMixin, Persistable):
    """Per-dimension scalar quantizer whose bins are the quantiles of a fitted distribution.

    Parameters
    ----------
    distribution : {"auto", "normal", "lognormal", "empirical"}, default="auto"
        The model of each dimension's values.

        * "normal": mean and variance, streamed (Chan's pairwise update of per-block
          moments, so ``partial_fit`` on batches gives the same fit as one ``fit``).
        * "lognormal": the normal fit of ``log x``. Its support is ``x > 0``; the
          parameters are fitted on the positive values only, and a value ``x <= 0``
          has ``F(x) = 0``: it gets code 0, like the smallest positive values, and
          decodes at the lowest bin's value ``exp(mu + sigma * Phi^{-1}(0.5 / K))``.
          ``n_positive_`` records how many values were used. Fitting fails for a
          dimension with no positive value.
        * "empirical": quantiles of a uniform sample of at most ``sample_size`` rows
          (a reservoir, so batches given to ``partial_fit`` are sampled uniformly).
          Nothing has to be known about the distribution. Where the sample has an
          atom (a value repeated across several bins, e.g. many zeros), a value
          equal to it gets the middle one of those bins, which decodes to the atom.
        * "auto": per dimension, the candidate with the smallest held-out
          Kolmogorov-Smirnov distance: each is fitted on one half of the sample
          (even rows) and scored against the other half (odd rows). KS is the
          largest error of a CDF, hence of ``K * F(x)``, in bins. Ties prefer
          normal, then lognormal.
    nbits : int in [1, 16], default=8
        Bits per dimension: ``K = 2**nbits`` bins. Codes are uint8 up to 8 bits,
        uint16 above.
    sample_size : int, default=65536
        Rows kept for "empirical" and "auto" (the moments always use every row).
    random_state : int, Generator, RandomState or None, default=None
        Chooses the sampled rows.
    n_threads : int or None, default=None
        Threads for the kernels; None follows Numba's setting (every core unless
        ``numba.set_num_threads`` lowered it). Results do not depend on it.

    Attributes
    ----------
    edges_ : ndarray of shape (n_features, 2**nbits - 1), float64
        ``edges_[j, c - 1] = F_j^{-1}(c / K)``: bin ``c`` is ``[edges_[j, c-1], edges_[j, c])``.
    codebooks_ : ndarray of shape (n_features, 2**nbits, 1), float32
        ``codebooks_[j, c, 0] = F_j^{-1}((c + 0.5) / K)``, the value code ``c`` decodes to;
        the same layout as :attr:`ProductQuantizer.codebooks_` with one dimension per segment.
    distributions_ : ndarray of shape (n_features,), str
        The distribution used for each dimension.
    ks_ : ndarray of shape (n_features, 3) or None
        With "auto": held-out KS distance of normal, lognormal, empirical.
    mean_, var_ : ndarray of shape (n_features,)
        Streaming mean and (population) variance of each dimension.
    log_mean_, log_var_, n_positive_ : ndarray of shape (n_features,)
        The same for ``log x`` over the positive values, and their count
        (zeros unless the distribution is "lognormal" or "auto").
    sample_ : ndarray of shape (n_sample, n_features) or None
        The reservoir sample ("empirical", "auto").
    fitted_distribution_ : str
        The ``distribution`` parameter of the fit (``partial_fit`` must keep it).
    n_samples_seen_ : int
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from ivfpq import TileEncoder
    >>> X = np.random.default_rng(0).standard_normal((10_000, 4)).astype(np.float32)
    >>> tile = TileEncoder(distribution="normal", nbits=8).fit(X)
    >>> codes = tile.encode(X)
    >>> codes.dtype, codes.shape
    (dtype('uint8'), (10000, 4))
    >>> bool(np.abs(tile.decode(codes) - X).mean() < 0.01)
    True
    >>> tile.encode([[-1e9, 1e9, 0.0, 0.0]])[0, :2].tolist()   # clamped at both ends
    [0, 255]
    """

    def __init__(self, distribution="auto", nbits=8, *, sample_size=65536, random_state=None,
                 n_threads=None):
        self.distribution = distribution
        self.nbits = nbits
        self.sample_size = sample_size
        self.random_state = random_state
        self.n_threads = n_threads

    # -- parameters ------------------------------------------------------------------

    _parameter_constraints = {
        "distribution": [Options(DISTRIBUTIONS)],
        "nbits": [Interval(int, 1, 16)],
        "sample_size": [Interval(int, 2, None)],
        "random_state": ["random_state"],
        "n_threads": [Interval(int, 1, None), None],
    }

    def _check_params(self):
        validate_params(self, self._parameter_constraints)
        return int(self.nbits), int(self.sample_size), resolve_n_threads(self.n_threads)

    @property
    def _needs_sample(self):
        return self.distribution in ("empirical", "auto")

    @property
    def _needs_log(self):
        return self.distribution in ("lognormal", "auto")

    # -- fitting ---------------------------------------------------------------------

    def fit(self, X, y=None):
        """Fit each dimension's distribution to ``X`` (forgetting any earlier fit).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), at least 2 rows
        y : ignored

        Returns
        -------
        self
        """
        for name in ("n_features_in_", "n_samples_seen_"):
            if hasattr(self, name):
                delattr(self, name)
        self._rng = check_random_state(self.random_state)
        return self._update(X, fresh=True)

    def partial_fit(self, X, y=None):
        """Update the fit with a batch of rows (data that arrives in parts, or drifts).

        The moments after several batches equal those of one ``fit`` on all rows (to
        rounding); "empirical" keeps a uniform reservoir sample of every row seen. Codes
        made before an update refer to the old bins: re-encode after updating.

        Returns
        -------
        self
        """
        if not hasattr(self, "n_samples_seen_"):
            self._rng = check_random_state(self.random_state)
            return self._update(X, fresh=True)
        if self.distribution != self.fitted_distribution_:
            raise ValueError(
                f"distribution was changed from {self.fitted_distribution_!r} to "
                f"{self.distribution!r} after fitting; call fit() to start again"
            )
        return self._update(X, fresh=False)

    def _update(self, X, fresh):
        nbits, sample_size, n_threads = self._check_params()
        X = check_array(X, "X", min_rows=2 if fresh else 1)
        if not fresh:
            check_n_features(X, self.n_features_in_, "X")
        d = X.shape[1]
        with thread_limits(n_threads):
            n, mean, m2, n_pos, log_mean, log_m2 = column_moments(X, self._needs_log)
            if not fresh:
                n_old = np.full(d, float(self.n_samples_seen_))
                m2_old = self.var_ * n_old
                n, mean, m2 = merge_moments(n_old, self.mean_, m2_old, n, mean, m2)
                if self._needs_log:
                    pos_old = self.n_positive_.astype(np.float64)
                    n_pos, log_mean, log_m2 = merge_moments(
                        pos_old, self.log_mean_, self.log_var_ * pos_old, n_pos, log_mean, log_m2
                    )
            sample = None
            if self._needs_sample:
                sample = self._reservoir(X, sample_size, fresh)
            var = m2 / n
            log_var = np.divide(log_m2, n_pos, out=np.zeros(d), where=n_pos > 0)
            tables = self._tables(nbits, mean, var, n_pos, log_mean, log_var, sample)
        edges, codebooks, distributions, ks = tables
        self.n_features_in_ = d
        self.n_samples_seen_ = int(n[0])
        self.mean_, self.var_ = mean, var
        self.log_mean_, self.log_var_ = log_mean, log_var
        self.n_positive_ = n_pos.astype(np.int64)
        self.sample_ = sample
        self.edges_, self.codebooks_ = edges, codebooks
        self.distributions_, self.ks_ = distributions, ks
        self.fitted_distribution_ = self.distribution
        return self

    def _reservoir(self, X, sample_size, fresh):
        """Uniform sample of at most ``sample_size`` of all rows seen (Vitter's algorithm R)."""
        rng = self._rng
        n_new = X.shape[0]
        if fresh:
            if n_new <= sample_size:
                return X.copy()
            rows = np.sort(rng.choice(n_new, size=sample_size, replace=False))
            return X[rows]
        sample = self.sample_
        seen = self.n_samples_seen_
        start = 0
        if sample.shape[0] < sample_size:  # still filling
            take = min(sample_size - sample.shape[0], n_new)
            sample = np.concatenate([sample, X[:take].astype(sample.dtype)])
            start = take
        else:
            sample = sample.copy()
        if start < n_new:
            index = seen + np.arange(start, n_new)  # rows seen before each new row
            slots = rng.integers(0, index + 1)
            keep = np.flatnonzero(slots < sample_size)
            if keep.size:
                # A later row overwrites an earlier one in the same slot, as in the loop.
                last = keep[::-1][np.unique(slots[keep][::-1], return_index=True)[1]]
                sample[slots[last]] = X[start + last]
        return sample

    def _tables(self, nbits, mean, var, n_pos, log_mean, log_var, sample):
        K = 1 << nbits
        p_edges = np.arange(1, K, dtype=np.float64) / K
        p_mid = (np.arange(K, dtype=np.float64) + 0.5) / K
        z_edges, z_mid = ndtri(p_edges), ndtri(p_mid)
        d = mean.shape[0]
        choice = self.distribution
        ks = None
        sorted_sample = None
        if sample is not None:
            sorted_sample = np.empty((d, sample.shape[0]), dtype=sample.dtype)
            if choice == "auto" and sample.shape[0] >= 4:
                fit_half = np.empty((d, (sample.shape[0] + 1) // 2), dtype=sample.dtype)
                test_half = np.empty((d, sample.shape[0] // 2), dtype=sample.dtype)
                sort_columns(sample[0::2], fit_half)
                sort_columns(sample[1::2], test_half)
                merge_sorted_columns(fit_half, test_half, sorted_sample)
                ks = np.empty((d, 3), dtype=np.float64)
                held_out_ks(fit_half, test_half, ks)
            else:
                sort_columns(sample, sorted_sample)

        if choice == "auto":
            if ks is None:  # too few rows to hold any out: the normal model
                distributions = np.full(d, "normal", dtype="<U9")
            else:
                distributions = np.array(_CANDIDATES, dtype="<U9")[np.argmin(ks, axis=1)]
        else:
            distributions = np.full(d, choice, dtype="<U9")
        if choice == "lognormal" and (n_pos == 0).any():
            bad = np.flatnonzero(n_pos == 0)
            raise ValueError(
                f"distribution='lognormal' needs positive values, but dimension(s) "
                f"{bad[:10].tolist()} have none; use 'normal', 'empirical' or 'auto'"
            )

        edges = np.empty((d, K - 1), dtype=np.float64)
        centers = np.empty((d, K), dtype=np.float64)
        rows = distributions == "normal"
        if rows.any():
            std = np.sqrt(var[rows])[:, None]
            edges[rows] = mean[rows, None] + std * z_edges[None, :]
            centers[rows] = mean[rows, None] + std * z_mid[None, :]
        rows = distributions == "lognormal"
        if rows.any():
            std = np.sqrt(log_var[rows])[:, None]
            edges[rows] = np.exp(log_mean[rows, None] + std * z_edges[None, :])
            centers[rows] = np.exp(log_mean[rows, None] + std * z_mid[None, :])
        rows = distributions == "empirical"
        if rows.any():
            edges[rows] = _empirical_quantiles(sorted_sample[rows], p_edges)
            centers[rows] = _empirical_quantiles(sorted_sample[rows], p_mid)
        # Rounding must not make the bins overlap.
        np.maximum.accumulate(edges, axis=1, out=edges)
        codebooks = centers.astype(np.float32)[:, :, None]
        return edges, np.ascontiguousarray(codebooks), distributions, ks

    # -- using a fitted encoder --------------------------------------------------------

    def encode(self, X):
        """Codes of shape (n_samples, n_features): ``min(K - 1, floor(K * F_j(x)))``.

        Values beyond the fitted range are clamped to codes 0 and ``K - 1``.
        """
        check_is_fitted(self, "edges_")
        X = check_array(X, "X")
        check_n_features(X, self.n_features_in_, "X")
        codes = np.empty(X.shape, dtype=code_dtype(self.edges_.shape[1].bit_length()))
        with numba_threads(resolve_n_threads(self.n_threads)):
            encode_by_edges(X, self.edges_, codes)
        return codes

    def decode(self, codes):
        """Vectors of shape (n, n_features), float32: each code's bin-midpoint quantile."""
        check_is_fitted(self, "edges_")
        nbits = self.edges_.shape[1].bit_length()
        codes = check_codes(codes, self.n_features_in_, nbits)
        out = np.empty(codes.shape, dtype=np.float32)
        with numba_threads(resolve_n_threads(self.n_threads)):
            _decode_kernel(codes, self.codebooks_, out)
        return out

    def transform(self, X):
        """Same as :meth:`encode` (scikit-learn name)."""
        return self.encode(X)

    def inverse_transform(self, codes):
        """Same as :meth:`decode` (scikit-learn name)."""
        return self.decode(codes)

    # -- persistence: save(path) comes from Persistable; ivfpq.load(path) reads it --------

    _saved_attributes = (
        "n_features_in_", "n_samples_seen_", "mean_", "var_", "log_mean_", "log_var_",
        "n_positive_", "sample_", "edges_", "codebooks_", "distributions_", "ks_",
        "fitted_distribution_",
    )

    def _to_arrays(self):
        meta, arrays = params_state(self)
        meta["fitted"] = hasattr(self, "n_samples_seen_")
        if meta["fitted"]:
            attributes_state(self, self._saved_attributes, meta, arrays)
        return meta, arrays

    @classmethod
    def _from_arrays(cls, archive):
        obj = cls(**params_from_state(cls, archive))
        if archive.param("fitted"):
            restore_attributes(obj, archive, cls._saved_attributes)
            # partial_fit draws reservoir slots from this stream (a fresh one after loading)
            obj._rng = check_random_state(obj.random_state)
        return obj
