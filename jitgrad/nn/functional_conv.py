"""Functional transposed convolution, adaptive pooling and padding (re-exported by ``nn.functional``)."""

from __future__ import annotations

from typing import Any

from jitgrad.autograd import ops_conv
from jitgrad.autograd.ops_shape import pad
from jitgrad.autograd.tensor import Tensor

__all__ = ["conv_transpose2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "pad"]


def _as_4d(fn: str, name: str, x: Any, layout: str) -> Tensor:
    from jitgrad.nn.functional import _as_tensor, _check_ndim

    t = _as_tensor(x, name, fn)
    _check_ndim(fn, name, t, 4, layout)
    return t


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Tensor:
    """Transposed 2-D convolution (PyTorch's argument order).

    Parameters
    ----------
    x : Tensor (N, C_in, H, W)
    weight : Tensor (C_in, C_out/groups, kH, kW)
    bias : Tensor (C_out,), optional
    stride, padding, output_padding, dilation : int or pair (``output_padding < stride``)
    groups : int dividing C_in

    Returns
    -------
    Tensor (N, C_out, H_out, W_out), ``H_out = (H - 1) s - 2 p + d (k - 1) + output_padding + 1``.
    """
    x = _as_4d("conv_transpose2d", "x", x, "(N, C_in, H, W)")
    _as_4d("conv_transpose2d", "weight", weight, "(C_in, C_out/groups, kH, kW)")
    return ops_conv.ConvTranspose2d.apply(x, weight, bias, stride=stride, padding=padding,
                                          output_padding=output_padding, dilation=dilation, groups=groups)


def adaptive_avg_pool2d(x: Tensor, output_size: Any) -> Tensor:
    """Average pooling of ``x (N, C, H, W)`` to ``output_size`` (int or pair; ``None`` keeps a size)."""
    x = _as_4d("adaptive_avg_pool2d", "x", x, "(N, C, H, W)")
    return ops_conv.AdaptiveAvgPool2d.apply(x, output_size=output_size)


def adaptive_max_pool2d(x: Tensor, output_size: Any) -> Tensor:
    """Max pooling of ``x (N, C, H, W)`` to ``output_size``; the gradient goes to each bin's first maximum."""
    x = _as_4d("adaptive_max_pool2d", "x", x, "(N, C, H, W)")
    return ops_conv.AdaptiveMaxPool2d.apply(x, output_size=output_size)
