"""CUDA local response normalisation (LRN) and its gradient.

The input is viewed as flat ``(N, C, M)``, ``M`` the product of the spatial
sizes. The forward is one grid-stride thread per output element, each summing
the squares of its window's ``size`` channels in the reference's order. The
backward gathers (no atomics, deterministic) in two launches: the first writes
``grad_out * scale ** -beta`` into ``grad_x`` and ``t = grad_out * y / scale``
into a scratch array; the second adds, per element, ``t`` over the transposed
window and finishes ``grad_x``.

The wrappers pass every float hyper-parameter through ``_launch.typed``, so a
float32 kernel computes in float32 (``powf``, ``sqrtf``), as the CPU does.
"""

from __future__ import annotations

from typing import Any

from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.reference.lrn import _check_lrn, _check_lrn_backward

__all__: list[str] = kernel_names("lrn")  # the one list: kernels/_constants.py


@cuda.jit(device=True)
def _scale(x, i, channels, m, size, lead, coef, bias, zero):
    # bias + coef * (sum of x ** 2 over the window of the channel of flat index i)
    c = (i // m) % channels
    base = i - c * m  # index of channel 0 at this (n, position)
    acc = zero
    for j in range(max(0, c - lead), min(channels, c - lead + size)):
        v = x[base + j * m]
        acc += v * v
    return bias + coef * acc


@cuda.jit
def _lrn_kernel(x, channels, m, size, lead, coef, neg_beta, bias, zero, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        s = _scale(x, i, channels, m, size, lead, coef, bias, zero)
        out[i] = x[i] * s ** neg_beta


@cuda.jit
def _lrn_backward_first_kernel(grad_out, x, channels, m, size, lead, coef, neg_beta, bias, zero, grad_x, t):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        s = _scale(x, i, channels, m, size, lead, coef, bias, zero)
        power = s ** neg_beta
        g = grad_out[i]
        grad_x[i] = g * power
        t[i] = g * (x[i] * power) / s


@cuda.jit
def _lrn_backward_second_kernel(x, t, channels, m, size, lead, two_coef_beta, zero, grad_x):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        j = (i // m) % channels
        base = i - j * m
        back = zero
        for c in range(max(0, j - (size - 1 - lead)), min(channels, j + lead + 1)):
            back += t[base + c * m]
        grad_x[i] = grad_x[i] - two_coef_beta * x[i] * back


def lrn(x: Any, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0,
        before: int | None = None) -> Any:
    n, c, m, lead, coef, b, k = _check_lrn(x, size, alpha, beta, bias, before)
    out = _launch.empty(x.shape, x.dtype)
    if x.size == 0:
        return out
    blocks, threads = _launch.grid_1d(x.size)
    _lrn_kernel[blocks, threads](_launch.flat(x), c, m, int(size), lead,
                                 *_launch.typed(x.dtype, coef, -b, k, 0.0), _launch.flat(out))
    return out


def lrn_backward(grad_out: Any, x: Any, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0,
                 before: int | None = None) -> Any:
    n, c, m, lead, coef, b, k = _check_lrn_backward(grad_out, x, size, alpha, beta, bias, before)
    grad_x = _launch.empty(x.shape, x.dtype)
    if x.size == 0:
        return grad_x
    t = _launch.empty((x.size,), x.dtype)
    blocks, threads = _launch.grid_1d(x.size)
    flat_x, flat_gx = _launch.flat(x), _launch.flat(grad_x)
    _lrn_backward_first_kernel[blocks, threads](_launch.flat(grad_out), flat_x, c, m, int(size), lead,
                                                *_launch.typed(x.dtype, coef, -b, k, 0.0), flat_gx, t)
    _lrn_backward_second_kernel[blocks, threads](flat_x, t, c, m, int(size), lead,
                                                 *_launch.typed(x.dtype, 2 * coef * b, 0.0), flat_gx)
    return grad_x
