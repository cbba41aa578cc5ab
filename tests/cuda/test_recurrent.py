"""CUDA recurrent kernels held to the reference (simulator: tiny shapes, 8 threads per block, 3 blocks)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitgrad.kernels.cuda as kcuda
from tests.cuda.conftest import dev, host
from tests.kernels.recurrent_cases import CELLS, check_case, forward_args, make_inputs


@pytest.mark.parametrize("cell, nonlinearity, dtype, reverse", [
    ("lstm", None, np.float32, False), ("lstm", None, np.float64, True),
    ("gru", None, np.float32, True), ("gru", None, np.float64, False),
    ("rnn", "tanh", np.float32, True), ("rnn", "relu", np.float64, False),
])
def test_matches_reference_with_lengths(cell, nonlinearity, dtype, reverse):
    # Tiny (the simulator runs each CUDA thread as a Python thread): 3 steps, 3 sequences, one of length 0.
    check_case(kcuda, cell, nonlinearity, 3, 3, 2, 3, dtype, lengths=np.array([2, 0, 3]), reverse=reverse,
               to_device=dev, to_host=host)


@settings(max_examples=4, deadline=None)
@given(case=st.sampled_from(CELLS), steps=st.integers(1, 3), batch=st.integers(1, 3), hidden=st.integers(1, 4),
       bias=st.booleans(), seed=st.integers(0, 100))
def test_random_sizes(case, steps, batch, hidden, bias, seed):
    check_case(kcuda, case[0], case[1], steps, batch, 2, hidden, np.float64, bias=bias, seed=seed,
               to_device=dev, to_host=host)


def test_bad_input():
    a = make_inputs("gru", 2, 2, 3, 4, np.float32)
    args = [dev(v) for v in forward_args("gru", a)[:4]]
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4\), got \(1, 4\)"):
        kcuda.gru(args[0], dev(np.zeros((1, 4), np.float32)), *args[2:])
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 2\]"):
        kcuda.gru(*args, lengths=np.array([3, 1]))


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_layer_on_cuda_matches_cpu(name):
    # The whole stack op on the device: bidirectional (direction outputs joined on the device), batch_first.
    import jitgrad as jg
    from jitgrad import nn

    cpu_layer = getattr(nn, name)(2, 2, bidirectional=True, batch_first=True, dtype=np.float64)
    gpu_layer = getattr(nn, name)(2, 2, bidirectional=True, batch_first=True, dtype=np.float64)
    gpu_layer.load_state_dict(cpu_layer.state_dict())
    gpu_layer.to("cuda")
    x = np.random.default_rng(0).standard_normal((2, 2, 2))
    outs = []
    for layer, device in ((cpu_layer, "cpu"), (gpu_layer, "cuda")):
        xt = jg.tensor(x, requires_grad=True) if device == "cpu" else jg.tensor(x).to("cuda")
        y, state = layer(xt, lengths=[2, 1])
        h = state[0] if name == "LSTM" else state
        (y.sum() + (h * h).sum()).backward()
        grads = {k: p.grad.to("cpu").numpy() for k, p in layer.named_parameters()}
        outs.append((y.to("cpu").numpy(), h.to("cpu").numpy(), grads))
    (y_c, h_c, g_c), (y_g, h_g, g_g) = outs
    np.testing.assert_allclose(y_g, y_c, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_g, h_c, rtol=1e-10, atol=1e-12)
    for k in g_c:
        np.testing.assert_allclose(g_g[k], g_c[k], rtol=1e-9, atol=1e-11, err_msg=k)
