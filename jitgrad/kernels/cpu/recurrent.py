"""CPU recurrent layers: the whole time loop inside one ``@njit`` kernel per direction.

Per call (one layer, one direction):

1. the input projection of every step, ``x @ W_ih^T``, is one GEMM
   (:func:`jitgrad.kernels.cpu.matmul`);
2. the time loop runs inside :func:`_forward_loop` (one kernel per cell): per step, the recurrent
   product ``h @ W_hh^T`` goes through the register-tiled GEMM of
   :mod:`._gemm` with ``W_hh`` packed *once* before the loop (not once per
   step), and one fused pass over the gates adds both projections and the
   biases, applies the nonlinearities, updates the cell and writes ``y``,
   the state and what backward needs;
3. backward runs the loop in reverse in :func:`_backward_loop` (gate
   gradients of a step, then ``dG @ W_hh`` for the next one, again with
   ``W_hh`` packed once) and leaves the weight gradients to three GEMMs
   over the saved gate gradients of all steps after the loop.

Threads split the *batch* rows (whole ``MR``-row panels of the GEMM) for the
whole sequence: a row's steps never read another row, so a thread runs every
step of its rows, the recurrent product of its rows and then their gate pass,
in one parallel region per call, and a row's state never crosses cores.
Below :data:`SERIAL_MACS` multiply-adds per step one thread wins (measured),
and a batch below two panels has nothing to split. Each cell has its own pair
of loops (``_FORWARD``, ``_BACKWARD``: one template per direction, the cell's
row pass its global ``ROWS``), tiered like the other parallel drivers
(``_tier``): a first run compiles only its cell's serial loops.

The gate nonlinearities are ``_elementary``'s ``sigmoid`` and ``tanh``: in float32
the vectorisable kernels (2.40 and 1.26 ulp), in float64 ``math.exp`` and ``math.tanh``.
"""

from __future__ import annotations

import functools
from typing import Any

import numba
import numpy as np
from numba import prange

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference.recurrent import (
    GATES,
    SAVED,
    check_nonlinearity,
    check_recurrent,
    check_recurrent_backward,
)

from . import _elementary as ef
from . import _gemm, _tier
from ._jit import FASTMATH, PRANGE_ONLY, code_copy, njit
from ._tier import tiered
from .matmul import matmul

__all__: list[str] = kernel_names("recurrent")  # the one list: kernels/_constants.py

_jit = dict(cache=True, error_model="numpy", fastmath=FASTMATH, nogil=True)

#: Below this many multiply-adds per step (``B * G*H * H``) the time loop runs on one thread.
SERIAL_MACS = 32 * 128 * 128

_LSTM, _GRU, _RNN = 0, 1, 2
#: The cells' names: ``SAVED``'s and ``GATES``'s keys, and their compile jobs' (``_tier.request``).
_CELL_NAMES = {_LSTM: "lstm", _GRU: "gru", _RNN: "rnn"}


# ----------------------------------------------------------------------------- gate passes (one step, rows r0:r1)

# A row's gate pass is a few loops over contiguous views of two to five arrays each, which LLVM
# vectorises (its run-time alias checks between the arrays stay few): the pre-activations in place
# in ``gates``, the nonlinearities into ``saved``, then the cell. Written as one loop over all of it,
# reading and writing nine arrays, it stayed scalar (five ``vdivss`` an element for an LSTM).

@njit(**_jit)
def _time(s, length, reverse):
    return length - 1 - s if reverse else s


@njit(inline="always", **_jit)
def _preactivate(x, b_ih, g, b_hh, count):
    """``g[:count] = x + b_ih + g + b_hh`` in the reference's order: the input projection and its
    bias, then the recurrent product (``g`` holds it) and its bias."""
    for j in range(count):
        g[j] = x[j] + b_ih[j] + g[j] + b_hh[j]


@njit(inline="always", **_jit)
def _copy_into(src, dst):
    """``dst[:] = src`` as a loop: a slice assignment compiles Numba's shape check and its error
    message (string formatting: 2.8-3.5 CPU-s of a cold LSTM step on the 2-core Zen 3)."""
    for j in range(dst.size):
        dst[j] = src[j]


