"""CPU softmax, log-softmax and softmax cross-entropy: Numba ``@njit`` row kernels.

Softmax over any axis uses one kernel: the contiguous input is viewed (for
free) as ``(outer, length, inner)`` with the softmax axis in the middle, and
``prange`` runs over ``outer``. Every reduction stays inside one ``outer``
slice, so threads never share an accumulator. Cross-entropy runs one row per
iteration, writes that row's loss to ``losses[i]`` and the wrapper reduces the
``(N,)`` vector afterwards.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from jitgrad.config import FASTMATH
from jitgrad.kernels.reference.softmax import (
    _check_cross_entropy,
    _check_softmax_backward,
    _check_softmax_input,
    _grad_loss_scale,
    _reduce_loss,
)

__all__: list[str] = [
    "softmax", "softmax_backward",
    "log_softmax", "log_softmax_backward",
    "softmax_cross_entropy", "softmax_cross_entropy_backward",
]

_FASTMATH = set(FASTMATH)


def _as_3d(a: np.ndarray, axis: int) -> np.ndarray:
    """View a C-contiguous array as ``(outer, a.shape[axis], inner)`` without copying."""
    outer = int(np.prod(a.shape[:axis], dtype=np.int64))
    inner = int(np.prod(a.shape[axis + 1:], dtype=np.int64))
    return a.reshape(outer, a.shape[axis], inner)


# ----------------------------------------------------------------------------- softmax, log_softmax

@njit(cache=True, fastmath=_FASTMATH, parallel=True)
def _softmax_kernel(x, log, out):
    # x, out: (outer, length, inner); softmax (or log-softmax when ``log``) along axis 1.
    outer, length, inner = x.shape
    for o in prange(outer):
        if inner == 1:
            # The common case (last axis): scalar accumulators, unit-stride rows.
            m = x[o, 0, 0]
            for j in range(1, length):
                m = max(m, x[o, j, 0])
            s = x.dtype.type(0)
            for j in range(length):
                e = math.exp(x[o, j, 0] - m)
                s += e
                out[o, j, 0] = e
            if log:
                lse = m + math.log(s)
                for j in range(length):
                    out[o, j, 0] = x[o, j, 0] - lse
            else:
                inv = x.dtype.type(1) / s
                for j in range(length):
                    out[o, j, 0] *= inv
        else:
            # A softmax axis with trailing dims: vector accumulators over ``inner``, rows stay unit-stride.
            m = x[o, 0, :].copy()
            for j in range(1, length):
                for k in range(inner):
                    m[k] = max(m[k], x[o, j, k])
            s = np.zeros(inner, dtype=x.dtype)
            for j in range(length):
                for k in range(inner):
                    e = math.exp(x[o, j, k] - m[k])
                    s[k] += e
                    out[o, j, k] = e
            if log:
                for k in range(inner):
                    m[k] += math.log(s[k])
                for j in range(length):
                    for k in range(inner):
                        out[o, j, k] = x[o, j, k] - m[k]
            else:
                for k in range(inner):
                    s[k] = x.dtype.type(1) / s[k]
                for j in range(length):
                    for k in range(inner):
                        out[o, j, k] *= s[k]


@njit(cache=True, fastmath=_FASTMATH, parallel=True)
def _softmax_backward_kernel(grad_out, y, log, out):
    # softmax: y * (g - sum(g * y)); log-softmax: g - exp(y) * sum(g); sums along axis 1.
    outer, length, inner = y.shape
    for o in prange(outer):
        acc = np.zeros(inner, dtype=y.dtype)
        for j in range(length):
            for k in range(inner):
                acc[k] += grad_out[o, j, k] if log else grad_out[o, j, k] * y[o, j, k]
        for j in range(length):
            for k in range(inner):
                if log:
                    out[o, j, k] = grad_out[o, j, k] - math.exp(y[o, j, k]) * acc[k]
                else:
                    out[o, j, k] = y[o, j, k] * (grad_out[o, j, k] - acc[k])


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x) / sum(exp(x))`` along ``axis``; ``x`` float32/float64, ``ndim >= 1``; same shape and dtype."""
    ax = _check_softmax_input(x, axis)
    out = np.empty_like(x)
    _softmax_kernel(_as_3d(x, ax), False, _as_3d(out, ax))
    return out


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x - logsumexp(x)`` along ``axis``; same shape and dtype as ``x``."""
    ax = _check_softmax_input(x, axis)
    out = np.empty_like(x)
    _softmax_kernel(_as_3d(x, ax), True, _as_3d(out, ax))
    return out


def softmax_backward(grad_out: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient through softmax given its output ``y``: ``y * (g - sum(g * y))`` along ``axis``."""
    ax = _check_softmax_backward(grad_out, y, axis)
    out = np.empty_like(y)
    _softmax_backward_kernel(_as_3d(grad_out, ax), _as_3d(y, ax), False, _as_3d(out, ax))
    return out


