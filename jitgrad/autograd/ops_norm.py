"""Normalisation ops: batch norm, layer norm and local response norm, one ``Function`` each over the kernels.

The forward kernels return the mean and ``1 / sqrt(var + eps)`` they used;
the ops save them (with ``x`` and the weight) and hand them back to the
backward kernels, which compute the gradients of ``x``, ``weight`` and
``bias`` in one pass. Running statistics are plain arrays (not graph inputs):
the batch-norm kernel updates them in place in training mode.
"""

from __future__ import annotations

from typing import Any

from jitgrad.autograd.function import Context, Function

__all__ = ["BatchNorm", "LayerNorm", "LocalResponseNorm"]


def _contiguous_or_none(xp: Any, a: Any) -> Any:
    return None if a is None else xp.ascontiguousarray(a)


class BatchNorm(Function):
    """Batch normalisation of ``x`` (N, C) or (N, C, H, W) per channel, with optional affine ``weight``, ``bias``.

    ``apply(x, weight, bias, running_mean, running_var, training=, momentum=, eps=)``;
    ``running_mean``/``running_var`` are raw arrays of ``x``'s device (or None),
    updated in place when ``training``.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any, *,
                training: bool, momentum: float, eps: float) -> Any:
        xp = ctx.backend
        x = xp.ascontiguousarray(x)
        weight = _contiguous_or_none(xp, weight)
        y, mean, invstd = xp.kernels.batch_norm(x, running_mean, running_var, weight,
                                                _contiguous_or_none(xp, bias), training=training,
                                                momentum=momentum, eps=eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.training = training
        return y

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xp = ctx.backend
        x, weight, mean, invstd = ctx.saved_tensors
        grad_x, grad_w, grad_b = xp.kernels.batch_norm_backward(xp.ascontiguousarray(g), x, weight, mean, invstd,
                                                                training=ctx.training)
        needs = ctx.needs_input_grad
        return (grad_x if needs[0] else None, grad_w if needs[1] else None, grad_b if needs[2] else None,
                None, None)


class LayerNorm(Function):
    """Layer normalisation over the trailing ``normalized_shape`` of ``x``: ``apply(x, weight, bias, ...)``."""

    @staticmethod
    def forward(ctx: Context, x: Any, weight: Any, bias: Any, *, normalized_shape: Any, eps: float) -> Any:
        xp = ctx.backend
        x = xp.ascontiguousarray(x)
        weight = _contiguous_or_none(xp, weight)
        y, mean, invstd = xp.kernels.layer_norm(x, normalized_shape, weight, _contiguous_or_none(xp, bias),
                                                eps=eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        return y

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xp = ctx.backend
        x, weight, mean, invstd = ctx.saved_tensors
        grad_x, grad_w, grad_b = xp.kernels.layer_norm_backward(xp.ascontiguousarray(g), x, weight, mean, invstd)
        needs = ctx.needs_input_grad
        return grad_x if needs[0] else None, grad_w if needs[1] else None, grad_b if needs[2] else None


class LocalResponseNorm(Function):
    """Local response normalisation across channels of ``x`` (N, C, *): ``apply(x, size=, alpha=, beta=, k=, before=)``.

    ``before`` places the window (see :func:`jitgrad.kernels.reference.lrn`). Only ``x`` is
    saved: the backward kernel recomputes the window sums, cheaper than keeping them.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, *, size: int, alpha: float, beta: float, k: float, before: int) -> Any:
        xp = ctx.backend
        x = xp.ascontiguousarray(x)
        ctx.save_for_backward(x)
        ctx.hyper = (size, alpha, beta, k, before)
        return xp.kernels.lrn(x, *ctx.hyper)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xp = ctx.backend
        (x,) = ctx.saved_tensors
        return (xp.kernels.lrn_backward(xp.ascontiguousarray(g), x, *ctx.hyper),)
