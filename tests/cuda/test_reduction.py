"""CUDA reductions against NumPy: axes, keepdims, reduce-to-shape, argmax."""

import numpy as np
import pytest

from jitgrad.kernels.cuda import reduction as R
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, randn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis,keepdims", [(None, False), (1, True), ((0, 2), False)])
def test_reductions_like_numpy(dtype, axis, keepdims):
    # Axis 1 has 11 > 8 threads: threads fold several elements before the tree.
    x = randn((2, 11, 3), dtype, seed=1)
    for name in ["sum", "mean", "max", "min"]:
        got = host(getattr(R, name)(dev(x), axis=axis, keepdims=keepdims))
        expected = getattr(np, name)(x, axis=axis, keepdims=keepdims)
        assert got.shape == expected.shape and got.dtype == dtype, name
        assert_close(got, expected, err_msg=name)


def test_max_propagates_nan():
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(host(R.max(dev(x), axis=1)), np.max(x, axis=1))
    np.testing.assert_array_equal(host(R.min(dev(x), axis=1)), np.min(x, axis=1))


@pytest.mark.parametrize("shape", [(3, 1), (4,), (1, 3, 1), ()])
def test_sum_to_shape_undoes_broadcasting(shape):
    x = randn((2, 3, 4), np.float64, seed=2)
    lead = tuple(range(x.ndim - len(shape)))
    kept = tuple(len(lead) + d for d, s in enumerate(shape) if s == 1 and x.shape[len(lead) + d] != 1)
    expected = x.sum(axis=lead + kept, keepdims=True).reshape(shape)
    got = R.sum_to_shape(dev(x), shape)
    assert got.shape == shape
    assert_close(host(got), expected)


def test_sum_to_same_shape_is_identity():
    d = dev(np.ones((2, 3)))
    assert R.sum_to_shape(d, (2, 3)) is d


def test_argmax_first_index_and_nan():
    x = np.array([[1.0, 3.0, 3.0, 0.0, 2.0, 3.0, 1.0, 0.0, 3.0, 1.0],
                  [0.0, 1.0, np.nan, 5.0, np.nan, 0.0, 0.0, 0.0, 0.0, 9.0],
                  [-np.inf] * 10])
    got = R.argmax(dev(x))
    assert host(got).dtype == np.int64
    np.testing.assert_array_equal(host(got), np.argmax(x, axis=-1))
    y = randn((4, 3), np.float32, seed=3)
    np.testing.assert_array_equal(host(R.argmax(dev(y), axis=0)), np.argmax(y, axis=0))


def test_reduction_bad_input():
    x = dev(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="axis=2 is out of range for a 2-D array"):
        R.sum(x, axis=2)
    with pytest.raises(ValueError, match=r"axis contains a repeated axis: \(0, -2\)"):
        R.sum(x, axis=(0, -2))
    with pytest.raises(ValueError, match=r"cannot sum x of shape \(2, 3\) to shape \(2, 2\)"):
        R.sum_to_shape(x, (2, 2))
    with pytest.raises(ValueError, match="max: cannot reduce over a zero-size axis"):
        R.max(dev(np.ones((0, 3), np.float32)), axis=0)
    with pytest.raises(TypeError, match="x must be a numba device array, got ndarray"):
        R.sum(np.ones(3))
