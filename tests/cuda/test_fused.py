"""CUDA fused kernels (linear, conv2d_activation, bias_activation_backward) against the CPU kernels."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
from jitgrad.kernels import cpu
from jitgrad.nn import functional as F
from tests.cases.fused import ACTIVATIONS, CONV_CASES_CUDA, LINEAR_CASES_CUDA
from tests.cuda.conftest import dev, host
from tests.cuda.test_autograd import check_op
from tests.helpers import DTYPES, assert_close, nan_like, randn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n, k, m", LINEAR_CASES_CUDA)
def test_linear_matches_cpu(n, k, m, activation, dtype):
    x, w, b = randn((n, k), dtype, 1), randn((m, k), dtype, 2), randn((m,), dtype, 3)
    out = dev(nan_like((n, m), dtype))
    assert kc.linear(dev(x), dev(w), dev(b), activation=activation, out=out) is out
    assert_close(host(out), cpu.linear(x, w, b, activation=activation))
    assert_close(host(kc.linear(dev(x), dev(w), activation=activation)), cpu.linear(x, w, activation=activation))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("xs, ws, hyper", CONV_CASES_CUDA)
def test_conv2d_activation_matches_cpu(xs, ws, hyper, activation):
    x, w, b = randn(xs, np.float32, 4), randn(ws, np.float32, 5), randn((ws[0],), np.float32, 6)
    got = host(kc.conv2d_activation(dev(x), dev(w), dev(b), activation=activation, **hyper))
    assert_close(got, cpu.conv2d_activation(x, w, b, activation=activation, **hyper))


def test_relu_epilogue_keeps_nan():
    x, w = randn((3, 4), np.float32, 7), randn((2, 4), np.float32, 8)
    x[1, 2] = np.nan
    got = host(kc.linear(dev(x), dev(w), activation="relu"))
    assert np.isnan(got[1]).all() and not np.isnan(got[[0, 2]]).any() and (got[[0, 2]] >= 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 2, 3)])
def test_bias_activation_backward_matches_cpu(shape, dtype):
    g, y = randn(shape, dtype, 9), np.maximum(randn(shape, dtype, 10), 0)
    y.reshape(-1)[0] = np.nan
    got = kc.bias_activation_backward(dev(g), dev(y), activation="relu")
    for a, b in zip(got, cpu.bias_activation_backward(g, y, activation="relu")):
        assert_close(host(a), b)


def test_bad_input():
    x, w = dev(np.ones((2, 3), np.float32)), dev(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"activation must be one of \('none', 'relu'\), got 'gelu'"):
        kc.linear(x, w, activation="gelu")
    with pytest.raises(TypeError, match="activation must be one of"):
        kc.conv2d_activation(dev(np.ones((1, 1, 4, 4))), dev(np.ones((1, 1, 3, 3))), activation=1)


@pytest.mark.parametrize("fn, shapes", [
    (lambda x, w, b: F.linear(x, w, b, activation="relu"), [(3, 4), (5, 4), (5,)]),
    (lambda x, w, b: F.conv2d(x, w, b, padding=1, activation="relu"), [(1, 2, 4, 4), (2, 2, 3, 3), (2,)]),
])
def test_fused_ops_on_the_device_match_the_cpu(fn, shapes):
    # The autograd's fused ops on the CUDA backend: values and gradients of the CPU's (float64).
    check_op(fn, *shapes, check_grad=False)
