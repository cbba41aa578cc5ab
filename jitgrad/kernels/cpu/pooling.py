"""CPU 2-D max and average pooling (NCHW): Numba ``@njit`` kernels, one plane per iteration.

Inputs are viewed (for free) as ``(N * C, H, W)`` planes and ``prange`` runs
over planes. A pooling window never leaves its plane, so forward writes are
disjoint, and each backward plane is zeroed and accumulated by one thread:
overlapping windows are safe and results are deterministic without atomics.
Windows are clipped to the input instead of padding it, which is exactly
"padding never wins" for max and "zeros" for average pooling.

Without padding (the usual layer) every window lies inside the input, and the
forward kernels take a faster path. A table ``corner[o]`` holds the flat input
index of output ``o``'s window corner (the same for every plane); for each
window offset ``d = i * W + j`` one loop over all outputs of the plane reads
``x[corner[o] + d]``. That loop is long (a whole plane, not a 12-wide row,
which is shorter than one AVX-512 vector) and branch-free (the max is a
compare-and-select), so LLVM vectorises it with gathers: max-pool measured
about 5x faster than a window-at-a-time loop, whose data-dependent branch is
mispredicted half the time on real activations. CPUs without gathers (SSE,
NEON) ran that loop scalar: there the usual 2 x 2 window of stride 2 takes two
passes that need none (``_max_pool2d_plane_pairs``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._validate import Pool2dDims
from jitgrad.kernels.cpu._jit import FASTMATH as _FASTMATH, PRANGE_ONLY, njit
from jitgrad.kernels.reference.pooling import (
    _check_avg_pool_backward,
    _check_avg_pool_forward,
    _check_max_pool_backward,
    _check_pool_forward,
    _raise_argmax_out_of_range,
)

from ._gemm_simd import HAS_GATHER
from ._tier import tiered

__all__: list[str] = kernel_names("pooling")  # the one list: kernels/_constants.py


def _planes(a: np.ndarray) -> np.ndarray:
    n, c, h, w = a.shape
    return a.reshape(n * c, h, w)


def _window_args(d: Pool2dDims) -> tuple[int, int, int, int, int, int]:
    # Plain Python ints type as int64 in Numba: one signature whatever the caller passed.
    return (int(d.kh), int(d.kw), int(d.stride[0]), int(d.stride[1]), int(d.padding[0]), int(d.padding[1]))


# ----------------------------------------------------------------------------- max pooling

@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _span(o, stride, pad, k, size):
    # The input range [lo, hi) under output position ``o`` along one axis, clipped to the input.
    start = o * stride - pad
    return max(start, 0), min(start + k, size)


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _max_pool2d_plane(x, p, kh, kw, sh, sw, ph, pw, y, argmax, nan_aware):
    _, h, w = x.shape
    _, h_out, w_out = y.shape
    for oh in range(h_out):
        h_lo, h_hi = _span(oh, sh, ph, kh, h)
        for ow in range(w_out):
            w_lo, w_hi = _span(ow, sw, pw, kw, w)
            best = x[p, h_lo, w_lo]
            best_idx = h_lo * w + w_lo
            for hh in range(h_lo, h_hi):
                for ww in range(w_lo, w_hi):
                    v = x[p, hh, ww]
                    # Strict '>' keeps the first maximum (PyTorch's ties); the first NaN wins and stays.
                    if v > best or (nan_aware and v != v and best == best):
                        best = v
                        best_idx = hh * w + ww
            y[p, oh, ow] = best
            argmax[p, oh, ow] = best_idx


@njit(cache=True, fastmath=_FASTMATH)
def _window_corners(h_out, w_out, sh, sw, w):
    """Flat index into an unpadded (H, W) plane of each output's window corner, row-major."""
    corner = np.empty(h_out * w_out, dtype=np.int64)
    for oh in range(h_out):
        for ow in range(w_out):
            corner[oh * w_out + ow] = oh * sh * w + ow * sw
    return corner


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _max_pool2d_plane_unpadded(x, p, kh, kw, w, corner, y, argmax):
    # x: (planes, H * W); y, argmax: (planes, H_out * W_out). Offsets go in row-major window
    # order and a later one wins only when strictly greater: ties keep the first maximum.
    # (NaN-free planes only: ``v > best`` never lets a NaN win.)
    n_out = corner.size
    for o in range(n_out):
        y[p, o] = x[p, corner[o]]
        argmax[p, o] = corner[o]
    for i in range(kh):
        for j in range(1 if i == 0 else 0, kw):
            d = i * w + j
            for o in range(n_out):
                c = corner[o] + d
                v = x[p, c]
                best = y[p, o]
                take = v > best
                # Selects rather than a branch: the loop vectorises.
                y[p, o] = v if take else best
                argmax[p, o] = c if take else argmax[p, o]


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _max_pool2d_plane_pairs(x, p, w, h_out, w_out, y, argmax, v, vi):
    """The 2 x 2 window of stride 2 without padding (most CNNs' pooling) in two passes without a
    gather: the larger of each column's two rows (``v``, and its flat index ``vi``: scratch of
    ``2 * H_out * W_out``), then of each pair of neighbouring columns, read by stride-2 loads.

    x: (planes, H * W); y, argmax: (planes, H_out * W_out); NaN-free planes only. A flat index orders
    a window's elements as its row-major order does, so the second candidate wins when strictly greater,
    or equal with the smaller index: the first maximum, as in ``_max_pool2d_plane_unpadded``.
    Taken where no gather exists (SSE, NEON: ``_PAIRS``), where that path's loop ran scalar: one thread,
    ``x86-64-v2``, alternating processes: (128, 32, 26, 26) 15.1-15.3 -> 4.1 ms, (128, 6, 28, 28)
    3.2-3.3 -> 0.84, (128, 64, 11, 11) 4.0-4.7 -> 1.25. Not on AVX2, whose gathers were faster still
    (Zen 3, one thread: 2.4-2.5 ms against 3.0-3.3 by these two passes at (128, 32, 26, 26)).
    """
    w2 = 2 * w_out
    for oh in range(h_out):
        r0 = 2 * oh * w
        r1 = r0 + w
        base = oh * w2
        for col in range(w2):
            a = x[p, r0 + col]
            b = x[p, r1 + col]
            lower = b > a
            v[base + col] = b if lower else a
            vi[base + col] = r1 + col if lower else r0 + col
    for o in range(h_out * w_out):
        a = v[2 * o]
        b = v[2 * o + 1]
        ia = vi[2 * o]
        ib = vi[2 * o + 1]
        right = (b > a) | ((b == a) & (ib < ia))
        y[p, o] = b if right else a
        argmax[p, o] = ib if right else ia


