"""Cold and warm start: ``import jitgrad`` + the first LeNet-5 training step (``--model lstm``: the
sequence-MNIST LSTM's), and where the time goes.

Each measurement runs in a fresh interpreter. ``cold`` gives it an empty
temporary cache (``JITGRAD_CACHE_DIR``), so every kernel the step calls
compiles; ``warm`` runs once to fill a cache, then times a second process on
it. Reported per run: wall seconds and CPU seconds (the child and anything it
spawned; on a shared machine CPU seconds are what load distorts least).

Python's own bytecode cache is as in a user's install (``.pyc`` files
written once before the cold run, whatever ``PYTHONDONTWRITEBYTECODE`` says);
``--no-pyc`` makes every process compile jitgrad's sources (0.3-0.5 CPU-s
each, the step's and the background compile's).

``--background`` compiles, instead, the serial twins the background process
of a tiered cold start compiles first (``jitgrad.compile.BACKGROUND_SERIAL_TASKS``),
one task after another in one fresh process on an empty cache, and lists each
task's CPU seconds and its slowest compiles (with ``--breakdown N``, N of them):
the other half of a cold start's compile work, which the step's own breakdown
does not show.

``--breakdown`` lists the Numba compiles of the cold step, slowest first:
CPU seconds spent in each function's own compile (``self``, its callees' compiles
subtracted) and with them (``total``), with the argument types, from Numba's
``numba:compile`` events. ``--precompile`` runs ``python -m jitgrad.compile``
in the cold cache before the step (the Makefile's route) and times both.

Tiered compilation (``jitgrad/kernels/cpu/_tier.py``) is on by default: the
cold step runs serial twins of the parallel drivers while one background
process compiles the parallel versions. The cold line then also gives the
second step's time (still partly serial), and the script waits for the
background compile (its wall and CPU seconds, from its log) before the warm
runs. ``--no-tiered`` measures the single-tier path (``JITGRAD_TIERED=0``).

    python bench/cold_start.py                  # cold + warm, batch 64, float32
    python bench/cold_start.py --no-tiered      # every parallel driver compiled in the step
    python bench/cold_start.py --breakdown 30   # + the 30 slowest compiles
    python bench/cold_start.py --precompile     # cold cache filled by jitgrad.compile first
    python bench/cold_start.py --model lstm --no-warm  # examples/sequence_mnist.py's model, cold only
    python bench/cold_start.py --no-cold --repeat 7   # warm only, on the filled cache (the Makefile's)
    python bench/cold_start.py --background --breakdown 8   # the background's serial tasks, 8 compiles each

``--no-cold`` skips the empty-cache run and times ``--repeat`` warm processes
(median and each run) on an existing cache: ``--cache DIR``, by default the one
every entry point uses (``jitgrad.config.cache_dir()``, which ``make`` fills
with ``python -m jitgrad.compile``). A warm line also says how many kernels
compiled in it (0 on a filled cache: otherwise it timed compiles, not loads).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_LISTENER = r"""
events = []
if {breakdown}:
    from numba.core import event

    class _Listener(event.Listener):
        def __init__(self):
            self.stack = []

        def on_start(self, ev):
            self.stack.append([time.process_time(), 0.0])

        def on_end(self, ev):
            start, child = self.stack.pop()
            total = time.process_time() - start
            if self.stack:
                self.stack[-1][1] += total
            d = ev.data["dispatcher"]
            events.append((d.py_func.__module__.rsplit(".", 1)[-1] + "." + d.py_func.__qualname__,
                           str(ev.data["args"]), total - child, total, len(self.stack)))

    event.register("numba:compile", _Listener())
