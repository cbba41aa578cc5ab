"""Argument checks and shape arithmetic shared by every kernel backend.

The reference, CPU and CUDA wrappers validate the same way, so the checks live
here once. They work on NumPy arrays and on Numba device arrays alike (both
have ``shape``, ``dtype`` and ``ndim``). Every error names the argument and
the value it got, and one kind of mistake is always one exception type:
``TypeError`` for a value of the wrong *type* (a float where an int is due,
a bool, a string, an integer array where floats are due, mismatched dtypes),
``ValueError`` for a value of the right type that is wrong (out of range, a
pair of three, a shape that does not fit, a non-contiguous array).

``Conv2dDims`` and ``Pool2dDims`` play the role of NNlib's ``DenseConvDims`` /
``PoolDims``: the forward kernel and both backward kernels of a family share
one object holding every size, so the three can never disagree about them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from jitgrad.config import FLOAT_DTYPES

IntPair = tuple[int, int]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_c_contiguous(a: Any) -> bool:
    """True when ``a`` (NumPy or Numba device array) is C-contiguous."""
    method = getattr(a, "is_c_contiguous", None)
    if callable(method):
        return bool(method())
    return bool(a.flags.c_contiguous)


def check_array(
    name: str,
    a: Any,
    *,
    ndim: int | None = None,
    dtypes: tuple[np.dtype, ...] | None = FLOAT_DTYPES,
    contiguous: bool = True,
) -> None:
    """Check that ``a`` is an array of the right rank, dtype and layout.

    Raises ``TypeError`` for a non-array or a wrong dtype, ``ValueError`` for
    a wrong rank or a non-contiguous array.
    """
    if not (hasattr(a, "shape") and hasattr(a, "dtype") and hasattr(a, "ndim")):
        raise TypeError(f"{name} must be an array, got {type(a).__name__}")
    if dtypes is not None and np.dtype(a.dtype) not in dtypes:
        allowed = " or ".join(str(np.dtype(d)) for d in dtypes)
        raise TypeError(f"{name} must have dtype {allowed}, got {np.dtype(a.dtype)}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {a.ndim}-D array of shape {tuple(a.shape)}")
    if contiguous and not is_c_contiguous(a):
        raise ValueError(
            f"{name} must be C-contiguous, got a strided view of shape {tuple(a.shape)}; "
            "pass np.ascontiguousarray(...)"
        )


def check_same_dtype(**arrays: Any) -> np.dtype:
    """Check that every named array has one dtype; return it."""
    items = [(k, np.dtype(v.dtype)) for k, v in arrays.items() if v is not None]
    first_name, first = items[0]
    for name, dt in items[1:]:
        if dt != first:
            raise TypeError(f"{name} has dtype {dt} but {first_name} has dtype {first}; they must match")
    return first


def check_shape(name: str, a: Any, expected: tuple[int, ...]) -> None:
    """Check that ``a.shape == expected``."""
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(a.shape)}")


def check_writeable(name: str, a: Any) -> None:
    """Check that a kernel may write into ``a`` (an ``out=`` buffer, a parameter, optimizer state).

    A read-only NumPy array (a ``np.memmap`` opened with ``mode="r"``, a view of
    ``bytes``, ``flags.writeable = False``) is refused here, before a Numba kernel
    would write into it (a read-only memory map faults: SIGSEGV). Device arrays
    have no such flag and are always writeable.
    """
    flags = getattr(a, "flags", None)
    if isinstance(flags, dict):
        writeable = flags.get("WRITEABLE", True)
    else:
        writeable = getattr(flags, "writeable", True)
    if not writeable:
        raise ValueError(
            f"{name} is read-only (flags.writeable is False, e.g. a np.memmap opened with mode='r'); "
            "the kernel writes into it: pass a writeable array"
        )


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, name: str = "out") -> None:
    """Check a caller-provided output buffer: shape, dtype, contiguity, writeability."""
    check_array(name, out, ndim=len(shape), dtypes=(np.dtype(dtype),))
    check_shape(name, out, shape)
    check_writeable(name, out)


def _int_items(value: Any, message: str) -> tuple[Any, ...]:
    """``value``'s items as a tuple; a ``TypeError(message)`` when it is not a sequence of ints."""
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(message) from None
    if not all(_is_int(v) for v in items):
        raise TypeError(message)
    return items


def check_shape_tuple(name: str, shape: Any, ndim: int, empty_ok: tuple[int, ...] = (0, 1)) -> tuple[int, ...]:
    """Validate a shape argument (e.g. ``input_shape``) and return it as ints.

    The axes in ``empty_ok`` (batch and channels of an NCHW shape) may be 0, as
    they may in the arrays the forward kernels accept; the others must be positive.
    """
    dims = _int_items(shape, f"{name} must be a tuple of {ndim} ints, got {shape!r}")
    if len(dims) != ndim:
        raise ValueError(f"{name} must be a tuple of {ndim} ints, got {shape!r}")
    if any(d < 0 or (d == 0 and axis not in empty_ok) for axis, d in enumerate(dims)):
        raise ValueError(f"{name} must have positive sizes, got {shape!r}")
    return tuple(int(d) for d in dims)


