"""CPU activations and their gradients: Numba ``@njit`` elementwise loops.

Every kernel works on the flattened (contiguous, so free) 1-D view of its
arrays, so one specialisation per dtype serves every rank. ``prange`` runs over
the elements: Numba hands each thread one contiguous block (disjoint writes),
and the per-thread loop it generates is plain enough for LLVM to vectorise.
(A hand-chunked ``prange`` over blocks with an inner ``range(start, stop)``
measured about 2x slower: LLVM did not vectorise the inner loop, which keeps
Numba's negative-index wrap-around for an index starting at a run-time value;
a loop over a slice from 0 does vectorise.) Hyper-parameters and constants are
cast to the array's dtype, so a float32 kernel never drifts into float64
arithmetic and signatures stay at two per kernel. Each kernel has a serial
twin for small arrays (see the relu family below), and the wrappers
(:func:`_forward`, :func:`_backward`) test a plain float32/float64 C-contiguous
ndarray in a few attribute reads before the reference's full checks and call a
serial twin's compiled entry point directly: at (128, 10) the full checks,
``reshape``, Numba's type dispatch and the parallel launch together took longer
than the kernel. (``_forward_out``/``_backward_out`` are the plain form of the
same checks, for kernels written elsewhere: docs/kernel-authoring.md.)

The transcendental functions come from :mod:`._elementary` (float32: branch-free
polynomials that LLVM vectorises, 8 lanes on AVX2; float64: ``math``), and every
kernel uses ``error_model="numpy"``: Python's division-by-zero check is a branch
that keeps a loop scalar. NaN and ±inf come out exactly where the reference's
formulas put them (``relu(NaN)`` is NaN, as ``np.maximum``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import prange

from jitgrad.kernels._constants import GELU_KAPPA as _GELU_KAPPA  # defined once for all backends
from jitgrad.kernels._constants import SQRT_2_OVER_PI as _SQRT_2_OVER_PI
from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cpu import _elementary as ef
from jitgrad.kernels.cpu._gemm_simd import vload, vload_masked, vstore, vstore_masked
from jitgrad.kernels.cpu._jit import FASTMATH as _FASTMATH, PRANGE_ONLY, njit
# The calling helpers (checks, allocation, serial or parallel); _forward_out/_backward_out are
# imported from here by kernels written elsewhere (docs/kernel-authoring.md).
from jitgrad.kernels.cpu._activation_calls import (  # noqa: F401
    _backward,
    _backward_out,
    _finite,
    _forward,
    _forward_out,
    Twins,
)
from jitgrad.kernels.reference.activations import (
    _check_alpha,
    _check_approximate,
    _check_negative_slope,
    _check_softplus,
)

__all__: list[str] = kernel_names("activations")  # the one list: kernels/_constants.py


# ----------------------------------------------------------------------------- relu family

# Every kernel comes as a parallel and a serial twin; the relu family's one-line loops are
# written out in both on purpose (a shared helper compiled to a branchy loop 250x slower,
# measured), the other families share ``inline="always"`` element functions that take the
# values (measured as fast as written-out loops, ymm-packed). Waking the second
# thread costs ~6 us and the parallel launch ~1.5 us even on one thread, more than a (128, 10)
# batch takes. ReLU and leaky ReLU are one compare per element, memory-bound, so a second
# thread buys little below ``_RELU_PARALLEL_MIN_SIZE`` elements (the LeNet-5 activations,
# 15k to 442k elements, measured 1.1-3x faster serially); the transcendental kernels
# (1-2.3 ns per element) go parallel from ``_PARALLEL_MIN_SIZE``.

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _relu_kernel(x, out):
    zero = x.dtype.type(0)
    for i in prange(x.size):
        v = x[i]
        out[i] = zero if v < zero else v  # NaN fails the test and passes through, as np.maximum


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _relu_kernel_serial(x, out):
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        out[i] = zero if v < zero else v


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _relu_backward_kernel(grad_out, x, out):
    zero = x.dtype.type(0)
    for i in prange(x.size):
        g = grad_out[i]  # loaded whatever x[i] is (see the serial twin)
        out[i] = g if x[i] > zero else zero


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _relu_backward_kernel_serial(grad_out, x, out):
    zero = x.dtype.type(0)
    for i in range(x.size):
        # Loaded whatever x[i] is: read only where x[i] > 0, grad_out[i] was a conditional load, which
        # LLVM vectorises as a masked load (AVX2's vmaskmovps) and, where no masked load exists (SSE,
        # NEON), as a branch per lane on the sign of x: 5.7 ns an element on random signs (x86-64-v2).
        g = grad_out[i]
        out[i] = g if x[i] > zero else zero


#: Below this many elements relu and leaky_relu (forward and backward) run their serial twin.
_RELU_PARALLEL_MIN_SIZE = 1 << 20
#: Below this many elements the transcendental kernels run their serial twin. Their serial loops
#: take 0.8-1.3 ns an element (softplus forward 2.3; float32, AVX2, Zen 3), and a parallel launch
#: first wakes the pool's sleeping threads (``OMP_WAIT_POLICY=PASSIVE``, see ``config``): on a
#: 2-vCPU VM that measured 80-130 us, so at 2 threads the parallel kernel only wins once the serial
#: loop takes twice that. Measured (tanh / sigmoid / softplus, serial vs parallel, back-to-back
#: calls): 32k elements 26 / 38 / 75 vs 107 / 111 / 137 us; 128k 133 / 160 / 326 vs 129 / 170 /
#: 270 us; 262k 251 / 293 / 719 vs 235 / 239 / 424 us. With the thread idle longer (other work
#: between calls, as in a training step or bench/report.py) the wake-up cost ~100 us more: tanh at
#: 128x1000 read 227-257 us in the report's parallel rows. 1 << 15 ran the 128k rows parallel.
_PARALLEL_MIN_SIZE = 1 << 17


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _leaky_relu_kernel(x, slope, out):
    zero = x.dtype.type(0)
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > zero else slope * v


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _leaky_relu_kernel_serial(x, slope, out):
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > zero else slope * v


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _leaky_relu_backward_kernel(grad_out, x, slope, out):
    zero = x.dtype.type(0)
    for i in prange(x.size):
        g = grad_out[i]
        out[i] = g if x[i] > zero else slope * g


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _leaky_relu_backward_kernel_serial(grad_out, x, slope, out):
    zero = x.dtype.type(0)
    for i in range(x.size):
        g = grad_out[i]
        out[i] = g if x[i] > zero else slope * g


_RELU = Twins(_relu_kernel, _relu_kernel_serial, _RELU_PARALLEL_MIN_SIZE)
_RELU_BACKWARD = Twins(_relu_backward_kernel, _relu_backward_kernel_serial, _RELU_PARALLEL_MIN_SIZE)
_LEAKY_RELU = Twins(_leaky_relu_kernel, _leaky_relu_kernel_serial, _RELU_PARALLEL_MIN_SIZE)
_LEAKY_RELU_BACKWARD = Twins(_leaky_relu_backward_kernel, _leaky_relu_backward_kernel_serial,
                             _RELU_PARALLEL_MIN_SIZE)


def relu(x: np.ndarray) -> np.ndarray:
    return _forward(_RELU, x)


def relu_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _backward(_RELU_BACKWARD, grad_out, x)


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    slope = _finite(negative_slope, _check_negative_slope)
    return _forward(_LEAKY_RELU, x, slope)


def leaky_relu_backward(grad_out: np.ndarray, x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    slope = _finite(negative_slope, _check_negative_slope)
    return _backward(_LEAKY_RELU_BACKWARD, grad_out, x, slope)


# ----------------------------------------------------------------------------- sigmoid, tanh

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _sigmoid_kernel(x, out):
    for i in prange(x.size):
        out[i] = ef.sigmoid(x[i])


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _sigmoid_kernel_serial(x, out):
    for i in range(x.size):
        out[i] = ef.sigmoid(x[i])


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _sigmoid_backward_kernel(grad_out, x, out):
    one = x.dtype.type(1)
    for i in prange(x.size):
        s = ef.sigmoid(x[i])
        out[i] = grad_out[i] * s * (one - s)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _sigmoid_backward_kernel_serial(grad_out, x, out):
    one = x.dtype.type(1)
    for i in range(x.size):
        s = ef.sigmoid(x[i])
        out[i] = grad_out[i] * s * (one - s)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _tanh_kernel(x, out):
    for i in prange(x.size):
        out[i] = ef.tanh(x[i])


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _tanh_kernel_serial(x, out):
    for i in range(x.size):
        out[i] = ef.tanh(x[i])


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _tanh_backward_kernel(grad_out, x, out):
    one = x.dtype.type(1)
    for i in prange(x.size):
        t = ef.tanh(x[i])
        out[i] = grad_out[i] * (one - t * t)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _tanh_backward_kernel_serial(grad_out, x, out):
    one = x.dtype.type(1)
    for i in range(x.size):
        t = ef.tanh(x[i])
        out[i] = grad_out[i] * (one - t * t)


# float32 on AVX-512 and AVX2: tanh by tables, a vector of ``ef.TANH_LANES`` at a time (``ef.vtanh``,
# faster than the loops above, which LLVM vectorises around ``ef.tanh``'s exp and division: ~35 % on
# AVX-512, ~32 % on AVX2). The parallel kernels hand out blocks of ``_TANH_BLOCK`` elements (whole vectors).
# GELU's tanh form takes the same spans (``_gelu_tanh_tables_kernel`` below).

_TANH_BLOCK = 4096
_TL = max(ef.TANH_LANES, 1)  # (1 where the table kernels are never compiled)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _tables_span(x, out, lo, hi, gelu):
    """``out[lo:hi]``: tanh of ``x``, or with ``gelu`` (a constant of the caller) GELU's tanh form."""
    i = lo
    while i + _TL <= hi:
        v = vload(x, i)
        vstore(out, i, ef.vgelu_tanh(v) if gelu else ef.vtanh(v))
        i += _TL
    if i < hi:
        v = vload_masked(x, i, hi - i)
        vstore_masked(out, i, ef.vgelu_tanh(v) if gelu else ef.vtanh(v), hi - i)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _tables_backward_span(grad_out, x, out, lo, hi, gelu):
    """``out[lo:hi]``: ``grad_out`` times tanh's derivative at ``x`` (``gelu``: GELU-tanh's)."""
    i = lo
    while i + _TL <= hi:
        g, v = vload(grad_out, i), vload(x, i)
        vstore(out, i, ef.vgelu_tanh_grad(g, v) if gelu else ef.vtanh_grad(g, v))
        i += _TL
    if i < hi:
        n = hi - i
        g, v = vload_masked(grad_out, i, n), vload_masked(x, i, n)
        vstore_masked(out, i, ef.vgelu_tanh_grad(g, v) if gelu else ef.vtanh_grad(g, v), n)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _tanh_tables_kernel(x, out):
    n = x.size
    for blk in prange((n + _TANH_BLOCK - 1) // _TANH_BLOCK):
        _tables_span(x, out, blk * _TANH_BLOCK, min(n, (blk + 1) * _TANH_BLOCK), False)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _tanh_tables_kernel_serial(x, out):
    _tables_span(x, out, 0, x.size, False)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _tanh_tables_backward_kernel(grad_out, x, out):
    n = x.size
    for blk in prange((n + _TANH_BLOCK - 1) // _TANH_BLOCK):
        _tables_backward_span(grad_out, x, out, blk * _TANH_BLOCK, min(n, (blk + 1) * _TANH_BLOCK), False)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _tanh_tables_backward_kernel_serial(grad_out, x, out):
    _tables_backward_span(grad_out, x, out, 0, x.size, False)


_SIGMOID = Twins(_sigmoid_kernel, _sigmoid_kernel_serial, _PARALLEL_MIN_SIZE)
_SIGMOID_BACKWARD = Twins(_sigmoid_backward_kernel, _sigmoid_backward_kernel_serial, _PARALLEL_MIN_SIZE)
_TANH = Twins(_tanh_kernel, _tanh_kernel_serial, _PARALLEL_MIN_SIZE)
_TANH_BACKWARD = Twins(_tanh_backward_kernel, _tanh_backward_kernel_serial, _PARALLEL_MIN_SIZE)
#: float32's kernels: by tables on AVX-512 and AVX2, else the ones above.
_TANH_F32 = Twins(_tanh_tables_kernel, _tanh_tables_kernel_serial, _PARALLEL_MIN_SIZE) if ef.HAS_VTANH else _TANH
_TANH_BACKWARD_F32 = (Twins(_tanh_tables_backward_kernel, _tanh_tables_backward_kernel_serial, _PARALLEL_MIN_SIZE)
                      if ef.HAS_VTANH else _TANH_BACKWARD)
_F32 = np.dtype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return _forward(_SIGMOID, x)


def sigmoid_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _backward(_SIGMOID_BACKWARD, grad_out, x)


def tanh(x: np.ndarray) -> np.ndarray:
    return _forward(_TANH_F32 if getattr(x, "dtype", None) is _F32 else _TANH, x)


def tanh_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _backward(_TANH_BACKWARD_F32 if getattr(x, "dtype", None) is _F32 else _TANH_BACKWARD, grad_out, x)


# ----------------------------------------------------------------------------- gelu

# The forward twins share one element function, inlined at Numba's IR level: ``tanh_approx``
# is loop-invariant, LLVM unswitches the loop into one vectorised loop per form (measured as
# fast as two written-out loops). Constants are cast to the array's dtype inside.

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _gelu_at(x, i, tanh_approx):
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    v = x[i]
    if tanh_approx:
        inner = x.dtype.type(_SQRT_2_OVER_PI) * (v + x.dtype.type(_GELU_KAPPA) * v * v * v)
        return half * v * (one + ef.tanh(inner))
    return v * ef.ndtr(v)  # x Phi(x): Phi without 1 + erf's cancellation for negative x


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _gelu_kernel(x, tanh_approx, out):
    for i in prange(x.size):
        out[i] = _gelu_at(x, i, tanh_approx)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gelu_kernel_serial(x, tanh_approx, out):
    for i in range(x.size):
        out[i] = _gelu_at(x, i, tanh_approx)


# float32 on AVX-512, the erf form: Phi (and for the backward phi) by tables for |x| < 4 (``ef.vgelu``,
# ``ef.vgelu_grad``: no exp, no division; the forward 2x the loops above, the backward 1.25x: one
# thread, 692k elements, 426 -> 216 us and 458 -> 359 us; on AVX2 the forward alone, 1.45x: 2
# threads, Zen 3, 2.77M elements, 1.52 -> 1.05 ms), in spans of ``_GELU_BLOCK`` elements. A
# span whose table pass met a lane from 4 (or a NaN) then gives those lanes ``ef.ndtr`` (``ndtr_pdf``),
# while they are still in L1 (a branch in the table loop itself lost all of the gain, a second pass
# over the whole array a quarter of it); every other lane keeps its table value, so an element's
# result never depends on its neighbours.

_GELU_BLOCK = 1024
_GELU_LANES = ef.GELU_LANES  # a vector of the path (16 float32 on AVX-512, 8 on AVX2)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _gelu_tables_span(grad_out, x, out, lo, hi, backward):
    """``out[lo:hi]``: GELU of ``x`` (``backward``: ``grad_out`` times its gradient)."""
    beyond = False
    whole = lo + (hi - lo) // _GELU_LANES * _GELU_LANES
    for i in range(lo, whole, _GELU_LANES):
        v = vload(x, i)
        beyond |= ef.vgelu_beyond(v)
        if backward:
            vstore(out, i, ef.vgelu_grad(vload(grad_out, i), v))
        else:
            vstore(out, i, ef.vgelu(v))
    if whole < hi:  # masked-off lanes load 0: inside the tables
        n = hi - whole
        v = vload_masked(x, whole, n)
        beyond |= ef.vgelu_beyond(v)
        if backward:
            vstore_masked(out, whole, ef.vgelu_grad(vload_masked(grad_out, whole, n), v), n)
        else:
            vstore_masked(out, whole, ef.vgelu(v), n)
    if beyond:
        top = x.dtype.type(ef.GELU_TABLE_TOP)
        for i in range(lo, hi, _GELU_LANES):
            if ef.vgelu_beyond(vload_masked(x, i, min(_GELU_LANES, hi - i))):
                for j in range(i, min(i + _GELU_LANES, hi)):
                    if not abs(x[j]) < top:
                        out[j] = grad_out[j] * _gelu_erf_grad(x[j]) if backward else _gelu_at(x, j, False)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _gelu_tables_kernel(x, out):
    n = x.size
    for blk in prange((n + _GELU_BLOCK - 1) // _GELU_BLOCK):
        _gelu_tables_span(x, x, out, blk * _GELU_BLOCK, min(n, (blk + 1) * _GELU_BLOCK), False)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gelu_tables_kernel_serial(x, out):
    n = x.size
    for lo in range(0, n, _GELU_BLOCK):  # by blocks too: a fix-up pass rereads only its block
        _gelu_tables_span(x, x, out, lo, min(n, lo + _GELU_BLOCK), False)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _gelu_tables_backward_kernel(grad_out, x, out):
    n = x.size
    for blk in prange((n + _GELU_BLOCK - 1) // _GELU_BLOCK):
        _gelu_tables_span(grad_out, x, out, blk * _GELU_BLOCK, min(n, (blk + 1) * _GELU_BLOCK), True)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gelu_tables_backward_kernel_serial(grad_out, x, out):
    n = x.size
    for lo in range(0, n, _GELU_BLOCK):
        _gelu_tables_span(grad_out, x, out, lo, min(n, lo + _GELU_BLOCK), True)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _gelu_tanh_grad(v, half, one, three, sqrt_2_over_pi, kappa):
    t = ef.tanh(sqrt_2_over_pi * (v + kappa * v * v * v))
    d_inner = sqrt_2_over_pi * (one + three * kappa * v * v)
    return half * (one + t) + half * v * (one - t * t) * d_inner


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _gelu_erf_grad(v):
    cdf, pdf = ef.ndtr_pdf(v)  # Phi and phi share one exp(-x^2/2)
    return cdf + v * pdf


# The backward twins are written out on purpose: with the element function taking (x, i) and
# casting its own constants, as in the forward, the serial loop came out 7x slower (form
# tested outside the loop) to 18x (inside), measured; this form is as fast as hand-written.

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _gelu_backward_kernel(grad_out, x, tanh_approx, out):
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    three = x.dtype.type(3)
    sqrt_2_over_pi = x.dtype.type(_SQRT_2_OVER_PI)
    kappa = x.dtype.type(_GELU_KAPPA)
    if tanh_approx:
        for i in prange(x.size):
            out[i] = grad_out[i] * _gelu_tanh_grad(x[i], half, one, three, sqrt_2_over_pi, kappa)
    else:
        for i in prange(x.size):
            out[i] = grad_out[i] * _gelu_erf_grad(x[i])


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gelu_backward_kernel_serial(grad_out, x, tanh_approx, out):
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    three = x.dtype.type(3)
    sqrt_2_over_pi = x.dtype.type(_SQRT_2_OVER_PI)
    kappa = x.dtype.type(_GELU_KAPPA)
    if tanh_approx:
        for i in range(x.size):
            out[i] = grad_out[i] * _gelu_tanh_grad(x[i], half, one, three, sqrt_2_over_pi, kappa)
    else:
        for i in range(x.size):
            out[i] = grad_out[i] * _gelu_erf_grad(x[i])


# float32 on AVX-512 and AVX2, the tanh form: the tanh by tables (``ef.vgelu_tanh``, ``_tables_span``).
# One thread, 128 x 1000, Zen 4: forward 79 -> 50 us, backward 88 -> 59 us (AVX-512); 138 -> 92 and
# 152 -> 100 us (AVX2). Kernels of their own, not tanh's with the form as an argument: a scalar
# argument costs the short call path ~0.15 us, a tenth of tanh's at 128 x 10 (measured).

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _gelu_tanh_tables_kernel(x, out):
    n = x.size
    for blk in prange((n + _TANH_BLOCK - 1) // _TANH_BLOCK):
        _tables_span(x, out, blk * _TANH_BLOCK, min(n, (blk + 1) * _TANH_BLOCK), True)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gelu_tanh_tables_kernel_serial(x, out):
    _tables_span(x, out, 0, x.size, True)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _gelu_tanh_tables_backward_kernel(grad_out, x, out):
    n = x.size
    for blk in prange((n + _TANH_BLOCK - 1) // _TANH_BLOCK):
        _tables_backward_span(grad_out, x, out, blk * _TANH_BLOCK, min(n, (blk + 1) * _TANH_BLOCK), True)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gelu_tanh_tables_backward_kernel_serial(grad_out, x, out):
    _tables_backward_span(grad_out, x, out, 0, x.size, True)


# float32's erf form without tables (AVX2 and every path but AVX-512): the loops above without the
# form as an argument, so that they run on the GEMM team (its span jobs take no flag, _team_spans).
# With the flag, 128 x 1000 on two threads ran on one (forced AVX2, Zen 4: 134 us, PyTorch 74 us).

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _gelu_erf_kernel(x, out):
    for i in prange(x.size):
        out[i] = _gelu_at(x, i, False)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gelu_erf_kernel_serial(x, out):
    for i in range(x.size):
        out[i] = _gelu_at(x, i, False)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _gelu_erf_backward_kernel(grad_out, x, out):
    for i in prange(x.size):
        out[i] = grad_out[i] * _gelu_erf_grad(x[i])


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gelu_erf_backward_kernel_serial(grad_out, x, out):
    for i in range(x.size):
        out[i] = grad_out[i] * _gelu_erf_grad(x[i])


_GELU = Twins(_gelu_kernel, _gelu_kernel_serial, _PARALLEL_MIN_SIZE)
#: float32's erf-form kernels: by tables on AVX-512 and AVX2 (the backward on AVX-512 only:
#: ``ef.HAS_VGELU_GRAD``), else the flagless loops above.
_GELU_F32 = (Twins(_gelu_tables_kernel, _gelu_tables_kernel_serial, _PARALLEL_MIN_SIZE) if ef.HAS_VGELU
             else Twins(_gelu_erf_kernel, _gelu_erf_kernel_serial, _PARALLEL_MIN_SIZE))
_GELU_BACKWARD = Twins(_gelu_backward_kernel, _gelu_backward_kernel_serial, _PARALLEL_MIN_SIZE)
_GELU_BACKWARD_F32 = (Twins(_gelu_tables_backward_kernel, _gelu_tables_backward_kernel_serial, _PARALLEL_MIN_SIZE)
                      if ef.HAS_VGELU_GRAD else
                      Twins(_gelu_erf_backward_kernel, _gelu_erf_backward_kernel_serial, _PARALLEL_MIN_SIZE))


#: float32's tanh-form kernels on AVX-512 and AVX2 (by tables), else ``None``.
_GELU_TANH_F32 = (Twins(_gelu_tanh_tables_kernel, _gelu_tanh_tables_kernel_serial, _PARALLEL_MIN_SIZE)
                  if ef.HAS_VTANH else None)
_GELU_TANH_BACKWARD_F32 = (Twins(_gelu_tanh_tables_backward_kernel, _gelu_tanh_tables_backward_kernel_serial,
                                 _PARALLEL_MIN_SIZE) if ef.HAS_VTANH else None)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    tanh_approx = _check_approximate(approximate)
    if getattr(x, "dtype", None) is _F32:
        tables = _GELU_TANH_F32 if tanh_approx else _GELU_F32
        if tables is not None:
            return _forward(tables, x)
    return _forward(_GELU, x, tanh_approx)


def gelu_backward(grad_out: np.ndarray, x: np.ndarray, approximate: str = "none") -> np.ndarray:
    tanh_approx = _check_approximate(approximate)
    if getattr(x, "dtype", None) is _F32:
        tables = _GELU_TANH_BACKWARD_F32 if tanh_approx else _GELU_BACKWARD_F32
        if tables is not None:
            return _backward(tables, grad_out, x)
    return _backward(_GELU_BACKWARD, grad_out, x, tanh_approx)


# ----------------------------------------------------------------------------- elu, softplus

# Element functions taking the values, inlined into both twins (the sigmoid pattern: the
# loops stay vectorised, measured as fast as written-out bodies).

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _elu_scalar(v, alpha, zero):
    return v if v > zero else alpha * ef.expm1(v)  # expm1: relative accuracy for small negative x


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _elu_grad_scalar(g, v, alpha, zero):
    return g if v > zero else g * alpha * ef.exp_nonpos(v)  # v <= 0 where it is taken


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _elu_kernel(x, alpha, out):
    zero = x.dtype.type(0)
    for i in prange(x.size):
        out[i] = _elu_scalar(x[i], alpha, zero)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _elu_kernel_serial(x, alpha, out):
    zero = x.dtype.type(0)
    for i in range(x.size):
        out[i] = _elu_scalar(x[i], alpha, zero)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _elu_backward_kernel(grad_out, x, alpha, out):
    zero = x.dtype.type(0)
    for i in prange(x.size):
        out[i] = _elu_grad_scalar(grad_out[i], x[i], alpha, zero)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _elu_backward_kernel_serial(grad_out, x, alpha, out):
    zero = x.dtype.type(0)
    for i in range(x.size):
        out[i] = _elu_grad_scalar(grad_out[i], x[i], alpha, zero)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _softplus_scalar(v, beta, threshold):
    bx = beta * v
    return v if bx > threshold else ef.log1pexp(bx) / beta


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _softplus_grad_scalar(g, v, beta, threshold):
    bx = beta * v
    return g if bx > threshold else g * ef.sigmoid(bx)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _softplus_kernel(x, beta, threshold, out):
    for i in prange(x.size):
        out[i] = _softplus_scalar(x[i], beta, threshold)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _softplus_kernel_serial(x, beta, threshold, out):
    for i in range(x.size):
        out[i] = _softplus_scalar(x[i], beta, threshold)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _softplus_backward_kernel(grad_out, x, beta, threshold, out):
    for i in prange(x.size):
        out[i] = _softplus_grad_scalar(grad_out[i], x[i], beta, threshold)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _softplus_backward_kernel_serial(grad_out, x, beta, threshold, out):
    for i in range(x.size):
        out[i] = _softplus_grad_scalar(grad_out[i], x[i], beta, threshold)


_ELU = Twins(_elu_kernel, _elu_kernel_serial, _PARALLEL_MIN_SIZE)
_ELU_BACKWARD = Twins(_elu_backward_kernel, _elu_backward_kernel_serial, _PARALLEL_MIN_SIZE)


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    a = _finite(alpha, _check_alpha)
    return _forward(_ELU, x, a)


def elu_backward(grad_out: np.ndarray, x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    a = _finite(alpha, _check_alpha)
    return _backward(_ELU_BACKWARD, grad_out, x, a)


def _softplus_params(beta: Any, threshold: Any) -> tuple[float, float]:
    """Plain finite floats with ``beta > 0`` as they are (the full check cost 1.2 us, a sixth of a (128, 10)
    softplus call), anything else through the reference's check."""
    if type(beta) is float and type(threshold) is float and 0.0 < beta < math.inf and math.isfinite(threshold):
        return beta, threshold
    return _check_softplus(beta, threshold)


_SOFTPLUS = Twins(_softplus_kernel, _softplus_kernel_serial, _PARALLEL_MIN_SIZE)
_SOFTPLUS_BACKWARD = Twins(_softplus_backward_kernel, _softplus_backward_kernel_serial, _PARALLEL_MIN_SIZE)


def softplus(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    beta, threshold = _softplus_params(beta, threshold)
    return _forward(_SOFTPLUS, x, beta, threshold)


def softplus_backward(grad_out: np.ndarray, x: np.ndarray, beta: float = 1.0,
                      threshold: float = 20.0) -> np.ndarray:
    beta, threshold = _softplus_params(beta, threshold)
    return _backward(_SOFTPLUS_BACKWARD, grad_out, x, beta, threshold)


# Not wrapped in the package's workqueue lock (``_threading.serialised``): the serial twins need
# none, and ``_run`` takes it around the parallel launch only (a quarter of a (128, 10) relu's call).
for _name in __all__:
    globals()[_name].serialises_itself = True
