"""NumPy reference batch normalisation and layer normalisation, with their gradients.

Both normalise with the *biased* variance, ``xhat = (x - mean) / sqrt(var + eps)``,
then apply the optional affine ``y = xhat * weight + bias``, as PyTorch. The
forward kernels return the ``mean`` and ``invstd = 1 / sqrt(var + eps)`` they
used; the backward kernels take them back instead of recomputing them.

Batch norm in training mode uses the statistics of the batch (over N, and H, W
for 4-D input) and, when running statistics are given, updates them in place
exactly as PyTorch does::

    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

with ``M = N * H * W`` (the running variance is the *unbiased* one). In
inference mode it normalises with the running statistics and changes nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._validate import check_array, check_same_dtype, check_scalar, check_shape

__all__: list[str] = kernel_names("normalization")  # the one list: kernels/_constants.py


# ----------------------------------------------------------------------------- validation
#
# One check per kernel, shared by the reference, CPU and CUDA wrappers, so every
# backend rejects the same input with the same message.

def _check_channel_vector(name: str, a: Any, x: Any, c: int, *, writeable: bool = False) -> None:
    if a is None:
        return
    check_array(name, a, ndim=1)
    check_same_dtype(x=x, **{name: a})
    check_shape(name, a, (c,))
    if writeable and isinstance(a, np.ndarray) and not a.flags.writeable:
        raise ValueError(f"{name} is read-only; the running statistics are updated in place, "
                         "pass a writeable array")


def _check_batch_norm(x: Any, running_mean: Any, running_var: Any, weight: Any, bias: Any, training: Any,
                      momentum: Any, eps: Any) -> tuple[int, int, int, float, float]:
    """Validate :func:`batch_norm`'s arguments; return ``(N, C, H*W, momentum, eps)``."""
    check_array("x", x)
    if x.ndim not in (2, 4):
        raise ValueError(f"x must be 2-D (N, C) or 4-D (N, C, H, W), got {x.ndim}-D array of shape "
                         f"{tuple(x.shape)}")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool, got {type(training).__name__} {training!r}")
    mom = check_scalar("momentum", momentum, minimum=0.0, maximum=1.0)
    e = check_scalar("eps", eps, minimum=0.0, min_inclusive=False)
    n, c = int(x.shape[0]), int(x.shape[1])
    hw = int(x.shape[2] * x.shape[3]) if x.ndim == 4 else 1
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (or both None), got "
                         f"running_mean={'None' if running_mean is None else 'an array'} and "
                         f"running_var={'None' if running_var is None else 'an array'}")
    _check_channel_vector("running_mean", running_mean, x, c, writeable=bool(training))
    _check_channel_vector("running_var", running_var, x, c, writeable=bool(training))
    _check_channel_vector("weight", weight, x, c)
    _check_channel_vector("bias", bias, x, c)
    if training:
        if n * hw <= 1:
            raise ValueError(f"batch_norm in training mode needs more than 1 value per channel, got x of "
                             f"shape {tuple(x.shape)}")
    elif running_mean is None:
        raise ValueError("batch_norm in inference mode (training=False) needs running_mean and running_var, "
                         "got None")
    return n, c, hw, mom, e


def _check_batch_norm_backward(grad_out: Any, x: Any, weight: Any, save_mean: Any, save_invstd: Any,
                               training: Any) -> tuple[int, int, int]:
    """Validate :func:`batch_norm_backward`'s arguments; return ``(N, C, H*W)``."""
    check_array("x", x)
    if x.ndim not in (2, 4):
        raise ValueError(f"x must be 2-D (N, C) or 4-D (N, C, H, W), got {x.ndim}-D array of shape "
                         f"{tuple(x.shape)}")
    check_array("grad_out", grad_out)
    check_same_dtype(x=x, grad_out=grad_out)
    check_shape("grad_out", grad_out, x.shape)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool, got {type(training).__name__} {training!r}")
    n, c = int(x.shape[0]), int(x.shape[1])
    for name, a in (("weight", weight), ("save_mean", save_mean), ("save_invstd", save_invstd)):
        if a is None and name != "weight":
            raise TypeError(f"{name} must be an array, got None")
        _check_channel_vector(name, a, x, c)
    return n, c, int(x.shape[2] * x.shape[3]) if x.ndim == 4 else 1


def _check_normalized_shape(normalized_shape: Any, x: Any) -> tuple[int, ...]:
    try:
        dims = tuple(normalized_shape) if not isinstance(normalized_shape, (int, np.integer)) \
            else (int(normalized_shape),)
    except TypeError:
        raise TypeError(f"normalized_shape must be an int or a tuple of ints, got {normalized_shape!r}") from None
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(f"normalized_shape must be a non-empty tuple of positive ints, got {normalized_shape!r}")
    dims = tuple(int(d) for d in dims)
    if x.ndim < len(dims) or tuple(x.shape[x.ndim - len(dims):]) != dims:
        raise ValueError(f"normalized_shape {dims} must match the trailing dimensions of x, got x of shape "
                         f"{tuple(x.shape)}")
    return dims