"""

_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
""" + _LISTENER + r"""
import numpy as np
import jitgrad
from jitgrad import nn, optim
t_import = time.perf_counter() - t0
jitgrad.manual_seed(0)
{network}
opt = optim.Adam(net.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
x = jitgrad.tensor(rng.standard_normal(({batch}, 1, 28, 28)).astype(np.float32))
y = rng.integers(0, 10, {batch})
loss = nn.functional.cross_entropy(net(x), y)
opt.zero_grad()
loss.backward()
opt.step()
t_step = time.perf_counter() - t0
loss = nn.functional.cross_entropy(net(x), y)
opt.zero_grad()
loss.backward()
opt.step()
t_step2 = time.perf_counter() - t0 - t_step
from numba.core.dispatcher import Dispatcher
dispatchers = {{}}  # jitgrad's kernels (module-level; a tiered driver is two): their cache loads and compiles
for name, module in list(sys.modules.items()):
    if name.startswith("jitgrad.kernels.cpu."):
        for value in vars(module).values():
            for d in (value, getattr(value, "parallel", None), getattr(value, "serial", None)):
                if isinstance(d, Dispatcher):
                    dispatchers[id(d)] = d
loads = sum(sum(d._cache_hits.values()) for d in dispatchers.values())
compiles = sum(sum(d._cache_misses.values()) for d in dispatchers.values())
print("RESULT " + json.dumps(dict(import_s=t_import, total_s=t_step, step2_s=t_step2, events=events,
                                  loads=loads, compiles=compiles)))
"""


#: ``--model``: the network a first step trains (its name in the output, its code in the child).
NETWORKS = {
    "lenet5": ("LeNet-5", """net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                    nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                    nn.Linear(84, 10))"""),
    # examples/sequence_mnist.py's model (28-step LSTM, 128 units, and a Linear head) on the same images.
    "lstm": ("sequence-MNIST LSTM", """sys.path.insert(0, "examples")
from sequence_mnist import RowLSTM
net = RowLSTM(128)"""),
}


