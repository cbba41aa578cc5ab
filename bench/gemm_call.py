"""What a small product's call costs: the one-thread GEMM in a loop inside Numba (no call at all),
its compiled entry point and ``matmul`` called from Python, and ``np.matmul`` (OpenBLAS, with its
own call), per shape; then ``matmul``'s fast path with a no-op in place of the kernel (its Python
checks alone).

Minimum of 15 blocks of calls, microseconds: on a shared machine the minimum is the steadiest
statistic for a few microseconds of work. One thread for both libraries (``OMP_NUM_THREADS=1
OPENBLAS_NUM_THREADS=1``; Numba's threads set to 1 here), so the kernel, not the team, is compared;
``bench/matmul_side_by_side.py`` compares ``matmul`` with NumPy on the report's threads.

Usage: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/gemm_call.py [M K N OP ...]
"""
import importlib
import sys
import time

import numba
import numpy as np

gemm = importlib.import_module("jitgrad.kernels.cpu._gemm")
mm = importlib.import_module("jitgrad.kernels.cpu.matmul")
isa = importlib.import_module("jitgrad.kernels.cpu._isa")
NO_TEAM = importlib.import_module("jitgrad.kernels.cpu._team_state").NO_TEAM

#: LeNet fc3's forward and input gradient, the ResNet head's input gradient, LeNet fc2's input gradient.
DEFAULT = ["128 84 10 NT", "128 10 84 NN", "10 128 84 TN", "128 10 64 NN", "128 84 120 NN"]
checked = gemm.gemm_checked


@numba.njit("void(float32[:, :], float32[:, :], boolean, boolean, float32[:, :], float32[::1], int64, int64[::1])")
def in_numba(a, b, trans_a, trans_b, c, bias, calls, team):  # (arrays of any layout: the entry point's types)
    for _ in range(calls):
        checked(a, b, trans_a, trans_b, c, bias, 0, 0, team)


def min_us(fn, calls, blocks=15):
    fn()
    best = float("inf")
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def main(argv):
    words = argv or " ".join(DEFAULT).split()
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    bias = np.zeros(1, np.float32)
    print(f"path: {isa.describe()}; threads {numba.get_num_threads()}")
    for i in range(0, len(words), 4):
        m, k, n, op = int(words[i]), int(words[i + 1]), int(words[i + 2]), words[i + 3].upper()
        ta, tb = op[0] == "T", op[1] == "T"
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        c, c_np = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
        op_a, op_b = (a.T if ta else a), (b.T if tb else b)
        calls = max(200, int(2e7 / (2 * m * n * k)))
        in_numba(a, b, ta, tb, c, bias, 1, NO_TEAM)
        kernel = min_us(lambda: in_numba(a, b, ta, tb, c, bias, calls, NO_TEAM), 1) / calls
        entry = gemm.serial_entry(c.dtype)
        bare = min_us(lambda: entry(a, b, ta, tb, c, bias, 0, 0, NO_TEAM), calls)
        call = min_us(lambda: mm.matmul(a, b, trans_a=ta, trans_b=tb, out=c), calls)
        numpy = min_us(lambda: np.matmul(op_a, op_b, out=c_np), calls)
        assert np.allclose(c, c_np, rtol=1e-4, atol=1e-4)
        print(f"{m}x{k}x{n} {op}: kernel in Numba {kernel:7.2f}  entry point {bare:7.2f}  matmul {call:7.2f}  "
              f"numpy {numpy:7.2f}  "
              f"ratio {numpy / call:5.2f}", flush=True)
    a, b = np.ones((128, 10), np.float32), np.ones((10, 84), np.float32)
    c = mm.matmul(a, b)
    entries = gemm._SERIAL_ENTRIES
    real = entries[c.dtype]
    entries[c.dtype] = lambda *args: gemm.DONE
    try:
        checks = min_us(lambda: mm.matmul(a, b, trans_a=False, trans_b=False, out=c), 100000)
        bare = min_us(lambda: entries[c.dtype](a, b, False, False, c, bias, 0, 0, NO_TEAM), 100000)
    finally:
        entries[c.dtype] = real
    print(f"matmul's fast path with a no-op kernel: {checks:.2f} us (a Python call of its nine arguments: {bare:.2f})")


if __name__ == "__main__":
    main(sys.argv[1:])
