"""NumPy reference softmax, log-softmax and softmax cross-entropy, with their gradients.

Every reduction subtracts the row maximum first (log-sum-exp), so large logits
never overflow and a ``-inf`` logit gets probability 0 without NaN.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._validate import (
    check_array,
    check_same_dtype,
    check_scalar,
    check_shape,
    normalize_axis,
)

__all__: list[str] = kernel_names("softmax")  # the one list: kernels/_constants.py

REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------- validation
#
# One check per kernel, called by the reference, CPU and CUDA wrappers alike, so
# every backend rejects the same input with the same message.

def _check_softmax_input(x: Any, axis: Any) -> int:
    check_array("x", x)
    if x.ndim == 0:
        raise ValueError("x must have at least 1 dimension, got a 0-D array")
    ax = normalize_axis(axis, x.ndim)
    if x.shape[ax] == 0:
        raise ValueError(f"x has length 0 along axis {axis} (shape {tuple(x.shape)}); softmax needs at least 1")
    return ax


def _check_softmax_backward(grad_out: Any, y: Any, axis: Any) -> int:
    check_array("grad_out", grad_out)
    check_array("y", y)
    if y.ndim == 0:
        raise ValueError("y must have at least 1 dimension, got a 0-D array")
    check_same_dtype(grad_out=grad_out, y=y)
    check_shape("grad_out", grad_out, y.shape)
    return normalize_axis(axis, y.ndim)


def _check_reduction(reduction: Any) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_labels(labels: Any, logits: Any, name: str, check_range: bool) -> bool:
    """Validate labels for ``(n, c)`` logits/probs; return True for class indices, False for probabilities."""
    n, c = logits.shape
    check_array("labels", labels, dtypes=None)
    kind = np.dtype(labels.dtype).kind  # not np.issubdtype: ten times its cost at (128, 10)
    if kind in "iu":
        check_shape("labels", labels, (n,))
        if check_range and n:
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= c:
                bad = low if low < 0 else high
                raise ValueError(f"labels must be class indices in [0, {c}), got {bad}")
        return True
    if kind == "f":
        check_array("labels", labels, ndim=2)
        check_same_dtype(**{name: logits}, labels=labels)
        check_shape("labels", labels, (n, c))
        return False
    raise TypeError(f"labels must be integer class indices or a float probability matrix, got dtype {labels.dtype}")


def _check_cross_entropy(logits: Any, labels: Any, reduction: Any, label_smoothing: Any, name: str = "logits",
                         *, check_label_range: bool = True) -> tuple[bool, float]:
    """Checks of both cross-entropy kernels (``name="probs"`` for the backward); returns ``(is_index, eps)``.

    ``check_label_range=False`` skips the ``[0, C)`` test of integer labels: on the
    GPU it would copy the labels to the host on every call.
    """
    check_array(name, logits, ndim=2)
    _check_reduction(reduction)
    eps = check_scalar("label_smoothing", label_smoothing, minimum=0.0, maximum=1.0)
    if logits.shape[1] == 0:
        raise ValueError(f"{name} must have at least one class (column), got shape {tuple(logits.shape)}")
    return _check_labels(labels, logits, name, check_label_range), eps


def _check_grad_loss(grad_loss: Any, reduction: str, probs: Any) -> Any:
    """The ``(N,)`` array of ``probs``' dtype for ``reduction="none"``, else a host scalar, returned as a float."""
    if reduction == "none":
        check_array("grad_loss", grad_loss, ndim=1)
        check_same_dtype(probs=probs, grad_loss=grad_loss)
        check_shape("grad_loss", grad_loss, (probs.shape[0],))
        return grad_loss
    if hasattr(grad_loss, "ndim"):
        check_array("grad_loss", grad_loss, ndim=0)
        grad_loss = grad_loss[()]
    return check_scalar("grad_loss", grad_loss)


def _grad_loss_scale(grad_loss: Any, reduction: str, probs: np.ndarray) -> np.ndarray:
    """Per-row factor ``grad_loss / (N if mean else 1)`` as an ``(n,)`` array of ``probs``' dtype."""
    g = _check_grad_loss(grad_loss, reduction, probs)
    if reduction == "none":
        return g
    n = probs.shape[0]
    if reduction == "mean" and n:
        g /= n
    return np.full(n, g, dtype=probs.dtype)


