"""CPU recurrent kernels (``lstm``, ``gru``, ``rnn`` and backwards) held to the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitgrad.kernels.cpu as cpu
import jitgrad.kernels.reference as ref
from tests.helpers import DTYPES, wide_vectors
from tests.kernels.recurrent_cases import CELLS, check_case, forward_args, make_inputs

BACKENDS = [pytest.param(ref, id="reference"), pytest.param(cpu, id="cpu")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell, nonlinearity", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_reference_with_lengths(cell, nonlinearity, dtype, reverse):
    lengths = np.array([3, 0, 5, 1, 5, 2, 4, 5, 3], dtype=np.int32)
    check_case(cpu, cell, nonlinearity, 5, 9, 4, 6, dtype, lengths=lengths, reverse=reverse)


@pytest.mark.parametrize("cell, nonlinearity", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_no_bias_and_threaded_batch(cell, nonlinearity, reverse):
    # 40 rows x 64 hidden: above SERIAL_MACS, so the batch is split across threads, each running every
    # step of its rows; ragged, so that rows of one thread end at different steps.
    lengths = np.random.default_rng(1).integers(0, 4, size=40)
    check_case(cpu, cell, nonlinearity, 3, 40, 7, 64, np.float32, bias=False, lengths=lengths, reverse=reverse)


@settings(max_examples=30, deadline=None)
@given(case=st.sampled_from(CELLS), steps=st.integers(1, 6), batch=st.integers(1, 10), inputs=st.integers(1, 5),
       hidden=st.integers(1, 9), dtype=st.sampled_from(DTYPES), reverse=st.booleans(), ragged=st.booleans(),
       seed=st.integers(0, 1000))
def test_random_sizes(case, steps, batch, inputs, hidden, dtype, reverse, ragged, seed):
    lengths = np.random.default_rng(seed).integers(0, steps + 1, size=batch) if ragged else None
    check_case(cpu, case[0], case[1], steps, batch, inputs, hidden, dtype, lengths=lengths, reverse=reverse,
               seed=seed)


def test_lengths_semantics():
    # Outputs past a sequence's length are 0; its final state is its state at the last valid step.
    a = make_inputs("lstm", 4, 2, 3, 5, np.float64)
    y_full, h_full, c_full, _ = cpu.lstm(*forward_args("lstm", a))
    y, h, c, _ = cpu.lstm(*forward_args("lstm", a), lengths=np.array([2, 4]))
    np.testing.assert_array_equal(y[2:, 0], 0)
    np.testing.assert_allclose(y[:2, 0], y_full[:2, 0])
    np.testing.assert_allclose(h[0], y_full[1, 0])
    np.testing.assert_allclose(h[1], h_full[1])
    y0, h0, c0, _ = cpu.lstm(*forward_args("lstm", a), lengths=np.array([0, 4]))
    np.testing.assert_array_equal(y0[:, 0], 0)
    np.testing.assert_array_equal(h0[0], a["h0"][0])
    np.testing.assert_array_equal(c0[0], a["c0"][0])
    # Reverse direction of a length-2 sequence reads t=1 then t=0.
    yr, hr, _, _ = cpu.lstm(*forward_args("lstm", a), lengths=np.array([2, 4]), reverse=True)
    flipped = dict(a, x=np.ascontiguousarray(a["x"][1::-1]))
    yf, hf, _, _ = cpu.lstm(*forward_args("lstm", flipped))
    np.testing.assert_allclose(yr[:2, 0], yf[::-1, 0])
    np.testing.assert_allclose(hr[0], hf[0])


def test_nan_propagates():
    a = make_inputs("gru", 3, 2, 2, 3, np.float64)
    a["x"][1, 0, 0] = np.nan
    y, h, _ = cpu.gru(*forward_args("gru", a))
    ry, rh, _ = ref.gru(*forward_args("gru", a))
    assert np.isnan(y[1:, 0]).all() and np.isnan(h[0]).all()
    assert not np.isnan(y[:, 1]).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ry))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input(backend):
    a = make_inputs("lstm", 3, 2, 4, 5, np.float32)
    args = forward_args("lstm", a)
    with pytest.raises(ValueError, match=r"w_ih must have shape \(20, 4\), got \(20, 3\)"):
        backend.lstm(a["x"], a["h0"], a["c0"], a["w_ih"][:, :3].copy(), a["w_hh"])
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 5\), got \(3, 5\)"):
        backend.lstm(a["x"], np.zeros((3, 5), np.float32), *args[2:])
    with pytest.raises(ValueError, match=r"c0 must have shape \(2, 5\), got \(2, 4\)"):
        backend.lstm(a["x"], a["h0"], np.zeros((2, 4), np.float32), *args[3:])
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int64"):
        backend.lstm(np.zeros((3, 2, 4), np.int64), *args[1:])
    with pytest.raises(TypeError, match="h0 has dtype float64 but x has dtype float32"):
        backend.lstm(a["x"], a["h0"].astype(np.float64), *args[2:])
    with pytest.raises(ValueError, match="x must be 3-D, got 2-D"):
        backend.lstm(a["x"][0], *args[1:])
    with pytest.raises(ValueError, match=r"w_hh must have shape \(4\*H, H\) for lstm, got \(15, 5\)"):
        backend.lstm(a["x"], a["h0"], a["c0"], a["w_ih"], np.zeros((15, 5), np.float32))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 3\]"):
        backend.lstm(*args, lengths=np.array([1, 4]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        backend.lstm(*args, lengths=np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="lengths must have an integer dtype, got float64"):
        backend.lstm(*args, lengths=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        backend.rnn(a["x"], a["h0"], np.zeros((5, 4), np.float32), np.zeros((5, 5), np.float32),
                    nonlinearity="sigmoid")
    y, h, c, saved = backend.lstm(*args)
    with pytest.raises(ValueError, match=r"saved must have shape \(3, 2, 25\), got \(3, 2, 20\)"):
        backend.lstm_backward(y, h, c, a["x"], a["h0"], a["c0"], a["w_ih"], a["w_hh"], y, saved[:, :, :20].copy())
    with pytest.raises(ValueError, match=r"grad_h_n must have shape \(2, 5\)"):
        backend.lstm_backward(y, h[:1].copy(), c, a["x"], a["h0"], a["c0"], a["w_ih"], a["w_hh"], y, saved)


@wide_vectors
def test_gate_passes_vectorise():
    """The float32 gate passes run packed (``vdivps`` on ymm/zmm, the sigmoid's and tanh's division),
    not one scalar division an element: recompiled here with the kernels' options (cached code
    cannot be inspected). One loop over all the gate arrays stayed scalar (``recurrent.py``)."""
    import importlib
    import re

    from numba import njit

    rec = importlib.import_module("jitgrad.kernels.cpu.recurrent")
    opts = {**rec._jit, "cache": False}
    steps, batch, hidden = 2, 3, 8
    f32 = np.float32
    lengths = np.full(batch, steps, np.int64)
    h, c = np.zeros((batch, hidden), f32), np.zeros((batch, hidden), f32)
    forward = {  # (kernel, gates, a call with xp, gates, bias, y, saved)
        "lstm": (rec._lstm_rows, 4, lambda k, xp, g, b, y, sv: k(0, batch, 0, xp, g, b, b, lengths, False, False,
                                                                  h, c, y, sv)),
        "gru": (rec._gru_rows, 3, lambda k, xp, g, b, y, sv: k(0, batch, 0, xp, g, b, b, lengths, False, False,
                                                                 h, h, y, sv)),
    }
    for name, (kernel, gates, call) in forward.items():
        n = gates * hidden
        fresh = njit(**opts)(kernel.py_func)
        call(fresh, np.zeros((steps, batch, n), f32), np.zeros((batch, n), f32), np.zeros(n, f32),
             np.zeros((steps, batch, hidden), f32), np.zeros((steps, batch, 5 * hidden), f32))
        asm = fresh.inspect_asm(fresh.signatures[0])
        assert re.search(r"\bvdivps\s[^\n]*[yz]mm", asm), f"{name}: the gate pass has no packed division"
    backward = njit(**opts)(rec._lstm_rows_backward.py_func)
    saved = np.zeros((steps, batch, 5 * hidden), f32)
    y = np.zeros((steps, batch, hidden), f32)
    grad_g = np.zeros((steps, batch, 4 * hidden), f32)
    backward(0, batch, 1, y, y, saved, h, c, lengths, False, False, np.zeros_like(h), np.zeros_like(h),
             np.zeros((batch, 4 * hidden), f32), grad_g, grad_g, np.zeros_like(y))
    asm = backward.inspect_asm(backward.signatures[0])
    assert re.search(r"\bvdivps\s[^\n]*[yz]mm", asm), "lstm backward: tanh(c) not packed"
