"""NumPy reference fused kernels: a GEMM or convolution with its bias and activation in one call.

The fast backends apply the bias and the activation while the output tile is
still in registers (the CPU GEMM's store epilogue); these references define
what that computes: exactly the unfused ``matmul`` + bias + ``relu`` (or
``conv2d`` + ``relu``), in that order. The backward kernel takes the fused
*output* ``y``: for ReLU, ``y > 0`` exactly where the pre-activation is
``> 0`` (NaN in, NaN out, and ``NaN > 0`` is false), so the mask, and every
NaN, is the one ``relu_backward`` gives from the pre-activation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad.kernels._constants import FUSED_ACTIVATIONS, kernel_names
from jitgrad.kernels._validate import (
    Conv2dDims,
    check_array,
    check_out,
    check_same_dtype,
    check_shape,
)
from jitgrad.kernels.reference.conv import check_conv2d_args, conv2d

__all__: list[str] = kernel_names("fused")  # the one list: kernels/_constants.py


def check_activation(activation: Any) -> int:
    """Validate a fused kernel's ``activation``; return its code (the index in ``FUSED_ACTIVATIONS``)."""
    if not isinstance(activation, str):
        raise TypeError(f"activation must be one of {FUSED_ACTIVATIONS} (a str), got {type(activation).__name__} "
                        f"{activation!r}")
    if activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"activation must be one of {FUSED_ACTIVATIONS}, got {activation!r}")
    return FUSED_ACTIVATIONS.index(activation)


def check_linear_args(x: Any, w: Any, b: Any, activation: Any, out: Any) -> tuple[int, int, int]:
    """Validate ``linear``'s arguments (shared by every backend); return ``(M, N, code)``."""
    code = check_activation(activation)
    check_array("x", x, ndim=2)
    check_array("w", w, ndim=2)
    if b is not None:
        check_array("b", b, ndim=1)
    dtype = check_same_dtype(x=x, w=w, b=b)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"linear: x is (N, in) = {tuple(x.shape)} but w is (out, in) = {tuple(w.shape)}: "
                         f"in differs")
    m, n = x.shape[0], w.shape[0]
    if b is not None:
        check_shape("b", b, (n,))
    if out is not None:
        check_out(out, (m, n), dtype)
    return m, n, code


def check_conv2d_activation_args(x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any, out: Any,
                                 groups: Any, activation: Any) -> tuple[Conv2dDims, int]:
    """Validate ``conv2d_activation``'s arguments; return the geometry and the activation code."""
    code = check_activation(activation)
    return check_conv2d_args(x, w, b, stride, padding, dilation, out, groups), code


def check_bias_activation_backward_args(grad_out: Any, y: Any, activation: Any) -> int:
    """Validate ``bias_activation_backward``'s arguments; return the activation code."""
    code = check_activation(activation)
    check_array("grad_out", grad_out)
    check_array("y", y)
    check_same_dtype(grad_out=grad_out, y=y)
    if y.ndim < 2:
        raise ValueError(f"y must have at least 2 dimensions (N, C, ...), got shape {tuple(y.shape)}")
    check_shape("grad_out", grad_out, tuple(y.shape))
    return code


def _activate(y: np.ndarray, code: int) -> np.ndarray:
    return np.maximum(y, y.dtype.type(0)) if FUSED_ACTIVATIONS[code] == "relu" else y


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, activation: str = "none",
           out: np.ndarray | None = None) -> np.ndarray:
    """Dense layer with its epilogue fused: ``act(x @ w.T + b)``.

    The product is computed first, then the bias added, then the activation
    applied: the unfused ``matmul`` / ``+ b`` / ``relu`` sequence, bit for
    bit on the fast backends.

    Parameters
    ----------
    x : ndarray, (N, in), float32 or float64, C-contiguous
    w : ndarray, (out, in), ``x``'s dtype (a Linear layer's weight layout)
    b : ndarray, (out,), ``x``'s dtype, optional
        Added to every row; none when omitted.
    activation : {"none", "relu"}, default "none"
        Applied after the bias; ``relu(NaN)`` is NaN, as the ``relu`` kernel.
    out : ndarray, optional
        ``(N, out)`` C-contiguous buffer of ``x``'s dtype to write into (it may overlap an input).

    Returns
    -------
    y : ndarray, (N, out), ``x``'s dtype (``out`` when given).
    """
    _, _, code = check_linear_args(x, w, b, activation, out)
    y = np.matmul(x, w.T)
    if b is not None:
        y += b
    y = _activate(y, code)
    if out is None:
        return y
    out[...] = y
    return out


def conv2d_activation(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: Any = 1,
                      padding: Any = 0, dilation: Any = 1, out: np.ndarray | None = None, groups: int = 1,
                      activation: str = "none") -> np.ndarray:
    """2-D convolution with its epilogue fused: ``act(conv2d(x, w, b))``.

    Exactly ``relu(conv2d(x, w, b, ...))`` for ``activation="relu"`` (the
    fast backends apply it as the convolution's GEMM stores its tile).

    Parameters
    ----------
    x, w, b, stride, padding, dilation, out, groups : as ``conv2d``
        As there: ``x (N, C_in, H, W)``, ``w (C_out, C_in/groups, kH, kW)``,
        ``b (C_out,)`` optional, ``out`` optional ``(N, C_out, H_out, W_out)``.
    activation : {"none", "relu"}, default "none"
        Applied after the bias; ``relu(NaN)`` is NaN.

    Returns
    -------
    y : ndarray, (N, C_out, H_out, W_out), ``x``'s dtype (``out`` when given).
    """
    _, code = check_conv2d_activation_args(x, w, b, stride, padding, dilation, out, groups, activation)
    y = _activate(conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups), code)
    if out is None:
        return y
    out[...] = y
    return out


def bias_activation_backward(grad_out: np.ndarray, y: np.ndarray, *,
                             activation: str = "relu") -> tuple[np.ndarray, np.ndarray]:
    """Gradient through a fused bias + activation, from its *output*: the pre-activation's and the bias's.

    ``grad_pre = grad_out`` where ``y > 0``, else 0 (ReLU; all of
    ``grad_out`` for ``"none"``): ``relu_backward(grad_out, z)`` of the
    pre-activation ``z``, since ``y > 0`` exactly where ``z > 0``.
    ``grad_bias[c]`` sums ``grad_pre`` over every axis but axis 1 (a Linear
    layer's ``(N, out)`` or a convolution's ``(N, C, H, W)``), in one pass.

    Parameters
    ----------
    grad_out : ndarray
        Gradient with respect to ``y``: ``y``'s shape and dtype.
    y : ndarray, (N, C, ...), float32 or float64, C-contiguous
        The fused forward's output.
    activation : {"none", "relu"}, default "relu"
        The forward's activation.

    Returns
    -------
    grad_pre : ndarray, ``y``'s shape and dtype
    grad_bias : ndarray, (C,), ``y``'s dtype
    """
    code = check_bias_activation_backward_args(grad_out, y, activation)
    zero = y.dtype.type(0)
    grad_pre = np.where(y > zero, grad_out, zero) if FUSED_ACTIVATIONS[code] == "relu" else grad_out.copy()
    axes = (0,) + tuple(range(2, y.ndim))
    return grad_pre, grad_pre.sum(axis=axes)