@njit(inline="always", **_jit)
def _sigmoid_into(src, dst):
    for j in range(dst.size):
        dst[j] = ef.sigmoid(src[j])


@njit(inline="always", **_jit)
def _tanh_into(src, dst):
    for j in range(dst.size):
        dst[j] = ef.tanh(src[j])


@njit(**_jit)
def _lstm_rows(r0, r1, s, xp, gates, b_ih, b_hh, lengths, reverse, relu, h, c, y, saved):
    H = h.shape[1]
    for b in range(r0, r1):
        if s >= lengths[b]:
            continue
        t = _time(s, lengths[b], reverse)
        x = xp[t, b]
        g = gates[b]
        sv = saved[t, b]
        _preactivate(x, b_ih, g, b_hh, 4 * H)
        _sigmoid_into(g[:2 * H], sv[:2 * H])  # i, f
        _tanh_into(g[2 * H:3 * H], sv[2 * H:3 * H])  # g
        _sigmoid_into(g[3 * H:4 * H], sv[3 * H:4 * H])  # o
        i, f, gg, o, cn = sv[:H], sv[H:2 * H], sv[2 * H:3 * H], sv[3 * H:4 * H], sv[4 * H:5 * H]
        cb = c[b]
        yb = y[t, b]
        for j in range(H):
            cn[j] = f[j] * cb[j] + i[j] * gg[j]
        for j in range(H):
            yb[j] = o[j] * ef.tanh(cn[j])
        _copy_into(cn, cb)
        _copy_into(yb, h[b])


@njit(**_jit)
def _gru_rows(r0, r1, s, xp, gates, b_ih, b_hh, lengths, reverse, relu, h, c, y, saved):
    H = h.shape[1]
    one = h.dtype.type(1)
    for b in range(r0, r1):
        if s >= lengths[b]:
            continue
        t = _time(s, lengths[b], reverse)
        x = xp[t, b]
        g = gates[b]
        sv = saved[t, b]
        _preactivate(x, b_ih, g, b_hh, 2 * H)  # r, z
        _sigmoid_into(g[:2 * H], sv[:2 * H])
        r, z, n, hn = sv[:H], sv[H:2 * H], sv[2 * H:3 * H], sv[3 * H:4 * H]
        gn, xn, bi, bh = g[2 * H:], x[2 * H:], b_ih[2 * H:], b_hh[2 * H:]
        for j in range(H):
            hn[j] = gn[j] + bh[j]
        for j in range(H):
            n[j] = ef.tanh(xn[j] + bi[j] + r[j] * hn[j])
        hb = h[b]
        yb = y[t, b]
        for j in range(H):
            yb[j] = (one - z[j]) * n[j] + z[j] * hb[j]
        _copy_into(yb, hb)


@njit(**_jit)
def _rnn_rows(r0, r1, s, xp, gates, b_ih, b_hh, lengths, reverse, relu, h, c, y, saved):
    H = h.shape[1]
    zero = h.dtype.type(0)
    for b in range(r0, r1):
        if s >= lengths[b]:
            continue
        t = _time(s, lengths[b], reverse)
        x = xp[t, b]
        g = gates[b]
        yb = y[t, b]
        _preactivate(x, b_ih, g, b_hh, H)
        if relu:
            for j in range(H):
                v = g[j]
                yb[j] = v if (v > 0 or v != v) else zero  # NaN propagates, as np.maximum
        else:
            _tanh_into(g, yb)
        _copy_into(yb, h[b])


@njit(**_jit)
def _previous_index(t, length, reverse):
    """Time index of the step before ``t`` of a sequence, or -1 at its first step."""
    if reverse:
        return t + 1 if t + 1 < length else -1
    return t - 1


