"""The three packed-GEMM drivers side by side, each in a loop of calls: one thread (``gemm_serial``),
Numba's OpenMP pool (``gemm_parallel``) and the GEMM team (``gemm_team``, kernels/cpu/_team.py).

No NumPy call runs in the process (OpenBLAS's spinning workers would take the second core), so
this compares the drivers alone; ``bench/matmul_side_by_side.py`` compares ``matmul`` with NumPy.
Medians of 9 blocks of REPS calls (default: about 0.2 s of work a block), in microseconds.

Usage: python bench/gemm_drivers.py [M K N OP ...]   (OP: NN, NT, TN or TT; default: a set of shapes)
"""
import os
import sys
import time
import importlib

import numba
import numpy as np

g = importlib.import_module("jitgrad.kernels.cpu._gemm")
team = importlib.import_module("jitgrad.kernels.cpu._team")

DEFAULT = ["64 64 64 NN", "128 120 84 NT", "128 84 120 NN", "128 10 1600 NN", "32 9 10816 NN",
           "144 16 12544 TN", "32 288 3136 NN", "256 256 256 NN", "1024 1024 1024 NN"]


def median_us(fn, reps):
    for _ in range(min(50, reps)):
        fn()
    blocks = []
    for _ in range(9):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        blocks.append((time.perf_counter() - t0) / reps)
    return sorted(blocks)[4] * 1e6


def main(argv):
    words = argv or " ".join(DEFAULT).split()
    nthreads = numba.get_num_threads()
    state = team.team_state(nthreads)
    bias = np.zeros(1, np.float32)
    rng = np.random.default_rng(0)
    print(f"threads {nthreads}; team helpers {len(team._HELPERS)}")
    for i in range(0, len(words), 4):
        m, k, n, op = int(words[i]), int(words[i + 1]), int(words[i + 2]), words[i + 3].upper()
        ta, tb = op[0] == "T", op[1] == "T"
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        c = np.empty((m, n), np.float32)
        reps = int(os.environ.get("REPS", max(3, int(2e10 / (2 * m * n * k * 100)))))
        serial = median_us(lambda: g.run_serial(a, b, ta, tb, c, bias, 0), reps)
        omp = median_us(lambda: g.gemm_parallel(a, b, ta, tb, c, nthreads, bias, 0), reps)
        helped = state[team.HELPED]
        on_team = median_us(lambda: team.gemm_team(a, b, ta, tb, c, nthreads, bias, 0, state), reps)
        print(f"{m}x{k}x{n} {op}: one thread {serial:9.1f}  OpenMP {omp:9.1f}  team {on_team:9.1f}  "
              f"(helpers took {state[team.HELPED] - helped} blocks)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
