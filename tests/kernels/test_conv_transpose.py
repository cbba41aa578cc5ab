"""conv_transpose2d and its backwards: the reference against a direct scatter definition and
finite differences, the CPU kernels against the reference, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from tests.helpers import DTYPES, assert_close, nan_like, numerical_grad, randn

BACKENDS = [pytest.param(ref, id="reference"), pytest.param(cpu, id="cpu")]

# (n, c_in, h, w, c_out, kh, kw, stride, padding, output_padding, dilation, groups)
CASES = {
    "plain": (2, 3, 5, 4, 4, 3, 3, 1, 0, 0, 1, 1),
    "stride2-pad1-outpad1": (2, 4, 4, 5, 3, 3, 3, 2, 1, 1, 1, 1),
    "unet-up2x2": (1, 4, 3, 3, 2, 2, 2, 2, 0, 0, 1, 1),
    "asymmetric-dilated": (1, 2, 4, 3, 3, 3, 2, (2, 3), (1, 0), (1, 2), (2, 1), 1),
    "groups2": (2, 4, 4, 4, 6, 3, 3, 2, 1, 0, 1, 2),
    "depthwise": (2, 3, 5, 5, 3, 3, 3, 2, 1, 1, 1, 3),
}


def pair(v):
    return (v, v) if isinstance(v, int) else v


def make(case, dtype, seed=0):
    n, c_in, h, w, c_out, kh, kw, stride, padding, output_padding, dilation, groups = case
    hp = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    x = randn((n, c_in, h, w), dtype, seed)
    wt = randn((c_in, c_out // groups, kh, kw), dtype, seed + 1)
    b = randn((c_out,), dtype, seed + 2)
    return hp, x, wt, b


def direct(x, w, b, stride, padding, output_padding, dilation, groups):
    """Float64 definition: every input pixel scatters its weighted kernel into the (uncropped) output."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(pair, (stride, padding, output_padding, dilation))
    n, c_in, h, wd = x.shape
    _, cog, kh, kw = w.shape
    cig = c_in // groups
    h_out = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    w_out = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    full = np.zeros((n, cog * groups, h_out + 2 * ph + sh, w_out + 2 * pw + sw))
    for g in range(groups):
        xs = x[:, g * cig:(g + 1) * cig].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum("nchw,co->nohw", xs, w[g * cig:(g + 1) * cig, :, i, j].astype(np.float64))
                full[:, g * cog:(g + 1) * cog, i * dh:i * dh + (h - 1) * sh + 1:sh,
                     j * dw:j * dw + (wd - 1) * sw + 1:sw] += contrib
    y = full[:, :, ph:ph + h_out, pw:pw + w_out]
    return y + b[None, :, None, None] if b is not None else y


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_reference_forward_is_the_definition(case):
    hp, x, w, b = make(case, np.float64)
    assert_close(ref.conv_transpose2d(x, w, b, **hp), direct(x, w, b, **hp))


@pytest.mark.parametrize("case", [CASES["stride2-pad1-outpad1"], CASES["groups2"]], ids=["outpad", "groups"])
def test_reference_backwards_are_finite_differences(case):
    hp, x, w, b = make(case, np.float64)
    y = ref.conv_transpose2d(x, w, b, **hp)
    g = randn(y.shape, np.float64, 9)
    gx = ref.conv_transpose2d_backward_input(g, w, input_shape=x.shape, **hp)
    gw, gb = ref.conv_transpose2d_backward_weight(x, g, weight_shape=w.shape, **hp)
    assert_close(gx, numerical_grad(lambda v: float((ref.conv_transpose2d(v, w, b, **hp) * g).sum()), x),
                 rtol=1e-6, atol=1e-8)
    assert_close(gw, numerical_grad(lambda v: float((ref.conv_transpose2d(x, v, b, **hp) * g).sum()), w),
                 rtol=1e-6, atol=1e-8)
    assert_close(gb, g.sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_cpu_matches_reference(case, dtype):
    hp, x, w, b = make(case, dtype)
    tol = {} if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    y = ref.conv_transpose2d(x, w, b, **hp)
    out = nan_like(y.shape, dtype)
    assert cpu.conv_transpose2d(x, w, b, out=out, **hp) is out
    assert_close(out, y, dtype, **tol)
    assert_close(cpu.conv_transpose2d(x, w, **hp), ref.conv_transpose2d(x, w, **hp), dtype, **tol)
    g = randn(y.shape, dtype, 5)
    out = nan_like(x.shape, dtype)
    assert cpu.conv_transpose2d_backward_input(g, w, input_shape=x.shape, out=out, **hp) is out
    assert_close(out, ref.conv_transpose2d_backward_input(g, w, input_shape=x.shape, **hp), dtype, **tol)
    gw, gb = cpu.conv_transpose2d_backward_weight(x, g, weight_shape=w.shape, **hp)
    rw, rb = ref.conv_transpose2d_backward_weight(x, g, weight_shape=w.shape, **hp)
    assert gw.dtype == gb.dtype == dtype
    assert_close(gw, rw, dtype, **tol)
    assert_close(gb, rb, dtype, **tol)


@pytest.mark.parametrize("backend", BACKENDS)
class TestBadInput:
    X = np.ones((1, 4, 3, 3), np.float32)
    W = np.ones((4, 2, 3, 3), np.float32)

    def test_output_padding_not_smaller_than_stride(self, backend):
        with pytest.raises(ValueError, match=r"output_padding must be smaller than stride \(2, 2\), got "
                                             r"output_padding=2"):
            backend.conv_transpose2d(self.X, self.W, stride=2, output_padding=2)
        with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
            backend.conv_transpose2d(self.X, self.W, output_padding=(0, 1))
        with pytest.raises(ValueError, match="output_padding must be >= 0"):
            backend.conv_transpose2d(self.X, self.W, stride=2, output_padding=-1)

    def test_groups_not_dividing(self, backend):
        with pytest.raises(ValueError, match=r"groups=3 must divide the input channels \(4"):
            backend.conv_transpose2d(self.X, self.W, groups=3)
        with pytest.raises(TypeError, match="groups must be an int, got 2.0"):
            backend.conv_transpose2d(self.X, self.W, groups=2.0)

    def test_channel_mismatch(self, backend):
        with pytest.raises(ValueError, match=r"x has 4 input channels .* but w expects 3 .*\(C_in, C_out/groups"):
            backend.conv_transpose2d(self.X, np.ones((3, 2, 3, 3), np.float32))

    def test_shapes_and_dtypes(self, backend):
        with pytest.raises(ValueError, match=r"b must have shape \(2,\), got \(4,\)"):
            backend.conv_transpose2d(self.X, self.W, np.ones(4, np.float32))
        with pytest.raises(TypeError, match="w has dtype float64 but x has dtype float32"):
            backend.conv_transpose2d(self.X, self.W.astype(np.float64))
        with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 5, 5\)"):
            backend.conv_transpose2d_backward_input(np.ones((1, 2, 4, 4), np.float32), self.W,
                                                    input_shape=(1, 4, 3, 3))
        with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 5, 5\)"):
            backend.conv_transpose2d_backward_weight(self.X, np.ones((1, 2, 4, 4), np.float32),
                                                     weight_shape=(4, 2, 3, 3))
        with pytest.raises(ValueError, match="output would be"):
            backend.conv_transpose2d(np.ones((1, 4, 1, 1), np.float32), self.W, padding=2)
