"""CUDA recurrent layers: one launch per time step, no host round trip inside the loop.

Per call (one layer, one direction): the input projection of every step is
one ``matmul`` launch; then one step kernel per time step, with one thread
per ``(sequence, hidden unit)``: it computes the unit's ``G`` recurrent dot
products with ``W_hh`` (rows ``k*H + j``) from the previous state, the
gates, the cell update and writes the new state, ``y`` and what backward
needs. The hidden state is double-buffered (a step reads a whole row of the
old state while other threads write the new one); the cell state belongs
to one thread and is updated in place.

Backward is one launch per step in reverse plus a final one: the thread of
unit ``(b, j)`` first gathers ``dh[b, j]`` from the gate gradients the
previous launch wrote (``sum_k dG[t_prev, b, k] W_hh[k, j]``: a gather, no
atomics, deterministic), then computes its unit's gate gradients for this
step. The last launch (``step = -1``) only gathers, giving ``grad_h0``.
Weight gradients are ``matmul`` launches over the saved gate gradients of
every step, bias gradients one column sum.

The lengths (host metadata) are copied to the device once per call.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda.activations import _sigmoid  # the overflow-free logistic, written once
from jitgrad.kernels.cuda import elementwise as ew
from jitgrad.kernels.cuda import reduction as red
from jitgrad.kernels.cuda.matmul import matmul
from jitgrad.kernels.reference.recurrent import (
    SAVED, check_nonlinearity, check_recurrent, check_recurrent_backward,
)

__all__: list[str] = kernel_names("recurrent")  # the one list: kernels/_constants.py

_LSTM, _GRU, _RNN = 0, 1, 2


# ----------------------------------------------------------------------------- device helpers

@cuda.jit(device=True)
def _time(s, length, reverse):
    return length - 1 - s if reverse else s


@cuda.jit(device=True)
def _previous_index(t, length, reverse):
    if reverse:
        return t + 1 if t + 1 < length else -1
    return t - 1


@cuda.jit(device=True)
def _hidden_dot(h, b, w_hh, row):
    acc = h[b, 0] * w_hh[row, 0]
    for p in range(1, h.shape[1]):
        acc += h[b, p] * w_hh[row, p]
    return acc


# ----------------------------------------------------------------------------- forward steps

@cuda.jit
def _forward_step_kernel(cell, relu, s, xp, b_ih, w_hh, b_hh, lengths, reverse, one, h_in, h_out, c, y, saved):
    batch, H = h_in.shape
    for idx in range(cuda.grid(1), batch * H, cuda.gridsize(1)):
        b = idx // H
        j = idx - b * H
        length = lengths[b]
        if s >= length:
            h_out[b, j] = h_in[b, j]
            continue
        t = _time(s, length, reverse)
        row = t * batch + b
        if cell == _LSTM:
            i = _sigmoid(xp[row, j] + b_ih[j] + _hidden_dot(h_in, b, w_hh, j) + b_hh[j])
            f = _sigmoid(xp[row, H + j] + b_ih[H + j] + _hidden_dot(h_in, b, w_hh, H + j) + b_hh[H + j])
            g = math.tanh(xp[row, 2 * H + j] + b_ih[2 * H + j] + _hidden_dot(h_in, b, w_hh, 2 * H + j)
                          + b_hh[2 * H + j])
            o = _sigmoid(xp[row, 3 * H + j] + b_ih[3 * H + j] + _hidden_dot(h_in, b, w_hh, 3 * H + j)
                         + b_hh[3 * H + j])
            cn = f * c[b, j] + i * g
            hn = o * math.tanh(cn)
            c[b, j] = cn
            saved[t, b, j] = i
            saved[t, b, H + j] = f
            saved[t, b, 2 * H + j] = g
            saved[t, b, 3 * H + j] = o
            saved[t, b, 4 * H + j] = cn
        elif cell == _GRU:
            r = _sigmoid(xp[row, j] + b_ih[j] + _hidden_dot(h_in, b, w_hh, j) + b_hh[j])
            z = _sigmoid(xp[row, H + j] + b_ih[H + j] + _hidden_dot(h_in, b, w_hh, H + j) + b_hh[H + j])
            hh = _hidden_dot(h_in, b, w_hh, 2 * H + j) + b_hh[2 * H + j]
            n = math.tanh(xp[row, 2 * H + j] + b_ih[2 * H + j] + r * hh)
            hn = (one - z) * n + z * h_in[b, j]
            saved[t, b, j] = r
            saved[t, b, H + j] = z
            saved[t, b, 2 * H + j] = n
            saved[t, b, 3 * H + j] = hh
        else:
            pre = xp[row, j] + b_ih[j] + _hidden_dot(h_in, b, w_hh, j) + b_hh[j]
            if relu:
                hn = pre if (pre > 0 or pre != pre) else one - one
            else:
                hn = math.tanh(pre)
        h_out[b, j] = hn
        y[t, b, j] = hn


# ----------------------------------------------------------------------------- backward steps

@cuda.jit
def _backward_step_kernel(cell, relu, s, grad_y, y, saved, h0, c0, w_hh, lengths, reverse, one, dh, dc, direct,
                          grad_gx, grad_gh, hprev):
    steps, batch, H = y.shape
    k_total = w_hh.shape[0]
    for idx in range(cuda.grid(1), batch * H, cuda.gridsize(1)):
        b = idx // H
        j = idx - b * H
        length = lengths[b]
        # dh of this step: gathered from the step processed by the previous launch, if it was valid.
        sp = s + 1
        if sp < steps and sp < length:
            tq = _time(sp, length, reverse)
            acc = direct[b, j]
            for k in range(k_total):
                acc += grad_gh[tq, b, k] * w_hh[k, j]
            dh[b, j] = acc
        if s < 0 or s >= length:
            continue
        t = _time(s, length, reverse)
        tp = _previous_index(t, length, reverse)
        hp = y[tp, b, j] if tp >= 0 else h0[b, j]
        hprev[t, b, j] = hp
        d = dh[b, j] + grad_y[t, b, j]
        if cell == _LSTM:
            i = saved[t, b, j]
            f = saved[t, b, H + j]
            g = saved[t, b, 2 * H + j]
            o = saved[t, b, 3 * H + j]
            tc = math.tanh(saved[t, b, 4 * H + j])
            cp = saved[tp, b, 4 * H + j] if tp >= 0 else c0[b, j]
            dct = dc[b, j] + d * o * (one - tc * tc)
            grad_gx[t, b, j] = dct * g * i * (one - i)
            grad_gx[t, b, H + j] = dct * cp * f * (one - f)
            grad_gx[t, b, 2 * H + j] = dct * i * (one - g * g)
            grad_gx[t, b, 3 * H + j] = d * tc * o * (one - o)
            dc[b, j] = dct * f
            direct[b, j] = one - one
        elif cell == _GRU:
            r = saved[t, b, j]
            z = saved[t, b, H + j]
            n = saved[t, b, 2 * H + j]
            hh = saved[t, b, 3 * H + j]
            gn = d * (one - z) * (one - n * n)
            gr = gn * hh * r * (one - r)
            gz = d * (hp - n) * z * (one - z)
            grad_gx[t, b, j] = gr
            grad_gx[t, b, H + j] = gz
            grad_gx[t, b, 2 * H + j] = gn
            grad_gh[t, b, j] = gr
            grad_gh[t, b, H + j] = gz
            grad_gh[t, b, 2 * H + j] = gn * r
            direct[b, j] = d * z
        else:
            h = y[t, b, j]
            if relu:
                grad_gx[t, b, j] = d if h > 0 else one - one
            else:
                grad_gx[t, b, j] = d * (one - h * h)
            direct[b, j] = one - one


# ----------------------------------------------------------------------------- drivers

def _bias(b: Any, size: int, dtype: np.dtype) -> Any:
    return b if b is not None else ew.zeros((size,), dtype)


def _forward(cell: int, relu: bool, x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any,
             lengths: np.ndarray, reverse: bool, saved_width: int) -> tuple[Any, ...]:
    steps, batch, inputs = x.shape
    hidden = h0.shape[1]
    n = w_hh.shape[0]
    dtype = np.dtype(x.dtype)
    xp = matmul(x.reshape(steps * batch, inputs), w_ih, trans_b=True)
    y = ew.zeros((steps, batch, hidden), dtype)
    saved = ew.zeros((steps, batch, max(saved_width, 1)), dtype)
    buffers = (ew.copy(h0), _launch.empty((batch, hidden), dtype))
    c = ew.copy(c0) if c0 is not None else buffers[1]
    d_lengths = cuda.to_device(lengths)
    bi, bh, one = _bias(b_ih, n, dtype), _bias(b_hh, n, dtype), dtype.type(1)
    for s in range(steps):
        _launch.launch_1d(_forward_step_kernel, batch * hidden, cell, relu, s, xp, bi, w_hh, bh, d_lengths, reverse, one,
                   buffers[s % 2], buffers[(s + 1) % 2], c, y, saved)
    return y, buffers[steps % 2], c, saved


def _backward(cell: int, relu: bool, grad_y: Any, grad_h_n: Any, grad_c_n: Any, x: Any, h0: Any, c0: Any,
              w_ih: Any, w_hh: Any, y: Any, saved: Any, lengths: np.ndarray, reverse: bool) -> tuple[Any, ...]:
    steps, batch, inputs = x.shape
    hidden = h0.shape[1]
    n = w_hh.shape[0]
    dtype = np.dtype(x.dtype)
    dh = ew.copy(grad_h_n)
    dc = ew.copy(grad_c_n) if grad_c_n is not None else dh
    direct = ew.zeros((batch, hidden), dtype)
    grad_gx = ew.zeros((steps, batch, n), dtype)
    grad_gh = ew.zeros((steps, batch, n), dtype) if cell == _GRU else grad_gx
    hprev = ew.zeros((steps, batch, hidden), dtype)
    d_lengths = cuda.to_device(lengths)
    one = dtype.type(1)
    for s in range(steps - 1, -2, -1):
        _launch.launch_1d(_backward_step_kernel, batch * hidden, cell, relu, s, grad_y, y, saved, h0,
                   c0 if c0 is not None else h0, w_hh, d_lengths, reverse, one, dh, dc, direct, grad_gx, grad_gh,
                   hprev)
    gx = grad_gx.reshape(steps * batch, n)
    gh = grad_gh.reshape(steps * batch, n)
    grad_x = matmul(gx, w_ih).reshape(steps, batch, inputs)
    grad_w_ih = matmul(gx, x.reshape(steps * batch, inputs), trans_a=True)
    grad_w_hh = matmul(gh, hprev.reshape(steps * batch, hidden), trans_a=True)
    grad_b_ih = red.sum(gx, axis=0)
    grad_b_hh = red.sum(gh, axis=0)
    return grad_x, dh, dc, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh


def _dummy_saved(y: Any) -> Any:
    return ew.zeros((y.shape[0], y.shape[1], 1), np.dtype(y.dtype))


# ----------------------------------------------------------------------------- public kernels

def lstm(x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None, *,
         lengths: np.ndarray | None = None, reverse: bool = False) -> tuple[Any, Any, Any, Any]:
    _, _, _, hidden, _, lengths = check_recurrent("lstm", x, {"h0": h0, "c0": c0}, w_ih, w_hh, b_ih, b_hh, lengths)
    return _forward(_LSTM, False, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, bool(reverse), SAVED["lstm"] * hidden)


def lstm_backward(grad_y: Any, grad_h_n: Any, grad_c_n: Any, x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any,
                  y: Any, saved: Any, *, lengths: np.ndarray | None = None, reverse: bool = False
                  ) -> tuple[Any, ...]:
    lengths = check_recurrent_backward("lstm", {"grad_y": grad_y, "grad_h_n": grad_h_n, "grad_c_n": grad_c_n}, x,
                                       {"h0": h0, "c0": c0}, w_ih, w_hh, y, saved, lengths)[-1]
    return _backward(_LSTM, False, grad_y, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, y, saved, lengths,
                     bool(reverse))


def gru(x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None, *,
        lengths: np.ndarray | None = None, reverse: bool = False) -> tuple[Any, Any, Any]:
    _, _, _, hidden, _, lengths = check_recurrent("gru", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh, lengths)
    y, h, _, saved = _forward(_GRU, False, x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, bool(reverse),
                              SAVED["gru"] * hidden)
    return y, h, saved


def gru_backward(grad_y: Any, grad_h_n: Any, x: Any, h0: Any, w_ih: Any, w_hh: Any, y: Any, saved: Any, *,
                 lengths: np.ndarray | None = None, reverse: bool = False) -> tuple[Any, ...]:
    lengths = check_recurrent_backward("gru", {"grad_y": grad_y, "grad_h_n": grad_h_n}, x, {"h0": h0}, w_ih, w_hh,
                                       y, saved, lengths)[-1]
    grads = _backward(_GRU, False, grad_y, grad_h_n, None, x, h0, None, w_ih, w_hh, y, saved, lengths,
                      bool(reverse))
    return grads[:2] + grads[3:]


def rnn(x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None, *, nonlinearity: str = "tanh",
        lengths: np.ndarray | None = None, reverse: bool = False) -> tuple[Any, Any]:
    relu = check_nonlinearity(nonlinearity)
    lengths = check_recurrent("rnn", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh, lengths)[-1]
    y, h, _, _ = _forward(_RNN, relu, x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, bool(reverse), 0)
    return y, h


def rnn_backward(grad_y: Any, grad_h_n: Any, x: Any, h0: Any, w_ih: Any, w_hh: Any, y: Any, *,
                 nonlinearity: str = "tanh", lengths: np.ndarray | None = None, reverse: bool = False
                 ) -> tuple[Any, ...]:
    relu = check_nonlinearity(nonlinearity)
    lengths = check_recurrent_backward("rnn", {"grad_y": grad_y, "grad_h_n": grad_h_n}, x, {"h0": h0}, w_ih, w_hh,
                                       y, None, lengths)[-1]
    grads = _backward(_RNN, relu, grad_y, grad_h_n, None, x, h0, None, w_ih, w_hh, y, _dummy_saved(y), lengths,
                      bool(reverse))
    return grads[:2] + grads[3:]