#: Whether the max-pool forward takes ``_max_pool2d_pairs_kernel`` for 2 x 2 windows of stride 2.
_PAIRS = not HAS_GATHER
#: Runs of planes ``_max_pool2d_pairs_kernel`` hands out (each allocates its scratch once).
_POOL_RUNS = 256


@njit(cache=True, fastmath=_FASTMATH)
def _plane_has_nan(x, p):
    # A function of its own, not a loop in the caller's prange body: written inline there, the
    # scan stopped LLVM from vectorising the unpadded window loops (measured 8x slower).
    has_nan = False
    for i in range(x.shape[1]):
        has_nan |= x[p, i] != x[p, i]
    return has_nan


@tiered
@njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _max_pool2d_kernel(x, kh, kw, sh, sw, ph, pw, y, argmax):
    planes, h, w = x.shape
    _, h_out, w_out = y.shape
    unpadded = ph == 0 and pw == 0
    corner = _window_corners(h_out, w_out, sh, sw, w)
    x_flat = x.reshape(planes, h * w)
    y_flat = y.reshape(planes, h_out * w_out)
    argmax_flat = argmax.reshape(planes, h_out * w_out)
    for p in prange(planes):
        # The NaN test in the window loop costs ~2.5x (measured), so a cheap vectorised scan
        # picks it per plane; ``nan_aware`` is a constant at each inlined call site.
        if _plane_has_nan(x_flat, p):
            _max_pool2d_plane(x, p, kh, kw, sh, sw, ph, pw, y, argmax, True)
        elif unpadded:
            _max_pool2d_plane_unpadded(x_flat, p, kh, kw, w, corner, y_flat, argmax_flat)
        else:
            _max_pool2d_plane(x, p, kh, kw, sh, sw, ph, pw, y, argmax, False)