@njit(**_jit)
def _lstm_rows_backward(r0, r1, s, grad_y, y, saved, h0, c0, lengths, reverse, relu, dh, dc, gstep, grad_g,
                        grad_gh, hprev):
    H = dh.shape[1]
    one = dh.dtype.type(1)
    for b in range(r0, r1):
        if s >= lengths[b]:
            for j in range(4 * H):
                gstep[b, j] = 0
            continue
        t = _time(s, lengths[b], reverse)
        tp = _previous_index(t, lengths[b], reverse)
        sv = saved[t, b]
        i, f, g, o, cc = sv[:H], sv[H:2 * H], sv[2 * H:3 * H], sv[3 * H:4 * H], sv[4 * H:5 * H]
        cp = saved[tp, b, 4 * H:] if tp >= 0 else c0[b]
        hp = y[tp, b] if tp >= 0 else h0[b]
        gs = gstep[b]
        gi, gf, gg, go = gs[:H], gs[H:2 * H], gs[2 * H:3 * H], gs[3 * H:]
        d = dh[b]  # holds d = dh + grad_y during the pass, 0 after it
        gy = grad_y[t, b]
        dcb = dc[b]  # holds the cell gradient through this step, then the one for the step before
        # Loops of few arrays each, so that every one vectorises (see the forward's gate pass).
        for j in range(H):
            d[j] = d[j] + gy[j]
        _tanh_into(cc, go)  # tanh(c), kept in go's slot until go is computed
        for j in range(H):
            dcb[j] = dcb[j] + d[j] * o[j] * (one - go[j] * go[j])
        for j in range(H):
            go[j] = d[j] * go[j] * o[j] * (one - o[j])
        for j in range(H):
            gi[j] = dcb[j] * g[j] * i[j] * (one - i[j])
        for j in range(H):
            gf[j] = dcb[j] * cp[j] * f[j] * (one - f[j])
        for j in range(H):
            gg[j] = dcb[j] * i[j] * (one - g[j] * g[j])
        for j in range(H):
            dcb[j] = dcb[j] * f[j]
        _copy_into(gs, grad_g[t, b])
        _copy_into(hp, hprev[t, b])
        d[:] = 0


@njit(**_jit)
def _gru_rows_backward(r0, r1, s, grad_y, y, saved, h0, c0, lengths, reverse, relu, dh, dc, gstep, grad_gx,
                       grad_gh, hprev):
    H = dh.shape[1]
    one = dh.dtype.type(1)
    for b in range(r0, r1):
        if s >= lengths[b]:
            for j in range(3 * H):
                gstep[b, j] = 0
            continue
        t = _time(s, lengths[b], reverse)
        tp = _previous_index(t, lengths[b], reverse)
        for j in range(H):
            r = saved[t, b, j]
            z = saved[t, b, H + j]
            n = saved[t, b, 2 * H + j]
            hn = saved[t, b, 3 * H + j]
            hp = y[tp, b, j] if tp >= 0 else h0[b, j]
            d = dh[b, j] + grad_y[t, b, j]
            gn = d * (one - z) * (one - n * n)
            gr = gn * hn * r * (one - r)
            gz = d * (hp - n) * z * (one - z)
            gstep[b, j] = gr
            gstep[b, H + j] = gz
            gstep[b, 2 * H + j] = gn * r
            grad_gx[t, b, j] = gr
            grad_gx[t, b, H + j] = gz
            grad_gx[t, b, 2 * H + j] = gn
            grad_gh[t, b, j] = gr
            grad_gh[t, b, H + j] = gz
            grad_gh[t, b, 2 * H + j] = gn * r
            dh[b, j] = d * z
            hprev[t, b, j] = hp


@njit(**_jit)
def _rnn_rows_backward(r0, r1, s, grad_y, y, saved, h0, c0, lengths, reverse, relu, dh, dc, gstep, grad_g,
                       grad_gh, hprev):
    H = dh.shape[1]
    one = dh.dtype.type(1)
    for b in range(r0, r1):
        if s >= lengths[b]:
            for j in range(H):
                gstep[b, j] = 0
            continue
        t = _time(s, lengths[b], reverse)
        tp = _previous_index(t, lengths[b], reverse)
        for j in range(H):
            h = y[t, b, j]
            d = dh[b, j] + grad_y[t, b, j]
            if relu:
                g = d if h > 0 else one - one
            else:
                g = d * (one - h * h)
            gstep[b, j] = g
            grad_g[t, b, j] = g
            dh[b, j] = 0
            hprev[t, b, j] = y[tp, b, j] if tp >= 0 else h0[b, j]