def _check_layer_norm(x: Any, normalized_shape: Any, weight: Any, bias: Any,
                      eps: Any) -> tuple[int, int, float, tuple[int, ...]]:
    """Validate :func:`layer_norm`'s arguments; return ``(rows, D, eps, leading shape of x)``."""
    check_array("x", x)
    dims = _check_normalized_shape(normalized_shape, x)
    e = check_scalar("eps", eps, minimum=0.0, min_inclusive=False)
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None:
            check_array(name, a, ndim=len(dims))
            check_same_dtype(x=x, **{name: a})
            check_shape(name, a, dims)
    d = math.prod(dims)
    return math.prod(x.shape) // d, d, e, tuple(int(s) for s in x.shape[:x.ndim - len(dims)])


def _check_layer_norm_backward(grad_out: Any, x: Any, weight: Any, mean: Any, invstd: Any) -> tuple[int, int]:
    """Validate :func:`layer_norm_backward`'s arguments; return ``(rows, D)``."""
    check_array("x", x)
    check_array("grad_out", grad_out)
    check_same_dtype(x=x, grad_out=grad_out)
    check_shape("grad_out", grad_out, x.shape)
    check_array("mean", mean)
    check_array("invstd", invstd)
    check_same_dtype(x=x, mean=mean, invstd=invstd)
    if mean.ndim >= x.ndim or tuple(mean.shape) != tuple(x.shape[:mean.ndim]):
        raise ValueError(f"mean must have the leading (not normalised) shape of x {tuple(x.shape)}, got shape "
                         f"{tuple(mean.shape)}")
    check_shape("invstd", invstd, mean.shape)
    dims = tuple(int(s) for s in x.shape[mean.ndim:])
    if weight is not None:
        check_array("weight", weight, ndim=len(dims))
        check_same_dtype(x=x, weight=weight)
        check_shape("weight", weight, dims)
    d = math.prod(dims)
    return math.prod(x.shape) // d, d


# ----------------------------------------------------------------------------- batch norm

def _channels_view(a: np.ndarray, n: int, c: int, hw: int) -> np.ndarray:
    """``(N, C, H*W)`` view of a 2-D or 4-D array (no copy)."""
    return a.reshape(n, c, hw)


