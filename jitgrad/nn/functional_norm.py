"""Normalisation in the functional API: ``batch_norm``, ``layer_norm``, ``group_norm``, ``local_response_norm``
(PyTorch's signatures).

Re-exported by :mod:`jitgrad.nn.functional`. ``batch_norm`` and ``layer_norm``
are one autograd op each over the fused kernels; ``group_norm`` reuses the
layer-norm op on an ``(N, G, C/G * H * W)`` view and applies its per-channel
affine with broadcast arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad._checks import check_real, positive_int
from jitgrad.autograd.backend import backend_for
from jitgrad.autograd.ops_norm import BatchNorm, LayerNorm, LocalResponseNorm
from jitgrad.autograd.tensor import Tensor

__all__ = ["batch_norm", "layer_norm", "group_norm", "local_response_norm"]


def _input(fn: str, x: Any) -> Tensor:
    # functional's one Tensor-or-array check (imported here: functional imports this module at its end).
    from jitgrad.nn.functional import _as_tensor

    return _as_tensor(x, "input", fn)


def _affine(fn: str, name: str, value: Any, x: Tensor) -> Tensor | None:
    """A weight or bias as a Tensor on ``x``'s device (None stays None)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = Tensor(value)
    if not isinstance(value, Tensor):
        raise TypeError(f"{fn}: {name} must be a Tensor, a NumPy array or None, got {type(value).__name__}")
    if value.device != x.device:
        raise ValueError(f"{fn}: {name} is on {value.device} but input is on {x.device}")
    return value


def _input_affine(fn: str, input: Any, weight: Any, bias: Any) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``input`` as a Tensor, and its optional ``weight`` and ``bias`` as Tensors on its device."""
    x = _input(fn, input)
    return x, _affine(fn, "weight", weight, x), _affine(fn, "bias", bias, x)


def _running(fn: str, name: str, value: Any, x: Tensor) -> Any:
    """The raw array of a running statistic (updated in place), checked to live on ``x``'s device."""
    if value is None:
        return None
    data = value.data if isinstance(value, Tensor) else value
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        raise TypeError(f"{fn}: {name} must be a Tensor, a NumPy array or None, got {type(value).__name__}")
    if backend_for(data) is not backend_for(x.data):
        raise ValueError(f"{fn}: {name} is on {backend_for(data).name} but input is on {x.device}; "
                         f"move the running statistics with the model (module.to(...))")
    return data


def batch_norm(input: Any, running_mean: Any, running_var: Any, weight: Any = None, bias: Any = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over channel axis 1 of ``input`` (N, C) or (N, C, H, W), as ``torch.nn.functional``.

    Parameters
    ----------
    input : Tensor, float32 or float64
    running_mean, running_var : Tensor or NumPy array (C,) of ``input``'s dtype and device, or None.
        With ``training=True`` they are updated in place:
        ``running = (1 - momentum) * running + momentum * batch_stat``, the
        variance unbiased. With ``training=False`` they are what normalises.
    weight, bias : Tensor (C,), optional (gradients flow to them)
    training : bool, default False
        Batch statistics (True) or running statistics (False).
    momentum : float in [0, 1], default 0.1
    eps : float > 0, default 1e-5

    Returns
    -------
    Tensor of ``input``'s shape.
    """
    fn = "batch_norm"
    x, w, b = _input_affine(fn, input, weight, bias)
    if momentum is None:
        raise TypeError("batch_norm: momentum must be a real number; for a cumulative average pass "
                        "1 / num_batches_tracked (BatchNorm layers with momentum=None do this)")
    return BatchNorm.apply(x, w, b, _running(fn, "running_mean", running_mean, x),
                           _running(fn, "running_var", running_var, x), training=training, momentum=momentum, eps=eps)


def layer_norm(input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` dimensions, as ``torch.nn.functional``.

    Parameters
    ----------
    input : Tensor, float32 or float64, its last dimensions equal to ``normalized_shape``
    normalized_shape : int or tuple of ints
    weight, bias : Tensor of shape ``normalized_shape``, optional
    eps : float > 0, default 1e-5

    Returns
    -------
    Tensor of ``input``'s shape.
    """
    x, w, b = _input_affine("layer_norm", input, weight, bias)
    return LayerNorm.apply(x, w, b, normalized_shape=normalized_shape, eps=eps)


def group_norm(input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Tensor:
    """Group normalisation: channels split into ``num_groups`` groups, each normalised over (C/G, *spatial).

    Parameters
    ----------
    input : Tensor (N, C, *), float32 or float64
    num_groups : int dividing C
    weight, bias : Tensor (C,), optional per-channel affine
    eps : float > 0, default 1e-5

    Returns
    -------
    Tensor of ``input``'s shape.
    """
    x, w, b = _input_affine("group_norm", input, weight, bias)
    if x.ndim < 2:
        raise ValueError(f"group_norm: input must be at least 2-D (N, C, *), got shape {x.shape}")
    num_groups = positive_int("group_norm", "num_groups", num_groups)
    n, c = x.shape[0], x.shape[1]
    if c % num_groups:
        raise ValueError(f"group_norm: num_groups={num_groups} must divide the {c} channels of input {x.shape}")
    for name, t in (("weight", w), ("bias", b)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"group_norm: {name} must have shape ({c},), got {t.shape}")
    per_group = int(np.prod(x.shape[1:])) // num_groups
    y = LayerNorm.apply(x.reshape(n, num_groups, per_group), None, None, normalized_shape=(per_group,), eps=eps)
    y = y.reshape(x.shape)
    channel_shape = (1, c) + (1,) * (x.ndim - 2)
    if w is not None:
        y = y * w.reshape(channel_shape)
    if b is not None:
        y = y + b.reshape(channel_shape)
    return y


def local_response_norm(input: Any, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """Local response normalisation across channels, as ``torch.nn.functional.local_response_norm``.

    ``y = x * (k + alpha / size * sum of x ** 2 over size neighbouring channels) ** -beta``,
    the window ``c - size // 2 .. c + (size - 1) // 2`` (PyTorch's placement; ONNX's ``LRN``
    differs for an even ``size``, see :func:`jitgrad.kernels.reference.lrn`).

    Parameters
    ----------
    input : Tensor (N, C, *), at least 3-D, float32 or float64
    size : int >= 1, channels in the window
    alpha, beta, k : float
        ``alpha`` is divided by ``size``.

    Returns
    -------
    Tensor of ``input``'s shape.
    """
    x = _input("local_response_norm", input)
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: input must be at least 3-D (N, C, *), got shape {x.shape}")
    size = positive_int("local_response_norm", "size", size)
    for name, v in (("alpha", alpha), ("beta", beta), ("k", k)):
        check_real("local_response_norm", name, v, finite=True, what="a finite real number")
    return LocalResponseNorm.apply(x, size=int(size), alpha=alpha, beta=beta, k=k, before=int(size) // 2)
