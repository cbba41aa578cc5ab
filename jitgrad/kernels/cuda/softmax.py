"""CUDA softmax, log-softmax and softmax cross-entropy, with their gradients.

The array is viewed as ``(outer, L, inner)`` with ``L`` the softmax axis, and
one block handles one ``(outer, inner)`` row: its threads stride over ``L``
and combine with shared-memory tree reductions (max, then sum of exponentials:
the log-sum-exp shift, so large logits never overflow and a ``-inf`` logit gets
probability 0). Rows are visited with a block-stride loop.

Cross-entropy reduces its per-row losses to the mean or sum on the device, so
a training step never copies the loss to the host. Integer labels are *not*
range-checked here (that needs a device-to-host copy); a label outside
``[0, C)`` gives a NaN loss for its row instead of reading out of bounds.
"""

from __future__ import annotations

import math
from typing import Any

from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._validate import check_array, check_same_dtype
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda._launch import MAX_THREADS_PER_BLOCK, block_max, block_sum
from jitgrad.kernels.reference.softmax import (
    _check_cross_entropy,
    _check_grad_loss,
    _check_softmax_backward,
    _check_softmax_input,
)

__all__: list[str] = kernel_names("softmax")  # the one list: kernels/_constants.py


# ----------------------------------------------------------------------------- softmax, log_softmax

@cuda.jit(device=True)
def _row_max_and_sum(x, base, length, inner, buf):
    """Max of one strided row and the sum of ``exp(x - max)`` over it (whole block)."""
    tid = cuda.threadIdx.x
    step = cuda.blockDim.x
    m = x.dtype.type(-math.inf)
    for j in range(tid, length, step):
        v = x[base + j * inner]
        if v > m or v != v:
            m = v
    m = block_max(buf, m)
    s = x.dtype.type(0)
    for j in range(tid, length, step):
        s += math.exp(x[base + j * inner] - m)
    s = block_sum(buf, s)
    return m, s


@cuda.jit
def _softmax_kernel(x, length, inner, log, out):
    # x, out: flat views of the (outer, L, inner) array.
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, x.dtype)
    rows = x.size // length
    for row in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        base = (row // inner) * length * inner + row % inner
        m, s = _row_max_and_sum(x, base, length, inner, buf)
        log_s = math.log(s)
        for j in range(cuda.threadIdx.x, length, cuda.blockDim.x):
            at = base + j * inner
            if log:
                out[at] = x[at] - m - log_s
            else:
                out[at] = math.exp(x[at] - m) / s


@cuda.jit
def _softmax_backward_kernel(g, y, length, inner, log, out):
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, y.dtype)
    rows = y.size // length
    for row in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        base = (row // inner) * length * inner + row % inner
        part = y.dtype.type(0)
        for j in range(cuda.threadIdx.x, length, cuda.blockDim.x):
            at = base + j * inner
            part += g[at] if log else g[at] * y[at]
        total = block_sum(buf, part)
        for j in range(cuda.threadIdx.x, length, cuda.blockDim.x):
            at = base + j * inner
            if log:
                out[at] = g[at] - math.exp(y[at]) * total
            else:
                out[at] = y[at] * (g[at] - total)


def _rows_view(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """``(rows, L, inner)`` of ``shape`` around ``axis``."""
    length = shape[axis]
    inner = math.prod(shape[axis + 1:])
    return math.prod(shape) // length if length else 0, length, inner


def _launch_rows(kernel: Any, shape: tuple[int, ...], axis: int, *arrays: Any, log: bool, out: Any) -> None:
    rows, length, inner = _rows_view(shape, axis)
    if rows == 0 or inner == 0:
        return
    blocks, threads = _launch.grid_rows(rows)
    kernel[blocks, threads](*(_launch.flat(a) for a in arrays), length, inner, log, _launch.flat(out))


def softmax(x: Any, axis: int = -1) -> Any:
    ax = _check_softmax_input(x, axis)
    out = _launch.empty(x.shape, x.dtype)
    _launch_rows(_softmax_kernel, tuple(x.shape), ax, x, log=False, out=out)
    return out


def log_softmax(x: Any, axis: int = -1) -> Any:
    ax = _check_softmax_input(x, axis)
    out = _launch.empty(x.shape, x.dtype)
    _launch_rows(_softmax_kernel, tuple(x.shape), ax, x, log=True, out=out)
    return out


def softmax_backward(grad_out: Any, y: Any, axis: int = -1) -> Any:
    ax = _check_softmax_backward(grad_out, y, axis)
    out = _launch.empty(y.shape, y.dtype)
    _launch_rows(_softmax_backward_kernel, tuple(y.shape), ax, grad_out, y, log=False, out=out)
    return out


def log_softmax_backward(grad_out: Any, y: Any, axis: int = -1) -> Any:
    ax = _check_softmax_backward(grad_out, y, axis)
    out = _launch.empty(y.shape, y.dtype)
    _launch_rows(_softmax_backward_kernel, tuple(y.shape), ax, grad_out, y, log=True, out=out)
    return out


# ----------------------------------------------------------------------------- cross-entropy

@cuda.jit(device=True)
def _probs_row(logits, row, buf, probs):
    """Write softmax of ``logits[row]`` into ``probs[row]``; return ``(max, log(sum exp(x - max)))``."""
    c = logits.shape[1]
    m, s = _row_max_and_sum(logits[row], 0, c, 1, buf)
    for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
        probs[row, j] = math.exp(logits[row, j] - m) / s
    return m, math.log(s)


@cuda.jit
def _cross_entropy_index_kernel(logits, labels, eps, probs, losses):
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, logits.dtype)
    n, c = logits.shape
    t = logits.dtype.type
    zero, one, eps_per_class = t(0), t(1), eps / t(c)
    for row in range(cuda.blockIdx.x, n, cuda.gridDim.x):
        m, lse = _probs_row(logits, row, buf, probs)
        # -log p_j = lse - (x_j - m); the smoothing term needs the sum over all classes.
        part = zero
        if eps != zero:
            for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
                part += lse - (logits[row, j] - m)
        total = block_sum(buf, part)
        if cuda.threadIdx.x == 0:
            label = labels[row]
            if 0 <= label < c:
                loss = (one - eps) * (lse - (logits[row, label] - m))
                if eps != zero:
                    loss += eps_per_class * total
                losses[row] = loss
            else:
                losses[row] = t(math.nan)


@cuda.jit
def _cross_entropy_prob_kernel(logits, labels, eps, probs, losses):
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, logits.dtype)
    n, c = logits.shape
    t = logits.dtype.type
    zero, one_minus_eps, eps_per_class = t(0), t(1) - eps, eps / t(c)
    for row in range(cuda.blockIdx.x, n, cuda.gridDim.x):
        m, lse = _probs_row(logits, row, buf, probs)
        part = zero
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            target = labels[row, j] * one_minus_eps + eps_per_class
            # A zero target contributes nothing, even against a -inf logit (0 * inf would be NaN).
            if target != zero:
                part += target * (lse - (logits[row, j] - m))
        total = block_sum(buf, part)
        if cuda.threadIdx.x == 0:
            losses[row] = total