# ----------------------------------------------------------------------------- time loops

@njit(**_jit)
def _rows(task, ntasks, npa, batch):
    """Panels and rows of the batch a task owns: ``(ip0, ip1, r0, r1)``."""
    ip0 = task * npa // ntasks
    ip1 = (task + 1) * npa // ntasks
    return ip0, ip1, ip0 * _gemm.MR, min(batch, ip1 * _gemm.MR)


# One template per direction, compiled once per cell (:func:`_per_cell`) with the cell's row pass as
# ``ROWS``: a model compiles only the cells it runs. With one pair of loops for all three cells an
# LSTM's first forward and backward compiled in 22.6 CPU-s on the 2-core Zen 3 (float32, parallel
# versions, with their input products); per cell 11.9, then a GRU's 9.3 more, a plain RNN's 7.7.
# Threads split the batch for the whole sequence: a row's steps never read another row, so each
# task runs every step of its rows in one parallel region per call (before: one per step) and a
# row's state never crosses cores. The sequence-MNIST LSTM (batch 128, 28 steps, 128 units),
# 2 threads, three alternating pairs of processes: forward 7.6-9.7 -> 6.4-8.5 ms, backward 13.2-14.7
# -> 10.3-11.8 ms.

def _forward_loop(relu, xp, b_ih, w_hh, b_hh, lengths, reverse, ntasks, h, c, y, saved, gates):
    """The forward time loop; ``h``/``c`` hold the initial state and end as the final one."""
    steps, batch = xp.shape[0], xp.shape[1]
    hidden = h.shape[1]
    n = w_hh.shape[0]
    nr = _gemm.nr_of(xp)
    npa = _gemm.cdiv(batch, _gemm.MR)
    npb = _gemm.cdiv(n, nr)
    # W_hh^T packed once for every step's h @ W_hh^T.
    bp = np.empty(npb * hidden * nr, dtype=xp.dtype)
    zero = np.intp(0)  # typed, not literals: the GEMM helpers compile once (see _gemm.gemm_cols)
    one = np.intp(1)
    no = np.bool_(False)
    _gemm.pack_b(w_hh, np.bool_(True), zero, npb, bp)
    hf = h.reshape(h.size)
    gf = gates.reshape(gates.size)
    for task in prange(ntasks):
        ip0, ip1, r0, r1 = _rows(task, ntasks, npa, batch)
        if ip1 > ip0:
            for s in range(steps):
                _gemm.gemm_cols(hf, _gemm.MR * hidden, hidden, one, w_hh, bp, no, hidden, batch, n, ip0, ip1,
                                zero, npb, gf, bp, zero)
                ROWS(r0, r1, s, xp, gates, b_ih, b_hh, lengths, reverse, relu, h, c, y, saved)  # noqa: F821


def _backward_loop(relu, grad_y, y, saved, h0, c0, w_hh, lengths, reverse, ntasks, dh, dc, gstep, dnew,
                   grad_gx, grad_gh, hprev):
    """The reverse time loop; ``dh``/``dc`` hold the final states' gradients and end as the initial ones'."""
    steps, batch, hidden = y.shape
    depth = w_hh.shape[0]
    nr = _gemm.nr_of(y)
    npa = _gemm.cdiv(batch, _gemm.MR)
    npb = _gemm.cdiv(hidden, nr)
    # W_hh packed once for every step's dG @ W_hh.
    bp = np.empty(npb * depth * nr, dtype=y.dtype)
    zero = np.intp(0)  # typed, not literals (see the forward loop)
    one = np.intp(1)
    no = np.bool_(False)
    _gemm.pack_b(w_hh, no, zero, npb, bp)
    gf = gstep.reshape(gstep.size)
    nf = dnew.reshape(dnew.size)
    for task in prange(ntasks):
        ip0, ip1, r0, r1 = _rows(task, ntasks, npa, batch)
        if ip1 > ip0:
            for s in range(steps - 1, -1, -1):
                ROWS(r0, r1, s, grad_y, y, saved, h0, c0, lengths, reverse, relu, dh, dc, gstep,  # noqa: F821
                     grad_gx, grad_gh, hprev)
                _gemm.gemm_cols(gf, _gemm.MR * depth, depth, one, w_hh, bp, no, depth, batch, hidden, ip0, ip1,
                                zero, npb, nf, bp, zero)
                for b in range(r0, r1):
                    if s < lengths[b]:
                        for j in range(hidden):
                            dh[b, j] += dnew[b, j]


