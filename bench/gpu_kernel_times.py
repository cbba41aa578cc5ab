"""The GPU's own time per kernel in one training step, jitgrad's and PyTorch's, for Nsight Compute.

    ncu --clock-control none --profile-from-start off --metrics gpu__time_duration.sum --csv \
        python bench/gpu_kernel_times.py [MODEL ...]

Host costs hide the kernels' own times from CUDA events around a Python call: a relu of 11 MB
is 21 us of GPU work behind ~100 us of host work. This script warms each model's training step up
(compiling every kernel), then runs one more step of jitgrad and one of PyTorch inside a profiler
range (``cudaProfilerStart``/``Stop``), so that ``ncu --profile-from-start off`` times exactly
the kernels of those steps. Each range is announced on stdout ("range MODEL jitgrad|torch"), in
the order ncu's rows come. Without ncu it prints each step's wall time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from benchmarks import common, models
from numba import cuda

#: The simulator has no profiler range (a dry run of the plumbing).
profile_start = getattr(cuda, "profile_start", lambda: None)
profile_stop = getattr(cuda, "profile_stop", lambda: None)


def main(argv: list[str]) -> int:
    names = argv or ["lenet5", "keras-convnet"]
    try:
        import torch
    except ImportError:
        torch = None
    for name in names:
        steps = [("jitgrad", models.train_step(name, "cuda", common.BATCH))]
        if torch is not None and torch.cuda.is_available():
            import report

            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            steps.append(("torch", report.torch_train_step(torch, name, common.BATCH, device="cuda")[0]))
        for who, step in steps:
            for _ in range(3):  # compiles, fills the caching allocator, lets cuDNN pick its algorithms
                step()
            cuda.synchronize()
            if torch is not None:
                torch.cuda.synchronize()
            print(f"range {name} {who}", flush=True)
            t0 = time.perf_counter()
            profile_start()
            step()
            cuda.synchronize()
            if torch is not None:
                torch.cuda.synchronize()
            profile_stop()
            print(f"  {name} {who}: one step {1e3 * (time.perf_counter() - t0):.2f} ms wall", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
