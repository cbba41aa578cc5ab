"""NumPy reference fused optimizer updates (SGD with momentum/Nesterov, Adam, AdamW), in place.

The algorithms are PyTorch's (``torch.optim.SGD`` with dampening 0, ``Adam``,
``AdamW``), so a model trained with jitgrad and one trained with PyTorch take
the same steps from the same state. Every array is updated in place; the
functions return None.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._contract import doc_fragments
from jitgrad.kernels._validate import (
    _is_int,
    check_array,
    check_same_dtype,
    check_scalar,
    check_shape,
    check_writeable,
)

__all__: list[str] = kernel_names("optim")  # the one list: kernels/_constants.py


# ----------------------------------------------------------------------------- validation (shared with cpu)

def _check_state(param: Any, **state: Any) -> None:
    """``param`` and every named state array: float, C-contiguous, one dtype, one shape."""
    check_array("param", param)
    for name, a in state.items():
        check_array(name, a)
    check_same_dtype(param=param, **state)
    for name, a in state.items():
        check_shape(name, a, tuple(param.shape))
    # The update writes param and every state array (not the gradient).
    check_writeable("param", param)
    for name, a in state.items():
        if name != "grad":
            check_writeable(name, a)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _check_sgd(param: Any, grad: Any, momentum_buf: Any, lr: Any, momentum: Any, nesterov: Any,
               weight_decay: Any) -> tuple[float, float, bool, float]:
    lr = check_scalar("lr", lr, minimum=0.0)
    momentum = check_scalar("momentum", momentum, minimum=0.0)
    weight_decay = check_scalar("weight_decay", weight_decay, minimum=0.0)
    nesterov = _check_bool("nesterov", nesterov)
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov=True requires momentum > 0, got momentum=0.0")
    if momentum > 0.0 and momentum_buf is None:
        raise ValueError(f"momentum_buf is required when momentum > 0, got momentum={momentum}")
    if momentum_buf is None:
        _check_state(param, grad=grad)
    else:
        _check_state(param, grad=grad, momentum_buf=momentum_buf)
    return lr, momentum, nesterov, weight_decay


def _check_beta(name: str, value: Any) -> float:
    v = check_scalar(name, value, minimum=0.0)
    if v >= 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


def _check_adam(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, step: Any, lr: Any, beta1: Any,
                beta2: Any, eps: Any, weight_decay: Any,
                decoupled_weight_decay: Any) -> tuple[int, float, float, float, float, float, bool]:
    _check_state(param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    if not _is_int(step):
        raise TypeError(f"step must be an int (the 1-based count of this update), got {step!r}")
    if step < 1:
        raise ValueError(f"step must be >= 1 (the 1-based count of this update), got {step}")
    return (int(step), check_scalar("lr", lr, minimum=0.0), _check_beta("beta1", beta1),
            _check_beta("beta2", beta2), check_scalar("eps", eps, minimum=0.0),
            check_scalar("weight_decay", weight_decay, minimum=0.0),
            _check_bool("decoupled_weight_decay", decoupled_weight_decay))


def _adam_scalars(step: int, lr: float, beta1: float, beta2: float) -> tuple[float, float]:
    """PyTorch's ``step_size = lr / (1 - beta1^t)`` and ``sqrt(1 - beta2^t)``, in float64."""
    return lr / (1.0 - beta1 ** step), math.sqrt(1.0 - beta2 ** step)


def _adam_kernel_scalars(dtype: Any, step: int, lr: float, beta1: float, beta2: float, eps: float,
                         weight_decay: float, decoupled: bool) -> tuple:
    """The scalar arguments of every backend's fused Adam kernel, computed once in float64 and cast to ``dtype``.

    ``(step_size, sqrt(1 - beta2^t), beta1, beta2, eps, decay)``, where ``decay`` is the
    AdamW factor ``1 - lr * wd`` when ``decoupled`` and the L2 coefficient ``wd`` otherwise:
    one encoding for the CPU and CUDA kernels, so both take the same float32 steps.
    """
    t = np.dtype(dtype).type
    step_size, bias_correction2_sqrt = _adam_scalars(step, lr, beta1, beta2)
    decay = 1.0 - lr * weight_decay if decoupled else weight_decay
    return t(step_size), t(bias_correction2_sqrt), t(beta1), t(beta2), t(eps), t(decay)


# ----------------------------------------------------------------------------- updates

#: The parameter paragraphs and the Returns section every update kernel's contract shares.
_PARAM_GRAD = """param : ndarray
    float32 or float64, C-contiguous, writeable: updated in place.
grad : ndarray
    ``param``'s shape and dtype."""
_IN_PLACE = """Returns
-------
None
    Everything is written in place."""


@doc_fragments(param_grad=_PARAM_GRAD, in_place=_IN_PLACE)
def sgd_update(param: np.ndarray, grad: np.ndarray, momentum_buf: np.ndarray | None = None, *, lr: float,
               momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
    """One SGD step in place (PyTorch's, dampening 0).

    ``g = grad + weight_decay * param``; with momentum ``buf = momentum * buf + g``
    and ``g = g + momentum * buf`` (Nesterov) or ``g = buf``; ``param -= lr * g``.

    Parameters
    ----------
    {param_grad}
    momentum_buf : ndarray or None
        ``param``'s shape and dtype, updated in place; required when ``momentum > 0``
        (start it at zeros).
    lr, momentum, weight_decay : float
        Learning rate (> 0), momentum and L2 weight decay (>= 0).
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0``).

    {in_place}
    """
    lr, momentum, nesterov, weight_decay = _check_sgd(param, grad, momentum_buf, lr, momentum, nesterov,
                                                      weight_decay)
    t = param.dtype.type
    g = grad + t(weight_decay) * param if weight_decay else grad
    if momentum:
        momentum_buf *= t(momentum)
        momentum_buf += g
        g = g + t(momentum) * momentum_buf if nesterov else momentum_buf
    param -= t(lr) * g


@doc_fragments(param_grad=_PARAM_GRAD, in_place=_IN_PLACE)
def adam_update(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, *, step: int,
                lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                weight_decay: float = 0.0, decoupled_weight_decay: bool = False) -> None:
    """One Adam (or AdamW) step in place, as PyTorch.

    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    ``weight_decay`` adds ``wd * param`` to ``g`` (Adam) or, with
    ``decoupled_weight_decay=True`` (AdamW), first scales ``param *= 1 - lr * wd``.

    Parameters
    ----------
    {param_grad}
    exp_avg, exp_avg_sq : ndarray
        ``m`` and ``v``, ``param``'s shape and dtype, updated in place (start at zeros).
    step : int
        The 1-based number of this update ``t`` (bias correction).
    lr, beta1, beta2, eps, weight_decay : float
        As PyTorch's ``Adam``.
    decoupled_weight_decay : bool, default False
        AdamW's decay instead of L2.

    {in_place}
    """
    step, lr, beta1, beta2, eps, weight_decay, decoupled = _check_adam(
        param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay)
    step_size, bias_correction2_sqrt, beta1, beta2, eps, decay = _adam_kernel_scalars(
        param.dtype, step, lr, beta1, beta2, eps, weight_decay, decoupled)
    one = param.dtype.type(1)
    g = grad
    if weight_decay and decoupled:
        param *= decay
    elif weight_decay:
        g = grad + decay * param
    exp_avg *= beta1
    exp_avg += (one - beta1) * g
    exp_avg_sq *= beta2
    exp_avg_sq += (one - beta2) * g * g
    param -= step_size * exp_avg / (np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps)
