"""Activations: CPU kernels held to the NumPy reference, the reference held to finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from jitgrad.kernels.reference.activations import _erf
from tests.helpers import DTYPES, assert_close, numerical_grad, randn, recompiled

# (name, hyper-parameters): every activation, and each non-default setting that takes another code path.
CASES = [
    ("relu", {}),
    ("leaky_relu", {}),
    ("leaky_relu", {"negative_slope": 0.2}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("elu", {}),
    ("elu", {"alpha": 0.5}),
    ("softplus", {}),
    ("softplus", {"beta": 2.0, "threshold": 3.0}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in kw.items()) for name, kw in CASES]

# Rank 0 to 4, odd sizes, and one odd-length array big enough to split across threads.
SHAPES = [(), (1,), (7,), (3, 5, 4), (1, 3, 17, 9), (20001,)]


def _inputs(shape, dtype, seed=0):
    # scale 3 reaches the saturated and linear regions (softplus threshold 3 with beta 2).
    return randn(shape, dtype, seed=seed, scale=3.0), randn(shape, dtype, seed=seed + 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_cpu_matches_reference(name, kw, shape, dtype):
    x, g = _inputs(shape, dtype)
    y = getattr(cpu, name)(x, **kw)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert_close(y, getattr(ref, name)(x, **kw), dtype)
    gx = getattr(cpu, name + "_backward")(g, x, **kw)
    assert gx.dtype == x.dtype and gx.shape == x.shape
    assert_close(gx, getattr(ref, name + "_backward")(g, x, **kw), dtype)


@pytest.mark.parametrize("threshold", [1, 1 << 62], ids=["parallel", "serial"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_parallel_and_serial_twins_match_reference(monkeypatch, name, kw, threshold, dtype):
    # Each kernel picks a parallel or a serial twin by size: force each on an odd, splittable size,
    # and count the parallel launches.
    from jitgrad.kernels.cpu import activations
    from jitgrad.kernels.cpu._activation_calls import Twins

    launches = []
    patched = set()
    for twins in vars(activations).values():
        # Once each: without the AVX-512 tables, _TANH_F32 is _TANH under a second name.
        if isinstance(twins, Twins) and id(twins) not in patched:
            patched.add(id(twins))
            monkeypatch.setattr(twins, "min_size", threshold)
            monkeypatch.setattr(twins, "team_min", 1 << 62)  # the team's spans: test_team_spans.py
            monkeypatch.setattr(twins, "parallel", lambda *args, _kernel=twins.parallel: (
                launches.append(_kernel), _kernel(*args))[1])
    x, g = _inputs((2001,), dtype)
    x[::7] = 0  # the gradient at 0 is 0 on both paths
    y, gx = getattr(cpu, name)(x, **kw), getattr(cpu, name + "_backward")(g, x, **kw)
    if name == "relu":
        np.testing.assert_array_equal(y, ref.relu(x))
        np.testing.assert_array_equal(gx, ref.relu_backward(g, x))
    assert_close(y, getattr(ref, name)(x, **kw), dtype)
    assert_close(gx, getattr(ref, name + "_backward")(g, x, **kw), dtype)
    assert len(launches) == (2 if threshold == 1 else 0)


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), case=st.sampled_from(CASES),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 1000))
def test_cpu_matches_reference_random_shapes(shape, case, dtype, seed):
    name, kw = case
    x, g = _inputs(tuple(shape), dtype, seed)
    assert_close(getattr(cpu, name)(x, **kw), getattr(ref, name)(x, **kw), dtype)
    assert_close(getattr(cpu, name + "_backward")(g, x, **kw), getattr(ref, name + "_backward")(g, x, **kw), dtype)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_reference_backward_matches_finite_differences(name, kw):
    x = randn((3, 4), np.float64, seed=3, scale=2.0)
    # Keep away from the kinks of relu / leaky_relu / elu (at 0) and softplus (at the threshold).
    x = np.where(np.abs(x) < 0.1, 0.5, x)
    if name == "softplus" and "threshold" in kw:
        x = np.where(np.abs(2.0 * x - 3.0) < 0.1, 0.2, x)
    weight = randn(x.shape, np.float64, seed=4)
    forward = getattr(ref, name)
    expected = numerical_grad(lambda v: float(np.sum(forward(v, **kw) * weight)), x)
    assert_close(getattr(ref, name + "_backward")(weight, x, **kw), expected, rtol=1e-6, atol=1e-8)


def test_reference_erf_matches_math_erf():
    x = np.concatenate([np.linspace(-7.0, 7.0, 2801), [0.0, -0.0, 1.9999999, 2.0, -2.0, 40.0, -np.inf, np.inf]])
    assert_close(_erf(x), np.array([math.erf(v) for v in x]), rtol=0, atol=3e-15)


@pytest.mark.parametrize("backend", [ref, cpu], ids=["reference", "cpu"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_known_values_and_extremes(backend, dtype):
    x = np.array([-1000.0, -2.0, 0.0, 2.0, 1000.0], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # stable: no overflow, no 0/0
        assert_close(backend.relu(x), np.array([0, 0, 0, 2, 1000], dtype))
        assert_close(backend.relu_backward(np.ones_like(x), x), np.array([0, 0, 0, 1, 1], dtype))
        assert_close(backend.leaky_relu(x, 0.1), np.array([-100, -0.2, 0, 2, 1000], dtype))
        assert_close(backend.sigmoid(x), np.array([0, 1 / (1 + math.e ** 2), 0.5, 1 / (1 + math.e ** -2), 1], dtype))
        assert_close(backend.sigmoid_backward(np.ones_like(x), x)[[0, 2, 4]], np.array([0, 0.25, 0], dtype))
        assert_close(backend.elu(x)[:3], np.array([-1, math.expm1(-2), 0], dtype))
        # softplus is linear past the threshold and exactly log 2 at 0.
        assert_close(backend.softplus(x)[2:], np.array([math.log(2), math.log1p(math.e ** 2), 1000], dtype))
        assert_close(backend.gelu(x)[[0, 2, 4]], np.array([0, 0, 1000], dtype))
        assert_close(backend.gelu(x, approximate="tanh")[[0, 2, 4]], np.array([0, 0, 1000], dtype))
        assert_close(backend.tanh(x)[[0, 2, 4]], np.array([-1, 0, 1], dtype))


def test_gelu_exact_value():
    # GELU(1) = Phi(1) = 0.5 (1 + erf(1/sqrt 2)) = 0.8413447460685429...
    for backend in (ref, cpu):
        assert_close(backend.gelu(np.array([1.0, -1.0])), np.array([0.8413447460685429, -0.15865525393145707]))


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("backend", [ref, cpu], ids=["reference", "cpu"])
def test_bad_input(backend):
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int64"):
        backend.relu(np.ones(3, dtype=np.int64))
    with pytest.raises(TypeError, match="x must be an array, got list"):
        backend.sigmoid([1.0, 2.0])
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        backend.tanh(x.T)
    with pytest.raises(TypeError, match="x has dtype float32 but grad_out has dtype float64"):
        backend.relu_backward(x, x.astype(np.float32))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 3\), got \(3, 2\)"):
        backend.elu_backward(np.ones((3, 2)), x)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'erf'"):
        backend.gelu(x, approximate="erf")
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'fast'"):
        backend.gelu_backward(x, x, approximate="fast")
    with pytest.raises(ValueError, match="beta must be > 0.0, got 0"):
        backend.softplus(x, beta=0)
    with pytest.raises(ValueError, match="threshold must be finite, got inf"):
        backend.softplus_backward(x, x, threshold=float("inf"))
    with pytest.raises(TypeError, match="negative_slope must be a real number, got str"):
        backend.leaky_relu(x, negative_slope="0.1")
    with pytest.raises(ValueError, match="alpha must be finite, got nan"):
        backend.elu(x, alpha=float("nan"))


# ----------------------------------------------------------------------------- NaN and inf (issue 12)

#: Specials between ordinary values, on both sides of every kink and threshold.
SPECIAL_X = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 3.5, -3.5, 25.0, -25.0, 100.0, -100.0, 1e30, -1e30]


def special_inputs(dtype):
    """``(x, g)``: every special in ``x`` against finite ``g``, then finite ``x`` against specials in ``g``."""
    x = np.array(SPECIAL_X + [0.5, 1.5, -0.5, -1.5] * 3, dtype=dtype)
    g = np.concatenate([np.linspace(-2, 2, len(SPECIAL_X)), [np.nan, np.inf, -np.inf, 0.0] * 3]).astype(dtype)
    return x, g


def assert_same_specials(actual, expected, dtype):
    """NaN where the reference has NaN, the same infinities, and close finite values."""
    r, a = (1e-4, 1e-5) if np.dtype(dtype) == np.float32 else (1e-10, 1e-12)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=r, atol=a, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_nan_and_inf_propagate_as_reference(name, kw, dtype):
    x, g = special_inputs(dtype)
    with np.errstate(all="ignore"):
        want, want_grad = getattr(ref, name)(x, **kw), getattr(ref, name + "_backward")(g, x, **kw)
    assert_same_specials(getattr(cpu, name)(x, **kw), want, dtype)
    assert_same_specials(getattr(cpu, name + "_backward")(g, x, **kw), want_grad, dtype)


def test_relu_of_nan_is_nan():
    # Issue 12: a NaN weight once gave a finite LeNet loss because relu(NaN) was 0.
    for dtype in DTYPES:
        assert np.isnan(cpu.relu(np.array([np.nan], dtype))[0])
        assert np.isnan(cpu.relu(np.full(1 << 20, np.nan, dtype))).all()  # the parallel twin too


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_direct_entry_point_path_matches_reference(name, kw):
    """Small calls run the serial twin's compiled entry point once the dispatcher has one for the
    dtype: alternate dtypes, read-only and unaligned inputs (the last through the dispatcher)."""
    for dtype in (np.float32, np.float64, np.float32):
        x, g = _inputs((5, 7), dtype)
        x.setflags(write=False)
        buffer = np.zeros(x.nbytes + 1, np.uint8)
        unaligned = np.frombuffer(buffer.data, dtype, count=x.size, offset=1).reshape(x.shape)
        unaligned[...] = x
        assert not unaligned.flags.aligned
        for inp in (x, x, unaligned):
            y = getattr(cpu, name)(inp, **kw)
            assert y.shape == x.shape and y.dtype == x.dtype
            assert_close(y, getattr(ref, name)(x, **kw), dtype)
            assert_close(getattr(cpu, name + "_backward")(g, inp, **kw), getattr(ref, name + "_backward")(g, x, **kw),
                         dtype)


def test_gelu_float32_keeps_relative_accuracy_in_the_left_tail():
    """float32 GELU is x Phi(x) with Phi relatively accurate (kernels/cpu/_elementary.ndtr): where
    ``1 + erf(x/sqrt 2)`` cancels (x < -2) the old form was off by thousands of ulps; the backward's
    ``Phi + x phi`` likewise."""
    x = np.linspace(-12.0, 3.0, 3001, dtype=np.float32)
    xd = x.astype(np.float64)
    phi = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in xd])
    pdf = np.exp(-0.5 * xd * xd) / math.sqrt(2.0 * math.pi)
    assert_close(cpu.gelu(x), xd * phi, rtol=2e-6, atol=0)
    grad = cpu.gelu_backward(np.ones_like(x), x)
    tail = x < -2  # Phi + x phi is relatively accurate there; near its zero (x = -0.75) it cancels
    assert_close(grad[tail], (phi + xd * pdf)[tail], rtol=1e-5, atol=0)
    assert_close(grad, phi + xd * pdf, rtol=1e-5, atol=1e-7)


def test_relu_backward_loop_is_vectorised_without_masked_loads():
    """On every path: ``grad_out[i]`` read only where ``x[i] > 0`` was a conditional load, a masked load
    on AVX2 and AVX-512 and, where none exists (SSE, NEON), a scalar loop branching on the sign of each
    element: 5.6 ns an element on random signs, 23x the leaky ReLU's (x86-64-v2). The serial kernel
    recompiled here (cached code cannot be inspected); its optimised LLVM IR is the target's."""
    from jitgrad.kernels.cpu import activations

    kernel = recompiled(activations._relu_backward_kernel_serial)
    x = np.zeros(64, np.float32)
    kernel(x, x, np.empty_like(x))
    ir = kernel.inspect_llvm(kernel.signatures[0])
    assert "masked.load" not in ir
    assert " x float>" in ir, "no vector of float32 in the loop"

