"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``, ``GroupNorm``, ``LocalResponseNorm``, as
PyTorch.

Parameters and buffers carry PyTorch's names (``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``) and initial
values (weight 1, bias 0, running mean 0, running variance 1), so a PyTorch
``state_dict`` loads by name. BatchNorm uses batch statistics in training
mode (updating its running statistics) and its running statistics after
``eval()``; with ``track_running_stats=False`` it has no running statistics
and always uses the batch's, as PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad._checks import check_real
from jitgrad.autograd.backend import backend_for
from jitgrad.autograd.tensor import Tensor
from jitgrad.nn import functional as F
from jitgrad.nn.layers import _dtype, _positive_int
from jitgrad.nn.module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "LocalResponseNorm"]


def _eps(owner: str, eps: Any) -> float:
    return check_real(owner, "eps", eps, minimum=0.0, min_open=True, what="a positive number")


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d; subclasses set the accepted input ranks."""

    _ndims: tuple[int, ...] = ()
    _layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, dtype: Any = None) -> None:
        super().__init__()
        owner = type(self).__name__
        self.num_features = _positive_int(owner, "num_features", num_features)
        self.eps = _eps(owner, eps)
        self.momentum = None if momentum is None else check_real(
            owner, "momentum", momentum, minimum=0.0, maximum=1.0, what="in [0, 1] or None (cumulative average)")
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dt = _dtype(owner, dtype)
        c = self.num_features
        self.weight = Parameter(np.ones(c, dt)) if affine else None
        self.bias = Parameter(np.zeros(c, dt)) if affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(c, dt))
            self.register_buffer("running_var", np.ones(c, dt))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked (in place)."""
        if self.track_running_stats:
            for buf, value in ((self.running_mean, 0), (self.running_var, 1), (self.num_batches_tracked, 0)):
                host = np.full(buf.shape, value, dtype=buf.dtype)
                if isinstance(buf.data, np.ndarray):
                    buf.data[...] = host
                else:
                    buf.data.copy_to_device(host)

    def _count_batch(self) -> int | None:
        """Add one to ``num_batches_tracked``; return the new count when it is on the host (None on a device)."""
        buf = self.num_batches_tracked
        if isinstance(buf.data, np.ndarray):
            buf.data += 1
            return int(buf.data)
        # On the GPU the count stays there (a device add, no host round trip per step).
        buf.data = backend_for(buf.data).add(buf.data, 1)
        return None

    def forward(self, x: Any) -> Tensor:
        if x.ndim not in self._ndims:
            raise ValueError(f"{self!r} expected input {self._layout}, got {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{self!r} expected {self.num_features} channels (axis 1), got input of shape "
                             f"{tuple(x.shape)}")
        if self.track_running_stats and (self.running_mean is None or self.running_var is None):
            missing = "running_mean" if self.running_mean is None else "running_var"
            raise RuntimeError(f"{self!r} has track_running_stats=True but its {missing} buffer is None; "
                               "load a state dict with running statistics or call reset_running_stats() after "
                               "registering them")
        momentum = self.momentum
        if self.training and self.track_running_stats:
            count = self._count_batch()
            if momentum is None:  # cumulative average: needs the count on the host
                momentum = 1.0 / (count if count is not None else int(self.num_batches_tracked.numpy()))
        shape = tuple(x.shape)
        if x.ndim == 3:  # (N, C, L) is (N, C, L, 1) for the kernel: a free reshape
            x = x.reshape(shape + (1,))
        y = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         training=self.training or not self.track_running_stats,
                         momentum=momentum if momentum is not None else 0.0, eps=self.eps)
        return y.reshape(shape) if len(shape) == 3 else y

    def extra_repr(self) -> str:
        parts = [str(self.num_features)]
        if self.eps != 1e-5:
            parts.append(f"eps={self.eps}")
        if self.momentum != 0.1:
            parts.append(f"momentum={self.momentum}")
        if not self.affine:
            parts.append("affine=False")
        if not self.track_running_stats:
            parts.append("track_running_stats=False")
        return ", ".join(parts)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``(N, C)`` or ``(N, C, L)`` input over the batch (and length), per channel.

    Parameters
    ----------
    num_features : int
        C.
    eps : float, default 1e-5
    momentum : float or None, default 0.1
        Weight of each new batch in the running statistics; None for a
        cumulative average (``1 / num_batches_tracked``).
    affine : bool, default True
        Learnable ``weight`` (1) and ``bias`` (0).
    track_running_stats : bool, default True
        Keep ``running_mean``, ``running_var`` and ``num_batches_tracked``
        buffers and use them in eval mode; False: batch statistics always.
    dtype : float32 or float64, default ``config.default_dtype``
    """

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of ``(N, C, H, W)`` input over N, H and W, per channel.

    Parameters are those of :class:`BatchNorm1d`.
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"


class LayerNorm(Module):
    """Layer normalisation over the trailing ``normalized_shape`` dimensions of each sample.

    Parameters
    ----------
    normalized_shape : int or tuple of ints
    eps : float, default 1e-5
    elementwise_affine : bool, default True
        Learnable ``weight`` (1) and ``bias`` (0) of shape ``normalized_shape``.
    bias : bool, default True
        With ``elementwise_affine``, whether there is a bias.
    dtype : float32 or float64, default ``config.default_dtype``
    """

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 *, dtype: Any = None) -> None:
        super().__init__()
        owner = "LayerNorm"
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        self.normalized_shape = tuple(_positive_int(owner, "normalized_shape", d) for d in shape)
        if not self.normalized_shape:
            raise ValueError(f"{owner}: normalized_shape must not be empty")
        self.eps = _eps(owner, eps)
        self.elementwise_affine = bool(elementwise_affine)
        dt = _dtype(owner, dtype)
        self.weight = Parameter(np.ones(self.normalized_shape, dt)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dt)) if elementwise_affine and bias else None

    def forward(self, x: Any) -> Tensor:
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(f"{self!r} expected input (..., {', '.join(map(str, self.normalized_shape))}), "
                             f"got {tuple(x.shape)}")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        shape = self.normalized_shape[0] if len(self.normalized_shape) == 1 else self.normalized_shape
        return f"{shape}" + ("" if self.elementwise_affine else ", elementwise_affine=False")


class GroupNorm(Module):
    """Group normalisation: ``num_channels`` split into ``num_groups``, each normalised per sample.

    Parameters
    ----------
    num_groups : int dividing ``num_channels``
    num_channels : int
    eps : float, default 1e-5
    affine : bool, default True
        Learnable per-channel ``weight`` (1) and ``bias`` (0).
    dtype : float32 or float64, default ``config.default_dtype``
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, *,
                 dtype: Any = None) -> None:
        super().__init__()
        owner = "GroupNorm"
        self.num_groups = _positive_int(owner, "num_groups", num_groups)
        self.num_channels = _positive_int(owner, "num_channels", num_channels)
        if self.num_channels % self.num_groups:
            raise ValueError(f"{owner}: num_groups={num_groups} must divide num_channels={num_channels}")
        self.eps = _eps(owner, eps)
        self.affine = bool(affine)
        dt = _dtype(owner, dtype)
        self.weight = Parameter(np.ones(self.num_channels, dt)) if affine else None
        self.bias = Parameter(np.zeros(self.num_channels, dt)) if affine else None

    def forward(self, x: Any) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"{self!r} expected input (N, {self.num_channels}, *), got {tuple(x.shape)}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}" + ("" if self.affine else ", affine=False")


class LocalResponseNorm(Module):
    """Local response normalisation across channels (AlexNet's), as ``torch.nn.LocalResponseNorm``.

    ``y = x * (k + alpha / size * sum of x ** 2 over size neighbouring channels) ** -beta``;
    no parameters. See :func:`jitgrad.nn.functional.local_response_norm`.

    Parameters
    ----------
    size : int, channels in the window
    alpha : float, default 1e-4
    beta : float, default 0.75
    k : float, default 1.0
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size = _positive_int("LocalResponseNorm", "size", size)
        self.alpha, self.beta, self.k = alpha, beta, k

    def forward(self, x: Any) -> Tensor:
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
