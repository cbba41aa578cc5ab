"""Gradient clipping: ``clip_grad_norm_`` and ``clip_grad_value_`` (PyTorch's ``torch.nn.utils``).

Both work in place on ``.grad`` of the given parameters, on any device, through
the parameters' backend (no host round trip on the GPU except the returned norm).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from jitgrad._checks import check_real
from jitgrad.autograd.backend import backend_for
from jitgrad.autograd.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Any) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params = list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"parameters must be Tensors, got {type(p).__name__}")
    return [p for p in params if p.grad is not None]


def _grad_array(p: Tensor) -> Any:
    g = p.grad
    return g.data if isinstance(g, Tensor) else g


def _set_grad(p: Tensor, value: Any) -> None:
    if isinstance(p.grad, Tensor):
        p.grad.data = value
    else:
        p.grad = value


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so that their joint ``norm_type``-norm is at most ``max_norm``.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensors (those without ``.grad`` are skipped)
    max_norm : float, non-negative
    norm_type : float, ``p`` of the p-norm (``inf`` for the largest absolute value)
    error_if_nonfinite : raise ``RuntimeError`` when the total norm is NaN or inf

    Returns
    -------
    float
        The total norm of the gradients before clipping (as PyTorch).
    """
    check_real("clip_grad_norm_", "max_norm", max_norm, minimum=0.0, allow_nan=True, what="a non-negative number")
    check_real("clip_grad_norm_", "norm_type", norm_type, minimum=0.0, min_open=True,
               what="a positive number or inf")
    params = _grads(parameters)
    if not params:
        return 0.0
    norm_type = float(norm_type)
    parts = []
    for p in params:
        xp = backend_for(_grad_array(p))
        a = xp.abs(_grad_array(p))
        if math.isinf(norm_type):
            parts.append(float(xp.to_numpy(xp.max(a))))
        else:
            parts.append(float(xp.to_numpy(xp.sum(xp.power(a, norm_type)))))
    total = max(parts) if math.isinf(norm_type) else sum(parts) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}; "
                           "pass error_if_nonfinite=False to clip anyway")
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1:
        for p in params:
            g = _grad_array(p)
            xp = backend_for(g)
            _set_grad(p, xp.multiply(g, np.asarray(coef, dtype=g.dtype)[()]))
    return total


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]`` in place of ``.grad``."""
    check_real("clip_grad_value_", "clip_value", clip_value, minimum=0.0, allow_nan=True,
               what="a non-negative number")
    for p in _grads(parameters):
        g = _grad_array(p)
        xp = backend_for(g)
        c = np.asarray(clip_value, dtype=g.dtype)[()]
        clipped = xp.negative(xp.maximum(xp.negative(xp.maximum(g, -c)), -c))
        _set_grad(p, clipped)
