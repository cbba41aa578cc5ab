"""Fused kernels (linear, conv2d_activation, bias_activation_backward): the CPU kernels against the
reference, bit-equality with the unfused kernels, NaN semantics, ``out=``, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from tests.cases.fused import ACTIVATIONS, CONV_CASES, LINEAR_CASES
from tests.helpers import DTYPES, assert_close, nan_like, randn

BACKENDS = [pytest.param(ref, id="reference"), pytest.param(cpu, id="cpu")]


def unfused_linear(kernels, x, w, b, activation):
    y = kernels.matmul(x, w, trans_b=True)
    if b is not None:
        y = y + b
    return kernels.relu(y) if activation == "relu" else y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("n, k, m", LINEAR_CASES)
def test_linear_matches_reference_and_equals_unfused(n, k, m, with_bias, activation, dtype):
    x, w = randn((n, k), dtype, 1), randn((m, k), dtype, 2)
    b = randn((m,), dtype, 3) if with_bias else None
    out = nan_like((n, m), dtype)
    got = cpu.linear(x, w, b, activation=activation, out=out)
    assert got is out
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_close(got, ref.linear(x, w, b, activation=activation), rtol=tol, atol=tol * np.sqrt(k))
    # The epilogue is the unfused arithmetic in the same order: equal bits.
    np.testing.assert_array_equal(got, unfused_linear(cpu, x, w, b, activation))
    if activation == "relu":
        assert (got >= 0).all() and (got == 0).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("xs, ws, hyper", CONV_CASES)
def test_conv2d_activation_matches_reference_and_equals_unfused(xs, ws, hyper, activation, dtype):
    x, w, b = randn(xs, dtype, 4), randn(ws, dtype, 5), randn((ws[0],), dtype, 6)
    got = cpu.conv2d_activation(x, w, b, activation=activation, **hyper)
    assert_close(got, ref.conv2d_activation(x, w, b, activation=activation, **hyper))
    unfused = cpu.conv2d(x, w, b, **hyper)
    np.testing.assert_array_equal(got, cpu.relu(unfused) if activation == "relu" else unfused)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_epilogue_propagates_nan_and_inf_as_relu(backend):
    x, w = randn((9, 40), np.float32, 7), randn((50, 40), np.float32, 8)
    x[2, 3] = np.nan
    x[4, :] = np.inf
    w[0, :] = 1.0  # row 4, column 0: +inf; other columns of row 4 mix +inf and -inf into NaN
    got = backend.linear(x, w, None, activation="relu")
    expected = ref.relu(ref.matmul(x, w, trans_b=True))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[2]).all() and got[4, 0] == np.inf
    finite = np.isfinite(expected)
    assert_close(got[finite], expected[finite])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_bias_activation_backward(backend, shape, activation):
    g, z = randn(shape, np.float64, 9), randn(shape, np.float64, 10)
    g.reshape(-1)[1] = np.nan
    z.reshape(-1)[2] = np.nan
    y = ref.relu(z) if activation == "relu" else z
    grad_pre, grad_bias = backend.bias_activation_backward(g, y, activation=activation)
    expected = ref.relu_backward(g, z) if activation == "relu" else g  # the mask of the pre-activation
    np.testing.assert_array_equal(np.isnan(grad_pre), np.isnan(expected))
    assert_close(np.nan_to_num(grad_pre), np.nan_to_num(expected))
    axes = (0,) + tuple(range(2, len(shape)))
    assert_close(np.nan_to_num(grad_bias, nan=7.0), np.nan_to_num(expected.sum(axis=axes), nan=7.0))


def test_bias_activation_backward_float32_matches_reference():
    g, y = randn((33, 70), np.float32, 11), np.maximum(randn((33, 70), np.float32, 12), 0)
    for got, want in zip(cpu.bias_activation_backward(g, y), ref.bias_activation_backward(g, y)):
        assert got.dtype == np.float32
        assert_close(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_fast_path_leaves_what_it_cannot_check_to_the_full_checks(dtype):
    # With the serial GEMM's entry point in place (matmul.fast_product), linear's sizes, layouts,
    # overlaps and bias length are checked in the compiled kernel: the same bits as the unfused
    # kernels on every case, and every bad or unusual argument goes to the full checks.
    from jitgrad.kernels.cpu import _gemm

    _gemm.serial_entry(np.dtype(dtype))
    for (n, k, m), activation, with_bias in zip(LINEAR_CASES + [(4, 0, 3), (40, 9, 7)], ["relu", "none"] * 4,
                                                 [True, True, False, True, False, True, True]):
        x, w = randn((n, k), dtype, 1), randn((m, k), dtype, 2)
        b = randn((m,), dtype, 3) if with_bias else None
        np.testing.assert_array_equal(cpu.linear(x, w, b, activation=activation),
                                      unfused_linear(cpu, x, w, b, activation))
    x, w, b = randn((40, 9), dtype, 4), randn((7, 9), dtype, 5), randn((7,), dtype, 6)
    expected = ref.linear(x, w, b, activation="relu")
    with pytest.raises(ValueError, match=r"b must have shape \(7,\), got \(8,\)"):
        cpu.linear(x, w, randn((8,), dtype, 6))
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.linear(x, w, randn((14,), dtype, 6)[::2])
    readonly = np.empty((40, 7), dtype)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        cpu.linear(x, w, b, out=readonly)
    buf = nan_like(40 * 7 + 7, dtype)  # the bias inside out's memory: a temporary first
    out, bias_view = buf[:280].reshape(40, 7), buf[273:280]
    bias_view[...] = b
    assert cpu.linear(x, w, bias_view, activation="relu", out=out) is out
    assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_fused_out_may_overlap_an_input():
    x = randn((6, 6), np.float64, 13)
    w, b = randn((6, 6), np.float64, 14), randn((6,), np.float64, 15)
    expected = ref.linear(x, w, b, activation="relu")
    assert cpu.linear(x, w, b, activation="relu", out=x) is x
    assert_close(x, expected)


def test_empty_inputs():
    b = randn((3,), np.float32, 16)
    y = cpu.linear(np.ones((4, 0), np.float32), np.ones((3, 0), np.float32), b, activation="relu")
    np.testing.assert_array_equal(y, np.broadcast_to(np.maximum(b, 0), (4, 3)))
    y = cpu.conv2d_activation(np.ones((0, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32), b,
                              activation="relu")
    assert y.shape == (0, 3, 3, 3)
    grad_pre, grad_bias = cpu.bias_activation_backward(np.ones((0, 3), np.float32), np.ones((0, 3), np.float32))
    assert grad_pre.shape == (0, 3) and (grad_bias == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input(backend):
    x, w = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"activation must be one of \('none', 'relu'\), got 'tanh'"):
        backend.linear(x, w, activation="tanh")
    with pytest.raises(TypeError, match="activation must be one of .* got NoneType None"):
        backend.linear(x, w, activation=None)
    with pytest.raises(ValueError, match=r"linear: x is \(N, in\) = \(2, 3\) but w is \(out, in\) = \(4, 2\)"):
        backend.linear(x, np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"b must have shape \(4,\), got \(3,\)"):
        backend.linear(x, w, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="w has dtype float64 but x has dtype float32"):
        backend.linear(x, np.ones((4, 3)))
    with pytest.raises(ValueError, match="activation must be one of"):
        backend.conv2d_activation(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), activation="sigmoid")
    with pytest.raises(ValueError, match="y must have at least 2 dimensions"):
        backend.bias_activation_backward(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 3\)"):
        backend.bias_activation_backward(np.ones((3, 2)), np.ones((2, 3)))
