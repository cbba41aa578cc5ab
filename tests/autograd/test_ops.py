"""Every autograd op: forward against NumPy, gradients by gradcheck (float64), broadcasting included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitgrad
from jitgrad.kernels import reference as ref
from tests.autograd.op_helper import check_op
from tests.helpers import DTYPES, assert_close, randn, tie_free

BROADCAST_SHAPES = [
    [(2, 3), (2, 3)],
    [(2, 3), (3,)],
    [(3,), (2, 3)],
    [(2, 1, 3), (4, 1)],
    [(1, 3), (2, 1)],
    [(), (2, 2)],
]


def _positive(a: np.ndarray) -> np.ndarray:
    return np.abs(a) + 0.5


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize(
    "op, reference",
    [
        (lambda a, b: a + b, np.add),
        (lambda a, b: a - b, np.subtract),
        (lambda a, b: a * b, np.multiply),
        (lambda a, b: a / b, np.divide),
    ],
    ids=["add", "sub", "mul", "div"],
)
def test_binary_arithmetic_broadcasts(op, reference, shapes):
    # Positive inputs keep the divisor away from zero.
    check_op(op, reference, shapes, transform=_positive)


@pytest.mark.parametrize("dtype", DTYPES)
def test_arithmetic_keeps_float32_with_python_scalars(dtype):
    out = check_op(lambda a: (2.0 * a + 1.0) / 3.0 - a ** 2 + 1 / (a + 4.0) - (5.0 - a), lambda a:
                   (2.0 * a + 1.0) / 3.0 - a ** 2 + 1 / (a + 4.0) - (5.0 - a), [(3, 2)], dtype=dtype,
                   transform=_positive, grad=dtype == np.float64)
    assert out.dtype == dtype


def test_numpy_array_constants_on_either_side():
    const = randn((2, 3), seed=5)
    check_op(lambda a: const * a + const - a / (const ** 2 + 1.0), lambda a: const * a + const - a / (const ** 2 + 1.0),
             [(2, 3)])
    # ndarray on the left must defer to the Tensor's reflected operator, keeping the graph.
    x = jitgrad.tensor(np.ones(3), requires_grad=True)
    y = np.arange(3.0) @ x
    y.backward()
    assert_close(x.grad.numpy(), np.arange(3.0))


def test_pow_with_tensor_exponent_and_tensor_base():
    check_op(lambda a, b: a ** b, np.power, [(2, 3), (2, 3)], transform=_positive)
    check_op(lambda a: a ** 3, lambda a: a ** 3, [(2, 3)])
    check_op(lambda a: a ** -1.5, lambda a: a ** -1.5, [(2, 3)], transform=_positive)
    check_op(lambda a: 2.0 ** a, lambda a: 2.0 ** a, [(4,)])


@pytest.mark.parametrize(
    "op, reference, transform",
    [
        (lambda a: -a, np.negative, None),
        (lambda a: a.exp(), np.exp, None),
        (lambda a: a.log(), np.log, _positive),
        (lambda a: a.sqrt(), np.sqrt, _positive),
        (lambda a: abs(a), np.abs, None),
    ],
    ids=["neg", "exp", "log", "sqrt", "abs"],
)
def test_unary_math(op, reference, transform):
    check_op(op, reference, [(3, 4)], transform=transform)


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reductions(name, axis, keepdims):
    x = tie_free((2, 3, 4))  # no ties: max's gradient is unambiguous
    check_op(lambda a: getattr(a, name)(axis=axis, keepdims=keepdims),
             lambda a: getattr(np, name)(a, axis=axis, keepdims=keepdims), inputs=[x])


def test_max_gradient_goes_to_the_first_of_tied_maxima():
    x = jitgrad.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    assert_close(x.grad.numpy(), np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32))
    y = jitgrad.tensor([[5.0, 1.0], [5.0, 5.0]], requires_grad=True)
    y.max().backward()
    assert_close(y.grad.numpy(), np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32))


def test_reduction_axis_out_of_range_raises():
    with pytest.raises(np.exceptions.AxisError, match="axis 2 is out of bounds"):
        jitgrad.tensor(np.ones((2, 3))).sum(axis=2)


@pytest.mark.parametrize(
    "op, reference",
    [
        (lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6)),
        (lambda a: a.reshape((-1,)), lambda a: a.reshape(-1)),
        (lambda a: a.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
        (lambda a: a.transpose(0, 2), lambda a: a.swapaxes(0, 2)),
        (lambda a: a.T, lambda a: a.T),
        (lambda a: a.flatten(), lambda a: a.reshape(-1)),
        (lambda a: a.flatten(1), lambda a: a.reshape(2, -1)),
        (lambda a: a.flatten(0, 1), lambda a: a.reshape(6, 4)),
        (lambda a: a[1], lambda a: a[1]),
        (lambda a: a[:, 1:3, ::2], lambda a: a[:, 1:3, ::2]),
        (lambda a: a[..., -1], lambda a: a[..., -1]),
        (lambda a: a[None, 0, :, 1], lambda a: a[None, 0, :, 1]),
        (lambda a: a[np.array([1, 0, 1])], lambda a: a[np.array([1, 0, 1])]),
        (lambda a: a[[0, 0, 1], [2, 2, 0]], lambda a: a[[0, 0, 1], [2, 2, 0]]),
        (lambda a: a[a > 0], lambda a: a[a > 0]),
        (lambda a: a[jitgrad.tensor(np.array([0, 0]))], lambda a: a[np.array([0, 0])]),
    ],
    ids=["reshape", "reshape-1", "permute", "transpose", "T", "flatten", "flatten1", "flatten01", "int",
         "slices", "ellipsis", "newaxis", "int-array-repeats", "two-int-arrays", "bool-mask", "tensor-index"],
)
def test_shape_ops_and_indexing(op, reference):
    check_op(op, reference, [(2, 3, 4)])


def test_shape_op_errors():
    x = jitgrad.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"permute: axes \(0, 0\) are not a permutation of the 2 dims"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match="flatten: start_dim=1 comes after end_dim=0"):
        x.flatten(1, 0)
    with pytest.raises(ValueError, match="cannot reshape array of size 6 into shape"):
        x.reshape(4, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "op, reference, shapes",
    [
        (lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4, 2)]),
        (lambda a, b: a.T @ b, lambda a, b: a.T @ b, [(4, 3), (4, 2)]),
        (lambda a, b: a @ b.T, lambda a, b: a @ b.T, [(3, 4), (2, 4)]),
        (lambda a, b: a.T @ b.T, lambda a, b: a.T @ b.T, [(4, 3), (2, 4)]),
        (lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (4, 2)]),
        (lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4,)]),
        (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (4, 2)]),
        (lambda a, b: a[:, ::2] @ b, lambda a, b: a[:, ::2] @ b, [(3, 8), (4, 2)]),
    ],
    ids=["2d", "ta", "tb", "ta-tb", "vec-mat", "mat-vec", "batch-rows", "strided"],
)
def test_matmul(op, reference, shapes, dtype):
    check_op(op, reference, shapes, dtype=dtype, grad=dtype == np.float64)


def test_matmul_shape_errors():
    a = jitgrad.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"matmul: inner sizes differ: a has shape \(2, 3\), b has shape \(2, 3\)"):
        a @ a
    with pytest.raises(ValueError, match=r"matmul: b must be 1-D or 2-D, got shape \(3, 2, 2\)"):
        a @ np.ones((3, 2, 2))


def test_astype_casts_gradient_back():
    x = jitgrad.tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * 3.0).sum().backward()
    assert x.grad.dtype == np.float32
    assert_close(x.grad.numpy(), np.full((2, 2), 3.0, dtype=np.float32))
    assert x.float() is x


ACTIVATIONS = [
    ("relu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("sigmoid", {}), ("tanh", {}),
    ("gelu", {}), ("gelu", {"approximate": "tanh"}), ("elu", {"alpha": 0.7}),
    ("softplus", {}), ("softplus", {"beta": 2.0, "threshold": 1.0}),
]


@pytest.mark.parametrize("name, hyper", ACTIVATIONS, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_match_reference_and_gradcheck(name, hyper, dtype):
    # Inputs kept away from the kinks (0 for relu-likes, the softplus threshold) where
    # central differences straddle two branches.
    x = randn((3, 5), seed=3)
    x = np.where(np.abs(x) < 0.05, 0.3, x)
    x = np.where(np.abs(x - 0.5) < 0.05, 0.7, x)
    check_op(lambda a: getattr(a, name)(**hyper), lambda a: getattr(ref, name)(a, **hyper), inputs=[x],
             dtype=dtype, grad=dtype == np.float64)


def test_activations_accept_non_contiguous_views():
    x = jitgrad.tensor(randn((4, 6), seed=1), requires_grad=True)
    check_op(lambda a: a.T.tanh(), lambda a: np.tanh(a.T), inputs=[randn((4, 6), seed=1)])
    y = x[:, ::2].relu()
    assert_close(y.numpy(), np.maximum(x.numpy()[:, ::2], 0))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_family(name, axis):
    check_op(lambda a: getattr(a, name)(axis=axis), lambda a: getattr(ref, name)(a, axis=axis), [(2, 3, 4)])


@settings(max_examples=20, deadline=None)
@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    drop=st.lists(st.booleans(), min_size=3, max_size=3),
    ones=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_broadcast_gradient_sums_back_to_each_input_shape(shape, drop, ones):
    # b's shape: leading axes dropped and some sizes set to 1, any NumPy-broadcastable variant of a's.
    b_shape = [1 if o else s for s, o in zip(shape, ones)]
    b_shape = b_shape[sum(drop[: len(shape)]) // 2:]
    a = randn(tuple(shape), seed=1)
    b = randn(tuple(b_shape), seed=2)
    check_op(lambda x, y: x * y + y, lambda x, y: x * y + y, inputs=[a, b])
