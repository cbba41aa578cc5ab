"""NumPy reference 2-D convolution (cross-correlation, NCHW), forward and both backwards.

The forward and the weight gradient are im2col on a
``sliding_window_view`` of the padded input (strides and dilation are
slices of that view) followed by one batched ``np.matmul``; the input
gradient is one batched ``np.matmul`` giving every tap's contribution,
scattered with ``kH * kW`` whole-array additions (no loop over pixels or
images).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._validate import (
    Conv2dDims,
    check_array,
    check_out,
    check_same_dtype,
    check_shape,
    check_shape_tuple,
)

__all__: list[str] = kernel_names("conv")  # the one list: kernels/_constants.py


# --------------------------------------------------------------------------
# Validation, shared by every backend (cpu and cuda import these).
# --------------------------------------------------------------------------

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _plain(*arrays: Any) -> bool:
    """True when every array is a C-contiguous 4-D NumPy array of one float dtype.

    The common case skips the per-argument checks (which then only run to
    find and word an error); with the cached sizes below a call's checks
    cost about 2 us instead of 9.
    """
    first = arrays[0]
    if type(first) is not np.ndarray or first.dtype not in _FLOATS:
        return False
    return all(type(a) is np.ndarray and a.ndim == 4 and a.dtype == first.dtype and a.flags.c_contiguous
               for a in arrays)


def _plain_int_or_pair(v: Any) -> bool:
    return type(v) is int or (type(v) is tuple and all(type(i) is int for i in v))


@lru_cache(maxsize=256)
def _dims(input_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: Any, padding: Any, dilation: Any,
          input_name: str, weight_name: str, groups: Any) -> Conv2dDims:
    return Conv2dDims.from_shapes(input_shape, weight_shape, stride=stride, padding=padding, dilation=dilation,
                                  input_name=input_name, weight_name=weight_name, groups=groups)


def _conv_dims(input_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: Any, padding: Any,
               dilation: Any, input_name: str, weight_name: str, groups: Any = 1) -> Conv2dDims:
    """``Conv2dDims.from_shapes``, memoised when the hyper-parameters are Python ints or
    tuples of them (exact types: ``True == 1`` must not hit the entry of ``1``)."""
    if all(_plain_int_or_pair(v) for v in (stride, padding, dilation)) and type(groups) is int:
        return _dims(input_shape, weight_shape, stride, padding, dilation, input_name, weight_name, groups)
    return Conv2dDims.from_shapes(input_shape, weight_shape, stride=stride, padding=padding, dilation=dilation,
                                  input_name=input_name, weight_name=weight_name, groups=groups)

def check_conv2d_args(x: Any, w: Any, b: Any, stride: Any, padding: Any, dilation: Any,
                      out: Any, groups: Any = 1) -> Conv2dDims:
    """Validate ``conv2d``'s arguments; return the sizes."""
    if not (_plain(x, w) and (b is None or (type(b) is np.ndarray and b.ndim == 1 and b.dtype == x.dtype
                                             and b.flags.c_contiguous))):
        check_array("x", x, ndim=4)
        check_array("w", w, ndim=4)
        if b is not None:
            check_array("b", b, ndim=1)
        check_same_dtype(x=x, w=w, b=b)
    dims = _conv_dims(tuple(x.shape), tuple(w.shape), stride, padding, dilation, "x", "w", groups)
    if b is not None:
        check_shape("b", b, (dims.c_out,))
    if out is not None:
        check_out(out, dims.output_shape, np.dtype(x.dtype))
    return dims


def _given_dims(dims: Any, **arrays: Any) -> Conv2dDims:
    """Trust a ``Conv2dDims`` built (and validated) once by the caller: only check the arrays fit it."""
    if not isinstance(dims, Conv2dDims):
        raise TypeError(f"dims must be a Conv2dDims (Conv2dDims.from_shapes), got {type(dims).__name__}")
    shapes = {"x": dims.input_shape, "w": dims.weight_shape, "grad_out": dims.output_shape}
    for name, a in arrays.items():
        if tuple(a.shape) != shapes[name]:
            raise ValueError(f"{name} must have shape {shapes[name]} (from dims), got {tuple(a.shape)}")
    return dims


