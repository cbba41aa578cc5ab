"""Convolution cases: one table for the reference, CPU and CUDA tests (tests/kernels, tests/cuda)."""

from __future__ import annotations

import itertools

import numpy as np

from jitgrad.kernels import reference as ref
from jitgrad.kernels._validate import Conv2dDims
from tests.helpers import assert_close, nan_like, randn

#: Every combination of stride, padding and dilation forms (int, pair, asymmetric pair).
HYPER = list(itertools.product([1, 2, (2, 1)], [0, 1, (2, 0)], [1, 2, (1, 2)]))
HYPER_IDS = [f"s{s}-p{p}-d{d}" for s, p, d in HYPER]


def _same(a):
    return a


def tolerance(dtype, reduction):
    """(rtol, atol) for sums of ``reduction`` products of unit normals."""
    if np.dtype(dtype) == np.float64:
        return 1e-10, 1e-12 * max(reduction, 1)
    return 1e-4, 2e-5 * max(np.sqrt(reduction), 1)


def make_case(n, c_in, h, w, c_out, kh, kw, stride, padding, dilation, dtype, seed=0):
    d = Conv2dDims.from_shapes((n, c_in, h, w), (c_out, c_in, kh, kw), stride=stride, padding=padding,
                               dilation=dilation)
    x = randn(d.input_shape, dtype, seed)
    wt = randn(d.weight_shape, dtype, seed + 1)
    b = randn((c_out,), dtype, seed + 2)
    g = randn(d.output_shape, dtype, seed + 3)
    return d, x, wt, b, g


def check_backend(backend, n, c_in, h, w, c_out, kh, kw, stride, padding, dilation, dtype, seed=0, bias=True,
                  to_device=_same, to_host=_same):
    """Every conv kernel of ``backend`` against the reference, outputs pre-filled with NaN."""
    d, x, wt, b, g = make_case(n, c_in, h, w, c_out, kh, kw, stride, padding, dilation, dtype, seed)
    hp = dict(stride=stride, padding=padding, dilation=dilation)
    b = b if bias else None
    where = f"x{x.shape} w{wt.shape} {hp} {np.dtype(dtype)}"
    dx, dwt, dg = to_device(x), to_device(wt), to_device(g)

    rtol, atol = tolerance(dtype, c_in * kh * kw)
    out = to_device(nan_like(d.output_shape, dtype))
    assert backend.conv2d(dx, dwt, None if b is None else to_device(b), out=out, **hp) is out
    assert_close(to_host(out), ref.conv2d(x, wt, b, **hp), dtype, rtol=rtol, atol=atol,
                 err_msg="forward " + where)

    rtol, atol = tolerance(dtype, c_out * kh * kw)
    out = to_device(nan_like(d.input_shape, dtype))
    assert backend.conv2d_backward_input(dg, dwt, input_shape=x.shape, out=out, **hp) is out
    assert_close(to_host(out), ref.conv2d_backward_input(g, wt, input_shape=x.shape, **hp), dtype, rtol=rtol,
                 atol=atol, err_msg="backward_input " + where)

    rtol, atol = tolerance(dtype, n * d.h_out * d.w_out)
    gw, gb = backend.conv2d_backward_weight(dx, dg, weight_shape=wt.shape, **hp)
    rgw, rgb = ref.conv2d_backward_weight(x, g, weight_shape=wt.shape, **hp)
    assert gw.dtype == gb.dtype == dtype
    assert_close(to_host(gw), rgw, dtype, rtol=rtol, atol=atol, err_msg="backward_weight " + where)
    assert_close(to_host(gb), rgb, dtype, rtol=rtol, atol=atol, err_msg="backward_bias " + where)




# MNIST CNN shapes (small batches; the benchmarks use 128), batch 1, odd sizes,
# kernel as large as the padded input (1x1 output), 1x1 kernels, wide channel counts.
CASES = {
    "lenet1": (3, 1, 28, 28, 6, 5, 5, 1, 0, 1),
    "lenet2": (4, 6, 12, 12, 16, 5, 5, 1, 0, 1),
    "keras1": (2, 1, 28, 28, 32, 3, 3, 1, 0, 1),
    "keras2": (2, 32, 13, 13, 64, 3, 3, 1, 0, 1),
    "batch1-odd": (1, 3, 7, 9, 5, 3, 2, 1, 1, 1),
    "kernel-is-input": (2, 3, 5, 6, 4, 5, 6, 1, 0, 1),
    "kernel-is-padded-input": (2, 2, 3, 4, 3, 5, 6, 1, 1, 1),
    "dilated-kernel-is-padded-input": (1, 2, 4, 4, 3, 3, 3, 2, 1, 2),
    "1x1": (3, 7, 5, 4, 9, 1, 1, 1, 0, 1),
    "1x1-stride2": (2, 4, 7, 7, 3, 1, 1, 2, 0, 1),
    "many-channels": (2, 20, 6, 6, 40, 3, 3, 1, 1, 1),
    "stride3-pad2": (2, 3, 10, 11, 4, 4, 3, 3, 2, 1),
}


def check_out_may_alias_an_input(backend, to_device=_same, to_host=_same):
    """The ``out=`` rule of every backend: an ``out`` that is an input gets the result as if computed aside.

    A 1x1 convolution with as many output as input channels has output, input and both gradients of one shape.
    """
    _, x, w, b, g = make_case(2, 3, 5, 4, 3, 1, 1, 1, 0, 1, np.float64, seed=11)
    expected = ref.conv2d(x, w, b)
    dx = to_device(x)
    assert backend.conv2d(dx, to_device(w), to_device(b), out=dx) is dx
    assert_close(to_host(dx), expected)
    expected = ref.conv2d_backward_input(g, w, input_shape=x.shape)
    dg = to_device(g)
    assert backend.conv2d_backward_input(dg, to_device(w), input_shape=x.shape, out=dg) is dg
    assert_close(to_host(dg), expected)
