"""CPU activations and their gradients: Numba ``@njit`` elementwise loops.

Every kernel works on the flattened (contiguous, so free) 1-D view of its
arrays, so one specialisation per dtype serves every rank. ``prange`` runs over
the elements: Numba hands each thread one contiguous block (disjoint writes),
and the per-thread loop it generates is plain enough for LLVM to vectorise.
(A hand-chunked ``prange`` over blocks with an inner ``range(start, stop)``
measured about 2x slower: LLVM did not vectorise the inner loop.) Hyper-parameters and
constants are cast to the array's dtype, so a float32 kernel never drifts into
float64 arithmetic and signatures stay at two per kernel.

The transcendental functions come from :mod:`._elementary` (float32: branch-free
polynomials that LLVM vectorises, 8 lanes on AVX2; float64: ``math``), and every
kernel uses ``error_model="numpy"``: Python's division-by-zero check is a branch
that keeps a loop scalar. NaN and ±inf come out exactly where the reference's
formulas put them (``relu(NaN)`` is NaN, as ``np.maximum``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from jitgrad.config import FASTMATH
from jitgrad.kernels._constants import GELU_KAPPA as _GELU_KAPPA  # defined once for all backends
from jitgrad.kernels._constants import INV_SQRT_2 as _INV_SQRT_2
from jitgrad.kernels._constants import INV_SQRT_2PI as _INV_SQRT_2PI
from jitgrad.kernels._constants import SQRT_2_OVER_PI as _SQRT_2_OVER_PI
from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cpu import _elementary as ef
from jitgrad.kernels.reference.activations import (
    _check_alpha,
    _check_approximate,
    _check_backward,
    _check_forward,
    _check_negative_slope,
    _check_softplus,
)

__all__: list[str] = kernel_names("activations")  # the one list: kernels/_constants.py

_FASTMATH = set(FASTMATH)


def _flat(a: np.ndarray) -> np.ndarray:
    # A free view: the wrappers have checked C-contiguity.
    return a.reshape(-1)


# ----------------------------------------------------------------------------- relu family

# ReLU is one compare per element: memory-bound, so a second thread buys little and
# waking it costs ~10 us. Below ``_RELU_PARALLEL_MIN_SIZE`` elements a serial twin runs
# (the LeNet-5 activations, 15k to 442k elements, measured 1.1-3x faster serially).

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
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


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _relu_backward_kernel(grad_out, x, out):
    zero = x.dtype.type(0)
    for i in prange(x.size):
        out[i] = grad_out[i] if x[i] > zero else zero


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _relu_backward_kernel_serial(grad_out, x, out):
    # The loop body written out, not an inlined helper shared with the parallel twin: the
    # helper version compiled to a branchy loop 250x slower (measured).
    zero = x.dtype.type(0)
    for i in range(x.size):
        out[i] = grad_out[i] if x[i] > zero else zero


#: Below this many elements relu and relu_backward run their serial twin (see above).
_RELU_PARALLEL_MIN_SIZE = 1 << 20


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _leaky_relu_kernel(x, slope, out):
    n = x.size
    zero = x.dtype.type(0)
    for i in prange(n):
        v = x[i]
        out[i] = v if v > zero else slope * v


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _leaky_relu_backward_kernel(grad_out, x, slope, out):
    n = x.size
    zero = x.dtype.type(0)
    for i in prange(n):
        g = grad_out[i]
        out[i] = g if x[i] > zero else slope * g


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)``; ``x`` float32/float64 of any shape, returns the same shape and dtype."""
    _check_forward(x)
    out = np.empty_like(x)
    kernel = _relu_kernel if x.size >= _RELU_PARALLEL_MIN_SIZE else _relu_kernel_serial
    kernel(_flat(x), _flat(out))
    return out


