"""Structural tensor ops: ``cat``/``stack``/``split``, ``where``, ``clamp``, ``squeeze``/``unsqueeze``,
``var``/``std``, ``pad``, batched ``matmul``, and the PyTorch spellings ``dim=``/``keepdim=``.

Every op reaches its arrays through the backend (``ctx.backend``), so it runs
unchanged on CPU (NumPy) and CUDA (device arrays, no host round trip). Ops
that are compositions of existing differentiable ops (``stack``, ``split``,
``var``, reflect ``pad``) are written as such; the rest are Functions with
their backward beside the forward.

The Tensor methods at the bottom (``clamp``, ``unsqueeze``, ``size()`` ...) are
attached to :class:`Tensor` when this module is imported (``tensor.py`` is
long; the methods live next to their ops).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from jitgrad.autograd import ops_math, ops_nn  # noqa: F401  (their sum, max, softmax... are wrapped below)
from jitgrad.autograd.function import Context, Function
from jitgrad.autograd.ops_matmul import batched_matmul
from jitgrad.autograd.tensor import Tensor

__all__ = ["cat", "concatenate", "stack", "split", "where", "clamp", "clip", "squeeze", "unsqueeze", "var", "std",
           "pad", "batched_matmul", "axis_alias"]


def axis_alias(fn: str, axis: Any, dim: Any, keepdims: Any = None, keepdim: Any = None) -> tuple[Any, Any]:
    """Merge PyTorch's ``dim``/``keepdim`` into NumPy's ``axis``/``keepdims`` (giving both is an error)."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{fn}: got both axis={axis!r} and dim={dim!r}; pass one")
        axis = dim
    if keepdim is not None:
        if keepdims not in (None, False):
            raise TypeError(f"{fn}: got both keepdims and keepdim; pass one")
        keepdims = keepdim
    return axis, bool(keepdims) if keepdims is not None else False


def _tensor(x: Any, fn: str, name: str = "x") -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, np.generic, int, float)):
        return Tensor(np.asarray(x))
    raise TypeError(f"{fn}: {name} must be a Tensor or an array, got {type(x).__name__}")


def _axis(fn: str, axis: Any, ndim: int, name: str = "axis") -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{fn}: {name}={axis} is out of range for {ndim}-D tensors")
    return int(axis) % ndim


def _slice_along(axis: int, start: int, stop: int) -> tuple[slice, ...]:
    return (slice(None),) * axis + (slice(start, stop),)


# ----------------------------------------------------------------------------- cat / stack / split

class Cat(Function):
    """Concatenation along ``axis``; the gradient of each input is its slice of ``g``."""

    @staticmethod
    def forward(ctx: Context, *arrays: Any, axis: int = 0) -> Any:
        xp = ctx.backend
        ctx.axis = axis
        ctx.bounds = np.cumsum([0] + [a.shape[axis] for a in arrays]).tolist()
        if isinstance(arrays[0], np.ndarray):
            return np.concatenate(arrays, axis=axis)
        # On the device: every part scattered into a zero array of the full shape, the parts added.
        shape = list(arrays[0].shape)
        shape[axis] = ctx.bounds[-1]
        out = None
        for a, lo, hi in zip(arrays, ctx.bounds, ctx.bounds[1:]):
            part = xp.getitem_backward(a, _slice_along(axis, lo, hi), tuple(shape))
            out = part if out is None else xp.add(out, part)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xp = ctx.backend
        b = ctx.bounds
        return tuple(xp.getitem(g, _slice_along(ctx.axis, lo, hi)) if need else None
                     for need, lo, hi in zip(ctx.needs_input_grad, b, b[1:]))


