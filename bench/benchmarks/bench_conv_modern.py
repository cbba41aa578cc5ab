"""Grouped/depthwise convolution, transposed convolution and adaptive pooling, forward and backward.

Self-contained cases (the shapes of a MobileNet block, a U-Net up-sampler and a ResNet head at
MNIST-like sizes); backends ``numpy`` (the reference), ``cpu`` and ``cuda`` as in the rest of the
suite. ``setup`` builds seeded inputs and calls the kernel once, so compilation is never timed.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .common import BACKENDS, _synchronized, _to_device, kernel_function

# label: (x shape, weight shape, hyper-parameters)
CONV_SHAPES = {
    "depthwise-64x32x28x28-3x3": ((64, 32, 28, 28), (32, 1, 3, 3), dict(padding=1, groups=32)),
    "depthwise-128x64x14x14-3x3-s2": ((128, 64, 14, 14), (64, 1, 3, 3), dict(stride=2, padding=1, groups=64)),
    "grouped4-64x32x14x14-3x3": ((64, 32, 14, 14), (32, 8, 3, 3), dict(padding=1, groups=4)),
}
TRANSPOSE_SHAPES = {
    "up2x-64x32x7x7-k2s2": ((64, 32, 7, 7), (32, 16, 2, 2), dict(stride=2)),
    "up2x-64x16x14x14-k3s2": ((64, 16, 14, 14), (16, 8, 3, 3), dict(stride=2, padding=1, output_padding=1)),
}
POOL_SHAPES = {
    "global-128x64x7x7": ((128, 64, 7, 7), 1),
    "to-3x3-128x32x14x14": ((128, 32, 14, 14), 3),
}


def _call(backend: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], None]:
    fn = kernel_function(backend, name)
    if backend == "cuda":
        args = tuple(_to_device(a) for a in args)
    call = _synchronized(lambda: fn(*args, **kwargs)) if backend == "cuda" else (lambda: fn(*args, **kwargs))
    call()
    return call


def _rand(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def conv_case(kernel: str, shape: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Seeded NumPy ``(args, kwargs)`` of a grouped-conv kernel (also used by ``bench/report_modern.py``)."""
    xs, ws, hp = CONV_SHAPES[shape]
    x, w = _rand(xs, 0), _rand(ws, 1)
    y = kernel_function("numpy", "conv2d")(x, w, **hp)
    g = _rand(y.shape, 2)
    return {"conv2d": ((x, w), hp), "conv2d_backward_input": ((g, w), dict(hp, input_shape=xs)),
            "conv2d_backward_weight": ((x, g), dict(hp, weight_shape=ws))}[kernel]


def transpose_case(kernel: str, shape: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Seeded NumPy ``(args, kwargs)`` of a transposed-conv kernel."""
    xs, ws, hp = TRANSPOSE_SHAPES[shape]
    x, w = _rand(xs, 0), _rand(ws, 1)
    y = kernel_function("numpy", "conv_transpose2d")(x, w, **hp)
    g = _rand(y.shape, 2)
    return {"conv_transpose2d": ((x, w), hp),
            "conv_transpose2d_backward_input": ((g, w), dict(hp, input_shape=xs)),
            "conv_transpose2d_backward_weight": ((x, g), dict(hp, weight_shape=ws))}[kernel]


def pool_case(kernel: str, shape: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Seeded NumPy ``(args, kwargs)`` of an adaptive-pooling kernel."""
    xs, size = POOL_SHAPES[shape]
    x = _rand(xs, 0)
    y, argmax = kernel_function("numpy", "adaptive_max_pool2d")(x, output_size=size)
    g = _rand(y.shape, 1)
    return {"adaptive_avg_pool2d": ((x,), dict(output_size=size)),
            "adaptive_avg_pool2d_backward": ((g,), dict(input_shape=xs)),
            "adaptive_max_pool2d": ((x,), dict(output_size=size)),
            "adaptive_max_pool2d_backward": ((g, argmax), dict(input_shape=xs))}[kernel]


class GroupedConv2d:
    """``conv2d`` with ``groups`` (depthwise: ``groups == C_in``) and its two backwards."""

    params = [["conv2d", "conv2d_backward_input", "conv2d_backward_weight"], list(CONV_SHAPES), list(BACKENDS)]
    param_names = ["kernel", "shape", "backend"]

    def setup(self, kernel: str, shape: str, backend: str) -> None:
        self.call = _call(backend, kernel, *conv_case(kernel, shape))

    def time_kernel(self, kernel: str, shape: str, backend: str) -> None:
        self.call()


class ConvTranspose2d:
    """``conv_transpose2d`` and its two backwards."""

    params = [["conv_transpose2d", "conv_transpose2d_backward_input", "conv_transpose2d_backward_weight"],
              list(TRANSPOSE_SHAPES), list(BACKENDS)]
    param_names = ["kernel", "shape", "backend"]

    def setup(self, kernel: str, shape: str, backend: str) -> None:
        self.call = _call(backend, kernel, *transpose_case(kernel, shape))

    def time_kernel(self, kernel: str, shape: str, backend: str) -> None:
        self.call()


class AdaptivePooling:
    """Adaptive average (global: the fast path) and max pooling, forward and backward."""

    params = [["adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d",
               "adaptive_max_pool2d_backward"], list(POOL_SHAPES), list(BACKENDS)]
    param_names = ["kernel", "shape", "backend"]

    def setup(self, kernel: str, shape: str, backend: str) -> None:
        self.call = _call(backend, kernel, *pool_case(kernel, shape))

    def time_kernel(self, kernel: str, shape: str, backend: str) -> None:
        self.call()
