"""Fused ops (LinearActivation, Conv2dActivation): float64 gradcheck, and the same values and gradients as
the unfused Linear -> ReLU / Conv2d -> ReLU (equal forward, gradients allclose in float32)."""

from __future__ import annotations

import numpy as np
import pytest

from jitgrad import Tensor
from jitgrad.autograd import ops
from jitgrad.autograd.gradcheck import gradcheck
from jitgrad.nn import functional as F
from tests.helpers import assert_close, randn


def _tensors(shapes, dtype, seed, grad=True):
    return [Tensor(randn(s, dtype, seed + i), requires_grad=grad) for i, s in enumerate(shapes)]


@pytest.mark.parametrize("activation", ["relu", "none"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
def test_linear_activation_gradcheck(activation, with_bias):
    x, w, b = _tensors([(5, 7), (4, 7), (4,)], np.float64, 1)
    assert gradcheck(lambda x, w, b: ops.LinearActivation.apply(x, w, b, activation=activation),
                     x, w, b if with_bias else None)


@pytest.mark.parametrize("hyper", [{}, {"stride": 2, "padding": 1}])
def test_conv2d_activation_gradcheck(hyper):
    x, w, b = _tensors([(2, 2, 5, 5), (3, 2, 3, 3), (3,)], np.float64, 4)
    assert gradcheck(lambda x, w, b: ops.Conv2dActivation.apply(x, w, b, activation="relu", **hyper), x, w, b)


def _forward_backward(fn, inputs, grad):
    for t in inputs:
        t.grad = None
    y = fn(*inputs)
    y.backward(grad)
    return y.numpy(), [t.grad.numpy() for t in inputs]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_relu_equals_unfused(dtype):
    x, w, b = _tensors([(9, 40), (30, 40), (30,)], dtype, 7)
    grad = randn((9, 30), dtype, 10)
    fused = _forward_backward(lambda x, w, b: F.linear(x, w, b, activation="relu"), (x, w, b), grad)
    unfused = _forward_backward(lambda x, w, b: F.relu(F.linear(x, w, b)), (x, w, b), grad)
    np.testing.assert_array_equal(fused[0], unfused[0])
    for a, e in zip(fused[1], unfused[1]):
        assert_close(a, e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_relu_equals_unfused(dtype):
    x, w, b = _tensors([(2, 3, 8, 8), (4, 3, 3, 3), (4,)], dtype, 11)
    grad = randn((2, 4, 6, 6), dtype, 14)
    fused = _forward_backward(lambda x, w, b: F.conv2d(x, w, b, activation="relu"), (x, w, b), grad)
    unfused = _forward_backward(lambda x, w, b: F.relu(F.conv2d(x, w, b)), (x, w, b), grad)
    np.testing.assert_array_equal(fused[0], unfused[0])
    for a, e in zip(fused[1], unfused[1]):
        assert_close(a, e)


def test_fused_gradient_nan_semantics_equal_unfused():
    # A NaN input row: NaN outputs, whose mask (y > 0) is false in both paths.
    x, w, b = _tensors([(3, 4), (5, 4), (5,)], np.float64, 15)
    x.data[1, 2] = np.nan
    grad = randn((3, 5), np.float64, 18)
    fused = _forward_backward(lambda x, w, b: F.linear(x, w, b, activation="relu"), (x, w, b), grad)
    unfused = _forward_backward(lambda x, w, b: F.relu(F.linear(x, w, b)), (x, w, b), grad)
    np.testing.assert_array_equal(fused[0], unfused[0])
    for a, e in zip(fused[1], unfused[1]):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        assert_close(np.nan_to_num(a), np.nan_to_num(e))


def test_leading_axes_and_no_grad_inputs():
    x = Tensor(randn((2, 3, 6), np.float64, 19))
    w, b = _tensors([(4, 6), (4,)], np.float64, 20)
    y = F.linear(x, w, b, activation=F.relu)
    assert y.shape == (2, 3, 4)
    assert_close(y.numpy(), np.maximum(x.numpy() @ w.numpy().T + b.numpy(), 0))
    y.sum().backward()
    assert x.grad is None and w.grad.shape == (4, 6) and b.grad.shape == (4,)


@pytest.mark.parametrize("fn, args", [
    (F.linear, lambda: (Tensor(np.ones((2, 3))), Tensor(np.ones((4, 3))))),
    (F.conv2d, lambda: (Tensor(np.ones((1, 1, 4, 4))), Tensor(np.ones((1, 1, 3, 3))))),
])
def test_bad_activation(fn, args):
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"^{name}: activation must be None or 'relu' .*got 'tanh'$"):
        fn(*args(), activation="tanh")
    with pytest.raises(TypeError, match=rf"^{name}: activation must be None, 'relu' or nn.functional.relu, got int 3$"):
        fn(*args(), activation=3)
