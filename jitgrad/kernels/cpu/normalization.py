"""CPU batch normalisation and layer normalisation: Numba ``@njit`` kernels, one fused pass per direction.

Batch norm views its input as ``(N, C, H*W)`` (2-D input as ``(N, C, 1)``) and
runs ``prange`` over channels: a channel's statistics, its running-statistics
update and its output are written by one thread, so nothing is shared. Sums go
row by row (``H*W`` values into a row total, row totals into the channel total):
the inner loop vectorises and float32 rounding stays that of short sums.
A channel of a ResNet-sized batch (128 x 14 x 14 floats, 100 KB) stays in L2
between the statistics pass and the output pass.

Layer norm runs ``prange`` over rows for ``x`` and its gradient. The weight and
bias gradients are sums *across* rows, so each thread accumulates its own
partial row of sums over a contiguous block of rows and the wrapper adds the
partials afterwards (no race, deterministic for a given thread count).

Every kernel has a serial twin (same body, inlined) used below 32K elements,
where waking the worker threads costs more than the work.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from numba import prange

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference import normalization as _spec

from ._jit import FASTMATH as _FASTMATH, PRANGE_ONLY, njit

__all__: list[str] = kernel_names("normalization")  # the one list: kernels/_constants.py


def _or_empty(a: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    """``a``, or an empty array of ``dtype`` standing in for None (one kernel signature, a flag says which)."""
    return a if a is not None else np.empty(0, dtype=dtype)


# ----------------------------------------------------------------------------- batch norm

@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _batch_norm_channel(x, weight, bias, running_mean, running_var, training, momentum, eps, unbias,
                        out, save_mean, save_invstd, ch):
    # x, out: (N, C, HW). weight, bias, running_*: (C,) or empty (absent). Scalars have x's dtype.
    n, c, hw = x.shape
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    inv_m = one / x.dtype.type(n * hw)
    if training:
        total = zero
        for i in range(n):
            row = zero
            for k in range(hw):
                row += x[i, ch, k]
            total += row
        mean = total * inv_m
        total = zero
        for i in range(n):
            row = zero
            for k in range(hw):
                d = x[i, ch, k] - mean
                row += d * d
            total += row
        var = total * inv_m
        if running_mean.size:
            running_mean[ch] = (one - momentum) * running_mean[ch] + momentum * mean
            running_var[ch] = (one - momentum) * running_var[ch] + momentum * (var * unbias)
    else:
        mean = running_mean[ch]
        var = running_var[ch]
    invstd = one / math.sqrt(var + eps)
    save_mean[ch] = mean
    save_invstd[ch] = invstd
    scale = invstd * weight[ch] if weight.size else invstd
    shift = bias[ch] if bias.size else zero
    for i in range(n):
        for k in range(hw):
            out[i, ch, k] = (x[i, ch, k] - mean) * scale + shift


# Each kernel comes as a parallel and a serial twin: below ~32K elements (a BatchNorm1d after a
# Linear layer, a test-sized map) the work is shorter than waking the worker threads.
_SERIAL_BELOW = 1 << 15


@njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _batch_norm_kernel(x, weight, bias, running_mean, running_var, training, momentum, eps, unbias,
                       out, save_mean, save_invstd):
    for ch in prange(x.shape[1]):
        _batch_norm_channel(x, weight, bias, running_mean, running_var, training, momentum, eps, unbias,
                            out, save_mean, save_invstd, ch)


@njit(cache=True, fastmath=_FASTMATH)
def _batch_norm_kernel_serial(x, weight, bias, running_mean, running_var, training, momentum, eps, unbias,
                              out, save_mean, save_invstd):
    for ch in range(x.shape[1]):
        _batch_norm_channel(x, weight, bias, running_mean, running_var, training, momentum, eps, unbias,
                            out, save_mean, save_invstd, ch)


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _batch_norm_backward_channel(grad_out, x, weight, save_mean, save_invstd, training, grad_x, grad_weight,
                                 grad_bias, ch):
    n, c, hw = x.shape
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    inv_m = one / x.dtype.type(n * hw)
    mean = save_mean[ch]
    invstd = save_invstd[ch]
    sum_g = zero
    sum_gx = zero
    for i in range(n):
        row_g = zero
        row_gx = zero
        for k in range(hw):
            g = grad_out[i, ch, k]
            row_g += g
            row_gx += g * (x[i, ch, k] - mean)
        sum_g += row_g
        sum_gx += row_gx
    gw = sum_gx * invstd
    grad_bias[ch] = sum_g
    grad_weight[ch] = gw
    scale = invstd * weight[ch] if weight.size else invstd
    if training:
        a = sum_g * inv_m
        b = gw * inv_m * invstd  # xhat * gw / M == (x - mean) * b
        for i in range(n):
            for k in range(hw):
                grad_x[i, ch, k] = (grad_out[i, ch, k] - a - (x[i, ch, k] - mean) * b) * scale
    else:
        for i in range(n):
            for k in range(hw):
                grad_x[i, ch, k] = grad_out[i, ch, k] * scale


@njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _batch_norm_backward_kernel(grad_out, x, weight, save_mean, save_invstd, training, grad_x, grad_weight,
                                grad_bias):
    for ch in prange(x.shape[1]):
        _batch_norm_backward_channel(grad_out, x, weight, save_mean, save_invstd, training, grad_x, grad_weight,
                                     grad_bias, ch)


@njit(cache=True, fastmath=_FASTMATH)
def _batch_norm_backward_kernel_serial(grad_out, x, weight, save_mean, save_invstd, training, grad_x,
                                       grad_weight, grad_bias):
    for ch in range(x.shape[1]):
        _batch_norm_backward_channel(grad_out, x, weight, save_mean, save_invstd, training, grad_x, grad_weight,
                                     grad_bias, ch)


def batch_norm(x: np.ndarray, running_mean: np.ndarray | None, running_var: np.ndarray | None,
               weight: np.ndarray | None, bias: np.ndarray | None, *, training: bool, momentum: float = 0.1,
               eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, c, hw, mom, e = _spec._check_batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    dt = x.dtype.type
    out = np.empty_like(x)
    save_mean = np.empty(c, dtype=x.dtype)
    save_invstd = np.empty(c, dtype=x.dtype)
    unbias = dt(n * hw / (n * hw - 1)) if n * hw > 1 else dt(1)
    if not training and not (running_mean.flags.writeable and running_var.flags.writeable):
        # Inference only reads them; a (C,) copy avoids a second, read-only, compilation of the kernel.
        running_mean, running_var = running_mean.copy(), running_var.copy()
    kernel = _batch_norm_kernel if x.size >= _SERIAL_BELOW else _batch_norm_kernel_serial
    kernel(x.reshape(n, c, hw), _or_empty(weight, x.dtype), _or_empty(bias, x.dtype),
           _or_empty(running_mean, x.dtype), _or_empty(running_var, x.dtype), bool(training),
           dt(mom), dt(e), unbias, out.reshape(n, c, hw), save_mean, save_invstd)
    return out, save_mean, save_invstd


def batch_norm_backward(grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray | None, save_mean: np.ndarray,
                        save_invstd: np.ndarray, *, training: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, c, hw = _spec._check_batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, training)
    grad_x = np.empty_like(x)
    grad_weight = np.empty(c, dtype=x.dtype)
    grad_bias = np.empty(c, dtype=x.dtype)
    kernel = _batch_norm_backward_kernel if x.size >= _SERIAL_BELOW else _batch_norm_backward_kernel_serial
    kernel(grad_out.reshape(n, c, hw), x.reshape(n, c, hw), _or_empty(weight, x.dtype),
           save_mean, save_invstd, bool(training), grad_x.reshape(n, c, hw), grad_weight, grad_bias)
    return grad_x, grad_weight, grad_bias


# ----------------------------------------------------------------------------- layer norm

@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _layer_norm_row(x, weight, bias, eps, out, mean, invstd, r):
    # x, out: (rows, D); weight, bias: (D,) or empty.
    d = x.shape[1]
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    inv_d = one / x.dtype.type(d)
    total = zero
    for k in range(d):
        total += x[r, k]
    mu = total * inv_d
    total = zero
    for k in range(d):
        diff = x[r, k] - mu
        total += diff * diff
    inv = one / math.sqrt(total * inv_d + eps)
    mean[r] = mu
    invstd[r] = inv
    for k in range(d):
        y = (x[r, k] - mu) * inv
        if weight.size:
            y *= weight[k]
        if bias.size:
            y += bias[k]
        out[r, k] = y


@njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _layer_norm_kernel(x, weight, bias, eps, out, mean, invstd):
    for r in prange(x.shape[0]):
        _layer_norm_row(x, weight, bias, eps, out, mean, invstd, r)


@njit(cache=True, fastmath=_FASTMATH)
def _layer_norm_kernel_serial(x, weight, bias, eps, out, mean, invstd):
    for r in range(x.shape[0]):
        _layer_norm_row(x, weight, bias, eps, out, mean, invstd, r)


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _layer_norm_backward_chunk(grad_out, x, weight, mean, invstd, grad_x, partial_weight, partial_bias, t):
    # partial_*: (chunks, D); chunk t sums rows [t*rows//chunks, (t+1)*rows//chunks).
    rows, d = x.shape
    chunks = partial_weight.shape[0]
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    inv_d = one / x.dtype.type(d)
    for k in range(d):
        partial_weight[t, k] = zero
        partial_bias[t, k] = zero
    for r in range((t * rows) // chunks, ((t + 1) * rows) // chunks):
        mu = mean[r]
        inv = invstd[r]
        sum_gw = zero
        sum_gwx = zero
        for k in range(d):
            g = grad_out[r, k]
            xhat = (x[r, k] - mu) * inv
            partial_weight[t, k] += g * xhat
            partial_bias[t, k] += g
            gw = g * weight[k] if weight.size else g
            sum_gw += gw
            sum_gwx += gw * xhat
        a = sum_gw * inv_d
        b = sum_gwx * inv_d
        for k in range(d):
            gw = grad_out[r, k] * weight[k] if weight.size else grad_out[r, k]
            grad_x[r, k] = inv * (gw - a - (x[r, k] - mu) * inv * b)


@njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _layer_norm_backward_kernel(grad_out, x, weight, mean, invstd, grad_x, partial_weight, partial_bias):
    for t in prange(partial_weight.shape[0]):
        _layer_norm_backward_chunk(grad_out, x, weight, mean, invstd, grad_x, partial_weight, partial_bias, t)


@njit(cache=True, fastmath=_FASTMATH)
def _layer_norm_backward_kernel_serial(grad_out, x, weight, mean, invstd, grad_x, partial_weight, partial_bias):
    for t in range(partial_weight.shape[0]):
        _layer_norm_backward_chunk(grad_out, x, weight, mean, invstd, grad_x, partial_weight, partial_bias, t)


def layer_norm(x: np.ndarray, normalized_shape: Any, weight: np.ndarray | None = None,
               bias: np.ndarray | None = None, *, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, d, e, lead = _spec._check_layer_norm(x, normalized_shape, weight, bias, eps)
    out = np.empty_like(x)
    mean = np.empty(lead, dtype=x.dtype)
    invstd = np.empty(lead, dtype=x.dtype)
    w = weight.reshape(d) if weight is not None else np.empty(0, x.dtype)
    b = bias.reshape(d) if bias is not None else np.empty(0, x.dtype)
    kernel = _layer_norm_kernel if x.size >= _SERIAL_BELOW else _layer_norm_kernel_serial
    kernel(x.reshape(rows, d), w, b, x.dtype.type(e), out.reshape(rows, d), mean.reshape(rows),
           invstd.reshape(rows))
    return out, mean, invstd


def layer_norm_backward(grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray | None, mean: np.ndarray,
                        invstd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, d = _spec._check_layer_norm_backward(grad_out, x, weight, mean, invstd)
    norm_shape = tuple(x.shape[mean.ndim:])
    grad_x = np.empty_like(x)
    chunks = max(1, min(rows, numba.get_num_threads())) if x.size >= _SERIAL_BELOW else 1
    partial_weight = np.empty((chunks, d), dtype=x.dtype)
    partial_bias = np.empty((chunks, d), dtype=x.dtype)
    w = weight.reshape(d) if weight is not None else np.empty(0, x.dtype)
    kernel = _layer_norm_backward_kernel if chunks > 1 else _layer_norm_backward_kernel_serial
    kernel(grad_out.reshape(rows, d), x.reshape(rows, d), w, mean.reshape(rows), invstd.reshape(rows),
           grad_x.reshape(rows, d), partial_weight, partial_bias)
    return (grad_x, partial_weight.sum(axis=0).reshape(norm_shape), partial_bias.sum(axis=0).reshape(norm_shape))
