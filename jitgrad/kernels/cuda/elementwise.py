"""Elementwise device operations with NumPy broadcasting: the array namespace of the CUDA autograd.

Every function mirrors its NumPy namesake (``add(a, b)`` is ``np.add(a, b)``)
on Numba device arrays, so an autograd backend can use this module as its
``xp``. Inputs are C-contiguous device arrays; binary operations also take a
Python scalar for either operand, which is cast to the array's dtype first
(NumPy 2's rule for Python scalars, so ``multiply(x32, 0.5)`` stays float32).

How broadcasting runs: shapes are right-aligned and left-padded to
``MAX_DIMS = 6`` dimensions; each input gets per-dimension strides (in
elements) that are 0 on its broadcast dimensions. One thread per output
element turns its flat index into an input offset with those strides. When an
input already has the output's shape the kernel skips that arithmetic.

Dropout masks come from a counter-based hash of ``(seed, index)`` evaluated on
the device (no RNG state, no host round-trip, reproducible from the seed and
identical on every GPU and in the simulator): see :func:`dropout_mask`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numba import cuda

from jitgrad.kernels._validate import check_array, check_same_dtype, check_scalar
from jitgrad.kernels.cuda import _launch

__all__: list[str] = [
    "MAX_DIMS", "broadcast_shapes",
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "negative", "exp", "log", "sqrt", "absolute", "abs", "square", "sign", "reciprocal",
    "where", "full", "zeros", "ones", "zeros_like", "ones_like", "fill", "copy", "astype",
    "broadcast_to", "transpose", "dropout_mask",
]

#: Most dimensions a broadcasting operation handles (shapes are left-padded to this).
MAX_DIMS = 6

# Operation codes. A runtime code keeps one compiled kernel per dtype rather than one per
# operation; the branch is uniform across a launch, so it costs the GPU next to nothing.
_ADD, _SUB, _MUL, _DIV, _POW, _MAX, _MIN = range(7)
_EQ, _NE, _LT, _LE, _GT, _GE = range(6)
_NEG, _EXP, _LOG, _SQRT, _ABS, _SQUARE, _SIGN, _RECIP = range(8)

_DATA_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ANY_DTYPES = None  # copy, astype, broadcast_to, transpose, where's cond: any dtype


# ----------------------------------------------------------------------------- device helpers

@cuda.jit(device=True)
def _offset(i, shape, strides):
    """Offset of output element ``i`` (flat, row-major over ``shape``) in an input with ``strides``."""
    off = 0
    for d in range(MAX_DIMS - 1, -1, -1):
        size = shape[d]
        off += (i % size) * strides[d]
        i //= size
    return off


@cuda.jit(device=True)
def _binary_op(op, x, y):
    if op == _ADD:
        return x + y
    if op == _SUB:
        return x - y
    if op == _MUL:
        return x * y
    if op == _DIV:
        return x / y
    if op == _POW:
        return x ** y
    if op == _MAX:
        # NaN propagates, as np.maximum.
        return x if (x > y or x != x) else y
    return x if (x < y or x != x) else y


@cuda.jit(device=True)
def _compare_op(op, x, y):
    if op == _EQ:
        return x == y
    if op == _NE:
        return x != y
    if op == _LT:
        return x < y
    if op == _LE:
        return x <= y
    if op == _GT:
        return x > y
    return x >= y


@cuda.jit(device=True)
def _unary_op(op, x, one, neg_inf, nan):
    # one, -inf and NaN arrive in x's dtype: a literal would make a float32 kernel compute in float64.
    if op == _NEG:
        return -x
    if op == _EXP:
        return math.exp(x)
    if op == _LOG:
        return math.log(x) if x > 0 else (neg_inf if x == 0 else nan)
    if op == _SQRT:
        return math.sqrt(x) if x >= 0 else nan
    if op == _ABS:
        return math.fabs(x)
    if op == _SQUARE:
        return x * x
    if op == _SIGN:
        # 0, -0 and NaN map to themselves.
        return one if x > 0 else (-one if x < 0 else x)
    return one / x


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


# ----------------------------------------------------------------------------- kernels

@cuda.jit
def _binary_kernel(op, a, a_strides, a_full, a_scalar, a_is_scalar, b, b_strides, b_full, b_scalar,
                   b_is_scalar, shape, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        if a_is_scalar:
            x = a_scalar
        else:
            x = a[i] if a_full else a[_offset(i, shape, a_strides)]
        if b_is_scalar:
            y = b_scalar
        else:
            y = b[i] if b_full else b[_offset(i, shape, b_strides)]
        out[i] = _binary_op(op, x, y)


@cuda.jit
def _compare_kernel(op, a, a_strides, a_full, a_scalar, a_is_scalar, b, b_strides, b_full, b_scalar,
                    b_is_scalar, shape, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        if a_is_scalar:
            x = a_scalar
        else:
            x = a[i] if a_full else a[_offset(i, shape, a_strides)]
        if b_is_scalar:
            y = b_scalar
        else:
            y = b[i] if b_full else b[_offset(i, shape, b_strides)]
        out[i] = _compare_op(op, x, y)


@cuda.jit
def _where_kernel(cond, c_strides, a, a_strides, a_scalar, a_is_scalar, b, b_strides, b_scalar, b_is_scalar,
                  shape, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        if cond[_offset(i, shape, c_strides)]:
            out[i] = a_scalar if a_is_scalar else a[_offset(i, shape, a_strides)]
        else:
            out[i] = b_scalar if b_is_scalar else b[_offset(i, shape, b_strides)]


@cuda.jit
def _unary_kernel(op, x, out):
    t = x.dtype.type
    one, neg_inf, nan = t(1), t(-math.inf), t(math.nan)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = _unary_op(op, x[i], one, neg_inf, nan)


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


# ----------------------------------------------------------------------------- host helpers

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


def _launch_1d(kernel: Any, n: int, *args: Any) -> None:
    if n:
        blocks, threads = _launch.grid_1d(n)
        kernel[blocks, threads](*args)


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


def _binary(op: int, a: Any, b: Any, out: Any) -> Any:
    dtype, shape, (aa, bb) = _operands(a, b)
    out = _new_or_out(out, shape, dtype)
    _launch_1d(_binary_kernel, out.size, op, *aa, *bb, _padded(shape), _launch.flat(out))
    return out


def _compare(op: int, a: Any, b: Any) -> Any:
    _, shape, (aa, bb) = _operands(a, b)
    out = _launch.empty(shape, np.bool_)
    _launch_1d(_compare_kernel, out.size, op, *aa, *bb, _padded(shape), _launch.flat(out))
    return out


def _unary(op: int, x: Any, out: Any) -> Any:
    _check_operand("x", x)
    out = _new_or_out(out, tuple(x.shape), x.dtype)
    _launch_1d(_unary_kernel, x.size, op, _launch.flat(x), _launch.flat(out))
    return out


# ----------------------------------------------------------------------------- public: binary

def add(a: Any, b: Any, out: Any = None) -> Any:
    """``a + b`` with broadcasting; arrays float32/float64 of one dtype, or one Python scalar."""
    return _binary(_ADD, a, b, out)


def subtract(a: Any, b: Any, out: Any = None) -> Any:
    """``a - b`` with broadcasting."""
    return _binary(_SUB, a, b, out)


def multiply(a: Any, b: Any, out: Any = None) -> Any:
    """``a * b`` with broadcasting."""
    return _binary(_MUL, a, b, out)


def divide(a: Any, b: Any, out: Any = None) -> Any:
    """``a / b`` with broadcasting (IEEE: ``x / 0`` is ``±inf`` or NaN, no error)."""
    return _binary(_DIV, a, b, out)


def power(a: Any, b: Any, out: Any = None) -> Any:
    """``a ** b`` with broadcasting (a negative base with a non-integer exponent gives NaN)."""
    return _binary(_POW, a, b, out)


def maximum(a: Any, b: Any, out: Any = None) -> Any:
    """Elementwise maximum with broadcasting; NaN propagates (as ``np.maximum``)."""
    return _binary(_MAX, a, b, out)


def minimum(a: Any, b: Any, out: Any = None) -> Any:
    """Elementwise minimum with broadcasting; NaN propagates (as ``np.minimum``)."""
    return _binary(_MIN, a, b, out)


def equal(a: Any, b: Any) -> Any:
    """``a == b`` with broadcasting; a bool device array."""
    return _compare(_EQ, a, b)


def not_equal(a: Any, b: Any) -> Any:
    """``a != b`` with broadcasting; a bool device array."""
    return _compare(_NE, a, b)


def less(a: Any, b: Any) -> Any:
    """``a < b`` with broadcasting; a bool device array."""
    return _compare(_LT, a, b)


def less_equal(a: Any, b: Any) -> Any:
    """``a <= b`` with broadcasting; a bool device array."""
    return _compare(_LE, a, b)


def greater(a: Any, b: Any) -> Any:
    """``a > b`` with broadcasting; a bool device array."""
    return _compare(_GT, a, b)


def greater_equal(a: Any, b: Any) -> Any:
    """``a >= b`` with broadcasting; a bool device array."""
    return _compare(_GE, a, b)


# ----------------------------------------------------------------------------- public: unary

def negative(x: Any, out: Any = None) -> Any:
    """``-x``; float32/float64 device array, same shape and dtype."""
    return _unary(_NEG, x, out)


def exp(x: Any, out: Any = None) -> Any:
    """``e ** x``."""
    return _unary(_EXP, x, out)


def log(x: Any, out: Any = None) -> Any:
    """Natural logarithm (``-inf`` at 0, NaN below, as NumPy without the warning)."""
    return _unary(_LOG, x, out)


def sqrt(x: Any, out: Any = None) -> Any:
    """Square root (NaN below 0)."""
    return _unary(_SQRT, x, out)


def absolute(x: Any, out: Any = None) -> Any:
    """``|x|``."""
    return _unary(_ABS, x, out)


abs = absolute  # noqa: A001 - the NumPy name, for an array namespace


def square(x: Any, out: Any = None) -> Any:
    """``x * x``."""
    return _unary(_SQUARE, x, out)


def sign(x: Any, out: Any = None) -> Any:
    """-1, 0 or 1 (NaN stays NaN)."""
    return _unary(_SIGN, x, out)


def reciprocal(x: Any, out: Any = None) -> Any:
    """``1 / x``."""
    return _unary(_RECIP, x, out)


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
    _launch_1d(_where_kernel, out.size, _launch.flat(cond), _broadcast_strides(cond.shape, shape),
               aa[0], aa[1], aa[3], aa[4], bb[0], bb[1], bb[3], bb[4], _padded(shape), _launch.flat(out))
    return out


def fill(x: Any, value: float) -> Any:
    """Set every element of device array ``x`` to ``value`` in place; returns ``x``."""
    _check_operand("x", x, dtypes=_ANY_DTYPES)
    _launch_1d(_fill_kernel, x.size, _launch.flat(x), np.dtype(x.dtype).type(value))
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
    _launch_1d(_gather_kernel, out.size, _launch.flat(x), strides, _padded(shape), _launch.flat(out))
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
    _launch_1d(_dropout_mask_kernel, out.size, int(seed), int(math.ceil(p * 2.0**32)),
               np.dtype(dtype).type(1.0 / (1.0 - p)), _launch.flat(out))
    return out
