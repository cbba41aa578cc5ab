"""CUDA fused kernels: the tiled GEMM / implicit-GEMM convolution, then one elementwise epilogue kernel.

Unlike the CPU backend, the bias and activation are not applied in the GEMM's
store: ``linear`` is the ``matmul`` kernel followed by ``_bias_activation_kernel``
(one grid-stride pass over the output), ``conv2d_activation`` the ``conv2d``
kernel (bias in its store already) followed by the same pass. The arithmetic
and its order are the reference's. ``bias_activation_backward`` is an
elementwise mask kernel and a per-channel block reduction (deterministic).
"""

from __future__ import annotations

from typing import Any

from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda._launch import MAX_THREADS_PER_BLOCK, block_sum
from jitgrad.kernels.cuda.conv import conv2d
from jitgrad.kernels.cuda.matmul import matmul
from jitgrad.kernels.reference.fused import (
    check_bias_activation_backward_args,
    check_conv2d_activation_args,
    check_linear_args,
)

__all__: list[str] = kernel_names("fused")  # the one list: kernels/_constants.py


@cuda.jit
def _bias_activation_kernel(y, bias, has_bias, relu, channels, inner):
    # y flat, viewed (N, channels, inner): element i is in channel (i // inner) % channels.
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        v = y[i]
        if has_bias:
            v += bias[(i // inner) % channels]
        if relu and v < 0:
            v = y.dtype.type(0)  # NaN fails the test and passes through, as np.maximum
        y[i] = v


@cuda.jit
def _activation_mask_kernel(g, y, relu, out):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        v = g[i]
        if relu and not y[i] > 0:
            v = y.dtype.type(0)
        out[i] = v


@cuda.jit
def _channel_sum_kernel(a, n, channels, inner, out):
    # One block per channel: a tree sum over its n * inner elements of ``a`` (flat, (N, channels, inner)).
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, a.dtype)
    count = n * inner
    for ch in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        acc = a.dtype.type(0)
        for e in range(cuda.threadIdx.x, count, cuda.blockDim.x):
            img = e // inner
            acc += a[(img * channels + ch) * inner + e - img * inner]
        total = block_sum(buf, acc)
        if cuda.threadIdx.x == 0:
            out[ch] = total


def _epilogue(y: Any, b: Any, code: int, channels: int, inner: int) -> None:
    """``y = act(y + b[channel])`` in place (no launch when there is nothing to do)."""
    if y.size == 0 or (b is None and code == 0):
        return
    blocks, threads = _launch.grid_1d(y.size)
    bias = _launch.flat(y)[:1] if b is None else b
    _bias_activation_kernel[blocks, threads](_launch.flat(y), bias, b is not None, code != 0, channels, inner)


def linear(x: Any, w: Any, b: Any = None, *, activation: str = "none", out: Any = None) -> Any:
    m, n, code = check_linear_args(x, w, b, activation, out)
    if out is not None and any(a is not None and _launch.overlaps(out, a) for a in (x, w, b)):
        out.copy_to_device(linear(x, w, b, activation=activation))
        return out
    out = matmul(x, w, trans_b=True, out=out)
    _epilogue(out, b, code, n, 1)
    return out


def conv2d_activation(x: Any, w: Any, b: Any = None, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                      out: Any = None, groups: int = 1, activation: str = "none") -> Any:
    d, code = check_conv2d_activation_args(x, w, b, stride, padding, dilation, out, groups, activation)
    out = conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, out=out, groups=groups)
    _epilogue(out, None, code, d.c_out, d.h_out * d.w_out)
    return out


def bias_activation_backward(grad_out: Any, y: Any, *, activation: str = "relu") -> tuple[Any, Any]:
    code = check_bias_activation_backward_args(grad_out, y, activation)
    n, channels = y.shape[0], y.shape[1]
    inner = y.size // (n * channels) if n * channels else 0
    grad_pre = _launch.empty(y.shape, y.dtype)
    grad_bias = _launch.empty((channels,), y.dtype)
    if y.size:
        blocks, threads = _launch.grid_1d(y.size)
        _activation_mask_kernel[blocks, threads](_launch.flat(grad_out), _launch.flat(y), code != 0,
                                                 _launch.flat(grad_pre))
    if channels:
        blocks, threads = _launch.grid_rows(channels)
        _channel_sum_kernel[blocks, threads](_launch.flat(grad_pre), n, channels, inner, grad_bias)
    return grad_pre, grad_bias
