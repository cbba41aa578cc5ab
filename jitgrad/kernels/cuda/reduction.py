"""Reductions on the device: ``sum``, ``mean``, ``max``, ``min`` over axes, ``sum_to_shape``, ``argmax``.

Signatures follow NumPy (``sum(x, axis=None, keepdims=False)``), so an
autograd backend can use this module as part of its array namespace.

One block computes one output element: its threads stride over the reduced
elements and meet in a shared-memory tree (deterministic: the same bits every
run, unlike atomics). The reduced and the kept axes are each described by a
shape and element strides padded to ``MAX_DIMS``, so one kernel serves every
choice of axes.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numba import cuda

from jitgrad.kernels._validate import check_array, normalize_axes, normalize_axis
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda._launch import MAX_THREADS_PER_BLOCK, block_max, block_sum
from jitgrad.kernels.cuda._broadcast import MAX_DIMS, _contiguous_strides, _offset, _padded

__all__: list[str] = ["sum", "mean", "max", "min", "sum_to_shape", "argmax"]

_SUM, _MAX, _MIN = range(3)


@cuda.jit
def _reduce_kernel(x, op, scale, kept_shape, kept_strides, red_shape, red_strides, n_red, out):
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, x.dtype)
    t = x.dtype.type
    for o in range(cuda.blockIdx.x, out.size, cuda.gridDim.x):
        base = _offset(o, kept_shape, kept_strides)
        if op == _SUM:
            part = t(0)
            for j in range(cuda.threadIdx.x, n_red, cuda.blockDim.x):
                part += x[base + _offset(j, red_shape, red_strides)]
            total = block_sum(buf, part) * scale
        else:
            # min(x) = -max(-x): one max tree serves both.
            sign = t(1) if op == _MAX else t(-1)
            part = t(-math.inf)
            for j in range(cuda.threadIdx.x, n_red, cuda.blockDim.x):
                v = sign * x[base + _offset(j, red_shape, red_strides)]
                if v > part or v != v:
                    part = v
            total = sign * block_max(buf, part)
        if cuda.threadIdx.x == 0:
            out[o] = total


@cuda.jit
def _argmax_kernel(x, length, inner, out):
    # One block per (outer, inner) row of the (outer, L, inner) view; first index wins ties,
    # the first NaN wins over numbers (np.argmax).
    values = cuda.shared.array(MAX_THREADS_PER_BLOCK, x.dtype)
    indices = cuda.shared.array(MAX_THREADS_PER_BLOCK, np.int64)
    tid = cuda.threadIdx.x
    for row in range(cuda.blockIdx.x, out.size, cuda.gridDim.x):
        base = (row // inner) * length * inner + row % inner
        best_at = -1
        best = x[base]
        for j in range(tid, length, cuda.blockDim.x):
            v = x[base + j * inner]
            if best_at < 0 or v > best or (v != v and best == best):
                best = v
                best_at = j
        values[tid] = best
        indices[tid] = best_at
        cuda.syncthreads()
        active = cuda.blockDim.x
        while active > 1:
            half = (active + 1) // 2
            if tid < active - half:
                v = values[tid + half]
                at = indices[tid + half]
                mine = indices[tid]
                # A thread that saw no element (index -1) always loses.
                if at >= 0 and (mine < 0 or v > values[tid] or (v != v and values[tid] == values[tid])
                                or (at < mine and (v == values[tid] or (v != v and values[tid] != values[tid])))):
                    values[tid] = v
                    indices[tid] = at
            cuda.syncthreads()
            active = half
        if tid == 0:
            out[row] = indices[0]
        cuda.syncthreads()


def _check_x(x: Any) -> None:
    if not _launch.is_device_array(x):
        raise TypeError(f"x must be a numba device array, got {type(x).__name__}")
    check_array("x", x)
    if x.ndim > MAX_DIMS:
        raise ValueError(f"at most {MAX_DIMS} dimensions are supported, got shape {tuple(x.shape)}")


def _reduce(x: Any, axis: Any, keepdims: bool, op: int, name: str, mean: bool = False) -> Any:
    _check_x(x)
    axes = normalize_axes(axis, x.ndim)
    shape = tuple(int(s) for s in x.shape)
    strides = _contiguous_strides(shape)
    kept = [d for d in range(x.ndim) if d not in axes]
    n_red = math.prod(shape[d] for d in axes)
    if n_red == 0 and op != _SUM:
        raise ValueError(f"{name}: cannot reduce over a zero-size axis of x with shape {shape} (no identity)")
    out_shape = tuple(1 if d in axes else shape[d] for d in range(x.ndim)) if keepdims else \
        tuple(shape[d] for d in kept)
    out = _launch.empty(out_shape, x.dtype)
    n_out = math.prod(out_shape)
    if n_out == 0:
        return out
    kept_shape = _padded([shape[d] for d in kept])
    kept_strides = (0,) * (MAX_DIMS - len(kept)) + tuple(strides[d] for d in kept)
    red_shape = _padded([shape[d] for d in axes])
    red_strides = (0,) * (MAX_DIMS - len(axes)) + tuple(strides[d] for d in axes)
    scale = x.dtype.type(1.0 / n_red if (mean and n_red) else (math.nan if mean else 1.0))
    blocks, threads = _launch.grid_rows(n_out)
    _reduce_kernel[blocks, threads](_launch.flat(x), op, scale, kept_shape, kept_strides, red_shape,
                                    red_strides, n_red, _launch.flat(out))
    return out


def sum(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum over ``axis`` (int, tuple, or None for all), as ``np.sum``.

    ``x`` float32/float64 C-contiguous device array with at most 6 dimensions;
    returns a device array of ``x``'s dtype (shape ``()`` for a full reduction).
    """
    return _reduce(x, axis, keepdims, _SUM, "sum")


