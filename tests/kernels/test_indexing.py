"""The reference indexing kernels (the CUDA backend's contract) against NumPy's own indexing.

``tests/cuda/test_indexing.py`` holds the CUDA kernels to these references.
"""

import numpy as np
import pytest

from jitgrad.kernels.reference import indexing as R
from tests.helpers import DTYPES, randn

# (array shape, basic index): ints, slices with negative steps, None, Ellipsis.
BASIC_CASES = [
    ((5,), slice(1, 4)),
    ((4, 6), (1, slice(None, None, -2))),
    ((3, 4, 5), (Ellipsis, None, slice(4, 0, -3))),
    ((2, 3), (slice(None), 2)),
    ((3,), slice(2, 2)),
]
# (array shape, advanced index) with repeated elements.
ADVANCED_CASES = [
    ((5,), np.array([0, 3, 3, 1])),
    ((3, 4), (np.array([2, 0, 2]), np.array([1, 1, 1]))),
    ((2, 3), np.array([[True, False, True], [False, False, True]])),
]


def geometry(shape, index):
    """(base, element strides, shape) of ``x[index]`` for C-contiguous ``x`` of ``shape``, from NumPy."""
    x = np.zeros(shape, dtype=np.int8)
    view = x[index]
    base = view.__array_interface__["data"][0] - x.__array_interface__["data"][0] if view.size else 0
    return base, view.strides, view.shape


@pytest.mark.parametrize("shape, index", BASIC_CASES)
def test_strided_gather_and_scatter_are_basic_indexing(shape, index):
    x = randn(shape, np.float64, seed=1)
    base, strides, view_shape = geometry(shape, index)
    np.testing.assert_array_equal(R.strided_gather(x, base, strides, view_shape), x[index])
    g = randn(view_shape, np.float64, seed=2)
    expected = np.zeros(shape)
    expected[index] = g
    np.testing.assert_array_equal(R.strided_scatter(g, base, strides, np.zeros(shape)), expected)


@pytest.mark.parametrize("shape, index", ADVANCED_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_take_and_segment_sum_are_advanced_indexing(shape, index, dtype):
    x = randn(shape, dtype, seed=3)
    positions = np.arange(x.size).reshape(shape)[index]
    np.testing.assert_array_equal(R.take(x, positions), x[index])
    g = randn(positions.shape, dtype, seed=4)
    flat = positions.reshape(-1)
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(x.size + 1))
    got = R.segment_sum(g, order, starts)
    expected = np.zeros(shape, dtype)
    np.add.at(expected, index, g)
    assert got.dtype == dtype
    np.testing.assert_allclose(got.reshape(shape), expected, rtol=1e-6)


def test_one_hot_rows_and_log1p():
    got = R.one_hot_rows(np.array([2, 0, 1]), 3)
    np.testing.assert_array_equal(got, np.eye(3, dtype=bool)[[2, 0, 1]])
    x = np.array([-1.0, -0.5, 0.0, 1e-8, np.nan, np.inf], dtype=np.float32)
    y = R.log1p(x)
    assert y.dtype == np.float32
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(y, np.log1p(x))


def test_bad_input_names_the_argument():
    x = np.zeros(4)
    with pytest.raises(ValueError, match="reaches outside an array of 4 elements"):
        R.strided_gather(x, 2, (1,), (3,))
    with pytest.raises(TypeError, match="positions must be an int32 or int64 array"):
        R.take(x, np.array([0.0]))
    with pytest.raises(ValueError, match="positions reaches outside"):
        R.take(x, np.array([4]))
    with pytest.raises(TypeError, match="base must be an int"):
        R.strided_gather(x, 1.0, (1,), (2,))
    with pytest.raises(ValueError, match="starts must be non-decreasing"):
        R.segment_sum(x, np.array([0, 1]), np.array([0, 2, 1]))
