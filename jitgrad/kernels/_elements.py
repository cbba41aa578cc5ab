"""Element functions written once for both fast backends (the fused optimizer updates).

Plain Python functions, compiled twice: the CPU kernels wrap them in
``@njit(inline="always")`` (inside their ``prange`` and serial loops) and the
CUDA kernels in ``@cuda.jit(device=True)`` (inside their grid-stride loops), so
the CPU and the GPU run the same arithmetic, the reference's formula, in the
arrays' dtype. Only what both Numba targets compile goes here: scalar
arithmetic, array element reads and writes, and ``math``.
"""

from __future__ import annotations

import math


def sgd_element(param, grad, momentum_buf, i, lr, momentum, nesterov, weight_decay, use_momentum):
    """PyTorch's SGD (dampening 0) on ``param[i]``; ``momentum_buf[i]`` is read only with momentum."""
    g = grad[i] + weight_decay * param[i]
    if use_momentum:
        buf = momentum * momentum_buf[i] + g
        momentum_buf[i] = buf
        g = g + momentum * buf if nesterov else buf
    param[i] -= lr * g


def adam_element(param, grad, exp_avg, exp_avg_sq, i, step_size, bias_correction2_sqrt, beta1, beta2, eps,
                 decay, decoupled):
    """Adam/AdamW on ``param[i]`` with the host-computed scalars of ``reference.optim._adam_kernel_scalars``.

    ``decay`` is the AdamW factor ``1 - lr wd`` when ``decoupled``, else the L2 coefficient ``wd``.
    """
    one = param.dtype.type(1)
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

