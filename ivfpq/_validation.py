"""Every check of user input lives here, and only here.

Public functions and estimators call these once, at their boundary; kernels trust
what they are given. Each error names the parameter, what it got and what it accepts.
"""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Mapping

import numpy as np

from .kernels.checks import all_finite

__all__ = [
    "NotFittedError",
    "ConvergenceWarning",
    "warn_convergence",
    "feature_names_of",
    "check_feature_names",
    "check_array",
    "float_dtype_for",
    "check_sample_weight",
    "check_positive_int",
    "check_positive_float",
    "check_random_state",
    "check_n_features",
    "check_is_fitted",
    "check_lazy_array",
    "check_block",
    "check_block_weights",
    "check_codes",
    "check_path",
    "check_ids",
    "Interval",
    "Options",
    "validate_params",
    "canonical_metric",
    "METRIC_ALIASES",
]

_FLOAT_DTYPES = (np.float32, np.float64)
# Held exactly by float32: data in these types is computed on in float32, block by block.
_COMPACT_DTYPES = (np.float16, np.int8, np.uint8, np.int16, np.uint16)


def float_dtype_for(dtype) -> np.dtype:
    """The float dtype data of ``dtype`` is computed in: float32 and float64 are kept;
    float16 and 8- and 16-bit integers (exact in float32) become float32; other
    integers and booleans float64.

    Examples
    --------
    >>> import numpy as np
    >>> [str(float_dtype_for(t)) for t in (np.uint8, np.float16, np.int64, np.float32)]
    ['float32', 'float32', 'float64', 'float32']
    """
    dtype = np.dtype(dtype)
    if dtype in _FLOAT_DTYPES:
        return dtype
    if dtype in _COMPACT_DTYPES:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


class NotFittedError(ValueError, AttributeError):
    """Raised when a method needs a fitted estimator or a trained index.

    When scikit-learn is loaded in the process, the error raised is also an instance
    of ``sklearn.exceptions.NotFittedError``, so code written for scikit-learn catches it.
    """


_SKLEARN_COMPATIBLE_NOT_FITTED = None


def _not_fitted_error(message: str) -> NotFittedError:
    # Only code that has imported scikit-learn can name its NotFittedError, so the
    # combined class is built lazily, and importing ivfpq never imports scikit-learn.
    global _SKLEARN_COMPATIBLE_NOT_FITTED
    if "sklearn" not in sys.modules:
        return NotFittedError(message)
    if _SKLEARN_COMPATIBLE_NOT_FITTED is None:
        from sklearn.exceptions import NotFittedError as SklearnNotFittedError

        _SKLEARN_COMPATIBLE_NOT_FITTED = type("NotFittedError", (NotFittedError, SklearnNotFittedError), {
            "__module__": __name__, "__doc__": NotFittedError.__doc__})
    return _SKLEARN_COMPATIBLE_NOT_FITTED(message)


class ConvergenceWarning(UserWarning):
    """Warns that a fit did not reach what was asked (e.g. fewer distinct clusters than
    ``n_clusters``).

    When scikit-learn is loaded in the process, the warning issued is also an
    instance of ``sklearn.exceptions.ConvergenceWarning``, so filters written for
    scikit-learn apply to it.
    """


_SKLEARN_COMPATIBLE_CONVERGENCE = None


def warn_convergence(message: str, stacklevel: int = 2) -> None:
    """Issue a :class:`ConvergenceWarning` (scikit-learn's too, when it is loaded)."""
    import warnings

    global _SKLEARN_COMPATIBLE_CONVERGENCE
    category = ConvergenceWarning
    if "sklearn" in sys.modules:  # as for NotFittedError: never import scikit-learn here
        if _SKLEARN_COMPATIBLE_CONVERGENCE is None:
            from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

            _SKLEARN_COMPATIBLE_CONVERGENCE = type(
                "ConvergenceWarning", (ConvergenceWarning, SklearnConvergenceWarning),
                {"__module__": __name__, "__doc__": ConvergenceWarning.__doc__})
        category = _SKLEARN_COMPATIBLE_CONVERGENCE
    warnings.warn(message, category, stacklevel=stacklevel + 1)


