"""NumPy reference activations and their gradients (elementwise, any shape).

Every forward ``name(x, ...) -> y`` has a twin ``name_backward(grad_out, x, ...)``
that takes the forward *input* ``x``, so all activations share one backward
signature. Definitions follow PyTorch (see docs/kernel-api.md).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from jitgrad.kernels._constants import GELU_KAPPA as _GELU_KAPPA  # defined once for all backends
from jitgrad.kernels._constants import INV_SQRT_2 as _INV_SQRT_2
from jitgrad.kernels._constants import INV_SQRT_2PI as _INV_SQRT_2PI
from jitgrad.kernels._constants import SQRT_2_OVER_PI as _SQRT_2_OVER_PI
from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._validate import check_array, check_same_dtype, check_scalar, check_shape

__all__: list[str] = kernel_names("activations")  # the one list: kernels/_constants.py

GELU_APPROXIMATIONS = ("none", "tanh")

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


# ----------------------------------------------------------------------------- docstrings
#
# Every activation's contract has the same Parameters and Returns sections but for
# its own scalars: written once here, appended to each summary by ``_contract``.

_PARAM_DOCS = {
    "x": "x : ndarray\n    float32 or float64, any shape, C-contiguous.",
    "grad_out": "grad_out : ndarray\n    Gradient with respect to the forward's output: ``x``'s shape and dtype.",
    "x_input": "x : ndarray\n    The forward's *input* (every activation's backward takes it).",
    "negative_slope": "negative_slope : float, default 0.01\n    Slope for ``x <= 0``.",
    "approximate": 'approximate : {"none", "tanh"}, default "none"\n    Which of PyTorch\'s two definitions.',
    "alpha": "alpha : float, default 1.0\n    Scale of the negative branch.",
    "beta": "beta : float, default 1.0\n    Sharpness, ``> 0``.",
    "threshold": "threshold : float, default 20.0\n    Where ``beta x > threshold`` the result is linear (as PyTorch).",
}


def _contract(*scalars: str, backward: bool = False):
    """Append the numpydoc Parameters/Returns sections to an activation's summary docstring."""
    names = (["grad_out", "x_input"] if backward else ["x"]) + list(scalars)
    result = "grad_x" if backward else "y"
    body = "\n".join(_PARAM_DOCS[n] for n in names)
    sections = (f"Parameters\n----------\n{body}\n\n"
                f"Returns\n-------\n{result} : ndarray\n    ``x``'s shape and dtype.\n")

    def decorate(fn):
        summary = inspect.cleandoc(fn.__doc__)
        fn.__doc__ = f"{summary}\n\n{sections}"
        return fn
    return decorate


# ----------------------------------------------------------------------------- validation
#
# Called by the reference, CPU and CUDA wrappers alike: one message per check.

def _check_forward(x: np.ndarray) -> None:
    check_array("x", x)


def _check_backward(grad_out: np.ndarray, x: np.ndarray) -> None:
    check_array("grad_out", grad_out)
    check_array("x", x)
    check_same_dtype(grad_out=grad_out, x=x)
    check_shape("grad_out", grad_out, x.shape)


def _check_negative_slope(negative_slope: Any) -> float:
    return check_scalar("negative_slope", negative_slope)


def _check_approximate(approximate: Any) -> bool:
    """Validate gelu's ``approximate``; True for the tanh form."""
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate == "tanh"


def _check_alpha(alpha: Any) -> float:
    return check_scalar("alpha", alpha)


def _check_softplus(beta: Any, threshold: Any) -> tuple[float, float]:
    return (check_scalar("beta", beta, minimum=0.0, min_inclusive=False),
            check_scalar("threshold", threshold))


# ----------------------------------------------------------------------------- erf

def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorised ``erf`` accurate to a few ulp in float64 (NumPy has none, SciPy is optional).

    Abramowitz-Stegun style fits (7.1.26: 1.5e-7) are far too coarse for float64
    tests, and ``np.vectorize(math.erf)`` is a Python loop. Instead: for
    ``|x| < 2`` the all-positive series ``erf x = 2/sqrt(pi) e^{-x^2}
    sum_n (2x^2)^n x / (2n+1)!!`` (no cancellation, 60 terms converge);
    beyond, the continued fraction of ``erfc`` evaluated bottom-up (100 levels),
    which converges fast for large arguments. Measured against ``math.erf`` on
    [-8, 8]: max error 1.1e-15.
    """
    x = np.asarray(x, dtype=np.float64)
    small = np.abs(x) < 2.0
    xs = np.where(small, x, 0.0)
    two_x2 = 2.0 * xs * xs
    term = xs.copy()
    total = xs.copy()
    for n in range(1, 60):
        term *= two_x2 / (2 * n + 1)
        total += term
    series = _TWO_OVER_SQRT_PI * np.exp(-xs * xs) * total

    z = np.where(small, 2.0, np.abs(x))
    with np.errstate(invalid="ignore"):  # z = inf gives inf/inf below; erf(+-inf) is fixed by copysign
        frac = z.copy()
        for k in range(100, 0, -1):
            frac = z + (0.5 * k) / frac
        erfc = np.exp(-z * z) / (math.sqrt(math.pi) * frac)
    erfc = np.where(np.isinf(z), 0.0, erfc)
    return np.where(small, series, np.copysign(1.0 - erfc, x))


# ----------------------------------------------------------------------------- relu family

@_contract()
def relu(x: np.ndarray) -> np.ndarray:
    """Rectified linear unit: ``max(x, 0)``."""
    _check_forward(x)
    return np.maximum(x, x.dtype.type(0))


@_contract(backward=True)
def relu_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu`: ``grad_out`` where ``x > 0``, else 0 (0 at ``x = 0``)."""
    _check_backward(grad_out, x)
    return np.where(x > 0, grad_out, grad_out.dtype.type(0))


