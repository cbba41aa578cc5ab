#!/usr/bin/env python
"""An activation's three ways to run, timed in loops of calls: its serial twin, its OpenMP twin, and
the serial twin on spans on the GEMM team (``kernels/cpu/_team_spans.py``); µs, median of 9 blocks.
For the kernels whose arguments are all arrays (no slope, alpha, beta): random inputs, one output.

    python bench/team_spans.py                       # tanh (float32) at 32k, 128k and 2.77M elements
    python bench/team_spans.py --kernel _SIGMOID --sizes 131072 1048576
    python bench/team_spans.py --dot                 # matmul's dot-product driver, a @ b.T (M K N)
    python bench/team_spans.py --dot 128 1600 10 16 1024 150
"""

from __future__ import annotations

import argparse
import importlib

import numpy as np
from gemm_drivers import median_us  # bench/ is the script's folder

from jitgrad.config import set_num_threads
from jitgrad.kernels.cpu import _gemm_dot, _team, _team_spans

#: (M, K, N) of ``a @ b.T`` products on the dot-product driver: Keras fc's forward, then the weight
#: gradients of LeNet conv2, ResNet c32s2 and c32, LeNet conv1, Keras conv1, ResNet c16 (batch 16).
DOT_SHAPES = [128, 1600, 10, 16, 1024, 150, 32, 3136, 144, 32, 3136, 288, 6, 9216, 25, 32, 10816, 9,
              16, 12544, 144]


def dot_rows(words: list[int]) -> None:
    """The dot-product driver on one thread (``gemm_dot``), on OpenMP (``gemm_dot_parallel``), on the team."""
    rng = np.random.default_rng(0)
    threads = _team.num_threads()
    print(f"a @ b.T, float32, {threads} threads; µs")
    print(f"{'M x K x N':>18} {'serial':>9} {'OpenMP':>9} {'team':>9}")
    for i in range(0, len(words), 3):
        m, k, n = words[i:i + 3]
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((n, k)).astype(np.float32)
        c = np.empty((m, n), np.float32)
        reps = max(3, 30_000_000 // (m * n * k))
        if not _team_spans.run_dot(a, b, c):
            raise SystemExit("the team declined the product: JITGRAD_GEMM_TEAM=0, one thread, or not Linux x86-64")
        serial = median_us(lambda a=a, b=b, c=c, n=n: _gemm_dot.gemm_dot(a, b, c, 0, n), reps)
        parallel = median_us(lambda a=a, b=b, c=c: _gemm_dot.gemm_dot_parallel(a, b, c, threads), reps)
        team = median_us(lambda a=a, b=b, c=c: _team_spans.run_dot(a, b, c), reps)
        print(f"{f'{m} x {k} x {n}':>18} {serial:9.1f} {parallel:9.1f} {team:9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="_TANH_F32", help="a Twins of kernels/cpu/activations.py")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32768, 128000, 128 * 32 * 26 * 26])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dot", type=int, nargs="*", metavar="M K N",
                        help="time matmul's dot-product driver instead, on these shapes (default: the CNN's)")
    opts = parser.parse_args()
    set_num_threads(opts.threads)
    if opts.dot is not None:
        if len(opts.dot) % 3:
            parser.error(f"--dot: M K N triples, got {len(opts.dot)} numbers")
        dot_rows(opts.dot or DOT_SHAPES)
        return
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
        if not _team_spans.run(k.serial, args, size):
            parser.error("the team declined the kernel: JITGRAD_GEMM_TEAM=0, one thread, or not Linux x86-64")
        serial = median_us(lambda args=args: k.serial(*args), reps)
        parallel = median_us(lambda args=args: k.parallel(*args), reps)
        team = median_us(lambda args=args, size=size: _team_spans.run(k.serial, args, size), reps)
        print(f"{size:>10} {serial:9.1f} {parallel:9.1f} {team:9.1f}")


if __name__ == "__main__":
    main()
