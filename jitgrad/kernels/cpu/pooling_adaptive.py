"""CPU adaptive 2-D average and max pooling (NCHW): Numba ``@njit`` kernels, one plane per iteration.

Inputs are viewed as ``(N * C, H, W)`` planes and ``prange`` runs over
planes: forward writes are disjoint, and each backward plane is zeroed and
accumulated by one thread (overlapping bins are safe, deterministic).
Global average pooling (``output_size = 1``) has its own kernels: one
contiguous sum per plane forward, one fill per plane backward.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference.pooling import _raise_argmax_out_of_range
from jitgrad.kernels.reference.pooling_adaptive import (
    check_adaptive_backward,
    check_adaptive_forward,
)

from ._jit import FASTMATH, PRANGE_ONLY, njit

__all__: list[str] = kernel_names("pooling_adaptive")  # the one list: kernels/_constants.py

_jit = dict(cache=True, nogil=True, fastmath=FASTMATH)


@njit(**_jit)
def _bin(i, size, out):
    return (i * size) // out, ((i + 1) * size + out - 1) // out


@njit(parallel=PRANGE_ONLY, **_jit)
def _global_avg(x, y):
    planes, hw = x.shape
    for p in prange(planes):
        acc = x[p, 0]
        for k in range(1, hw):
            acc += x[p, k]
        y[p] = acc / hw


@njit(parallel=PRANGE_ONLY, **_jit)
def _global_avg_backward(g, gx):
    planes, hw = gx.shape
    for p in prange(planes):
        share = g[p] / hw
        for k in range(hw):
            gx[p, k] = share


@njit(parallel=PRANGE_ONLY, **_jit)
def _avg(x, y):
    planes, h, w = x.shape
    h_out, w_out = y.shape[1], y.shape[2]
    for p in prange(planes):
        for i in range(h_out):
            h0, h1 = _bin(i, h, h_out)
            for j in range(w_out):
                w0, w1 = _bin(j, w, w_out)
                acc = x[p, h0, w0]  # not 0 * x: inf must not become NaN
                for c in range(w0 + 1, w1):
                    acc += x[p, h0, c]
                for r in range(h0 + 1, h1):
                    for c in range(w0, w1):
                        acc += x[p, r, c]
                y[p, i, j] = acc / ((h1 - h0) * (w1 - w0))


@njit(parallel=PRANGE_ONLY, **_jit)
def _avg_backward(g, gx):
    planes, h, w = gx.shape
    h_out, w_out = g.shape[1], g.shape[2]
    for p in prange(planes):
        for r in range(h):
            for c in range(w):
                gx[p, r, c] = 0
        for i in range(h_out):
            h0, h1 = _bin(i, h, h_out)
            for j in range(w_out):
                w0, w1 = _bin(j, w, w_out)
                share = g[p, i, j] / ((h1 - h0) * (w1 - w0))
                for r in range(h0, h1):
                    for c in range(w0, w1):
                        gx[p, r, c] += share


@njit(parallel=PRANGE_ONLY, **_jit)
def _max(x, y, argmax):
    planes, h, w = x.shape
    h_out, w_out = y.shape[1], y.shape[2]
    for p in prange(planes):
        for i in range(h_out):
            h0, h1 = _bin(i, h, h_out)
            for j in range(w_out):
                w0, w1 = _bin(j, w, w_out)
                best = x[p, h0, w0]
                k = h0 * w + w0
                # The first maximum wins; a NaN wins and stays (v != v is the NaN test).
                if best == best:
                    for r in range(h0, h1):
                        for c in range(w0, w1):
                            v = x[p, r, c]
                            if v > best or v != v:
                                best = v
                                k = r * w + c
                                if v != v:
                                    break
                        if best != best:
                            break
                y[p, i, j] = best
                argmax[p, i, j] = k


@njit(parallel=PRANGE_ONLY, **_jit)
def _max_backward(g, argmax, gx):
    planes, hw = gx.shape
    outs = g.shape[1]
    for p in prange(planes):
        for k in range(hw):
            gx[p, k] = 0
        for o in range(outs):
            gx[p, argmax[p, o]] += g[p, o]


def adaptive_avg_pool2d(x: np.ndarray, *, output_size: Any) -> np.ndarray:
    d = check_adaptive_forward(x, output_size)
    y = np.empty(d.output_shape, dtype=x.dtype)
    if d.is_global:
        _global_avg(x.reshape(d.n * d.c, d.h * d.w), y.reshape(d.n * d.c))
    else:
        _avg(x.reshape(d.n * d.c, d.h, d.w), y.reshape(d.n * d.c, d.h_out, d.w_out))
    return y


def adaptive_avg_pool2d_backward(grad_out: np.ndarray, *, input_shape: tuple[int, ...]) -> np.ndarray:
    d = check_adaptive_backward(grad_out, input_shape)
    gx = np.empty(d.input_shape, dtype=grad_out.dtype)
    g = np.ascontiguousarray(grad_out)
    if d.is_global:
        _global_avg_backward(g.reshape(d.n * d.c), gx.reshape(d.n * d.c, d.h * d.w))
    else:
        _avg_backward(g.reshape(d.n * d.c, d.h_out, d.w_out), gx.reshape(d.n * d.c, d.h, d.w))
    return gx


def adaptive_max_pool2d(x: np.ndarray, *, output_size: Any) -> tuple[np.ndarray, np.ndarray]:
    d = check_adaptive_forward(x, output_size)
    y = np.empty(d.output_shape, dtype=x.dtype)
    argmax = np.empty(d.output_shape, dtype=np.int32)
    _max(x.reshape(d.n * d.c, d.h, d.w), y.reshape(d.n * d.c, d.h_out, d.w_out),
         argmax.reshape(d.n * d.c, d.h_out, d.w_out))
    return y, argmax


def adaptive_max_pool2d_backward(grad_out: np.ndarray, argmax: np.ndarray, *,
                                 input_shape: tuple[int, ...]) -> np.ndarray:
    d = check_adaptive_backward(grad_out, input_shape, argmax)
    if argmax.size and (argmax.min() < 0 or argmax.max() >= d.h * d.w):
        _raise_argmax_out_of_range(argmax, d.h * d.w)
    gx = np.empty(d.input_shape, dtype=grad_out.dtype)
    planes = d.n * d.c
    _max_backward(np.ascontiguousarray(grad_out).reshape(planes, -1),
                  np.ascontiguousarray(argmax).reshape(planes, -1), gx.reshape(planes, d.h * d.w))
    return gx
