"""CUDA batch normalisation and layer normalisation, with their gradients.

Batch norm: one block per channel (block-stride loop over channels). The
block's threads stride over the channel's ``N*H*W`` values and combine with
the deterministic shared-memory tree sums of ``_launch``: mean, then the sum of
squared deviations; thread 0 writes the saved statistics and updates the
running statistics in place; then every thread writes its outputs. The
backward is the same shape: two block sums (``sum g``, ``sum g*(x-mean)``), then
the gradient of ``x`` is gathered, one thread per element: no atomics.

Layer norm: one block per normalised row for ``y`` and ``grad_x``; the weight
and bias gradients (sums across rows) come from a second kernel with one
thread per normalised position looping over the rows.

Scalars reach the kernels in ``x``'s dtype (``zero``, ``one``, ``eps`` …), so a
float32 kernel never mixes in a float64 literal.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda._launch import MAX_THREADS_PER_BLOCK, block_sum
from jitgrad.kernels.reference.normalization import (
    _check_batch_norm,
    _check_batch_norm_backward,
    _check_layer_norm,
    _check_layer_norm_backward,
)

__all__: list[str] = kernel_names("normalization")  # the one list: kernels/_constants.py


def _or_stand_in(a: Any, stand_in: Any) -> tuple[Any, bool]:
    """``(a, True)``, or ``(stand_in, False)`` for None: one kernel signature, a flag says which (never read)."""
    return (stand_in, False) if a is None else (a, True)


# ----------------------------------------------------------------------------- batch norm

@cuda.jit
def _batch_norm_kernel(x, c, hw, weight, has_weight, bias, has_bias, running_mean, running_var, has_running,
                       training, momentum, eps, unbias, inv_m, zero, one, out, save_mean, save_invstd):
    # x, out: flat (N, C, HW).
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, x.dtype)
    m = x.size // c
    for ch in range(cuda.blockIdx.x, c, cuda.gridDim.x):
        if training:
            part = zero
            for j in range(cuda.threadIdx.x, m, cuda.blockDim.x):
                part += x[((j // hw) * c + ch) * hw + j % hw]
            mean = block_sum(buf, part) * inv_m
            part = zero
            for j in range(cuda.threadIdx.x, m, cuda.blockDim.x):
                d = x[((j // hw) * c + ch) * hw + j % hw] - mean
                part += d * d
            var = block_sum(buf, part) * inv_m
        else:
            mean = running_mean[ch]
            var = running_var[ch]
        invstd = one / math.sqrt(var + eps)
        if cuda.threadIdx.x == 0:
            save_mean[ch] = mean
            save_invstd[ch] = invstd
            if training and has_running:
                running_mean[ch] = (one - momentum) * running_mean[ch] + momentum * mean
                running_var[ch] = (one - momentum) * running_var[ch] + momentum * (var * unbias)
        scale = invstd * weight[ch] if has_weight else invstd
        shift = bias[ch] if has_bias else zero
        for j in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            at = ((j // hw) * c + ch) * hw + j % hw
            out[at] = (x[at] - mean) * scale + shift


@cuda.jit
def _batch_norm_backward_kernel(grad_out, x, c, hw, weight, has_weight, save_mean, save_invstd, training, inv_m,
                                zero, grad_x, grad_weight, grad_bias):
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, x.dtype)
    m = x.size // c
    for ch in range(cuda.blockIdx.x, c, cuda.gridDim.x):
        mean = save_mean[ch]
        invstd = save_invstd[ch]
        part_g = zero
        part_gx = zero
        for j in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            at = ((j // hw) * c + ch) * hw + j % hw
            g = grad_out[at]
            part_g += g
            part_gx += g * (x[at] - mean)
        sum_g = block_sum(buf, part_g)
        gw = block_sum(buf, part_gx) * invstd
        if cuda.threadIdx.x == 0:
            grad_bias[ch] = sum_g
            grad_weight[ch] = gw
        scale = invstd * weight[ch] if has_weight else invstd
        a = sum_g * inv_m
        b = gw * inv_m * invstd
        for j in range(cuda.threadIdx.x, m, cuda.blockDim.x):
            at = ((j // hw) * c + ch) * hw + j % hw
            if training:
                grad_x[at] = (grad_out[at] - a - (x[at] - mean) * b) * scale
            else:
                grad_x[at] = grad_out[at] * scale


def batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any, bias: Any, *, training: bool,
               momentum: float = 0.1, eps: float = 1e-5) -> tuple[Any, Any, Any]:
    n, c, hw, mom, e = _check_batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    dt = np.dtype(x.dtype).type
    out = _launch.empty(x.shape, x.dtype)
    save_mean = _launch.empty((c,), x.dtype)
    save_invstd = _launch.empty((c,), x.dtype)
    m = n * hw
    if c == 0 or (m == 0 and training):
        return out, save_mean, save_invstd
    w, has_w = _or_stand_in(weight, save_mean)
    b, has_b = _or_stand_in(bias, save_mean)
    rm, has_running = _or_stand_in(running_mean, save_mean)
    rv, _ = _or_stand_in(running_var, save_mean)
    blocks, threads = _launch.grid_rows(c)
    _batch_norm_kernel[blocks, threads](
        _launch.flat(x), c, hw, w, has_w, b, has_b, rm, rv, has_running, bool(training), dt(mom), dt(e),
        dt(m / (m - 1)) if m > 1 else dt(1), dt(1.0 / m) if m else dt(0), dt(0), dt(1), _launch.flat(out),
        save_mean, save_invstd)
    return out, save_mean, save_invstd


def batch_norm_backward(grad_out: Any, x: Any, weight: Any, save_mean: Any, save_invstd: Any, *,
                        training: bool) -> tuple[Any, Any, Any]:
    n, c, hw = _check_batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, training)
    dt = np.dtype(x.dtype).type
    grad_x = _launch.empty(x.shape, x.dtype)
    grad_weight = _launch.empty((c,), x.dtype)
    grad_bias = _launch.empty((c,), x.dtype)
    m = n * hw
    if c == 0:
        return grad_x, grad_weight, grad_bias
    w, has_w = _or_stand_in(weight, save_mean)
    blocks, threads = _launch.grid_rows(c)
    _batch_norm_backward_kernel[blocks, threads](
        _launch.flat(grad_out), _launch.flat(x), c, hw, w, has_w, save_mean, save_invstd, bool(training),
        dt(1.0 / m) if m else dt(0), dt(0), _launch.flat(grad_x), grad_weight, grad_bias)
    return grad_x, grad_weight, grad_bias


# ----------------------------------------------------------------------------- layer norm

@cuda.jit
def _layer_norm_kernel(x, weight, has_weight, bias, has_bias, eps, inv_d, zero, one, out, mean, invstd):
    # x, out: (rows, D); weight, bias: (D,).
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, x.dtype)
    rows, d = x.shape
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        part = zero
        for k in range(cuda.threadIdx.x, d, cuda.blockDim.x):
            part += x[r, k]
        mu = block_sum(buf, part) * inv_d
        part = zero
        for k in range(cuda.threadIdx.x, d, cuda.blockDim.x):
            diff = x[r, k] - mu
            part += diff * diff
        inv = one / math.sqrt(block_sum(buf, part) * inv_d + eps)
        if cuda.threadIdx.x == 0:
            mean[r] = mu
            invstd[r] = inv
        for k in range(cuda.threadIdx.x, d, cuda.blockDim.x):
            y = (x[r, k] - mu) * inv
            if has_weight:
                y *= weight[k]
            if has_bias:
                y += bias[k]
            out[r, k] = y


@cuda.jit
def _layer_norm_backward_x_kernel(grad_out, x, weight, has_weight, mean, invstd, inv_d, zero, grad_x):
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, x.dtype)
    rows, d = x.shape
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        mu = mean[r]
        inv = invstd[r]
        part_gw = zero
        part_gwx = zero
        for k in range(cuda.threadIdx.x, d, cuda.blockDim.x):
            gw = grad_out[r, k] * weight[k] if has_weight else grad_out[r, k]
            part_gw += gw
            part_gwx += gw * (x[r, k] - mu) * inv
        a = block_sum(buf, part_gw) * inv_d
        b = block_sum(buf, part_gwx) * inv_d
        for k in range(cuda.threadIdx.x, d, cuda.blockDim.x):
            gw = grad_out[r, k] * weight[k] if has_weight else grad_out[r, k]
            grad_x[r, k] = inv * (gw - a - (x[r, k] - mu) * inv * b)


@cuda.jit
def _layer_norm_backward_params_kernel(grad_out, x, mean, invstd, zero, grad_weight, grad_bias):
    # One thread per normalised position k, summing over the rows (a gather: deterministic).
    rows, d = x.shape
    for k in range(cuda.grid(1), d, cuda.gridsize(1)):
        sum_gx = zero
        sum_g = zero
        for r in range(rows):
            g = grad_out[r, k]
            sum_g += g
            sum_gx += g * (x[r, k] - mean[r]) * invstd[r]
        grad_weight[k] = sum_gx
        grad_bias[k] = sum_g


def layer_norm(x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, *,
               eps: float = 1e-5) -> tuple[Any, Any, Any]:
    rows, d, e, lead = _check_layer_norm(x, normalized_shape, weight, bias, eps)
    dt = np.dtype(x.dtype).type
    out = _launch.empty(x.shape, x.dtype)
    mean = _launch.empty(lead, x.dtype)
    invstd = _launch.empty(lead, x.dtype)
    if rows == 0:
        return out, mean, invstd
    w, has_w = _or_stand_in(None if weight is None else weight.reshape(d), _launch.flat(invstd))
    b, has_b = _or_stand_in(None if bias is None else bias.reshape(d), _launch.flat(invstd))
    blocks, threads = _launch.grid_rows(rows)
    _layer_norm_kernel[blocks, threads](x.reshape(rows, d), w, has_w, b, has_b, dt(e), dt(1.0 / d), dt(0), dt(1),
                                        out.reshape(rows, d), _launch.flat(mean), _launch.flat(invstd))
    return out, mean, invstd


def layer_norm_backward(grad_out: Any, x: Any, weight: Any, mean: Any, invstd: Any) -> tuple[Any, Any, Any]:
    rows, d = _check_layer_norm_backward(grad_out, x, weight, mean, invstd)
    dt = np.dtype(x.dtype).type
    norm_shape = tuple(x.shape[mean.ndim:])
    grad_x = _launch.empty(x.shape, x.dtype)
    grad_weight = _launch.empty((d,), x.dtype)
    grad_bias = _launch.empty((d,), x.dtype)
    g2, x2 = grad_out.reshape(rows, d), x.reshape(rows, d)
    m1, s1 = _launch.flat(mean), _launch.flat(invstd)
    if rows:
        w, has_w = _or_stand_in(None if weight is None else weight.reshape(d), grad_weight)
        blocks, threads = _launch.grid_rows(rows)
        _layer_norm_backward_x_kernel[blocks, threads](g2, x2, w, has_w, m1, s1, dt(1.0 / d), dt(0),
                                                       grad_x.reshape(rows, d))
    blocks, threads = _launch.grid_1d(d)
    _layer_norm_backward_params_kernel[blocks, threads](g2, x2, m1, s1, dt(0), grad_weight, grad_bias)
    return grad_x, grad_weight.reshape(norm_shape), grad_bias.reshape(norm_shape)
