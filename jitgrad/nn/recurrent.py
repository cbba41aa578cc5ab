"""Recurrent layers (``RNN``, ``LSTM``, ``GRU``), their cells, and ``Embedding``.

Constructor and call conventions, parameter names, shapes and
initialisation are PyTorch's, so a PyTorch ``state_dict`` loads by name:
``weight_ih_l{k}`` ``(G*H, I)`` (``I = D*H`` above layer 0),
``weight_hh_l{k}`` ``(G*H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
``(G*H,)``, with the suffix ``_reverse`` for the backward direction; every
parameter starts as ``U(-1/sqrt(H), 1/sqrt(H))``. ``G`` is 4 for LSTM
(gates i, f, g, o), 3 for GRU (r, z, n) and 1 for RNN.

The whole stack runs as one autograd op over whole-sequence kernels
(:mod:`jitgrad.autograd.ops_rnn`); no layer holds derivative code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jitgrad._checks import check_int, check_real
from jitgrad.autograd.ops_rnn import MODES, EmbeddingLookup, recurrent
from jitgrad.autograd.tensor import Tensor
from jitgrad.nn import init
from jitgrad.nn.layers import _dtype, _positive_int
from jitgrad.nn.module import Module, Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "Embedding"]


def _check_input(owner: Module, name: str, x: Any, dtype: np.dtype) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner!r}: {name} must be a Tensor, got {type(x).__name__}")
    if np.dtype(x.dtype) != dtype:
        kind = "floating-point " if np.dtype(x.dtype).kind == "f" else ""
        raise TypeError(f"{owner!r}: {name} must be {kind}data of the parameters' dtype {dtype}, got {x.dtype}")


def _check_state(owner: Module, name: str, s: Any, shape: tuple[int, ...], dtype: np.dtype, hint: str) -> None:
    _check_input(owner, name, s, dtype)
    if tuple(s.shape) != shape:
        raise ValueError(f"{owner!r}: {name} must have shape {shape}{hint}, got {tuple(s.shape)}")


def _split_hx(owner: Module, hx: Any, names: tuple[str, str], shape: tuple[int, ...], dtype: np.dtype,
              hint: str) -> tuple[Any, Any]:
    """``(h0, c0)`` from ``hx`` (``c0`` None unless LSTM), every state checked."""
    if hx is None:
        return None, None
    if owner.mode != "lstm":
        _check_state(owner, "hx", hx, shape, dtype, hint)
        return hx, None
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"{owner!r}: hx must be a tuple ({names[0]}, {names[1]}), got {type(hx).__name__}")
    for name, s in zip(names, hx):
        _check_state(owner, name, s, shape, dtype, hint)
    return hx[0], hx[1]


class RNNBase(Module):
    """A stack of recurrent layers; see :class:`LSTM`, :class:`GRU`, :class:`RNN`."""

    mode = "lstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.input_size = _positive_int(name, "input_size", input_size)
        self.hidden_size = _positive_int(name, "hidden_size", hidden_size)
        self.num_layers = _positive_int(name, "num_layers", num_layers)
        check_real(name, "dropout", dropout, minimum=0.0, maximum=1.0, max_open=True, what="a number in [0, 1)")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.generator = generator
        dtype = _dtype(name, dtype)
        gates = MODES[self.mode] * self.hidden_size
        bound = 1 / math.sqrt(self.hidden_size)
        directions = 2 if self.bidirectional else 1
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else directions * self.hidden_size
            for d in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                shapes = [("weight_ih", (gates, width)), ("weight_hh", (gates, self.hidden_size))]
                if self.bias:
                    shapes += [("bias_ih", (gates,)), ("bias_hh", (gates,))]
                for pname, shape in shapes:
                    p = Parameter(np.empty(shape, dtype))
                    init.uniform_(p, -bound, bound, generator=generator)
                    setattr(self, pname + suffix, p)

    def _flat_weights(self) -> list[Parameter]:
        return list(self.parameters())

    def _check(self, x: Any, hx: Any) -> tuple[Any, Any, int]:
        dtype = self._flat_weights()[0].dtype
        _check_input(self, "input", x, np.dtype(dtype))
        if x.ndim != 3:
            layout = "(batch, seq, feature)" if self.batch_first else "(seq, batch, feature)"
            raise ValueError(f"{self!r}: input must be 3-D {layout} (or 2-D unbatched), got shape {tuple(x.shape)}")
        if x.shape[2] != self.input_size:
            raise ValueError(f"{self!r}: input must have input_size={self.input_size} features in its last "
                             f"dimension, got shape {tuple(x.shape)}")
        batch = x.shape[0] if self.batch_first else x.shape[1]
        states = ((2 if self.bidirectional else 1) * self.num_layers, batch, self.hidden_size)
        hint = (f" (num_layers * num_directions, batch, hidden_size); batch_first={self.batch_first} reads "
                f"batch={batch} from input {tuple(x.shape)}")
        h0, c0 = _split_hx(self, hx, ("h_0", "c_0"), states, np.dtype(dtype), hint)
        return h0, c0, batch

    def forward(self, input: Any, hx: Any = None, lengths: Any = None) -> tuple[Any, Any]:  # noqa: A002
        """Run the stack over a whole sequence.

        Parameters
        ----------
        input : Tensor ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``) or ``(T, I)`` unbatched
        hx : initial state(s), ``(L*D, B, H)`` (LSTM: a tuple ``(h_0, c_0)``); zeros when None
        lengths : integer sequence or NumPy array ``(B,)``, optional
            Valid steps per sequence; outputs past a sequence's length are 0
            and its final state is the state at its last valid step.

        Returns
        -------
        ``(output, h_n)``, or ``(output, (h_n, c_n))`` for LSTM; ``output`` is
        ``(T, B, D*H)`` (``(B, T, D*H)`` with ``batch_first``).
        """
        unbatched = isinstance(input, Tensor) and input.ndim == 2
        if unbatched:
            input = input.reshape((1,) + input.shape) if self.batch_first else input.reshape(
                (input.shape[0], 1, input.shape[1]))
            if hx is not None:
                hx = tuple(s.reshape((s.shape[0], 1, s.shape[1])) for s in hx) if self.mode == "lstm" else \
                    hx.reshape((hx.shape[0], 1, hx.shape[1]))
        h0, c0, batch = self._check(input, hx)
        if lengths is not None and not isinstance(lengths, np.ndarray):
            lengths = np.asarray(lengths)
        y, h_n, c_n = recurrent(input, h0, c0, self._flat_weights(), mode=self.mode, hidden_size=self.hidden_size,
                                num_layers=self.num_layers, bidirectional=self.bidirectional, bias=self.bias,
                                batch_first=self.batch_first, lengths=lengths, dropout=self.dropout,
                                training=self.training, generator=self.generator or init.get_generator())
        if unbatched:
            y = y.reshape((y.shape[1], y.shape[2])) if self.batch_first else y.reshape((y.shape[0], y.shape[2]))
            h_n = h_n.reshape((h_n.shape[0], h_n.shape[2]))
            c_n = c_n.reshape((c_n.shape[0], c_n.shape[2])) if c_n is not None else None
        return (y, (h_n, c_n)) if self.mode == "lstm" else (y, h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class LSTM(RNNBase):
    """Long short-term memory layers, PyTorch's ``nn.LSTM`` (gates i, f, g, o).

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False)``; ``lstm(x, (h_0, c_0))`` returns
    ``(output, (h_n, c_n))``. See :class:`RNNBase.forward`.
    """

    mode = "lstm"


class GRU(RNNBase):
    """Gated recurrent units, PyTorch's ``nn.GRU`` (gates r, z, n; reset after the hidden matmul).

    ``gru(x, h_0)`` returns ``(output, h_n)``. See :class:`RNNBase.forward`.
    """

    mode = "gru"


class RNN(RNNBase):
    """Elman RNN, PyTorch's ``nn.RNN``: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, ...)``
    with ``nonlinearity`` ``"tanh"`` or ``"relu"``; returns ``(output, h_n)``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        object.__setattr__(self, "mode", "rnn_" + nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, generator=generator)
        self.nonlinearity = nonlinearity

    def extra_repr(self) -> str:
        return super().extra_repr() + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