def _max_pool2d_pairs_kernel(x, y, argmax):
    """``_max_pool2d_kernel`` for 2 x 2 windows of stride 2 without padding on CPUs without gathers
    (``_PAIRS``): ``_max_pool2d_plane_pairs`` on NaN-free planes, in runs of planes that each allocate
    their scratch once. A kernel of its own, so that the AVX2 and AVX-512 builds neither compile it nor
    run their planes in runs (run inside ``_max_pool2d_kernel``, that cost them 2-6 %: (128, 64, 11, 11),
    one thread, alternating processes)."""
    planes, h, w = x.shape
    _, h_out, w_out = y.shape
    x_flat = x.reshape(planes, h * w)
    y_flat = y.reshape(planes, h_out * w_out)
    argmax_flat = argmax.reshape(planes, h_out * w_out)
    runs = min(planes, _POOL_RUNS)
    for r in prange(runs):
        v = np.empty(2 * h_out * w_out, dtype=x.dtype)
        vi = np.empty(2 * h_out * w_out, dtype=argmax.dtype)
        for p in range(r * planes // runs, (r + 1) * planes // runs):
            if _plane_has_nan(x_flat, p):
                _max_pool2d_plane(x, p, 2, 2, 2, 2, 0, 0, y, argmax, True)
            else:
                _max_pool2d_plane_pairs(x_flat, p, w, h_out, w_out, y_flat, argmax_flat, v, vi)


if _PAIRS:  # compiled (and tiered: python -m jitgrad.compile fills the cache) only where max_pool2d calls it
    _max_pool2d_pairs_kernel = tiered(njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)(
        _max_pool2d_pairs_kernel))


@tiered
@njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _max_pool2d_backward_kernel(grad_out, argmax, grad_x):
    # grad_out, argmax: (planes, H_out * W_out); grad_x: (planes, H * W). Returns the number of
    # out-of-range indices skipped (a reduction Numba handles per thread), so a bad argmax can
    # never write outside grad_x and the wrapper can raise.
    planes, plane_size = grad_x.shape
    n_out = grad_out.shape[1]
    bad = 0
    for p in prange(planes):
        for i in range(plane_size):
            grad_x[p, i] = 0
        for i in range(n_out):
            a = argmax[p, i]
            if 0 <= a < plane_size:
                grad_x[p, a] += grad_out[p, i]
            else:
                bad += 1
    return bad