def cat(tensors: Sequence[Any], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis (``dim=`` is PyTorch's spelling); alias ``concatenate``.

    All tensors must have one dtype and device and the same sizes except along ``axis``.
    """
    if dim is not None:
        axis = dim
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"cat: tensors must be a non-empty list or tuple of Tensors, got {type(tensors).__name__}")
    ts = [_tensor(t, "cat", f"tensors[{i}]") for i, t in enumerate(tensors)]
    first = ts[0]
    if first.ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    ax = _axis("cat", axis, first.ndim)
    for i, t in enumerate(ts[1:], 1):
        if t.ndim != first.ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, first.shape)) if k != ax):
            raise ValueError(f"cat: tensors[{i}] has shape {t.shape}, which does not match tensors[0]'s "
                             f"{first.shape} outside axis {ax}")
        if t.dtype != first.dtype:
            raise TypeError(f"cat: tensors[{i}] has dtype {t.dtype} but tensors[0] has dtype {first.dtype}")
    if len(ts) == 1:
        return Cat.apply(first, axis=ax)
    return Cat.apply(*ts, axis=ax)


concatenate = cat


def stack(tensors: Sequence[Any], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Join tensors of one shape along a new axis."""
    if dim is not None:
        axis = dim
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"stack: tensors must be a non-empty list or tuple of Tensors, got {type(tensors).__name__}")
    ts = [_tensor(t, "stack", f"tensors[{i}]") for i, t in enumerate(tensors)]
    for i, t in enumerate(ts[1:], 1):
        if t.shape != ts[0].shape:
            raise ValueError(f"stack: tensors[{i}] has shape {t.shape} but tensors[0] has shape {ts[0].shape}")
    ax = _axis("stack", axis, ts[0].ndim + 1)
    return cat([unsqueeze(t, ax) for t in ts], axis=ax)


def split(x: Tensor, split_size_or_sections: int | Sequence[int], axis: int = 0, *,
          dim: int | None = None) -> tuple[Tensor, ...]:
    """Split into pieces along ``axis``: an int is the size of each piece (the last may be
    smaller), a list gives every piece's size (they must add up to the axis length), as PyTorch."""
    if dim is not None:
        axis = dim
    ax = _axis("split", axis, x.ndim)
    length = x.shape[ax]
    s = split_size_or_sections
    if isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)):
        if s < 1:
            raise ValueError(f"split: split_size must be >= 1, got {s}")
        sizes = [min(s, length - i) for i in range(0, length, int(s))] or [0]
    elif isinstance(s, (list, tuple)) and all(isinstance(v, (int, np.integer)) and v >= 0 for v in s):
        sizes = [int(v) for v in s]
        if sum(sizes) != length:
            raise ValueError(f"split: sections {list(s)} add up to {sum(sizes)}, not to the axis length {length}")
    else:
        raise TypeError(f"split: split_size_or_sections must be an int or a list of ints, got {s!r}")
    bounds = np.cumsum([0] + sizes).tolist()
    return tuple(x[_slice_along(ax, lo, hi)] for lo, hi in zip(bounds, bounds[1:]))


# ----------------------------------------------------------------------------- where / clamp

class Where(Function):
    """``a`` where ``cond`` else ``b`` (broadcasting); the gradient goes to the chosen side."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any, *, cond: Any) -> Any:
        xp = ctx.backend
        ctx.save_for_backward(cond)
        return xp.where(cond, a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        (cond,) = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (xp.where(cond, g, 0.0) if need_a else None), (xp.where(cond, 0.0, g) if need_b else None)


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """Elementwise ``x if condition else y`` with broadcasting; gradients flow to ``x`` and ``y``."""
    cond = condition.data if isinstance(condition, Tensor) else condition
    if not (hasattr(cond, "dtype") and np.dtype(cond.dtype) == np.bool_):
        raise TypeError(f"where: condition must be a boolean Tensor or array, got "
                        f"{getattr(cond, 'dtype', type(cond).__name__)}")
    ref = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else None
    if ref is None:
        raise TypeError("where: x or y must be a Tensor")
    dtype = ref.dtype
    xt = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=dtype)).to(ref.device)
    yt = y if isinstance(y, Tensor) else Tensor(np.asarray(y, dtype=dtype)).to(ref.device)
    if isinstance(cond, np.ndarray) and ref.device != "cpu":
        cond = Tensor(cond).to(ref.device).data
    return Where.apply(xt, yt, cond=cond)


class Clamp(Function):
    """``min(max(x, lo), hi)``; NaN stays NaN; the gradient passes where ``lo <= x <= hi`` (PyTorch)."""

    @staticmethod
    def forward(ctx: Context, x: Any, *, lo: float | None, hi: float | None) -> Any:
        xp = ctx.backend
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        y = x
        if lo is not None:
            y = xp.where(xp.less(y, lo), lo, y)
        if hi is not None:
            y = xp.where(xp.greater(y, hi), hi, y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend
        (x,) = ctx.saved_tensors
        if ctx.lo is not None:
            g = xp.where(xp.less(x, ctx.lo), 0.0, g)
        if ctx.hi is not None:
            g = xp.where(xp.greater(x, ctx.hi), 0.0, g)
        return g


def clamp(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
    """Limit ``x`` to ``[min, max]`` (either may be None); alias ``clip``."""
    x = _tensor(x, "clamp")
    for name, v in (("min", min), ("max", max)):
        if v is not None and (isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number))):
            raise TypeError(f"clamp: {name} must be a real number or None, got {v!r}")
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(x, lo=None if min is None else float(min), hi=None if max is None else float(max))


clip = clamp


# ----------------------------------------------------------------------------- squeeze / unsqueeze

def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert a size-1 axis at ``axis`` (``-1`` appends)."""
    ax = _axis("unsqueeze", axis, x.ndim + 1, "dim")
    return x.reshape(x.shape[:ax] + (1,) + x.shape[ax:])


