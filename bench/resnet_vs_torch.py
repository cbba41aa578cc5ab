"""The small MNIST ResNet's training step (examples/mnist_models.py) in jitgrad and in PyTorch CPU, side by side.

Same architecture layer for layer (77,754 parameters), Adam, cross-entropy, a seeded MNIST-shaped batch.
Steps of the two frameworks alternate (a burst of load on a shared machine hits both), and medians are
reported, in two settings:

- 1 thread, **CPU time** of the process per step (``time.process_time``): what the step costs, nearly
  immune to other processes on the machine;
- ``--threads`` threads (default 2), **wall time** per step: what a user waits for (noisy when shared).

Then a per-op breakdown of one step: jitgrad's kernels (every ``jitgrad.kernels.cpu`` function, wrapped
with a timer; "other" is the rest of the step: NumPy elementwise ops, autograd bookkeeping, optimizer
glue) and PyTorch's ATen ops (``torch.profiler``, self CPU time).

    PYTHONPATH=<torch site-packages> .venv/bin/python bench/resnet_vs_torch.py [--steps 9] [--threads 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP pools must not spin on the other's cores

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import jitgrad  # noqa: E402
import jitgrad.kernels.cpu as cpu_kernels  # noqa: E402
from jitgrad import nn as jnn  # noqa: E402
from mnist_models import resnet as jitgrad_resnet  # noqa: E402


def torch_resnet(tnn: Any) -> Any:
    """examples/mnist_models.resnet, layer for layer, in ``torch.nn``."""
    class Residual(tnn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.body = tnn.Sequential(
                tnn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), tnn.BatchNorm2d(c_out), tnn.ReLU(),
                tnn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), tnn.BatchNorm2d(c_out))
            self.shortcut = (tnn.Identity() if stride == 1 and c_in == c_out else tnn.Sequential(
                tnn.Conv2d(c_in, c_out, 1, stride, bias=False), tnn.BatchNorm2d(c_out)))

        def forward(self, x: Any) -> Any:
            return (self.body(x) + self.shortcut(x)).relu()

    return tnn.Sequential(
        tnn.Conv2d(1, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU(),
        Residual(16, 16, 1), Residual(16, 32, 2), Residual(32, 64, 2),
        tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(64, 10))


def steps(torch: Any, batch: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """One training step of each framework on the same seeded batch."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, batch).astype(np.int64)

    jnn.init.manual_seed(0)
    jmodel = jitgrad_resnet()
    jmodel.train()
    jopt = jitgrad.optim.Adam(jmodel.parameters(), lr=1e-3)
    jx, jy = jitgrad.tensor(images), jitgrad.tensor(labels)

    def jitgrad_step() -> None:
        jopt.zero_grad()
        jnn.functional.cross_entropy(jmodel(jx), jy).backward()
        jopt.step()

    torch.manual_seed(0)
    tmodel = torch_resnet(torch.nn)
    tmodel.train()
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(images), torch.from_numpy(labels)

    def torch_step() -> None:
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(tx), ty).backward()
        topt.step()

    n_j = sum(p.data.size for p in jmodel.parameters())
    n_t = sum(p.numel() for p in tmodel.parameters())
    assert n_j == n_t == 77_754, (n_j, n_t)
    return jitgrad_step, torch_step


def interleaved(calls: dict[str, Callable[[], None]], n: int, clock: Callable[[], float]) -> dict[str, float]:
    """Median seconds per call of each callable on ``clock``, the callables taking turns."""
    for fn in calls.values():
        fn()
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(n):
        for name, fn in calls.items():
            t = clock()
            fn()
            samples[name].append(clock() - t)
    return {k: statistics.median(v) for k, v in samples.items()}


