"""The recurrent autograd op: float64 gradcheck through inputs, initial states and every weight."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad as jg
from jitgrad.autograd.ops_rnn import EmbeddingLookup, recurrent


def _tensor(rng, *shape):
    return jg.tensor(rng.standard_normal(shape) * 0.5, requires_grad=True)


def _weights(rng, mode, inputs, hidden, layers, directions, bias):
    gates = {"lstm": 4, "gru": 3}.get(mode, 1) * hidden
    ws = []
    for layer in range(layers):
        width = inputs if layer == 0 else directions * hidden
        for _ in range(directions):
            ws += [_tensor(rng, gates, width), _tensor(rng, gates, hidden)]
            if bias:
                ws += [_tensor(rng, gates), _tensor(rng, gates)]
    return ws


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("layers, bidirectional, batch_first, lengths", [
    (1, False, False, None),
    (2, True, True, np.array([3, 1])),
])
def test_gradcheck(mode, layers, bidirectional, batch_first, lengths):
    rng = np.random.default_rng(1)
    steps, batch, inputs, hidden = 3, 2, 2, 2
    directions = 2 if bidirectional else 1
    x = _tensor(rng, *((batch, steps, inputs) if batch_first else (steps, batch, inputs)))
    h0 = _tensor(rng, layers * directions, batch, hidden)
    c0 = _tensor(rng, layers * directions, batch, hidden) if mode == "lstm" else None
    ws = _weights(rng, mode, inputs, hidden, layers, directions, bias=layers == 1)

    def fn(x, h0, *rest):
        c = rest[0] if mode == "lstm" else None
        weights = list(rest[1:] if mode == "lstm" else rest)
        y, h_n, c_n = recurrent(x, h0, c, weights, mode=mode, hidden_size=hidden, num_layers=layers,
                                bidirectional=bidirectional, bias=layers == 1, batch_first=batch_first,
                                lengths=lengths)
        return (y, h_n) if c_n is None else (y, h_n, c_n)

    states = [c0] if mode == "lstm" else []
    assert jg.gradcheck(fn, x, h0, *states, *ws)


def test_outputs_past_length_are_zero_and_states_default_to_zero():
    rng = np.random.default_rng(2)
    x = _tensor(rng, 4, 2, 3)
    ws = _weights(rng, "gru", 3, 5, 1, 1, True)
    y, h_n, _ = recurrent(x, None, None, ws, mode="gru", hidden_size=5, lengths=np.array([2, 4]))
    assert y.shape == (4, 2, 5) and h_n.shape == (1, 2, 5)
    np.testing.assert_array_equal(y.numpy()[2:, 0], 0)
    np.testing.assert_allclose(h_n.numpy()[0, 0], y.numpy()[1, 0])
    zeros = jg.tensor(np.zeros((1, 2, 5)))
    y2, _, _ = recurrent(x, zeros, None, ws, mode="gru", hidden_size=5, lengths=np.array([2, 4]))
    np.testing.assert_array_equal(y.numpy(), y2.numpy())


def test_dropout_between_layers_only_in_training():
    rng = np.random.default_rng(3)
    x = _tensor(rng, 3, 2, 2)
    ws = _weights(rng, "rnn_tanh", 2, 4, 2, 1, True)
    kw = dict(mode="rnn_tanh", hidden_size=4, num_layers=2, dropout=0.5)
    y_eval = recurrent(x, None, None, ws, **kw)[0].numpy()
    y_eval2 = recurrent(x, None, None, ws, training=False, **kw)[0].numpy()
    y_train = recurrent(x, None, None, ws, training=True, generator=np.random.default_rng(0), **kw)[0]
    np.testing.assert_array_equal(y_eval, y_eval2)
    assert not np.allclose(y_train.numpy(), y_eval)
    y_train.sum().backward()
    assert all(w.grad is not None for w in ws)


def test_embedding_gradcheck_repeats_and_padding():
    rng = np.random.default_rng(4)
    w = jg.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    idx = np.array([[1, 2, 1], [4, 0, 2]])
    assert jg.gradcheck(lambda w: EmbeddingLookup.apply(w, idx), w)
    out = EmbeddingLookup.apply(w, idx, padding_idx=1)
    out.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy()[1], 0)
    np.testing.assert_array_equal(w.grad.numpy()[2], 2)
    np.testing.assert_array_equal(w.grad.numpy()[3], 0)
