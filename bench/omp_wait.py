"""How long Numba's OpenMP threads wait actively after a parallel region, and what it costs or saves.

Every parallel region wakes the pool's threads. A thread that waits passively
sleeps in the kernel and is woken by a futex: a few microseconds on bare
metal, ~100 us on a virtual machine whose idle vCPUs halt (the 2-core EPYC
Firecracker VM: ``bench/omp_wait.py`` measures it). A thread that spins a
while after a region (libgomp's ``GOMP_SPINCOUNT``, about 100 000 spins a
millisecond by its own estimate) is ready within microseconds for the next
region, but takes its core from whatever else runs meanwhile: another pool
(NumPy's OpenBLAS, PyTorch) or the Python thread of a data loader.

Each configuration runs in a fresh process (the spin count is read when the
pool starts), the configurations in turn, ``--rounds`` times; the table gives
medians in milliseconds:

* ``launch``: an empty two-thread ``prange`` launched 20 us after the last;
* ``lenet``, ``keras``: a training step at batch 128 (bench/benchmarks/models);
* ``conv``: a conv2d forward (batch 128, 6->16 channels, 12x12, 5x5), alone;
* ``conv+np``: that conv alternating with a NumPy 256x256 matmul (both timed):
  the case of two pools that spin on each other's cores;
* ``conv+torch``: the same with a PyTorch 256x256 matmul, when torch imports.

    python bench/omp_wait.py                      # PASSIVE and spin counts 2000, 10000
    python bench/omp_wait.py --spins 0 1000 3000  # 0: OMP_WAIT_POLICY=PASSIVE, no spin count
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, sys, time
sys.path.insert(0, {bench!r})
import numpy as np
import jitgrad
from benchmarks import models
from jitgrad.kernels import cpu as K
from numba import njit, prange

@njit(parallel=True)  # no cache: a -c script has no file
def bare(x):
    for t in prange(2):
        x[t] += 1.0

def med(f, n, reps=5):
    f()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n):
            f()
        out.append((time.perf_counter() - t) / n)
    return float(np.median(out)) * 1e3

def launch():
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 20e-6:
        pass
    bare(x2)

x2 = np.zeros(2)
res = {{"launch": med(launch, 200) - 0.02}}
for model in ("lenet5", "keras-convnet"):
    res[model.split("5")[0].split("-")[0]] = med(models.train_step(model, "cpu", 128), 5)
x = np.random.rand(128, 6, 12, 12).astype(np.float32)
w = np.random.rand(16, 6, 5, 5).astype(np.float32)
a = np.random.rand(256, 256).astype(np.float32)
res["conv"] = med(lambda: K.conv2d(x, w), 20)
res["conv+np"] = med(lambda: (a @ a, K.conv2d(x, w)), 20)
try:
    import torch
    torch.set_num_threads(2)
    ta = torch.from_numpy(a)
    res["conv+torch"] = med(lambda: (ta @ ta, K.conv2d(x, w)), 20)
except ImportError:
    pass
print(json.dumps(res))
"""


def run(spins: int) -> dict[str, float]:
    env = dict(os.environ)
    env.pop("GOMP_SPINCOUNT", None)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    if spins:
        env["GOMP_SPINCOUNT"] = str(spins)
    code = _CHILD.format(bench=str(Path(__file__).resolve().parent))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"omp_wait: the child with GOMP_SPINCOUNT={spins} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spins", type=int, nargs="+", default=[0, 2000, 10000])
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args(argv)
    results: dict[int, list[dict[str, float]]] = {s: [] for s in opts.spins}
    for _ in range(opts.rounds):
        for spins in opts.spins:
            results[spins].append(run(spins))
    keys = list(results[opts.spins[0]][0])
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {opts.rounds} rounds, ms")
    print(f"{'GOMP_SPINCOUNT':>15} " + " ".join(f"{k:>10}" for k in keys))
    for spins, runs in results.items():
        label = "PASSIVE" if spins == 0 else str(spins)
        print(f"{label:>15} " + " ".join(f"{np.median([r[k] for r in runs]):10.3f}" for k in keys))


if __name__ == "__main__":
    main()
