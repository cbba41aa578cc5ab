"""Where the host time of a jitgrad CUDA call goes, on a real GPU.

    python bench/gpu_overhead.py [--profile]        (JITGRAD_CUDA_POOL=0 turns the caching allocator off)

Prints the wall time per call (a loop of calls, one synchronize at the end: what
the host can issue, the GPU being faster than the host on these sizes) of
Numba's pieces (an empty launch, a device allocation, a reshape) and of jitgrad's
wrappers (relu, matmul, conv2d) and a LeNet-5 training step, and with
``--profile`` the cProfile of a relu loop and of the training steps (the
functions with the most time of their own).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

import jitgrad.kernels.cuda as kc  # noqa: E402  (installs the caching allocator unless JITGRAD_CUDA_POOL=0)
from benchmarks import models  # noqa: E402


#: NUMBA_ENABLE_CUDASIM=1 makes this a dry run of the plumbing: tiny shapes, two calls (the timings mean nothing).
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def per_call_us(fn, n: int = 1000) -> float:
    n = 2 if SIM else n
    for _ in range(3):
        fn()
    cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1e6


def profile(fn, n: int, lines: int = 22) -> str:
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        fn()
    cuda.synchronize()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(lines)
    return s.getvalue()


@cuda.jit
def _noop(x):
    pass


@cuda.jit
def _noop10(a, b, c, d, e, f, g, h, i, j):
    pass


def main() -> None:
    from numba.cuda.cudadrv import driver

    manager = getattr(driver, "_memory_manager", None)
    print("memory manager:", manager.__name__ if manager else None)
    from numba.cuda import config as cfg

    print("low-occupancy warnings:", cfg.CUDA_LOW_OCCUPANCY_WARNINGS)
    print("fast launch:", type(kc.activations._relu_kernel).__name__)
    rng = np.random.default_rng(0)
    batch = 2 if SIM else 128
    xh = rng.standard_normal((batch, 2, 3, 3) if SIM else (128, 32, 26, 26)).astype(np.float32)
    x = cuda.to_device(xh)
    # The third call of a signature is the first on the fast path (kernels/cuda/_fastlaunch.py): check its result.
    results = [kc.relu(x).copy_to_host() for _ in range(3)]
    ok = all(np.array_equal(r, np.maximum(xh, 0)) for r in results)
    print("relu through the launch path, 3 calls:", "ok" if ok else "WRONG RESULT", flush=True)
    if not ok:
        sys.exit(3)
    small = cuda.to_device(np.ones(1024, np.float32))
    a = cuda.to_device(rng.standard_normal((batch, 16 if SIM else 256)).astype(np.float32))
    w = cuda.to_device(rng.standard_normal((8 if SIM else 120, 16 if SIM else 256)).astype(np.float32))
    img = cuda.to_device(rng.standard_normal((batch, 2, 5, 5) if SIM else (128, 32, 13, 13)).astype(np.float32))
    cw = cuda.to_device(rng.standard_normal((4, 2, 3, 3) if SIM else (64, 32, 3, 3)).astype(np.float32))
    flat = x.reshape(x.size)
    if not SIM:
        from jitgrad.kernels.cuda._fastlaunch import FastKernel

        fast_noop10 = FastKernel(_noop10)
    rows = [
        ("empty launch, 1 array, grid 1", lambda: _noop[1, 32](small)),
        ("empty launch, 1 array, grid 256", lambda: _noop[256, 256](small)),
        ("empty launch, 6 arrays + 4 scalars", lambda: _noop10[256, 256](small, small, small, small, small, small,
                                                                        np.float32(1), 2, 3, True)),
        *([] if SIM else [("  the same through FastKernel", lambda: fast_noop10[256, 256](
            small, small, small, small, small, small, np.float32(1), 2, 3, True))]),
        ("device_array 11 MB (alloc + drop)", lambda: cuda.device_array((128, 32, 26, 26), np.float32)),
        ("device_array 4 KB (alloc + drop)", lambda: cuda.device_array(1024, np.float32)),
        ("reshape of an 11 MB array", lambda: x.reshape(x.size)),
        ("relu 11 MB (jitgrad wrapper)", lambda: kc.relu(x)),
        ("relu kernel alone into a kept out", lambda: kc.activations._relu_kernel[(2, 8) if SIM else (4096, 256)](flat, flat)),
        ("matmul 128x256 @ 256x120 (trans_b)", lambda: kc.matmul(a, w, trans_b=True)),
        ("conv2d keras-conv2 fwd", lambda: kc.conv2d(img, cw)),
    ]
    for name, fn in rows:
        try:
            print(f"{name:40s} {per_call_us(fn):9.1f} us/call", flush=True)
        except Exception as exc:  # noqa: BLE001
            print(f"{name:40s} error {type(exc).__name__}: {exc}", flush=True)
    for model in () if SIM else ("lenet5", "keras-convnet"):
        step = models.train_step(model, "cuda", 128)
        step()
        per = per_call_us(step, 30)
        print(f"{model} training step (batch 128)         {per:9.1f} us/step = {128e6 / per:,.0f} images/s", flush=True)
    if "--profile" in sys.argv:
        print(profile(lambda: kc.relu(x), 300))
        if not SIM:
            print(profile(models.train_step("lenet5", "cuda", 128), 20, 40))


if __name__ == "__main__":
    main()
