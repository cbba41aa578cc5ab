"""Max and average pooling: CPU held to the reference, reference held to finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from tests.helpers import DTYPES, assert_close, numerical_grad, randn, tie_free

BACKENDS = [pytest.param(ref, id="reference"), pytest.param(cpu, id="cpu")]

# Every kernel size 1..3 x stride 1..3 x legal padding (<= k // 2) on an odd, non-square input.
COMBOS = [(k, s, p) for k, s in itertools.product((1, 2, 3), (1, 2, 3)) for p in range(k // 2 + 1)]

# Realistic and asymmetric cases: MNIST LeNet pool, stride None, pairs, leftovers that floor drops.
CASES = [
    ((2, 6, 24, 24), dict(kernel_size=2)),
    ((1, 1, 5, 5), dict(kernel_size=5)),
    ((2, 3, 8, 8), dict(kernel_size=3, stride=3)),
    ((1, 2, 7, 9), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    ((3, 1, 6, 5), dict(kernel_size=(3, 1), stride=(2, 1), padding=(1, 0))),
    ((1, 2, 9, 9), dict(kernel_size=4, stride=2, padding=2)),
]


def _check_max(shape, kw, dtype, seed=0):
    x = tie_free(shape, dtype, seed=seed)
    y, idx = cpu.max_pool2d(x, **kw)
    y_ref, idx_ref = ref.max_pool2d(x, **kw)
    assert y.dtype == dtype and idx.dtype == np.int32
    assert_close(y, y_ref, dtype)
    np.testing.assert_array_equal(idx, idx_ref)
    g = randn(y.shape, dtype, seed=seed + 1)
    assert_close(cpu.max_pool2d_backward(g, idx, input_shape=shape, **kw),
                 ref.max_pool2d_backward(g, idx_ref, input_shape=shape, **kw), dtype)


def _check_avg(shape, kw, count_include_pad, dtype, seed=0):
    x = randn(shape, dtype, seed=seed)
    y = cpu.avg_pool2d(x, count_include_pad=count_include_pad, **kw)
    assert y.dtype == dtype
    assert_close(y, ref.avg_pool2d(x, count_include_pad=count_include_pad, **kw), dtype)
    g = randn(y.shape, dtype, seed=seed + 1)
    assert_close(cpu.avg_pool2d_backward(g, input_shape=shape, count_include_pad=count_include_pad, **kw),
                 ref.avg_pool2d_backward(g, input_shape=shape, count_include_pad=count_include_pad, **kw), dtype)


# ----------------------------------------------------------------------------- cpu vs reference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,s,p", COMBOS)
def test_every_kernel_stride_padding(k, s, p, dtype):
    kw = dict(kernel_size=k, stride=s, padding=p)
    _check_max((1, 2, 7, 8), kw, dtype)
    _check_avg((1, 2, 7, 8), kw, True, dtype)
    _check_avg((1, 2, 7, 8), kw, False, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kw", CASES, ids=[str(c[1]) for c in CASES])
def test_cases(shape, kw, dtype):
    _check_max(shape, kw, dtype)
    _check_avg(shape, kw, True, dtype)
    _check_avg(shape, kw, False, dtype)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       data=st.data(), dtype=st.sampled_from(DTYPES))
def test_random_shapes(n, c, h, w, kh, kw, sh, sw, data, dtype):
    kh, kw = min(kh, h), min(kw, w)
    padding = (data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2)))
    kwargs = dict(kernel_size=(kh, kw), stride=(sh, sw), padding=padding)
    _check_max((n, c, h, w), kwargs, dtype)
    _check_avg((n, c, h, w), kwargs, data.draw(st.booleans()), dtype)


# ----------------------------------------------------------------------------- semantics

@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_ties_pick_first_in_row_major_order(backend):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 0] = x[0, 0, 1, 1] = 5.0  # a tie in the first window's second row
    y, idx = backend.max_pool2d(x, kernel_size=2)
    np.testing.assert_array_equal(idx[0, 0], [[4, 2], [8, 10]])  # all-zero windows: their first element
    assert_close(y[0, 0], np.array([[5.0, 0.0], [0.0, 0.0]]))
    _, idx = backend.max_pool2d(np.ones((1, 1, 3, 3)), kernel_size=3, stride=1, padding=1)
    np.testing.assert_array_equal(idx[0, 0], [[0, 0, 1], [0, 0, 1], [3, 3, 4]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_padding_is_never_chosen(backend):
    x = -1.0 - tie_free((1, 1, 3, 3), np.float64)  # all negative: zero padding would win
    y, idx = backend.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    assert (y < -0.4).all()
    assert_close(y.ravel(), x.ravel()[idx.ravel()])


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_propagates_nan(backend):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    y, idx = backend.max_pool2d(x, kernel_size=2)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 1
    assert_close(y[0, 0].ravel()[1:], np.array([7.0, 13.0, 15.0]))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2), dict(kernel_size=2, padding=1)],
                         ids=["unpadded", "overlapping", "padded"])
def test_max_pool_nan_in_one_plane_and_relu_ties_match_reference(kw):
    # The CPU kernel picks its path per plane (NaN-aware or not; unpadded corner table or
    # clipped windows): one NaN plane among clean ones, and ReLU zeros (many tied windows).
    x = np.maximum(randn((2, 3, 9, 9), np.float32), 0)
    x[1, 2, 4, 3] = np.nan
    y, idx = cpu.max_pool2d(x, **kw)
    y_ref, idx_ref = ref.max_pool2d(x, **kw)
    np.testing.assert_array_equal(y, y_ref)  # NaN where the reference has NaN
    np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 9, 7), (1, 2, 2, 2), (1, 1, 5, 2)], ids=str)
def test_max_pool_pairs_path_matches_reference(shape):
    """The 2 x 2, stride-2 path of CPUs without gathers (``_max_pool2d_plane_pairs``: SSE, NEON), run
    here on any CPU: even and odd sizes (a last row or column no window reads) and ReLU ties."""
    from numba import njit

    from jitgrad.kernels.cpu import pooling

    @njit(cache=False)
    def pool(x, w, h_out, w_out, y, argmax):
        v = np.empty(2 * h_out * w_out, x.dtype)
        vi = np.empty(2 * h_out * w_out, argmax.dtype)
        for p in range(x.shape[0]):
            pooling._max_pool2d_plane_pairs(x, p, w, h_out, w_out, y, argmax, v, vi)

    n, c, h, w = shape
    x = np.maximum(randn(shape, np.float32), 0)  # zeros: tied windows
    x[0, 0, 0, :2] = 1.0  # a tie across a window's row
    x[0, 0, 1, 0] = 1.0  # ... and down its column
    y = np.empty((n * c, (h // 2) * (w // 2)), np.float32)
    idx = np.empty(y.shape, np.int32)
    pool(x.reshape(n * c, h * w), w, h // 2, w // 2, y, idx)
    y_ref, idx_ref = ref.max_pool2d(x, kernel_size=2)
    np.testing.assert_array_equal(y.reshape(y_ref.shape), y_ref)
    np.testing.assert_array_equal(idx.reshape(idx_ref.shape), idx_ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_backward_sums_overlapping_windows(backend):
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0  # the centre is the maximum of all four 2x2 windows
    y, idx = backend.max_pool2d(x, kernel_size=2, stride=1)
    grad = backend.max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), idx, input_shape=x.shape,
                                       kernel_size=2, stride=1)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 10.0
    assert_close(grad, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_avg_pool_count_include_pad_by_hand(backend):
    x = np.ones((1, 1, 2, 2))
    assert_close(backend.avg_pool2d(x, kernel_size=3, stride=1, padding=1), np.full((1, 1, 2, 2), 4 / 9))
    assert_close(backend.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False),
                 np.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("pool", ["max", "avg_pad", "avg_nopad"])
def test_reference_backward_matches_finite_differences(pool):
    shape = (1, 2, 5, 4)
    kw = dict(kernel_size=3, stride=(2, 1), padding=1)
    x = tie_free(shape, np.float64, seed=9) * 10  # gaps between values >> eps: argmax never flips
    if pool == "max":
        y, idx = ref.max_pool2d(x, **kw)
        weight = randn(y.shape, np.float64, seed=10)
        expected = numerical_grad(lambda v: float(np.sum(ref.max_pool2d(v, **kw)[0] * weight)), x)
        actual = ref.max_pool2d_backward(weight, idx, input_shape=shape, **kw)
    else:
        cip = pool == "avg_pad"
        y = ref.avg_pool2d(x, count_include_pad=cip, **kw)
        weight = randn(y.shape, np.float64, seed=10)
        expected = numerical_grad(
            lambda v: float(np.sum(ref.avg_pool2d(v, count_include_pad=cip, **kw) * weight)), x)
        actual = ref.avg_pool2d_backward(weight, input_shape=shape, count_include_pad=cip, **kw)
    assert_close(actual, expected, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input(backend):
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match="x must be 4-D, got 3-D"):
        backend.max_pool2d(np.zeros((2, 4, 4)), kernel_size=2)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int64"):
        backend.avg_pool2d(np.zeros((1, 1, 4, 4), np.int64), kernel_size=2)
    with pytest.raises(ValueError, match="padding must be at most half of kernel_size"):
        backend.max_pool2d(x, kernel_size=2, padding=2)
    with pytest.raises(ValueError, match="does not fit input 4x4"):
        backend.avg_pool2d(x, kernel_size=5)
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        backend.max_pool2d(x, kernel_size=2, stride=0)
    with pytest.raises(TypeError, match="count_include_pad must be a bool, got 1"):
        backend.avg_pool2d(x, kernel_size=2, count_include_pad=1)

    y, idx = backend.max_pool2d(x, kernel_size=2)
    with pytest.raises(TypeError, match="argmax must have dtype int32, got int64"):
        backend.max_pool2d_backward(y, idx.astype(np.int64), input_shape=x.shape, kernel_size=2)
    with pytest.raises(ValueError, match=r"argmax must have shape \(1, 2, 2, 2\), got \(1, 2, 2, 1\)"):
        backend.max_pool2d_backward(y, idx[..., :1].copy(), input_shape=x.shape, kernel_size=2)
    with pytest.raises(ValueError, match=r"input_shape must be a tuple of 4 ints, got \(2, 4, 4\)"):
        backend.max_pool2d_backward(y, idx, input_shape=(2, 4, 4), kernel_size=2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 3, 2, 2\), got \(1, 2, 2, 2\): "
                                         r"the pooled shape of input_shape \(1, 3, 4, 4\)"):
        backend.max_pool2d_backward(y, idx, input_shape=(1, 3, 4, 4), kernel_size=2)
    # The geometry is checked against grad_out, not trusted: the forward's was kernel_size=2.
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 3, 3\), got \(1, 2, 2, 2\): "
                                         r"the pooled shape of input_shape \(1, 2, 4, 4\) for kernel_size "
                                         r"\(2, 2\), stride \(1, 1\), padding \(0, 0\)"):
        backend.max_pool2d_backward(y, idx, input_shape=x.shape, kernel_size=2, stride=1)
    with pytest.raises(ValueError, match="padding must be at most half of kernel_size"):
        backend.max_pool2d_backward(y, idx, input_shape=x.shape, kernel_size=2, padding=2)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'kernel_size'"):
        backend.max_pool2d_backward(y, idx, input_shape=x.shape)
    bad = idx.copy()
    bad[0, 1, 1, 1] = 16
    with pytest.raises(ValueError, match=r"argmax must hold flat indices in \[0, H\*W\) = \[0, 16\), got 16"):
        backend.max_pool2d_backward(y, bad, input_shape=x.shape, kernel_size=2)
    bad[0, 1, 1, 1] = -3
    with pytest.raises(ValueError, match=r"got -3"):
        backend.max_pool2d_backward(y, bad, input_shape=x.shape, kernel_size=2)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 2, 2, 2\), got \(1, 2, 3, 3\)"):
        backend.avg_pool2d_backward(np.zeros((1, 2, 3, 3)), input_shape=x.shape, kernel_size=2)
    with pytest.raises(TypeError, match="grad_out must have dtype float32 or float64, got int32"):
        backend.avg_pool2d_backward(idx, input_shape=x.shape, kernel_size=2)
