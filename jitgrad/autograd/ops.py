"""Every differentiable op: one ``Function`` each, forward and backward side by side.

Arrays are reached only through ``ctx.backend`` (``xp`` below), so the same
ops run on any device with a backend. Arithmetic, reductions and reshapes
are backend array functions; everything else calls the forward and backward
kernels of ``docs/kernel-api.md`` (``xp.kernels``), never a re-derivation.
Gradients may keep the output's broadcast shape: the engine sums them back.
Kernels want C-contiguous arrays, so their inputs pass ``ascontiguousarray``
(free for the usual, already contiguous, array).
"""

from __future__ import annotations

from typing import Any

from jitgrad.autograd.function import Context, Function
from jitgrad.autograd.tensor import Tensor

__all__ = [
    "Add", "Sub", "Mul", "Div", "Pow", "Neg", "Exp", "Log", "Sqrt", "Abs",
    "MatMul", "matmul", "Linear", "Sum", "Mean", "Max", "Reshape", "Permute", "Getitem", "Cast", "ToDevice",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "ELU", "Softplus", "Softmax", "LogSoftmax",
    "Conv2d", "MaxPool2d", "AvgPool2d", "SoftmaxCrossEntropy", "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
]


def _reduced_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative ints (None: every axis)."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(int(a) % ndim for a in axes))


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


# --- products --------------------------------------------------------------------


