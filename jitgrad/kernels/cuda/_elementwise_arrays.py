"""Device arrays made, copied, selected and masked (``elementwise``'s ``where``, ``full``, ``copy``, ``astype``,
``broadcast_to``, ``transpose``, ``dropout_mask``).

Copies, casts, broadcasts and transposes are one gather kernel: each output
element reads the input offset its strides give (0 on broadcast dimensions),
so every result is a new C-contiguous array.

Dropout masks come from a counter-based hash of ``(seed, index)`` evaluated on
the device (no RNG state, no host round-trip, reproducible from the seed and
identical on every GPU and in the simulator): see :func:`dropout_mask`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numba import cuda

from jitgrad.kernels._validate import check_scalar
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda._broadcast import (
    _ANY_DTYPES, _DATA_DTYPES, MAX_DIMS, _broadcast_strides, _check_operand, _contiguous_strides, _is_scalar,
    _offset, _operands, _padded, broadcast_shapes,
)

@cuda.jit(device=True)
def _hash32(x):
    # A 32-bit integer mixer ("lowbias32"-style xorshift-multiply). Both multipliers are
    # below 2**31 and x below 2**32, so every product fits a signed 64-bit integer: the
    # arithmetic is exact (and identical) on the GPU, in the simulator and in NumPy.
    x = x & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x21F0AAAD) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x735A2D97) & 0xFFFFFFFF
    x ^= x >> 15
    return x


@cuda.jit
def _where_kernel(cond, c_strides, a, a_strides, a_scalar, a_is_scalar, b, b_strides, b_scalar, b_is_scalar,
                  shape, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        if cond[_offset(i, shape, c_strides)]:
            out[i] = a_scalar if a_is_scalar else a[_offset(i, shape, a_strides)]
        else:
            out[i] = b_scalar if b_is_scalar else b[_offset(i, shape, b_strides)]


@cuda.jit
def _gather_kernel(x, strides, shape, out):
    # out[i] = x[offset(i)], cast to out's dtype: copy, astype, broadcast_to and transpose.
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = x[_offset(i, shape, strides)]


@cuda.jit
def _fill_kernel(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


@cuda.jit
def _dropout_mask_kernel(seed, keep_threshold, scale, out):
    key = _hash32(seed)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        # Mix the index in two 32-bit halves so arrays beyond 2**32 elements stay random.
        h = _hash32(key ^ _hash32(i & 0xFFFFFFFF) ^ _hash32((i >> 32) + 0x9E3779B9))
        out[i] = scale if h >= keep_threshold else 0


# ----------------------------------------------------------------------------- public: select, create, copy

def where(cond: Any, a: Any, b: Any) -> Any:
    """``a`` where ``cond`` else ``b``, all three broadcast together (``np.where``).

    ``cond`` is a device array of any dtype (non-zero is true); ``a`` and ``b``
    are float device arrays of one dtype or Python scalars (at least one array).
    """
    _check_operand("cond", cond, dtypes=_ANY_DTYPES)
    dtype, shape, (aa, bb) = _operands(a, b)
    shape = broadcast_shapes(shape, tuple(cond.shape))
    # _operands computed strides against a's and b's own broadcast; redo them against the full shape.
    aa = aa if aa[4] else (aa[0], _broadcast_strides(a.shape, shape), False, aa[3], False)
    bb = bb if bb[4] else (bb[0], _broadcast_strides(b.shape, shape), False, bb[3], False)
    out = _launch.empty(shape, dtype)
    _launch.launch_1d(_where_kernel, out.size, _launch.flat(cond), _broadcast_strides(cond.shape, shape),
               aa[0], aa[1], aa[3], aa[4], bb[0], bb[1], bb[3], bb[4], _padded(shape), _launch.flat(out))
    return out


def fill(x: Any, value: float) -> Any:
    """Set every element of device array ``x`` to ``value`` in place; returns ``x``."""
    _check_operand("x", x, dtypes=_ANY_DTYPES)
    _launch.launch_1d(_fill_kernel, x.size, _launch.flat(x), np.dtype(x.dtype).type(value))
    return x


def full(shape: Sequence[int] | int, value: float, dtype: Any = np.float32) -> Any:
    """A new device array of ``shape`` and ``dtype`` filled with ``value``."""
    shape = (int(shape),) if _is_scalar(shape) else tuple(int(s) for s in shape)
    return fill(_launch.empty(shape, dtype), value)


def zeros(shape: Sequence[int] | int, dtype: Any = np.float32) -> Any:
    """A new device array of zeros."""
    return full(shape, 0, dtype)


def ones(shape: Sequence[int] | int, dtype: Any = np.float32) -> Any:
    """A new device array of ones."""
    return full(shape, 1, dtype)


def zeros_like(x: Any) -> Any:
    """Zeros of ``x``'s shape and dtype."""
    return zeros(tuple(x.shape), x.dtype)


