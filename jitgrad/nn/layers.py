"""Layers: thin modules that hold parameters and hyper-parameters and call ``nn.functional``.

No layer holds derivative code: every forward is a call into
:mod:`jitgrad.nn.functional`, whose autograd Functions own the backward.
Weights are created in ``config.default_dtype`` (or ``dtype=``) and
initialised as PyTorch does: Kaiming-uniform with ``a = sqrt(5)`` for
weights (bound ``1 / sqrt(fan_in)``), ``U(±1 / sqrt(fan_in))`` for biases,
drawn from the global generator of :mod:`jitgrad.nn.init` unless a
``generator=`` is given.

A layer fed the wrong shape raises ``ValueError`` naming itself and both
shapes, e.g. ``Linear(256 => 120) expected input (..., 256), got (8, 300)``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np

from jitgrad import config
from jitgrad._checks import check_int, check_real, positive_int
from jitgrad.kernels._validate import as_pair
from jitgrad.nn import functional as F
from jitgrad.nn import init
from jitgrad.nn.module import Module, Parameter

__all__ = [
    "Linear", "Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "ELU", "Softplus", "Softmax", "LogSoftmax",
    "Sequential", "Chain",
]


_positive_int = positive_int  # the one check (jitgrad/_checks.py), under the name nn's modules import


def _pair(owner: str, name: str, value: Any, *, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each ``>= minimum``, as a pair (the kernels' rule and exception types)."""
    try:
        return as_pair(name, value, minimum=minimum)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{owner}: {error}") from None


def _fmt_pair(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"({pair[0]}, {pair[1]})"


def _dtype(owner: str, dtype: Any) -> np.dtype:
    dtype = np.dtype(config.default_dtype if dtype is None else dtype)
    if dtype not in config.FLOAT_DTYPES:
        raise TypeError(f"{owner}: dtype must be float32 or float64, got {dtype}")
    return dtype


def _default_init(weight: Parameter, bias: Parameter | None, fan_in: int,
                  generator: np.random.Generator | None) -> None:
    """PyTorch's default Linear/Conv init (see the module docstring)."""
    init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound, generator=generator)


