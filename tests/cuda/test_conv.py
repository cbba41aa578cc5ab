"""CUDA conv2d and its gradients against the reference: strides, padding, dilation, batch 1, odd sizes."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
import jitgrad.kernels.reference as ref
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, nan_like, randn

CASES = [
    dict(stride=1, padding=0, dilation=1),
    dict(stride=2, padding=1, dilation=1),
    dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hp", CASES)
def test_conv2d_forward_and_input_gradient(dtype, hp):
    x = randn((2, 3, 7, 6), dtype, seed=1)
    w = randn((4, 3, 3, 2), dtype, seed=2)
    b = randn((4,), dtype, seed=3)
    y = ref.conv2d(x, w, b, **hp)
    assert_close(host(kc.conv2d(dev(x), dev(w), dev(b), **hp)), y)
    g = randn(y.shape, dtype, seed=4)
    assert_close(host(kc.conv2d_backward_input(dev(g), dev(w), input_shape=x.shape, **hp)),
                 ref.conv2d_backward_input(g, w, input_shape=x.shape, **hp))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hp", [CASES[0], CASES[2]])
def test_conv2d_weight_gradient(dtype, hp):
    # Small filter: the simulator runs one block per grad_w element.
    x = randn((2, 2, 5, 6), dtype, seed=5)
    y_shape = ref.conv2d(x, np.zeros((2, 2, 2, 2), dtype), **hp).shape
    g = randn(y_shape, dtype, seed=6)
    gw, gb = kc.conv2d_backward_weight(dev(x), dev(g), weight_shape=(2, 2, 2, 2), **hp)
    rw, rb = ref.conv2d_backward_weight(x, g, weight_shape=(2, 2, 2, 2), **hp)
    assert_close(host(gw), rw)
    assert_close(host(gb), rb)


def test_conv2d_batch_one_no_bias_into_out():
    x, w = randn((1, 1, 5, 5), np.float32, 7), randn((3, 1, 3, 3), np.float32, 8)
    out = dev(nan_like((1, 3, 3, 3), np.float32))
    assert kc.conv2d(dev(x), dev(w), out=out) is out
    assert_close(host(out), ref.conv2d(x, w))


def test_conv2d_bad_input():
    x, w = dev(np.ones((1, 2, 4, 4), np.float32)), dev(np.ones((3, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="channel mismatch: x has 2 input channels"):
        kc.conv2d(x, w)
    with pytest.raises(TypeError, match="w has dtype float64 but x has dtype float32"):
        kc.conv2d(x, dev(np.ones((3, 2, 2, 2), np.float64)))
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        kc.conv2d(x, dev(np.ones((3, 2, 2, 2), np.float32)), stride=0)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 3, 3, 3\)"):
        kc.conv2d_backward_input(dev(np.ones((1, 3, 2, 2), np.float32)), dev(np.ones((3, 2, 2, 2), np.float32)),
                                 input_shape=(1, 2, 4, 4))
    with pytest.raises(ValueError, match="weight_shape must be a tuple of 4 ints"):
        kc.conv2d_backward_weight(x, dev(np.ones((1, 3, 3, 3), np.float32)), weight_shape=(3, 2, 2))
