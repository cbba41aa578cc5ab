"""``dims=``: the conv geometry built once (NNlib's DenseConvDims) and handed to both backward kernels."""

import numpy as np
import pytest

import jitgrad
import jitgrad.kernels.cpu as cpu
import jitgrad.kernels.reference as ref
from jitgrad.kernels import _validate
from jitgrad.kernels._validate import Conv2dDims
from tests.helpers import randn

HYPER = {"stride": (2, 1), "padding": 1, "dilation": (1, 2), "groups": 2}


@pytest.mark.parametrize("kernels", [ref, cpu], ids=["reference", "cpu"])
def test_backward_kernels_with_dims_equal_those_without(kernels):
    x, w = randn((2, 4, 7, 6), seed=1), randn((6, 2, 3, 2), seed=2)
    dims = Conv2dDims.from_shapes(x.shape, w.shape, **HYPER)
    g = randn(dims.output_shape, seed=3)
    gx = kernels.conv2d_backward_input(g, w, input_shape=x.shape, **HYPER)
    np.testing.assert_array_equal(
        kernels.conv2d_backward_input(g, w, input_shape=x.shape, **HYPER, dims=dims), gx)
    gw, gb = kernels.conv2d_backward_weight(x, g, weight_shape=w.shape, **HYPER)
    gw2, gb2 = kernels.conv2d_backward_weight(x, g, weight_shape=w.shape, **HYPER, dims=dims)
    np.testing.assert_array_equal(gw2, gw)
    np.testing.assert_array_equal(gb2, gb)


@pytest.mark.parametrize("kernels", [ref, cpu], ids=["reference", "cpu"])
def test_arrays_that_do_not_fit_dims_are_refused(kernels):
    x, w = randn((2, 4, 7, 6), seed=1), randn((6, 2, 3, 2), seed=2)
    dims = Conv2dDims.from_shapes(x.shape, w.shape, **HYPER)
    g = randn(dims.output_shape, seed=3)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 6, 4, 6\) \(from dims\), got \(1, 6, 4, 6\)"):
        kernels.conv2d_backward_input(g[:1], w, input_shape=x.shape, dims=dims)
    with pytest.raises(TypeError, match="dims must be a Conv2dDims"):
        kernels.conv2d_backward_weight(x, g, weight_shape=w.shape, dims=HYPER)


def test_autograd_conv_validates_the_geometry_once(monkeypatch):
    calls = []
    original = Conv2dDims.from_shapes.__func__

    def counting(cls, *args, **kwargs):
        calls.append(args[:2])
        return original(cls, *args, **kwargs)

    x = jitgrad.tensor(randn((2, 4, 7, 6), seed=1), requires_grad=True)
    w = jitgrad.tensor(randn((6, 2, 3, 2), seed=2), requires_grad=True)
    y = jitgrad.nn.functional.conv2d(x, w, **HYPER)  # compiles, fills the kernels' memo
    monkeypatch.setattr(_validate.Conv2dDims, "from_shapes", classmethod(counting))
    y = jitgrad.nn.functional.conv2d(x, w, **HYPER)
    assert len(calls) == 1  # the Function's; the forward kernel's own check is memoised
    y.sum().backward()
    assert len(calls) == 1  # both backward kernels took the Function's dims
    assert x.grad.shape == x.shape and w.grad.shape == w.shape