def feature_names_of(X):
    """The column names of a data frame whose columns are all strings, as an object
    array; None for anything else (arrays, frames with other column names)."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = list(columns)
    if not names or not all(isinstance(name, str) for name in names):
        return None
    return np.asarray(names, dtype=object)


def check_feature_names(estimator, X, *, reset: bool) -> None:
    """Set (``reset``) or check ``estimator.feature_names_in_`` against ``X``'s columns,
    with scikit-learn's rules: a mismatch raises ValueError, names on one side only warn."""
    import warnings

    names = feature_names_of(X)
    if reset:
        if names is not None:
            estimator.feature_names_in_ = names
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        return
    fitted = getattr(estimator, "feature_names_in_", None)
    owner = type(estimator).__name__
    if names is None and fitted is None:
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {owner} was fitted without feature names",
                      UserWarning, stacklevel=3)
    elif names is None:
        warnings.warn(f"X does not have valid feature names, but {owner} was fitted with feature names",
                      UserWarning, stacklevel=3)
    elif len(names) != len(fitted) or np.any(names != fitted):
        raise ValueError(
            "The feature names should match those that were passed during fit: "
            f"fitted with {list(fitted)}, got {list(names)}"
        )


def _describe(value) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_array(
    X,
    name: str = "X",
    *,
    dtype=("float32", "float64"),
    ndim: int = 2,
    min_rows: int = 1,
    min_cols: int = 1,
    copy: bool = False,
    allow_nonfinite: bool = False,
) -> np.ndarray:
    """Return ``X`` as a C-contiguous float array, or raise a clear error.

    float32 and float64 are kept as they are (pass ``dtype="float32"`` to force one);
    float16 and 8- and 16-bit integers become float32, other integers and booleans
    float64 (:func:`float_dtype_for`). Object arrays are converted when every
    element is a number. Complex, string and other dtypes raise ``TypeError``.
    NaN and infinity raise ``ValueError``. The caller's array is never modified:
    the result is either the same read-only-safe view or a copy (``copy=True``
    always copies).
    """
    if (type(X) is np.ndarray and X.ndim == ndim == 2 and X.flags.c_contiguous and not copy
            and X.shape[0] >= min_rows and X.shape[1] >= min_cols
            and (X.dtype == dtype if isinstance(dtype, str) else X.dtype in _FLOAT_DTYPES)):
        # Already what the caller needs (a search's queries, usually): only finiteness
        # is left to check.
        if allow_nonfinite or all_finite(X):
            return X
    if X is None:
        raise TypeError(f"{name} must be an array-like of numbers, got None")
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name}: sparse input is not supported; got {type(X).__name__}, pass a dense array")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as an array: {exc}") from exc

    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} has dtype object with a non-numeric element; every element must be "
                f"a real number: {exc}"
            ) from exc
    elif arr.dtype.kind == "c":
        raise ValueError(f"{name} has complex dtype {arr.dtype}; Complex data not supported; pass real numbers")
    elif arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has non-numeric dtype {arr.dtype}; expected float32, float64 or an integer type"
        )

    if arr.ndim != ndim:
        if ndim == 2 and arr.ndim == 1:
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_features), got a 1-D array of shape {arr.shape}. "
                "Reshape your data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
            )
        raise ValueError(f"{name} must be {ndim}-D, got {arr.ndim}-D with shape {arr.shape}")

    if arr.shape[0] < min_rows:
        raise ValueError(
            f"{name} has n_samples={arr.shape[0]} (shape {arr.shape}); at least {min_rows} "
            f"sample{'s' if min_rows != 1 else ''} required"
        )
    if ndim == 2 and arr.shape[1] < min_cols:
        raise ValueError(
            f"{name} has {arr.shape[1]} feature(s) (shape={arr.shape}) while a minimum of {min_cols} is required."
        )

    target = np.dtype(dtype) if isinstance(dtype, str) else float_dtype_for(arr.dtype)
    out = np.ascontiguousarray(arr, dtype=target)
    if copy and (out is arr or np.shares_memory(out, arr) or out is X):
        out = out.copy()

    if not allow_nonfinite and not all_finite(out):
        n_nan = int(np.isnan(out).sum())
        n_inf = int(np.isinf(out).sum())
        raise ValueError(
            f"{name} contains NaN or infinity ({n_nan} NaN, {n_inf} inf); "
            "remove or impute them before calling"
        )
    return out