def _per_cell(template: Any, cell: str, rows: Any) -> Any:
    """``template`` as a tiered ``parallel`` kernel of its own with ``rows`` as its ``ROWS``, named
    ``<template>_<cell>`` (Numba's cache files and the tiers' markers go by that name)."""
    name = f"{template.__name__}_{cell}"
    return tiered(njit(parallel=PRANGE_ONLY, **_jit)(code_copy(template, name, name, ROWS=rows)))


_FORWARD = {_LSTM: _per_cell(_forward_loop, "lstm", _lstm_rows), _GRU: _per_cell(_forward_loop, "gru", _gru_rows),
            _RNN: _per_cell(_forward_loop, "rnn", _rnn_rows)}
_BACKWARD = {_LSTM: _per_cell(_backward_loop, "lstm", _lstm_rows_backward),
             _GRU: _per_cell(_backward_loop, "gru", _gru_rows_backward),
             _RNN: _per_cell(_backward_loop, "rnn", _rnn_rows_backward)}


# ----------------------------------------------------------------------------- drivers

def _ntasks(batch: int, gates_hidden: int, hidden: int) -> int:
    nthreads = numba.get_num_threads()
    if nthreads == 1 or batch * gates_hidden * hidden < SERIAL_MACS:
        return 1
    return max(1, min(nthreads, -(-batch // _gemm.MR)))


def _bias(b: np.ndarray | None, size: int, dtype: np.dtype) -> np.ndarray:
    return b if b is not None else np.zeros(size, dtype=dtype)


def _forward(cell: int, relu: bool, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None, w_ih: np.ndarray,
             w_hh: np.ndarray, b_ih: np.ndarray | None, b_hh: np.ndarray | None, lengths: np.ndarray,
             reverse: bool, saved_width: int) -> tuple[np.ndarray, ...]:
    _tier.request(_CELL_NAMES[cell])  # a cold start's background compiles this cell's loops meanwhile
    steps, batch, inputs = x.shape
    n = w_hh.shape[0]
    xp = matmul(x.reshape(steps * batch, inputs), w_ih, trans_b=True).reshape(steps, batch, n)
    return _forward_steps(cell, relu, xp, h0, c0, w_hh, b_ih, b_hh, lengths, reverse, saved_width)


def _forward_steps(cell: int, relu: bool, xp: np.ndarray, h0: np.ndarray, c0: np.ndarray | None, w_hh: np.ndarray,
                   b_ih: np.ndarray | None, b_hh: np.ndarray | None, lengths: np.ndarray, reverse: bool,
                   saved_width: int) -> tuple[np.ndarray, ...]:
    """The forward time loop over the input projection ``xp``: ``(y, h_n, c_n, saved)``."""
    steps, batch, n = xp.shape
    hidden = h0.shape[1]
    dtype = xp.dtype
    y = np.zeros((steps, batch, hidden), dtype=dtype)
    saved = np.zeros((steps, batch, saved_width), dtype=dtype)
    h = h0.copy()
    c = c0.copy() if c0 is not None else h
    gates = np.empty((batch, n), dtype=dtype)
    _FORWARD[cell](relu, xp, _bias(b_ih, n, dtype), w_hh, _bias(b_hh, n, dtype), lengths, bool(reverse),
                   _ntasks(batch, n, hidden), h, c, y, saved, gates)
    return y, h, c, saved


def _backward(cell: int, relu: bool, grad_y: np.ndarray, grad_h_n: np.ndarray, grad_c_n: np.ndarray | None,
              x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None, w_ih: np.ndarray, w_hh: np.ndarray,
              y: np.ndarray, saved: np.ndarray, lengths: np.ndarray, reverse: bool) -> tuple[np.ndarray, ...]:
    steps, batch, inputs = x.shape
    hidden = h0.shape[1]
    n = w_hh.shape[0]
    dh, dc, grad_gx, grad_gh, hprev = _backward_steps(cell, relu, grad_y, grad_h_n, grad_c_n, h0, c0, w_hh, y,
                                                      saved, lengths, reverse)
    gx = grad_gx.reshape(steps * batch, n)
    gh = grad_gh.reshape(steps * batch, n)
    grad_x = matmul(gx, w_ih).reshape(steps, batch, inputs)
    grad_w_ih = matmul(gx, x.reshape(steps * batch, inputs), trans_a=True)
    grad_w_hh = matmul(gh, hprev.reshape(steps * batch, hidden), trans_a=True)
    grad_b_ih = gx.sum(axis=0)
    grad_b_hh = gh.sum(axis=0) if cell == _GRU else grad_b_ih.copy()
    return grad_x, dh, dc, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh


def _backward_steps(cell: int, relu: bool, grad_y: np.ndarray, grad_h_n: np.ndarray, grad_c_n: np.ndarray | None,
                    h0: np.ndarray, c0: np.ndarray | None, w_hh: np.ndarray, y: np.ndarray, saved: np.ndarray,
                    lengths: np.ndarray, reverse: bool) -> tuple[np.ndarray, ...]:
    """The reverse time loop: ``(dh_0, dc_0, grad_gx, grad_gh, hprev)``, the gate gradients of every step
    (``grad_gh`` is ``grad_gx`` but for a GRU) and the state each step started from."""
    steps, batch, hidden = y.shape
    n = w_hh.shape[0]
    dtype = y.dtype
    dh = grad_h_n.copy()
    dc = grad_c_n.copy() if grad_c_n is not None else dh
    grad_gx = np.zeros((steps, batch, n), dtype=dtype)
    grad_gh = np.zeros((steps, batch, n), dtype=dtype) if cell == _GRU else grad_gx
    hprev = np.zeros((steps, batch, hidden), dtype=dtype)
    gstep = np.empty((batch, n), dtype=dtype)
    dnew = np.empty((batch, hidden), dtype=dtype)
    _BACKWARD[cell](relu, grad_y, y, saved, h0, c0 if c0 is not None else h0, w_hh, lengths, bool(reverse),
                    _ntasks(batch, n, hidden), dh, dc, gstep, dnew, grad_gx, grad_gh, hprev)
    return dh, dc, grad_gx, grad_gh, hprev


def _compile_backward_loop(cell: int) -> None:
    """Call ``cell``'s float32 backward time loop once on small inputs: the background compile's job
    for a cold start's first step (``_tier.request``), which meanwhile compiles the input projection
    and the forward loop itself. The sequence-MNIST LSTM's cold first step on the 2-core Zen 3:
    16.7-19.1 s without the request, 14.1-15.9 s with it, 10.9-14.6 s with the loss and optimizers
    next in the background (``jitgrad.compile._background``); asking for both loops, 17.4-18.1 s
    (the step waited for the forward loop the background had claimed)."""
    f32 = np.float32
    steps, batch, hidden = 2, 2, 4
    n, width = GATES[_CELL_NAMES[cell]] * hidden, SAVED[_CELL_NAMES[cell]] * hidden
    h0, y = np.zeros((batch, hidden), f32), np.zeros((steps, batch, hidden), f32)
    c0 = h0 if cell == _LSTM else None
    _backward_steps(cell, False, y, h0, c0, h0, c0, np.zeros((n, hidden), f32), y,
                    np.zeros((steps, batch, width), f32), np.full(batch, steps, np.int64), False)


for _cell, _name in _CELL_NAMES.items():
    _tier.requestable(_name, functools.partial(_compile_backward_loop, _cell))


def _empty_saved(y: np.ndarray) -> np.ndarray:
    return np.zeros(y.shape[:2] + (0,), dtype=y.dtype)


# ----------------------------------------------------------------------------- public kernels

def lstm(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
         b_ih: np.ndarray | None = None, b_hh: np.ndarray | None = None, *, lengths: np.ndarray | None = None,
         reverse: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    _, _, _, hidden, _, lengths = check_recurrent("lstm", x, {"h0": h0, "c0": c0}, w_ih, w_hh, b_ih, b_hh, lengths)
    return _forward(_LSTM, False, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, SAVED["lstm"] * hidden)


def lstm_backward(grad_y: np.ndarray, grad_h_n: np.ndarray, grad_c_n: np.ndarray, x: np.ndarray,
                  h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, y: np.ndarray,
                  saved: np.ndarray, *, lengths: np.ndarray | None = None, reverse: bool = False
                  ) -> tuple[np.ndarray, ...]:
    lengths = check_recurrent_backward("lstm", {"grad_y": grad_y, "grad_h_n": grad_h_n, "grad_c_n": grad_c_n}, x,
                                       {"h0": h0, "c0": c0}, w_ih, w_hh, y, saved, lengths)[-1]
    return _backward(_LSTM, False, grad_y, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, y, saved, lengths, reverse)


def gru(x: np.ndarray, h0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None = None,
        b_hh: np.ndarray | None = None, *, lengths: np.ndarray | None = None, reverse: bool = False
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _, _, _, hidden, _, lengths = check_recurrent("gru", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh, lengths)
    y, h, _, saved = _forward(_GRU, False, x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, reverse,
                              SAVED["gru"] * hidden)
    return y, h, saved


def gru_backward(grad_y: np.ndarray, grad_h_n: np.ndarray, x: np.ndarray, h0: np.ndarray, w_ih: np.ndarray,
                 w_hh: np.ndarray, y: np.ndarray, saved: np.ndarray, *, lengths: np.ndarray | None = None,
                 reverse: bool = False) -> tuple[np.ndarray, ...]:
    lengths = check_recurrent_backward("gru", {"grad_y": grad_y, "grad_h_n": grad_h_n}, x, {"h0": h0}, w_ih, w_hh,
                                       y, saved, lengths)[-1]
    grads = _backward(_GRU, False, grad_y, grad_h_n, None, x, h0, None, w_ih, w_hh, y, saved, lengths, reverse)
    return grads[:2] + grads[3:]


def rnn(x: np.ndarray, h0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None = None,
        b_hh: np.ndarray | None = None, *, nonlinearity: str = "tanh", lengths: np.ndarray | None = None,
        reverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    relu = check_nonlinearity(nonlinearity)
    lengths = check_recurrent("rnn", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh, lengths)[-1]
    y, h, _, _ = _forward(_RNN, relu, x, h0, None, w_ih, w_hh, b_ih, b_hh, lengths, reverse, 0)
    return y, h


def rnn_backward(grad_y: np.ndarray, grad_h_n: np.ndarray, x: np.ndarray, h0: np.ndarray, w_ih: np.ndarray,
                 w_hh: np.ndarray, y: np.ndarray, *, nonlinearity: str = "tanh",
                 lengths: np.ndarray | None = None, reverse: bool = False) -> tuple[np.ndarray, ...]:
    relu = check_nonlinearity(nonlinearity)
    lengths = check_recurrent_backward("rnn", {"grad_y": grad_y, "grad_h_n": grad_h_n}, x, {"h0": h0}, w_ih, w_hh,
                                       y, None, lengths)[-1]
    grads = _backward(_RNN, relu, grad_y, grad_h_n, None, x, h0, None, w_ih, w_hh, y, _empty_saved(y), lengths,
                      reverse)
    return grads[:2] + grads[3:]

