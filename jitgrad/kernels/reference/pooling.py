"""NumPy reference 2-D max and average pooling (NCHW), forward and backward.

Sizes come from ``Pool2dDims`` (PyTorch's rules: ``stride=None`` means
``kernel_size``, ``padding <= kernel_size // 2``, floor output size), shared
with the CPU and CUDA wrappers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._validate import (
    Pool2dDims,
    check_array,
    check_shape,
    check_shape_tuple,
)

__all__: list[str] = kernel_names("pooling")  # the one list: kernels/_constants.py


# ----------------------------------------------------------------------------- validation
#
# One check per kernel, called by the reference, CPU and CUDA wrappers alike, so
# every backend rejects the same input with the same message.

def _check_pool_forward(x: Any, kernel_size: Any, stride: Any, padding: Any) -> Pool2dDims:
    check_array("x", x, ndim=4)
    return Pool2dDims.from_shape(tuple(x.shape), kernel_size=kernel_size, stride=stride, padding=padding)


def _check_avg_pool_forward(x: Any, kernel_size: Any, stride: Any, padding: Any,
                            count_include_pad: Any) -> Pool2dDims:
    d = _check_pool_forward(x, kernel_size, stride, padding)
    _check_count_include_pad(count_include_pad)
    return d


def _check_pool_backward(grad_out: Any, input_shape: Any, kernel_size: Any, stride: Any, padding: Any,
                         argmax: Any = None) -> Pool2dDims:
    """``grad_out`` (and max pooling's ``argmax``) must have the pooled shape of ``input_shape``."""
    check_array("grad_out", grad_out, ndim=4)
    if argmax is not None:
        check_array("argmax", argmax, ndim=4, dtypes=(np.dtype(np.int32),))
        check_shape("argmax", argmax, tuple(grad_out.shape))
    shape = check_shape_tuple("input_shape", input_shape, 4)
    d = Pool2dDims.from_shape(shape, kernel_size=kernel_size, stride=stride, padding=padding)
    if tuple(grad_out.shape) != d.output_shape:
        raise ValueError(
            f"grad_out must have shape {d.output_shape}, got {tuple(grad_out.shape)}: the pooled shape of "
            f"input_shape {shape} for kernel_size {(d.kh, d.kw)}, stride {d.stride}, padding {d.padding}"
        )
    return d


def _check_max_pool_backward(grad_out: Any, argmax: Any, input_shape: Any, kernel_size: Any, stride: Any,
                             padding: Any) -> Pool2dDims:
    return _check_pool_backward(grad_out, input_shape, kernel_size, stride, padding, argmax=argmax)


def _check_avg_pool_backward(grad_out: Any, input_shape: Any, kernel_size: Any, stride: Any, padding: Any,
                             count_include_pad: Any) -> Pool2dDims:
    d = _check_pool_backward(grad_out, input_shape, kernel_size, stride, padding)
    _check_count_include_pad(count_include_pad)
    return d


def _raise_argmax_out_of_range(argmax: np.ndarray, plane_size: int) -> None:
    bad = argmax[(argmax < 0) | (argmax >= plane_size)]
    raise ValueError(f"argmax must hold flat indices in [0, H*W) = [0, {plane_size}), got {int(bad[0])}")


def _check_count_include_pad(count_include_pad: Any) -> None:
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise TypeError(f"count_include_pad must be a bool, got {count_include_pad!r}")


def _avg_divisors(d: Pool2dDims, count_include_pad: bool, dtype: np.dtype) -> np.ndarray | Any:
    """Divisor of each output window: ``kh * kw``, or the number of unpadded elements it covers."""
    if count_include_pad:
        # PyTorch clips windows to the padded input; without ceil_mode a window never passes it.
        return dtype.type(d.kh * d.kw)

    def counts(out: int, size: int, k: int, s: int, p: int) -> np.ndarray:
        start = np.arange(out) * s - p
        return np.minimum(start + k, size) - np.maximum(start, 0)

    rows = counts(d.h_out, d.h, d.kh, d.stride[0], d.padding[0])
    cols = counts(d.w_out, d.w, d.kw, d.stride[1], d.padding[1])
    return np.outer(rows, cols).astype(dtype)


def _pad(x: np.ndarray, d: Pool2dDims, value: float) -> np.ndarray:
    ph, pw = d.padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


# ----------------------------------------------------------------------------- max pooling

def max_pool2d(x: np.ndarray, *, kernel_size: Any, stride: Any = None,
               padding: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D max pooling with the index of each maximum.

    Parameters
    ----------
    x : (N, C, H, W) float32 or float64, C-contiguous.
    kernel_size, stride, padding : int or pair; ``stride=None`` means ``kernel_size``.
        Padding is implicit ``-inf``: a padded position is never chosen.

    Returns
    -------
    y : (N, C, H_out, W_out), ``x``'s dtype.
    argmax : (N, C, H_out, W_out) int32, flat index ``h * W + w`` into the input
        plane; ties (and NaN) go to the first in row-major window order.
    """
    d = _check_pool_forward(x, kernel_size, stride, padding)
    sh, sw = d.stride
    ph, pw = d.padding
    windows = sliding_window_view(_pad(x, d, -np.inf), (d.kh, d.kw), axis=(2, 3))[:, :, ::sh, ::sw]
    flat = windows.reshape(d.n, d.c, d.h_out, d.w_out, d.kh * d.kw)
    k = flat.argmax(axis=-1)  # the first maximum: PyTorch's tie rule
    y = np.take_along_axis(flat, k[..., None], axis=-1)[..., 0]
    if ph or pw:
        # A window whose real elements are all -inf ties with its -inf padding: take its first
        # real element (as PyTorch), never a padded position (a negative or out-of-row index).
        valid = np.pad(np.ones((d.h, d.w), dtype=bool), ((ph, ph), (pw, pw)))
        valid = sliding_window_view(valid, (d.kh, d.kw))[::sh, ::sw][:d.h_out, :d.w_out]
        first_valid = valid.reshape(d.h_out, d.w_out, d.kh * d.kw).argmax(axis=-1)
        k = np.where(y == -np.inf, first_valid, k)
    row = np.arange(d.h_out)[:, None] * sh - ph + k // d.kw
    col = np.arange(d.w_out)[None, :] * sw - pw + k % d.kw
    return y, (row * d.w + col).astype(np.int32)


def max_pool2d_backward(grad_out: np.ndarray, argmax: np.ndarray, *, input_shape: tuple[int, ...],
                        kernel_size: Any, stride: Any = None, padding: Any = 0) -> np.ndarray:
    """Route each output gradient to the input element its window chose.

    Where windows overlap, gradients of one input element add up.

    Parameters
    ----------
    grad_out : ndarray
        (N, C, H_out, W_out), float32 or float64.
    argmax : ndarray
        int32 of ``grad_out``'s shape, from :func:`max_pool2d`.
    input_shape : tuple of 4 ints
        The forward input's shape (N, C, H, W).
    kernel_size, stride, padding : int or pair
        The forward's; ``grad_out`` must have the pooled shape they give (a gather over
        covering windows needs them).

    Returns
    -------
    grad_x : ndarray
        ``input_shape``, ``grad_out``'s dtype.
    """
    d = _check_max_pool_backward(grad_out, argmax, input_shape, kernel_size, stride, padding)
    n, c, h, w = d.input_shape
    if argmax.size and (argmax.min() < 0 or argmax.max() >= h * w):
        _raise_argmax_out_of_range(argmax, h * w)
    plane_offset = (np.arange(n * c, dtype=np.int64) * (h * w)).reshape(n, c, 1, 1)
    grad = np.bincount((argmax + plane_offset).ravel(), weights=grad_out.ravel(), minlength=n * c * h * w)
    return grad.astype(grad_out.dtype, copy=False).reshape(n, c, h, w)


# ----------------------------------------------------------------------------- average pooling

def avg_pool2d(x: np.ndarray, *, kernel_size: Any, stride: Any = None, padding: Any = 0,
               count_include_pad: bool = True) -> np.ndarray:
    """2-D average pooling with implicit zero padding.

    Parameters
    ----------
    x : ndarray
        (N, C, H, W), float32 or float64, C-contiguous.
    kernel_size, stride, padding : int or pair
        ``stride=None`` means ``kernel_size``; ``padding <= kernel_size // 2``.
    count_include_pad : bool, default True
        Divide by ``kh * kw`` (True) or by the number of unpadded elements in the window (False).

    Returns
    -------
    y : ndarray
        (N, C, H_out, W_out), ``x``'s dtype.
    """
    d = _check_avg_pool_forward(x, kernel_size, stride, padding, count_include_pad)
    sh, sw = d.stride
    xp = _pad(x, d, 0.0)
    # One vectorised add per kernel offset (kh * kw of them), never a loop over pixels.
    total = np.zeros(d.output_shape, dtype=x.dtype)
    for i in range(d.kh):
        for j in range(d.kw):
            total += xp[:, :, i:i + sh * (d.h_out - 1) + 1:sh, j:j + sw * (d.w_out - 1) + 1:sw]
    return total / _avg_divisors(d, count_include_pad, x.dtype)


def avg_pool2d_backward(grad_out: np.ndarray, *, input_shape: tuple[int, ...], kernel_size: Any,
                        stride: Any = None, padding: Any = 0, count_include_pad: bool = True) -> np.ndarray:
    """Spread each output gradient evenly over its window.

    Parameters
    ----------
    grad_out : ndarray
        (N, C, H_out, W_out), float32 or float64.
    input_shape : tuple of 4 ints
        The forward input's shape (N, C, H, W).
    kernel_size, stride, padding : int or pair
        The forward's; ``grad_out`` must have the pooled shape they give.
    count_include_pad : bool, default True
        The forward's.

    Returns
    -------
    grad_x : ndarray
        ``input_shape``, ``grad_out``'s dtype.
    """
    d = _check_avg_pool_backward(grad_out, input_shape, kernel_size, stride, padding, count_include_pad)
    sh, sw = d.stride
    ph, pw = d.padding
    share = grad_out / _avg_divisors(d, count_include_pad, grad_out.dtype)
    padded = np.zeros((d.n, d.c, d.h + 2 * ph, d.w + 2 * pw), dtype=grad_out.dtype)
    for i in range(d.kh):
        for j in range(d.kw):
            padded[:, :, i:i + sh * (d.h_out - 1) + 1:sh, j:j + sw * (d.w_out - 1) + 1:sw] += share
    return np.ascontiguousarray(padded[:, :, ph:ph + d.h, pw:pw + d.w])
