"""Grouped/transposed convolution, adaptive pooling and the structural tensor ops: forward against
NumPy/the reference kernels, float64 gradcheck, PyTorch spellings, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad as jg
import jitgrad.nn.functional as F
from jitgrad.kernels import reference as ref
from tests.autograd.op_helper import check_op
from tests.helpers import randn, tie_free


# ----------------------------------------------------------------------------- conv and pooling

@pytest.mark.parametrize("groups,c_out", [(2, 4), (4, 8)], ids=["groups2", "depthwise-x2"])
def test_conv2d_groups(groups, c_out):
    check_op(lambda x, w, b: F.conv2d(x, w, b, stride=(1, 2), padding=1, groups=groups),
             lambda x, w, b: ref.conv2d(x, w, b, stride=(1, 2), padding=1, groups=groups),
             [(2, 4, 5, 5), (c_out, 4 // groups, 3, 3), (c_out,)])


@pytest.mark.parametrize("hp", [dict(stride=2, padding=1, output_padding=1), dict(groups=2, dilation=2)],
                         ids=["outpad", "groups-dilated"])
def test_conv_transpose2d(hp):
    groups = hp.get("groups", 1)
    check_op(lambda x, w, b: F.conv_transpose2d(x, w, b, **hp),
             lambda x, w, b: ref.conv_transpose2d(x, w, b, **hp),
             [(2, 4, 3, 3), (4, 3, 2, 3), (3 * groups,)])


@pytest.mark.parametrize("size", [1, (3, 2), (2, None)])
def test_adaptive_pooling(size):
    x = tie_free((2, 3, 5, 4), seed=2)
    check_op(lambda t: F.adaptive_avg_pool2d(t, size), lambda a: ref.adaptive_avg_pool2d(a, output_size=size),
             inputs=[x])
    check_op(lambda t: F.adaptive_max_pool2d(t, size), lambda a: ref.adaptive_max_pool2d(a, output_size=size)[0],
             inputs=[x])


# ----------------------------------------------------------------------------- structural ops

def test_cat_concatenate_and_stack():
    check_op(lambda a, b: jg.cat([a, b], axis=1), lambda a, b: np.concatenate([a, b], 1), [(2, 3, 2), (2, 1, 2)])
    check_op(lambda a, b: jg.concatenate((a, b), dim=-1), lambda a, b: np.concatenate([a, b], -1),
             [(2, 3), (2, 4)])
    check_op(lambda a, b: jg.stack([a, b], dim=1), lambda a, b: np.stack([a, b], 1), [(2, 3), (2, 3)])


def test_split_pieces_and_gradients():
    x = jg.tensor(np.arange(10.0).reshape(2, 5), requires_grad=True)
    parts = x.split(2, dim=1)
    assert [p.shape for p in parts] == [(2, 2), (2, 2), (2, 1)]
    np.testing.assert_array_equal(parts[2].numpy(), [[4.0], [9.0]])
    assert [p.shape for p in jg.split(x, [1, 4], axis=1)] == [(2, 1), (2, 4)]
    check_op(lambda t: jg.cat([p * (i + 1) for i, p in enumerate(t.split([2, 3], dim=1))], 1),
             lambda a: np.concatenate([a[:, :2], 2 * a[:, 2:]], 1), [(3, 5)])


def test_where_and_clamp():
    cond = randn((3, 4), seed=9) > 0
    check_op(lambda a, b: jg.where(cond, a, b), lambda a, b: np.where(cond, a, b), [(3, 4), (4,)])
    check_op(lambda a: jg.where(jg.tensor(cond), a, 0.5), lambda a: np.where(cond, a, 0.5), [(3, 4)])
    # Away from the clamp points so central differences see one side.
    x = np.array([-2.0, -0.6, 0.1, 0.7, 3.0, -0.2])
    check_op(lambda t: t.clamp(-0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5), inputs=[x])
    check_op(lambda t: t.clip(min=0.0), lambda a: np.maximum(a, 0.0), inputs=[x])
    check_op(lambda t: jg.clamp(t, max=0.0), lambda a: np.minimum(a, 0.0), inputs=[x])
    y = jg.clamp(jg.tensor([np.nan, 5.0], dtype=np.float32), 0, 1)
    assert y.dtype == np.float32 and np.isnan(y.numpy()[0]) and y.numpy()[1] == 1


def test_squeeze_unsqueeze():
    check_op(lambda t: t.unsqueeze(1).unsqueeze(-1), lambda a: a[:, None, :, None], [(2, 3)])
    check_op(lambda t: t.squeeze(), lambda a: a.squeeze(), [(1, 3, 1, 2)])
    check_op(lambda t: t.squeeze(2), lambda a: a.squeeze(2), [(1, 3, 1, 2)])
    assert jg.zeros((2, 3)).squeeze(0).shape == (2, 3)  # size > 1: stays, as PyTorch


@pytest.mark.parametrize("kwargs,ddof", [({}, 1), ({"unbiased": False}, 0), ({"correction": 0}, 0)])
def test_var_std(kwargs, ddof):
    check_op(lambda t: t.var(dim=1, **kwargs), lambda a: a.var(axis=1, ddof=ddof), [(3, 5)])
    check_op(lambda t: t.std(**kwargs), lambda a: a.std(ddof=ddof), [(3, 5)])
    check_op(lambda t: jg.var(t, (0, 2), keepdim=True, **kwargs),
             lambda a: a.var(axis=(0, 2), ddof=ddof, keepdims=True), [(2, 3, 4)])


def test_pad_constant_and_reflect():
    check_op(lambda t: F.pad(t, (1, 2)), lambda a: np.pad(a, ((0, 0), (0, 0), (1, 2))), [(2, 3, 4)])
    check_op(lambda t: F.pad(t, (1, 0, 2, 1), value=-1.5),
             lambda a: np.pad(a, ((0, 0), (2, 1), (1, 0)), constant_values=-1.5), [(2, 3, 4)])
    check_op(lambda t: F.pad(t, (2, 1, 1, 2), mode="reflect"),
             lambda a: np.pad(a, ((0, 0), (0, 0), (1, 2), (2, 1)), mode="reflect"), [(1, 2, 4, 3)])


def test_batched_matmul():
    check_op(lambda a, b: a @ b, lambda a, b: a @ b, [(3, 2, 4), (3, 4, 5)])
    check_op(lambda a, b: jg.autograd.ops.matmul(a, b), lambda a, b: a @ b, [(2, 1, 3), (2, 3, 2)])


def test_size_dim_and_dim_keyword():
    x = jg.tensor(randn((2, 3, 4)))
    assert x.size == 24 and x.size() == (2, 3, 4) and x.size(-1) == 4 and x.dim() == 3
    a = x.numpy()
    np.testing.assert_allclose(x.sum(dim=1, keepdim=True).numpy(), a.sum(1, keepdims=True))
    np.testing.assert_allclose(x.mean(dim=(0, 2)).numpy(), a.mean((0, 2)))
    np.testing.assert_allclose(x.max(dim=2).numpy(), a.max(2))
    np.testing.assert_allclose(x.min(dim=0).numpy(), a.min(0))
    np.testing.assert_array_equal(x.argmax(dim=1).numpy(), a.argmax(1))
    np.testing.assert_allclose(x.softmax(dim=1).numpy().sum(1), np.ones((2, 4)), rtol=1e-6)
    np.testing.assert_allclose(x.log_softmax(dim=0).numpy(), F.log_softmax(x, 0).numpy())
    np.testing.assert_allclose(x.sum(1).numpy(), a.sum(1))  # positional axis still works


class TestBadInput:
    def test_cat(self):
        a, b = jg.zeros((2, 3)), jg.zeros((3, 3))
        with pytest.raises(ValueError, match=r"tensors\[1\] has shape \(3, 3\), which does not match"):
            jg.cat([a, b], axis=1)
        with pytest.raises(TypeError, match="tensors must be a non-empty list"):
            jg.cat(a)
        with pytest.raises(ValueError, match="axis=2 is out of range"):
            jg.cat([a, a], axis=2)
        with pytest.raises(TypeError, match=r"tensors\[1\] has dtype float64"):
            jg.cat([a, jg.tensor(np.zeros((2, 3)))])
        with pytest.raises(ValueError, match=r"stack: tensors\[1\] has shape"):
            jg.stack([a, b])

    def test_split_where_clamp_pad(self):
        x = jg.zeros((2, 5))
        with pytest.raises(ValueError, match=r"sections \[1, 2\] add up to 3, not to the axis length 5"):
            x.split([1, 2], dim=1)
        with pytest.raises(ValueError, match="split_size must be >= 1"):
            x.split(0)
        with pytest.raises(TypeError, match="condition must be a boolean"):
            jg.where(np.ones((2, 5)), x, x)
        with pytest.raises(ValueError, match="at least one of min and max"):
            x.clamp()
        with pytest.raises(TypeError, match="clamp: min must be a real number"):
            x.clamp("0")
        with pytest.raises(ValueError, match="mode must be 'constant' or 'reflect', got 'wrap'"):
            F.pad(x, (1, 1), mode="wrap")
        with pytest.raises(ValueError, match=r"reflect padding \(5, 0\) must be smaller than axis 1 of size 5"):
            F.pad(x, (5, 0), mode="reflect")
        with pytest.raises(ValueError, match="pad must be an even-length sequence"):
            F.pad(x, (1,))
        with pytest.raises(TypeError, match="got both axis=1 and dim=0"):
            x.sum(1, dim=0)
        with pytest.raises(ValueError, match="batched operands must be"):
            jg.zeros((2, 3, 4)) @ jg.zeros((3, 4, 5))

    def test_groups_and_output_padding_in_functional(self):
        with pytest.raises(ValueError, match="groups=3 must divide"):
            F.conv2d(jg.zeros((1, 4, 5, 5)), jg.zeros((3, 1, 3, 3)), groups=3)
        with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
            F.conv_transpose2d(jg.zeros((1, 4, 5, 5)), jg.zeros((4, 1, 3, 3)), output_padding=1)


@pytest.mark.parametrize("value", [-np.inf, np.inf, 1e30, -2.5])
def test_constant_pad_keeps_the_data_whatever_the_value(value):
    # (x - value) + value would give NaN for an infinite value and wipe x out for a huge one.
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    y = jg.nn.functional.pad(jg.tensor(x), (1, 2), value=value).numpy()
    np.testing.assert_array_equal(y[..., 1:4], x)
    assert np.all(y[..., :1] == np.float32(value)) and np.all(y[..., 4:] == np.float32(value))