def _check_ndim(layer: Module, x: Any, ndim: int, expected: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{layer!r} expected input {expected}, got {tuple(x.shape)}")


class Linear(Module):
    """Affine map ``y = x @ weight.T + bias`` over the last axis (Flux's ``Dense``).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    activation : None, ``"relu"`` or ``nn.functional.relu``, default None
        Applied in the product's store, as Keras's ``Dense(activation=...)``
        and Flux's ``Dense(in => out, relu)``: the values of ``Linear`` then
        ``ReLU``, one fused kernel, fewer passes over memory.
    dtype : numpy dtype, optional
        Parameter dtype; default ``config.default_dtype``.
    generator : numpy.random.Generator, optional
        Source of the initial values; default the global one.

    Shapes
    ------
    input ``(..., in_features)`` -> output ``(..., out_features)``;
    ``weight (out_features, in_features)``, ``bias (out_features,)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, activation: Any = None,
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self.activation = F.check_activation("Linear", activation)
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        dtype = _dtype("Linear", dtype)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype))
        self.bias = Parameter(np.empty(self.out_features, dtype)) if bias else None
        _default_init(self.weight, self.bias, self.in_features, generator)

    def forward(self, x: Any) -> Any:
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r} expected input (..., {self.in_features}), got {tuple(x.shape)}")
        return F.linear(x, self.weight, self.bias, activation=self.activation)

    def extra_repr(self) -> str:
        return (f"{self.in_features} => {self.out_features}" + ("" if self.activation is None else f", {self.activation}")
                + ("" if self.bias is not None else ", bias=False"))


Dense = Linear


class _ConvBase(Module):
    """The hyper-parameters, weights, input check and repr that ``Conv2d`` and ``ConvTranspose2d`` share."""

    _owner = "Conv2d"
    _repr_pairs: tuple[tuple[str, tuple[int, int]], ...] = (
        ("stride", (1, 1)), ("padding", (0, 0)), ("dilation", (1, 1)))

    def _conv_hyper(self, in_channels: Any, out_channels: Any, kernel_size: Any, stride: Any, padding: Any,
                    dilation: Any, groups: Any) -> None:
        """Checks and stores the hyper-parameters every 2-D convolution layer has (``ConvTranspose2d`` too)."""
        name = self._owner
        self.in_channels = _positive_int(name, "in_channels", in_channels)
        self.out_channels = _positive_int(name, "out_channels", out_channels)
        self.kernel_size = _pair(name, "kernel_size", kernel_size, minimum=1)
        self.stride = _pair(name, "stride", stride, minimum=1)
        self.padding = _pair(name, "padding", padding, minimum=0)
        self.dilation = _pair(name, "dilation", dilation, minimum=1)
        self.groups = _positive_int(name, "groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")

    def _conv_weights(self, channels: tuple[int, int], bias: bool, dtype: Any,
                      generator: np.random.Generator | None) -> None:
        """``weight (*channels, kH, kW)`` and ``bias (C_out,)`` in PyTorch's default init, whose fan-in is
        ``weight.size(1) * kH * kW`` for a convolution and a transposed one alike."""
        dtype = _dtype(self._owner, dtype)
        self.weight = Parameter(np.empty((*channels, *self.kernel_size), dtype))
        self.bias = Parameter(np.empty(self.out_channels, dtype)) if bias else None
        _default_init(self.weight, self.bias, channels[1] * self.kernel_size[0] * self.kernel_size[1], generator)

    def _check_input(self, x: Any) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expected input (N, {self.in_channels}, H, W), got {tuple(x.shape)}")

    def extra_repr(self) -> str:
        text = f"{self.in_channels} => {self.out_channels}, {self.kernel_size[0]}×{self.kernel_size[1]}"
        for name, default in self._repr_pairs:
            if getattr(self, name) != default:
                text += f", {name}={_fmt_pair(getattr(self, name))}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if getattr(self, "activation", None) is not None:
            text += f", {self.activation}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv2d(_ConvBase):
    """2-D cross-correlation over NCHW input, as PyTorch's ``Conv2d``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride : int or (int, int), default 1
    padding : int or (int, int), default 0
        Zero padding on both sides of each spatial axis.
    dilation : int or (int, int), default 1
    groups : int, default 1
        Grouped convolution; must divide both channel counts. ``groups == in_channels``
        is a depthwise convolution (a direct kernel on the CPU).
    bias : bool, default True
    activation : None, ``"relu"`` or ``nn.functional.relu``, default None
        Applied as the convolution stores its output (Keras's
        ``Conv2D(activation=...)``): ``Conv2d`` then ``ReLU`` in one kernel.
    dtype : numpy dtype, optional
    generator : numpy.random.Generator, optional

    Shapes
    ------
    input ``(N, C_in, H, W)`` -> output ``(N, C_out, H_out, W_out)`` with
    ``H_out = (H + 2 p - d (k - 1) - 1) // s + 1``;
    ``weight (C_out, C_in/groups, kH, kW)``, ``bias (C_out,)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, bias: bool = True, *, groups: int = 1, activation: Any = None,
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self.activation = F.check_activation("Conv2d", activation)
        self._conv_hyper(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self._conv_weights((self.out_channels, self.in_channels // self.groups), bias, dtype, generator)

    def forward(self, x: Any) -> Any:
        self._check_input(x)
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups, activation=self.activation)


class _Pool2d(Module):
    """Shared hyper-parameters of the pooling layers."""

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        owner = type(self).__name__
        self.kernel_size = _pair(owner, "kernel_size", kernel_size, minimum=1)
        self.stride = self.kernel_size if stride is None else _pair(owner, "stride", stride, minimum=1)
        self.padding = _pair(owner, "padding", padding, minimum=0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{owner}: padding must be at most half the kernel size, "
                             f"got padding={_fmt_pair(self.padding)} for kernel_size={_fmt_pair(self.kernel_size)}")

    def extra_repr(self) -> str:
        text = f"{self.kernel_size[0]}×{self.kernel_size[1]}"
        if self.stride != self.kernel_size:
            text += f", stride={_fmt_pair(self.stride)}"
        if self.padding != (0, 0):
            text += f", padding={_fmt_pair(self.padding)}"
        return text


class MaxPool2d(_Pool2d):
    """Max over ``kernel_size`` windows of NCHW input; ``stride`` defaults to ``kernel_size``.

    Padding is implicit ``-inf``. Input ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``.
    """

    def forward(self, x: Any) -> Any:
        _check_ndim(self, x, 4, "(N, C, H, W)")
        return F.max_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)


class AvgPool2d(_Pool2d):
    """Mean over ``kernel_size`` windows of NCHW input (padding counted, as PyTorch's default).

    Input ``(N, C, H, W)`` -> ``(N, C, H_out, W_out)``.
    """

    def forward(self, x: Any) -> Any:
        _check_ndim(self, x, 4, "(N, C, H, W)")
        return F.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)


class Flatten(Module):
    """Merge axes ``start_dim..`` into one: ``(N, C, H, W)`` -> ``(N, C*H*W)`` by default.

    Parameters
    ----------
    start_dim : int, default 1
        First axis merged (non-negative).
    """

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = check_int("Flatten", "start_dim", start_dim, minimum=0, what="an int >= 0")

    def forward(self, x: Any) -> Any:
        if x.ndim <= self.start_dim:
            raise ValueError(f"{self!r} expected input with more than {self.start_dim} dimension(s), "
                             f"got {tuple(x.shape)}")
        return x.reshape(tuple(x.shape[: self.start_dim]) + (-1,))

    def extra_repr(self) -> str:
        return "" if self.start_dim == 1 else f"start_dim={self.start_dim}"


class Dropout(Module):
    """Zero each element with probability ``p`` in training, scaling the rest by ``1 / (1 - p)``.

    Identity in evaluation mode. Masks come from ``generator`` or, when it is
    None, the global generator of :mod:`jitgrad.nn.init` (read at each call,
    so ``manual_seed`` makes training reproducible).

    Parameters
    ----------
    p : float, default 0.5
        Drop probability, in ``[0, 1)``.
    generator : numpy.random.Generator, optional
    """

    def __init__(self, p: float = 0.5, *, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self.p = check_real("Dropout", "p", p, minimum=0.0, maximum=1.0, max_open=True, what="in [0, 1)")
        self.generator = generator

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0:
            return x
        generator = init.get_generator() if self.generator is None else self.generator
        return F.dropout(x, self.p, training=True, generator=generator)

    def extra_repr(self) -> str:
        return f"{self.p}"


class _Elementwise(Module):
    """An activation without hyper-parameters: ``forward`` is its ``nn.functional`` function."""

    _function: Callable[[Any], Any]

    def forward(self, x: Any) -> Any:
        return self._function(x)


class ReLU(_Elementwise):
    """``max(x, 0)`` elementwise; any shape."""

    _function = staticmethod(F.relu)


class LeakyReLU(Module):
    """``x if x > 0 else negative_slope * x`` elementwise; any shape."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Any) -> Any:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"{self.negative_slope}"


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))`` elementwise; any shape."""

    _function = staticmethod(F.sigmoid)


class Tanh(_Elementwise):
    """``tanh(x)`` elementwise; any shape."""

    _function = staticmethod(F.tanh)


class GELU(Module):
    """Gaussian error linear unit, exact (``approximate="none"``) or tanh-approximated; any shape."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else f'approximate="{self.approximate}"'


class ELU(Module):
    """``x if x > 0 else alpha * (exp(x) - 1)`` elementwise; any shape."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Any) -> Any:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return "" if self.alpha == 1.0 else f"alpha={self.alpha}"


class Softplus(Module):
    """``log1p(exp(beta x)) / beta``, linear where ``beta x > threshold``; any shape."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"Softplus: beta must be > 0, got {beta!r}")
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, x: Any) -> Any:
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        parts = ([f"beta={self.beta}"] if self.beta != 1.0 else []) + (
            [f"threshold={self.threshold}"] if self.threshold != 20.0 else [])
        return ", ".join(parts)


class Softmax(Module):
    """Softmax along ``dim`` (default the last axis)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = int(dim)

    def forward(self, x: Any) -> Any:
        return F.softmax(x, axis=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """Log-softmax along ``dim`` (default the last axis)."""

    def forward(self, x: Any) -> Any:
        return F.log_softmax(x, axis=self.dim)


class Sequential(Module):
    """Layers applied in order (Flux's ``Chain``); indexable, sliceable, iterable.

    Parameters
    ----------
    *layers : Module
        Named ``"0"``, ``"1"``, ... (so parameters are ``0.weight``), or pass
        one dict of name -> Module to choose the names.

    Examples
    --------
    >>> model = Sequential(Linear(2, 8), ReLU(), Linear(8, 1))
    >>> model[0], model[1:], len(model)
    """

    def __init__(self, *layers: Module | dict[str, Module]) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (dict, OrderedDict)):
            items = list(layers[0].items())
        else:
            items = [(str(i), layer) for i, layer in enumerate(layers)]
        for name, layer in items:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {name} must be a Module, got {type(layer).__name__}")
            setattr(self, name, layer)

    def forward(self, x: Any) -> Any:
        for layer in self._modules.values():
            x = layer(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Module:
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Sequential indices must be ints or slices, got {type(index).__name__}")
        if not -len(layers) <= index < len(layers):
            raise IndexError(f"Sequential index {index} out of range for {len(layers)} layers")
        return layers[index]

    def append(self, layer: Module) -> Sequential:
        """Add ``layer`` at the end (named by its position); returns self."""
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(layer).__name__}")
        setattr(self, str(len(self._modules)), layer)
        return self


Chain = Sequential