def mean(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:
    """Mean over ``axis``, as ``np.mean`` (NaN over an empty axis)."""
    return _reduce(x, axis, keepdims, _SUM, "mean", mean=True)


def max(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Maximum over ``axis``, as ``np.max`` (NaN propagates)."""
    return _reduce(x, axis, keepdims, _MAX, "max")


def min(x: Any, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Minimum over ``axis``, as ``np.min`` (NaN propagates)."""
    return _reduce(x, axis, keepdims, _MIN, "min")


def sum_to_shape(x: Any, shape: Sequence[int]) -> Any:
    """Sum ``x`` down to ``shape``: the gradient of broadcasting an array of ``shape`` up to ``x.shape``.

    Sums the leading axes ``x`` has beyond ``len(shape)`` and every axis where
    ``shape`` has 1 and ``x`` has more; returns a device array of exactly ``shape``
    (``x`` itself when its shape already is ``shape``).
    """
    _check_x(x)
    shape = tuple(int(s) for s in shape)
    lead = x.ndim - len(shape)
    if lead < 0 or any(s not in (1, xs) for s, xs in zip(shape, tuple(x.shape)[lead:])):
        raise ValueError(f"cannot sum x of shape {tuple(x.shape)} to shape {shape}: "
                         f"{shape} does not broadcast to {tuple(x.shape)}")
    axes = tuple(range(lead)) + tuple(lead + d for d, s in enumerate(shape) if s == 1 and x.shape[lead + d] != 1)
    if not axes:
        return x  # already that shape: no copy (callers must not write into the result in place)
    # keepdims leaves 1s on every summed axis, so the result reshapes to ``shape`` as a view.
    return _reduce(x, axes, True, _SUM, "sum_to_shape").reshape(shape)


def argmax(x: Any, axis: int = -1) -> Any:
    """Index of the maximum along ``axis`` (default the last), as ``np.argmax``; an int64 device array.

    Ties go to the first index; a NaN counts as the maximum (the first NaN).
    """
    _check_x(x)
    if x.ndim == 0:
        raise ValueError("argmax needs at least 1 dimension, got a 0-D array")
    ax = normalize_axis(axis, x.ndim)
    shape = tuple(int(s) for s in x.shape)
    length = shape[ax]
    if length == 0:
        raise ValueError(f"argmax: x has length 0 along axis {axis} (shape {shape})")
    out_shape = shape[:ax] + shape[ax + 1:]
    out = _launch.empty(out_shape, np.int64)
    rows = math.prod(out_shape)
    if rows:
        blocks, threads = _launch.grid_rows(rows)
        _argmax_kernel[blocks, threads](_launch.flat(x), length, math.prod(shape[ax + 1:]), _launch.flat(out))
    return out