class MatMul(Function):
    """``a @ b`` for 2-D ``a (M, K)``, ``b (K, N)``, on the ``matmul`` kernel.

    A transposed view (``w.T``) is passed to the kernel as its C-contiguous
    base with a ``trans_*`` flag, so it is never copied. The backward uses the
    same kernel: ``dA = g @ op(B).T``, ``dB = op(A).T @ g``, each transpose
    again a flag.
    """

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        xp = ctx.backend
        a_arr, trans_a = xp.matmul_operand(a)
        b_arr, trans_b = xp.matmul_operand(b)
        ctx.save_for_backward(a_arr, b_arr)
        ctx.trans = (trans_a, trans_b)
        return xp.kernels.matmul(a_arr, b_arr, trans_a=trans_a, trans_b=trans_b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        a_arr, b_arr = ctx.saved_tensors
        trans_a, trans_b = ctx.trans
        need_a, need_b = ctx.needs_input_grad
        g = xp.ascontiguousarray(g)
        grad_a = xp.kernels.matmul(g, b_arr, trans_b=not trans_b) if need_a else None
        grad_b = xp.kernels.matmul(a_arr, g, trans_a=not trans_a) if need_b else None
        return grad_a, grad_b


def matmul(a: Any, b: Any) -> Tensor:
    """``a @ b`` with NumPy's rules for 1-D operands and a stack of rows times a matrix.

    1-D ``a`` is a row, 1-D ``b`` a column (the added axis is dropped again);
    ``a`` of shape ``(..., K)`` times 2-D ``b`` flattens the leading axes into
    the rows of one kernel call.
    """
    a = a if isinstance(a, Tensor) else Tensor(a)
    b = b if isinstance(b, Tensor) else Tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
    if a.ndim == 3 and b.ndim == 3:
        from jitgrad.autograd.ops_shape import batched_matmul

        return batched_matmul(a, b)
    if b.ndim > 2:
        raise ValueError(f"matmul: b must be 1-D or 2-D, got shape {b.shape} (a 3-D b needs a 3-D a: batched matmul)")
    if a.shape[-1] != b.shape[0]:
        raise ValueError(f"matmul: inner sizes differ: a has shape {a.shape}, b has shape {b.shape}")
    if a.ndim == 2 and b.ndim == 2:
        return MatMul.apply(a, b)
    lead = a.shape[:-1]
    a2 = a.reshape(1, -1) if a.ndim == 1 else a.reshape(-1, a.shape[-1]) if a.ndim > 2 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    out = MatMul.apply(a2, b2)
    return out.reshape(lead + ((b.shape[1],) if b.ndim == 2 else ()))


class Linear(Function):
    """``x @ w.T + b`` for ``x (N, in)``, ``w (out, in)``, ``b (out,)``: the three matmuls of a dense layer.

    Forward ``matmul(x, w, trans_b=True)``; backward ``dx = matmul(g, w)``,
    ``dw = matmul(g, x, trans_a=True)`` (already in ``w``'s layout), ``db = g.sum(0)``.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, w: Any, b: Any = None) -> Any:
        xp = ctx.backend
        x = xp.ascontiguousarray(x)
        w = xp.ascontiguousarray(w)
        ctx.save_for_backward(x, w)
        y = xp.kernels.matmul(x, w, trans_b=True)
        return y if b is None else xp.add(y, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xp = ctx.backend
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        g = xp.ascontiguousarray(g)
        grad_x = xp.kernels.matmul(g, w) if needs[0] else None
        grad_w = xp.kernels.matmul(g, x, trans_a=True) if needs[1] else None
        grad_b = xp.sum(g, axis=0) if len(needs) > 2 and needs[2] else None
        return grad_x, grad_w, grad_b


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


# --- shape -----------------------------------------------------------------------


class Reshape(Function):
    """The same elements in a new shape."""

    @staticmethod
    def forward(ctx: Context, a: Any, shape: tuple[int, ...]) -> Any:
        ctx.shape = a.shape
        return ctx.backend.reshape(a, shape)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return ctx.backend.reshape(g, ctx.shape)


class Permute(Function):
    """Axes reordered (a view; kernels that need contiguity copy it when they must)."""

    @staticmethod
    def forward(ctx: Context, a: Any, axes: tuple[int, ...]) -> Any:
        ctx.axes = axes
        return ctx.backend.transpose(a, axes)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        inverse = [0] * len(ctx.axes)
        for position, axis in enumerate(ctx.axes):
            inverse[axis] = position
        return ctx.backend.transpose(g, tuple(inverse))


class Getitem(Function):
    """``a[index]``: ints, slices, ``None``, ``...``, integer or boolean arrays."""

    @staticmethod
    def forward(ctx: Context, a: Any, index: Any) -> Any:
        ctx.shape, ctx.index = a.shape, index
        return ctx.backend.getitem(a, index)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return ctx.backend.getitem_backward(g, ctx.index, ctx.shape)


class Cast(Function):
    """The same values in another dtype; the gradient is cast back."""

    @staticmethod
    def forward(ctx: Context, a: Any, dtype: Any) -> Any:
        ctx.dtype = a.dtype
        return ctx.backend.astype(a, dtype)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return ctx.backend.astype(g, ctx.dtype)


class ToDevice(Function):
    """A copy on another device (through host memory); the gradient travels back."""

    @staticmethod
    def forward(ctx: Context, a: Any, backend: Any) -> Any:
        ctx.target = backend
        return backend.from_numpy(ctx.backend.to_numpy(a))

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return ctx.backend.from_numpy(ctx.target.to_numpy(g))


# --- activations: forward kernel ``name``, backward kernel ``name_backward`` -----------


class _Activation(Function):
    """An elementwise activation; subclasses name their kernel pair.

    Every activation backward kernel takes the forward *input* (kernel API),
    so one forward/backward pair serves them all; hyper-parameters are
    keyword arguments passed through to both kernels.
    """

    kernel: str = ""

    @classmethod
    def forward(cls, ctx: Context, x: Any, **hyper: Any) -> Any:  # type: ignore[override]
        xp = ctx.backend
        x = xp.ascontiguousarray(x)
        ctx.save_for_backward(x)
        ctx.hyper = hyper
        return getattr(xp.kernels, cls.kernel)(x, **hyper)

    @classmethod
    def backward(cls, ctx: Context, g: Any) -> Any:  # type: ignore[override]
        xp = ctx.backend
        (x,) = ctx.saved_tensors
        return getattr(xp.kernels, cls.kernel + "_backward")(xp.ascontiguousarray(g), x, **ctx.hyper)


class ReLU(_Activation):
    """``max(x, 0)``."""

    kernel = "relu"


class LeakyReLU(_Activation):
    """``x`` if ``x > 0`` else ``negative_slope * x``."""

    kernel = "leaky_relu"


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``."""

    kernel = "sigmoid"


class Tanh(_Activation):
    """``tanh(x)``."""

    kernel = "tanh"


class GELU(_Activation):
    """Gaussian error linear unit (``approximate="none" | "tanh"``)."""

    kernel = "gelu"


class ELU(_Activation):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""

    kernel = "elu"


class Softplus(_Activation):
    """``log1p(exp(beta x)) / beta``, linear above ``threshold``."""

    kernel = "softplus"


class Softmax(Function):
    """Softmax along ``axis``; backward from the saved output."""

    @staticmethod
    def forward(ctx: Context, x: Any, axis: int = -1) -> Any:
        xp = ctx.backend
        y = xp.kernels.softmax(xp.ascontiguousarray(x), axis=axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend
        (y,) = ctx.saved_tensors
        return xp.kernels.softmax_backward(xp.ascontiguousarray(g), y, axis=ctx.axis)


class LogSoftmax(Function):
    """Log-softmax along ``axis``; backward from the saved output."""

    @staticmethod
    def forward(ctx: Context, x: Any, axis: int = -1) -> Any:
        xp = ctx.backend
        y = xp.kernels.log_softmax(xp.ascontiguousarray(x), axis=axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend
        (y,) = ctx.saved_tensors
        return xp.kernels.log_softmax_backward(xp.ascontiguousarray(g), y, axis=ctx.axis)


# --- convolution and pooling -----------------------------------------------------------


class Conv2d(Function):
    """2-D cross-correlation, NCHW input ``x``, weights ``w (C_out, C_in/groups, kH, kW)``, bias ``b (C_out,)``."""

    @staticmethod
    def forward(ctx: Context, x: Any, w: Any, b: Any = None, *, stride: Any = 1, padding: Any = 0,
                dilation: Any = 1, groups: int = 1) -> Any:
        xp = ctx.backend
        x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
        if b is not None:
            b = xp.ascontiguousarray(b)
        ctx.save_for_backward(x, w)
        ctx.hyper = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        return xp.kernels.conv2d(x, w, b, **ctx.hyper)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        from jitgrad.autograd.ops_conv import conv_backward

        k = ctx.backend.kernels
        return conv_backward(ctx, g, k.conv2d_backward_input, k.conv2d_backward_weight)


class MaxPool2d(Function):
    """Max pooling over NCHW windows; the kernel's int32 argmax routes the gradient back."""

    @staticmethod
    def forward(ctx: Context, x: Any, *, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
        xp = ctx.backend
        # The backward takes the geometry too: the CUDA kernel gathers over the windows covering each input.
        ctx.hyper = {"kernel_size": kernel_size, "stride": stride, "padding": padding}
        y, argmax = xp.kernels.max_pool2d(xp.ascontiguousarray(x), **ctx.hyper)
        ctx.save_for_backward(argmax)
        ctx.input_shape = x.shape
        return y

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend
        (argmax,) = ctx.saved_tensors
        return xp.kernels.max_pool2d_backward(xp.ascontiguousarray(g), argmax, input_shape=ctx.input_shape,
                                              **ctx.hyper)


class AvgPool2d(Function):
    """Average pooling over NCHW windows."""

    @staticmethod
    def forward(ctx: Context, x: Any, *, kernel_size: Any, stride: Any = None, padding: Any = 0,
                count_include_pad: bool = True) -> Any:
        xp = ctx.backend
        ctx.hyper = {"kernel_size": kernel_size, "stride": stride, "padding": padding,
                     "count_include_pad": count_include_pad}
        ctx.input_shape = x.shape
        return xp.kernels.avg_pool2d(xp.ascontiguousarray(x), **ctx.hyper)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend
        return xp.kernels.avg_pool2d_backward(xp.ascontiguousarray(g), input_shape=ctx.input_shape, **ctx.hyper)


# --- losses ------------------------------------------------------------------------------


class SoftmaxCrossEntropy(Function):
    """Cross-entropy of ``softmax(logits)`` against labels or probabilities, fused in one kernel pair.

    The forward kernel keeps the probabilities; the backward kernel turns
    them into ``(probs - target) * grad_loss``. No gradient flows to the target.
    """

    @staticmethod
    def forward(ctx: Context, logits: Any, target: Any, *, reduction: str = "mean",
                label_smoothing: float = 0.0) -> Any:
        xp = ctx.backend
        ctx.hyper = {"reduction": reduction, "label_smoothing": label_smoothing}
        target = xp.ascontiguousarray(target)
        loss, probs = xp.kernels.softmax_cross_entropy(xp.ascontiguousarray(logits), target, **ctx.hyper)
        ctx.save_for_backward(probs, target)
        return loss

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, None]:
        xp = ctx.backend
        probs, target = ctx.saved_tensors
        grad = xp.kernels.softmax_cross_entropy_backward(probs, target, xp.ascontiguousarray(g), **ctx.hyper)
        return grad, None


class BinaryCrossEntropy(Function):
    """Elementwise ``-(t log p + (1 - t) log(1 - p))``, each log clamped at -100 as PyTorch does.

    The clamp keeps the loss finite at ``p`` = 0 or 1; the gradient's
    denominator ``p (1 - p)`` is clamped at 1e-12 for the same reason.
    """

    @staticmethod
    def forward(ctx: Context, p: Any, t: Any) -> Any:
        xp = ctx.backend
        log_p = xp.maximum(xp.log(p), -100.0)
        log_1mp = xp.maximum(xp.log(xp.subtract(1.0, p)), -100.0)
        ctx.save_for_backward(p, t, log_p, log_1mp)
        return xp.negative(xp.add(xp.multiply(t, log_p), xp.multiply(xp.subtract(1.0, t), log_1mp)))

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        p, t, log_p, log_1mp = ctx.saved_tensors
        need_p, need_t = ctx.needs_input_grad
        grad_p = grad_t = None
        if need_p:
            denominator = xp.maximum(xp.multiply(p, xp.subtract(1.0, p)), 1e-12)
            grad_p = xp.multiply(g, xp.divide(xp.subtract(p, t), denominator))
        if need_t:
            grad_t = xp.multiply(g, xp.subtract(log_1mp, log_p))
        return grad_p, grad_t


class BinaryCrossEntropyWithLogits(Function):
    """Elementwise ``max(x, 0) - x t + log1p(exp(-|x|))``: BCE of ``sigmoid(x)`` without overflow.

    The gradient ``sigmoid(x) - t`` comes from the ``sigmoid`` kernel.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, t: Any) -> Any:
        xp = ctx.backend
        x = xp.ascontiguousarray(x)
        ctx.save_for_backward(x, t)
        softplus_neg_abs = xp.log1p(xp.exp(xp.negative(xp.abs(x))))
        return xp.add(xp.subtract(xp.maximum(x, 0.0), xp.multiply(x, t)), softplus_neg_abs)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        x, t = ctx.saved_tensors
        need_x, need_t = ctx.needs_input_grad
        grad_x = xp.multiply(g, xp.subtract(xp.kernels.sigmoid(x), t)) if need_x else None
        grad_t = xp.multiply(g, xp.negative(x)) if need_t else None
        return grad_x, grad_t