def check_conv2d_backward_input_args(grad_out: Any, w: Any, input_shape: Any, stride: Any,
                                     padding: Any, dilation: Any, out: Any, groups: Any = 1,
                                     dims: Any = None) -> Conv2dDims:
    """Validate ``conv2d_backward_input``'s arguments; return the sizes (``dims`` when given)."""
    if not _plain(grad_out, w):
        check_array("grad_out", grad_out, ndim=4)
        check_array("w", w, ndim=4)
        check_same_dtype(grad_out=grad_out, w=w)
    if dims is not None:
        dims = _given_dims(dims, grad_out=grad_out, w=w)
        if out is not None:
            check_out(out, dims.input_shape, np.dtype(w.dtype))
        return dims
    input_shape = check_shape_tuple("input_shape", input_shape, 4)
    dims = _conv_dims(input_shape, tuple(w.shape), stride, padding, dilation, "input_shape", "w", groups)
    check_shape("grad_out", grad_out, dims.output_shape)
    if out is not None:
        check_out(out, dims.input_shape, np.dtype(w.dtype))
    return dims


def check_conv2d_backward_weight_args(x: Any, grad_out: Any, weight_shape: Any, stride: Any,
                                      padding: Any, dilation: Any, groups: Any = 1, dims: Any = None) -> Conv2dDims:
    """Validate ``conv2d_backward_weight``'s arguments; return the sizes (``dims`` when given)."""
    if not _plain(x, grad_out):
        check_array("x", x, ndim=4)
        check_array("grad_out", grad_out, ndim=4)
        check_same_dtype(x=x, grad_out=grad_out)
    if dims is not None:
        return _given_dims(dims, x=x, grad_out=grad_out)
    weight_shape = check_shape_tuple("weight_shape", weight_shape, 4)
    dims = _conv_dims(tuple(x.shape), weight_shape, stride, padding, dilation, "x", "weight_shape", groups)
    check_shape("grad_out", grad_out, dims.output_shape)
    return dims


# --------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------

def _windows(x: np.ndarray, d: Conv2dDims) -> np.ndarray:
    """``(N, C_in, H_out, W_out, kH, kW)`` view of the (padded) input: ``x`` under each tap."""
    (ph, pw), (sh, sw), (dh, dw) = d.padding, d.stride, d.dilation
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    view = sliding_window_view(x, (dh * (d.kh - 1) + 1, dw * (d.kw - 1) + 1), axis=(2, 3))
    return view[:, :, : (d.h_out - 1) * sh + 1 : sh, : (d.w_out - 1) * sw + 1 : sw, ::dh, ::dw]


