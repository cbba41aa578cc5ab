"""Arithmetic, elementwise math and reductions: one ``Function`` each, forward and backward side by side.

Arrays are reached only through ``ctx.backend`` (``xp`` below), so the same
ops run on any device with a backend. Gradients may keep the output's
broadcast shape: the engine sums them back. The Tensor operators and
methods of these ops (``+``, ``exp``, ``sum``...) are attached at the end.
"""

from __future__ import annotations

from typing import Any

from jitgrad.autograd.function import Context, Function
from jitgrad.autograd.tensor import Tensor, attach_methods
from jitgrad.kernels._validate import normalize_axes

__all__ = ["Add", "Sub", "Mul", "Div", "Pow", "Neg", "Exp", "Log", "Sqrt", "Abs", "Sum", "Mean", "Max"]

ArrayLike = Any
Axis = int | tuple[int, ...] | None


def _reduced_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative ints (None: every axis)."""
    return tuple(sorted(normalize_axes(axis, ndim)))


def _expand_reduced(xp: Any, g: Any, ctx: Context) -> Any:
    """Give a reduction's output gradient back its reduced axes (size 1), ready to broadcast."""
    # A 0-d gradient (full reduction) broadcasts as it is.
    if ctx.keepdims or g.ndim == 0 or g.ndim == len(ctx.shape):
        return g
    return xp.expand_dims(g, ctx.axes)


# --- arithmetic ----------------------------------------------------------------


class Add(Function):
    """``a + b``."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        return ctx.backend.add(a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        return g, g


class Sub(Function):
    """``a - b``."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        return ctx.backend.subtract(a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        return g, (ctx.backend.negative(g) if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """``a * b``."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return ctx.backend.multiply(a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (xp.multiply(g, b) if need_a else None), (xp.multiply(g, a) if need_b else None)


class Div(Function):
    """``a / b``."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return ctx.backend.divide(a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        a, b = ctx.saved_tensors
        g_over_b = xp.divide(g, b)
        # d(a/b)/db = -a / b**2, written as -(g / b) * (a / b) to avoid overflow in b**2.
        grad_b = xp.negative(xp.multiply(g_over_b, xp.divide(a, b))) if ctx.needs_input_grad[1] else None
        return g_over_b, grad_b


class Pow(Function):
    """``a ** b`` (either may be a tensor or a constant)."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        out = ctx.backend.power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        a, b, out = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = xp.multiply(g, xp.multiply(b, xp.power(a, xp.subtract(b, 1)))) if need_a else None
        grad_b = xp.multiply(g, xp.multiply(out, xp.log(a))) if need_b else None
        return grad_a, grad_b


class Neg(Function):
    """``-a``."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return ctx.backend.negative(a)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return ctx.backend.negative(g)


class Exp(Function):
    """``exp(a)``."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = ctx.backend.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        return ctx.backend.multiply(g, out)


class Log(Function):
    """Natural ``log(a)``."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return ctx.backend.log(a)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        (a,) = ctx.saved_tensors
        return ctx.backend.divide(g, a)


class Sqrt(Function):
    """``sqrt(a)``."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        out = ctx.backend.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend
        (out,) = ctx.saved_tensors
        return xp.divide(g, xp.multiply(out, 2))


class Abs(Function):
    """``|a|``; gradient ``sign(a)`` (0 at 0, as PyTorch)."""

    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return ctx.backend.abs(a)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend
        (a,) = ctx.saved_tensors
        return xp.multiply(g, xp.sign(a))


# --- reductions ------------------------------------------------------------------


class Sum(Function):
    """Sum over ``axis`` (None: all)."""

    @staticmethod
    def forward(ctx: Context, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        out = ctx.backend.sum(a, axis=axis, keepdims=keepdims)
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _reduced_axes(axis, a.ndim), keepdims
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend
        return xp.broadcast_to(_expand_reduced(xp, g, ctx), ctx.shape)


class Mean(Function):
    """Mean over ``axis`` (None: all)."""

    @staticmethod
    def forward(ctx: Context, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        xp = ctx.backend
        total = xp.sum(a, axis=axis, keepdims=keepdims)
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _reduced_axes(axis, a.ndim), keepdims
        ctx.count = 1
        for ax in ctx.axes:
            ctx.count *= a.shape[ax]
        return xp.divide(total, ctx.count)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend
        return xp.broadcast_to(xp.divide(_expand_reduced(xp, g, ctx), ctx.count), ctx.shape)


class Max(Function):
    """Maximum over ``axis``; the whole gradient goes to the first maximum of each slice.

    That is PyTorch's ``max(dim)`` (the element its index output names), not
    ``amax``, which splits the gradient between ties.
    """

    @staticmethod
    def forward(ctx: Context, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        out = ctx.backend.max(a, axis=axis, keepdims=keepdims)
        ctx.save_for_backward(a)
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _reduced_axes(axis, a.ndim), keepdims
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend
        (a,) = ctx.saved_tensors
        mask = xp.first_max_mask(a, ctx.axes)
        return xp.multiply(_expand_reduced(xp, g, ctx), mask)


# ----------------------------------------------------------------------------- Tensor methods


@attach_methods
class TensorMathMethods:
    """Operators and math methods of ``Tensor`` (NumPy broadcasting; scalars and arrays on either side)."""

    # --- arithmetic (NumPy broadcasting; scalars and arrays on either side) --
    def __add__(self, other: ArrayLike) -> "Tensor":
        return Add.apply(self, other)

    def __radd__(self, other: ArrayLike) -> "Tensor":
        return Add.apply(other, self)

    def __sub__(self, other: ArrayLike) -> "Tensor":
        return Sub.apply(self, other)

    def __rsub__(self, other: ArrayLike) -> "Tensor":
        return Sub.apply(other, self)

    def __mul__(self, other: ArrayLike) -> "Tensor":
        return Mul.apply(self, other)

    def __rmul__(self, other: ArrayLike) -> "Tensor":
        return Mul.apply(other, self)

    def __truediv__(self, other: ArrayLike) -> "Tensor":
        return Div.apply(self, other)

    def __rtruediv__(self, other: ArrayLike) -> "Tensor":
        return Div.apply(other, self)

    def __pow__(self, other: ArrayLike) -> "Tensor":
        return Pow.apply(self, other)

    def __rpow__(self, other: ArrayLike) -> "Tensor":
        return Pow.apply(other, self)

    def __neg__(self) -> "Tensor":
        return Neg.apply(self)


    # --- elementwise math ---------------------------------------------------
    def exp(self) -> "Tensor":
        """Elementwise ``e**x``."""
        return Exp.apply(self)

    def log(self) -> "Tensor":
        """Elementwise natural logarithm."""
        return Log.apply(self)

    def sqrt(self) -> "Tensor":
        """Elementwise square root."""
        return Sqrt.apply(self)

    def abs(self) -> "Tensor":
        """Elementwise ``|x|`` (gradient 0 at 0, as ``sign``)."""
        return Abs.apply(self)

    __abs__ = abs

    # --- reductions ---------------------------------------------------------
    def sum(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """Sum over ``axis`` (None: every axis)."""
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """Mean over ``axis`` (None: every axis)."""
        return Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """Maximum over ``axis``; the gradient goes to the first maximum of each slice."""
        return Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """Minimum over ``axis``; the gradient goes to the first minimum of each slice."""
        return -Max.apply(-self, axis=axis, keepdims=keepdims)
