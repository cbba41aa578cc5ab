"""CPU softmax, log-softmax and softmax cross-entropy: Numba ``@njit`` row kernels.

Softmax over any axis uses one kernel: the contiguous input is viewed (for
free) as ``(outer, length, inner)`` with the softmax axis in the middle, and
``prange`` runs over ``outer``. Every reduction stays inside one ``outer``
slice, so threads never share an accumulator. Cross-entropy runs one row per
iteration, writes that row's loss to ``losses[i]`` and the wrapper reduces the
``(N,)`` vector afterwards.

The common case, softmax over the last axis, runs row kernels on the 2-D view
so every row is unit-stride and the exp loop vectorises (``_elementary.exp``:
8 float32 lanes on AVX2). log-softmax is ``(x - max) - log(sum)`` in that
order, as the reference: ``x - max`` is exact for nearby logits, whereas
``x - (max + log(sum))`` rounds ``max + log(sum)`` at ``max``'s magnitude
(``[1e5, 1e5, 1e5 - 1]`` lost two decimal digits).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from jitgrad.config import FASTMATH
from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cpu import _elementary as ef
from jitgrad.kernels.reference.softmax import (
    _check_cross_entropy,
    _check_softmax_backward,
    _check_softmax_input,
    _grad_loss_scale,
)

__all__: list[str] = kernel_names("softmax")  # the one list: kernels/_constants.py

_FASTMATH = set(FASTMATH)
#: The callers' flags less ``reassoc``, for the one subtraction whose order is the point.
_IN_ORDER = _FASTMATH - {"reassoc"}


# ----------------------------------------------------------------------------- softmax, log_softmax

@njit(cache=True, error_model="numpy", fastmath=_IN_ORDER)
def _shifted_minus(x, m, c):
    """``(x - m) - c`` in that order: exact ``x - m`` for nearby logits, one rounding after.

    A function of its own, because inlined into a kernel compiled with ``reassoc`` the
    subtractions would be regrouped as ``x - (m + c)`` (measured: log_softmax of
    ``[1e5, 1e5, 1e5 - 1]`` gave -0.859375 for -0.8619948). LLVM inlines it but keeps
    each instruction's flags.
    """
    return (x - m) - c



@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _row_max(x, i):
    """Largest element of row ``i`` (a NaN may be skipped or returned: either way the row turns NaN).

    Eight independent accumulators: one select chain is latency-bound, eight keep the
    compare unit busy (measured 1.7x faster at 1000 columns). LLVM does not vectorise a
    float max reduction without ``nnan``, which softmax cannot have.
    """
    c = x.shape[1]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x[i, 0]
    c8 = c - c % 8
    for j in range(0, c8, 8):
        v = x[i, j]
        m0 = v if v > m0 else m0
        v = x[i, j + 1]
        m1 = v if v > m1 else m1
        v = x[i, j + 2]
        m2 = v if v > m2 else m2
        v = x[i, j + 3]
        m3 = v if v > m3 else m3
        v = x[i, j + 4]
        m4 = v if v > m4 else m4
        v = x[i, j + 5]
        m5 = v if v > m5 else m5
        v = x[i, j + 6]
        m6 = v if v > m6 else m6
        v = x[i, j + 7]
        m7 = v if v > m7 else m7
    for j in range(c8, c):
        v = x[i, j]
        m0 = v if v > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _row_max_exp(x, i, out):
    """Write ``exp(x[i] - max)`` into ``out[i]``; return ``(max, sum of those exponentials)``.

    A NaN is skipped by the max but turns the sum, so the whole row, NaN (as the reference).
    """
    c = x.shape[1]
    m = _row_max(x, i)
    s = x.dtype.type(0)
    for j in range(c):
        e = ef.exp(x[i, j] - m)
        out[i, j] = e
        s += e
    return m, s


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _softmax_row(x, log, out, i):
    m, s = _row_max_exp(x, i, out)
    if log:
        log_s = ef.log(s)
        for j in range(x.shape[1]):
            out[i, j] = _shifted_minus(x[i, j], m, log_s)
    else:
        inv = x.dtype.type(1) / s
        for j in range(x.shape[1]):
            out[i, j] *= inv


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _softmax_rows_kernel(x, log, out):
    # x, out: (rows, length) C-contiguous; softmax (or log-softmax when ``log``) of each row.
    for i in prange(x.shape[0]):
        _softmax_row(x, log, out, i)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _softmax_rows_kernel_serial(x, log, out):
    for i in range(x.shape[0]):
        _softmax_row(x, log, out, i)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _softmax_kernel(x, log, out):
    # x, out: (outer, length, inner) with inner > 1; softmax along axis 1 with vector accumulators
    # over ``inner``, so rows stay unit-stride.
    outer, length, inner = x.shape
    for o in prange(outer):
        m = x[o, 0, :].copy()
        for j in range(1, length):
            for k in range(inner):
                v = x[o, j, k]
                m[k] = v if v > m[k] else m[k]
        s = np.zeros(inner, dtype=x.dtype)
        for j in range(length):
            for k in range(inner):
                e = ef.exp(x[o, j, k] - m[k])
                s[k] += e
                out[o, j, k] = e
        if log:
            for k in range(inner):
                s[k] = ef.log(s[k])
            for j in range(length):
                for k in range(inner):
                    out[o, j, k] = _shifted_minus(x[o, j, k], m[k], s[k])
        else:
            for k in range(inner):
                s[k] = x.dtype.type(1) / s[k]
            for j in range(length):
                for k in range(inner):
                    out[o, j, k] *= s[k]


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _softmax_backward_row(grad_out, y, log, out, i):
    # softmax: y * (g - sum(g * y)); log-softmax: g - exp(y) * sum(g).
    acc = y.dtype.type(0)
    for j in range(y.shape[1]):
        acc += grad_out[i, j] if log else grad_out[i, j] * y[i, j]
    for j in range(y.shape[1]):
        if log:
            out[i, j] = grad_out[i, j] - ef.exp(y[i, j]) * acc
        else:
            out[i, j] = y[i, j] * (grad_out[i, j] - acc)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _softmax_backward_rows_kernel(grad_out, y, log, out):
    for i in prange(y.shape[0]):
        _softmax_backward_row(grad_out, y, log, out, i)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _softmax_backward_rows_kernel_serial(grad_out, y, log, out):
    for i in range(y.shape[0]):
        _softmax_backward_row(grad_out, y, log, out, i)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _softmax_backward_kernel(grad_out, y, log, out):
    # The (outer, length, inner) twin of the row kernel, for inner > 1.
    outer, length, inner = y.shape
    for o in prange(outer):
        acc = np.zeros(inner, dtype=y.dtype)
        for j in range(length):
            for k in range(inner):
                acc[k] += grad_out[o, j, k] if log else grad_out[o, j, k] * y[o, j, k]
        for j in range(length):
            for k in range(inner):
                if log:
                    out[o, j, k] = grad_out[o, j, k] - ef.exp(y[o, j, k]) * acc[k]
                else:
                    out[o, j, k] = y[o, j, k] * (grad_out[o, j, k] - acc[k])


_ROW_KERNELS = (_softmax_rows_kernel, _softmax_rows_kernel_serial)
_BACKWARD_ROW_KERNELS = (_softmax_backward_rows_kernel, _softmax_backward_rows_kernel_serial)


def _run_rows(row_kernels, kernel, axis: int, arrays: tuple[np.ndarray, ...], log: bool, out: np.ndarray) -> None:
    """Call a 2-D row kernel (parallel, or serial below ``_PARALLEL_MIN_SIZE``) when ``axis`` has no
    trailing dimensions of size > 1, else the 3-D one."""
    # math.prod on the shape tuple, not np.prod: at (128, 10) the views cost more than the kernel.
    shape = out.shape
    outer, length, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    if inner == 1:
        row_kernel = row_kernels[0] if out.size >= _PARALLEL_MIN_SIZE else row_kernels[1]
        if out.ndim == 2 and axis == 1:  # already (outer, length); a (n, 1) array over axis 0 is not
            row_kernel(*arrays, log, out)
        else:
            row_kernel(*(a.reshape(outer, length) for a in arrays), log, out.reshape(outer, length))
    else:
        kernel(*(a.reshape(outer, length, inner) for a in arrays), log, out.reshape(outer, length, inner))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    ax = _check_softmax_input(x, axis)
    out = np.empty_like(x)
    _run_rows(_ROW_KERNELS, _softmax_kernel, ax, (x,), False, out)
    return out


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    ax = _check_softmax_input(x, axis)
    out = np.empty_like(x)
    _run_rows(_ROW_KERNELS, _softmax_kernel, ax, (x,), True, out)
    return out


def softmax_backward(grad_out: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    ax = _check_softmax_backward(grad_out, y, axis)
    out = np.empty_like(y)
    _run_rows(_BACKWARD_ROW_KERNELS, _softmax_backward_kernel, ax, (grad_out, y), False, out)
    return out


def log_softmax_backward(grad_out: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    ax = _check_softmax_backward(grad_out, y, axis)
    out = np.empty_like(y)
    _run_rows(_BACKWARD_ROW_KERNELS, _softmax_backward_kernel, ax, (grad_out, y), True, out)
    return out


# ----------------------------------------------------------------------------- cross-entropy

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _row_softmax_lse(logits, i, probs):
    """Write row ``i``'s softmax into ``probs``; return (row max, log-sum-exp of the shifted row)."""
    m, s = _row_max_exp(logits, i, probs)
    inv = logits.dtype.type(1) / s
    for j in range(logits.shape[1]):
        probs[i, j] *= inv
    return m, ef.log(s)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _cross_entropy_index_row(logits, labels, eps, probs, losses, i):
    c = logits.shape[1]
    one = logits.dtype.type(1)
    m, lse = _row_softmax_lse(logits, i, probs)
    # -log p_j = lse - (x_j - m): never 0 * inf, so a -inf logit off the label gives no NaN.
    loss = -_shifted_minus(logits[i, labels[i]], m, lse)
    if eps != 0:
        total = logits.dtype.type(0)
        for j in range(c):
            total -= _shifted_minus(logits[i, j], m, lse)
        loss = (one - eps) * loss + eps / logits.dtype.type(c) * total
    losses[i] = loss


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _cross_entropy_prob_row(logits, target, eps, probs, losses, i):
    c = logits.shape[1]
    one = logits.dtype.type(1)
    eps_c = eps / logits.dtype.type(c)
    m, lse = _row_softmax_lse(logits, i, probs)
    loss = logits.dtype.type(0)
    for j in range(c):
        t = target[i, j] * (one - eps) + eps_c if eps != 0 else target[i, j]
        if t != 0:  # 0 * log 0 is 0: no NaN from a -inf logit the target does not weight
            loss -= t * _shifted_minus(logits[i, j], m, lse)
    losses[i] = loss


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
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

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _cross_entropy_index_kernel(logits, labels, eps, probs, losses):
    total = logits.dtype.type(0)
    for i in prange(logits.shape[0]):
        _cross_entropy_index_row(logits, labels, eps, probs, losses, i)
        total += losses[i]
    return total


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _cross_entropy_index_kernel_serial(logits, labels, eps, probs, losses):
    total = logits.dtype.type(0)
    for i in range(logits.shape[0]):
        _cross_entropy_index_row(logits, labels, eps, probs, losses, i)
        total += losses[i]
    return total


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _cross_entropy_prob_kernel(logits, target, eps, probs, losses):
    total = logits.dtype.type(0)
    for i in prange(logits.shape[0]):
        _cross_entropy_prob_row(logits, target, eps, probs, losses, i)
        total += losses[i]
    return total


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _cross_entropy_prob_kernel_serial(logits, target, eps, probs, losses):
    total = logits.dtype.type(0)
    for i in range(logits.shape[0]):
        _cross_entropy_prob_row(logits, target, eps, probs, losses, i)
        total += losses[i]
    return total


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=True)
def _cross_entropy_backward_kernel(probs, labels, target, is_index, eps, scale, out):
    # ``labels`` (N,) int64 when ``is_index``, else ``target`` (N, C): the unused one is empty.
    for i in prange(probs.shape[0]):
        _cross_entropy_backward_row(probs, labels, target, is_index, eps, scale, out, i)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _cross_entropy_backward_kernel_serial(probs, labels, target, is_index, eps, scale, out):
    for i in range(probs.shape[0]):
        _cross_entropy_backward_row(probs, labels, target, is_index, eps, scale, out, i)