def max_pool2d(x: np.ndarray, *, kernel_size: Any, stride: Any = None,
               padding: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    d = _check_pool_forward(x, kernel_size, stride, padding)
    y = np.empty(d.output_shape, dtype=x.dtype)
    argmax = np.empty(d.output_shape, dtype=np.int32)
    window = _window_args(d)
    if _PAIRS and window == (2, 2, 2, 2, 0, 0):
        _max_pool2d_pairs_kernel(_planes(x), _planes(y), _planes(argmax))
    else:
        _max_pool2d_kernel(_planes(x), *window, _planes(y), _planes(argmax))
    return y, argmax


def max_pool2d_backward(grad_out: np.ndarray, argmax: np.ndarray, *, input_shape: tuple[int, ...],
                        kernel_size: Any, stride: Any = None, padding: Any = 0) -> np.ndarray:
    """Scatters each plane on one thread, so it needs only ``argmax``; the geometry is checked
    because it is the contract (the CUDA gather needs it).
    """
    d = _check_max_pool_backward(grad_out, argmax, input_shape, kernel_size, stride, padding)
    n, c, h, w = d.input_shape
    grad_x = np.empty((n, c, h, w), dtype=grad_out.dtype)
    bad = _max_pool2d_backward_kernel(grad_out.reshape(n * c, d.h_out * d.w_out),
                                      argmax.reshape(n * c, d.h_out * d.w_out),
                                      grad_x.reshape(n * c, h * w))
    if bad:
        _raise_argmax_out_of_range(argmax, h * w)
    return grad_x


# ----------------------------------------------------------------------------- average pooling

@njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _avg_pool2d_kernel(x, kh, kw, sh, sw, ph, pw, count_include_pad, y):
    planes, h, w = x.shape
    _, h_out, w_out = y.shape
    unpadded = ph == 0 and pw == 0
    zero = x.dtype.type(0)
    n_out = h_out * w_out
    corner = _window_corners(h_out, w_out, sh, sw, w)
    x_flat = x.reshape(planes, h * w)
    y_flat = y.reshape(planes, n_out)
    for p in prange(planes):
        if unpadded:
            # Every window is whole: sum offset by offset over the plane's corner table (the
            # clipped loop's order, so the same sums).
            count = x.dtype.type(kh * kw)
            for o in range(n_out):
                y_flat[p, o] = zero
            for i in range(kh):
                for j in range(kw):
                    d = i * w + j
                    for o in range(n_out):
                        y_flat[p, o] += x_flat[p, corner[o] + d]
            for o in range(n_out):
                y_flat[p, o] /= count
            continue
        for oh in range(h_out):
            h_lo, h_hi = _span(oh, sh, ph, kh, h)
            for ow in range(w_out):
                w_lo, w_hi = _span(ow, sw, pw, kw, w)
                total = zero
                for hh in range(h_lo, h_hi):
                    for ww in range(w_lo, w_hi):
                        total += x[p, hh, ww]
                count = kh * kw if count_include_pad else (h_hi - h_lo) * (w_hi - w_lo)
                y[p, oh, ow] = total / x.dtype.type(count)


@njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _avg_pool2d_backward_kernel(grad_out, kh, kw, sh, sw, ph, pw, count_include_pad, grad_x):
    planes, h, w = grad_x.shape
    _, h_out, w_out = grad_out.shape
    unpadded = ph == 0 and pw == 0
    for p in prange(planes):
        grad_x[p] = 0
        if unpadded:
            # Whole windows: spread a row of shares offset by offset; for one offset the
            # columns ow * sw + j are distinct, so the inner loop vectorises.
            count = grad_x.dtype.type(kh * kw)
            for oh in range(h_out):
                h0 = oh * sh
                for i in range(kh):
                    for j in range(kw):
                        for ow in range(w_out):
                            grad_x[p, h0 + i, ow * sw + j] += grad_out[p, oh, ow] / count
            continue
        for oh in range(h_out):
            h_lo, h_hi = _span(oh, sh, ph, kh, h)
            for ow in range(w_out):
                w_lo, w_hi = _span(ow, sw, pw, kw, w)
                count = kh * kw if count_include_pad else (h_hi - h_lo) * (w_hi - w_lo)
                share = grad_out[p, oh, ow] / grad_x.dtype.type(count)
                for hh in range(h_lo, h_hi):
                    for ww in range(w_lo, w_hi):
                        grad_x[p, hh, ww] += share


def avg_pool2d(x: np.ndarray, *, kernel_size: Any, stride: Any = None, padding: Any = 0,
               count_include_pad: bool = True) -> np.ndarray:
    d = _check_avg_pool_forward(x, kernel_size, stride, padding, count_include_pad)
    y = np.empty(d.output_shape, dtype=x.dtype)
    _avg_pool2d_kernel(_planes(x), *_window_args(d), bool(count_include_pad), _planes(y))
    return y


def avg_pool2d_backward(grad_out: np.ndarray, *, input_shape: tuple[int, ...], kernel_size: Any,
                        stride: Any = None, padding: Any = 0, count_include_pad: bool = True) -> np.ndarray:
    d = _check_avg_pool_backward(grad_out, input_shape, kernel_size, stride, padding, count_include_pad)
    grad_x = np.empty(d.input_shape, dtype=grad_out.dtype)
    _avg_pool2d_backward_kernel(_planes(grad_out), *_window_args(d), bool(count_include_pad), _planes(grad_x))
    return grad_x
