"""CPU local response normalisation (LRN) and its gradient: Numba ``@njit`` kernels over (N*C) planes.

The input is viewed as ``(N, C, M)`` with ``M`` the product of the spatial
sizes. One plane ``(n, c)`` is written by one thread (``prange`` over ``N*C``),
so nothing is shared: the plane's window sum of squares is accumulated channel
by channel into its own output row (the inner loop over ``M`` vectorises), then
turned into ``x * scale ** -beta`` in place. Summing channel by channel in the
reference's order keeps the float32 rounding of the reference, and a NaN or
infinity reaches exactly the channels whose window holds it (a sliding sum that
subtracts the channel leaving the window would smear ``inf - inf`` onward).

The backward runs two ``prange`` passes over planes: the first writes
``grad_out * scale ** -beta`` into ``grad_x`` and ``t = grad_out * y / scale``
into a scratch array; the second adds up ``t`` over each channel's transposed
window (into a per-plane row) and finishes ``grad_x``.

``beta = 0.75`` (AlexNet, GoogLeNet, every LRN of the ONNX model zoo) takes
``scale ** -0.75 = 1 / (sqrt(scale) * sqrt(sqrt(scale)))``: square roots
vectorise where ``pow`` does not. Both forms give the same values to rounding
and the same NaN/inf (``sqrt`` of a negative scale is NaN, as its ``pow``).

Each kernel has a serial twin below 32K elements, where waking the worker
threads costs more than the work.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference.lrn import _check_lrn, _check_lrn_backward

from ._jit import FASTMATH as _FASTMATH, PRANGE_ONLY, njit

__all__: list[str] = kernel_names("lrn")  # the one list: kernels/_constants.py

_SERIAL_BELOW = 1 << 15


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _window_squares(x, size, lead, out, n, c):
    # out[n, c, :] = sum of x[n, j, :] ** 2 over the window of channel c, in the reference's order.
    channels, m = x.shape[1], x.shape[2]
    zero = x.dtype.type(0)
    for k in range(m):
        out[n, c, k] = zero
    for j in range(max(0, c - lead), min(channels, c - lead + size)):
        for k in range(m):
            v = x[n, j, k]
            out[n, c, k] += v * v


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _power(s, neg_beta, three_quarters, one):
    # s ** -beta; for beta = 0.75 with square roots (vectorisable), the same value to rounding.
    if three_quarters:
        r = math.sqrt(s)
        return one / (r * math.sqrt(r))
    return s ** neg_beta


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _plane_forward(x, size, lead, coef, neg_beta, bias, three_quarters, out, p):
    n, c = p // x.shape[1], p % x.shape[1]
    _window_squares(x, size, lead, out, n, c)
    one = x.dtype.type(1)
    for k in range(x.shape[2]):
        out[n, c, k] = x[n, c, k] * _power(bias + coef * out[n, c, k], neg_beta, three_quarters, one)


@njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _lrn_kernel(x, size, lead, coef, neg_beta, bias, three_quarters, out):
    for p in prange(x.shape[0] * x.shape[1]):
        _plane_forward(x, size, lead, coef, neg_beta, bias, three_quarters, out, p)


@njit(cache=True, fastmath=_FASTMATH)
def _lrn_kernel_serial(x, size, lead, coef, neg_beta, bias, three_quarters, out):
    for p in range(x.shape[0] * x.shape[1]):
        _plane_forward(x, size, lead, coef, neg_beta, bias, three_quarters, out, p)


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _plane_backward_first(grad_out, x, size, lead, coef, neg_beta, bias, three_quarters, grad_x, t, p):
    # grad_x = grad_out * scale ** -beta; t = grad_out * y / scale (t first holds the window sum).
    n, c = p // x.shape[1], p % x.shape[1]
    _window_squares(x, size, lead, t, n, c)
    one = x.dtype.type(1)
    for k in range(x.shape[2]):
        s = bias + coef * t[n, c, k]
        power = _power(s, neg_beta, three_quarters, one)
        g = grad_out[n, c, k]
        grad_x[n, c, k] = g * power
        t[n, c, k] = g * (x[n, c, k] * power) / s


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _plane_backward_second(x, size, lead, two_coef_beta, t, grad_x, p):
    # grad_x[j] -= 2 alpha/size beta x[j] * sum(t[c] for c in j - after .. j + lead)
    channels, m = x.shape[1], x.shape[2]
    n, j = p // channels, p % channels
    after = size - 1 - lead
    back = np.zeros(m, dtype=x.dtype)
    for c in range(max(0, j - after), min(channels, j + lead + 1)):
        for k in range(m):
            back[k] += t[n, c, k]
    for k in range(m):
        grad_x[n, j, k] = grad_x[n, j, k] - two_coef_beta * x[n, j, k] * back[k]


@njit(cache=True, fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _lrn_backward_kernel(grad_out, x, size, lead, coef, neg_beta, bias, three_quarters, two_coef_beta, grad_x, t):
    planes = x.shape[0] * x.shape[1]
    for p in prange(planes):
        _plane_backward_first(grad_out, x, size, lead, coef, neg_beta, bias, three_quarters, grad_x, t, p)
    for p in prange(planes):
        _plane_backward_second(x, size, lead, two_coef_beta, t, grad_x, p)


@njit(cache=True, fastmath=_FASTMATH)
def _lrn_backward_kernel_serial(grad_out, x, size, lead, coef, neg_beta, bias, three_quarters, two_coef_beta,
                                grad_x, t):
    planes = x.shape[0] * x.shape[1]
    for p in range(planes):
        _plane_backward_first(grad_out, x, size, lead, coef, neg_beta, bias, three_quarters, grad_x, t, p)
    for p in range(planes):
        _plane_backward_second(x, size, lead, two_coef_beta, t, grad_x, p)


def lrn(x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0,
        before: int | None = None) -> np.ndarray:
    n, c, m, lead, coef, b, k = _check_lrn(x, size, alpha, beta, bias, before)
    dt = x.dtype.type
    out = np.empty_like(x)
    if x.size == 0:
        return out
    kernel = _lrn_kernel if x.size >= _SERIAL_BELOW else _lrn_kernel_serial
    kernel(x.reshape(n, c, m), int(size), lead, dt(coef), dt(-b), dt(k), b == 0.75, out.reshape(n, c, m))
    return out


def lrn_backward(grad_out: np.ndarray, x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75,
                 bias: float = 1.0, before: int | None = None) -> np.ndarray:
    n, c, m, lead, coef, b, k = _check_lrn_backward(grad_out, x, size, alpha, beta, bias, before)
    dt = x.dtype.type
    grad_x = np.empty_like(x)
    if x.size == 0:
        return grad_x
    t = np.empty((n, c, m), dtype=x.dtype)
    kernel = _lrn_backward_kernel if x.size >= _SERIAL_BELOW else _lrn_backward_kernel_serial
    kernel(grad_out.reshape(n, c, m), x.reshape(n, c, m), int(size), lead, dt(coef), dt(-b), dt(k), b == 0.75,
           dt(2 * coef * b), grad_x.reshape(n, c, m), t)
    return grad_x
