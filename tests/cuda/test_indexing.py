"""CUDA indexing kernels against their NumPy references (tiny shapes, 8 threads per block)."""

import numpy as np
import pytest

from jitgrad.kernels.cuda import indexing as C
from jitgrad.kernels.reference import indexing as R
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, nan_like, randn
from tests.kernels.test_indexing import ADVANCED_CASES, BASIC_CASES, geometry


@pytest.mark.parametrize("shape, index", BASIC_CASES)
def test_strided_gather_and_scatter(shape, index):
    x = randn(shape, np.float32, seed=1)
    base, strides, view_shape = geometry(shape, index)
    got = C.strided_gather(dev(x), base, strides, view_shape, out=dev(nan_like(view_shape, np.float32)))
    np.testing.assert_array_equal(host(got), R.strided_gather(x, base, strides, view_shape))
    g = randn(view_shape, np.float32, seed=2)
    got = C.strided_scatter(dev(g), base, strides, dev(np.zeros(shape, np.float32)))
    np.testing.assert_array_equal(host(got), R.strided_scatter(g, base, strides, np.zeros(shape, np.float32)))


@pytest.mark.parametrize("shape, index", ADVANCED_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_take_and_segment_sum(shape, index, dtype):
    x = randn(shape, dtype, seed=3)
    positions = np.arange(x.size).reshape(shape)[index]
    np.testing.assert_array_equal(host(C.take(dev(x), dev(positions))), R.take(x, positions))
    g = randn(positions.shape, dtype, seed=4)
    flat = positions.reshape(-1)
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(x.size + 1))
    got = host(C.segment_sum(dev(g), dev(order), dev(starts), out=dev(nan_like((x.size,), dtype))))
    assert got.dtype == dtype
    # One fixed summation order on both: equal, not merely close.
    np.testing.assert_array_equal(got, R.segment_sum(g, order, starts))


@pytest.mark.parametrize("dtype", DTYPES)
def test_log1p_and_one_hot_rows(dtype):
    # No x <= -1: the simulator runs the kernel as Python, whose math.log1p raises there.
    x = np.array([-0.5, 0.0, 1e-8, 3.0, np.nan, np.inf, -0.999, 0.25, 7.0], dtype=dtype)
    got = host(C.log1p(dev(x)))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, R.log1p(x), rtol=1e-6)
    index = np.array([4, 0, 2, 1, 3], dtype=np.int64)
    np.testing.assert_array_equal(host(C.one_hot_rows(dev(index), 5)), R.one_hot_rows(index, 5))


def test_bad_input_names_the_argument():
    with pytest.raises(TypeError, match="x must be a numba device array"):
        C.take(np.zeros(3), dev(np.array([0])))
    with pytest.raises(ValueError, match="reaches outside an array of 4 elements"):
        C.strided_gather(dev(np.zeros(4)), 2, (1,), (3,))
    with pytest.raises(TypeError, match="order must be an int32 or int64 array"):
        C.segment_sum(dev(np.zeros(2)), dev(np.zeros(2)), dev(np.array([0, 2])))