def check_sample_weight(sample_weight, n_samples: int, dtype=np.float64) -> np.ndarray:
    """Return per-sample weights as a float64 vector of length ``n_samples``.

    ``None`` means all ones. Weights must be finite, non-negative, and not all zero.
    """
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        weight = np.full(n_samples, float(sample_weight), dtype=dtype)
    else:
        weight = check_array(sample_weight, "sample_weight", ndim=1, min_rows=0, allow_nonfinite=True)
        weight = weight.astype(dtype, copy=True)
    if weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},) to match X, got shape {weight.shape}"
        )
    if not np.isfinite(weight).all():
        raise ValueError("sample_weight contains NaN or infinity; weights must be finite")
    if (weight < 0).any():
        raise ValueError(
            f"sample_weight must be non-negative, got a minimum of {weight.min()!r}"
        )
    if n_samples and not (weight > 0).any():
        raise ValueError("sample_weight is zero everywhere; at least one weight must be positive")
    return weight


def check_positive_int(value, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; bools and floats are refused."""
    if type(value) is int and value >= minimum and (maximum is None or value <= maximum):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {_describe(value)}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be an integer {bound}, got {value}")
    return value


def check_positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        accepts = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {accepts}, got {value!r}")
    return value


def check_random_state(random_state) -> np.random.Generator:
    """A ``numpy.random.Generator`` from None, an int seed, a Generator or a RandomState."""
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        # Draw a seed so that a shared RandomState advances, as scikit-learn users expect.
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer, got {random_state}")
        return np.random.default_rng(int(random_state))
    raise TypeError(
        "random_state must be None, a non-negative int, a numpy Generator or RandomState; "
        f"got {_describe(random_state)}"
    )


def check_n_features(X: np.ndarray, n_features: int, name: str = "X", owner: str = "the model") -> None:
    """``X`` must have the feature count the object was fitted or trained with."""
    if X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features, but {owner} is expecting {n_features} "
            "features as input"
        )


def check_is_fitted(obj, attribute: str, what: str = "fit") -> None:
    if not hasattr(obj, attribute):
        raise _not_fitted_error(
            f"This {type(obj).__name__} instance is not fitted yet; call {what}() before using it"
        )


# ----------------------------------------------------------------------------- blocks
# Arrays too large to check at once (np.memmap, Dask arrays) are checked in two
# steps: their shape and dtype up front, then each block as it is read.


def check_lazy_array(X, name: str = "X") -> np.dtype:
    """Check the shape and dtype of an array that is read block by block.

    ``X`` is a ``numpy.memmap`` or a Dask array (anything with ``shape``, ``ndim``
    and ``dtype``); nothing is read. Returns the float dtype its blocks will have:
    its kind mapped by :func:`float_dtype_for` (uint8 blocks become float32). Values are
    checked later, block by block, by :func:`check_block`.
    """
    dtype = np.dtype(X.dtype)
    if dtype.kind == "c":
        raise TypeError(f"{name} has complex dtype {dtype}; only real numbers are accepted")
    if dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has non-numeric dtype {dtype}; expected float32, float64 or an integer type"
        )
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got {X.ndim}-D with shape {X.shape}")
    chunks = getattr(X, "chunks", None)
    if chunks is not None and any(np.isnan(c) for c in chunks[0]):
        raise ValueError(
            f"{name} is a Dask array with unknown chunk sizes (shape {X.shape}); "
            "call X.compute_chunk_sizes() first"
        )
    if X.shape[0] < 1:
        raise ValueError(f"{name} has n_samples=0 (shape {X.shape}); at least 1 sample required")
    if X.shape[1] < 1:
        raise ValueError(f"{name} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    return float_dtype_for(dtype)


def check_block(block, dtype, row_offset: int, name: str = "X") -> np.ndarray:
    """One block of rows of a large array as a C-contiguous array of ``dtype``.

    NaN and infinity raise ``ValueError`` naming the first offending row by its
    index in the whole array (``row_offset`` is the index of the block's first row).
    """
    out = np.ascontiguousarray(block, dtype=dtype)
    if out.size and not np.isfinite(out).all():
        bad_rows = np.flatnonzero(~np.isfinite(out).all(axis=1))
        raise ValueError(
            f"{name} contains NaN or infinity in {bad_rows.size} rows of the block starting at "
            f"row {row_offset}, first at row {row_offset + int(bad_rows[0])}; remove or impute "
            "them before calling"
        )
    return out


def check_block_weights(weights, n_rows: int, row_offset: int) -> np.ndarray:
    """The sample weights of one block as float64; all ones when ``weights`` is None.

    Weights must be finite and non-negative; that not all of them are zero can only
    be checked over all blocks, by the caller.
    """
    if weights is None:
        return np.ones(n_rows, dtype=np.float64)
    out = np.array(weights, dtype=np.float64)
    if out.shape != (n_rows,):
        raise ValueError(
            f"sample_weight must have one weight per row of X; the block starting at row "
            f"{row_offset} has {n_rows} rows but {out.shape} weights"
        )
    if not np.isfinite(out).all():
        raise ValueError(
            f"sample_weight contains NaN or infinity (block starting at row {row_offset}); "
            "weights must be finite"
        )
    if (out < 0).any():
        raise ValueError(
            f"sample_weight must be non-negative, got {out.min()!r} in the block starting "
            f"at row {row_offset}"
        )
    return out


def check_codes(codes, n_subspaces: int, nbits: int, name: str = "codes") -> np.ndarray:
    """PQ codes as a C-contiguous ``(n, n_subspaces)`` array of the code dtype.

    The code dtype is uint8 for ``nbits <= 8`` and uint16 up to 16. Any integer
    array is accepted when every entry lies in ``[0, 2**nbits - 1]``; other dtypes
    raise ``TypeError``, out-of-range entries or a wrong width ``ValueError``.
    """
    if codes is None:
        raise TypeError(f"{name} must be an integer array of shape (n, {n_subspaces}), got None")
    arr = np.asarray(codes)
    if arr.dtype.kind not in "ui" or arr.dtype == np.bool_:
        raise TypeError(
            f"{name} must hold integer codes (uint8 for nbits <= 8, uint16 up to 16), "
            f"got dtype {arr.dtype}"
        )
    if arr.ndim != 2 or arr.shape[1] != n_subspaces:
        raise ValueError(
            f"{name} must have shape (n, M) = (n, {n_subspaces}), got shape {arr.shape}"
        )
    target = np.dtype(np.uint8 if nbits <= 8 else np.uint16)
    if arr.size and arr.dtype != target:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > (1 << nbits) - 1:
            raise ValueError(
                f"{name} has entries in [{lo}, {hi}]; with nbits={nbits} codes must lie in "
                f"[0, {(1 << nbits) - 1}]"
            )
    elif arr.size and nbits not in (8, 16):
        hi = int(arr.max())
        if hi > (1 << nbits) - 1:
            raise ValueError(
                f"{name} has a maximum entry of {hi}; with nbits={nbits} codes must lie in "
                f"[0, {(1 << nbits) - 1}]"
            )
    return np.ascontiguousarray(arr, dtype=target)


def check_path(path, name: str = "path"):
    """``path`` must be a ``str`` or ``os.PathLike`` (file objects are not accepted)."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike file path, got {_describe(path)}")
    if os.fspath(path) == "":
        raise ValueError(f"{name} must be a non-empty file path, got ''")
    return path


def check_ids(ids, n: int, name: str = "ids") -> np.ndarray:
    """Integer identifiers of ``n`` vectors as an int64 vector (``n=-1``: any length).

    Floats are accepted only when they hold whole numbers; negative ids are refused
    because -1 marks a missing result.
    """
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "b" or arr.dtype.kind not in "f" or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if n >= 0 and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n} to match the vectors, got {arr.shape[0]}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64, got a maximum of {arr.max()}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative (-1 marks a missing result), got a minimum of {arr.min()}")
    return arr


