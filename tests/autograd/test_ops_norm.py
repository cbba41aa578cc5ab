"""Functional batch_norm / layer_norm / group_norm: forward against NumPy, float64 gradcheck, running stats, errors."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as F
from tests.autograd.op_helper import check_op
from tests.helpers import DTYPES, assert_close, randn


def _np_bn(x, mean, var, w, b, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * w.reshape(shape) + b.reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 2, 3)], ids=str)
def test_batch_norm_training_forward_gradcheck_and_running_update(shape, dtype):
    c = shape[1]
    axes = (0,) + tuple(range(2, len(shape)))
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)

    def op(x, w, b):
        return F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5)

    def reference(x, w, b):
        return _np_bn(x, x.mean(axis=axes), x.var(axis=axes), w, b, 1e-5)

    check_op(op, reference, [shape, (c,), (c,)], dtype=dtype, grad=dtype == np.float64)
    assert not np.array_equal(rm, np.zeros(c, dtype))  # the op wrote the caller's arrays
    # One call from (0, 1): running_mean = 0.1 * mean, running_var = 0.9 + 0.1 * unbiased variance.
    x0 = randn(shape, dtype, seed=3)
    m = x0.size // c
    expected_var_first = 0.9 + 0.1 * x0.var(axis=axes) * m / (m - 1)
    rm2, rv2 = np.zeros(c, dtype), np.ones(c, dtype)
    F.batch_norm(jitgrad.tensor(x0), rm2, rv2, training=True)
    assert_close(rm2, (0.1 * x0.mean(axis=axes)).astype(dtype), dtype)
    assert_close(rv2, expected_var_first.astype(dtype), dtype)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)], ids=str)
def test_batch_norm_eval_uses_running_stats_and_gradchecks(shape):
    c = shape[1]
    rm, rv = randn((c,), seed=5), np.abs(randn((c,), seed=6)) + 0.5
    rm0, rv0 = rm.copy(), rv.copy()
    check_op(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False),
             lambda x, w, b: _np_bn(x, rm0, rv0, w, b, 1e-5), [shape, (c,), (c,)])
    assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)


def test_batch_norm_without_affine_and_with_tensor_running_stats():
    x = randn((6, 2), seed=1)
    rm, rv = jitgrad.zeros(2, dtype=np.float64), jitgrad.ones(2, dtype=np.float64)
    check_op(lambda t: F.batch_norm(t, None, None, training=True),
             lambda t: (t - t.mean(0)) / np.sqrt(t.var(0) + 1e-5), inputs=[x])
    F.batch_norm(jitgrad.tensor(x), rm, rv, training=True, momentum=0.5)
    assert_close(rm.numpy(), 0.5 * x.mean(0))
    assert_close(rv.numpy(), 0.5 + 0.5 * x.var(0, ddof=1))


@pytest.mark.parametrize("shape,norm", [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((3, 4), 4)], ids=str)
def test_layer_norm(shape, norm):
    dims = (norm,) if isinstance(norm, int) else norm
    axes = tuple(range(len(shape) - len(dims), len(shape)))

    def reference(x, w, b):
        return (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5) * w + b

    check_op(lambda x, w, b: F.layer_norm(x, norm, w, b), reference, [shape, dims, dims])
    check_op(lambda x: F.layer_norm(x, norm), lambda x: reference(x, 1.0, 0.0), [shape])


@pytest.mark.parametrize("shape,groups", [((2, 4, 3, 3), 2), ((3, 6), 3), ((2, 4, 5), 4)], ids=str)
def test_group_norm(shape, groups):
    n, c = shape[:2]

    def reference(x, w, b):
        g = x.reshape(n, groups, -1)
        g = (g - g.mean(2, keepdims=True)) / np.sqrt(g.var(2, keepdims=True) + 1e-5)
        bshape = (1, c) + (1,) * (len(shape) - 2)
        return g.reshape(shape) * w.reshape(bshape) + b.reshape(bshape)

    check_op(lambda x, w, b: F.group_norm(x, groups, w, b), reference, [shape, (c,), (c,)])


def test_errors_name_the_argument():
    x = jitgrad.tensor(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        F.batch_norm(x, np.zeros(2, np.float32), np.ones(2, np.float32), training=True)
    with pytest.raises(TypeError, match="running_var has dtype float64"):
        F.batch_norm(x, np.zeros(3, np.float32), np.ones(3), training=True)
    with pytest.raises(ValueError, match="needs running_mean and running_var"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(TypeError, match="batch_norm: running_mean must be a Tensor, a NumPy array or None"):
        F.batch_norm(x, [0.0, 0.0, 0.0], np.ones(3, np.float32), training=True)
    with pytest.raises(ValueError, match="group_norm: num_groups=2 must divide the 3 channels"):
        F.group_norm(x, 2)
    with pytest.raises(TypeError, match="group_norm: num_groups must be a positive int, got 1.0"):
        F.group_norm(x, 1.0)
    with pytest.raises(ValueError, match="group_norm: num_groups must be a positive int, got 0"):
        F.group_norm(x, 0)
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(x, (4,))