def as_pair(name: str, value: Any, *, minimum: int) -> IntPair:
    """Normalise an int or a pair of ints (``stride=2`` or ``stride=(2, 1)``)."""
    if _is_int(value):
        pair = (int(value), int(value))
    else:
        items = _int_items(value, f"{name} must be an int or a pair of ints, got {value!r}")
        if len(items) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r} ({len(items)} values)")
        pair = (int(items[0]), int(items[1]))
    if pair[0] < minimum or pair[1] < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def check_scalar(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
                 min_inclusive: bool = True) -> float:
    """Validate a finite real hyper-parameter; return it as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):  # math, not np: a tenth of the cost on a Python float
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and (v < minimum or (v == minimum and not min_inclusive)):
        op = ">=" if min_inclusive else ">"
        raise ValueError(f"{name} must be {op} {minimum}, got {value!r}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return v


def normalize_axis(axis: Any, ndim: int, name: str = "axis") -> int:
    """Turn a possibly negative axis into a non-negative one, checking range."""
    if not _is_int(axis):
        raise TypeError(f"{name} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for a {ndim}-D array")
    return int(axis) % ndim


def normalize_axes(axis: Any, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """``axis`` (None, an int, or a tuple or list of ints) as a tuple of non-negative axes.

    ``None`` means every axis. The one home of this rule for the whole package:
    the autograd's reductions, both backends and the CUDA reduction kernels
    call it. ``TypeError`` for a non-int entry, ``ValueError`` for an axis out
    of range or repeated.
    """
    if axis is None:
        return tuple(range(ndim))
    items = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    axes = tuple(normalize_axis(a, ndim, name) for a in items)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{name} contains a repeated axis: {axis!r}")
    return axes


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


#: Largest stride, padding or dilation accepted, and largest element count of an array a kernel
#: allocates: beyond them a size is a typo (``padding=2**40``), and the allocation would fail
#: with an unhelpful message, or an index would overflow a 32-bit CUDA thread index.
MAX_HYPERPARAMETER = 2**31 - 1
MAX_ELEMENTS = 2**40


def check_hyperparameter_size(name: str, pair: IntPair, value: Any) -> None:
    """Refuse a stride, padding or dilation beyond ``MAX_HYPERPARAMETER``."""
    if max(pair) > MAX_HYPERPARAMETER:
        raise ValueError(f"{name} must be at most 2**31 - 1, got {value!r}")


def check_element_count(name: str, shape: tuple[int, ...]) -> None:
    """Refuse an array of more than ``MAX_ELEMENTS`` elements before allocating it."""
    count = 1
    for s in shape:
        count *= int(s)
    if count > MAX_ELEMENTS:
        raise ValueError(f"{name} would have shape {tuple(shape)} ({count:.3g} elements, more than 2**40)")


@dataclass(frozen=True)
class Conv2dDims:
    """Every size of one 2-D convolution (NCHW input, (C_out, C_in, kH, kW) weights)."""

    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    kh: int
    kw: int
    stride: IntPair
    padding: IntPair
    dilation: IntPair
    h_out: int
    w_out: int
    groups: int = 1

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c_in, self.h, self.w)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.c_out, self.c_in // self.groups, self.kh, self.kw)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c_out, self.h_out, self.w_out)

    @classmethod
    def from_shapes(cls, input_shape: tuple[int, ...], weight_shape: tuple[int, ...], *, stride: Any = 1,
                    padding: Any = 0, dilation: Any = 1, input_name: str = "x",
                    weight_name: str = "w", groups: Any = 1) -> "Conv2dDims":
        """Validate hyper-parameters and shapes; compute the output size.

        With ``groups = G`` the weight is ``(C_out, C_in / G, kH, kW)`` and
        both channel counts must be multiples of ``G``.
        """
        s = as_pair("stride", stride, minimum=1)
        p = as_pair("padding", padding, minimum=0)
        d = as_pair("dilation", dilation, minimum=1)
        for name, pair, value in (("stride", s, stride), ("padding", p, padding), ("dilation", d, dilation)):
            check_hyperparameter_size(name, pair, value)
        if not _is_int(groups):
            raise TypeError(f"groups must be an int, got {groups!r}")
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups!r}")
        g = int(groups)
        n, c_in, h, w = input_shape
        c_out, c_in_w, kh, kw = weight_shape
        if kh < 1 or kw < 1:
            # A 0 x k kernel has no taps: its output size and meaning are undefined (PyTorch refuses it).
            raise ValueError(f"{weight_name} must have a kernel of at least 1x1, got shape {tuple(weight_shape)}")
        if c_in % g or c_out % g:
            raise ValueError(
                f"groups={g} must divide both the input channels ({c_in}, {input_name} shape "
                f"{tuple(input_shape)}) and the output channels ({c_out}, {weight_name} shape {tuple(weight_shape)})"
            )
        if c_in != c_in_w * g:
            per_group = "" if g == 1 else f" ({c_in // g} per group with groups={g})"
            raise ValueError(
                f"channel mismatch: {input_name} has {c_in} input channels (shape {tuple(input_shape)}){per_group} "
                f"but {weight_name} expects {c_in_w} (shape {tuple(weight_shape)})"
            )
        h_out = _out_size(h, kh, s[0], p[0], d[0])
        w_out = _out_size(w, kw, s[1], p[1], d[1])
        if h_out < 1 or w_out < 1:
            raise ValueError(
                f"kernel {kh}x{kw} with dilation {d} does not fit input {h}x{w} with padding {p}: "
                f"output would be {h_out}x{w_out}"
            )
        check_element_count("the output", (n, c_out, h_out, w_out))
        check_element_count("the padded input", (n, c_in, h + 2 * p[0], w + 2 * p[1]))
        return cls(n, c_in, h, w, c_out, kh, kw, s, p, d, h_out, w_out, g)


class PlaneShapes:
    """``input_shape`` and ``output_shape`` of a pooling dims object with sizes ``n, c, h, w, h_out, w_out``."""

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)  # type: ignore[attr-defined]

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h_out, self.w_out)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Pool2dDims(PlaneShapes):
    """Every size of one 2-D pooling window sweep over an NCHW input."""

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    stride: IntPair
    padding: IntPair
    h_out: int
    w_out: int

    @classmethod
    def from_shape(cls, input_shape: tuple[int, ...], *, kernel_size: Any, stride: Any = None,
                   padding: Any = 0) -> "Pool2dDims":
        """Validate hyper-parameters (``stride=None`` means ``kernel_size``)."""
        k = as_pair("kernel_size", kernel_size, minimum=1)
        s = k if stride is None else as_pair("stride", stride, minimum=1)
        p = as_pair("padding", padding, minimum=0)
        for name, pair, value in (("kernel_size", k, kernel_size), ("stride", s, stride), ("padding", p, padding)):
            check_hyperparameter_size(name, pair, value)
        if p[0] > k[0] // 2 or p[1] > k[1] // 2:
            raise ValueError(f"padding must be at most half of kernel_size {k}, got padding={padding!r}")
        n, c, h, w = input_shape
        if h == 0 or w == 0:
            # Every window would lie in the padding: no element to take the max or mean of (PyTorch refuses it).
            raise ValueError(f"pooling needs an input plane of at least 1x1, got input of shape {tuple(input_shape)}")
        h_out = _out_size(h, k[0], s[0], p[0], 1)
        w_out = _out_size(w, k[1], s[1], p[1], 1)
        if h_out < 1 or w_out < 1:
            raise ValueError(
                f"kernel_size {k} with padding {p} does not fit input {h}x{w}: output would be {h_out}x{w_out}"
            )
        return cls(n, c, h, w, k[0], k[1], s, p, h_out, w_out)


# ----------------------------------------------------------------------------- indexing

INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def check_index_array(name: str, a: Any) -> None:
    """An integer array of positions (int32 or int64, C-contiguous)."""
    if np.dtype(a.dtype) not in INDEX_DTYPES:
        raise TypeError(f"{name} must be an int32 or int64 array, got dtype {np.dtype(a.dtype)}")
    check_array(name, a, dtypes=INDEX_DTYPES)


def check_view(shape: Sequence[int], strides: Sequence[int], base: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(shape, strides)`` of a strided view as int tuples of one length; ``base`` an int."""
    if isinstance(base, bool) or not isinstance(base, (int, np.integer)):
        raise TypeError(f"base must be an int, got {type(base).__name__} {base!r}")
    shape, strides = tuple(int(s) for s in shape), tuple(int(s) for s in strides)
    if len(shape) != len(strides):
        raise ValueError(f"strides must have one entry per dimension of shape {shape}, got {strides}")
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must not contain negative sizes, got {shape}")
    return shape, strides


def check_view_inside(base: int, strides: tuple[int, ...], shape: tuple[int, ...], size: int) -> None:
    """Check, from its extreme corners and without listing positions, that a view lies inside ``size`` elements."""
    if 0 in shape:
        return
    low = base + sum(min(0, (n - 1) * s) for n, s in zip(shape, strides))
    high = base + sum(max(0, (n - 1) * s) for n, s in zip(shape, strides))
    if low < 0 or high >= size:
        raise ValueError(f"the view (base {base}, strides {strides}, shape {shape}) reaches outside an array "
                         f"of {size} elements (positions {low}..{high})")
