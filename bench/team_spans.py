#!/usr/bin/env python
"""An activation's three ways to run, timed in loops of calls: its serial twin, its OpenMP twin, and
the serial twin on spans on the GEMM team (``kernels/cpu/_team_spans.py``); µs, median of 9 blocks.
For the kernels whose arguments are all arrays (no slope, alpha, beta): random inputs, one output.

    python bench/team_spans.py                       # tanh (float32) at 32k, 128k and 2.77M elements
    python bench/team_spans.py --kernel _SIGMOID --sizes 131072 1048576
"""

from __future__ import annotations

import argparse
import importlib

import numpy as np
from gemm_drivers import median_us  # bench/ is the script's folder

from jitgrad.config import set_num_threads
from jitgrad.kernels.cpu import _team, _team_spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="_TANH_F32", help="a Twins of kernels/cpu/activations.py")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32768, 128000, 128 * 32 * 26 * 26])
    parser.add_argument("--threads", type=int, default=2)
    opts = parser.parse_args()
    set_num_threads(opts.threads)
    k = getattr(importlib.import_module("jitgrad.kernels.cpu.activations"), opts.kernel)
    rng = np.random.default_rng(0)
    nargs = k.serial.py_func.__code__.co_argcount
    names = k.serial.py_func.__code__.co_varnames[:nargs]
    if set(names) - {"x", "grad_out", "out"}:
        parser.error(f"--kernel: {opts.kernel} takes scalars {names}; this script times array-only kernels")
    print(f"{opts.kernel} ({k.serial.py_func.__name__}), float32, {opts.threads} threads; µs")
    print(f"{'elements':>10} {'serial':>9} {'OpenMP':>9} {'team':>9}")
    for size in opts.sizes:
        arrays = [rng.standard_normal(size).astype(np.float32) for _ in range(nargs - 1)]
        out = np.empty(size, np.float32)
        args = (*arrays, out)
        _team.team_state(opts.threads)
        reps = max(3, 2_000_000 // size)
        serial = median_us(lambda args=args: k.serial(*args), reps)
        parallel = median_us(lambda args=args: k.parallel(*args), reps)
        team = median_us(lambda args=args, size=size: _team_spans.run(k.serial, args, size), reps)
        print(f"{size:>10} {serial:9.1f} {parallel:9.1f} {team:9.1f}")


if __name__ == "__main__":
    main()
