"""conv2d and its backwards: the reference against a direct definition and finite
differences, the CPU kernels against the reference, bad input."""

from __future__ import annotations

import ctypes
import itertools
import mmap

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from jitgrad.kernels._validate import Conv2dDims
from jitgrad.kernels.cpu import _conv, _conv_weight
from tests.cases.conv import (
    CASES, HYPER, HYPER_IDS, check_backend, check_out_may_alias_an_input, make_case, tolerance,
)
from tests.helpers import DTYPES, assert_close, nan_like, numerical_grad, randn

BACKENDS = [pytest.param(ref, id="reference"), pytest.param(cpu, id="cpu")]


def guarded(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` that ends exactly where an inaccessible page begins.

    The CPU kernels read and write through raw pointers (no bounds checks),
    so a kernel that touches memory past the end of an argument must crash
    the test instead of silently reading garbage or corrupting the heap.
    """
    page = mmap.PAGESIZE
    size = (a.nbytes + page - 1) // page * page + page
    buf = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    if _LIBC.mprotect(ctypes.c_void_p(addr + size - page), ctypes.c_size_t(page), 0) != 0:
        pytest.skip("mprotect unavailable")
    out = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=size - page - a.nbytes).reshape(a.shape)
    out[...] = a
    return out


_LIBC = ctypes.CDLL(None, use_errno=True)


def direct_conv2d(x, w, b, stride, padding, dilation):
    """Float64 definition: one whole-array product per tap (independent of the reference's im2col)."""
    d = Conv2dDims.from_shapes(x.shape, w.shape, stride=stride, padding=padding, dilation=dilation)
    (sh, sw), (ph, pw), (dh, dw) = d.stride, d.padding, d.dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros(d.output_shape)
    for i in range(d.kh):
        for j in range(d.kw):
            patch = xp[:, :, i * dh: i * dh + (d.h_out - 1) * sh + 1: sh,
                       j * dw: j * dw + (d.w_out - 1) * sw + 1: sw]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j].astype(np.float64))
    if b is not None:
        y += b[None, :, None, None]
    return y


def check_all(*case, seed=0, bias=True):
    """Every CPU kernel against the reference (the shared case check, NumPy in and out)."""
    check_backend(cpu, *case, seed=seed, bias=bias)


# ---------------------------------------------------------------- the reference is the definition



@pytest.mark.parametrize("stride,padding,dilation", HYPER, ids=HYPER_IDS)
def test_reference_forward_is_the_definition(stride, padding, dilation):
    d, x, w, b, _ = make_case(2, 3, 9, 8, 4, 3, 2, stride, padding, dilation, np.float64)
    assert_close(ref.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation),
                 direct_conv2d(x, w, b, stride, padding, dilation))


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), ((2, 1), (1, 2), (2, 1)), (3, 2, 2)])
def test_reference_backwards_are_finite_differences(stride, padding, dilation):
    hp = dict(stride=stride, padding=padding, dilation=dilation)
    d, x, w, b, weights = make_case(2, 2, 7, 6, 3, 3, 2, stride, padding, dilation, np.float64, seed=5)

    def loss_x(xv):
        return float(np.sum(ref.conv2d(xv, w, b, **hp) * weights))

    def loss_w(wv):
        return float(np.sum(ref.conv2d(x, wv, b, **hp) * weights))

    def loss_b(bv):
        return float(np.sum(ref.conv2d(x, w, bv, **hp) * weights))

    gx_num = numerical_grad(loss_x, x)
    gw_num = numerical_grad(loss_w, w)
    gb_num = numerical_grad(loss_b, b)
    for backend in (ref, cpu):
        gx = backend.conv2d_backward_input(weights, w, input_shape=x.shape, **hp)
        gw, gb = backend.conv2d_backward_weight(x, weights, weight_shape=w.shape, **hp)
        assert_close(gx, gx_num, rtol=1e-6, atol=1e-7, err_msg=backend.__name__)
        assert_close(gw, gw_num, rtol=1e-6, atol=1e-7, err_msg=backend.__name__)
        assert_close(gb, gb_num, rtol=1e-6, atol=1e-7, err_msg=backend.__name__)


def test_reference_no_bias_and_out():
    _, x, w, _, _ = make_case(1, 2, 5, 5, 3, 3, 3, 1, 0, 1, np.float32)
    out = nan_like((1, 3, 3, 3), np.float32)
    assert ref.conv2d(x, w, out=out) is out
    assert_close(out, direct_conv2d(x, w, None, 1, 0, 1), np.float32)


# ---------------------------------------------------------------- cpu vs reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride,padding,dilation", HYPER, ids=HYPER_IDS)
def test_cpu_every_hyper_parameter_combination(stride, padding, dilation, dtype):
    check_all(2, 3, 11, 10, 5, 3, 3, stride, padding, dilation, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_cpu_fixed_cases(case, dtype):
    check_all(*case, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_without_bias(dtype):
    check_all(2, 3, 8, 8, 4, 3, 3, 1, 1, 1, dtype, bias=False)


@pytest.mark.parametrize("nthreads", [1, 2, 5, 64])
@pytest.mark.parametrize("n", [1, 3])
def test_cpu_task_split_any_thread_count(n, nthreads):
    # With fewer samples than threads a sample is split into pixel / channel / tap groups:
    # exercise splits other than this machine's thread count, with padding.
    hp = (1, 1, 1, 1, 1, 1)  # sh, sw, ph, pw, dh, dw
    d, x, w, b, g = make_case(n, 5, 9, 10, 20, 3, 3, 1, 1, 1, np.float64, seed=n)
    y = nan_like(d.output_shape, np.float64)
    _conv.conv2d_forward(x, w, b, True, *hp, y, nthreads, 0)
    assert_close(y, ref.conv2d(x, w, b, padding=1))
    gx = nan_like(d.input_shape, np.float64)
    _conv.conv2d_backward_input(g, w, *hp, gx, nthreads)
    assert_close(gx, ref.conv2d_backward_input(g, w, input_shape=x.shape, padding=1))
    rgw, rgb = ref.conv2d_backward_weight(x, g, weight_shape=w.shape, padding=1)
    gw = nan_like(d.weight_shape, np.float64)
    gb = nan_like((d.c_out,), np.float64)
    _conv_weight.conv2d_backward_weight(x, g, *hp, gw, gb, nthreads)
    assert_close(gw, rgw)
    assert_close(gb, rgb)
    gw = nan_like(d.weight_shape, np.float64)
    gb = nan_like((d.c_out,), np.float64)
    _conv_weight.conv2d_backward_weight_unit(x, g, *hp[2:], gw, gb, nthreads)
    assert_close(gw, rgw)
    assert_close(gb, rgb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [(3, 1, 9, 8, 6, 5, 5, (1, 2), 2), (2, 3, 7, 7, 9, 3, 3, (1, 0), (1, 2)),
                                  (2, 40, 5, 5, 3, 1, 1, 0, 1), (1, 2, 6, 9, 17, 3, 2, (0, 1), 1),
                                  (2, 64, 3, 3, 256, 3, 3, 1, 1)])
def test_cpu_weight_gradient_both_kernels(case, dtype):
    # Unit stride has two weight-gradient kernels (the dot kernel for at most
    # DOT_MAX_TAPS taps, the GEMM above); both must agree with the reference.
    # The last case has more partials than SERIAL_SUM_MAX: they are summed under prange.
    n, c_in, h, w, c_out, kh, kw, padding, dilation = case
    d, x, wt, _, g = make_case(n, c_in, h, w, c_out, kh, kw, 1, padding, dilation, dtype, seed=7)
    (ph, pw), (dh, dw) = d.padding, d.dilation
    rgw, rgb = ref.conv2d_backward_weight(x, g, weight_shape=wt.shape, padding=padding, dilation=dilation)
    rtol, atol = tolerance(dtype, n * d.h_out * d.w_out)
    for run in (lambda gw, gb: _conv_weight.conv2d_backward_weight(x, g, 1, 1, ph, pw, dh, dw, gw, gb, 2),
                lambda gw, gb: _conv_weight.conv2d_backward_weight_unit(x, g, ph, pw, dh, dw, gw, gb, 2)):
        gw = nan_like(d.weight_shape, dtype)
        gb = nan_like((d.c_out,), dtype)
        run(gw, gb)
        assert_close(gw, rgw, dtype, rtol=rtol, atol=atol)
        assert_close(gb, rgb, dtype, rtol=rtol, atol=atol)


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 12))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 12))
    n, c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 10))
    return (n, c_in, h, w, c_out, kh, kw, (sh, sw), (ph, pw), (dh, dw))


@settings(max_examples=40, deadline=None)
@given(case=conv_cases(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16), bias=st.booleans())
def test_cpu_matches_reference_hypothesis(case, dtype, seed, bias):
    n, c_in, h, w, c_out, kh, kw, s, p, d = case
    assume((h + 2 * p[0] - d[0] * (kh - 1) - 1) >= 0 and (w + 2 * p[1] - d[1] * (kw - 1) - 1) >= 0)
    check_all(*case, dtype, seed=seed, bias=bias)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CASES["lenet1"], CASES["keras1"], CASES["batch1-odd"], CASES["stride3-pad2"],
                                  CASES["kernel-is-padded-input"], (3, 2, 9, 7, 5, 3, 3, 1, 0, 2)],
                         ids=["lenet1", "keras1", "batch1-odd", "stride3-pad2", "kernel-is-padded-input", "dilated"])
def test_cpu_stays_inside_its_arrays(case, dtype):
    # Every argument ends at an inaccessible page: an access past its end crashes.
    n, c_in, h, w, c_out, kh, kw, s, p, dl = case
    hp = dict(stride=s, padding=p, dilation=dl)
    d, x, wt, b, g = make_case(n, c_in, h, w, c_out, kh, kw, s, p, dl, dtype, seed=11)
    x, wt, b, g = guarded(x), guarded(wt), guarded(b), guarded(g)
    for nthreads in (1, 2, 3):
        y = guarded(nan_like(d.output_shape, dtype))
        _conv.conv2d_forward(x, wt, b, True, *d.stride, *d.padding, *d.dilation, y, nthreads, 0)
        gx = guarded(nan_like(d.input_shape, dtype))
        _conv.conv2d_backward_input(g, wt, *d.stride, *d.padding, *d.dilation, gx, nthreads)
        gw, gb = guarded(nan_like(d.weight_shape, dtype)), guarded(nan_like((c_out,), dtype))
        _conv_weight.conv2d_backward_weight(x, g, *d.stride, *d.padding, *d.dilation, gw, gb, nthreads)
        if d.stride == (1, 1):
            gw2, gb2 = guarded(nan_like(d.weight_shape, dtype)), guarded(nan_like((c_out,), dtype))
            _conv_weight.conv2d_backward_weight_unit(x, g, *d.padding, *d.dilation, gw2, gb2, nthreads)
            assert_close(gw2, gw, dtype, rtol=1e-3, atol=1e-3)
        assert_close(y, ref.conv2d(x, wt, b, **hp), dtype, rtol=1e-3, atol=1e-3)
        assert_close(gx, ref.conv2d_backward_input(g, wt, input_shape=x.shape, **hp), dtype, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- bad input

X = np.ones((2, 3, 8, 8))
W = np.ones((4, 3, 3, 3))
G = np.ones((2, 4, 6, 6))


@pytest.mark.parametrize("backend", BACKENDS)
class TestBadInput:
    def test_wrong_dtype(self, backend):
        with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int32"):
            backend.conv2d(X.astype(np.int32), W)
        with pytest.raises(TypeError, match="grad_out must have dtype float32 or float64, got float16"):
            backend.conv2d_backward_input(G.astype(np.float16), W, input_shape=X.shape)

    def test_mixed_dtypes(self, backend):
        with pytest.raises(TypeError, match="w has dtype float32 but x has dtype float64"):
            backend.conv2d(X, W.astype(np.float32))
        with pytest.raises(TypeError, match="b has dtype float32 but x has dtype float64"):
            backend.conv2d(X, W, np.ones(4, dtype=np.float32))
        with pytest.raises(TypeError, match="w has dtype float32 but grad_out has dtype float64"):
            backend.conv2d_backward_input(G, W.astype(np.float32), input_shape=X.shape)
        with pytest.raises(TypeError, match="grad_out has dtype float32 but x has dtype float64"):
            backend.conv2d_backward_weight(X, G.astype(np.float32), weight_shape=W.shape)

    def test_non_contiguous(self, backend):
        with pytest.raises(ValueError, match="x must be C-contiguous"):
            backend.conv2d(np.ones((2, 3, 8, 16))[..., ::2], W)
        with pytest.raises(ValueError, match="grad_out must be C-contiguous"):
            backend.conv2d_backward_weight(X, np.ones((2, 4, 6, 12))[..., ::2], weight_shape=W.shape)

    def test_wrong_rank(self, backend):
        with pytest.raises(ValueError, match=r"x must be 4-D, got 3-D array of shape \(3, 8, 8\)"):
            backend.conv2d(X[0], W)
        with pytest.raises(ValueError, match="b must be 1-D, got 2-D"):
            backend.conv2d(X, W, np.ones((4, 1)))

    def test_channel_mismatch_names_both_counts(self, backend):
        with pytest.raises(ValueError, match="channel mismatch: x has 3 input channels .* but w expects 2"):
            backend.conv2d(X, np.ones((4, 2, 3, 3)))
        with pytest.raises(ValueError, match="input_shape has 5 input channels .* but w expects 3"):
            backend.conv2d_backward_input(G, W, input_shape=(2, 5, 8, 8))
        with pytest.raises(ValueError, match="x has 3 input channels .* but weight_shape expects 1"):
            backend.conv2d_backward_weight(X, G, weight_shape=(4, 1, 3, 3))

    @pytest.mark.parametrize("name,value,exc,message", [
        ("stride", 0, ValueError, r"stride must be >= 1, got 0"),
        ("stride", (1, 0), ValueError, r"stride must be >= 1, got \(1, 0\)"),
        ("stride", "2", TypeError, r"stride must be an int or a pair of ints, got '2'"),
        ("stride", (1, 2, 3), ValueError, r"stride must be an int or a pair of ints, got \(1, 2, 3\) \(3 values\)"),
        ("padding", -1, ValueError, r"padding must be >= 0, got -1"),
        ("padding", 1.5, TypeError, r"padding must be an int or a pair of ints, got 1.5"),
        ("dilation", 0, ValueError, r"dilation must be >= 1, got 0"),
    ])
    def test_bad_hyper_parameters(self, backend, name, value, exc, message):
        with pytest.raises(exc, match=message):
            backend.conv2d(X, W, **{name: value})
        with pytest.raises(exc, match=message):
            backend.conv2d_backward_input(G, W, input_shape=X.shape, **{name: value})
        with pytest.raises(exc, match=message):
            backend.conv2d_backward_weight(X, G, weight_shape=W.shape, **{name: value})

    def test_bool_is_not_an_int_even_after_a_valid_call(self, backend):
        # The sizes are memoised per hyper-parameters: True == 1 must not hit 1's entry.
        backend.conv2d(X, W, stride=1, padding=(1, 1))
        with pytest.raises(TypeError, match="stride must be an int or a pair of ints, got True"):
            backend.conv2d(X, W, stride=True)
        with pytest.raises(TypeError, match=r"padding must be an int or a pair of ints, got \(True, 1\)"):
            backend.conv2d(X, W, padding=(True, 1))

    def test_kernel_does_not_fit(self, backend):
        with pytest.raises(ValueError, match="kernel 9x9 .* does not fit input 8x8"):
            backend.conv2d(X, np.ones((4, 3, 9, 9)))
        with pytest.raises(ValueError, match="kernel 3x3 with dilation \\(5, 5\\) does not fit"):
            backend.conv2d(X, W, dilation=5)

    def test_bias_wrong_shape(self, backend):
        with pytest.raises(ValueError, match=r"b must have shape \(4,\), got \(3,\)"):
            backend.conv2d(X, W, np.ones(3))

    def test_out_wrong_shape(self, backend):
        with pytest.raises(ValueError, match=r"out must have shape \(2, 4, 6, 6\), got \(2, 4, 8, 8\)"):
            backend.conv2d(X, W, out=np.empty((2, 4, 8, 8)))
        with pytest.raises(ValueError, match=r"out must have shape \(2, 3, 8, 8\), got \(2, 3, 6, 6\)"):
            backend.conv2d_backward_input(G, W, input_shape=X.shape, out=np.empty((2, 3, 6, 6)))

    def test_out_wrong_dtype(self, backend):
        with pytest.raises(TypeError, match="out must have dtype float64, got float32"):
            backend.conv2d(X, W, out=np.empty((2, 4, 6, 6), dtype=np.float32))

    def test_grad_out_wrong_shape(self, backend):
        with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 4, 6, 6\), got \(2, 4, 5, 5\)"):
            backend.conv2d_backward_input(np.ones((2, 4, 5, 5)), W, input_shape=X.shape)
        with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 4, 6, 6\), got \(2, 5, 6, 6\)"):
            backend.conv2d_backward_weight(X, np.ones((2, 5, 6, 6)), weight_shape=W.shape)

    def test_bad_shape_tuples(self, backend):
        with pytest.raises(ValueError, match=r"input_shape must be a tuple of 4 ints, got \(3, 8, 8\)"):
            backend.conv2d_backward_input(G, W, input_shape=(3, 8, 8))
        with pytest.raises(TypeError, match="weight_shape must be a tuple of 4 ints, got 7"):
            backend.conv2d_backward_weight(X, G, weight_shape=7)
        with pytest.raises(ValueError, match="input_shape must have positive sizes"):
            backend.conv2d_backward_input(G, W, input_shape=(2, 3, 0, 8))


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_may_alias_an_input(backend):
    check_out_may_alias_an_input(backend)


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_windows_by_load_permute_and_gather(dtype):
    # window_tables sorts each vector of window offsets into one of four ways pack_windows fetches it:
    # consecutive elements, all lanes valid (2: one load), every second one (3: the even lanes of two
    # loads, or a gather where they would pass the source's end), within two vectors of its first element
    # (1: loads and a permute, a negative offset a zero lane), anything else (0: a gather). Every way
    # agrees with indexing, for several taps, in a source that ends at a guard page.
    import numba

    from jitgrad.kernels.cpu._conv_im2col import pack_windows, window_tables
    from jitgrad.kernels.cpu._gemm_simd import VEC_BYTES, data_pointer

    lanes = VEC_BYTES // np.dtype(dtype).itemsize
    runs = [np.arange(5, 5 + lanes), np.arange(0, 2 * lanes, 2)[::-1], np.arange(lanes) * 7,
            np.r_[-1, np.arange(1, lanes)], np.r_[np.arange(3, 2 + lanes), 4 + lanes],
            np.arange(4, 4 + 2 * lanes, 2), np.arange(5 * (lanes - 1), 7 * lanes - 6, 2)]
    offsets = np.concatenate(runs).astype(np.int32)
    start, perm, fits = window_tables(offsets, lanes)
    # (the last stride-2 run ends at the largest offset: with the last tap its two loads would pass the
    # source's end, so that tap takes the gather)
    assert list(fits) == [2, 1, 0, 1, 1, 3, 3]
    taps = np.array([0, 3, 11, 40], np.int32)
    src = guarded(randn((int(taps.max() + offsets.max()) + 1,), dtype, 3))

    @numba.njit
    def pack(src, taps, offsets, start, perm, fits, v, out):
        pack_windows(data_pointer(src), 0, src.size - 2 * out.shape[1], data_pointer(taps), taps.size,
                     data_pointer(offsets), start[v], data_pointer(perm), fits[v], v, data_pointer(out), 0,
                     out.shape[1])

    for v in range(len(runs)):
        out = nan_like((taps.size, lanes), dtype)
        pack(src, taps, offsets, start, perm, fits, v, out)
        off = offsets[v * lanes:(v + 1) * lanes]
        expected = np.where(off >= 0, src[np.add.outer(taps, np.maximum(off, 0))], 0)
        np.testing.assert_array_equal(out, expected)
