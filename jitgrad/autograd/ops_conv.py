"""Convolution and pooling: one ``Function`` per op, backward beside forward.

``Conv2d`` (with ``groups``) and ``ConvTranspose2d`` share :func:`conv_backward`;
pooling's backward kernels take the forward's geometry (and max-pool's int32 argmax).
"""

from __future__ import annotations

from typing import Any

from jitgrad.autograd.function import Context, Function
from jitgrad.kernels._validate import Conv2dDims

__all__ = ["Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
           "conv_backward"]


def conv_backward(ctx: Context, g: Any, backward_input: Any, backward_weight: Any, **geometry: Any) -> tuple[Any, ...]:
    """The backward of ``Conv2d`` and ``ConvTranspose2d``: ``(grad_x, grad_w, grad_b)`` from the
    two backward kernels, each called only when an input needs its gradient (``geometry``: extra
    keywords for both, ``dims=`` for ``Conv2d``)."""
    xp = ctx.backend
    x, w = ctx.saved_tensors[:2]  # (Conv2dActivation saves its output after them)
    needs = ctx.needs_input_grad
    g = xp.ascontiguousarray(g)
    grad_x = grad_w = grad_b = None
    if needs[0]:
        grad_x = backward_input(g, w, input_shape=x.shape, **ctx.hyper, **geometry)
    need_b = len(needs) > 2 and needs[2]
    if needs[1] or need_b:
        grad_w, grad_b = backward_weight(x, g, weight_shape=w.shape, **ctx.hyper, **geometry)
    return grad_x, (grad_w if needs[1] else None), (grad_b if need_b else None)


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
        y = xp.kernels.conv2d(x, w, b, **ctx.hyper)
        # The geometry, validated once (as NNlib's DenseConvDims) and handed to both backward
        # kernels, which then check only that the arrays fit it. Built after the forward kernel
        # so that bad input keeps the kernel's own error message.
        if any(ctx.needs_input_grad):
            ctx.dims = Conv2dDims.from_shapes(tuple(x.shape), tuple(w.shape), **ctx.hyper)
        return y

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        k = ctx.backend.kernels
        return conv_backward(ctx, g, k.conv2d_backward_input, k.conv2d_backward_weight, dims=ctx.dims)


class ConvTranspose2d(Function):
    """Transposed 2-D convolution, ``x (N, C_in, H, W)``, ``w (C_in, C_out/groups, kH, kW)``, ``b (C_out,)``."""

    @staticmethod
    def forward(ctx: Context, x: Any, w: Any, b: Any = None, *, stride: Any = 1, padding: Any = 0,
                output_padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Any:
        xp = ctx.backend
        x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
        if b is not None:
            b = xp.ascontiguousarray(b)
        ctx.save_for_backward(x, w)
        ctx.hyper = {"stride": stride, "padding": padding, "output_padding": output_padding,
                     "dilation": dilation, "groups": groups}
        return xp.kernels.conv_transpose2d(x, w, b, **ctx.hyper)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        k = ctx.backend.kernels
        return conv_backward(ctx, g, k.conv_transpose2d_backward_input, k.conv_transpose2d_backward_weight)


class _Pool(Function):
    """A pooling op; subclasses name their kernel pair (forward ``kernel``, backward ``kernel_backward``).

    The forward's keyword arguments (the geometry) go to the forward kernel and, where the
    backward kernel takes them (``backward_takes_geometry``: the CUDA max-pool backward gathers
    over the windows covering each input), to the backward one too; max pooling's kernels also
    return the int32 argmax that routes the gradient back (``returns_argmax``).
    """

    kernel: str = ""
    returns_argmax: bool = False
    backward_takes_geometry: bool = True

    @classmethod
    def forward(cls, ctx: Context, x: Any, **geometry: Any) -> Any:  # type: ignore[override]
        xp = ctx.backend
        ctx.geometry = geometry if cls.backward_takes_geometry else {}
        ctx.input_shape = x.shape
        y = getattr(xp.kernels, cls.kernel)(xp.ascontiguousarray(x), **geometry)
        if cls.returns_argmax:
            y, argmax = y
            ctx.save_for_backward(argmax)
        return y

    @classmethod
    def backward(cls, ctx: Context, g: Any) -> Any:  # type: ignore[override]
        xp = ctx.backend
        backward_kernel = getattr(xp.kernels, cls.kernel + "_backward")
        saved = ctx.saved_tensors if cls.returns_argmax else ()
        return backward_kernel(xp.ascontiguousarray(g), *saved, input_shape=ctx.input_shape, **ctx.geometry)


class MaxPool2d(_Pool):
    """Max pooling over NCHW windows (``kernel_size``, ``stride=None``, ``padding=0``)."""

    kernel = "max_pool2d"
    returns_argmax = True


class AvgPool2d(_Pool):
    """Average pooling over NCHW windows (``kernel_size``, ``stride=None``, ``padding=0``, ``count_include_pad``)."""

    kernel = "avg_pool2d"


class AdaptiveAvgPool2d(_Pool):
    """Adaptive average pooling of ``x (N, C, H, W)`` to ``output_size``."""

    kernel = "adaptive_avg_pool2d"
    backward_takes_geometry = False


class AdaptiveMaxPool2d(_Pool):
    """Adaptive max pooling of ``x (N, C, H, W)`` to ``output_size``."""

    kernel = "adaptive_max_pool2d"
    returns_argmax = True
    backward_takes_geometry = False