def jitgrad_breakdown(step: Callable[[], None], n: int) -> tuple[dict[str, float], float]:
    """Seconds per step in each jitgrad CPU kernel (by name), and the whole step's, medians of ``n``."""
    per: dict[str, list[float]] = defaultdict(list)
    acc: dict[str, float] = defaultdict(float)
    originals = {name: getattr(cpu_kernels, name) for name in dir(cpu_kernels)
                 if not name.startswith("_") and callable(getattr(cpu_kernels, name))
                 and getattr(getattr(cpu_kernels, name), "__module__", "").startswith("jitgrad.kernels")}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[name] += time.process_time() - t
        return timed

    totals = []
    try:
        for name, fn in originals.items():
            setattr(cpu_kernels, name, wrap(name, fn))
        for _ in range(n):
            acc.clear()
            t = time.process_time()
            step()
            totals.append(time.process_time() - t)
            for name in originals:
                per[name].append(acc.get(name, 0.0))
    finally:
        for name, fn in originals.items():
            setattr(cpu_kernels, name, fn)
    return {k: statistics.median(v) for k, v in per.items() if max(v) > 0}, statistics.median(totals)


def torch_breakdown(torch: Any, step: Callable[[], None], n: int) -> tuple[dict[str, float], float]:
    """CPU seconds per step of each ATen op, and the whole step's CPU time.

    The profiler's self times are wall-clock (inflated on a shared machine), so each op gets its share
    of their sum times the step's process CPU time.
    """
    from torch.profiler import ProfilerActivity, profile

    t = time.process_time()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            step()
    total = (time.process_time() - t) / n
    ops = {e.key: float(e.self_cpu_time_total) for e in prof.key_averages() if e.self_cpu_time_total > 0}
    wall = sum(ops.values()) or 1.0
    return {k: v / wall * total for k, v in ops.items()}, total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=9, help="steps per framework and setting (median)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the wall-time setting")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--no-breakdown", action="store_true")
    opts = parser.parse_args(argv)
    import torch

    jstep, tstep = steps(torch, opts.batch)
    print(f"small ResNet (77,754 parameters), batch {opts.batch}, Adam; torch {torch.__version__}")
    for threads, clock, what in ((1, time.process_time, "CPU time"), (opts.threads, time.perf_counter, "wall time")):
        jitgrad.set_num_threads(threads)
        torch.set_num_threads(threads)
        t = interleaved({"jitgrad": jstep, "torch": tstep}, opts.steps, clock)
        print(f"{threads} thread(s), {what} per step: jitgrad {t['jitgrad'] * 1e3:7.1f} ms "
              f"({opts.batch / t['jitgrad']:6.0f} img/s)  torch {t['torch'] * 1e3:7.1f} ms "
              f"({opts.batch / t['torch']:6.0f} img/s)  jitgrad images/s vs torch: {t['torch'] / t['jitgrad']:.2f}x",
              flush=True)
    if opts.no_breakdown:
        return
    jitgrad.set_num_threads(1)
    torch.set_num_threads(1)
    kernels, jtotal = jitgrad_breakdown(jstep, max(3, opts.steps // 2))
    ops, ttotal = torch_breakdown(torch, tstep, max(3, opts.steps // 2))
    print(f"\nper-op breakdown, 1 thread, CPU ms per step (jitgrad step {jtotal * 1e3:.1f} ms, "
          f"torch step {ttotal * 1e3:.1f} ms under its profiler)")
    print("  jitgrad kernel                            ms  |  torch ATen op (self, share of CPU)     ms")
    jrows = sorted(kernels.items(), key=lambda kv: -kv[1])
    jrows.append(("other (NumPy elementwise, autograd, glue)", jtotal - sum(kernels.values())))
    trows = sorted(ops.items(), key=lambda kv: -kv[1])[:len(jrows)]
    for i in range(max(len(jrows), len(trows))):
        left = f"{jrows[i][0][:36]:36s} {jrows[i][1] * 1e3:6.1f}" if i < len(jrows) else " " * 43
        right = f"{trows[i][0][:36]:36s} {trows[i][1] * 1e3:6.1f}" if i < len(trows) else ""
        print(f"  {left}  |  {right}")


if __name__ == "__main__":
    main()