def log_softmax_backward(grad_out: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient through log_softmax given its output ``y``: ``g - exp(y) * sum(g)`` along ``axis``."""
    ax = _check_softmax_backward(grad_out, y, axis)
    out = np.empty_like(y)
    _softmax_backward_kernel(_as_3d(grad_out, ax), _as_3d(y, ax), True, _as_3d(out, ax))
    return out


# ----------------------------------------------------------------------------- cross-entropy

@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _row_softmax_lse(logits, i, probs):
    """Write row ``i``'s softmax into ``probs``; return (row max, log-sum-exp of the shifted row)."""
    c = logits.shape[1]
    m = logits[i, 0]
    for j in range(1, c):
        m = max(m, logits[i, j])
    s = logits.dtype.type(0)
    for j in range(c):
        e = math.exp(logits[i, j] - m)
        probs[i, j] = e
        s += e
    inv = logits.dtype.type(1) / s
    for j in range(c):
        probs[i, j] *= inv
    return m, math.log(s)


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _cross_entropy_index_row(logits, labels, eps, probs, losses, i):
    c = logits.shape[1]
    one = logits.dtype.type(1)
    m, lse = _row_softmax_lse(logits, i, probs)
    # -log p_j = lse - (x_j - m): never 0 * inf, so a -inf logit off the label gives no NaN.
    loss = lse - (logits[i, labels[i]] - m)
    if eps != 0:
        total = logits.dtype.type(0)
        for j in range(c):
            total += lse - (logits[i, j] - m)
        loss = (one - eps) * loss + eps / logits.dtype.type(c) * total
    losses[i] = loss


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _cross_entropy_prob_row(logits, target, eps, probs, losses, i):
    c = logits.shape[1]
    one = logits.dtype.type(1)
    eps_c = eps / logits.dtype.type(c)
    m, lse = _row_softmax_lse(logits, i, probs)
    loss = logits.dtype.type(0)
    for j in range(c):
        t = target[i, j] * (one - eps) + eps_c if eps != 0 else target[i, j]
        if t != 0:  # 0 * log 0 is 0: no NaN from a -inf logit the target does not weight
            loss += t * (lse - (logits[i, j] - m))
    losses[i] = loss


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _cross_entropy_backward_row(probs, labels, target, is_index, eps, scale, out, i):
    c = probs.shape[1]
    one = probs.dtype.type(1)
    eps_c = eps / probs.dtype.type(c)
    s = scale[i]
    if is_index:
        label = labels[i]
        for j in range(c):
            t = eps_c + (one - eps) if j == label else eps_c
            out[i, j] = (probs[i, j] - t) * s
    else:
        for j in range(c):
            t = target[i, j] * (one - eps) + eps_c if eps != 0 else target[i, j]
            out[i, j] = (probs[i, j] - t) * s


# Each kernel comes as a parallel and a serial twin: a (128, 10) batch is done in a few
# microseconds, less than it takes to wake the worker threads.

@njit(cache=True, fastmath=_FASTMATH, parallel=True)
def _cross_entropy_index_kernel(logits, labels, eps, probs, losses):
    for i in prange(logits.shape[0]):
        _cross_entropy_index_row(logits, labels, eps, probs, losses, i)


@njit(cache=True, fastmath=_FASTMATH)
def _cross_entropy_index_kernel_serial(logits, labels, eps, probs, losses):
    for i in range(logits.shape[0]):
        _cross_entropy_index_row(logits, labels, eps, probs, losses, i)


@njit(cache=True, fastmath=_FASTMATH, parallel=True)
def _cross_entropy_prob_kernel(logits, target, eps, probs, losses):
    for i in prange(logits.shape[0]):
        _cross_entropy_prob_row(logits, target, eps, probs, losses, i)


@njit(cache=True, fastmath=_FASTMATH)
def _cross_entropy_prob_kernel_serial(logits, target, eps, probs, losses):
    for i in range(logits.shape[0]):
        _cross_entropy_prob_row(logits, target, eps, probs, losses, i)


@njit(cache=True, fastmath=_FASTMATH, parallel=True)
def _cross_entropy_backward_kernel(probs, labels, target, is_index, eps, scale, out):
    # ``labels`` (N,) int64 when ``is_index``, else ``target`` (N, C): the unused one is empty.
    for i in prange(probs.shape[0]):
        _cross_entropy_backward_row(probs, labels, target, is_index, eps, scale, out, i)


@njit(cache=True, fastmath=_FASTMATH)
def _cross_entropy_backward_kernel_serial(probs, labels, target, is_index, eps, scale, out):
    for i in range(probs.shape[0]):
        _cross_entropy_backward_row(probs, labels, target, is_index, eps, scale, out, i)


#: Below this many logits the serial twin runs (measured on the (128, 10) MNIST batch).
_PARALLEL_MIN_SIZE = 1 << 15


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
    """
    is_index, eps = _check_cross_entropy(logits, labels, reduction, label_smoothing)
    eps_t = logits.dtype.type(eps)
    probs = np.empty_like(logits)
    losses = np.empty(logits.shape[0], dtype=logits.dtype)
    parallel = logits.size >= _PARALLEL_MIN_SIZE
    if is_index:
        kernel = _cross_entropy_index_kernel if parallel else _cross_entropy_index_kernel_serial
        # One integer type for the kernel, whatever the caller's (int32 labels are common).
        kernel(logits, labels.astype(np.int64, copy=False), eps_t, probs, losses)
    else:
        kernel = _cross_entropy_prob_kernel if parallel else _cross_entropy_prob_kernel_serial
        kernel(logits, labels, eps_t, probs, losses)
    return _reduce_loss(losses, reduction), probs


def softmax_cross_entropy_backward(probs: np.ndarray, labels: np.ndarray, grad_loss: Any = 1.0, *,
                                   reduction: str = "mean", label_smoothing: float = 0.0) -> np.ndarray:
    """Gradient of :func:`softmax_cross_entropy` w.r.t. the logits.

    ``(probs - target) * grad_loss / (N if mean else 1)``; ``probs`` (N, C) is the
    forward's output, ``grad_loss`` a scalar (python float or 0-d array) for
    mean/sum and an (N,) array of ``probs``' dtype for none. Returns (N, C).
    """
    is_index, eps = _check_cross_entropy(probs, labels, reduction, label_smoothing, name="probs")
    scale = _grad_loss_scale(grad_loss, reduction, probs)
    eps_t = probs.dtype.type(eps)
    out = np.empty_like(probs)
    if is_index:
        index, target = labels.astype(np.int64, copy=False), np.empty((0, 0), dtype=probs.dtype)
    else:
        index, target = np.empty(0, dtype=np.int64), labels
    parallel = probs.size >= _PARALLEL_MIN_SIZE
    kernel = _cross_entropy_backward_kernel if parallel else _cross_entropy_backward_kernel_serial
    kernel(probs, index, target, is_index, eps_t, scale, out)
    return out