def _im2col(x: np.ndarray, d: Conv2dDims) -> np.ndarray:
    """``(N, G, C_in/G*kH*kW, H_out*W_out)`` contiguous columns (one copy of the window view)."""
    cols = np.ascontiguousarray(_windows(x, d).transpose(0, 1, 4, 5, 2, 3))
    return cols.reshape(d.n, d.groups, d.c_in // d.groups * d.kh * d.kw, d.h_out * d.w_out)


def _grouped_weight(w: np.ndarray, d: Conv2dDims) -> np.ndarray:
    """``(G, C_out/G, C_in/G*kH*kW)`` view of the weights: one GEMM operand per group."""
    return w.reshape(d.groups, d.c_out // d.groups, d.c_in // d.groups * d.kh * d.kw)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, out: np.ndarray | None = None, groups: int = 1) -> np.ndarray:
    """2-D convolution (cross-correlation, as PyTorch), NCHW.

    Parameters
    ----------
    x : ndarray ``(N, C_in, H, W)``, float32 or float64, C-contiguous
    w : ndarray ``(C_out, C_in/groups, kH, kW)``, same dtype
    b : ndarray ``(C_out,)``, same dtype, optional
    stride, padding, dilation : int or pair of ints
    out : ndarray ``(N, C_out, H_out, W_out)``, optional
    groups : int, dividing ``C_in`` and ``C_out``
        Grouped convolution: output channels ``[g C_out/G, (g+1) C_out/G)``
        see only input channels ``[g C_in/G, (g+1) C_in/G)``.
        ``groups == C_in`` is a depthwise convolution.

    Returns
    -------
    ndarray ``(N, C_out, H_out, W_out)`` of ``x``'s dtype (``out`` when given).
    """
    d = check_conv2d_args(x, w, b, stride, padding, dilation, out, groups)
    if out is None:
        out = np.empty(d.output_shape, dtype=x.dtype)
    y = out.reshape(d.n, d.groups, d.c_out // d.groups, d.h_out * d.w_out)
    np.matmul(_grouped_weight(w, d), _im2col(x, d), out=y)
    y = out.reshape(d.n, d.c_out, d.h_out * d.w_out)
    if b is not None:
        y += b[:, None]
    return out


def conv2d_backward_input(grad_out: np.ndarray, w: np.ndarray, *, input_shape: tuple[int, int, int, int],
                          stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                          out: np.ndarray | None = None, groups: int = 1, dims: Any = None) -> np.ndarray:
    """Gradient of ``conv2d`` with respect to its input ``x``.

    Parameters
    ----------
    grad_out : ndarray ``(N, C_out, H_out, W_out)``, float32 or float64
    w : ndarray ``(C_out, C_in/groups, kH, kW)``, same dtype
    input_shape : tuple ``(N, C_in, H, W)``
    stride, padding, dilation, groups : as in the forward
    out : ndarray of ``input_shape``, optional
    dims : Conv2dDims, optional
        The forward's geometry (``Conv2dDims.from_shapes``, NNlib's ``DenseConvDims``), built once
        by the caller: the hyper-parameters are then not validated again (the arrays must fit it).

    Returns
    -------
    ndarray ``input_shape`` of ``w``'s dtype (``out`` when given).
    """
    d = check_conv2d_backward_input_args(grad_out, w, input_shape, stride, padding, dilation, out, groups, dims)
    (ph, pw), (sh, sw), (dh, dw) = d.padding, d.stride, d.dilation
    # Every tap's contribution at once: (N, G, C_in/G * kH * kW, H_out * W_out). Explicit sizes, never -1:
    # an empty batch has no size to infer.
    g = grad_out.reshape(d.n, d.groups, d.c_out // d.groups, d.h_out * d.w_out)
    taps = np.matmul(_grouped_weight(w, d).transpose(0, 2, 1), g)
    taps = taps.reshape(d.n, d.c_in, d.kh, d.kw, d.h_out, d.w_out)
    padded = np.zeros((d.n, d.c_in, d.h + 2 * ph, d.w + 2 * pw), dtype=w.dtype)
    for i in range(d.kh):
        for j in range(d.kw):
            padded[:, :, i * dh : i * dh + (d.h_out - 1) * sh + 1 : sh,
                   j * dw : j * dw + (d.w_out - 1) * sw + 1 : sw] += taps[:, :, i, j]
    if out is None:
        out = np.empty(d.input_shape, dtype=w.dtype)
    out[...] = padded[:, :, ph : ph + d.h, pw : pw + d.w]
    return out


def conv2d_backward_weight(x: np.ndarray, grad_out: np.ndarray, *, weight_shape: tuple[int, int, int, int],
                           stride: Any = 1, padding: Any = 0,
                           dilation: Any = 1, groups: int = 1, dims: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``conv2d`` with respect to its weights and bias.

    Parameters
    ----------
    x : ndarray ``(N, C_in, H, W)``, float32 or float64 (the forward input)
    grad_out : ndarray ``(N, C_out, H_out, W_out)``, same dtype
    weight_shape : tuple ``(C_out, C_in/groups, kH, kW)``
    stride, padding, dilation, groups : as in the forward
    dims : Conv2dDims, optional
        As in :func:`conv2d_backward_input`.

    Returns
    -------
    grad_w : ndarray ``weight_shape``
    grad_b : ndarray ``(C_out,)``, ``grad_out.sum(axis=(0, 2, 3))``
    """
    d = check_conv2d_backward_weight_args(x, grad_out, weight_shape, stride, padding, dilation, groups, dims)
    g = grad_out.reshape(d.n, d.groups, d.c_out // d.groups, d.h_out * d.w_out)
    grad_w = np.matmul(g, _im2col(x, d).transpose(0, 1, 3, 2)).sum(axis=0)
    grad_b = grad_out.sum(axis=(0, 2, 3))
    return grad_w.reshape(d.weight_shape), grad_b