@cuda.jit
def _sum_scaled_kernel(values, scale, out):
    # One block: a deterministic tree sum of every value, times scale, into out[0].
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, values.dtype)
    part = values.dtype.type(0)
    for i in range(cuda.threadIdx.x, values.size, cuda.blockDim.x):
        part += values[i]
    total = block_sum(buf, part)
    if cuda.threadIdx.x == 0:
        out[0] = total * scale


@cuda.jit
def _cross_entropy_backward_kernel(probs, labels, eps, scale, grad_loss, grad_loss_stride, use_grad_loss, out):
    # labels are class indices (N,) or probabilities (N, C). ``labels.ndim`` is a compile-time constant, so
    # each specialisation keeps one branch of the target (the code of two kernels, written once).
    n, c = probs.shape
    eps_per_class, one_minus_eps = eps / probs.dtype.type(c), probs.dtype.type(1) - eps
    for i in range(cuda.grid(1), n * c, cuda.gridsize(1)):
        row = i // c
        j = i - row * c
        if labels.ndim == 1:
            target = eps_per_class
            if labels[row] == j:
                target += one_minus_eps
        else:
            target = labels[row, j] * one_minus_eps + eps_per_class
        factor = scale * grad_loss[row * grad_loss_stride] if use_grad_loss else scale
        out[row, j] = (probs[row, j] - target) * factor


def softmax_cross_entropy(logits: Any, labels: Any, *, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> tuple[Any, Any]:
    """The reduced loss (``"mean"``, ``"sum"``) is a device array of shape ``()``, reduced on the device."""
    is_index, eps = _check_cross_entropy(logits, labels, reduction, label_smoothing, check_label_range=False)
    n, c = logits.shape
    probs = _launch.empty((n, c), logits.dtype)
    losses = _launch.empty((n,), logits.dtype)
    if n:
        kernel = _cross_entropy_index_kernel if is_index else _cross_entropy_prob_kernel
        blocks, threads = _launch.grid_rows(n)
        kernel[blocks, threads](logits, labels, logits.dtype.type(eps), probs, losses)
    if reduction == "none":
        return losses, probs
    loss = _launch.empty((1,), logits.dtype)
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    _sum_scaled_kernel[1, _launch.threads_per_block()](losses, logits.dtype.type(scale), loss)
    return loss.reshape(()), probs


def softmax_cross_entropy_backward(probs: Any, labels: Any, grad_loss: Any = 1.0, *, reduction: str = "mean",
                                   label_smoothing: float = 0.0) -> Any:
    """``grad_loss`` for ``"mean"``/``"sum"`` may also be a device array of shape ``()`` or ``(1,)``,
    read on the device (no host round-trip).
    """
    _, eps = _check_cross_entropy(probs, labels, reduction, label_smoothing, name="probs", check_label_range=False)
    n, c = probs.shape
    if reduction != "none" and _launch.is_device_array(grad_loss):
        # A device scalar (the forward's loss gradient) is read by the kernel: no host round-trip.
        check_array("grad_loss", grad_loss)
        check_same_dtype(probs=probs, grad_loss=grad_loss)
        if grad_loss.size != 1 or grad_loss.ndim > 1:
            raise ValueError(f"grad_loss must be a scalar (shape () or (1,)) for reduction={reduction!r}, "
                             f"got shape {tuple(grad_loss.shape)}")
        scale = 1.0 / n if (reduction == "mean" and n) else 1.0
        gl, stride, use_gl = grad_loss.reshape(1), 0, True
    elif reduction == "none":
        scale, gl, stride, use_gl = 1.0, _check_grad_loss(grad_loss, reduction, probs), 1, True
    else:
        g = _check_grad_loss(grad_loss, reduction, probs)
        scale = g / n if (reduction == "mean" and n) else g
        # probs stands in for the kernel's grad_loss argument (one signature); it is never read.
        gl, stride, use_gl = _launch.flat(probs), 0, False
    out = _launch.empty((n, c), probs.dtype)
    if n:
        blocks, threads = _launch.grid_1d(n * c)
        _cross_entropy_backward_kernel[blocks, threads](probs, labels, *_launch.typed(probs.dtype, eps, scale), gl,
                                                        stride, use_gl, out)
    return out
