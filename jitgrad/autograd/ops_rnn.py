"""Recurrent layers as one differentiable op: a stack of LSTM/GRU/RNN layers over a whole sequence.

:class:`RecurrentStack` runs ``num_layers`` layers, each in one or two
directions, by calling the whole-sequence kernels (``lstm``, ``gru``,
``rnn`` and their backwards, one call per layer and direction); the time
loop is inside the kernels, never a Python loop of small ops. Its single
output packs ``y``, ``h_n`` (and ``c_n``) into one flat array that
:func:`recurrent` unpacks with views, so the engine (one output per op)
needs nothing new.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad.autograd.function import Context, Function
from jitgrad.autograd.tensor import Tensor

__all__ = ["RecurrentStack", "recurrent", "MODES", "EmbeddingLookup"]

#: Gates per mode (rows of ``w_ih`` are ``gates * hidden``).
MODES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _concat(xp: Any, parts: list[Any]) -> Any:
    """1-D arrays joined end to end (NumPy on the CPU; scatters into zeros, summed, elsewhere)."""
    if len(parts) == 1:
        return xp.reshape(parts[0], (parts[0].size,))
    if xp.array_type is np.ndarray:
        return np.concatenate([p.reshape(-1) for p in parts])
    total = sum(int(p.size) for p in parts)
    out, offset = None, 0
    for p in parts:
        piece = xp.getitem_backward(xp.reshape(p, (p.size,)), slice(offset, offset + p.size), (total,))
        out = piece if out is None else xp.add(out, piece)
        offset += p.size
    return out


def _cat_last(xp: Any, parts: list[Any]) -> Any:
    """Arrays ``(T, B, H)`` joined along the last axis: ``(T, B, len(parts) * H)``."""
    if len(parts) == 1:
        return parts[0]
    if xp.array_type is np.ndarray:
        return np.concatenate(parts, axis=-1)
    steps, batch, hidden = parts[0].shape
    shape = (steps, batch, hidden * len(parts))
    out = None
    for d, p in enumerate(parts):
        piece = xp.getitem_backward(p, (slice(None), slice(None), slice(d * hidden, (d + 1) * hidden)), shape)
        out = piece if out is None else xp.add(out, piece)
    return out


def _columns(xp: Any, a: Any, d: int, hidden: int, directions: int) -> Any:
    """Direction ``d``'s slice of the last axis of ``a``, C-contiguous."""
    if directions == 1:
        return xp.ascontiguousarray(a)
    return xp.ascontiguousarray(xp.getitem(a, (slice(None), slice(None), slice(d * hidden, (d + 1) * hidden))))


def _state(xp: Any, s: Any, index: int) -> Any:
    return xp.ascontiguousarray(xp.getitem(s, index))


def _time_major(xp: Any, a: Any, batch_first: bool) -> Any:
    return xp.ascontiguousarray(xp.transpose(a, (1, 0, 2)) if batch_first else a)


