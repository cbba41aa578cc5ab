"""Broadcasting on the device: shapes, element strides and operands for ``elementwise`` and ``reduction``.

Shapes are right-aligned and left-padded to ``MAX_DIMS = 6`` dimensions; each
input gets per-dimension strides (in elements) that are 0 on its broadcast
dimensions. One thread per output element turns its flat index into an input
offset with :func:`_offset`. Operands are C-contiguous float device arrays or
Python scalars, which are cast to the array's dtype on the host (NumPy 2's
rule, so ``multiply(x32, 0.5)`` stays float32).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from numba import cuda

from jitgrad.kernels._validate import check_array, check_same_dtype
from jitgrad.kernels.cuda import _launch

#: Most dimensions a broadcasting operation handles (shapes are left-padded to this).
MAX_DIMS = 6

_DATA_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ANY_DTYPES = None  # copy, astype, broadcast_to, transpose, where's cond: any dtype


@cuda.jit(device=True)
def _offset(i, shape, strides):
    """Offset of output element ``i`` (flat, row-major over ``shape``) in an input with ``strides``."""
    off = 0
    for d in range(MAX_DIMS - 1, -1, -1):
        size = shape[d]
        off += (i % size) * strides[d]
        i //= size
    return off


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """NumPy's broadcast of ``shapes``; ``ValueError`` naming them when they do not broadcast."""
    try:
        shape = np.broadcast_shapes(*(tuple(s) for s in shapes))
    except ValueError:
        raise ValueError(f"shapes {', '.join(str(tuple(s)) for s in shapes)} cannot be broadcast together") from None
    if len(shape) > MAX_DIMS:
        raise ValueError(f"at most {MAX_DIMS} dimensions are supported, got shape {shape}")
    return shape


def _padded(shape: Sequence[int]) -> tuple[int, ...]:
    return (1,) * (MAX_DIMS - len(shape)) + tuple(int(s) for s in shape)


def _contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(tuple(shape)):
        strides.append(step)
        step *= int(size)
    return tuple(reversed(strides))


def _broadcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, ...]:
    """Element strides of a contiguous ``shape`` read as ``out_shape``: 0 on broadcast dimensions."""
    shape, out_shape = _padded(shape), _padded(out_shape)
    return tuple(0 if s == 1 and o != 1 else st for s, o, st in zip(shape, out_shape, _contiguous_strides(shape)))


def _check_operand(name: str, a: Any, dtypes: Any = _DATA_DTYPES) -> None:
    if not _launch.is_device_array(a):
        raise TypeError(f"{name} must be a numba device array or a Python scalar, got {type(a).__name__}")
    check_array(name, a, dtypes=dtypes)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _operands(a: Any, b: Any) -> tuple[np.dtype, tuple[int, ...], list[tuple[Any, ...]]]:
    """Validate two operands (arrays or scalars); return dtype, output shape, per-operand kernel args."""
    a_scalar, b_scalar = _is_scalar(a), _is_scalar(b)
    if a_scalar and b_scalar:
        raise TypeError("at least one operand must be a device array, got two scalars")
    if not a_scalar:
        _check_operand("a", a)
    if not b_scalar:
        _check_operand("b", b)
    if not (a_scalar or b_scalar):
        check_same_dtype(a=a, b=b)
    dtype = np.dtype((b if a_scalar else a).dtype)
    shape = broadcast_shapes(*(tuple(v.shape) for v in (a, b) if not _is_scalar(v)))
    args = []
    for v, is_scalar in ((a, a_scalar), (b, b_scalar)):
        if is_scalar:
            # Cast on the host so the kernel computes in the array's precision (NumPy 2 rule).
            args.append((_placeholder(dtype), (0,) * MAX_DIMS, False, dtype.type(v), True))
        else:
            full = tuple(v.shape) == shape
            args.append((_launch.flat(v), _broadcast_strides(v.shape, shape), full, dtype.type(0), False))
    return dtype, shape, args


_PLACEHOLDERS: dict[np.dtype, Any] = {}


def _placeholder(dtype: np.dtype) -> Any:
    """A 1-element device array standing in for a scalar operand (never read); made once per dtype."""
    if dtype not in _PLACEHOLDERS:
        _PLACEHOLDERS[dtype] = cuda.device_array(1, dtype=dtype)
    return _PLACEHOLDERS[dtype]


def _new_or_out(out: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    if out is None:
        return _launch.empty(shape, dtype)
    _check_operand("out", out, dtypes=(np.dtype(dtype),))
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {tuple(out.shape)}")
    return out