@_contract('negative_slope')
def leaky_relu(x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """Leaky ReLU: ``x`` where ``x > 0``, else ``negative_slope * x``."""
    _check_forward(x)
    slope = x.dtype.type(_check_negative_slope(negative_slope))
    return np.where(x > 0, x, x * slope)


@_contract('negative_slope', backward=True)
def leaky_relu_backward(grad_out: np.ndarray, x: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
    """Gradient of :func:`leaky_relu`: ``grad_out`` where ``x > 0``, else ``negative_slope * grad_out``."""
    _check_backward(grad_out, x)
    slope = x.dtype.type(_check_negative_slope(negative_slope))
    return np.where(x > 0, grad_out, grad_out * slope)


# ----------------------------------------------------------------------------- sigmoid, tanh

def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only, so neither branch overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@_contract()
def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, stable for large ``|x|``."""
    _check_forward(x)
    return _sigmoid(x)


@_contract(backward=True)
def sigmoid_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`sigmoid`: ``grad_out * s * (1 - s)`` with ``s = sigmoid(x)``."""
    _check_backward(grad_out, x)
    s = _sigmoid(x)
    return grad_out * s * (1 - s)


@_contract()
def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    _check_forward(x)
    return np.tanh(x)


@_contract(backward=True)
def tanh_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`tanh`: ``grad_out * (1 - tanh(x)**2)``."""
    _check_backward(grad_out, x)
    t = np.tanh(x)
    return grad_out * (1 - t * t)


# ----------------------------------------------------------------------------- gelu

@_contract('approximate')
def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU, PyTorch's two definitions.

    ``"none"``: ``x * Phi(x) = x/2 (1 + erf(x / sqrt 2))``;
    ``"tanh"``: ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    _check_forward(x)
    if _check_approximate(approximate):
        inner = _SQRT_2_OVER_PI * (x + _GELU_KAPPA * x * x * x)
        y = 0.5 * x * (1.0 + np.tanh(inner))
    else:
        y = 0.5 * x * (1.0 + _erf(x * _INV_SQRT_2))
    return y.astype(x.dtype, copy=False)


@_contract('approximate', backward=True)
def gelu_backward(grad_out: np.ndarray, x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """Gradient of :func:`gelu` at ``x``, times ``grad_out``."""
    _check_backward(grad_out, x)
    if _check_approximate(approximate):
        t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_KAPPA * x * x * x))
        d_inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_KAPPA * x * x)
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner
    else:
        cdf = 0.5 * (1.0 + _erf(x * _INV_SQRT_2))
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        d = cdf + x * pdf
    return (grad_out * d).astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------- elu, softplus

@_contract('alpha')
def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """ELU: ``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    _check_forward(x)
    a = x.dtype.type(_check_alpha(alpha))
    # expm1 keeps relative accuracy near 0; np.minimum avoids overflow warnings on the unused branch.
    return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))


@_contract('alpha', backward=True)
def elu_backward(grad_out: np.ndarray, x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Gradient of :func:`elu`: ``grad_out`` where ``x > 0``, else ``grad_out * alpha * exp(x)``."""
    _check_backward(grad_out, x)
    a = x.dtype.type(_check_alpha(alpha))
    return np.where(x > 0, grad_out, grad_out * a * np.exp(np.minimum(x, 0)))


@_contract('beta', 'threshold')
def softplus(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    """Softplus ``log1p(exp(beta x)) / beta``, and ``x`` itself where ``beta x > threshold``."""
    _check_forward(x)
    beta, threshold = _check_softplus(beta, threshold)
    bx = x * x.dtype.type(beta)
    # Clip the exponent on the linear branch so exp never overflows there.
    soft = np.log1p(np.exp(np.minimum(bx, threshold))) / x.dtype.type(beta)
    return np.where(bx > threshold, x, soft).astype(x.dtype, copy=False)


@_contract('beta', 'threshold', backward=True)
def softplus_backward(grad_out: np.ndarray, x: np.ndarray, beta: float = 1.0,
                      threshold: float = 20.0) -> np.ndarray:
    """Gradient of :func:`softplus`: ``grad_out * sigmoid(beta x)``, ``grad_out`` where ``beta x > threshold``."""
    _check_backward(grad_out, x)
    beta, threshold = _check_softplus(beta, threshold)
    bx = x * x.dtype.type(beta)
    return np.where(bx > threshold, grad_out, grad_out * _sigmoid(bx))