def relu_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad_out`` where ``x > 0``, else 0 (the gradient at 0 is 0)."""
    _check_backward(grad_out, x)
    out = np.empty_like(x)
    kernel = _relu_backward_kernel if x.size >= _RELU_PARALLEL_MIN_SIZE else _relu_backward_kernel_serial
    kernel(_flat(grad_out), _flat(x), _flat(out))
    return out


def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """``x`` where ``x > 0``, else ``negative_slope * x``; same shape and dtype as ``x``."""
    _check_forward(x)
    slope = x.dtype.type(_check_negative_slope(negative_slope))
    out = np.empty_like(x)
    _leaky_relu_kernel(_flat(x), slope, _flat(out))
    return out


def leaky_relu_backward(grad_out: np.ndarray, x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """``grad_out`` where ``x > 0``, else ``negative_slope * grad_out``."""
    _check_backward(grad_out, x)
    slope = x.dtype.type(_check_negative_slope(negative_slope))
    out = np.empty_like(x)
    _leaky_relu_backward_kernel(_flat(grad_out), _flat(x), slope, _flat(out))
    return out


# ----------------------------------------------------------------------------- sigmoid, tanh

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _sigmoid_scalar(v, one):
    # exp of a non-positive number only, so it never overflows; a select, not a branch.
    e = ef.exp(-abs(v))
    inv = one / (one + e)
    return inv if v >= 0 else e * inv


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _sigmoid_kernel(x, out):
    n = x.size
    one = x.dtype.type(1)
    for i in prange(n):
        out[i] = _sigmoid_scalar(x[i], one)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _sigmoid_backward_kernel(grad_out, x, out):
    n = x.size
    one = x.dtype.type(1)
    for i in prange(n):
        s = _sigmoid_scalar(x[i], one)
        out[i] = grad_out[i] * s * (one - s)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _tanh_kernel(x, out):
    n = x.size
    for i in prange(n):
        out[i] = ef.tanh(x[i])


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _tanh_backward_kernel(grad_out, x, out):
    n = x.size
    one = x.dtype.type(1)
    for i in prange(n):
        t = ef.tanh(x[i])
        out[i] = grad_out[i] * (one - t * t)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, stable for large ``|x|``; same shape and dtype as ``x``."""
    _check_forward(x)
    out = np.empty_like(x)
    _sigmoid_kernel(_flat(x), _flat(out))
    return out


def sigmoid_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad_out * s * (1 - s)`` with ``s = sigmoid(x)``."""
    _check_backward(grad_out, x)
    out = np.empty_like(x)
    _sigmoid_backward_kernel(_flat(grad_out), _flat(x), _flat(out))
    return out


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent; same shape and dtype as ``x``."""
    _check_forward(x)
    out = np.empty_like(x)
    _tanh_kernel(_flat(x), _flat(out))
    return out


def tanh_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``grad_out * (1 - tanh(x)**2)``."""
    _check_backward(grad_out, x)
    out = np.empty_like(x)
    _tanh_backward_kernel(_flat(grad_out), _flat(x), _flat(out))
    return out


# ----------------------------------------------------------------------------- gelu

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _gelu_kernel(x, tanh_approx, out):
    n = x.size
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    inv_sqrt_2 = x.dtype.type(_INV_SQRT_2)
    sqrt_2_over_pi = x.dtype.type(_SQRT_2_OVER_PI)
    kappa = x.dtype.type(_GELU_KAPPA)
    for i in prange(n):
        v = x[i]
        if tanh_approx:
            out[i] = half * v * (one + ef.tanh(sqrt_2_over_pi * (v + kappa * v * v * v)))
        else:
            out[i] = half * v * (one + ef.erf(v * inv_sqrt_2))


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _gelu_backward_kernel(grad_out, x, tanh_approx, out):
    n = x.size
    half = x.dtype.type(0.5)
    one = x.dtype.type(1)
    three = x.dtype.type(3)
    inv_sqrt_2 = x.dtype.type(_INV_SQRT_2)
    inv_sqrt_2pi = x.dtype.type(_INV_SQRT_2PI)
    sqrt_2_over_pi = x.dtype.type(_SQRT_2_OVER_PI)
    kappa = x.dtype.type(_GELU_KAPPA)
    for i in prange(n):
        v = x[i]
        if tanh_approx:
            t = ef.tanh(sqrt_2_over_pi * (v + kappa * v * v * v))
            d_inner = sqrt_2_over_pi * (one + three * kappa * v * v)
            d = half * (one + t) + half * v * (one - t * t) * d_inner
        else:
            cdf = half * (one + ef.erf(v * inv_sqrt_2))
            d = cdf + v * inv_sqrt_2pi * ef.exp(-half * v * v)
        out[i] = grad_out[i] * d


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU, PyTorch's two definitions; same shape and dtype as ``x``.

    ``"none"``: ``x/2 (1 + erf(x / sqrt 2))``;
    ``"tanh"``: ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    """
    _check_forward(x)
    tanh_approx = _check_approximate(approximate)
    out = np.empty_like(x)
    _gelu_kernel(_flat(x), tanh_approx, _flat(out))
    return out


