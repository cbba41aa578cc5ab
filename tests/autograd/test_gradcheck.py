"""gradcheck catches wrong gradients and says where; grad() returns gradients of the arguments' kinds."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad
from jitgrad import Function, GradcheckError
from tests.helpers import assert_close


class WrongSquare(Function):
    """``x**2`` with a backward that is off by 10% at one element: gradcheck must notice."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        grad = 2 * x * g
        grad[1, 2] *= 1.1
        return grad


def test_gradcheck_reports_input_index_and_values():
    ok = jitgrad.tensor(np.ones(3), requires_grad=True)
    x = jitgrad.tensor(np.arange(1.0, 7.0).reshape(2, 3), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"gradcheck failed for input 1 \(shape \(2, 3\)\) at index \(1, 2\): "
                                             r"analytic .* vs numeric .*") as info:
        jitgrad.gradcheck(lambda a, b: WrongSquare.apply(b) + a.sum(), ok, x)
    assert isinstance(info.value, AssertionError)


def test_gradcheck_checks_float32_inputs_in_float64_without_touching_them():
    x = jitgrad.tensor(np.array([0.3, -0.2], dtype=np.float32), requires_grad=True)
    before = x.numpy().copy()
    assert jitgrad.gradcheck(lambda t: (t * t).softmax(), x)  # sum(softmax) is constant: weights make it count
    np.testing.assert_array_equal(x.numpy(), before)
    assert x.grad is None


def test_gradcheck_handles_tuple_outputs_and_constant_inputs():
    x = jitgrad.tensor(np.array([0.5, 1.5]), requires_grad=True)
    assert jitgrad.gradcheck(lambda t, k: (t * k, t.exp()), x, 3.0)


def test_gradcheck_errors():
    with pytest.raises(ValueError, match="gradcheck: no input requires grad"):
        jitgrad.gradcheck(lambda t: t * 2.0, jitgrad.tensor([1.0]))
    with pytest.raises(TypeError, match="gradcheck: fn must return a Tensor or a tuple of Tensors, got float"):
        jitgrad.gradcheck(lambda t: 1.0, jitgrad.tensor([1.0], requires_grad=True))
    with pytest.raises(GradcheckError, match="does not depend on any input"):
        jitgrad.gradcheck(lambda t: t.detach() * 2.0, jitgrad.tensor([1.0], requires_grad=True))


def test_grad_returns_gradients_of_the_arguments_kinds():
    def f(w, x, scale, n):
        return ((w @ x) * scale).sum() * n

    w = jitgrad.tensor(np.ones((2, 3)), requires_grad=False)
    x = np.arange(3.0)
    gw, gx, gscale, gn = jitgrad.grad(f)(w, x, 2.0, 3)
    assert isinstance(gw, jitgrad.Tensor) and isinstance(gx, np.ndarray) and isinstance(gscale, float)
    assert gn is None
    assert_close(gw.numpy(), 6.0 * np.tile(x, (2, 1)))
    assert_close(gx, np.full(3, 12.0))
    assert gscale == pytest.approx(3.0 * 6.0)
    assert w.grad is None  # the caller's tensor is left untouched


def test_grad_of_an_unused_argument_is_zero_and_works_under_no_grad():
    with jitgrad.no_grad():
        gx, gy = jitgrad.grad(lambda x, y: (x * x).sum())(np.array([3.0]), np.array([1.0, 2.0]))
    assert_close(gx, np.array([6.0]))
    assert_close(gy, np.zeros(2))


def test_grad_requires_a_scalar_result():
    with pytest.raises(TypeError, match=r"grad: f must return a Tensor with one element, got \(2,\)"):
        jitgrad.grad(lambda x: x * 2.0)(np.ones(2))
