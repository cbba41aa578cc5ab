"""Grouped and depthwise conv2d (``groups``): the reference against per-group dense convolutions,
the CPU kernels (grouped path and direct depthwise path) against the reference, bad ``groups``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from jitgrad.kernels._validate import Conv2dDims
from tests.helpers import DTYPES, assert_close, nan_like, randn

BACKENDS = [pytest.param(ref, id="reference"), pytest.param(cpu, id="cpu")]

# (n, c_in, h, w, c_out, kh, kw, stride, padding, dilation, groups)
CASES = {
    "groups2": (2, 4, 7, 6, 6, 3, 3, 1, 1, 1, 2),
    "groups3-stride2": (1, 6, 9, 8, 3, 3, 2, 2, (1, 0), 1, 3),
    "depthwise": (2, 5, 8, 9, 5, 3, 3, 1, 1, 1, 5),
    "depthwise-batch1": (1, 3, 6, 6, 3, 3, 3, 1, 1, 1, 3),
    "depthwise-multiplier2": (2, 3, 7, 7, 6, 3, 3, 1, 1, 1, 3),
    "depthwise-stride2-dilation2": (2, 4, 11, 10, 4, 3, 3, 2, 2, 2, 4),
    "depthwise-asymmetric": (1, 2, 9, 7, 4, 5, 3, (2, 1), (1, 2), (1, 2), 2),
    "depthwise-no-padding-5x5": (3, 3, 9, 9, 3, 5, 5, (1, 3), 0, 1, 3),
    "depthwise-padding-past-the-kernel": (2, 2, 4, 5, 2, 3, 3, 1, (3, 1), 1, 2),
}


def make(case, dtype, seed=0):
    n, c_in, h, w, c_out, kh, kw, stride, padding, dilation, groups = case
    d = Conv2dDims.from_shapes((n, c_in, h, w), (c_out, c_in // groups, kh, kw), stride=stride, padding=padding,
                               dilation=dilation, groups=groups)
    hp = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return (d, hp, randn(d.input_shape, dtype, seed), randn(d.weight_shape, dtype, seed + 1),
            randn((c_out,), dtype, seed + 2), randn(d.output_shape, dtype, seed + 3))


def per_group(fn, case):
    """The reference's grouped result rebuilt from ``groups`` dense reference calls on channel slices."""
    d, hp, x, w, b, g = make(case, np.float64)
    dense = {k: v for k, v in hp.items() if k != "groups"}
    G, ci, co = d.groups, d.c_in // d.groups, d.c_out // d.groups
    if fn == "forward":
        return np.concatenate([ref.conv2d(np.ascontiguousarray(x[:, k * ci:(k + 1) * ci]), w[k * co:(k + 1) * co],
                                          b[k * co:(k + 1) * co], **dense) for k in range(G)], axis=1)
    if fn == "input":
        return np.concatenate([ref.conv2d_backward_input(np.ascontiguousarray(g[:, k * co:(k + 1) * co]),
                                                         w[k * co:(k + 1) * co],
                                                         input_shape=(d.n, ci, d.h, d.w), **dense)
                               for k in range(G)], axis=1)
    parts = [ref.conv2d_backward_weight(np.ascontiguousarray(x[:, k * ci:(k + 1) * ci]),
                                        np.ascontiguousarray(g[:, k * co:(k + 1) * co]),
                                        weight_shape=(co, ci, d.kh, d.kw), **dense) for k in range(G)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_reference_is_one_dense_convolution_per_group(case):
    d, hp, x, w, b, g = make(case, np.float64)
    assert_close(ref.conv2d(x, w, b, **hp), per_group("forward", case))
    assert_close(ref.conv2d_backward_input(g, w, input_shape=x.shape, **hp), per_group("input", case))
    gw, gb = ref.conv2d_backward_weight(x, g, weight_shape=w.shape, **hp)
    rw, rb = per_group("weight", case)
    assert_close(gw, rw)
    assert_close(gb, rb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_cpu_matches_reference(case, dtype):
    d, hp, x, w, b, g = make(case, dtype)
    tol = {} if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    out = nan_like(d.output_shape, dtype)
    assert cpu.conv2d(x, w, b, out=out, **hp) is out
    assert_close(out, ref.conv2d(x, w, b, **hp), dtype, **tol)
    assert_close(cpu.conv2d(x, w, **hp), ref.conv2d(x, w, **hp), dtype, **tol)
    out = nan_like(d.input_shape, dtype)
    assert cpu.conv2d_backward_input(g, w, input_shape=x.shape, out=out, **hp) is out
    assert_close(out, ref.conv2d_backward_input(g, w, input_shape=x.shape, **hp), dtype, **tol)
    gw, gb = cpu.conv2d_backward_weight(x, g, weight_shape=w.shape, **hp)
    rw, rb = ref.conv2d_backward_weight(x, g, weight_shape=w.shape, **hp)
    assert gw.dtype == gb.dtype == dtype
    assert_close(gw, rw, dtype, **tol)
    assert_close(gb, rb, dtype, **tol)


def test_cpu_depthwise_propagates_nan_and_inf():
    x = randn((1, 2, 5, 5), np.float64, 3)
    x[0, 1, 2, 2] = np.nan
    x[0, 0, 0, 0] = np.inf
    w = randn((2, 1, 3, 3), np.float64, 4)
    expected = ref.conv2d(x, w, padding=1, groups=2)
    np.testing.assert_array_equal(np.isnan(cpu.conv2d(x, w, padding=1, groups=2)), np.isnan(expected))


@pytest.mark.parametrize("backend", BACKENDS)
class TestBadGroups:
    def test_groups_not_dividing_channels(self, backend):
        x = np.ones((1, 4, 5, 5), np.float32)
        with pytest.raises(ValueError, match=r"groups=3 must divide both the input channels \(4"):
            backend.conv2d(x, np.ones((3, 1, 3, 3), np.float32), groups=3)
        with pytest.raises(ValueError, match=r"groups=2 must divide .* output channels \(3"):
            backend.conv2d(x, np.ones((3, 2, 3, 3), np.float32), groups=2)
        with pytest.raises(ValueError, match=r"groups=3 must divide"):
            backend.conv2d_backward_input(np.ones((1, 3, 3, 3), np.float32), np.ones((3, 1, 3, 3), np.float32),
                                          input_shape=(1, 4, 5, 5), groups=3)
        with pytest.raises(ValueError, match=r"groups=3 must divide"):
            backend.conv2d_backward_weight(x, np.ones((1, 3, 3, 3), np.float32), weight_shape=(3, 1, 3, 3),
                                           groups=3)

    def test_weight_channels_per_group(self, backend):
        x = np.ones((1, 4, 5, 5), np.float32)
        with pytest.raises(ValueError, match=r"x has 4 input channels .*\(2 per group with groups=2\) "
                                             r"but w expects 4"):
            backend.conv2d(x, np.ones((2, 4, 3, 3), np.float32), groups=2)

    @pytest.mark.parametrize("value,exc,message", [(0, ValueError, "groups must be >= 1, got 0"),
                                                   (1.5, TypeError, "groups must be an int, got 1.5"),
                                                   (True, TypeError, "groups must be an int, got True")])
    def test_bad_groups_value(self, backend, value, exc, message):
        with pytest.raises(exc, match=message):
            backend.conv2d(np.ones((1, 2, 5, 5)), np.ones((2, 1, 3, 3)), groups=value)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), groups=st.integers(1, 4), c_in_g=st.integers(1, 2), mult=st.integers(1, 2),
       h=st.integers(3, 9), w=st.integers(3, 9), k=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.integers(0, 2), dilation=st.integers(1, 2), seed=st.integers(0, 2 ** 16))
def test_cpu_matches_reference_hypothesis(n, groups, c_in_g, mult, h, w, k, stride, padding, dilation, seed):
    assume((h + 2 * padding - dilation * (k - 1) - 1) >= 0 and (w + 2 * padding - dilation * (k - 1) - 1) >= 0)
    case = (n, groups * c_in_g, h, w, groups * mult, k, k, stride, padding, dilation, groups)
    d, hp, x, wt, b, g = make(case, np.float64, seed)
    assert_close(cpu.conv2d(x, wt, b, **hp), ref.conv2d(x, wt, b, **hp))
    assert_close(cpu.conv2d_backward_input(g, wt, input_shape=x.shape, **hp),
                 ref.conv2d_backward_input(g, wt, input_shape=x.shape, **hp))
    for got, want in zip(cpu.conv2d_backward_weight(x, g, weight_shape=wt.shape, **hp),
                         ref.conv2d_backward_weight(x, g, weight_shape=wt.shape, **hp)):
        assert_close(got, want)
