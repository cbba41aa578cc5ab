"""NumPy reference local response normalisation (LRN, across channels) and its gradient.

Each value is divided by a power of the sum of squares over a window of
``size`` neighbouring channels at the same position (AlexNet's normalisation,
ONNX ``LRN``, PyTorch ``local_response_norm``)::

    scale[n, c, ...] = bias + alpha / size * sum(x[n, j, ...] ** 2 for j in window(c))
    y[n, c, ...]     = x[n, c, ...] * scale[n, c, ...] ** -beta

``window(c)`` is the channels ``c - before .. c - before + size - 1``, clipped to
``0 .. C - 1`` (channels outside count as zero; the divisor stays ``size``).
ONNX centres an even window one channel late, ``before = (size - 1) // 2``
(the default); PyTorch one channel early, ``before = size // 2``; for an odd
``size`` both are ``(size - 1) / 2``.

The gradient, with ``y`` and ``scale`` recomputed from ``x`` (the backward
kernel takes ``x`` only, so the forward need not keep ``scale``)::

    grad_x[j] = grad_out[j] * scale[j] ** -beta
                - 2 * alpha / size * beta * x[j] * sum(grad_out[c] * y[c] / scale[c] for c with j in window(c))

NaN and infinity follow these formulas as written: a NaN reaches every channel
whose window holds it; with ``beta > 0`` an infinite ``x`` makes ``scale``
infinite, its own ``y`` NaN (``inf * 0``) and its neighbours' ``y`` zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._validate import check_array, check_same_dtype, check_scalar, check_shape

__all__: list[str] = kernel_names("lrn")  # the one list: kernels/_constants.py


# ----------------------------------------------------------------------------- validation
#
# One check per kernel, shared by the reference, CPU and CUDA wrappers.

def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _check_lrn(x: Any, size: Any, alpha: Any, beta: Any, bias: Any,
               before: Any) -> tuple[int, int, int, int, float, float, float]:
    """Validate :func:`lrn`'s arguments; return ``(N, C, M, before, alpha / size, beta, bias)``, M = prod(spatial)."""
    check_array("x", x)
    if x.ndim < 3:
        raise ValueError(f"x must be at least 3-D (N, C, D1, ...), got {x.ndim}-D array of shape {tuple(x.shape)}")
    s = _check_int("size", size, 1)
    a = check_scalar("alpha", alpha)
    b = check_scalar("beta", beta)
    k = check_scalar("bias", bias)
    if before is None:
        lead = (s - 1) // 2
    else:
        lead = _check_int("before", before, 0)
        if lead >= s:
            raise ValueError(f"before must be < size ({s}), got {before!r}")
    n, c = int(x.shape[0]), int(x.shape[1])
    m = int(np.prod(x.shape[2:], dtype=np.int64))
    return n, c, m, lead, a / s, b, k


def _check_lrn_backward(grad_out: Any, x: Any, size: Any, alpha: Any, beta: Any, bias: Any,
                        before: Any) -> tuple[int, int, int, int, float, float, float]:
    dims = _check_lrn(x, size, alpha, beta, bias, before)
    check_array("grad_out", grad_out)
    check_same_dtype(x=x, grad_out=grad_out)
    check_shape("grad_out", grad_out, tuple(x.shape))
    return dims


# ----------------------------------------------------------------------------- kernels

def _window_sum(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``out[:, c] = sum(a[:, c + d] for d in lo..hi if 0 <= c + d < C)`` on an (N, C, M) array."""
    c = a.shape[1]
    out = np.zeros_like(a)
    for d in range(lo, hi + 1):
        src = slice(max(0, d), min(c, c + d))
        dst = slice(max(0, -d), min(c, c - d))
        out[:, dst] += a[:, src]
    return out


def _scale(x3: np.ndarray, size: int, lead: int, coef: float, bias: float) -> np.ndarray:
    dt = x3.dtype.type
    return dt(bias) + dt(coef) * _window_sum(x3 * x3, -lead, size - 1 - lead)


def lrn(x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0,
        before: int | None = None) -> np.ndarray:
    """Local response normalisation across channels: ``x * (bias + alpha / size * window_sum(x ** 2)) ** -beta``.

    Parameters
    ----------
    x : ndarray (N, C, D1, ...), at least 3-D, float32 or float64, C-contiguous
    size : int >= 1
        Channels in the window.
    alpha, beta, bias : float (finite)
        ``alpha`` is divided by ``size``, as ONNX and PyTorch do; PyTorch calls ``bias`` ``k``.
    before : int in [0, size), optional
        Channels of the window before the centre: None means ONNX's ``(size - 1) // 2``; PyTorch
        uses ``size // 2`` (they differ for an even ``size`` only).

    Returns
    -------
    ndarray of ``x``'s shape and dtype.

    Raises
    ------
    TypeError
        ``x`` not a float32/float64 array; ``size``/``before`` not ints; a non-real scalar.
    ValueError
        ``x`` below 3-D or strided; ``size < 1``; ``before`` outside ``[0, size)``; a non-finite scalar.
    """
    n, c, m, lead, coef, b, k = _check_lrn(x, size, alpha, beta, bias, before)
    x3 = x.reshape(n, c, m)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # NaN/inf propagate, as documented
        scale = _scale(x3, int(size), lead, coef, k)
        return (x3 * scale ** x.dtype.type(-b)).reshape(x.shape)


def lrn_backward(grad_out: np.ndarray, x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75,
                 bias: float = 1.0, before: int | None = None) -> np.ndarray:
    """Gradient of :func:`lrn` with respect to ``x``, times ``grad_out`` (same hyper-parameters).

    Parameters
    ----------
    grad_out : ndarray of ``x``'s shape and dtype
        Gradient of the loss with respect to ``lrn``'s output.
    x : ndarray (N, C, D1, ...)
        The forward's input; the window sums are recomputed from it (the forward keeps nothing).
    size : int >= 1
    alpha : float
    beta : float
    bias : float
    before : int in [0, size), optional
        The forward's hyper-parameters, as :func:`lrn`.

    Returns
    -------
    ndarray ``grad_x`` of ``x``'s shape and dtype.

    Raises
    ------
    TypeError, ValueError
        As :func:`lrn`, and for a ``grad_out`` whose shape or dtype differs from ``x``'s.
    """
    n, c, m, lead, coef, b, k = _check_lrn_backward(grad_out, x, size, alpha, beta, bias, before)
    dt = x.dtype.type
    x3, g3 = x.reshape(n, c, m), grad_out.reshape(n, c, m)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        scale = _scale(x3, int(size), lead, coef, k)
        power = scale ** dt(-b)
        t = g3 * (x3 * power) / scale
        # j is in window(c) when c runs from j - after to j + before: the transposed window.
        back = _window_sum(t, -(int(size) - 1 - lead), lead)
        return (g3 * power - dt(2 * coef * b) * x3 * back).reshape(x.shape)
