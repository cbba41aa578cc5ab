"""The backward engine: order, accumulation, graph freeing, grad mode, custom Functions, errors."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad
from jitgrad import Function
from tests.helpers import assert_close


def leaf(values, dtype=np.float64):
    return jitgrad.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def test_ten_thousand_op_chain_has_no_recursion_limit():
    x = leaf(1.0)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert_close(x.grad.numpy(), np.asarray(1.0001 ** 10_000), rtol=1e-9)


def test_reused_tensor_accumulates_over_every_path():
    x = leaf([1.0, 2.0])
    h = x * x  # used twice below: its gradient is the sum of both paths
    (h + h * 3.0 + x).sum().backward()
    assert_close(x.grad.numpy(), 4 * 2 * np.array([1.0, 2.0]) + 1.0)


def test_diamond_graph_runs_each_backward_once_after_all_its_consumers():
    calls = []

    class Spy(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1.0

        @staticmethod
        def backward(ctx, g):
            calls.append(g.copy())
            return g

    x = leaf([1.0, 2.0])
    s = Spy.apply(x)
    (s * 2.0 + s.exp()).sum().backward()
    assert len(calls) == 1
    assert_close(calls[0], 2.0 + np.exp([1.0, 2.0]))


def test_gradients_accumulate_across_backward_calls_until_zeroed():
    x = leaf([1.0, -1.0])
    (x * 2.0).sum().backward()
    grad_tensor = x.grad
    (x * 3.0).sum().backward()
    assert x.grad is grad_tensor  # the same Tensor object, updated
    assert_close(x.grad.numpy(), np.array([5.0, 5.0]))
    x.zero_grad()
    assert x.grad is None


def test_leaf_grads_never_alias_each_other_or_the_seed():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    seed = np.ones(2)
    (a + b).backward(seed)
    a.grad.data *= 10.0  # e.g. gradient clipping in place
    assert_close(b.grad.numpy(), np.ones(2))
    assert_close(seed, np.ones(2))
    c = leaf([[1.0, 2.0]])
    c.reshape(2).sum().backward()  # a reshape view of the output gradient
    assert c.grad.data.flags.writeable and c.grad.data.base is None


def test_only_leaves_get_grad_and_grad_has_the_leaf_dtype():
    x = jitgrad.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    h = x * 2.0
    (h * np.ones(3)).sum().backward()  # a float64 constant promotes h*1 to float64
    assert h.grad is None and not h.is_leaf
    assert x.grad.dtype == np.float32 and x.is_leaf


def test_graph_is_freed_after_backward_unless_retained():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert_close(x.grad.numpy(), 2 * 2 * np.array([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    assert y.grad_fn.__name__ == "Sum"  # the op stays known after freeing


def test_backward_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        jitgrad.tensor([1.0]).sum().backward()
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"needs a tensor with one element, got shape \(2,\)"):
        (x * 2.0).backward()
    with pytest.raises(RuntimeError, match=r"grad must have the output's shape \(2,\), got \(3,\)"):
        (x * 2.0).backward(np.ones(3))


def test_backward_with_explicit_gradient():
    x = leaf([1.0, 2.0])
    (x * x).backward(jitgrad.tensor([1.0, 0.5]))
    assert_close(x.grad.numpy(), np.array([2.0, 2.0]))


def test_no_grad_context_manager_and_decorator():
    x = leaf([1.0])
    with jitgrad.no_grad():
        y = x * 2.0
        with jitgrad.enable_grad():
            z = x * 2.0
        assert not jitgrad.is_grad_enabled()
    assert jitgrad.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @jitgrad.no_grad()
    def f(t):
        return t * 3.0

    @jitgrad.no_grad
    def g(t):
        return t * 3.0

    assert not f(x).requires_grad and not g(x).requires_grad
    assert jitgrad.is_grad_enabled()


def test_no_grad_restores_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with jitgrad.no_grad():
            1 / 0
    assert jitgrad.is_grad_enabled()


def test_detach_cuts_the_graph_and_shares_data():
    x = leaf([1.0, 2.0])
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    y = (x * d).sum()
    y.backward()
    assert_close(x.grad.numpy(), np.array([2.0, 4.0]))  # d is a constant
    e = x.detach()
    assert e.data is x.data


def test_custom_function_with_constants_and_needs_input_grad():
    class ScaleAdd(Function):
        """``a * k + b`` with a constant ``k``."""

        @staticmethod
        def forward(ctx, a, b, *, k):
            ctx.k = k
            return a * k + b

        @staticmethod
        def backward(ctx, g):
            assert ctx.needs_input_grad == (True, False)
            return g * ctx.k, None

    a, b = leaf([1.0, 2.0]), jitgrad.tensor([1.0, 1.0])
    out = ScaleAdd.apply(a, b, k=3.0)
    assert_close(out.numpy(), np.array([4.0, 7.0]))
    out.sum().backward()
    assert_close(a.grad.numpy(), np.array([3.0, 3.0]))
    assert jitgrad.gradcheck(lambda t: ScaleAdd.apply(t, b, k=3.0), leaf([0.5, -0.5]))


def test_function_errors():
    class TooFew(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, g):
            return (g,)

    with pytest.raises(TypeError, match="TooFew.apply needs at least one Tensor argument"):
        TooFew.apply(1.0, 2.0)
    x = leaf([1.0])
    with pytest.raises(RuntimeError, match="TooFew.backward returned 1 gradients for 2 inputs"):
        TooFew.apply(x, x).sum().backward()
