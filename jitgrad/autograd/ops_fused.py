"""Fused ops: a dense layer or convolution with its bias and activation in one kernel (``kernels/*/fused.py``).

``LinearActivation`` is ``act(x @ w.T + b)``, ``Conv2dActivation`` is
``act(conv2d(x, w, b))``: one forward kernel whose GEMM store applies the
bias and the activation, and one graph node instead of two. Their backward
takes the mask from the fused *output* (``y > 0`` exactly where the
pre-activation is ``> 0``, NaN included), so no pre-activation is kept:
the dense layer masks and sums its bias gradient in one pass
(``bias_activation_backward``), the convolution masks with ``relu_backward``
(its bias gradient comes out of the weight-gradient kernel) and then both
run the unfused backward kernels.
"""

from __future__ import annotations

from typing import Any

from jitgrad.autograd.function import Context, Function
from jitgrad.autograd.ops_conv import conv_backward
from jitgrad.kernels._validate import Conv2dDims

__all__ = ["LinearActivation", "Conv2dActivation"]


class LinearActivation(Function):
    """``act(x @ w.T + b)`` for ``x (N, in)``, ``w (out, in)``, ``b (out,)``: the ``linear`` kernel.

    Backward: ``gz, db = bias_activation_backward(g, y)`` (one pass), then
    ``dx = gz @ w`` and ``dw = gz.T @ x`` as the unfused ``Linear``.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, w: Any, b: Any = None, *, activation: str = "relu") -> Any:
        xp = ctx.backend
        x = xp.ascontiguousarray(x)
        w = xp.ascontiguousarray(w)
        if b is not None:
            b = xp.ascontiguousarray(b)
        y = xp.kernels.linear(x, w, b, activation=activation)
        ctx.activation = activation
        ctx.save_for_backward(x, w, y)
        return y

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xp = ctx.backend
        x, w, y = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gz, grad_b = xp.kernels.bias_activation_backward(xp.ascontiguousarray(g), y, activation=ctx.activation)
        grad_x = xp.kernels.matmul(gz, w) if needs[0] else None
        grad_w = xp.kernels.matmul(gz, x, trans_a=True) if needs[1] else None
        return grad_x, grad_w, (grad_b if len(needs) > 2 and needs[2] else None)


class Conv2dActivation(Function):
    """``act(conv2d(x, w, b))`` (NCHW, as ``Conv2d``): the ``conv2d_activation`` kernel.

    Backward: ``gz = relu_backward(g, y)``, then the two convolution backward kernels.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, w: Any, b: Any = None, *, stride: Any = 1, padding: Any = 0,
                dilation: Any = 1, groups: int = 1, activation: str = "relu") -> Any:
        xp = ctx.backend
        x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
        if b is not None:
            b = xp.ascontiguousarray(b)
        ctx.hyper = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        y = xp.kernels.conv2d_activation(x, w, b, activation=activation, **ctx.hyper)
        ctx.activation = activation
        ctx.save_for_backward(x, w, y)
        if any(ctx.needs_input_grad):
            ctx.dims = Conv2dDims.from_shapes(tuple(x.shape), tuple(w.shape), **ctx.hyper)
        return y

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xp = ctx.backend
        k = xp.kernels
        g = xp.ascontiguousarray(g)
        if ctx.activation == "relu":
            g = k.relu_backward(g, ctx.saved_tensors[2])
        return conv_backward(ctx, g, k.conv2d_backward_input, k.conv2d_backward_weight, dims=ctx.dims)
