"""NumPy reference adaptive 2-D average and max pooling (NCHW), forward and backward.

Output cell ``(i, j)`` of an ``(H_out, W_out)`` grid pools the input rows
``[floor(i H / H_out), ceil((i + 1) H / H_out))`` and likewise columns
(PyTorch's bins: they cover the input, and overlap when ``H_out`` does not
divide ``H``). ``output_size = 1`` is global pooling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._contract import doc_fragments
from jitgrad.kernels._validate import PlaneShapes, _is_int, check_array, check_shape, check_shape_tuple
from jitgrad.kernels.reference.pooling import _raise_argmax_out_of_range

__all__: list[str] = kernel_names("pooling_adaptive")  # the one list: kernels/_constants.py


@dataclass(frozen=True)
class AdaptivePool2dDims(PlaneShapes):
    """Sizes of one adaptive pooling: input ``(N, C, H, W)``, output ``(N, C, H_out, W_out)``."""

    n: int
    c: int
    h: int
    w: int
    h_out: int
    w_out: int

    @property
    def is_global(self) -> bool:
        return self.h_out == 1 and self.w_out == 1


def adaptive_dims(input_shape: tuple[int, ...], output_size: Any) -> AdaptivePool2dDims:
    """Validate ``output_size`` (an int, or a pair of ints or ``None`` = keep that input size)."""
    n, c, h, w = input_shape
    if _is_int(output_size):
        pair: tuple[Any, Any] = (output_size, output_size)
    else:
        try:
            pair = tuple(output_size)
        except TypeError:
            raise TypeError(f"output_size must be an int or a pair of ints (or None), got {output_size!r}") from None
        if len(pair) != 2 or not all(v is None or _is_int(v) for v in pair):
            raise TypeError(f"output_size must be an int or a pair of ints (or None), got {output_size!r}")
    h_out = h if pair[0] is None else int(pair[0])
    w_out = w if pair[1] is None else int(pair[1])
    if h_out < 1 or w_out < 1:
        raise ValueError(f"output_size must be >= 1, got {output_size!r}")
    if h < 1 or w < 1:
        raise ValueError(f"input planes must be non-empty, got input shape {tuple(input_shape)}")
    return AdaptivePool2dDims(n, c, h, w, h_out, w_out)


def check_adaptive_forward(x: Any, output_size: Any) -> AdaptivePool2dDims:
    check_array("x", x, ndim=4)
    return adaptive_dims(tuple(x.shape), output_size)


def check_adaptive_backward(grad_out: Any, input_shape: Any, argmax: Any = None) -> AdaptivePool2dDims:
    """``grad_out`` gives the output size; ``argmax`` (max pooling) must match it."""
    check_array("grad_out", grad_out, ndim=4)
    shape = check_shape_tuple("input_shape", input_shape, 4)
    if tuple(grad_out.shape[:2]) != shape[:2]:
        raise ValueError(f"grad_out must have the batch and channels of input_shape {shape}, "
                         f"got shape {tuple(grad_out.shape)}")
    if argmax is not None:
        check_array("argmax", argmax, ndim=4, dtypes=(np.dtype(np.int32),))
        check_shape("argmax", argmax, tuple(grad_out.shape))
    return adaptive_dims(shape, tuple(grad_out.shape[2:]))


#: The Parameters section both adaptive forwards share.
_FORWARD_PARAMS = """Parameters
----------
x : ndarray ``(N, C, H, W)``, float32 or float64, C-contiguous
output_size : int or pair of ints (``None`` in a pair keeps that input size)"""
#: The last parameter and the Returns section both adaptive backwards share.
_BACKWARD_TAIL = """input_shape : tuple of 4 ints
    The forward input's shape.

Returns
-------
grad_x : ndarray
    ``input_shape``, ``grad_out``'s dtype."""


def bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` int arrays of the ``out`` adaptive bins over ``size`` elements."""
    i = np.arange(out)
    return (i * size) // out, ((i + 1) * size + out - 1) // out


@doc_fragments(forward_params=_FORWARD_PARAMS)
def adaptive_avg_pool2d(x: np.ndarray, *, output_size: Any) -> np.ndarray:
    """Adaptive 2-D average pooling.

    {forward_params}

    Returns
    -------
    ndarray ``(N, C, H_out, W_out)`` of ``x``'s dtype: the mean of each bin.
    """
    d = check_adaptive_forward(x, output_size)
    if d.is_global:
        return x.mean(axis=(2, 3), keepdims=True)
    hs, he = bins(d.h, d.h_out)
    ws, we = bins(d.w, d.w_out)
    y = np.empty(d.output_shape, dtype=x.dtype)
    for i in range(d.h_out):
        for j in range(d.w_out):
            y[:, :, i, j] = x[:, :, hs[i]:he[i], ws[j]:we[j]].mean(axis=(2, 3))
    return y


@doc_fragments(backward_tail=_BACKWARD_TAIL)
def adaptive_avg_pool2d_backward(grad_out: np.ndarray, *, input_shape: tuple[int, ...]) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool2d`: each bin's gradient spread evenly over the bin.

    Overlapping bins add.

    Parameters
    ----------
    grad_out : ndarray
        ``(N, C, H_out, W_out)``, float32 or float64; its shape gives the output size.
    {backward_tail}
    """
    d = check_adaptive_backward(grad_out, input_shape)
    hs, he = bins(d.h, d.h_out)
    ws, we = bins(d.w, d.w_out)
    grad = np.zeros(d.input_shape, dtype=grad_out.dtype)
    for i in range(d.h_out):
        for j in range(d.w_out):
            count = grad_out.dtype.type((he[i] - hs[i]) * (we[j] - ws[j]))
            grad[:, :, hs[i]:he[i], ws[j]:we[j]] += (grad_out[:, :, i, j] / count)[:, :, None, None]
    return grad


@doc_fragments(forward_params=_FORWARD_PARAMS)
def adaptive_max_pool2d(x: np.ndarray, *, output_size: Any) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive 2-D max pooling with the index of each maximum.

    {forward_params}

    Returns
    -------
    y : ``(N, C, H_out, W_out)``, ``x``'s dtype: the maximum of each bin.
    argmax : ``(N, C, H_out, W_out)`` int32, flat index ``h * W + w`` into the input plane;
        ties (and NaN) go to the first in row-major bin order, as PyTorch.
    """
    d = check_adaptive_forward(x, output_size)
    hs, he = bins(d.h, d.h_out)
    ws, we = bins(d.w, d.w_out)
    y = np.empty(d.output_shape, dtype=x.dtype)
    argmax = np.empty(d.output_shape, dtype=np.int32)
    for i in range(d.h_out):
        for j in range(d.w_out):
            window = x[:, :, hs[i]:he[i], ws[j]:we[j]]
            k = window.reshape(d.n, d.c, -1).argmax(axis=-1)
            bw = we[j] - ws[j]
            y[:, :, i, j] = np.take_along_axis(window.reshape(d.n, d.c, -1), k[..., None], axis=-1)[..., 0]
            argmax[:, :, i, j] = (hs[i] + k // bw) * d.w + ws[j] + k % bw
    return y, argmax


@doc_fragments(backward_tail=_BACKWARD_TAIL)
def adaptive_max_pool2d_backward(grad_out: np.ndarray, argmax: np.ndarray, *,
                                 input_shape: tuple[int, ...]) -> np.ndarray:
    """Route each output gradient to the input element its bin chose.

    Where bins overlap, gradients of one element add up.

    Parameters
    ----------
    grad_out : ndarray
        ``(N, C, H_out, W_out)``, float32 or float64.
    argmax : ndarray
        int32 of ``grad_out``'s shape, from :func:`adaptive_max_pool2d`.
    {backward_tail}
    """
    d = check_adaptive_backward(grad_out, input_shape, argmax)
    plane = d.h * d.w
    if argmax.size and (argmax.min() < 0 or argmax.max() >= plane):
        _raise_argmax_out_of_range(argmax, plane)
    offset = (np.arange(d.n * d.c, dtype=np.int64) * plane).reshape(d.n, d.c, 1, 1)
    grad = np.bincount((argmax + offset).ravel(), weights=grad_out.ravel(), minlength=d.n * d.c * plane)
    return grad.astype(grad_out.dtype, copy=False).reshape(d.input_shape)
