"""Device arithmetic with broadcasting: binary operations, comparisons and unary math (``elementwise``'s).

One kernel per kind (binary, comparison, unary) serves every operation through
a runtime operation code, so each compiles once per dtype rather than once per
operation; the code is uniform across a launch, so the branch costs the GPU next
to nothing. Broadcasting and operand handling live in ``_broadcast``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda._broadcast import _check_operand, _new_or_out, _offset, _operands, _padded

# Operation codes. A runtime code keeps one compiled kernel per dtype rather than one per
# operation; the branch is uniform across a launch, so it costs the GPU next to nothing.
_ADD, _SUB, _MUL, _DIV, _POW, _MAX, _MIN = range(7)
_EQ, _NE, _LT, _LE, _GT, _GE = range(6)
_NEG, _EXP, _LOG, _SQRT, _ABS, _SQUARE, _SIGN, _RECIP = range(8)


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


# ----------------------------------------------------------------------------- kernels

@cuda.jit(device=True)
def _operand(i, v, strides, full, scalar, is_scalar, shape):
    """Element ``i`` of the broadcast output read from one operand (a scalar, a full or a strided array)."""
    if is_scalar:
        return scalar
    return v[i] if full else v[_offset(i, shape, strides)]


@cuda.jit
def _binary_kernel(op, a, a_strides, a_full, a_scalar, a_is_scalar, b, b_strides, b_full, b_scalar,
                   b_is_scalar, shape, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        x = _operand(i, a, a_strides, a_full, a_scalar, a_is_scalar, shape)
        y = _operand(i, b, b_strides, b_full, b_scalar, b_is_scalar, shape)
        out[i] = _binary_op(op, x, y)


@cuda.jit
def _compare_kernel(op, a, a_strides, a_full, a_scalar, a_is_scalar, b, b_strides, b_full, b_scalar,
                    b_is_scalar, shape, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        x = _operand(i, a, a_strides, a_full, a_scalar, a_is_scalar, shape)
        y = _operand(i, b, b_strides, b_full, b_scalar, b_is_scalar, shape)
        out[i] = _compare_op(op, x, y)


@cuda.jit
def _unary_kernel(op, x, out):
    t = x.dtype.type
    one, neg_inf, nan = t(1), t(-math.inf), t(math.nan)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = _unary_op(op, x[i], one, neg_inf, nan)



def _binary(op: int, a: Any, b: Any, out: Any) -> Any:
    dtype, shape, (aa, bb) = _operands(a, b)
    out = _new_or_out(out, shape, dtype)
    _launch.launch_1d(_binary_kernel, out.size, op, *aa, *bb, _padded(shape), _launch.flat(out))
    return out


def _compare(op: int, a: Any, b: Any) -> Any:
    _, shape, (aa, bb) = _operands(a, b)
    out = _launch.empty(shape, np.bool_)
    _launch.launch_1d(_compare_kernel, out.size, op, *aa, *bb, _padded(shape), _launch.flat(out))
    return out


def _unary(op: int, x: Any, out: Any) -> Any:
    _check_operand("x", x)
    out = _new_or_out(out, tuple(x.shape), x.dtype)
    _launch.launch_1d(_unary_kernel, x.size, op, _launch.flat(x), _launch.flat(out))
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
