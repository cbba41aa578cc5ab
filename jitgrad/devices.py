"""Flux-style device movers: ``jitgrad.gpu(x)`` and ``jitgrad.cpu(x)``.

They accept a Tensor, a Module, a NumPy array, or any (nested) tuple, list
or dict of them, and return the same structure with every tensor on the
device, so ``model, x, y = jitgrad.gpu((model, x, y))`` moves a whole step's
worth of objects. Anything else (numbers, strings, None) passes through.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["gpu", "cpu", "to_device"]


def to_device(obj: Any, device: str) -> Any:
    """``obj`` with every Tensor, Module and NumPy array in it moved to ``device``.

    Modules move in place (``Module.to``) and are returned; Tensors are
    copied (``Tensor.to``, recorded by autograd); NumPy arrays become Tensors
    on ``device``, except that ``cpu`` leaves them as they are (they already
    live on the host).
    """
    from jitgrad.autograd.tensor import Tensor
    from jitgrad.nn.module import Module

    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, Module):
        return obj.to(device)
    if isinstance(obj, np.ndarray):
        return obj if device == "cpu" else Tensor(obj).to(device)
    if isinstance(obj, tuple):
        moved = [to_device(o, device) for o in obj]
        return type(obj)(*moved) if hasattr(obj, "_fields") else tuple(moved)  # namedtuples keep their type
    if isinstance(obj, list):
        return [to_device(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def gpu(obj: Any) -> Any:
    """``obj`` on the GPU (see :func:`to_device`); ``RuntimeError`` when there is none."""
    return to_device(obj, "cuda")


def cpu(obj: Any) -> Any:
    """``obj`` on the CPU (see :func:`to_device`)."""
    return to_device(obj, "cpu")
