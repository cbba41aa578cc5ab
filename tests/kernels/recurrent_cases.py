"""One case table for the recurrent kernels, shared by the CPU and CUDA tests.

``check_case`` runs a fast backend's forward and backward kernel on seeded
inputs and holds every output (``y``, final states, saved arrays and all
gradients) to the NumPy reference.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import jitgrad.kernels.reference as ref
from tests.helpers import assert_close

#: (cell, nonlinearity) pairs: every kernel and both RNN activations.
CELLS = [("lstm", None), ("gru", None), ("rnn", "tanh"), ("rnn", "relu")]
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def make_inputs(cell: str, steps: int, batch: int, inputs: int, hidden: int, dtype: Any, seed: int = 0,
                bias: bool = True) -> dict[str, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    g = GATES[cell] * hidden

    def r(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.6).astype(dtype)

    arrays = dict(x=r(steps, batch, inputs), h0=r(batch, hidden), c0=r(batch, hidden), w_ih=r(g, inputs),
                  w_hh=r(g, hidden), b_ih=r(g) if bias else None, b_hh=r(g) if bias else None,
                  grad_y=r(steps, batch, hidden), grad_h_n=r(batch, hidden), grad_c_n=r(batch, hidden))
    return arrays


def forward_args(cell: str, a: dict[str, Any]) -> list[Any]:
    states = [a["h0"], a["c0"]] if cell == "lstm" else [a["h0"]]
    return [a["x"], *states, a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"]]


def backward_args(cell: str, a: dict[str, Any], outputs: tuple[Any, ...]) -> list[Any]:
    if cell == "lstm":
        y, _, _, saved = outputs
        return [a["grad_y"], a["grad_h_n"], a["grad_c_n"], a["x"], a["h0"], a["c0"], a["w_ih"], a["w_hh"], y, saved]
    if cell == "gru":
        y, _, saved = outputs
        return [a["grad_y"], a["grad_h_n"], a["x"], a["h0"], a["w_ih"], a["w_hh"], y, saved]
    return [a["grad_y"], a["grad_h_n"], a["x"], a["h0"], a["w_ih"], a["w_hh"], outputs[0]]


def check_case(backend: Any, cell: str, nonlinearity: str | None, steps: int, batch: int, inputs: int,
               hidden: int, dtype: Any, *, lengths: np.ndarray | None = None, reverse: bool = False,
               bias: bool = True, seed: int = 0, to_device: Callable[[Any], Any] = lambda a: a,
               to_host: Callable[[Any], Any] = lambda a: a) -> None:
    """Hold ``backend``'s ``cell`` forward and backward kernels to the reference on one case."""
    a = make_inputs(cell, steps, batch, inputs, hidden, dtype, seed, bias)
    kw: dict[str, Any] = dict(lengths=lengths, reverse=reverse)
    if nonlinearity is not None:
        kw["nonlinearity"] = nonlinearity
    expected = getattr(ref, cell)(*forward_args(cell, a), **kw)
    dev = {k: (to_device(v) if v is not None else None) for k, v in a.items()}
    actual = getattr(backend, cell)(*forward_args(cell, dev), **kw)
    assert len(actual) == len(expected)
    for i, (got, want) in enumerate(zip(actual, expected)):
        got = to_host(got)
        assert got.dtype == np.dtype(dtype), f"{cell} output {i} has dtype {got.dtype}"
        assert_close(got, want, dtype, err_msg=f"{cell} forward output {i}")
    # Backward from the reference's forward outputs, so both backends see identical saved arrays.
    expected_grads = getattr(ref, cell + "_backward")(*backward_args(cell, a, expected), **kw)
    dev_outputs = tuple(to_device(o) for o in expected)
    actual_grads = getattr(backend, cell + "_backward")(*backward_args(cell, dev, dev_outputs), **kw)
    assert len(actual_grads) == len(expected_grads)
    for i, (got, want) in enumerate(zip(actual_grads, expected_grads)):
        got = to_host(got)
        assert got.dtype == np.dtype(dtype)
        assert_close(got, want, dtype, err_msg=f"{cell} backward output {i}")
