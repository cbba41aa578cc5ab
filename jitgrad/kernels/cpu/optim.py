"""CPU fused optimizer updates: one Numba pass over each parameter, in place.

A fused kernel reads ``param``, ``grad`` and the optimizer state once and
writes them once, where the NumPy reference makes a temporary per operation.
The arrays are flattened (free for contiguous arrays: one signature per dtype
for every rank) and ``prange`` runs over elements, which Numba splits into one
contiguous block per thread (disjoint writes). Each kernel has a serial twin
(the same loop with ``range``) for parameters below ``_PARALLEL_MIN_SIZE``.
Hyper-parameters are cast to the parameter's dtype, as PyTorch computes a
float32 step in float32.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._elements import adam_element, sgd_element
from jitgrad.kernels.reference.optim import (
    _adam_kernel_scalars,
    _check_adam,
    _check_sgd,
)

from ._jit import FASTMATH, PRANGE_ONLY, njit

__all__: list[str] = kernel_names("optim")  # the one list: kernels/_constants.py

# ``error_model="numpy"`` everywhere: a division by zero gives inf/NaN as in the NumPy reference, and
# no zero check per element keeps the loops vectorised. No ``reassoc``: with it LLVM rewrites
# ``b1 * m + (1 - b1) * g`` as ``g + b1 * (m - g)``, which turns an infinite gradient into NaN
# moments where the reference keeps them infinite. The updates are elementwise (no reduction to
# reorder), so the flag buys no speed here.
_FASTMATH = set(FASTMATH) - {"reassoc"}


# One element function per optimizer (kernels/_elements.py, shared with the CUDA kernels);
# the parallel driver and its serial twin only differ in the loop.
_sgd_element = njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")(sgd_element)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _sgd_update_kernel(param, grad, momentum_buf, lr, momentum, nesterov, weight_decay):
    use_momentum = momentum != 0
    for i in prange(param.size):
        _sgd_element(param, grad, momentum_buf, i, lr, momentum, nesterov, weight_decay, use_momentum)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _sgd_update_kernel_serial(param, grad, momentum_buf, lr, momentum, nesterov, weight_decay):
    use_momentum = momentum != 0
    for i in range(param.size):
        _sgd_element(param, grad, momentum_buf, i, lr, momentum, nesterov, weight_decay, use_momentum)


_adam_element = njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")(adam_element)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _adam_update_kernel(param, grad, exp_avg, exp_avg_sq, step_size, bias_correction2_sqrt, beta1, beta2, eps,
                        decay, decoupled):
    for i in prange(param.size):
        _adam_element(param, grad, exp_avg, exp_avg_sq, i, step_size, bias_correction2_sqrt, beta1, beta2, eps,
                      decay, decoupled)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _adam_update_kernel_serial(param, grad, exp_avg, exp_avg_sq, step_size, bias_correction2_sqrt, beta1,
                               beta2, eps, decay, decoupled):
    for i in range(param.size):
        _adam_element(param, grad, exp_avg, exp_avg_sq, i, step_size, bias_correction2_sqrt, beta1, beta2, eps,
                      decay, decoupled)


#: Below this many elements the serial twin of each update runs. Both loops vectorise (with
#: ``error_model="numpy"``: Numba's default Python model checks every division for a zero and kept
#: the loop scalar, 111 us for Adam on LeNet-5's fc1 weight, 30,720 float32 values; vectorised
#: 13 us on the 2-core EPYC). Waking the pool's second thread costs a few us on bare metal and
#: ~100 us on an idle VM (bench/omp_wait.py): two threads pay off only where a pass leaves the
#: caches (4 arrays, 28 bytes an element: 128k elements are 3.6 MB).
_PARALLEL_MIN_SIZE = 1 << 17


def sgd_update(param: np.ndarray, grad: np.ndarray, momentum_buf: np.ndarray | None = None, *, lr: float,
               momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
    lr, momentum, nesterov, weight_decay = _check_sgd(param, grad, momentum_buf, lr, momentum, nesterov,
                                                      weight_decay)
    t = param.dtype.type
    # Without momentum the kernel never touches the buffer: an empty one keeps a single signature.
    buf = np.empty(0, dtype=param.dtype) if momentum_buf is None else momentum_buf.reshape(-1)
    kernel = _sgd_update_kernel if param.size >= _PARALLEL_MIN_SIZE else _sgd_update_kernel_serial
    kernel(param.reshape(-1), grad.reshape(-1), buf, t(lr), t(momentum), nesterov, t(weight_decay))


def adam_update(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, *, step: int,
                lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                weight_decay: float = 0.0, decoupled_weight_decay: bool = False) -> None:
    step, lr, beta1, beta2, eps, weight_decay, decoupled = _check_adam(
        param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay)
    kernel = _adam_update_kernel if param.size >= _PARALLEL_MIN_SIZE else _adam_update_kernel_serial
    kernel(param.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1),
           *_adam_kernel_scalars(param.dtype, step, lr, beta1, beta2, eps, weight_decay, decoupled), decoupled)
