"""CUDA indexing kernels: what the autograd's CUDA backend indexes device arrays with.

Same names, signatures and contract as :mod:`jitgrad.kernels.reference.indexing`
(the docstrings are the reference's). The host plans an index (which flat
positions it reads); these kernels move the data on the device, one thread
per output element in grid-stride loops, so every result is deterministic.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Sequence

import numpy as np
from numba import cuda

from jitgrad.kernels import _contract
from jitgrad.kernels._validate import (
    check_array, check_index_array, check_out, check_same_dtype, check_view, check_view_inside,
)
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda.elementwise import MAX_DIMS, _offset, _padded
from jitgrad.kernels.reference import indexing as _reference
from jitgrad.kernels.reference.indexing import check_one_hot_rows_args, check_segment_sum_args

__all__: list[str] = list(_reference.__all__)


# ----------------------------------------------------------------------------- kernels

@cuda.jit
def _log1p_kernel(x, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = math.log1p(x[i])


@cuda.jit
def _one_hot_rows_kernel(index, length, out):
    # out (rows * length,) bool: True only at column index[row] of each row.
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = (i % length) == index[i // length]


@cuda.jit
def _strided_gather_kernel(x, base, strides, shape, out):
    # out[i] = x[base + offset(i)]: a basic-indexing view (ints and slices) made contiguous.
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = x[base + _offset(i, shape, strides)]


@cuda.jit
def _strided_scatter_kernel(g, base, strides, shape, out):
    # The transpose of the gather above. Basic indexing never selects an element twice,
    # so the writes are disjoint: one thread per element of g, no atomics, deterministic.
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[base + _offset(i, shape, strides)] = g[i]


@cuda.jit
def _take_kernel(x, positions, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = x[positions[i]]


@cuda.jit
def _segment_sum_kernel(g, order, starts, zero, out):
    # Input element j sums the gradient entries order[starts[j]:starts[j + 1]] in a fixed
    # order, so repeated indices accumulate deterministically instead of racing on atomics.
    # ``zero`` has g's dtype: a 0.0 literal would make a float32 sum float64.
    for j in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        total = zero
        for k in range(starts[j], starts[j + 1]):
            total += g[order[k]]
        out[j] = total


# ----------------------------------------------------------------------------- wrappers

def _check_device(name: str, a: Any) -> None:
    if not _launch.is_device_array(a):
        raise TypeError(f"{name} must be a numba device array, got {type(a).__name__}")


def _view_args(shape: tuple[int, ...], strides: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Strides and shape padded in front to the ``MAX_DIMS`` the kernels index with."""
    if len(shape) > MAX_DIMS:
        raise ValueError(f"at most {MAX_DIMS} dimensions are supported, got shape {shape}")
    return (0,) * (MAX_DIMS - len(strides)) + strides, _padded(shape)


def _out_or_empty(out: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    if out is None:
        return _launch.empty(shape, dtype)
    _check_device("out", out)
    check_out(out, shape, np.dtype(dtype))
    return out


def log1p(x: Any, out: Any = None) -> Any:
    _check_device("x", x)
    check_array("x", x)
    out = _out_or_empty(out, tuple(x.shape), x.dtype)
    _launch.launch_1d(_log1p_kernel, x.size, _launch.flat(x), _launch.flat(out))
    return out


def one_hot_rows(index: Any, length: int, out: Any = None) -> Any:
    _check_device("index", index)
    out = _out_or_empty(out, check_one_hot_rows_args(index, length), np.bool_)
    _launch.launch_1d(_one_hot_rows_kernel, out.size, index, int(length), _launch.flat(out))
    return out


def strided_gather(x: Any, base: int, strides: Sequence[int], shape: Sequence[int], out: Any = None) -> Any:
    _check_device("x", x)
    check_array("x", x, dtypes=None)
    shape, strides = check_view(shape, strides, base)
    check_view_inside(int(base), strides, shape, int(x.size))
    padded_strides, padded_shape = _view_args(shape, strides)
    out = _out_or_empty(out, shape, x.dtype)
    _launch.launch_1d(_strided_gather_kernel, out.size, _launch.flat(x), int(base), padded_strides, padded_shape,
               _launch.flat(out))
    return out


def strided_scatter(g: Any, base: int, strides: Sequence[int], out: Any) -> Any:
    _check_device("g", g)
    _check_device("out", out)
    check_array("g", g, dtypes=None)
    check_array("out", out, dtypes=None)
    check_same_dtype(g=g, out=out)
    shape, strides = check_view(tuple(g.shape), strides, base)
    check_view_inside(int(base), strides, shape, int(out.size))
    padded_strides, padded_shape = _view_args(shape, strides)
    _launch.launch_1d(_strided_scatter_kernel, g.size, _launch.flat(g), int(base), padded_strides, padded_shape,
               _launch.flat(out))
    return out


def take(x: Any, positions: Any, out: Any = None) -> Any:
    _check_device("x", x)
    _check_device("positions", positions)
    check_array("x", x, dtypes=None)
    check_index_array("positions", positions)
    out = _out_or_empty(out, tuple(positions.shape), x.dtype)
    _launch.launch_1d(_take_kernel, out.size, _launch.flat(x), _launch.flat(positions), _launch.flat(out))
    return out


def segment_sum(g: Any, order: Any, starts: Any, out: Any = None) -> Any:
    for name, a in (("g", g), ("order", order), ("starts", starts)):
        _check_device(name, a)
    out = _out_or_empty(out, (check_segment_sum_args(g, order, starts),), g.dtype)
    _launch.launch_1d(_segment_sum_kernel, out.size, _launch.flat(g), order, starts, g.dtype.type(0), out)
    return out


# The contract is written once, in the reference (this module is not among KERNEL_MODULES,
# whose docs kernels/cuda/__init__.py adopts, so it adopts its own).
_contract.adopt_reference_docs([sys.modules[__name__]])
