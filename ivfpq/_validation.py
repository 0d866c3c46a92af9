"""Every check of user input lives here, and only here.

Public functions and estimators call these once, at their boundary; kernels trust
what they are given. Each error names the parameter, what it got and what it accepts.
"""

from __future__ import annotations

import numbers
import sys

import numpy as np

__all__ = [
    "NotFittedError",
    "check_array",
    "check_sample_weight",
    "check_positive_int",
    "check_nonnegative_int",
    "check_positive_float",
    "check_choice",
    "check_random_state",
    "check_n_features",
    "check_is_fitted",
    "check_lazy_array",
    "check_block",
    "check_block_weights",
    "check_codes",
]

_FLOAT_DTYPES = (np.float32, np.float64)


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
    integers and booleans become float64. Object arrays are converted when every
    element is a number. Complex, string and other dtypes raise ``TypeError``.
    NaN and infinity raise ``ValueError``. The caller's array is never modified:
    the result is either the same read-only-safe view or a copy (``copy=True``
    always copies).
    """
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

    if isinstance(dtype, str):
        target = np.dtype(dtype)
    elif arr.dtype in _FLOAT_DTYPES:
        target = arr.dtype
    else:
        target = np.dtype(np.float64)
    out = np.ascontiguousarray(arr, dtype=target)
    if copy and (out is arr or np.shares_memory(out, arr) or out is X):
        out = out.copy()

    if not allow_nonfinite and out.size and not np.isfinite(out).all():
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
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {_describe(value)}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be an integer {bound}, got {value}")
    return value


def check_nonnegative_int(value, name: str, *, maximum: int | None = None) -> int:
    return check_positive_int(value, name, minimum=0, maximum=maximum)


def check_positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        accepts = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {accepts}, got {value!r}")
    return value


def check_choice(value, name: str, choices) -> str:
    """``value`` must be one of the strings in ``choices``."""
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}; got {_describe(value)}")
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
    float32 and float64 are kept, integers and booleans become float64. Values are
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
        raise ValueError(f"{name} has 0 features (shape {X.shape}); at least 1 required")
    return dtype if dtype in _FLOAT_DTYPES else np.dtype(np.float64)


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
