"""NumPy reference recurrent layers: whole-sequence ``lstm``, ``gru``, ``rnn`` and their backwards.

One call runs one layer in one direction over a whole, time-major sequence.
Gate order and equations are PyTorch's (``nn.LSTM``: i, f, g, o; ``nn.GRU``:
r, z, n with the reset gate applied after the hidden matmul; ``nn.RNN``:
tanh or relu), so weights are interchangeable with PyTorch's.

Shapes (``G`` gates: 4 for LSTM, 3 for GRU, 1 for RNN)
-------------------------------------------------------
``x (T, B, I)``, ``h0``/``c0`` ``(B, H)``, ``w_ih (G*H, I)``, ``w_hh (G*H, H)``,
``b_ih``/``b_hh`` ``(G*H,)`` or None; every float array of one dtype
(float32 or float64) and C-contiguous. Outputs: ``y (T, B, H)``, final
states ``(B, H)``.

Variable lengths
----------------
``lengths`` (None, or a host NumPy integer array ``(B,)`` with values in
``[0, T]``: metadata, like a shape, on every backend) gives each sequence's
length. Sequence ``b`` runs over its first ``lengths[b]`` steps only:
``y[t, b] = 0`` for ``t >= lengths[b]`` and its final state is the state
after its last valid step (the initial state when the length is 0). With
``reverse=True`` sequence ``b`` is read from ``t = lengths[b] - 1`` down to
0 (PyTorch's packed-sequence semantics for the backward direction of a
bidirectional layer); ``y`` is still indexed by time.

Saved for backward
------------------
``lstm`` returns ``saved (T, B, 5H)``: the activated gates i, f, g, o and
the cell state c of every step; ``gru`` returns ``saved (T, B, 4H)``: r, z,
n and ``W_hn h + b_hn``; ``rnn`` needs only ``y``. Entries of steps past a
sequence's length are 0. The backward kernels take ``y`` and ``saved``
from the forward and return the gradients of the input, the initial states
and every weight (``grad_b_ih``/``grad_b_hh`` even when the forward had no
bias).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._contract import doc_fragments
from jitgrad.kernels._validate import check_array, check_same_dtype, check_shape

__all__: list[str] = kernel_names("recurrent")  # the one list: kernels/_constants.py

#: Gates per cell kind.
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
#: Saved floats per step and hidden unit (``saved``'s last axis is this times H).
SAVED = {"lstm": 5, "gru": 4, "rnn": 0}
NONLINEARITIES = ("tanh", "relu")


# ----------------------------------------------------------------------------- validation
#
# Called by the reference, CPU and CUDA wrappers alike: one message per check.

def check_lengths(lengths: Any, batch: int, steps: int) -> np.ndarray:
    """``lengths`` as an int64 host array ``(B,)`` with values in ``[0, T]`` (``T`` everywhere when None)."""
    if lengths is None:
        return np.full(batch, steps, dtype=np.int64)
    if isinstance(lengths, (list, tuple)):
        lengths = np.asarray(lengths)
    if not isinstance(lengths, np.ndarray):
        raise TypeError(f"lengths must be a NumPy integer array of shape ({batch},), got {type(lengths).__name__}")
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must have an integer dtype, got {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) (one per sequence), got {lengths.shape}")
    if batch and (lengths.min() < 0 or lengths.max() > steps):
        raise ValueError(f"lengths must lie in [0, {steps}] (the sequence length), got "
                         f"values from {lengths.min()} to {lengths.max()}")
    return np.ascontiguousarray(lengths, dtype=np.int64)


def check_nonlinearity(nonlinearity: Any) -> bool:
    """True for ``"relu"``, False for ``"tanh"``; anything else is a ValueError."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity == "relu"