def gelu_backward(grad_out: np.ndarray, x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """Gradient of :func:`gelu` at ``x`` times ``grad_out``."""
    _check_backward(grad_out, x)
    tanh_approx = _check_approximate(approximate)
    out = np.empty_like(x)
    _gelu_backward_kernel(_flat(grad_out), _flat(x), tanh_approx, _flat(out))
    return out


# ----------------------------------------------------------------------------- elu, softplus

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _elu_kernel(x, alpha, out):
    n = x.size
    zero = x.dtype.type(0)
    for i in prange(n):
        v = x[i]
        # expm1 keeps relative accuracy for small negative x.
        out[i] = v if v > zero else alpha * ef.expm1(v)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _elu_backward_kernel(grad_out, x, alpha, out):
    n = x.size
    zero = x.dtype.type(0)
    for i in prange(n):
        v = x[i]
        g = grad_out[i]
        out[i] = g if v > zero else g * alpha * ef.exp(v)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _softplus_kernel(x, beta, threshold, out):
    n = x.size
    for i in prange(n):
        v = x[i]
        bx = beta * v
        out[i] = v if bx > threshold else ef.log1p(ef.exp(bx)) / beta


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _softplus_backward_kernel(grad_out, x, beta, threshold, out):
    n = x.size
    one = x.dtype.type(1)
    for i in prange(n):
        bx = beta * x[i]
        g = grad_out[i]
        out[i] = g if bx > threshold else g * _sigmoid_scalar(bx, one)


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``; same shape and dtype as ``x``."""
    _check_forward(x)
    a = x.dtype.type(_check_alpha(alpha))
    out = np.empty_like(x)
    _elu_kernel(_flat(x), a, _flat(out))
    return out


def elu_backward(grad_out: np.ndarray, x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``grad_out`` where ``x > 0``, else ``grad_out * alpha * exp(x)``."""
    _check_backward(grad_out, x)
    a = x.dtype.type(_check_alpha(alpha))
    out = np.empty_like(x)
    _elu_backward_kernel(_flat(grad_out), _flat(x), a, _flat(out))
    return out


def softplus(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    """``log1p(exp(beta x)) / beta``, and ``x`` itself where ``beta x > threshold`` (as PyTorch)."""
    _check_forward(x)
    beta, threshold = _check_softplus(beta, threshold)
    out = np.empty_like(x)
    _softplus_kernel(_flat(x), x.dtype.type(beta), x.dtype.type(threshold), _flat(out))
    return out


def softplus_backward(grad_out: np.ndarray, x: np.ndarray, beta: float = 1.0,
                      threshold: float = 20.0) -> np.ndarray:
    """``grad_out * sigmoid(beta x)``, and ``grad_out`` where ``beta x > threshold``."""
    _check_backward(grad_out, x)
    beta, threshold = _check_softplus(beta, threshold)
    out = np.empty_like(x)
    _softplus_backward_kernel(_flat(grad_out), _flat(x), x.dtype.type(beta), x.dtype.type(threshold),
                              _flat(out))
    return out
