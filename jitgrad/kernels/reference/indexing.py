"""NumPy reference of the indexing kernels the CUDA autograd backend is built from.

On the CPU the autograd indexes NumPy arrays directly (``a[index]``,
``np.add.at``); on the GPU an index is planned on the host (which flat
positions it reads) and carried out by these small kernels, so the array
never leaves the device. This module is their contract, and what
``tests/cuda/test_indexing.py`` holds :mod:`jitgrad.kernels.cuda.indexing` to.
There is no ``kernels.cpu.indexing``: the CPU backend needs none of them.

Positions are *flat element offsets* into a C-contiguous array (read as
``x.reshape(-1)``); ``strides`` count elements, not bytes, and may be
negative or zero (a basic-indexing view: ints, slices, ``None``, ``...``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jitgrad.kernels._validate import (
    check_array, check_index_array, check_out, check_same_dtype, check_view, check_view_inside,
)

__all__: list[str] = ["log1p", "one_hot_rows", "strided_gather", "strided_scatter", "take", "segment_sum"]


# ----------------------------------------------------------------------------- validation
#
# Called by the reference and CUDA wrappers alike: one message per check.

def check_one_hot_rows_args(index: Any, length: Any) -> tuple[int, int]:
    """Validate ``one_hot_rows``' arguments; return the result's shape."""
    check_index_array("index", index)
    if index.ndim != 1:
        raise ValueError(f"index must be 1-D, got shape {tuple(index.shape)}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise TypeError(f"length must be an int, got {type(length).__name__} {length!r}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    return int(index.shape[0]), int(length)


def check_segment_sum_args(g: Any, order: Any, starts: Any) -> int:
    """Validate ``segment_sum``'s arrays (not their values: that would need them on the host); return n."""
    check_array("g", g)
    check_index_array("order", order)
    check_index_array("starts", starts)
    if order.ndim != 1 or starts.ndim != 1 or starts.shape[0] < 1:
        raise ValueError(f"order and starts must be 1-D (starts non-empty), got shapes "
                         f"{tuple(order.shape)} and {tuple(starts.shape)}")
    return int(starts.shape[0]) - 1


