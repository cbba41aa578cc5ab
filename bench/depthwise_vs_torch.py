"""Depthwise conv (64, 32, 28, 28) 3x3 padding 1, float32: jitgrad CPU vs PyTorch CPU, side by side.

Run: PYTHONPATH=<torch site-packages> .venv/bin/python bench/depthwise_vs_torch.py [threads]
Prints, per kernel, the best of interleaved rounds (a shared machine's noise only ever adds time)
and the ratio torch_time / jitgrad_time (> 1: jitgrad faster).
"""

from __future__ import annotations

import sys
import time

import numba
import numpy as np
import torch

import jitgrad.kernels.cpu as cpu


def best(fn, rounds: int = 25) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32, 28, 28)).astype(np.float32)
    w = rng.standard_normal((32, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    g = rng.standard_normal((64, 32, 28, 28)).astype(np.float32)
    tx, tw, tb, tg = map(torch.from_numpy, (x, w, b, g))
    conv_bw = torch.ops.aten.convolution_backward
    cases = {
        "forward": (lambda: cpu.conv2d(x, w, b, padding=1, groups=32),
                    lambda: torch.nn.functional.conv2d(tx, tw, tb, padding=1, groups=32)),
        "backward_input": (lambda: cpu.conv2d_backward_input(g, w, input_shape=x.shape, padding=1, groups=32),
                           lambda: conv_bw(tg, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 32,
                                           [True, False, False])),
        "backward_weight": (lambda: cpu.conv2d_backward_weight(x, g, weight_shape=w.shape, padding=1, groups=32),
                            lambda: conv_bw(tg, tx, tw, [32], [1, 1], [1, 1], [1, 1], False, [0, 0], 32,
                                            [False, True, True])),
    }
    for name, (mine, theirs) in cases.items():
        tj = min(best(mine, 5) for _ in range(5))
        tt = min(best(theirs, 5) for _ in range(5))
        print(f"depthwise {name:16s} threads={threads}: jitgrad {tj * 1e3:7.2f} ms  torch {tt * 1e3:7.2f} ms  "
              f"torch/jitgrad {tt / tj:5.2f}x")


if __name__ == "__main__":
    main()