@njit(cache=True)
def _label_bounds(labels):
    lo = hi = labels[0]
    for i in range(1, labels.size):
        v = labels[i]
        lo = v if v < lo else lo
        hi = v if v > hi else hi
    return lo, hi


def _index_labels(labels: np.ndarray, c: int) -> np.ndarray:
    """Integer ``labels`` as int64, refused unless in ``[0, c)`` (the reference's message).

    One compiled pass instead of NumPy's ``min()`` and ``max()``: at (128, 10) those two
    calls cost as much as the whole cross-entropy kernel.
    """
    index = labels.astype(np.int64, copy=False)
    if index.size:
        lo, hi = _label_bounds(index)
        if lo < 0 or hi >= c:
            raise ValueError(f"labels must be class indices in [0, {c}), got {lo if lo < 0 else hi}")
    return index


#: Below this many logits the serial twin runs (measured on the (128, 10) MNIST batch).
_PARALLEL_MIN_SIZE = 1 << 15


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, *, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    is_index, eps = _check_cross_entropy(logits, labels, reduction, label_smoothing, check_label_range=False)
    eps_t = logits.dtype.type(eps)
    probs = np.empty_like(logits)
    losses = np.empty(logits.shape[0], dtype=logits.dtype)
    parallel = logits.size >= _PARALLEL_MIN_SIZE
    if is_index:
        kernel = _cross_entropy_index_kernel if parallel else _cross_entropy_index_kernel_serial
        # One integer type for the kernel, whatever the caller's (int32 labels are common).
        total = kernel(logits, _index_labels(labels, logits.shape[1]), eps_t, probs, losses)
    else:
        kernel = _cross_entropy_prob_kernel if parallel else _cross_entropy_prob_kernel_serial
        total = kernel(logits, labels, eps_t, probs, losses)
    if reduction == "none":
        return losses, probs
    # The kernel's sum of the losses (in its dtype), not NumPy's: one call less at (128, 10).
    total = logits.dtype.type(total)
    if reduction == "mean":
        total = total / logits.dtype.type(max(logits.shape[0], 1))
    return np.asarray(total, dtype=logits.dtype), probs


def softmax_cross_entropy_backward(probs: np.ndarray, labels: np.ndarray, grad_loss: Any = 1.0, *,
                                   reduction: str = "mean", label_smoothing: float = 0.0) -> np.ndarray:
    is_index, eps = _check_cross_entropy(probs, labels, reduction, label_smoothing, name="probs",
                                         check_label_range=False)
    scale = _grad_loss_scale(grad_loss, reduction, probs)
    eps_t = probs.dtype.type(eps)
    out = np.empty_like(probs)
    if is_index:
        index, target = _index_labels(labels, probs.shape[1]), np.empty((0, 0), dtype=probs.dtype)
    else:
        index, target = np.empty(0, dtype=np.int64), labels
    parallel = probs.size >= _PARALLEL_MIN_SIZE
    kernel = _cross_entropy_backward_kernel if parallel else _cross_entropy_backward_kernel_serial
    kernel(probs, index, target, is_index, eps_t, scale, out)
    return out
