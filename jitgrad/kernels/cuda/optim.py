"""CUDA fused optimizer updates (PyTorch's SGD with dampening 0, Adam, AdamW), in place.

One grid-stride kernel per optimizer reads each parameter's state once and
writes it once: a whole step is one launch per parameter tensor, with the
step-dependent scalars (bias corrections) computed on the host in float64.
"""

from __future__ import annotations

from typing import Any

from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._elements import adam_element, sgd_element
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.reference.optim import _adam_kernel_scalars, _check_adam, _check_sgd

__all__: list[str] = kernel_names("optim")  # the one list: kernels/_constants.py


# The element updates are the CPU kernels' (kernels/_elements.py): one arithmetic on both backends.
_sgd_element = cuda.jit(device=True)(sgd_element)
_adam_element = cuda.jit(device=True)(adam_element)


@cuda.jit
def _sgd_kernel(param, grad, momentum_buf, lr, momentum, nesterov, weight_decay):
    use_momentum = momentum != param.dtype.type(0)
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        _sgd_element(param, grad, momentum_buf, i, lr, momentum, nesterov, weight_decay, use_momentum)


@cuda.jit
def _adam_kernel(param, grad, exp_avg, exp_avg_sq, step_size, bias_correction2_sqrt, beta1, beta2, eps,
                 decay, decoupled):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        _adam_element(param, grad, exp_avg, exp_avg_sq, i, step_size, bias_correction2_sqrt, beta1, beta2, eps,
                      decay, decoupled)


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