def check_recurrent(cell: str, x: Any, states: dict[str, Any], w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any,
                    lengths: Any) -> tuple[int, int, int, int, np.dtype, np.ndarray]:
    """Validate a forward call; returns ``(T, B, I, H, dtype, lengths)``."""
    check_array("x", x, ndim=3)
    check_array("w_ih", w_ih, ndim=2)
    check_array("w_hh", w_hh, ndim=2)
    steps, batch, inputs = (int(s) for s in x.shape)
    gates = GATES[cell]
    if w_hh.shape[0] % gates or w_hh.shape[0] // gates != w_hh.shape[1] or w_hh.shape[1] == 0:
        raise ValueError(f"w_hh must have shape ({gates}*H, H) for {cell}, got {tuple(w_hh.shape)}")
    hidden = int(w_hh.shape[1])
    check_shape("w_ih", w_ih, (gates * hidden, inputs))
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            check_array(name, b, ndim=1)
            check_shape(name, b, (gates * hidden,))
    for name, s in states.items():
        check_array(name, s, ndim=2)
        check_shape(name, s, (batch, hidden))
    dtype = check_same_dtype(x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, **states)
    return steps, batch, inputs, hidden, dtype, check_lengths(lengths, batch, steps)


def check_recurrent_backward(cell: str, grads: dict[str, Any], x: Any, states: dict[str, Any], w_ih: Any,
                             w_hh: Any, y: Any, saved: Any, lengths: Any
                             ) -> tuple[int, int, int, int, np.dtype, np.ndarray]:
    """Validate a backward call; returns ``(T, B, I, H, dtype, lengths)``."""
    steps, batch, inputs, hidden, dtype, lengths = check_recurrent(cell, x, states, w_ih, w_hh, None, None,
                                                                   lengths)
    arrays = dict(y=(y, (steps, batch, hidden)))
    if saved is not None:
        arrays["saved"] = (saved, (steps, batch, SAVED[cell] * hidden))
    arrays["grad_y"] = (grads["grad_y"], (steps, batch, hidden))
    for name in grads:
        if name != "grad_y":
            arrays[name] = (grads[name], (batch, hidden))
    for name, (a, shape) in arrays.items():
        check_array(name, a, ndim=len(shape))
        check_shape(name, a, shape)
    check_same_dtype(x=x, **{name: a for name, (a, _) in arrays.items()})
    return steps, batch, inputs, hidden, dtype, lengths


# ----------------------------------------------------------------------------- shared pieces

def _sigmoid(v: np.ndarray) -> np.ndarray:
    # exp of a non-positive argument only: no overflow for large |v|.
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e)).astype(v.dtype)


