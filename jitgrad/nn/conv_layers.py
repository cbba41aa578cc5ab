"""Layers for modern CNNs: transposed convolution, adaptive and global pooling, ``Identity``, and Flux's
composition layers ``SkipConnection`` and ``Parallel`` (a residual block without subclassing).

Grouped and depthwise convolution is ``Conv2d(..., groups=)`` in :mod:`jitgrad.nn.layers`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jitgrad.nn import functional as F
from jitgrad.nn.layers import _ConvBase, _pair
from jitgrad.nn.module import Module

__all__ = ["ConvTranspose2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalAvgPool", "GlobalMeanPool",
           "Identity", "SkipConnection", "Parallel"]


class ConvTranspose2d(_ConvBase):
    """Transposed 2-D convolution over NCHW input, as PyTorch's ``ConvTranspose2d`` (a learnable upsampler).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride, padding, output_padding, dilation : int or (int, int) (``output_padding < stride``)
    groups : int dividing both channel counts, default 1
    bias : bool, default True
    dtype : numpy dtype, optional
    generator : numpy.random.Generator, optional

    Shapes
    ------
    input ``(N, C_in, H, W)`` -> output ``(N, C_out, H_out, W_out)``,
    ``H_out = (H - 1) s - 2 p + d (k - 1) + output_padding + 1``;
    ``weight (C_in, C_out/groups, kH, kW)`` (PyTorch's layout), ``bias (C_out,)``.
    """

    _owner = "ConvTranspose2d"
    _repr_pairs = (("stride", (1, 1)), ("padding", (0, 0)), ("output_padding", (0, 0)), ("dilation", (1, 1)))

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 output_padding: int | tuple[int, int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | tuple[int, int] = 1, *, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self._conv_hyper(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self.output_padding = _pair(self._owner, "output_padding", output_padding, minimum=0)
        if any(o >= s for o, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"{self._owner}: output_padding must be smaller than stride {self.stride}, "
                             f"got output_padding={output_padding!r}")
        self._conv_weights((self.in_channels, self.out_channels // self.groups), bias, dtype, generator)

    def forward(self, x: Any) -> Any:
        self._check_input(x)
        return F.conv_transpose2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                                  output_padding=self.output_padding, groups=self.groups, dilation=self.dilation)


class _Adaptive(Module):
    def __init__(self, output_size: Any) -> None:
        super().__init__()
        from jitgrad.kernels.reference.pooling_adaptive import adaptive_dims

        adaptive_dims((1, 1, 1, 1), output_size)  # validates now, not at the first forward
        self.output_size = output_size

    def extra_repr(self) -> str:
        return f"output_size={self.output_size!r}"


class AdaptiveAvgPool2d(_Adaptive):
    """Average pooling of ``(N, C, H, W)`` to ``(N, C, *output_size)`` whatever ``H, W`` (PyTorch's bins)."""

    def forward(self, x: Any) -> Any:
        return F.adaptive_avg_pool2d(x, self.output_size)


class AdaptiveMaxPool2d(_Adaptive):
    """Max pooling of ``(N, C, H, W)`` to ``(N, C, *output_size)``; gradients go to each bin's first maximum."""

    def forward(self, x: Any) -> Any:
        return F.adaptive_max_pool2d(x, self.output_size)


class GlobalAvgPool(Module):
    """Mean over the spatial axes: ``(N, C, H, W)`` -> ``(N, C, 1, 1)`` (Flux's ``GlobalMeanPool``;
    follow with ``Flatten()`` for ``(N, C)``). Runs the global-average fast path of ``adaptive_avg_pool2d``."""

    def forward(self, x: Any) -> Any:
        return F.adaptive_avg_pool2d(x, 1)


GlobalMeanPool = GlobalAvgPool


class Identity(Module):
    """Returns its input unchanged (a placeholder, or the shortcut of a residual block)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


def _check_callable(owner: str, name: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{owner}: {name} must be callable (a Module or a function), got {type(fn).__name__}")


def _connection_name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


class SkipConnection(Module):
    """``connection(layer(x), x)``: Flux's ``SkipConnection``. ``connection=operator.add`` (or ``"+"``)
    makes a residual block; a function of ``(out, x)`` such as ``lambda y, x: jg.cat([y, x], 1)`` a dense one.

    Examples
    --------
    >>> block = SkipConnection(Sequential(Conv2d(8, 8, 3, padding=1), ReLU(), Conv2d(8, 8, 3, padding=1)), "+")
    """

    def __init__(self, layer: Module | Callable[[Any], Any], connection: Callable[[Any, Any], Any] | str) -> None:
        super().__init__()
        _check_callable("SkipConnection", "layer", layer)
        if connection == "+":
            connection = _add
        _check_callable("SkipConnection", "connection", connection)
        self.layer = layer
        self.connection = connection

    def forward(self, x: Any) -> Any:
        return self.connection(self.layer(x), x)

    def extra_repr(self) -> str:
        return f"connection={_connection_name(self.connection)}"


def _add(a: Any, b: Any) -> Any:
    return a + b


class Parallel(Module):
    """``connection(layer_1(x), ..., layer_k(x))``: Flux's ``Parallel``. ``connection="+"`` adds the
    branches (a residual block with a projection shortcut is ``Parallel("+", body, shortcut)``); with a
    tuple input, layer ``i`` gets element ``i``. Layers are named ``"0"``, ``"1"``, ... as in ``Sequential``.
    """

    def __init__(self, connection: Callable[..., Any] | str, *layers: Module | Callable[[Any], Any]) -> None:
        super().__init__()
        if connection == "+":
            connection = _sum
        _check_callable("Parallel", "connection", connection)
        if not layers:
            raise ValueError("Parallel: needs at least one layer")
        for i, layer in enumerate(layers):
            _check_callable("Parallel", f"layer {i}", layer)
            if isinstance(layer, Module):
                setattr(self, str(i), layer)  # registered: its parameters are the model's
        self.connection = connection
        self._branches = list(layers)

    def forward(self, *xs: Any) -> Any:
        if len(xs) == 1 and isinstance(xs[0], tuple):
            xs = xs[0]
        if len(xs) == 1:
            outs = [layer(xs[0]) for layer in self._branches]
        elif len(xs) == len(self._branches):
            outs = [layer(x) for layer, x in zip(self._branches, xs)]
        else:
            raise ValueError(f"Parallel: got {len(xs)} inputs for {len(self._branches)} layers")
        return self.connection(*outs)

    def extra_repr(self) -> str:
        return f"connection={_connection_name(self.connection)}"


def _sum(*xs: Any) -> Any:
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    return total
