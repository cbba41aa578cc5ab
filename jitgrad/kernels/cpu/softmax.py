"""CPU softmax, log-softmax and softmax cross-entropy: Numba ``@njit`` row kernels.

Softmax over any axis uses one kernel: the contiguous input is viewed (for
free) as ``(outer, length, inner)`` with the softmax axis in the middle, and
``prange`` runs over ``outer``. Every reduction stays inside one ``outer``
slice, so threads never share an accumulator. Cross-entropy runs a block of
rows per iteration, writes each row's loss to ``losses[i]`` and returns their
sum (a ``prange`` reduction).

The common case, softmax over the last axis, runs row kernels on the 2-D view
so every row is unit-stride and the exp loop vectorises (``_elementary.exp_nonpos``,
the ``exp`` of arguments that cannot be positive, ``x - max`` and log-probabilities:
8 float32 lanes on AVX2, 16 on AVX-512); rows shorter than 64 go by blocks of rows with one
flat exp loop per block (``_softmax_rows``). log-softmax is
``(x - max) - log(sum)`` in that order, as the reference: ``x - max`` is exact
for nearby logits, whereas ``x - (max + log(sum))`` rounds ``max + log(sum)``
at ``max``'s magnitude (``[1e5, 1e5, 1e5 - 1]`` lost two decimal digits).

Every row kernel has a serial twin, run below ``_PARALLEL_MIN_SIZE`` elements (``_LIGHT_PARALLEL_MIN_SIZE`` for the backward kernels without an ``exp``),
and the wrappers take plain 2-D calls (float32/float64 C-contiguous ndarrays,
last axis, int64 labels) past the reference's checks with a few attribute
reads: at (128, 10) the full checks cost as much as the kernel. Cross-entropy
checks its class indices inside the kernel (a label out of range makes that
row's loss NaN; the wrapper then names the label as the reference does).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import prange

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cpu import _elementary as ef
from jitgrad.kernels.cpu._jit import FASTMATH as _FASTMATH, PRANGE_ONLY, njit
from jitgrad.kernels.cpu._jit import FLOAT_DTYPES as _FLOATS
from jitgrad.kernels.cpu._softmax_rows import SHORT_ROW as _SHORT_ROW
from jitgrad.kernels.cpu._softmax_rows import block_rows as _block_rows
from jitgrad.kernels.cpu._softmax_rows import flat_exp_into as _flat_exp_into
from jitgrad.kernels.cpu._softmax_rows import block_max_exp as _block_max_exp
from jitgrad.kernels.cpu._softmax_rows import cross_entropy_index_rows as _cross_entropy_index_rows
from jitgrad.kernels.cpu._softmax_rows import cross_entropy_prob_rows as _cross_entropy_prob_rows
from jitgrad.kernels.cpu._softmax_rows import row_max_exp as _row_max_exp
from jitgrad.kernels.cpu._softmax_rows import shifted_minus as _shifted_minus
from jitgrad.kernels.reference.softmax import REDUCTIONS as _REDUCTIONS
from jitgrad.kernels.reference.softmax import (
    _check_cross_entropy,
    _check_softmax_backward,
    _check_softmax_input,
    _grad_loss_scale,
)

__all__: list[str] = kernel_names("softmax")  # the one list: kernels/_constants.py


# ----------------------------------------------------------------------------- softmax, log_softmax

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


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _softmax_block(x, log, out, r0, r1, m, s):
    _block_max_exp(x, r0, r1, out, m, s)
    c = x.shape[1]
    if log:
        for k in range(r1 - r0):
            s[k] = ef.log(s[k])
        for i in range(r0, r1):
            mi, ls = m[i - r0], s[i - r0]
            for j in range(c):
                out[i, j] = _shifted_minus(x[i, j], mi, ls)
    else:
        for i in range(r0, r1):
            inv = x.dtype.type(1) / s[i - r0]
            for j in range(c):
                out[i, j] *= inv


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _softmax_rows_kernel(x, log, out):
    # x, out: (rows, length) C-contiguous; softmax (or log-softmax when ``log``) of each row.
    n, c = x.shape
    if c < _SHORT_ROW:
        rows = _block_rows(c)
        for b in prange((n + rows - 1) // rows):
            m = np.empty(rows, x.dtype)
            s = np.empty(rows, x.dtype)
            _softmax_block(x, log, out, b * rows, min(n, b * rows + rows), m, s)
    else:
        for i in prange(n):
            _softmax_row(x, log, out, i)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _softmax_rows_kernel_serial(x, log, out):
    n, c = x.shape
    if c < _SHORT_ROW:
        rows = _block_rows(c)
        m = np.empty(rows, x.dtype)
        s = np.empty(rows, x.dtype)
        for r0 in range(0, n, rows):
            _softmax_block(x, log, out, r0, min(n, r0 + rows), m, s)
    else:
        for i in range(n):
            _softmax_row(x, log, out, i)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
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
                e = ef.exp_nonpos(x[o, j, k] - m[k])
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
    # softmax: y * (g - sum(g * y)); log-softmax: g - exp(y) * sum(g). The test of ``log`` outside
    # the loops: inside them, log-softmax's took 67 us at 128 x 1000 against 64 (Zen 4, AVX-512).
    acc = y.dtype.type(0)
    c = y.shape[1]
    if log:
        for j in range(c):
            acc += grad_out[i, j]
        for j in range(c):
            out[i, j] = grad_out[i, j] - ef.exp_nonpos(y[i, j]) * acc
    else:
        for j in range(c):
            acc += grad_out[i, j] * y[i, j]
        for j in range(c):
            out[i, j] = y[i, j] * (grad_out[i, j] - acc)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _log_softmax_backward_block(grad_out, y, out, r0, r1):
    # g - exp(y) * sum(g) for short rows r0:r1, the exponentials of the block in one flat loop.
    c = y.shape[1]
    _flat_exp_into(y, r0 * c, r1 * c, out)
    for i in range(r0, r1):
        acc = y.dtype.type(0)
        for j in range(c):
            acc += grad_out[i, j]
        for j in range(c):
            out[i, j] = grad_out[i, j] - out[i, j] * acc


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _softmax_backward_rows_kernel(grad_out, y, log, out):
    n, c = y.shape
    if log and c < _SHORT_ROW:
        rows = _block_rows(c)
        for b in prange((n + rows - 1) // rows):
            _log_softmax_backward_block(grad_out, y, out, b * rows, min(n, b * rows + rows))
    else:
        for i in prange(n):
            _softmax_backward_row(grad_out, y, log, out, i)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _softmax_backward_rows_kernel_serial(grad_out, y, log, out):
    n, c = y.shape
    if log and c < _SHORT_ROW:
        _log_softmax_backward_block(grad_out, y, out, 0, n)
    else:
        for i in range(n):
            _softmax_backward_row(grad_out, y, log, out, i)


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
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
                    out[o, j, k] = grad_out[o, j, k] - ef.exp_nonpos(y[o, j, k]) * acc[k]
                else:
                    out[o, j, k] = y[o, j, k] * (grad_out[o, j, k] - acc[k])


_ROW_KERNELS = (_softmax_rows_kernel, _softmax_rows_kernel_serial)
_BACKWARD_ROW_KERNELS = (_softmax_backward_rows_kernel, _softmax_backward_rows_kernel_serial)


def _row_kernel(row_kernels, backward: bool, log: bool, size: int):
    """The parallel row kernel of ``row_kernels`` from its size on, else the serial twin: from
    ``_PARALLEL_MIN_SIZE`` elements when there is an ``exp`` per element (forward, log-softmax
    backward), from ``_LIGHT_PARALLEL_MIN_SIZE`` for softmax backward."""
    min_size = _LIGHT_PARALLEL_MIN_SIZE if backward and not log else _PARALLEL_MIN_SIZE
    return row_kernels[0] if size >= min_size else row_kernels[1]


def _run_rows(row_kernels, kernel, axis: int, arrays: tuple[np.ndarray, ...], log: bool, out: np.ndarray) -> None:
    """Call a 2-D row kernel (parallel, or serial below its size: :func:`_row_kernel`) when ``axis`` has no
    trailing dimensions of size > 1, else the 3-D one."""
    # math.prod on the shape tuple, not np.prod: at (128, 10) the views cost more than the kernel.
    shape = out.shape
    outer, length, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    if inner == 1:
        row_kernel = _row_kernel(row_kernels, row_kernels is _BACKWARD_ROW_KERNELS, log, out.size)
        if out.ndim == 2 and axis == 1:  # already (outer, length); a (n, 1) array over axis 0 is not
            row_kernel(*arrays, log, out)
        else:
            row_kernel(*(a.reshape(outer, length) for a in arrays), log, out.reshape(outer, length))
    else:
        kernel(*(a.reshape(outer, length, inner) for a in arrays), log, out.reshape(outer, length, inner))


def _plain_rows(x: Any, axis: Any = 1) -> bool:
    """True for the common case, tested in a fraction of the full checks' time (at (128, 10) they
    cost as much as the kernel): a float32/float64 C-contiguous ``(n, c)`` ndarray, ``c > 0``, over
    its last axis. Anything else takes the full checks (which raise, or accept it)."""
    return (type(x) is np.ndarray and x.ndim == 2 and type(axis) is int and (axis == -1 or axis == 1)
            and x.dtype in _FLOATS and x.shape[1] > 0 and x.flags.c_contiguous)


def _empty(x: np.ndarray) -> np.ndarray:
    # np.empty_like costs 2x this at (128, 10).
    return np.empty(x.size, x.dtype).reshape(x.shape)


def _forward(x: np.ndarray, axis: Any, log: bool) -> np.ndarray:
    if _plain_rows(x, axis):
        out = _empty(x)
        _row_kernel(_ROW_KERNELS, False, log, out.size)(x, log, out)
        return out
    ax = _check_softmax_input(x, axis)
    out = np.empty_like(x)
    _run_rows(_ROW_KERNELS, _softmax_kernel, ax, (x,), log, out)
    return out


def _backward(grad_out: np.ndarray, y: np.ndarray, axis: Any, log: bool) -> np.ndarray:
    if (_plain_rows(y, axis) and type(grad_out) is np.ndarray and grad_out.dtype is y.dtype
            and grad_out.shape == y.shape and grad_out.flags.c_contiguous):
        out = _empty(y)
        _row_kernel(_BACKWARD_ROW_KERNELS, True, log, out.size)(grad_out, y, log, out)
        return out
    ax = _check_softmax_backward(grad_out, y, axis)
    out = np.empty_like(y)
    _run_rows(_BACKWARD_ROW_KERNELS, _softmax_backward_kernel, ax, (grad_out, y), log, out)
    return out


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return _forward(x, axis, False)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return _forward(x, axis, True)


def softmax_backward(grad_out: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return _backward(grad_out, y, axis, False)


def log_softmax_backward(grad_out: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return _backward(grad_out, y, axis, True)


# ----------------------------------------------------------------------------- cross-entropy

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _cross_entropy_backward_row(probs, labels, target, is_index, eps, scale, out, i):
    c = probs.shape[1]
    one = probs.dtype.type(1)
    eps_c = eps / probs.dtype.type(c)
    s = scale[i] if scale.size > 1 else scale[0]  # one factor for every row, or one per row
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
# microseconds, less than it takes to wake the worker threads. Rows go in blocks of
# ``_block_rows(C)`` (the short-row path's block; 4 rows of 1000 classes).
# The index and probability kernels are written out on purpose: one kernel taking both
# operands and an ``is_index`` flag (the backward's form) measured 1.15-1.26x slower at
# (128, 10) and up to 1.17x at (4096, 10), 1 thread.

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _cross_entropy_index_kernel(logits, labels, eps, probs, losses):
    n, c = logits.shape
    rows = _block_rows(c)
    total = logits.dtype.type(0)
    for b in prange((n + rows - 1) // rows):
        total += _cross_entropy_index_rows(logits, labels, eps, probs, losses, b * rows, min(n, b * rows + rows))
    return total


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _cross_entropy_index_kernel_serial(logits, labels, eps, probs, losses):
    n, c = logits.shape
    rows = _block_rows(c)
    total = logits.dtype.type(0)
    for r0 in range(0, n, rows):
        total += _cross_entropy_index_rows(logits, labels, eps, probs, losses, r0, min(n, r0 + rows))
    return total


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
def _cross_entropy_prob_kernel(logits, target, eps, probs, losses):
    n, c = logits.shape
    rows = _block_rows(c)
    total = logits.dtype.type(0)
    for b in prange((n + rows - 1) // rows):
        total += _cross_entropy_prob_rows(logits, target, eps, probs, losses, b * rows, min(n, b * rows + rows))
    return total


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _cross_entropy_prob_kernel_serial(logits, target, eps, probs, losses):
    n, c = logits.shape
    rows = _block_rows(c)
    total = logits.dtype.type(0)
    for r0 in range(0, n, rows):
        total += _cross_entropy_prob_rows(logits, target, eps, probs, losses, r0, min(n, r0 + rows))
    return total


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, parallel=PRANGE_ONLY)
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


#: Below this many logits the serial twin runs: the serial row loops take ~1.1 ns a logit
#: (float32, AVX2), and waking the pool's second thread 80-130 us on a 2-vCPU VM (the activations'
#: ``_PARALLEL_MIN_SIZE`` has the measurements): softmax at 128x1000 took 151 us serially and
#: 132 us back to back in parallel, 186-264 us in bench/report.py's interleaved samples.
_PARALLEL_MIN_SIZE = 1 << 17
#: ... and below this many for the kernels without an ``exp`` per element (softmax backward,
#: cross-entropy backward): a few loads and FMAs an element, memory-bound like relu. At 128x1000
#: on 2 threads (AMD EPYC, OMP_WAIT_POLICY=PASSIVE) waking the second thread made them 2.7x
#: slower than their serial twins (softmax bwd 91 vs 33 us, cross-entropy bwd 106 vs 41 us); at
#: 4096x1000 the parallel kernels are 1.8x faster.
_LIGHT_PARALLEL_MIN_SIZE = 1 << 20


_INT64 = np.dtype(np.int64)


def _plain_targets(logits: Any, labels: Any, reduction: Any, label_smoothing: Any) -> bool:
    """The common call, tested in a fraction of the full checks' time: plain ``(n, c)`` logits
    (see :func:`_plain_rows`), C-contiguous int64 ``(n,)`` labels or a ``(n, c)`` target of the logits'
    dtype, a known reduction, a float smoothing in [0, 1]. Label values are checked by the kernels."""
    if not (_plain_rows(logits) and type(labels) is np.ndarray and labels.flags.c_contiguous
            and type(reduction) is str and reduction in _REDUCTIONS
            and type(label_smoothing) is float and 0.0 <= label_smoothing <= 1.0):
        return False
    if labels.dtype is _INT64:
        return labels.shape == (logits.shape[0],)
    return labels.dtype is logits.dtype and labels.shape == logits.shape


def _plain_scalar(grad_loss: Any) -> float | None:
    """A finite Python float or 0-d float32/float64 ndarray (what autograd passes) as a float, else None."""
    if type(grad_loss) is float:
        v = grad_loss
    elif type(grad_loss) is np.ndarray and grad_loss.ndim == 0 and grad_loss.dtype in _FLOATS:
        v = float(grad_loss)
    else:
        return None
    return v if math.isfinite(v) else None


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, *, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    if _plain_targets(logits, labels, reduction, label_smoothing):
        is_index, eps, index = labels.ndim == 1, label_smoothing, labels
        probs = _empty(logits)
    else:
        is_index, eps = _check_cross_entropy(logits, labels, reduction, label_smoothing, check_label_range=False)
        # One integer type for the kernel, whatever the caller's (int32 labels are common).
        index = labels.astype(np.int64, copy=False) if is_index else labels
        probs = np.empty_like(logits)
    eps_t = logits.dtype.type(eps)
    losses = np.empty(logits.shape[0], dtype=logits.dtype)
    parallel = logits.size >= _PARALLEL_MIN_SIZE
    if is_index:
        kernel = _cross_entropy_index_kernel if parallel else _cross_entropy_index_kernel_serial
    else:
        kernel = _cross_entropy_prob_kernel if parallel else _cross_entropy_prob_kernel_serial
    total = kernel(logits, index, eps_t, probs, losses)
    if is_index and math.isnan(total):  # from the logits, or a label out of range (the kernels' mark)
        _index_labels(index, logits.shape[1])
    if reduction == "none":
        return losses, probs
    # The kernel's sum of the losses (in its dtype), not NumPy's: one call less at (128, 10).
    total = logits.dtype.type(total)
    if reduction == "mean":
        total = total / logits.dtype.type(max(logits.shape[0], 1))
    return np.asarray(total, dtype=logits.dtype), probs


def softmax_cross_entropy_backward(probs: np.ndarray, labels: np.ndarray, grad_loss: Any = 1.0, *,
                                   reduction: str = "mean", label_smoothing: float = 0.0) -> np.ndarray:
    g = _plain_scalar(grad_loss) if reduction != "none" else None
    if g is not None and _plain_targets(probs, labels, reduction, label_smoothing):
        is_index, eps = labels.ndim == 1, label_smoothing
        n = probs.shape[0]
        scale = np.array((g / n if reduction == "mean" and n else g,), probs.dtype)  # np.full: 0.5 us more
        out = _empty(probs)
    else:
        is_index, eps = _check_cross_entropy(probs, labels, reduction, label_smoothing, name="probs",
                                             check_label_range=False)
        scale = _grad_loss_scale(grad_loss, reduction, probs)
        out = np.empty_like(probs)
    eps_t = probs.dtype.type(eps)
    if is_index:
        index, target = _index_labels(labels, probs.shape[1]), _NO_TARGET[probs.dtype.char]
    else:
        index, target = _NO_INDEX, labels
    parallel = probs.size >= _LIGHT_PARALLEL_MIN_SIZE
    kernel = _cross_entropy_backward_kernel if parallel else _cross_entropy_backward_kernel_serial
    kernel(probs, index, target, is_index, eps_t, scale, out)
    return out


#: The unused operand of the backward kernel (never written, so shared).
_NO_INDEX = np.empty(0, dtype=np.int64)
_NO_TARGET = {"f": np.empty((0, 0), np.float32), "d": np.empty((0, 0), np.float64)}