def squeeze(x: Tensor, axis: int | Sequence[int] | None = None) -> Tensor:
    """Remove size-1 axes (all of them, or those in ``axis``; a named axis of size > 1 stays, as PyTorch)."""
    if axis is None:
        drop = {i for i, s in enumerate(x.shape) if s == 1}
    else:
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        drop = {i for i in (_axis("squeeze", a, max(x.ndim, 1), "dim") for a in axes) if x.ndim and x.shape[i] == 1}
    return x.reshape(tuple(s for i, s in enumerate(x.shape) if i not in drop))


# ----------------------------------------------------------------------------- var / std

def var(x: Tensor, axis: Any = None, *, dim: Any = None, unbiased: bool | None = None, correction: int | None = None,
        keepdims: bool | None = None, keepdim: bool | None = None) -> Tensor:
    """Variance over ``axis`` (None: all). Unbiased by default as PyTorch (``correction=1``);
    ``unbiased=False`` or ``correction=0`` gives the population variance."""
    axis, keep = axis_alias("var", axis, dim, keepdims, keepdim)
    if unbiased is not None and correction is not None:
        raise TypeError("var: pass unbiased or correction, not both")
    c = 1 if unbiased is None and correction is None else int(bool(unbiased)) if correction is None else correction
    axes = tuple(range(x.ndim)) if axis is None else axis if isinstance(axis, (tuple, list)) else (axis,)
    count = math.prod(x.shape[_axis("var", a, x.ndim)] for a in axes)
    centred = x - x.mean(axis=tuple(axes), keepdims=True)
    return (centred * centred).sum(axis=tuple(axes), keepdims=keep) / max(count - c, 0)


def std(x: Tensor, axis: Any = None, **kwargs: Any) -> Tensor:
    """Standard deviation: ``sqrt(var(...))`` with :func:`var`'s arguments."""
    return var(x, axis, **kwargs).sqrt()


# ----------------------------------------------------------------------------- pad

class ConstantPad(Function):
    """Pad with a constant: ``x`` placed inside an array of ``value``; the gradient is the interior of ``g``."""

    @staticmethod
    def forward(ctx: Context, x: Any, *, index: tuple[slice, ...], shape: tuple[int, ...], value: float) -> Any:
        xp = ctx.backend
        ctx.index = index
        padded = xp.getitem_backward(x, index, shape)  # x inside zeros
        if value == 0:
            return padded
        # Select, never (x - value) + value: that is NaN for an infinite value and rounds x away for a huge one.
        inside = xp.greater(xp.getitem_backward(xp.ones(x.shape, x.dtype), index, shape), 0)
        return xp.where(inside, padded, value)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return ctx.backend.getitem(g, ctx.index)