class RecurrentStack(Function):
    """``num_layers`` recurrent layers (one or two directions each) over a whole sequence.

    Positional inputs: ``x``, ``h0``, ``c0`` (None unless LSTM; ``h0`` may be
    None for zeros), then per layer and direction ``w_ih, w_hh[, b_ih, b_hh]``
    (layer-major, forward direction first: PyTorch's parameter order).
    The output is flat: ``y`` (``(T, B, D*H)``, or ``(B, T, D*H)`` with
    ``batch_first``), then ``h_n`` ``(L*D, B, H)``, then ``c_n`` for LSTM.
    Dropout (probability ``dropout``, drawn from ``generator`` when
    ``training``) is applied to the output of every layer but the last, as
    PyTorch does.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, h0: Any, c0: Any, *weights: Any, mode: str, hidden_size: int,
                num_layers: int, bidirectional: bool, bias: bool, batch_first: bool, lengths: Any,
                dropout: float, training: bool, generator: Any) -> Any:
        xp = ctx.backend
        kernels = xp.kernels
        directions = 2 if bidirectional else 1
        per = 4 if bias else 2
        inp = _time_major(xp, x, batch_first)
        steps, batch, _ = inp.shape
        dtype = inp.dtype
        states = (num_layers * directions, batch, hidden_size)
        if h0 is None:
            h0 = xp.zeros(states, dtype)
        if mode == "lstm" and c0 is None:
            c0 = xp.zeros(states, dtype)
        layers, h_parts, c_parts = [], [], []
        for layer in range(num_layers):
            outs, records = [], []
            for d in range(directions):
                idx = layer * directions + d
                w = weights[idx * per:(idx + 1) * per]
                w_ih, w_hh = w[0], w[1]
                b_ih, b_hh = (w[2], w[3]) if bias else (None, None)
                h = _state(xp, h0, idx)
                common = dict(lengths=lengths, reverse=d == 1)
                if mode == "lstm":
                    c = _state(xp, c0, idx)
                    y, h_n, c_n, saved = kernels.lstm(inp, h, c, w_ih, w_hh, b_ih, b_hh, **common)
                    c_parts.append(c_n)
                    records.append((y, saved, h, c))
                elif mode == "gru":
                    y, h_n, saved = kernels.gru(inp, h, w_ih, w_hh, b_ih, b_hh, **common)
                    records.append((y, saved, h, None))
                else:
                    y, h_n = kernels.rnn(inp, h, w_ih, w_hh, b_ih, b_hh, nonlinearity=mode[4:], **common)
                    records.append((y, None, h, None))
                h_parts.append(h_n)
                outs.append(y)
            out = _cat_last(xp, outs)
            mask = None
            if dropout > 0 and training and layer < num_layers - 1:
                mask = xp.dropout_mask(out.shape, dropout, dtype, generator)
                out = xp.multiply(out, mask)
            layers.append((inp, records, mask))
            inp = out
        ctx.layers = layers
        ctx.weights = weights
        ctx.shape = (steps, batch, hidden_size, directions, num_layers)
        ctx.mode, ctx.bias, ctx.lengths, ctx.batch_first = mode, bias, lengths, batch_first
        y = xp.transpose(inp, (1, 0, 2)) if batch_first else inp
        parts = [xp.ascontiguousarray(y)] + h_parts + c_parts
        return _concat(xp, parts)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xp = ctx.backend
        kernels = xp.kernels
        steps, batch, hidden, directions, num_layers = ctx.shape
        mode, lengths = ctx.mode, ctx.lengths
        per = 4 if ctx.bias else 2
        n_y = steps * batch * directions * hidden
        n_s = batch * hidden
        g = xp.ascontiguousarray(g)
        gy = xp.reshape(xp.getitem(g, slice(0, n_y)), (batch, steps, directions * hidden) if ctx.batch_first
                        else (steps, batch, directions * hidden))
        g_out = _time_major(xp, gy, ctx.batch_first)
        n_states = num_layers * directions

        def state_grad(k: int, which: int) -> Any:
            start = n_y + (which * n_states + k) * n_s
            return xp.ascontiguousarray(xp.reshape(xp.getitem(g, slice(start, start + n_s)), (batch, hidden)))

        weight_grads: list[Any] = [None] * len(ctx.weights)
        gh0: list[Any] = [None] * n_states
        gc0: list[Any] = [None] * n_states
        for layer in range(num_layers - 1, -1, -1):
            inp, records, mask = ctx.layers[layer]
            if mask is not None:
                g_out = xp.multiply(g_out, mask)
            g_in = None
            for d in range(directions):
                idx = layer * directions + d
                w = ctx.weights[idx * per:(idx + 1) * per]
                y, saved, h, c = records[d]
                gy_d = _columns(xp, g_out, d, hidden, directions)
                common = dict(lengths=lengths, reverse=d == 1)
                if mode == "lstm":
                    gx, gh0[idx], gc0[idx], gw_ih, gw_hh, gb_ih, gb_hh = kernels.lstm_backward(
                        gy_d, state_grad(idx, 0), state_grad(idx, 1), inp, h, c, w[0], w[1], y, saved, **common)
                elif mode == "gru":
                    gx, gh0[idx], gw_ih, gw_hh, gb_ih, gb_hh = kernels.gru_backward(
                        gy_d, state_grad(idx, 0), inp, h, w[0], w[1], y, saved, **common)
                else:
                    gx, gh0[idx], gw_ih, gw_hh, gb_ih, gb_hh = kernels.rnn_backward(
                        gy_d, state_grad(idx, 0), inp, h, w[0], w[1], y, nonlinearity=mode[4:], **common)
                weight_grads[idx * per:(idx + 1) * per] = [gw_ih, gw_hh, gb_ih, gb_hh][:per]
                g_in = gx if g_in is None else xp.add(g_in, gx)
            g_out = g_in
        grad_x = xp.transpose(g_out, (1, 0, 2)) if ctx.batch_first else g_out
        shape = (n_states, batch, hidden)
        grad_h0 = xp.reshape(_concat(xp, gh0), shape) if ctx.needs_input_grad[1] else None
        grad_c0 = xp.reshape(_concat(xp, gc0), shape) if mode == "lstm" and ctx.needs_input_grad[2] else None
        return (grad_x, grad_h0, grad_c0, *weight_grads)


def recurrent(x: Tensor, h0: Tensor | None, c0: Tensor | None, weights: list[Tensor], *, mode: str,
              hidden_size: int, num_layers: int = 1, bidirectional: bool = False, bias: bool = True,
              batch_first: bool = False, lengths: np.ndarray | None = None, dropout: float = 0.0,
              training: bool = False, generator: Any = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run :class:`RecurrentStack` and unpack its output: ``(y, h_n, c_n)`` (``c_n`` None unless LSTM).

    Arguments are checked by the kernels (shapes, dtypes) and by the ``nn``
    layers (sizes against the module's configuration).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    out = RecurrentStack.apply(x, h0, c0, *weights, mode=mode, hidden_size=hidden_size, num_layers=num_layers,
                               bidirectional=bidirectional, bias=bias, batch_first=batch_first, lengths=lengths,
                               dropout=dropout, training=training, generator=generator)
    directions = 2 if bidirectional else 1
    steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    n_y = steps * batch * directions * hidden_size
    n_s = num_layers * directions * batch * hidden_size
    y_shape = (batch, steps, directions * hidden_size) if batch_first else (steps, batch, directions * hidden_size)
    states = (num_layers * directions, batch, hidden_size)
    y = out[0:n_y].reshape(y_shape)
    h_n = out[n_y:n_y + n_s].reshape(states)
    c_n = out[n_y + n_s:n_y + 2 * n_s].reshape(states) if mode == "lstm" else None
    return y, h_n, c_n


class EmbeddingLookup(Function):
    """``weight[indices]``: rows gathered; backward scatter-adds into a zero table (row ``padding_idx`` kept 0)."""

    @staticmethod
    def forward(ctx: Context, weight: Any, indices: Any, padding_idx: int | None = None) -> Any:
        xp = ctx.backend
        ctx.indices, ctx.padding_idx, ctx.shape = indices, padding_idx, tuple(weight.shape)
        return xp.getitem(weight, indices)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, None]:
        xp = ctx.backend
        grad = xp.getitem_backward(xp.ascontiguousarray(g), ctx.indices, ctx.shape)
        if ctx.padding_idx is not None:
            keep = np.ones((ctx.shape[0], 1), dtype=grad.dtype)
            keep[ctx.padding_idx] = 0
            grad = xp.multiply(grad, xp.from_numpy(keep))
        return grad, None
