"""CUDA activations and their gradients (elementwise, any shape, C-contiguous).

One grid-stride kernel per function over the flattened array. As in every
backend, ``name_backward(grad_out, x, ...)`` takes the forward *input* ``x``.
Hyper-parameters arrive as float64 kernel arguments, so the float32 kernels
evaluate the few non-linear terms in double precision and round once on store.
"""

from __future__ import annotations

import math
from typing import Any

from numba import cuda

from jitgrad.kernels._constants import GELU_KAPPA as _GELU_KAPPA  # defined once for all backends
from jitgrad.kernels._constants import INV_SQRT_2 as _INV_SQRT_2
from jitgrad.kernels._constants import INV_SQRT_2PI as _INV_SQRT_2PI
from jitgrad.kernels._constants import SQRT_2_OVER_PI as _SQRT_2_OVER_PI
from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.reference.activations import (
    _check_alpha, _check_approximate, _check_backward, _check_forward, _check_negative_slope, _check_softplus,
)

__all__: list[str] = kernel_names("activations")  # the one list: kernels/_constants.py


@cuda.jit(device=True)
def _sigmoid(v):
    # exp of a non-positive number only: neither branch overflows.
    one = type(v)(1)
    if v >= 0:
        return one / (one + math.exp(-v))
    e = math.exp(v)
    return e / (one + e)


# ----------------------------------------------------------------------------- kernels

