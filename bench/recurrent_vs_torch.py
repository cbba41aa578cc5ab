"""LSTM (GRU, RNN) forward + backward, jitgrad vs PyTorch CPU, side by side in one process with the same threads.

    PYTHONPATH=<torch site-packages> python bench/recurrent_vs_torch.py [--threads 2] [--repeat 7] [--cell gru]

Prints per shape the median time of a whole training step of one ``nn.LSTM``
(``--cell``: ``lstm``, ``gru`` or ``rnn``, a tanh ``nn.RNN``)
layer (forward over the sequence, ``sum(y)`` backward) on both frameworks
and the ratio PyTorch / jitgrad (> 1: jitgrad faster). Ratios are what
survive a noisy machine; the runs alternate so both see the same load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks.bench_recurrent import SHAPES  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm")
    args = p.parse_args()
    import torch

    import jitgrad as jg
    from jitgrad import nn

    torch.set_num_threads(args.threads)
    jg.set_num_threads(args.threads)
    for label, (steps, batch, inputs, hidden) in SHAPES.items():
        cls = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[args.cell]
        tm = getattr(torch.nn, cls)(inputs, hidden)
        jm = getattr(nn, cls)(inputs, hidden)
        jm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
        x = np.random.default_rng(0).standard_normal((steps, batch, inputs)).astype(np.float32)
        tx = torch.tensor(x)

        def torch_step():
            tm.zero_grad()
            tm(tx)[0].sum().backward()

        def jitgrad_step():
            jm.zero_grad()
            jm(jg.tensor(x))[0].sum().backward()

        torch_step(), jitgrad_step()
        times = {"torch": [], "jitgrad": []}
        for _ in range(args.repeat):
            for name, fn in (("torch", torch_step), ("jitgrad", jitgrad_step)):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        tt, jt = np.median(times["torch"]), np.median(times["jitgrad"])
        print(f"{args.cell} {label:11s} seq {steps:3d} batch {batch:3d} input {inputs:3d} hidden {hidden:3d}: "
              f"torch {tt * 1e3:8.1f} ms  jitgrad {jt * 1e3:8.1f} ms  torch/jitgrad {tt / jt:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
