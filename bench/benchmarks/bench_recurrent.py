"""asv benchmarks of the recurrent kernels: LSTM forward + backward over a whole sequence.

Shapes: ``mnist_rows`` is the sequence-MNIST training step (seq 28, batch
128, input 28, hidden 128); ``seq100`` a longer, wider one (seq 100, batch
32, input 64, hidden 256). Backends as in the kernel classes: ``numpy``
(the reference), ``cpu``, ``cuda`` (``NotImplementedError`` without a GPU).
``bench/recurrent_vs_torch.py`` prints the same cases side by side with
PyTorch CPU.
"""

from __future__ import annotations

import importlib

import numpy as np

from .common import cuda_ready

#: label -> (steps, batch, inputs, hidden)
SHAPES = {"mnist_rows": (28, 128, 28, 128), "seq100": (100, 32, 64, 256)}
_MODULES = {"numpy": "jitgrad.kernels.reference", "cpu": "jitgrad.kernels.cpu", "cuda": "jitgrad.kernels.cuda"}


def lstm_inputs(steps: int, batch: int, inputs: int, hidden: int, dtype=np.float32, seed: int = 0) -> dict:
    """Seeded LSTM inputs, weights in PyTorch's init range, and output gradients."""
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(hidden)

    def u(*shape):
        return rng.uniform(-k, k, shape).astype(dtype)

    return dict(x=rng.standard_normal((steps, batch, inputs)).astype(dtype), h0=u(batch, hidden),
                c0=u(batch, hidden), w_ih=u(4 * hidden, inputs), w_hh=u(4 * hidden, hidden), b_ih=u(4 * hidden),
                b_hh=u(4 * hidden), grad_y=rng.standard_normal((steps, batch, hidden)).astype(dtype),
                grad_h=np.zeros((batch, hidden), dtype), grad_c=np.zeros((batch, hidden), dtype))


class LSTM:
    """``lstm`` then ``lstm_backward``: one training step of one layer."""

    params = (list(SHAPES), ["numpy", "cpu", "cuda"])
    param_names = ["shape", "backend"]
    timeout = 300

    def setup(self, shape, backend):
        if backend == "cuda":
            cuda_ready()
        k = importlib.import_module(_MODULES[backend])
        a = lstm_inputs(*SHAPES[shape])
        if backend == "cuda":
            from numba import cuda

            a = {name: cuda.to_device(v) for name, v in a.items()}
            sync = cuda.synchronize
        else:
            def sync():
                return None

        def step():
            y, h, c, saved = k.lstm(a["x"], a["h0"], a["c0"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"])
            k.lstm_backward(a["grad_y"], a["grad_h"], a["grad_c"], a["x"], a["h0"], a["c0"], a["w_ih"], a["w_hh"],
                            y, saved)
            sync()

        self.step = step
        step()  # compile (or load from the cache) outside the timing

    def time_forward_backward(self, shape, backend):
        self.step()