_TASKS_CHILD = r"""
import json, os, sys, time
""" + _LISTENER + r"""
from jitgrad import compile as jc
tasks = []
for name in jc.BACKGROUND_SERIAL_TASKS:
    del events[:]
    start = time.process_time()
    jc._run_task(name, "float32", "serial")
    tasks.append(dict(name=name, cpu_s=time.process_time() - start, events=list(events)))
print("RESULT " + json.dumps(tasks))
"""


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``cmd``; returns (wall seconds, CPU seconds of it and its children, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def _env(cache: str, **extra: str) -> dict[str, str]:
    """The children's environment: ``cache`` as the one cache folder; Python's bytecode cache as
    ``--pyc`` says (a user's install writes ``.pyc`` files; an environment that sets
    ``PYTHONDONTWRITEBYTECODE`` makes every process compile jitgrad's sources again)."""
    env = dict(os.environ, JITGRAD_CACHE_DIR=cache, NUMBA_CACHE_DIR=cache, **extra)
    if _PYC:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


_PYC = True


def prime_bytecode() -> None:
    """Import every jitgrad module once (no kernel compiles), as after ``pip install``, into a
    throwaway cache, so the timed runs find the ``.pyc`` files a user has."""
    with tempfile.TemporaryDirectory(prefix="jitgrad-pyc-") as cache:
        _run([sys.executable, "-c", "import jitgrad, jitgrad.compile, jitgrad.kernels.cpu"], _env(cache))


def first_step(cache: str, batch: int, breakdown: bool, tiered: bool | None = True,
               model: str = "lenet5") -> dict:
    """One fresh interpreter: import + the first training step of ``model`` (:data:`NETWORKS`) on
    ``cache``. ``tiered=None`` leaves ``JITGRAD_TIERED`` unset, as a user's environment has it
    (tiering then only on a fresh cache)."""
    env = _env(cache, JITGRAD_TIERED="1" if tiered else "0")
    if tiered is None:
        env.pop("JITGRAD_TIERED")
    code = _CHILD.format(batch=batch, breakdown=breakdown, network=NETWORKS[model][1])
    wall, cpu, out = _run([sys.executable, "-c", code], env)
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result.update(wall_s=wall, cpu_s=cpu)
    return result


def wait_background(cache: str, timeout: float = 900.0) -> str | None:
    """Wait for a tiered run's background compile in ``cache`` to end; returns its log's last line."""
    start = time.perf_counter()
    while any(Path(cache).glob("jitgrad-tier-*/background.pid")) and time.perf_counter() - start < timeout:
        time.sleep(0.5)
    logs = sorted(Path(cache).glob("jitgrad-tier-*/background.log"))
    lines = logs[0].read_text().strip().splitlines() if logs else []
    return lines[-1] if lines else None


def warm_runs(cache: str, batch: int, tiered: bool | None, repeat: int, model: str = "lenet5") -> list[dict]:
    """``repeat`` warm processes on ``cache``, one after the other; prints each and the medians."""
    runs = []
    for i in range(repeat):
        run = first_step(cache, batch, False, tiered, model)
        run["load"] = os.getloadavg()[0]
        runs.append(run)
        print(f"  warm run {i + 1}: wall {run['wall_s']:.2f} s (in-process {run['total_s']:.2f} s, "
              f"import {run['import_s']:.2f} s), CPU {run['cpu_s']:.2f} s; {run['loads']} cache loads, "
              f"{run['compiles']} compiles; load average {run['load']:.1f}")
    return runs


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def warm_summary(runs: list[dict]) -> str:
    """The warm line: medians over ``runs``."""
    med = {key: _median([r[key] for r in runs]) for key in ("wall_s", "total_s", "import_s", "cpu_s")}
    compiles = max(r["compiles"] for r in runs)
    note = f"; {compiles} kernels COMPILED in a run: the cache was not filled" if compiles else ""
    times = f"median of {len(runs)} " if len(runs) > 1 else ""
    return (f"warm ({times}runs): wall {med['wall_s']:.2f} s (in-process {med['total_s']:.2f} s, "
            f"import {med['import_s']:.2f} s), CPU {med['cpu_s']:.2f} s; {runs[0]['loads']} cache loads{note}; "
            f"load average {_median([r.get('load', os.getloadavg()[0]) for r in runs]):.1f}")


def background_tasks(cache: str, top: int) -> None:
    """Print the CPU seconds and the ``top`` slowest compiles of each of the background's serial tasks."""
    code = _TASKS_CHILD.format(breakdown=True)
    wall, cpu, out = _run([sys.executable, "-c", code], _env(cache, JITGRAD_TIERED="0"))
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    tasks = json.loads(line[len("RESULT "):])
    print(f"background's serial tasks, one process, empty cache: wall {wall:.1f} s, CPU {cpu:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f}")
    for task in tasks:
        print(f"  {task['name']}: CPU {task['cpu_s']:.1f} s, {len(task['events'])} compiles (self s, total s, function)")
        for name, _, own, total, _ in sorted(task["events"], key=lambda e: -e[2])[:top]:
            print(f"    {own:6.2f} {total:6.2f}  {name}")


def precompile(cache: str) -> tuple[float, float]:
    wall, cpu, _ = _run([sys.executable, "-m", "jitgrad.compile", "--quiet"], _env(cache))
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--model", choices=sorted(NETWORKS), default="lenet5",
                        help="the network of the first step (default LeNet-5; lstm: examples/sequence_mnist.py's)")
    parser.add_argument("--breakdown", type=int, default=0, metavar="N",
                        help="list the N slowest compiles of the cold step")
    parser.add_argument("--precompile", action="store_true",
                        help="fill the cold cache with `python -m jitgrad.compile` first")
    parser.add_argument("--no-warm", action="store_true")
    parser.add_argument("--no-cold", action="store_true",
                        help="warm runs only, on an existing cache (--cache; default jitgrad's own, which "
                             "`make` fills): no empty-cache run")
    parser.add_argument("--cache", metavar="DIR",
                        help="with --no-cold: the filled cache to time (default jitgrad.config.cache_dir())")
    parser.add_argument("--repeat", type=int, default=None, metavar="N",
                        help="warm processes to time (median reported): default 1, 5 with --no-cold")
    parser.add_argument("--background", action="store_true",
                        help="instead: compile the background process's serial tasks on an empty cache and "
                             "list their compiles")
    parser.add_argument("--tiered", action=argparse.BooleanOptionalAction, default=None,
                        help="tiered compilation (serial twins first, parallel kernels in the background); "
                             "default on for the cold run, as for users (with --no-cold: JITGRAD_TIERED "
                             "left unset, as in a user's environment)")
    parser.add_argument("--pyc", action=argparse.BooleanOptionalAction, default=True,
                        help="Python bytecode cached as in a user's install (default; PYTHONDONTWRITEBYTECODE "
                             "dropped, .pyc files written before the cold run); --no-pyc: every process "
                             "compiles jitgrad's sources to bytecode")
    args = parser.parse_args(argv)
    if args.cache and not args.no_cold:
        parser.error("--cache: only with --no-cold (the cold run uses an empty temporary cache)")
    repeat = args.repeat if args.repeat is not None else (5 if args.no_cold else 1)
    if repeat < 1:
        parser.error(f"--repeat: must be >= 1, got {repeat}")
    global _PYC
    _PYC = args.pyc
    if args.pyc:
        prime_bytecode()
    print(f"Python bytecode: {'cached (.pyc)' if args.pyc else 'compiled in every process (--no-pyc)'}")
    if args.no_cold:
        if args.cache:
            cache = str(Path(args.cache).expanduser().absolute())
        else:
            from jitgrad.config import cache_dir

            cache = str(cache_dir())
        print(f"warm runs on {cache} (batch {args.batch})")
        print(warm_summary(warm_runs(cache, args.batch, args.tiered, repeat, args.model)))
        return 0
    args.tiered = True if args.tiered is None else args.tiered
    with tempfile.TemporaryDirectory(prefix="jitgrad-cold-") as cache:
        if args.background:
            background_tasks(cache, args.breakdown or 5)
            return 0
        if args.precompile:
            wall, cpu = precompile(cache)
            print(f"python -m jitgrad.compile (empty cache): wall {wall:.1f} s, CPU {cpu:.1f} s")
        cold = first_step(cache, args.batch, args.breakdown > 0, args.tiered, args.model)
        label = "after precompile" if args.precompile else "cold" + (" tiered" if args.tiered else " (not tiered)")
        print(f"{label}: import + first {NETWORKS[args.model][0]} step (batch {args.batch}): "
              f"wall {cold['wall_s']:.1f} s "
              f"(in-process {cold['total_s']:.1f} s, import {cold['import_s']:.2f} s), CPU {cold['cpu_s']:.1f} s; "
              f"second step {cold['step2_s']:.2f} s; load average {os.getloadavg()[0]:.1f}")
        if args.breakdown:
            events = cold["events"]
            print(f"{len(events)} compiles, {sum(e[2] for e in events):.1f} s in all (self times summed)")
            by_func: dict[str, list[float]] = {}
            for name, _, own, _, _ in events:
                by_func.setdefault(name, []).append(own)
            print("per function (self seconds, specialisations):")
            for name, owns in sorted(by_func.items(), key=lambda kv: -sum(kv[1]))[:args.breakdown]:
                print(f"  {sum(owns):7.2f} s  x{len(owns):<2d} {name}")
            print("slowest compiles (self s, total s, depth, function, argument types):")
            for name, types, own, total, depth in sorted(events, key=lambda e: -e[2])[:args.breakdown]:
                print(f"  {own:7.2f} {total:7.2f}  {depth}  {name}  {types[:160]}")
        if args.tiered:
            start = time.perf_counter()
            line = wait_background(cache)
            if line:
                print(f"  {line} (ended {time.perf_counter() - start:.0f} s after the step)")
        if not args.no_warm:
            first_step(cache, args.batch, False, args.tiered, args.model)  # whatever the cold run left uncached
            print(warm_summary(warm_runs(cache, args.batch, args.tiered, repeat, args.model)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
