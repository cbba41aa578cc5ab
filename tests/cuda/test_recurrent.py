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
