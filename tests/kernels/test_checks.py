"""all_finite against NumPy's isfinite, including values whose sum would overflow."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ivfpq.kernels.checks import all_finite


@settings(max_examples=60, deadline=None)
@given(a=hnp.arrays(st.sampled_from([np.float32, np.float64]),
                    hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=40),
                    elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_all_finite_agrees_with_isfinite(a):
    assert all_finite(a) == bool(np.isfinite(a).all())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_is_true_where_the_sum_overflows(dtype):
    big = np.full((3, 5), np.finfo(dtype).max, dtype=dtype)
    assert all_finite(big)
    big[2, 4] = -np.inf
    assert not all_finite(big)
