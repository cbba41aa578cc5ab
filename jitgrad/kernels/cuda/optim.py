"""CUDA fused optimizer updates (PyTorch's SGD with dampening 0, Adam, AdamW), in place.

One grid-stride kernel per optimizer reads each parameter's state once and
writes it once: a whole step is one launch per parameter tensor, with the
step-dependent scalars (bias corrections) computed on the host in float64.
"""

from __future__ import annotations

import math
from typing import Any

from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.reference.optim import _adam_kernel_scalars, _check_adam, _check_sgd

__all__: list[str] = kernel_names("optim")  # the one list: kernels/_constants.py


@cuda.jit
def _sgd_kernel(param, grad, momentum_buf, lr, momentum, nesterov, weight_decay):
    use_momentum = momentum != param.dtype.type(0)
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] + weight_decay * param[i]
        if use_momentum:
            buf = momentum * momentum_buf[i] + g
            momentum_buf[i] = buf
            g = g + momentum * buf if nesterov else buf
        param[i] -= lr * g


@cuda.jit
def _adam_kernel(param, grad, exp_avg, exp_avg_sq, step_size, bias_correction2_sqrt, beta1, beta2, eps,
                 decay, decoupled):
    # decay: the AdamW factor (1 - lr wd) when ``decoupled``, else the L2 coefficient wd (as the CPU kernel).
    one = param.dtype.type(1)
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        p = param[i]
        g = grad[i]
        if decoupled:
            p = p * decay
        else:
            g = g + decay * p
        m = beta1 * exp_avg[i] + (one - beta1) * g
        v = beta2 * exp_avg_sq[i] + (one - beta2) * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] = p - step_size * m / (math.sqrt(v) / bias_correction2_sqrt + eps)


def sgd_update(param: Any, grad: Any, momentum_buf: Any = None, *, lr: float, momentum: float = 0.0,
               nesterov: bool = False, weight_decay: float = 0.0) -> None:
    lr, momentum, nesterov, weight_decay = _check_sgd(param, grad, momentum_buf, lr, momentum, nesterov,
                                                      weight_decay)
    if param.size == 0:
        return
    flat_param = _launch.flat(param)
    # Without momentum the buffer is never touched; param stands in so the kernel has one signature.
    buf = _launch.flat(momentum_buf) if momentum_buf is not None else flat_param
    t = param.dtype.type
    blocks, threads = _launch.grid_1d(param.size)
    _sgd_kernel[blocks, threads](flat_param, _launch.flat(grad), buf, t(lr), t(momentum), nesterov, t(weight_decay))


def adam_update(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, *, step: int, lr: float,
                beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                decoupled_weight_decay: bool = False) -> None:
    step, lr, beta1, beta2, eps, weight_decay, decoupled = _check_adam(
        param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay)
    if param.size == 0:
        return
    blocks, threads = _launch.grid_1d(param.size)
    _adam_kernel[blocks, threads](_launch.flat(param), _launch.flat(grad), _launch.flat(exp_avg),
                                  _launch.flat(exp_avg_sq),
                                  *_adam_kernel_scalars(param.dtype, step, lr, beta1, beta2, eps, weight_decay,
                                                        decoupled), decoupled)