def _reduce_loss(losses: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return losses
    total = losses.sum(dtype=losses.dtype)
    if reduction == "mean":
        total = total / losses.dtype.type(max(losses.shape[0], 1))
    return np.asarray(total, dtype=losses.dtype)


# ----------------------------------------------------------------------------- docstrings

_BACKWARD_SECTIONS = """Parameters
----------
grad_out : ndarray
    ``g``, the gradient with respect to ``y``: ``y``'s shape and dtype.
y : ndarray
    The forward's *output*.
axis : int, default -1
    The forward's axis.

Returns
-------
grad_x : ndarray
    ``y``'s shape and dtype.
"""

_FORWARD_SECTIONS = """Parameters
----------
x : ndarray
    float32 or float64, ``ndim >= 1``, C-contiguous.
axis : int, default -1
    The axis to normalise over.

Returns
-------
y : ndarray
    ``x``'s shape and dtype{note}.
"""


def _contract(sections: str):
    """Append the Parameters/Returns sections softmax and log_softmax (or their backwards) share."""
    def decorate(fn):
        fn.__doc__ = f"{inspect.cleandoc(fn.__doc__)}\n\n{sections}"
        return fn
    return decorate


# ----------------------------------------------------------------------------- softmax, log_softmax

@_contract(_FORWARD_SECTIONS.format(note="; a ``-inf`` logit gives 0"))
def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax ``exp(x) / sum(exp(x))`` along ``axis``, stable for large logits."""
    ax = _check_softmax_input(x, axis)
    e = np.exp(x - x.max(axis=ax, keepdims=True))
    e /= e.sum(axis=ax, keepdims=True)
    return e


@_contract(_FORWARD_SECTIONS.format(note=""))
def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Log-softmax ``x - logsumexp(x)`` along ``axis``, stable for large logits."""
    ax = _check_softmax_input(x, axis)
    shifted = x - x.max(axis=ax, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=ax, keepdims=True))
    return shifted


@_contract(_BACKWARD_SECTIONS)
def softmax_backward(grad_out: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient through :func:`softmax` given its output: ``y * (g - sum(g * y))`` along ``axis``."""
    ax = _check_softmax_backward(grad_out, y, axis)
    return y * (grad_out - (grad_out * y).sum(axis=ax, keepdims=True))


@_contract(_BACKWARD_SECTIONS)
def log_softmax_backward(grad_out: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient through :func:`log_softmax` given its output: ``g - exp(y) * sum(g)`` along ``axis``."""
    ax = _check_softmax_backward(grad_out, y, axis)
    return grad_out - np.exp(y) * grad_out.sum(axis=ax, keepdims=True)


# ----------------------------------------------------------------------------- cross-entropy

def _target(labels: np.ndarray, is_index: bool, shape: tuple[int, int], eps: float,
            dtype: np.dtype) -> np.ndarray:
    """Dense smoothed target ``(1 - eps) * onehot(labels) + eps / C`` (or the given probabilities)."""
    n, c = shape
    if is_index:
        target = np.full(shape, eps / c, dtype=dtype)
        target[np.arange(n), labels] += dtype.type(1.0 - eps)
        return target
    if eps == 0.0:
        return labels
    return (labels * dtype.type(1.0 - eps) + dtype.type(eps / c)).astype(dtype, copy=False)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, *, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy of softmax(logits) against labels, and the probabilities for the backward pass.

    Parameters
    ----------
    logits : (N, C) float32 or float64, C-contiguous.
    labels : (N,) integer class indices in ``[0, C)``, or (N, C) probabilities of ``logits``' dtype.
    reduction : ``"mean"`` (over N), ``"sum"`` or ``"none"``.
    label_smoothing : eps in [0, 1]; the target becomes ``(1 - eps) * target + eps / C`` (as PyTorch).

    Returns
    -------
    loss : 0-d array (mean/sum) or (N,) array (none), ``logits``' dtype.
    probs : (N, C) softmax of ``logits``.

    A target entry of exactly 0 contributes nothing, so a ``-inf`` logit with no
    target mass gives no NaN (``0 * log 0`` is taken as 0).
    """
    is_index, eps = _check_cross_entropy(logits, labels, reduction, label_smoothing)
    n, c = logits.shape
    dtype = logits.dtype
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    sum_e = e.sum(axis=1, keepdims=True)
    probs = e / sum_e
    neg_logp = np.log(sum_e) - shifted  # >= 0, +inf at a -inf logit
    if is_index:
        losses = neg_logp[np.arange(n), labels]
        if eps:
            losses = dtype.type(1.0 - eps) * losses + dtype.type(eps / c) * neg_logp.sum(axis=1)
    else:
        target = _target(labels, False, (n, c), eps, dtype)
        with np.errstate(invalid="ignore"):
            losses = np.where(target != 0, target * neg_logp, dtype.type(0)).sum(axis=1)
    return _reduce_loss(losses.astype(dtype, copy=False), reduction), probs


def softmax_cross_entropy_backward(probs: np.ndarray, labels: np.ndarray, grad_loss: Any = 1.0, *,
                                   reduction: str = "mean", label_smoothing: float = 0.0) -> np.ndarray:
    """Gradient of :func:`softmax_cross_entropy` with respect to the logits.

    ``(probs - target) * grad_loss / (N if mean else 1)``, with the forward's target
    (label smoothing included).

    Parameters
    ----------
    probs : ndarray
        (N, C), the forward's probabilities, float32 or float64.
    labels : ndarray
        The forward's labels: (N,) integer class indices or (N, C) probabilities.
    grad_loss : float or ndarray, default 1.0
        Gradient of the loss: a scalar (Python float or 0-d array) for ``"mean"``
        and ``"sum"``, an (N,) array of ``probs``' dtype for ``"none"``.
    reduction, label_smoothing : str, float
        The forward's.

    Returns
    -------
    grad_logits : ndarray
        (N, C), ``probs``' dtype.
    """
    is_index, eps = _check_cross_entropy(probs, labels, reduction, label_smoothing, name="probs")
    scale = _grad_loss_scale(grad_loss, reduction, probs)
    target = _target(labels, is_index, probs.shape, eps, probs.dtype)
    return (probs - target) * scale[:, None]
