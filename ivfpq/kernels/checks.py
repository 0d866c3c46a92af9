"""Checks of whole arrays that NumPy can only answer through a temporary."""

from __future__ import annotations

from numba import njit

__all__ = ["all_finite"]


# Only reassociation is allowed: the sum must keep NaN and infinity (no "nnan"/"ninf")
# and must not fold ``x * 0`` to zero (which needs "nnan" and "nsz").
@njit(cache=True, fastmath={"reassoc"})
def all_finite(a):
    """Whether every element of the contiguous float array ``a`` is finite.

    ``x * 0`` is zero for a finite ``x`` and NaN for NaN or infinity, so the sum of
    those products is zero exactly when every element is finite; unlike
    ``np.isfinite(a).all()`` it needs no boolean array and cannot overflow.
    """
    flat = a.ravel()
    acc = a.dtype.type(0)
    for i in range(flat.size):
        acc += flat[i] * 0
    return acc == 0