# ----------------------------------------------------------------------------- parameters
# Each estimator states the rules of its parameters once, in a class attribute
# ``_parameter_constraints`` (parameter name -> list of accepted alternatives), and checks
# them with one call of validate_params at the start of fit / train / add. Rules that tie
# several parameters together (e.g. ``refine`` needs ``keep_raw``) stay as code after it.

#: The canonical metric names and the other spellings each accepts. "l2" ranks by
#: (squared) Euclidean distance: the order, hence every neighbour and assignment, is the
#: same for the distance and its square, and the distances reported are squared.
#: "ip" ranks by inner product, largest first. "cosine" ranks by cosine similarity
#: (ann-benchmarks calls it "angular").
METRIC_ALIASES = {
    "l2": ("l2", "sqeuclidean", "euclidean"),
    "ip": ("ip", "inner_product", "dot"),
    "cosine": ("cosine", "angular"),
}
_CANONICAL_METRIC = {alias: name for name, aliases in METRIC_ALIASES.items() for alias in aliases}


def _join(phrases, last=" or "):
    """["a", "b", "c"] -> "a, b or c"."""
    phrases = list(phrases)
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + last + phrases[-1]


class _Constraint:
    """One accepted alternative for a parameter.

    ``matches_type(value)`` says whether the value is of a kind this alternative takes
    (so that a failure is a ``ValueError``, not a ``TypeError``); ``accepts(value)``
    whether it is accepted; ``phrases()`` what it accepts, as short phrases;
    ``finite_set`` whether it names a finite set of values (then the message reads
    "one of ...").
    """

    finite_set = False

    def matches_type(self, value) -> bool:
        return self.accepts(value)

    def accepts(self, value) -> bool:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def phrases(self):  # pragma: no cover
        raise NotImplementedError


