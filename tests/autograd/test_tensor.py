"""Tensor creation rules, attributes, conversions, comparisons, repr and creation helpers."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad
from jitgrad import Tensor
from tests.helpers import assert_close


@pytest.mark.parametrize(
    "data, dtype",
    [
        (1.5, np.float32),
        ([[1.0, 2.0]], np.float32),
        ([1, 2.5], np.float32),
        ([1, 2], np.int64),
        (True, np.bool_),
        (np.arange(3.0), np.float64),
        (np.arange(3, dtype=np.int32), np.int32),
        (np.float64(2.0), np.float64),
    ],
    ids=["float", "nested", "mixed", "ints", "bool", "f64-array", "i32-array", "np-scalar"],
)
def test_tensor_dtype_rules(data, dtype):
    assert jitgrad.tensor(data).dtype == dtype


def test_tensor_copies_but_constructor_wraps():
    a = np.zeros(3)
    t = jitgrad.tensor(a)
    t.data[0] = 1.0
    assert a[0] == 0.0
    w = Tensor(a)
    assert w.data is a
    assert jitgrad.tensor(a, dtype=np.float32).dtype == np.float32
    assert jitgrad.tensor(jitgrad.tensor([1.0, 2.0], requires_grad=True)).requires_grad is False


def test_attributes():
    t = jitgrad.tensor(np.ones((2, 3)), requires_grad=True)
    assert (t.shape, t.ndim, t.size, t.device, t.dtype) == ((2, 3), 2, 6, "cpu", np.float64)
    assert t.numpy() is t.data
    assert len(t) == 2
    assert t.grad is None and t.requires_grad and t.is_leaf
    assert jitgrad.tensor([[2.5]]).item() == 2.5
    assert float(jitgrad.tensor(3.0)) == 3.0 and int(jitgrad.tensor(4)) == 4
    assert jitgrad.tensor([1.0, 2.0]).tolist() == [1.0, 2.0]
    assert_close(np.asarray(t), np.ones((2, 3)))


def test_creation_errors():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, got dtype int64"):
        jitgrad.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="tensor\\(\\) cannot hold data of dtype <U1"):
        jitgrad.tensor(["a"])
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element, got shape \(2,\)"):
        jitgrad.tensor([1.0, 2.0]).item()
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, got dtype bool"):
        jitgrad.tensor([True]).requires_grad_()


def test_repr():
    assert repr(jitgrad.tensor([1.0, 2.0], requires_grad=True)) == "tensor([1., 2.], requires_grad=True)"
    assert repr(jitgrad.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(jitgrad.tensor(np.array([0.5]))) == "tensor([0.5], dtype=float64)"
    y = jitgrad.tensor([1.0], requires_grad=True) * 2.0
    assert repr(y) == "tensor([2.], grad_fn=<MulBackward>)"
    assert repr(jitgrad.tensor([[1.0, 2.0], [3.0, 4.0]])) == "tensor([[1., 2.],\n        [3., 4.]])"


def test_comparisons_return_bool_tensors_without_grad():
    a = jitgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = jitgrad.tensor([3.0, 2.0, 1.0])
    for result, expected in [
        (a == b, [False, True, False]), (a != b, [True, False, True]), (a < b, [True, False, False]),
        (a <= 2.0, [True, True, False]), (a > np.array([0.0, 5.0, 0.0]), [True, False, True]), (a >= b, [False, True, True]),
    ]:
        assert isinstance(result, Tensor) and result.dtype == np.bool_ and not result.requires_grad
        np.testing.assert_array_equal(result.numpy(), expected)
    # Identity hashing survives the elementwise __eq__.
    assert len({a, b, a}) == 2
    assert ((a > 1.5).astype(np.float32).mean()).item() == pytest.approx(2 / 3)


def test_argmax_has_no_gradient():
    a = jitgrad.tensor([[1.0, 5.0, 5.0], [7.0, 0.0, 1.0]], requires_grad=True)
    np.testing.assert_array_equal(a.argmax(axis=1).numpy(), [1, 0])
    assert not a.argmax().requires_grad and a.argmax().item() == 3


def test_creation_helpers():
    assert jitgrad.zeros(2, 3).shape == (2, 3) and jitgrad.zeros((2, 3)).dtype == np.float32
    assert jitgrad.ones(2, dtype=np.float64).dtype == np.float64
    assert_close(jitgrad.full((2,), 7.0).numpy(), np.full(2, 7.0, dtype=np.float32))
    z = jitgrad.zeros_like(jitgrad.tensor(np.ones((2, 2))), requires_grad=True)
    assert z.requires_grad and z.dtype == np.float64
    assert_close(jitgrad.ones_like(z).numpy(), np.ones((2, 2)))
    assert jitgrad.arange(4).dtype == np.int64 and jitgrad.arange(0, 1, 0.5).dtype == np.float32
    jitgrad.manual_seed(3)
    a = jitgrad.randn(4, 5).numpy()
    jitgrad.manual_seed(3)
    b = jitgrad.randn(4, 5).numpy()
    np.testing.assert_array_equal(a, b)
    u = jitgrad.rand(1000, generator=np.random.default_rng(0)).numpy()
    assert u.dtype == np.float32 and 0.0 <= u.min() and u.max() < 1.0


def test_to_device():
    t = jitgrad.tensor([1.0])
    assert t.to("cpu") is t and t.cpu() is t
    with pytest.raises(ValueError, match="unknown device 'tpu'; registered devices: cpu"):
        t.to("tpu")
