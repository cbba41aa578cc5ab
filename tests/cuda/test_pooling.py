"""CUDA max/avg pooling and their gathers against the reference (tie-free inputs for max)."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
import jitgrad.kernels.reference as ref
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, randn, tie_free

CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),  # overlapping windows: the gather must add them up
    dict(kernel_size=(3, 2), stride=1, padding=(1, 0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hp", CASES)
def test_max_pool2d_and_gather_backward(dtype, hp):
    x = tie_free((2, 2, 7, 6), dtype, seed=1)
    y, argmax = kc.max_pool2d(dev(x), **hp)
    ry, rarg = ref.max_pool2d(x, **hp)
    assert_close(host(y), ry)
    assert host(argmax).dtype == np.int32
    np.testing.assert_array_equal(host(argmax), rarg)
    g = randn(ry.shape, dtype, seed=2)
    expected = ref.max_pool2d_backward(g, rarg, input_shape=x.shape, **hp)
    assert_close(host(kc.max_pool2d_backward(dev(g), argmax, input_shape=x.shape, **hp)), expected)


def test_max_pool2d_ties_and_nan_go_to_the_first():
    x = np.zeros((1, 1, 2, 4), np.float64)
    x[0, 0, 1, 3] = np.nan
    x[0, 0, 0, 2] = np.nan
    _, argmax = kc.max_pool2d(dev(x), kernel_size=2)
    np.testing.assert_array_equal(host(argmax), ref.max_pool2d(x, kernel_size=2)[1])
    np.testing.assert_array_equal(host(argmax).ravel(), [0, 2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hp", CASES[1:])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_and_backward(dtype, hp, count_include_pad):
    x = randn((1, 2, 5, 6), dtype, seed=3)
    y = ref.avg_pool2d(x, count_include_pad=count_include_pad, **hp)
    assert_close(host(kc.avg_pool2d(dev(x), count_include_pad=count_include_pad, **hp)), y)
    g = randn(y.shape, dtype, seed=4)
    assert_close(host(kc.avg_pool2d_backward(dev(g), input_shape=x.shape, count_include_pad=count_include_pad,
                                             **hp)),
                 ref.avg_pool2d_backward(g, input_shape=x.shape, count_include_pad=count_include_pad, **hp))


def test_pooling_bad_input():
    x = dev(np.ones((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="padding must be at most half of kernel_size"):
        kc.max_pool2d(x, kernel_size=2, padding=2)
    with pytest.raises(ValueError, match="x must be 4-D, got 2-D"):
        kc.avg_pool2d(dev(np.ones((4, 4), np.float32)), kernel_size=2)
    with pytest.raises(TypeError, match="count_include_pad must be a bool"):
        kc.avg_pool2d(x, kernel_size=2, count_include_pad=1)
    g = dev(np.ones((1, 1, 2, 2), np.float32))
    with pytest.raises(TypeError, match="argmax must have dtype int32, got int64"):
        kc.max_pool2d_backward(g, dev(np.zeros((1, 1, 2, 2), np.int64)), input_shape=(1, 1, 4, 4), kernel_size=2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 1, 1, 1\), got \(1, 1, 2, 2\): "
                                         r"the pooled shape of input_shape \(1, 1, 4, 4\)"):
        kc.max_pool2d_backward(g, dev(np.zeros((1, 1, 2, 2), np.int32)), input_shape=(1, 1, 4, 4), kernel_size=4)