class Interval(_Constraint):
    """Integers or finite real numbers between two bounds.

    Parameters
    ----------
    type : {int, float}
        ``int`` accepts any integer (NumPy's too, never a bool); ``float`` any finite
        real number, integers included (never a bool).
    left, right : number or None
        The bounds; None means unbounded on that side.
    closed : {"both", "left", "right", "neither"}, default="both"
        Which bounds belong to the interval.

    Examples
    --------
    >>> from ivfpq._validation import Interval, validate_params
    >>> validate_params({"nbits": 8}, {"nbits": [Interval(int, 1, 16)]})
    {'nbits': 8}
    >>> validate_params({"nbits": 0}, {"nbits": [Interval(int, 1, 16)]})
    Traceback (most recent call last):
    ...
    ValueError: nbits must be an integer in [1, 16], got 0
    """

    def __init__(self, type, left, right, *, closed="both"):
        if type not in (int, float):
            raise TypeError(f"Interval type must be int or float, got {type!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
        if left is not None and right is not None and left > right:
            raise ValueError(f"Interval bounds are reversed: left={left!r} > right={right!r}")
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def matches_type(self, value) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return False
        kind = numbers.Integral if self.type is int else numbers.Real
        return isinstance(value, kind)

    def accepts(self, value) -> bool:
        if not self.matches_type(value):
            return False
        if self.type is float and not np.isfinite(float(value)):
            return False
        left_closed = self.closed in ("both", "left")
        right_closed = self.closed in ("both", "right")
        if self.left is not None and (value < self.left or (value == self.left and not left_closed)):
            return False
        if self.right is not None and (value > self.right or (value == self.right and not right_closed)):
            return False
        return True

    def phrases(self):
        kind = "an integer" if self.type is int else "a finite number"
        left_closed = self.closed in ("both", "left")
        right_closed = self.closed in ("both", "right")
        if self.left is None and self.right is None:
            return [kind]
        if self.right is None:
            return [f"{kind} {'>=' if left_closed else '>'} {self.left}"]
        if self.left is None:
            return [f"{kind} {'<=' if right_closed else '<'} {self.right}"]
        brackets = ("[" if left_closed else "(") + "{}, {}" + ("]" if right_closed else ")")
        return [f"{kind} in " + brackets.format(self.left, self.right)]


class Options(_Constraint):
    """A finite set of accepted values (strings, usually).

    A value of another type than the options' is a ``TypeError``; one of the same type
    that is not among them a ``ValueError``.

    Parameters
    ----------
    values : iterable
        The accepted values; a set is listed sorted in messages, a tuple or list in
        its own order.

    Examples
    --------
    >>> from ivfpq._validation import Options, validate_params
    >>> validate_params({"codebook": "opq"}, {"codebook": [Options(("kmeans", "tile"))]})
    Traceback (most recent call last):
    ...
    ValueError: codebook must be one of 'kmeans', 'tile', got 'opq'
    """

    finite_set = True

    def __init__(self, values):
        if isinstance(values, (set, frozenset)):
            values = sorted(values, key=repr)
        self.values = tuple(values)
        if not self.values:
            raise ValueError("Options needs at least one value")
        self._types = tuple({type(v) for v in self.values})

    def matches_type(self, value) -> bool:
        return isinstance(value, self._types) and not (
            isinstance(value, (bool, np.bool_)) and bool not in self._types)

    def accepts(self, value) -> bool:
        return self.matches_type(value) and value in self.values

    def phrases(self):
        return [repr(v) for v in self.values]


class Metric(_Constraint):
    """A metric name among ``allowed`` canonical names, in any spelling of
    :data:`METRIC_ALIASES`; see :func:`canonical_metric`."""

    finite_set = True

    def __init__(self, allowed=tuple(METRIC_ALIASES)):
        unknown = [name for name in allowed if name not in METRIC_ALIASES]
        if unknown:
            raise ValueError(f"unknown canonical metric(s) {unknown}; known: {list(METRIC_ALIASES)}")
        self.allowed = tuple(allowed)

    def matches_type(self, value) -> bool:
        return isinstance(value, str)

    def accepts(self, value) -> bool:
        return isinstance(value, str) and _CANONICAL_METRIC.get(value) in self.allowed

    def phrases(self):
        return [repr(name) for name in self.allowed]

    def note(self):
        aliases = [repr(a) for name in self.allowed for a in METRIC_ALIASES[name] if a != name]
        return f" (or an alias: {', '.join(aliases)})" if aliases else ""


class _Predicate(_Constraint):
    """A named test (the string constraints and ``None``)."""

    def __init__(self, accepts, phrases, matches_type=None, finite_set=False):
        self._accepts, self._phrases, self.finite_set = accepts, phrases, finite_set
        self._matches_type = matches_type or accepts

    def accepts(self, value) -> bool:
        return bool(self._accepts(value))

    def matches_type(self, value) -> bool:
        return bool(self._matches_type(value))

    def phrases(self):
        return list(self._phrases)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_array_like(value) -> bool:
    return isinstance(value, (np.ndarray, list, tuple)) or hasattr(value, "__array__")


def _is_random_state(value) -> bool:
    if value is None or isinstance(value, (np.random.Generator, np.random.RandomState)):
        return True
    return _is_integer(value) and value >= 0


_NAMED_CONSTRAINTS = {
    "array-like": _Predicate(_is_array_like, ["an array-like"]),
    "boolean": _Predicate(lambda v: isinstance(v, (bool, np.bool_)), ["True or False"], finite_set=True),
    "random_state": _Predicate(
        _is_random_state, ["None, an int >= 0, a numpy Generator or a numpy RandomState"],
        matches_type=lambda v: _is_integer(v) or _is_random_state(v)),
}
_NONE = _Predicate(lambda v: v is None, ["None"], finite_set=True)
_CALLABLE = _Predicate(callable, ["a callable"])


def _as_constraint(spec) -> _Constraint:
    if isinstance(spec, _Constraint):
        return spec
    if spec is None:
        return _NONE
    if isinstance(spec, str):
        try:
            return _NAMED_CONSTRAINTS[spec]
        except KeyError:
            raise ValueError(
                f"unknown constraint {spec!r}; named constraints: {', '.join(map(repr, _NAMED_CONSTRAINTS))}"
            ) from None
    if spec is callable:
        return _CALLABLE
    if isinstance(spec, type):
        return _Predicate(lambda v: isinstance(v, spec), [f"an instance of {spec.__name__}"])
    raise TypeError(f"not a parameter constraint: {spec!r}")


def _expected(constraints) -> str:
    """What a list of alternatives accepts, in words."""
    phrases = [p for c in constraints for p in c.phrases()]
    if all(c.finite_set for c in constraints):
        text = phrases[0] if len(phrases) == 1 else "one of " + ", ".join(phrases)
    else:
        text = _join(phrases)
    return text + "".join(c.note() for c in constraints if isinstance(c, Metric))


def validate_params(params, constraints) -> dict:
    """Check parameters against declared constraints; raise naming the first bad one.

    Parameters
    ----------
    params : object or mapping
        An estimator (values are read as its attributes) or a dict of values.
    constraints : dict
        Parameter name -> a list of accepted alternatives (a single alternative may be
        given bare). A value is valid when any alternative accepts it. The vocabulary:

        * ``Interval(int, left, right, closed="both")``, ``Interval(float, ...)``:
          integers, or finite real numbers, between bounds (None: unbounded);
        * ``Options(values)``: one of a finite set (strings, usually);
        * ``Metric(allowed)``: a metric name among ``allowed``, in any spelling of
          :data:`METRIC_ALIASES` (use :func:`canonical_metric` to read it);
        * ``None``: the value None;
        * ``"boolean"``: True or False (NumPy bools too; never 0 or 1);
        * ``"array-like"``: an ndarray, list, tuple or anything with ``__array__``;
        * ``"random_state"``: None, an int >= 0, a numpy Generator or RandomState;
        * ``callable``: anything callable;
        * a class: an instance of it.

    Returns
    -------
    dict
        Parameter name -> value, for the names in ``constraints`` (values unchanged).

    Raises
    ------
    TypeError
        When the value is of a kind no alternative takes (a float for an integer, a
        number for a string option).
    ValueError
        When it is of the right kind but out of range or not among the options.
        Either message reads ``"<name> must be <what it accepts>, got <value>"``.
    KeyError, AttributeError
        When ``params`` lacks a constrained parameter (a mistake in the constraints).

    Examples
    --------
    >>> from ivfpq._validation import Interval, Options, validate_params
    >>> constraints = {
    ...     "nlist": [Interval(int, 1, None)],
    ...     "quantizer": [Options(("auto", "exact", "hnsw"))],
    ...     "refine": [Interval(int, 1, None), None],
    ...     "keep_raw": ["boolean"],
    ...     "random_state": ["random_state"],
    ... }
    >>> validate_params(dict(nlist=16, quantizer="auto", refine=None, keep_raw=False,
    ...                      random_state=0), constraints)["nlist"]
    16
    >>> validate_params(dict(nlist=16.0, quantizer="auto", refine=None, keep_raw=False,
    ...                      random_state=0), constraints)
    Traceback (most recent call last):
    ...
    TypeError: nlist must be an integer >= 1, got 16.0 (float)
    """
    read = params.__getitem__ if isinstance(params, Mapping) else (lambda n: getattr(params, n))
    values = {}
    for name, alternatives in constraints.items():
        if not isinstance(alternatives, (list, tuple)):
            alternatives = [alternatives]
        alternatives = [_as_constraint(spec) for spec in alternatives]
        value = read(name)
        values[name] = value
        if any(c.accepts(value) for c in alternatives):
            continue
        expected = _expected(alternatives)
        if any(c.matches_type(value) for c in alternatives):
            shown = repr(value)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            raise ValueError(f"{name} must be {expected}, got {shown}")
        raise TypeError(f"{name} must be {expected}, got {_describe(value)}")
    return values


def canonical_metric(value, name: str = "metric", allowed=tuple(METRIC_ALIASES)) -> str:
    """The canonical name ("l2", "ip" or "cosine") of a metric given in any spelling.

    Parameters
    ----------
    value : str
        A name from :data:`METRIC_ALIASES`: "l2" = "sqeuclidean" = "euclidean",
        "ip" = "inner_product" = "dot", "cosine" = "angular".
    name : str, default="metric"
        The parameter's name, for the error message.
    allowed : sequence of str, default=("l2", "ip", "cosine")
        The canonical names the caller supports.

    Returns
    -------
    str
        One of ``allowed``.

    Raises
    ------
    TypeError
        ``value`` is not a string.
    ValueError
        ``value`` is no known spelling of an allowed metric.

    Examples
    --------
    >>> from ivfpq._validation import canonical_metric
    >>> canonical_metric("sqeuclidean"), canonical_metric("inner_product", allowed=("l2", "ip"))
    ('l2', 'ip')
    >>> canonical_metric("cosine", allowed=("l2", "ip"))
    Traceback (most recent call last):
    ...
    ValueError: metric must be one of 'l2', 'ip' (or an alias: 'sqeuclidean', 'euclidean', 'inner_product', 'dot'), got 'cosine'
    """
    # A known spelling is answered without the constraint machinery: estimators read
    # their metric on every call, and a search can take a few microseconds.
    canonical = _CANONICAL_METRIC.get(value) if isinstance(value, str) else None
    if canonical is not None and canonical in allowed:
        return canonical
    validate_params({name: value}, {name: [Metric(allowed)]})
    return _CANONICAL_METRIC[value]
