"""CPU 2-D convolution (NCHW cross-correlation): im2col into packed GEMM panels, with Numba.

See ``_conv`` for the algorithms. Every kernel is parallel over
(sample, slice) tasks, so batch 1 uses every thread too.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from jitgrad.kernels.reference.conv import (
    check_conv2d_args,
    check_conv2d_backward_input_args,
    check_conv2d_backward_weight_args,
)

from . import _conv

__all__ = ["conv2d", "conv2d_backward_input", "conv2d_backward_weight"]

#: The weight gradient of a unit-stride convolution with at most this many
#: taps (``C_in * kH * kW``) uses the dot kernel: as a GEMM its taps would
#: fill one B panel of 32 mostly with padding, and packing that panel costs
#: a gather per pixel. With more taps the GEMM is faster (it keeps one
#: operand in L1; the dot kernel streams both).
DOT_MAX_TAPS = 32


def _conv2d_kernel(x, w, b, d, out) -> None:
    has_bias = b is not None
    bias = b if has_bias else np.zeros(1, dtype=x.dtype)
    (sh, sw), (ph, pw), (dh, dw) = d.stride, d.padding, d.dilation
    _conv.conv2d_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, out, numba.get_num_threads())


def _conv2d_backward_input_kernel(grad_out, w, d, out) -> None:
    (sh, sw), (ph, pw), (dh, dw) = d.stride, d.padding, d.dilation
    _conv.conv2d_backward_input(grad_out, w, sh, sw, ph, pw, dh, dw, out, numba.get_num_threads())


def _conv2d_backward_weight_kernel(x, grad_out, d, grad_w, grad_b) -> None:
    (sh, sw), (ph, pw), (dh, dw) = d.stride, d.padding, d.dilation
    # The dot kernel multiplies the input's pitch columns by zeros of grad_out: exact for finite
    # inputs, but 0 * inf is NaN where the reference has none. A finite sum means every element is
    # finite (one pass, no allocation); otherwise the GEMM path, which never reads those columns.
    if sh == 1 and sw == 1 and d.c_in * d.kh * d.kw <= DOT_MAX_TAPS and np.isfinite(x.sum()):
        _conv.conv2d_backward_weight_unit(x, grad_out, ph, pw, dh, dw, grad_w, grad_b, numba.get_num_threads())
    else:
        _conv.conv2d_backward_weight(x, grad_out, sh, sw, ph, pw, dh, dw, grad_w, grad_b, numba.get_num_threads())


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, out: np.ndarray | None = None) -> np.ndarray:
    """2-D convolution (cross-correlation, as PyTorch), NCHW.

    Parameters
    ----------
    x : ndarray ``(N, C_in, H, W)``, float32 or float64, C-contiguous
    w : ndarray ``(C_out, C_in, kH, kW)``, same dtype
    b : ndarray ``(C_out,)``, same dtype, optional
    stride, padding, dilation : int or pair of ints
    out : ndarray ``(N, C_out, H_out, W_out)``, optional; must not overlap ``x``

    Returns
    -------
    ndarray ``(N, C_out, H_out, W_out)`` of ``x``'s dtype (``out`` when given).
    """
    d = check_conv2d_args(x, w, b, stride, padding, dilation, out)
    if out is None:
        out = np.empty(d.output_shape, dtype=x.dtype)
    if out.size:
        if x.size == 0:
            out[...] = 0 if b is None else b[:, None, None]
        else:
            _conv2d_kernel(x, w, b, d, out)
    return out


def conv2d_backward_input(grad_out: np.ndarray, w: np.ndarray, *, input_shape: tuple[int, int, int, int],
                          stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                          out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of ``conv2d`` with respect to its input ``x``.

    Parameters
    ----------
    grad_out : ndarray ``(N, C_out, H_out, W_out)``, float32 or float64
    w : ndarray ``(C_out, C_in, kH, kW)``, same dtype
    input_shape : tuple ``(N, C_in, H, W)``
    stride, padding, dilation : int or pair of ints (as in the forward)
    out : ndarray of ``input_shape``, optional; must not overlap ``grad_out``

    Returns
    -------
    ndarray ``input_shape`` of ``w``'s dtype (``out`` when given).
    """
    d = check_conv2d_backward_input_args(grad_out, w, input_shape, stride, padding, dilation, out)
    if out is None:
        out = np.empty(d.input_shape, dtype=w.dtype)
    if grad_out.size == 0:
        out.fill(0)  # no output channel (or no sample): an empty sum, and nothing for the kernel to do
    elif out.size:
        _conv2d_backward_input_kernel(grad_out, w, d, out)
    return out


def conv2d_backward_weight(x: np.ndarray, grad_out: np.ndarray, *, weight_shape: tuple[int, int, int, int],
                           stride: Any = 1, padding: Any = 0,
                           dilation: Any = 1) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``conv2d`` with respect to its weights and bias.

    Parameters
    ----------
    x : ndarray ``(N, C_in, H, W)``, float32 or float64 (the forward input)
    grad_out : ndarray ``(N, C_out, H_out, W_out)``, same dtype
    weight_shape : tuple ``(C_out, C_in, kH, kW)``
    stride, padding, dilation : int or pair of ints (as in the forward)

    Returns
    -------
    grad_w : ndarray ``weight_shape``
    grad_b : ndarray ``(C_out,)``, ``grad_out.sum(axis=(0, 2, 3))``
    """
    d = check_conv2d_backward_weight_args(x, grad_out, weight_shape, stride, padding, dilation)
    grad_w = np.empty(d.weight_shape, dtype=x.dtype)
    grad_b = np.empty(d.c_out, dtype=x.dtype)
    if grad_out.size == 0 or grad_w.size == 0:
        # An empty batch or no channels: the kernels' sums would be empty (or have nowhere to go).
        grad_w.fill(0)
        grad_b[...] = grad_out.sum(axis=(0, 2, 3))
    else:
        _conv2d_backward_weight_kernel(x, grad_out, d, grad_w, grad_b)
    return grad_w, grad_b