# ----------------------------------------------------------------------------- cells

class RNNCellBase(Module):
    """One step of a recurrent layer, for custom loops; parameters ``weight_ih``, ``weight_hh``, ``bias_*``."""

    mode = "lstm"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.input_size = _positive_int(name, "input_size", input_size)
        self.hidden_size = _positive_int(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        dtype = _dtype(name, dtype)
        gates = MODES[self.mode] * self.hidden_size
        bound = 1 / math.sqrt(self.hidden_size)
        shapes = [("weight_ih", (gates, self.input_size)), ("weight_hh", (gates, self.hidden_size))]
        if self.bias:
            shapes += [("bias_ih", (gates,)), ("bias_hh", (gates,))]
        for pname, shape in shapes:
            p = Parameter(np.empty(shape, dtype))
            init.uniform_(p, -bound, bound, generator=generator)
            setattr(self, pname, p)

    def forward(self, input: Any, hx: Any = None) -> Any:  # noqa: A002
        """``input (B, I)`` or ``(I,)``; ``hx`` ``(B, H)`` (LSTM: ``(h, c)``), zeros when None."""
        dtype = np.dtype(self.weight_ih.dtype)
        _check_input(self, "input", input, dtype)
        unbatched = input.ndim == 1
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{self!r}: input must be (batch, {self.input_size}) or ({self.input_size},), got "
                             f"shape {tuple(input.shape)}")
        batch = 1 if unbatched else input.shape[0]
        shape = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        h0, c0 = _split_hx(self, hx, ("h", "c"), shape, dtype, "")
        states = (1, batch, self.hidden_size)
        _, h_n, c_n = recurrent(input.reshape((1, batch, self.input_size)),
                                None if h0 is None else h0.reshape(states),
                                None if c0 is None else c0.reshape(states), list(self.parameters()),
                                mode=self.mode, hidden_size=self.hidden_size, bias=self.bias)
        h_n = h_n.reshape(shape)
        return (h_n, c_n.reshape(shape)) if self.mode == "lstm" else h_n

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class LSTMCell(RNNCellBase):
    """One LSTM step: ``cell(x, (h, c))`` returns ``(h', c')`` (PyTorch's ``nn.LSTMCell``)."""

    mode = "lstm"