def batch_norm(x: np.ndarray, running_mean: np.ndarray | None, running_var: np.ndarray | None,
               weight: np.ndarray | None, bias: np.ndarray | None, *, training: bool, momentum: float = 0.1,
               eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalisation per channel (axis 1), in training or inference mode.

    Parameters
    ----------
    x : (N, C) or (N, C, H, W), float32 or float64, C-contiguous.
    running_mean, running_var : (C,) of ``x``'s dtype, or both None. In training
        mode they are updated in place (momentum average; the variance is the
        unbiased batch variance) and must be writeable; in inference mode they
        are the statistics normalised with and are required.
    weight, bias : (C,) of ``x``'s dtype, or None (1 and 0).
    training : bool
        True: normalise with the batch statistics (needs ``N*H*W > 1``).
    momentum : float in [0, 1]
        Weight of the new batch in the running statistics (PyTorch's convention).
    eps : float > 0
        Added to the variance.

    Returns
    -------
    y : same shape and dtype as ``x``.
    save_mean, save_invstd : (C,)
        The mean and ``1 / sqrt(var + eps)`` used (batch or running), for the backward.
    """
    n, c, hw, mom, e = _check_batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    dt = x.dtype.type
    x3 = _channels_view(x, n, c, hw)
    if training:
        mean = x3.mean(axis=(0, 2), dtype=x.dtype)
        var = ((x3 - mean[None, :, None]) ** 2).mean(axis=(0, 2), dtype=x.dtype)
        if running_mean is not None:
            m = n * hw
            running_mean *= dt(1.0 - mom)
            running_mean += dt(mom) * mean
            running_var *= dt(1.0 - mom)
            running_var += dt(mom) * var * dt(m / (m - 1))
    else:
        mean = running_mean.copy()
        var = running_var
    invstd = (dt(1) / np.sqrt(var + dt(e))).astype(x.dtype, copy=False)
    scale = invstd if weight is None else invstd * weight
    y = (x3 - mean[None, :, None]) * scale[None, :, None]
    if bias is not None:
        y += bias[None, :, None]
    return y.reshape(x.shape).astype(x.dtype, copy=False), mean, invstd


def batch_norm_backward(grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray | None, save_mean: np.ndarray,
                        save_invstd: np.ndarray, *, training: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`batch_norm` with respect to ``x``, ``weight`` and ``bias``.

    With ``xhat = (x - save_mean) * save_invstd`` and ``M = N*H*W``:
    ``grad_bias = sum(g)``, ``grad_weight = sum(g * xhat)`` (over N, H, W), and
    ``grad_x = weight * invstd * (g - grad_bias / M - xhat * grad_weight / M)``
    in training mode (the batch statistics depend on ``x``) or
    ``weight * invstd * g`` in inference mode.

    Parameters
    ----------
    grad_out, x : (N, C) or (N, C, H, W), one dtype.
    weight : (C,) or None (1).
    save_mean, save_invstd : (C,), as returned by the forward.
    training : bool, the mode of the forward.

    Returns
    -------
    grad_x : ``x``'s shape; grad_weight, grad_bias : (C,).
    """
    n, c, hw = _check_batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, training)
    dt = x.dtype.type
    g3 = _channels_view(grad_out, n, c, hw)
    xhat = (_channels_view(x, n, c, hw) - save_mean[None, :, None]) * save_invstd[None, :, None]
    grad_bias = g3.sum(axis=(0, 2), dtype=x.dtype)
    grad_weight = (g3 * xhat).sum(axis=(0, 2), dtype=x.dtype)
    scale = save_invstd if weight is None else save_invstd * weight
    if training:
        inv_m = dt(1.0 / (n * hw))
        gx = (g3 - (grad_bias * inv_m)[None, :, None] - xhat * (grad_weight * inv_m)[None, :, None]) \
            * scale[None, :, None]
    else:
        gx = g3 * scale[None, :, None]
    return gx.reshape(x.shape).astype(x.dtype, copy=False), grad_weight, grad_bias


# ----------------------------------------------------------------------------- layer norm

def layer_norm(x: np.ndarray, normalized_shape: Any, weight: np.ndarray | None = None,
               bias: np.ndarray | None = None, *, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer normalisation over the trailing ``normalized_shape`` dimensions of ``x``.

    Parameters
    ----------
    x : float32 or float64, C-contiguous, its last dimensions equal to ``normalized_shape``.
    normalized_shape : int or tuple of ints.
    weight, bias : ``normalized_shape``, ``x``'s dtype, or None (1 and 0).
    eps : float > 0, added to the (biased) variance.

    Returns
    -------
    y : ``x``'s shape and dtype.
    mean, invstd : ``x.shape[:-len(normalized_shape)]``, per normalised row, for the backward.
    """
    rows, d, e, lead = _check_layer_norm(x, normalized_shape, weight, bias, eps)
    dt = x.dtype.type
    x2 = x.reshape(rows, d)
    mean = x2.mean(axis=1, dtype=x.dtype)
    var = ((x2 - mean[:, None]) ** 2).mean(axis=1, dtype=x.dtype)
    invstd = (dt(1) / np.sqrt(var + dt(e))).astype(x.dtype, copy=False)
    y = (x2 - mean[:, None]) * invstd[:, None]
    if weight is not None:
        y = y * weight.reshape(d)
    if bias is not None:
        y = y + bias.reshape(d)
    return y.reshape(x.shape).astype(x.dtype, copy=False), mean.reshape(lead), invstd.reshape(lead)


def layer_norm_backward(grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray | None, mean: np.ndarray,
                        invstd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`layer_norm` with respect to ``x``, ``weight`` and ``bias``.

    The normalised dimensions are those of ``x`` after ``mean.ndim``. With
    ``xhat = (x - mean) * invstd`` and ``gw = g * weight`` per row of ``D`` values:
    ``grad_x = invstd * (gw - mean(gw) - xhat * mean(gw * xhat))``;
    ``grad_weight = sum(g * xhat)``, ``grad_bias = sum(g)`` over the rows.

    Parameters
    ----------
    grad_out : ndarray
        ``x``'s shape and dtype.
    x : ndarray
        The forward's input.
    weight : ndarray or None
        The forward's weight (None: 1).
    mean, invstd : ndarray
        What the forward returned: ``x``'s leading shape.

    Returns
    -------
    grad_x : ndarray
        ``x``'s shape.
    grad_weight, grad_bias : ndarray
        ``x.shape[mean.ndim:]`` (computed whether or not the forward had a weight and bias).
    """
    rows, d = _check_layer_norm_backward(grad_out, x, weight, mean, invstd)
    dt = x.dtype.type
    norm_shape = tuple(x.shape[mean.ndim:])
    g2 = grad_out.reshape(rows, d)
    inv = invstd.reshape(rows, 1)
    xhat = (x.reshape(rows, d) - mean.reshape(rows, 1)) * inv
    grad_weight = (g2 * xhat).sum(axis=0, dtype=x.dtype)
    grad_bias = g2.sum(axis=0, dtype=x.dtype)
    gw = g2 if weight is None else g2 * weight.reshape(d)
    inv_d = dt(1.0 / d)
    gx = inv * (gw - gw.sum(axis=1, keepdims=True, dtype=x.dtype) * inv_d
                - xhat * (gw * xhat).sum(axis=1, keepdims=True, dtype=x.dtype) * inv_d)
    return (gx.reshape(x.shape).astype(x.dtype, copy=False), grad_weight.reshape(norm_shape),
            grad_bias.reshape(norm_shape))