def _reflect_index(size: int, before: int, after: int) -> np.ndarray:
    i = np.arange(-before, size + after)
    period = 2 * (size - 1)
    i = np.abs(i) % period if period else np.zeros_like(i)
    return np.where(i >= size, period - i, i)


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last ``len(pad) // 2`` axes, PyTorch's order: ``(left, right, top, bottom, ...)``
    starting from the last axis. ``mode``: ``"constant"`` (``value``) or ``"reflect"`` (mirror
    without repeating the edge; each pad must be smaller than its axis)."""
    x = _tensor(x, "pad")
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or not all(
            isinstance(p, (int, np.integer)) and not isinstance(p, bool) and p >= 0 for p in pad):
        raise ValueError(f"pad: pad must be an even-length sequence of ints >= 0, got {pad!r}")
    if len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: {len(pad)} pad sizes need at least {len(pad) // 2} axes, got shape {x.shape}")
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    if mode == "constant":
        shape = tuple(s + a + b for s, (a, b) in zip(x.shape, widths))
        index = tuple(slice(a, a + s) for s, (a, _) in zip(x.shape, widths))
        return ConstantPad.apply(x, index=index, shape=shape, value=float(value))
    if mode == "reflect":
        y = x
        for ax, (a, b) in enumerate(widths):
            if a or b:
                if a >= x.shape[ax] or b >= x.shape[ax]:
                    raise ValueError(f"pad: reflect padding ({a}, {b}) must be smaller than axis {ax} of size "
                                     f"{x.shape[ax]}")
                y = y[(slice(None),) * ax + (_reflect_index(x.shape[ax], a, b),)]
        return y
    raise ValueError(f"pad: mode must be 'constant' or 'reflect', got {mode!r}")


# ----------------------------------------------------------------------------- batched matmul

# ----------------------------------------------------------------------------- Tensor methods

class _Size(int):
    """``Tensor.size``: the element count (an int, as NumPy's ``size``) that can also be called
    as PyTorch's ``size()`` (the shape) or ``size(dim)`` (one axis)."""

    def __new__(cls, numel: int, shape: tuple[int, ...]) -> "_Size":
        obj = super().__new__(cls, numel)
        obj._shape = shape
        return obj

    def __call__(self, dim: int | None = None) -> Any:
        if dim is None:
            return self._shape
        return self._shape[_axis("size", dim, len(self._shape), "dim")]


def _install() -> None:
    def size(self: Tensor) -> _Size:
        """Number of elements; ``x.size()`` is the shape and ``x.size(d)`` one axis, as PyTorch."""
        return _Size(int(math.prod(self.shape)), self.shape)

    def dim(self: Tensor) -> int:
        """Number of axes (PyTorch's name for ``ndim``)."""
        return self.ndim

    def _with_dim(name: str, method: Any, has_keep: bool) -> Any:
        def wrapped(self: Tensor, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None,
                    keepdim: bool | None = None) -> Tensor:
            ax, keep = axis_alias(name, axis, dim, keepdims, keepdim)
            return method(self, ax, keep) if has_keep else method(self, ax)
        wrapped.__doc__ = method.__doc__ + " (``dim=``/``keepdim=`` accepted.)"
        wrapped.__name__ = name
        return wrapped

    def _softmax_with_dim(name: str, method: Any) -> Any:
        def wrapped(self: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
            ax, _ = axis_alias(name, axis, dim)
            return method(self, -1 if ax is None else ax)
        wrapped.__doc__ = method.__doc__
        wrapped.__name__ = name
        return wrapped

    for name in ("sum", "mean", "max", "min"):
        setattr(Tensor, name, _with_dim(name, getattr(Tensor, name), True))
    Tensor.argmax = _with_dim("argmax", Tensor.argmax, False)
    for name in ("softmax", "log_softmax"):
        setattr(Tensor, name, _softmax_with_dim(name, getattr(Tensor, name)))
    Tensor.size = property(size)  # type: ignore[assignment]
    Tensor.dim = dim  # type: ignore[attr-defined]
    Tensor.clamp = clamp  # type: ignore[attr-defined]
    Tensor.clip = clamp  # type: ignore[attr-defined]
    Tensor.squeeze = squeeze  # type: ignore[attr-defined]
    Tensor.unsqueeze = unsqueeze  # type: ignore[attr-defined]
    Tensor.split = split  # type: ignore[attr-defined]
    Tensor.var = var  # type: ignore[attr-defined]
    Tensor.std = std  # type: ignore[attr-defined]


_install()