def view_positions(base: int, strides: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Flat positions ``base + sum_d i_d * strides[d]`` of every element of the view, row-major, int64."""
    positions = np.full(shape, int(base), dtype=np.int64)
    for d, (size, stride) in enumerate(zip(shape, strides)):
        axis_shape = [1] * len(shape)
        axis_shape[d] = size
        positions = positions + (np.arange(size, dtype=np.int64) * stride).reshape(axis_shape)
    return positions


def _check_positions_inside(name: str, positions: np.ndarray, size: int) -> None:
    if positions.size and (positions.min() < 0 or positions.max() >= size):
        raise ValueError(f"{name} reaches outside an array of {size} elements "
                         f"(positions {positions.min()}..{positions.max()})")


# ----------------------------------------------------------------------------- kernels

def log1p(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Elementwise ``log(1 + x)``, accurate for small ``x``.

    Parameters
    ----------
    x : ndarray, float32 or float64, any shape, C-contiguous
    out : ndarray, optional
        Same shape and dtype as ``x``; may be ``x`` itself.

    Returns
    -------
    ndarray
        ``log1p(x)`` in ``x``'s dtype (``-inf`` at -1, NaN below, NaN propagates).
    """
    check_array("x", x)
    if out is None:
        out = np.empty(x.shape, dtype=x.dtype)
    check_out(out, tuple(x.shape), x.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log1p(x, out=out)
    return out


def one_hot_rows(index: np.ndarray, length: int, out: np.ndarray | None = None) -> np.ndarray:
    """Boolean rows, True only at column ``index[row]`` of each row.

    The backward of ``max`` over some axes: with those axes moved last and
    flattened, ``index`` is each row's ``argmax`` and the mask marks it.

    Parameters
    ----------
    index : ndarray, int32 or int64, shape (rows,)
        A column in ``[0, length)`` per row (others leave the row all False).
    length : int
        Number of columns (``>= 0``).
    out : ndarray of bool, shape (rows, length), optional

    Returns
    -------
    ndarray of bool, shape (rows, length)
    """
    shape = check_one_hot_rows_args(index, length)
    if out is None:
        out = np.empty(shape, dtype=np.bool_)
    check_out(out, shape, np.dtype(np.bool_))
    out[...] = np.arange(length)[None, :] == np.asarray(index)[:, None]
    return out


def strided_gather(x: np.ndarray, base: int, strides: Sequence[int], shape: Sequence[int],
                   out: np.ndarray | None = None) -> np.ndarray:
    """A strided view of ``x`` made contiguous: ``out[i] = x.flat[base + sum_d i_d * strides[d]]``.

    This is basic indexing (``x[2, 1:5:-1, None]``) once the host has turned
    the index into the view's element offset ``base``, element ``strides``
    and ``shape``.

    Parameters
    ----------
    x : ndarray, any dtype, C-contiguous
        Read as ``x.reshape(-1)``.
    base : int
        Flat position of the view's first element.
    strides : sequence of int
        Element strides of the view, one per dimension of ``shape``.
    shape : sequence of int
        The view's (and the result's) shape.
    out : ndarray, optional
        ``shape`` and ``x``'s dtype.

    Returns
    -------
    ndarray of ``shape``, ``x``'s dtype

    Raises
    ------
    ValueError
        If a position falls outside ``x``.
    """
    check_array("x", x, dtypes=None)
    shape, strides = check_view(shape, strides, base)
    check_view_inside(base, strides, shape, int(x.size))
    positions = view_positions(base, strides, shape)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    check_out(out, shape, x.dtype)
    out[...] = np.asarray(x).reshape(-1)[positions]
    return out


def strided_scatter(g: np.ndarray, base: int, strides: Sequence[int], out: np.ndarray) -> np.ndarray:
    """The transpose of :func:`strided_gather`: ``out.flat[base + sum_d i_d * strides[d]] = g[i]``.

    The backward of basic indexing. Such a view never names an element twice,
    so every element of ``out`` is written at most once; the others keep
    their value (callers pass zeros).

    Parameters
    ----------
    g : ndarray, C-contiguous
        The view's values; its shape is the view's shape.
    base : int
    strides : sequence of int
        Element strides, one per dimension of ``g``.
    out : ndarray, C-contiguous, ``g``'s dtype
        Written in place (read as ``out.reshape(-1)``).

    Returns
    -------
    ndarray
        ``out``.
    """
    check_array("g", g, dtypes=None)
    check_array("out", out, dtypes=None)
    check_same_dtype(g=g, out=out)
    shape, strides = check_view(g.shape, strides, base)
    check_view_inside(base, strides, shape, int(out.size))
    positions = view_positions(base, strides, shape)
    out.reshape(-1)[positions] = g
    return out


def take(x: np.ndarray, positions: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``out[i] = x.flat[positions[i]]``: advanced indexing once the host has planned the positions.

    Parameters
    ----------
    x : ndarray, any dtype, C-contiguous
    positions : ndarray, int32 or int64, any shape
        Flat positions in ``[0, x.size)``. The reference checks them; the CUDA
        kernel, which could only read them back by waiting for the device,
        trusts the host that planned them (as for ``order`` and ``starts``
        of :func:`segment_sum`).
    out : ndarray, optional
        ``positions``' shape, ``x``'s dtype.

    Returns
    -------
    ndarray of ``positions``' shape
    """
    check_array("x", x, dtypes=None)
    check_index_array("positions", positions)
    _check_positions_inside("positions", np.asarray(positions), int(x.size))
    if out is None:
        out = np.empty(positions.shape, dtype=x.dtype)
    check_out(out, tuple(positions.shape), x.dtype)
    out[...] = np.asarray(x).reshape(-1)[positions]
    return out


def segment_sum(g: np.ndarray, order: np.ndarray, starts: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``out[j] = sum(g.flat[order[starts[j]:starts[j + 1]]])``, each sum in ``order``'s order.

    The backward of advanced indexing, as a gather: when ``order`` sorts the
    planned positions (stably) and ``starts`` are the segment boundaries,
    element ``j`` of the input sums the gradient of every output that read
    it. Repeated indices accumulate in one fixed order, so the result is
    deterministic (no atomics).

    Parameters
    ----------
    g : ndarray, float32 or float64, C-contiguous
    order : ndarray, int32 or int64, shape (m,)
        Positions in ``g.reshape(-1)``.
    starts : ndarray, int32 or int64, shape (n + 1,)
        Non-decreasing, from 0 to at most ``m``.
    out : ndarray, shape (n,), ``g``'s dtype, optional

    Returns
    -------
    ndarray, shape (n,)
        The segment sums, accumulated in ``g``'s dtype (empty segments are 0).
    """
    n = check_segment_sum_args(g, order, starts)
    starts_host, order_host = np.asarray(starts), np.asarray(order)
    if starts_host[0] < 0 or starts_host[-1] > order.shape[0] or np.any(np.diff(starts_host) < 0):
        raise ValueError(f"starts must be non-decreasing within [0, {order.shape[0]}], got {starts_host}")
    _check_positions_inside("order", order_host, int(g.size))
    if out is None:
        out = np.empty((n,), dtype=g.dtype)
    check_out(out, (n,), g.dtype)
    flat = np.asarray(g).reshape(-1)
    for j in range(n):
        total = g.dtype.type(0)
        for k in range(starts_host[j], starts_host[j + 1]):
            total = total + flat[order_host[k]]
        out[j] = total
    return out