class GRUCell(RNNCellBase):
    """One GRU step: ``cell(x, h)`` returns ``h'`` (PyTorch's ``nn.GRUCell``)."""

    mode = "gru"


class RNNCell(RNNCellBase):
    """One Elman RNN step: ``cell(x, h)`` returns ``h'`` (PyTorch's ``nn.RNNCell``)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", *,
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        object.__setattr__(self, "mode", "rnn_" + nonlinearity)
        super().__init__(input_size, hidden_size, bias, dtype=dtype, generator=generator)
        self.nonlinearity = nonlinearity


# ----------------------------------------------------------------------------- embedding

class Embedding(Module):
    """A lookup table: ``Embedding(num_embeddings, embedding_dim, padding_idx=None)``, PyTorch's semantics.

    ``emb(indices)`` with integer indices of any shape returns
    ``(*indices.shape, embedding_dim)``. ``weight`` starts as ``N(0, 1)``;
    the row ``padding_idx`` (negative counts from the end) starts at zero and
    receives no gradient. Repeated indices accumulate their gradients.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, *,
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self.num_embeddings = _positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _positive_int("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            n = self.num_embeddings
            padding_idx = check_int("Embedding", "padding_idx", padding_idx, minimum=-n, maximum=n - 1,
                                    what=f"an int in [-{n}, {n})") % n
        self.padding_idx = padding_idx
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), _dtype("Embedding", dtype)))
        init.normal_(self.weight, generator=generator)
        if padding_idx is not None:
            self.weight.data[padding_idx] = 0

    def forward(self, indices: Any) -> Any:
        idx = indices.data if isinstance(indices, Tensor) else indices
        if isinstance(idx, (list, tuple, int, np.integer)):
            idx = np.asarray(idx)
        if not hasattr(idx, "dtype") or np.dtype(idx.dtype).kind not in "iu":
            got = np.dtype(idx.dtype) if hasattr(idx, "dtype") else type(idx).__name__
            raise TypeError(f"{self!r}: indices must be integers, got {got}")
        if isinstance(idx, np.ndarray) and idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise ValueError(f"{self!r}: indices must lie in [0, {self.num_embeddings}), got values from "
                             f"{idx.min()} to {idx.max()}")
        return EmbeddingLookup.apply(self.weight, idx, padding_idx=self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
