"""CPU fused kernels: bias and activation applied in the GEMM's store (``_gemm_epilogue``).

``linear`` is the matmul driver with the epilogue bits of a column bias and
the activation; ``conv2d_activation`` the convolution's GEMM with its
activation bit (its bias already is the micro-kernel's initial accumulator).
Both share the unfused kernels' compiled code: the epilogue is a run-time int.
``bias_activation_backward`` masks the gradient and sums it per channel in
one pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad.kernels._constants import FUSED_ACTIVATIONS, kernel_names
from jitgrad.kernels.reference.fused import (
    check_bias_activation_backward_args,
    check_conv2d_activation_args,
    check_linear_args,
)

from ._gemm_epilogue import EPI_COL_BIAS
from ._jit import FASTMATH, njit, overlaps
from .conv import conv2d_validated
from .matmul import _matmul_kernel, fast_product

__all__: list[str] = kernel_names("fused")  # the one list: kernels/_constants.py

_NDARRAY = np.ndarray
#: The activations' epilogue codes (``check_activation``'s: the index in ``FUSED_ACTIVATIONS``).
_CODES = {name: code for code, name in enumerate(FUSED_ACTIVATIONS)}


@njit(cache=True, error_model="numpy", fastmath=FASTMATH, nogil=True)
def _bias_activation_backward_kernel(g, y, relu, grad_pre, grad_bias):
    """``g``, ``y``, ``grad_pre`` viewed ``(N, C, inner)``; ``grad_bias`` (C,) written."""
    n, c, inner = y.shape
    zero = y.dtype.type(0)
    for ch in range(c):
        grad_bias[ch] = zero
    for i in range(n):
        if inner == 1:
            # (N, C): the channel loop is the contiguous one, vectorised with the sums in registers.
            for ch in range(c):
                v = g[i, ch, 0]
                if relu and not y[i, ch, 0] > zero:
                    v = zero
                grad_pre[i, ch, 0] = v
                grad_bias[ch] += v
        else:
            for ch in range(c):
                s = zero
                for p in range(inner):
                    v = g[i, ch, p]
                    if relu and not y[i, ch, p] > zero:
                        v = zero
                    grad_pre[i, ch, p] = v
                    s += v
                grad_bias[ch] += s


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, activation: str = "none",
           out: np.ndarray | None = None) -> np.ndarray:
    # Fast path (matmul's ``fast_product``): plain ndarrays, a known activation; every error below.
    if (type(x) is _NDARRAY and type(w) is _NDARRAY and type(activation) is str
            and (b is None or (type(b) is _NDARRAY and b.dtype is x.dtype and b.ndim == 1 and b.flags.c_contiguous))):
        code = _CODES.get(activation)
        if code is not None:
            result = fast_product(x, w, False, True, out, b, code if b is None else code | EPI_COL_BIAS)
            if result is not None:
                return result
    m, n, code = check_linear_args(x, w, b, activation, out)
    if overlaps(out, x, w, b):
        out[...] = linear(x, w, b, activation=activation)
        return out
    if out is None:
        out = np.empty((m, n), dtype=x.dtype)
    _matmul_kernel(x, w, False, True, out, b, code | (EPI_COL_BIAS if b is not None else 0))
    return out


# As matmul: not wrapped in the package's workqueue lock (``_threading.serialised``); its parallel
# launches (``matmul._parallel``, ``_as_convolution``) take it themselves (~0.65 us a call saved).
linear.serialises_itself = True


def conv2d_activation(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: Any = 1,
                      padding: Any = 0, dilation: Any = 1, out: np.ndarray | None = None, groups: int = 1,
                      activation: str = "none") -> np.ndarray:
    d, code = check_conv2d_activation_args(x, w, b, stride, padding, dilation, out, groups, activation)
    return conv2d_validated(x, w, b, d, out, code)


def bias_activation_backward(grad_out: np.ndarray, y: np.ndarray, *,
                             activation: str = "relu") -> tuple[np.ndarray, np.ndarray]:
    code = check_bias_activation_backward_args(grad_out, y, activation)
    n, c = y.shape[0], y.shape[1]
    inner = y.size // (n * c) if n * c else 0
    grad_pre = np.empty_like(y)
    grad_bias = np.empty(c, dtype=y.dtype)
    shape3 = (n, c, inner)
    _bias_activation_backward_kernel(grad_out.reshape(shape3), y.reshape(shape3), code != 0,
                                     grad_pre.reshape(shape3), grad_bias)
    return grad_pre, grad_bias