def _times(lengths: np.ndarray, step: int, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Time index of every sequence at ``step`` (clipped into range) and whether the step is valid."""
    valid = step < lengths
    t = lengths - 1 - step if reverse else np.full_like(lengths, step)
    return np.clip(t, 0, None), valid


def _previous(seq: np.ndarray, initial: np.ndarray, t: np.ndarray, lengths: np.ndarray,
              reverse: bool) -> np.ndarray:
    """The state before time ``t`` of each sequence: ``seq`` at the previous step, or ``initial``."""
    rows = np.arange(len(t))
    if reverse:
        first = t + 1 >= lengths
        prev = seq[np.minimum(t + 1, seq.shape[0] - 1), rows]
    else:
        first = t == 0
        prev = seq[np.maximum(t - 1, 0), rows]
    return np.where(first[:, None], initial, prev)


def _projection(x: np.ndarray, w_ih: np.ndarray, b_ih: Any) -> np.ndarray:
    """``x @ w_ih.T + b_ih`` for every step at once: ``(T, B, G*H)``."""
    xp = x @ w_ih.T
    return xp + b_ih if b_ih is not None else xp


def _bias(b: Any, size: int, dtype: np.dtype) -> np.ndarray:
    return b if b is not None else np.zeros(size, dtype=dtype)


def _weight_grads(grad_gx: np.ndarray, grad_gh: np.ndarray, x: np.ndarray, hprev: np.ndarray,
                  w_ih: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(grad_x, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh)`` from the pre-activation gate gradients."""
    steps, batch, inputs = x.shape
    gx = grad_gx.reshape(steps * batch, -1)
    gh = grad_gh.reshape(steps * batch, -1)
    grad_x = (gx @ w_ih).reshape(steps, batch, inputs)
    return (grad_x, gx.T @ x.reshape(steps * batch, inputs), gh.T @ hprev.reshape(steps * batch, -1),
            gx.sum(axis=0), gh.sum(axis=0))


_SEQUENCE_PARAMS = """lengths : ndarray or None
    Host integer array (B,) in ``[0, T]`` (see the module docstring).
reverse : bool, default False
    Run each sequence from its last valid step to its first."""


#: The output every forward's contract describes alike.
_Y = """y : ndarray
    (T, B, H) hidden state of every step (0 past a sequence's length)."""


def _inputs(states: str, states_doc: str, gates: str) -> str:
    """A forward's input, initial-state, weight and bias paragraphs; its gate blocks stack to ``gates`` rows."""
    return (f"x : ndarray\n    (T, B, I), float32 or float64, time-major.\n"
            f"{states} : ndarray\n    (B, H) {states_doc}.\n"
            f"w_ih, w_hh : ndarray\n    ({gates}, I) and ({gates}, H).\n"
            f"b_ih, b_hh : ndarray or None\n    ({gates},) or None (zeros).")


#: The inputs the GRU and RNN backwards share (the LSTM's adds its cell state).
_BACKWARD_INPUTS = """grad_y : ndarray
    (T, B, H), gradient of ``y``.
grad_h_n : ndarray
    (B, H), gradient of the final state.
x, h0, w_ih, w_hh : ndarray
    As given to the forward.
y : ndarray
    The forward's output."""


def _sequence_params(fn):
    """End a kernel's Parameters section with the ``lengths`` and ``reverse`` every recurrent kernel takes."""
    head, sep, tail = inspect.cleandoc(fn.__doc__).partition("\n\nReturns\n")
    fn.__doc__ = f"{head}\n{_SEQUENCE_PARAMS}{sep}{tail}"
    return fn


# ----------------------------------------------------------------------------- LSTM

@_sequence_params
@doc_fragments(inputs=_inputs("h0, c0", "initial states (hidden, cell)", "4H"), y=_Y)
def lstm(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
         b_ih: np.ndarray | None = None, b_hh: np.ndarray | None = None, *, lengths: np.ndarray | None = None,
         reverse: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One LSTM layer, one direction, over a whole sequence (PyTorch's ``nn.LSTM`` equations).

    ``i, f, g, o = sigmoid, sigmoid, tanh, sigmoid`` of
    ``x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh`` (gate blocks of ``H`` rows in
    that order); ``c_t = f c_{t-1} + i g``; ``h_t = o tanh(c_t)``.

    Parameters
    ----------
    {inputs}

    Returns
    -------
    {y}
    h_n, c_n : ndarray
        (B, H) states after each sequence's last valid step.
    saved : ndarray
        (T, B, 5H) i, f, g, o and c of every step, for ``lstm_backward``.
    """
    steps, batch, _, hidden, dtype, lengths = check_recurrent("lstm", x, {"h0": h0, "c0": c0}, w_ih, w_hh,
                                                              b_ih, b_hh, lengths)
    xp = _projection(x, w_ih, b_ih)
    b_hh = _bias(b_hh, 4 * hidden, dtype)
    y = np.zeros((steps, batch, hidden), dtype=dtype)
    saved = np.zeros((steps, batch, 5 * hidden), dtype=dtype)
    h, c = h0.copy(), c0.copy()
    rows = np.arange(batch)
    for s in range(steps):
        t, valid = _times(lengths, s, reverse)
        gates = xp[t, rows] + h @ w_hh.T + b_hh
        i = _sigmoid(gates[:, :hidden])
        f = _sigmoid(gates[:, hidden:2 * hidden])
        g = np.tanh(gates[:, 2 * hidden:3 * hidden])
        o = _sigmoid(gates[:, 3 * hidden:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        v = valid[:, None]
        c = np.where(v, c_new, c)
        h = np.where(v, h_new, h)
        y[t[valid], rows[valid]] = h_new[valid]
        saved[t[valid], rows[valid]] = np.concatenate([i, f, g, o, c_new], axis=1)[valid]
    return y, h, c, saved


@_sequence_params
def lstm_backward(grad_y: np.ndarray, grad_h_n: np.ndarray, grad_c_n: np.ndarray, x: np.ndarray,
                  h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, y: np.ndarray,
                  saved: np.ndarray, *, lengths: np.ndarray | None = None, reverse: bool = False
                  ) -> tuple[np.ndarray, ...]:
    """Gradients of ``lstm``: the time loop in reverse, then the weight gradients as GEMMs.

    Parameters
    ----------
    grad_y : ndarray
        (T, B, H), gradient of ``y``.
    grad_h_n, grad_c_n : ndarray
        (B, H), gradients of the final states (zeros where an output is unused).
    x, h0, c0, w_ih, w_hh : ndarray
        As given to ``lstm``.
    y, saved : ndarray
        ``lstm``'s outputs.

    Returns
    -------
    grad_x, grad_h0, grad_c0 : ndarray
        (T, B, I), (B, H), (B, H).
    grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh : ndarray
        (4H, I), (4H, H), (4H,), (4H,) (the two bias gradients are equal).
    """
    steps, batch, _, hidden, dtype, lengths = check_recurrent_backward(
        "lstm", {"grad_y": grad_y, "grad_h_n": grad_h_n, "grad_c_n": grad_c_n}, x, {"h0": h0, "c0": c0},
        w_ih, w_hh, y, saved, lengths)
    H = hidden
    grad_g = np.zeros((steps, batch, 4 * H), dtype=dtype)
    hprev = np.zeros((steps, batch, H), dtype=dtype)
    dh, dc = grad_h_n.copy(), grad_c_n.copy()
    rows = np.arange(batch)
    cs = np.ascontiguousarray(saved[:, :, 4 * H:])
    for s in range(steps - 1, -1, -1):
        t, valid = _times(lengths, s, reverse)
        sv = saved[t, rows]
        i, f, g, o, c = (sv[:, k * H:(k + 1) * H] for k in range(5))
        c_prev = _previous(cs, c0, t, lengths, reverse)
        h_prev = _previous(y, h0, t, lengths, reverse)
        d = dh + grad_y[t, rows]
        tc = np.tanh(c)
        dct = dc + d * o * (1 - tc * tc)
        gates = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f), dct * i * (1 - g * g),
                                d * tc * o * (1 - o)], axis=1)
        v = valid[:, None]
        gates = np.where(v, gates, 0).astype(dtype)
        dh = np.where(v, gates @ w_hh, dh)
        dc = np.where(v, dct * f, dc)
        grad_g[t[valid], rows[valid]] = gates[valid]
        hprev[t[valid], rows[valid]] = h_prev[valid]
    grad_x, gw_ih, gw_hh, gb_ih, gb_hh = _weight_grads(grad_g, grad_g, x, hprev, w_ih)
    return grad_x, dh, dc, gw_ih, gw_hh, gb_ih, gb_hh


# ----------------------------------------------------------------------------- GRU

@_sequence_params
@doc_fragments(inputs=_inputs("h0", "initial state", "3H"), y=_Y)
def gru(x: np.ndarray, h0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None = None,
        b_hh: np.ndarray | None = None, *, lengths: np.ndarray | None = None, reverse: bool = False
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One GRU layer, one direction, over a whole sequence (PyTorch's ``nn.GRU`` equations).

    ``r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)``, ``z`` likewise,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``.

    Parameters
    ----------
    {inputs}

    Returns
    -------
    {y}
    h_n : ndarray
        (B, H) state after each sequence's last valid step.
    saved : ndarray
        (T, B, 4H) r, z, n and ``W_hn h + b_hn`` of every step, for ``gru_backward``.
    """
    steps, batch, _, hidden, dtype, lengths = check_recurrent("gru", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh,
                                                              lengths)
    H = hidden
    xp = _projection(x, w_ih, b_ih)
    b_hh = _bias(b_hh, 3 * H, dtype)
    y = np.zeros((steps, batch, H), dtype=dtype)
    saved = np.zeros((steps, batch, 4 * H), dtype=dtype)
    h = h0.copy()
    rows = np.arange(batch)
    for s in range(steps):
        t, valid = _times(lengths, s, reverse)
        xg = xp[t, rows]
        hg = h @ w_hh.T + b_hh
        r = _sigmoid(xg[:, :H] + hg[:, :H])
        z = _sigmoid(xg[:, H:2 * H] + hg[:, H:2 * H])
        hn = hg[:, 2 * H:]
        n = np.tanh(xg[:, 2 * H:] + r * hn)
        h_new = (1 - z) * n + z * h
        h = np.where(valid[:, None], h_new, h)
        y[t[valid], rows[valid]] = h_new[valid]
        saved[t[valid], rows[valid]] = np.concatenate([r, z, n, hn], axis=1)[valid]
    return y, h, saved


@_sequence_params
@doc_fragments(backward_inputs=_BACKWARD_INPUTS)
def gru_backward(grad_y: np.ndarray, grad_h_n: np.ndarray, x: np.ndarray, h0: np.ndarray, w_ih: np.ndarray,
                 w_hh: np.ndarray, y: np.ndarray, saved: np.ndarray, *, lengths: np.ndarray | None = None,
                 reverse: bool = False) -> tuple[np.ndarray, ...]:
    """Gradients of ``gru``: the time loop in reverse, then the weight gradients as GEMMs.

    Parameters
    ----------
    {backward_inputs}
    saved : ndarray
        ``gru``'s ``saved``.

    Returns
    -------
    grad_x, grad_h0 : ndarray
        (T, B, I), (B, H).
    grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh : ndarray
        (3H, I), (3H, H), (3H,), (3H,).
    """
    steps, batch, _, hidden, dtype, lengths = check_recurrent_backward(
        "gru", {"grad_y": grad_y, "grad_h_n": grad_h_n}, x, {"h0": h0}, w_ih, w_hh, y, saved, lengths)
    H = hidden
    grad_gx = np.zeros((steps, batch, 3 * H), dtype=dtype)
    grad_gh = np.zeros((steps, batch, 3 * H), dtype=dtype)
    hprev = np.zeros((steps, batch, H), dtype=dtype)
    dh = grad_h_n.copy()
    rows = np.arange(batch)
    for s in range(steps - 1, -1, -1):
        t, valid = _times(lengths, s, reverse)
        sv = saved[t, rows]
        r, z, n, hn = (sv[:, k * H:(k + 1) * H] for k in range(4))
        h_prev = _previous(y, h0, t, lengths, reverse)
        d = dh + grad_y[t, rows]
        dn = d * (1 - z) * (1 - n * n)
        dr = dn * hn * r * (1 - r)
        dz = d * (h_prev - n) * z * (1 - z)
        v = valid[:, None]
        gx = np.where(v, np.concatenate([dr, dz, dn], axis=1), 0).astype(dtype)
        gh = np.where(v, np.concatenate([dr, dz, dn * r], axis=1), 0).astype(dtype)
        dh = np.where(v, gh @ w_hh + d * z, dh)
        grad_gx[t[valid], rows[valid]] = gx[valid]
        grad_gh[t[valid], rows[valid]] = gh[valid]
        hprev[t[valid], rows[valid]] = h_prev[valid]
    grad_x, gw_ih, gw_hh, gb_ih, gb_hh = _weight_grads(grad_gx, grad_gh, x, hprev, w_ih)
    return grad_x, dh, gw_ih, gw_hh, gb_ih, gb_hh


# ----------------------------------------------------------------------------- Elman RNN

@_sequence_params
@doc_fragments(inputs=_inputs("h0", "initial state", "H"), y=_Y)
def rnn(x: np.ndarray, h0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None = None,
        b_hh: np.ndarray | None = None, *, nonlinearity: str = "tanh", lengths: np.ndarray | None = None,
        reverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One Elman RNN layer, one direction: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``.

    Parameters
    ----------
    {inputs}
    nonlinearity : {"tanh", "relu"}, default "tanh"
        ``act``.

    Returns
    -------
    {y}
    h_n : ndarray
        (B, H) state after each sequence's last valid step.
    """
    relu = check_nonlinearity(nonlinearity)
    steps, batch, _, hidden, dtype, lengths = check_recurrent("rnn", x, {"h0": h0}, w_ih, w_hh, b_ih, b_hh,
                                                              lengths)
    xp = _projection(x, w_ih, b_ih)
    b_hh = _bias(b_hh, hidden, dtype)
    y = np.zeros((steps, batch, hidden), dtype=dtype)
    h = h0.copy()
    rows = np.arange(batch)
    for s in range(steps):
        t, valid = _times(lengths, s, reverse)
        pre = xp[t, rows] + h @ w_hh.T + b_hh
        h_new = np.maximum(pre, 0) if relu else np.tanh(pre)
        h = np.where(valid[:, None], h_new, h)
        y[t[valid], rows[valid]] = h_new[valid]
    return y, h


@_sequence_params
@doc_fragments(backward_inputs=_BACKWARD_INPUTS)
def rnn_backward(grad_y: np.ndarray, grad_h_n: np.ndarray, x: np.ndarray, h0: np.ndarray, w_ih: np.ndarray,
                 w_hh: np.ndarray, y: np.ndarray, *, nonlinearity: str = "tanh",
                 lengths: np.ndarray | None = None, reverse: bool = False) -> tuple[np.ndarray, ...]:
    """Gradients of ``rnn`` (the relu's gradient is 0 where its output is 0).

    Parameters
    ----------
    {backward_inputs}
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The forward's.

    Returns
    -------
    grad_x, grad_h0 : ndarray
        (T, B, I), (B, H).
    grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh : ndarray
        (H, I), (H, H), (H,), (H,) (the two bias gradients are equal).
    """
    relu = check_nonlinearity(nonlinearity)
    steps, batch, _, hidden, dtype, lengths = check_recurrent_backward(
        "rnn", {"grad_y": grad_y, "grad_h_n": grad_h_n}, x, {"h0": h0}, w_ih, w_hh, y, None, lengths)
    grad_g = np.zeros((steps, batch, hidden), dtype=dtype)
    hprev = np.zeros((steps, batch, hidden), dtype=dtype)
    dh = grad_h_n.copy()
    rows = np.arange(batch)
    for s in range(steps - 1, -1, -1):
        t, valid = _times(lengths, s, reverse)
        h = y[t, rows]
        d = dh + grad_y[t, rows]
        g = np.where(h > 0, d, 0) if relu else d * (1 - h * h)
        g = np.where(valid[:, None], g, 0).astype(dtype)
        dh = np.where(valid[:, None], g @ w_hh, dh)
        grad_g[t[valid], rows[valid]] = g[valid]
        hprev[t[valid], rows[valid]] = _previous(y, h0, t, lengths, reverse)[valid]
    grad_x, gw_ih, gw_hh, gb_ih, gb_hh = _weight_grads(grad_g, grad_g, x, hprev, w_ih)
    return grad_x, dh, gw_ih, gw_hh, gb_ih, gb_hh