@cuda.jit
def _relu_kernel(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = x.dtype.type(0) if v < 0 else v  # NaN fails the test and passes through, as np.maximum


@cuda.jit
def _relu_backward_kernel(g, x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = g[i] if x[i] > 0 else x.dtype.type(0)


@cuda.jit
def _leaky_relu_kernel(x, slope, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = v if v > 0 else v * slope


@cuda.jit
def _leaky_relu_backward_kernel(g, x, slope, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = g[i] if x[i] > 0 else g[i] * slope


@cuda.jit
def _sigmoid_kernel(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = _sigmoid(x[i])


@cuda.jit
def _sigmoid_backward_kernel(g, x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        s = _sigmoid(x[i])
        out[i] = g[i] * s * (x.dtype.type(1) - s)


@cuda.jit
def _tanh_kernel(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = math.tanh(x[i])


@cuda.jit
def _tanh_backward_kernel(g, x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        t = math.tanh(x[i])
        out[i] = g[i] * (x.dtype.type(1) - t * t)


@cuda.jit
def _gelu_kernel(x, use_tanh, out):
    t = x.dtype.type
    half, one, sqrt_2_over_pi, kappa, inv_sqrt_2 = t(0.5), t(1), t(_SQRT_2_OVER_PI), t(_GELU_KAPPA), t(_INV_SQRT_2)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if use_tanh:
            out[i] = half * v * (one + math.tanh(sqrt_2_over_pi * (v + kappa * v * v * v)))
        else:
            out[i] = half * v * (one + math.erf(v * inv_sqrt_2))


@cuda.jit
def _gelu_backward_kernel(g, x, use_tanh, out):
    t = x.dtype.type
    half, one, sqrt_2_over_pi, kappa, inv_sqrt_2 = t(0.5), t(1), t(_SQRT_2_OVER_PI), t(_GELU_KAPPA), t(_INV_SQRT_2)
    three_kappa, inv_sqrt_2pi = t(3.0 * _GELU_KAPPA), t(_INV_SQRT_2PI)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if use_tanh:
            th = math.tanh(sqrt_2_over_pi * (v + kappa * v * v * v))
            d_inner = sqrt_2_over_pi * (one + three_kappa * v * v)
            d = half * (one + th) + half * v * (one - th * th) * d_inner
        else:
            d = half * (one + math.erf(v * inv_sqrt_2)) + v * inv_sqrt_2pi * math.exp(-half * v * v)
        out[i] = g[i] * d


@cuda.jit
def _elu_kernel(x, alpha, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        # expm1 keeps relative accuracy near 0.
        out[i] = v if v > 0 else alpha * math.expm1(v)


@cuda.jit
def _elu_backward_kernel(g, x, alpha, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = g[i] if v > 0 else g[i] * alpha * math.exp(v)


@cuda.jit
def _softplus_kernel(x, beta, threshold, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        bv = beta * v
        # Linear above the threshold (as PyTorch); exp is never evaluated there, so never overflows.
        out[i] = v if bv > threshold else math.log1p(math.exp(bv)) / beta


@cuda.jit
def _softplus_backward_kernel(g, x, beta, threshold, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        bv = beta * x[i]
        out[i] = g[i] if bv > threshold else g[i] * _sigmoid(bv)


# ----------------------------------------------------------------------------- launch helpers
#
# Launch only: each public wrapper validates first (x, then its hyper-parameters, as
# in every backend), so the helpers take checked arrays and plain values.

def _forward(kernel: Any, x: Any, *params: Any) -> Any:
    out = _launch.empty(x.shape, x.dtype)
    if x.size:
        blocks, threads = _launch.grid_1d(x.size)
        kernel[blocks, threads](_launch.flat(x), *_launch.typed(x.dtype, *params), _launch.flat(out))
    return out


def _backward(kernel: Any, grad_out: Any, x: Any, *params: Any) -> Any:
    out = _launch.empty(x.shape, x.dtype)
    if x.size:
        blocks, threads = _launch.grid_1d(x.size)
        kernel[blocks, threads](_launch.flat(grad_out), _launch.flat(x), *_launch.typed(x.dtype, *params),
                                _launch.flat(out))
    return out


# ----------------------------------------------------------------------------- public API

def relu(x: Any) -> Any:
    _check_forward(x)
    return _forward(_relu_kernel, x)


def relu_backward(grad_out: Any, x: Any) -> Any:
    _check_backward(grad_out, x)
    return _backward(_relu_backward_kernel, grad_out, x)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    _check_forward(x)
    return _forward(_leaky_relu_kernel, x, _check_negative_slope(negative_slope))


def leaky_relu_backward(grad_out: Any, x: Any, negative_slope: float = 0.01) -> Any:
    _check_backward(grad_out, x)
    return _backward(_leaky_relu_backward_kernel, grad_out, x, _check_negative_slope(negative_slope))


def sigmoid(x: Any) -> Any:
    _check_forward(x)
    return _forward(_sigmoid_kernel, x)


def sigmoid_backward(grad_out: Any, x: Any) -> Any:
    _check_backward(grad_out, x)
    return _backward(_sigmoid_backward_kernel, grad_out, x)


def tanh(x: Any) -> Any:
    _check_forward(x)
    return _forward(_tanh_kernel, x)


def tanh_backward(grad_out: Any, x: Any) -> Any:
    _check_backward(grad_out, x)
    return _backward(_tanh_backward_kernel, grad_out, x)


def gelu(x: Any, approximate: str = "none") -> Any:
    _check_forward(x)
    return _forward(_gelu_kernel, x, _check_approximate(approximate))


def gelu_backward(grad_out: Any, x: Any, approximate: str = "none") -> Any:
    _check_backward(grad_out, x)
    return _backward(_gelu_backward_kernel, grad_out, x, _check_approximate(approximate))


def elu(x: Any, alpha: float = 1.0) -> Any:
    _check_forward(x)
    return _forward(_elu_kernel, x, _check_alpha(alpha))


def elu_backward(grad_out: Any, x: Any, alpha: float = 1.0) -> Any:
    _check_backward(grad_out, x)
    return _backward(_elu_backward_kernel, grad_out, x, _check_alpha(alpha))


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    _check_forward(x)
    return _forward(_softplus_kernel, x, *_check_softplus(beta, threshold))


def softplus_backward(grad_out: Any, x: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    _check_backward(grad_out, x)
    return _backward(_softplus_backward_kernel, grad_out, x, *_check_softplus(beta, threshold))