def ones_like(x: Any) -> Any:
    """Ones of ``x``'s shape and dtype."""
    return ones(tuple(x.shape), x.dtype)


def _gather(x: Any, strides: tuple[int, ...], shape: tuple[int, ...], dtype: Any) -> Any:
    out = _launch.empty(shape, dtype)
    _launch.launch_1d(_gather_kernel, out.size, _launch.flat(x), strides, _padded(shape), _launch.flat(out))
    return out


def copy(x: Any) -> Any:
    """A new C-contiguous device array equal to ``x``."""
    return astype(x, x.dtype)


def astype(x: Any, dtype: Any) -> Any:
    """``x`` converted to ``dtype`` (a new array; float to int truncates, as NumPy)."""
    _check_operand("x", x, dtypes=_ANY_DTYPES)
    return _gather(x, _broadcast_strides(x.shape, x.shape), tuple(x.shape), np.dtype(dtype))


def broadcast_to(x: Any, shape: Sequence[int]) -> Any:
    """``x`` broadcast to ``shape``, materialised as a new C-contiguous device array."""
    _check_operand("x", x, dtypes=_ANY_DTYPES)
    shape = tuple(int(s) for s in shape)
    if broadcast_shapes(tuple(x.shape), shape) != shape:
        raise ValueError(f"cannot broadcast x of shape {tuple(x.shape)} to shape {shape}")
    return _gather(x, _broadcast_strides(x.shape, shape), shape, x.dtype)


def transpose(x: Any, axes: Sequence[int] | None = None) -> Any:
    """``np.transpose(x, axes)`` as a new C-contiguous device array (default: reverse the axes)."""
    _check_operand("x", x, dtypes=_ANY_DTYPES)
    nd = x.ndim
    if nd > MAX_DIMS:
        raise ValueError(f"at most {MAX_DIMS} dimensions are supported, got shape {tuple(x.shape)}")
    axes = tuple(range(nd))[::-1] if axes is None else tuple(axes)
    if sorted(int(a) % nd if nd else a for a in axes) != list(range(nd)) or len(axes) != nd:
        raise ValueError(f"axes must be a permutation of 0..{nd - 1}, got {axes}")
    axes = tuple(int(a) % nd for a in axes)
    src = _contiguous_strides(x.shape)
    shape = tuple(int(x.shape[a]) for a in axes)
    strides = (0,) * (MAX_DIMS - nd) + tuple(src[a] for a in axes)
    return _gather(x, strides, shape, x.dtype)


def dropout_mask(shape: Sequence[int] | int, p: float, seed: int, dtype: Any = np.float32) -> Any:
    """Inverted-dropout mask: each element is ``1 / (1 - p)`` with probability ``1 - p``, else 0.

    Generated on the device from a counter-based hash of ``(seed, flat index)``:
    no generator state, and the same ``seed`` gives the same mask on every GPU
    and in the simulator. Use a new seed every step (e.g. step counter mixed
    with a base seed); multiply the activations by the mask forward and the
    gradient by the same mask backward.

    Parameters
    ----------
    shape : int or tuple of ints
    p : float in [0, 1), probability of dropping an element
    seed : int in [0, 2**32)
    dtype : float32 or float64

    Returns
    -------
    device array of ``shape`` and ``dtype``.
    """
    p = check_scalar("p", p, minimum=0.0)
    if p >= 1.0:
        raise ValueError(f"p must be in [0, 1), got {p!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
    if np.dtype(dtype) not in _DATA_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    shape = (int(shape),) if _is_scalar(shape) else tuple(int(s) for s in shape)
    out = _launch.empty(shape, dtype)
    # Keep when hash >= p * 2**32: a kept fraction of exactly 1 - p up to 2**-32.
    _launch.launch_1d(_dropout_mask_kernel, out.size, int(seed), int(math.ceil(p * 2.0**32)),
               np.dtype(dtype).type(1.0 / (1.0 - p)), _launch.flat(out))
    return out
