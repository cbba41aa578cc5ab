#!/usr/bin/env python
"""The ONNX rows of ``bench/report.py``: jitgrad vs onnxruntime inference on the same graph and threads.

The cases are those of the asv suite (``bench/benchmarks/bench_onnx.py``):
the model-zoo ResNet-50 of the onnx wheel's backend tests at batch 1 and 16,
and LeNet-5 exported by ``jitgrad.onnx.export`` at batch 128. Each sample
times one backend's calls with a wall clock (``time.perf_counter``) and with
the CPU time of the whole process (``time.process_time``, every thread);
samples alternate between the backends and medians are kept. On a shared,
loaded machine the wall clock measures the load; at 1 thread the CPU time is
the time the run would take on an idle core, so the 1-thread CPU-time ratio
is the number to trust there. (With more threads CPU time adds the threads
up, and onnxruntime's spinning pool counts its spins: compare wall clocks on
a quiet machine.) ``speed`` is onnxruntime's time over jitgrad's: 1.0 is
parity, above 1 jitgrad is faster.

Usage::

    python bench/report_onnx.py --threads 1            # the three cases (about 2 minutes, quiet machine)
    python bench/report_onnx.py --threads 2 --repeats 9
    python bench/report_onnx.py --threads 1 --retain-memory   # glibc keeps freed memory (opt-in, process-wide)
    python bench/report.py --only onnx                 # the same rows inside the full report
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/report.py

import argparse  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks import bench_onnx  # noqa: E402


def _sample(fn: Callable[[], Any], number: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(number):
        fn()
    return (time.perf_counter() - wall) / number, (time.process_time() - cpu) / number


def measure(calls: dict[str, Callable[[], Any]], repeats: int, sample_time: float) -> dict[str, dict[str, float]]:
    """Median wall and process-CPU seconds per call of each callable, samples interleaved.

    Each callable has already run once (compilation, arenas); ``number`` calls
    per sample are calibrated from one more call so a sample lasts about
    ``sample_time`` seconds.
    """
    numbers = {}
    for name, fn in calls.items():
        once = _sample(fn, 1)[0]
        numbers[name] = max(1, int(sample_time / once)) if once > 0 else 1
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            w, c = _sample(fn, numbers[name])
            wall[name].append(w)
            cpu[name].append(c)
    return {"wall": {n: statistics.median(s) for n, s in wall.items()},
            "cpu": {n: statistics.median(s) for n, s in cpu.items()}}


def onnx_rows(opts: argparse.Namespace, threads: int) -> list[dict[str, Any]]:
    """One row per case matching ``opts.only``: times of both backends, ratios, largest output difference."""
    cases = bench_onnx.QUICK_CASES if opts.quick else tuple(bench_onnx.CASES)
    rows = []
    for case in cases:
        row_id = f"onnx.{case}"
        if not opts.only.search(row_id):
            continue
        name, batch = bench_onnx.CASES[case]
        row: dict[str, Any] = {"id": row_id, "case": case, "model": name, "batch": batch, "threads": threads}
        try:
            calls = {b: bench_onnx.make_call(case, b, threads) for b in bench_onnx.BACKENDS}
            outs = {b: fn() for b, fn in calls.items()}
        except NotImplementedError as exc:
            row["error"] = str(exc)
            rows.append(row)
            continue
        row["max_abs_diff"] = float(np.max(np.abs(outs["jitgrad"] - outs["onnxruntime"])))
        row.update(measure(calls, opts.repeats, opts.sample_time))
        row["speed_wall"] = row["wall"]["onnxruntime"] / row["wall"]["jitgrad"]
        row["speed_cpu"] = row["cpu"]["onnxruntime"] / row["cpu"]["jitgrad"]
        rows.append(row)
        if getattr(opts, "progress", False):
            print(f"  {row_id}: wall {row['wall']}, cpu {row['cpu']}", file=sys.stderr, flush=True)
    return rows


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    """The ``[onnx inference]`` table as lines (nothing when there are no rows)."""
    if not rows:
        return []
    header = ["case", "threads", "jitgrad wall", "ort wall", "speed (wall)", "jitgrad cpu", "ort cpu",
              "speed (cpu)", "max |diff|"]
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["case"], str(r["threads"]), "n/a: " + r["error"]] + [""] * 6)
            continue
        w, c = r["wall"], r["cpu"]
        lines.append([r["case"], str(r["threads"]), _ms(w["jitgrad"]), _ms(w["onnxruntime"]), f"{r['speed_wall']:.2f}x",
                      _ms(c["jitgrad"]), _ms(c["onnxruntime"]), f"{r['speed_cpu']:.2f}x", f"{r['max_abs_diff']:.1e}"])
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    fmt = lambda r: "  ".join(c.ljust(wd) if i == 0 else c.rjust(wd) for i, (c, wd) in enumerate(zip(r, widths)))  # noqa: E731
    return ["[onnx inference: jitgrad vs onnxruntime, same threads]", fmt(header), fmt(["-" * wd for wd in widths]),
            *map(fmt, lines), "speed = onnxruntime time / jitgrad time (1.00x: parity); cpu = process CPU time, "
            "all threads", ""]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="jitgrad threads = onnxruntime intra-op threads (default: numba's)")
    parser.add_argument("--repeats", type=int, default=5, help="samples per backend (default 5)")
    parser.add_argument("--sample-time", type=float, default=0.5, help="seconds per sample (default 0.5)")
    parser.add_argument("--only", default="", metavar="REGEX", help="cases whose id (onnx.<case>) matches")
    parser.add_argument("--quick", action="store_true", help="resnet50-b1 and lenet5-b128 only")
    parser.add_argument("--retain-memory", action="store_true",
                        help="call jitgrad.onnx.retain_freed_memory() first (glibc keeps freed memory; process-wide)")
    opts = parser.parse_args(argv)
    opts.only, opts.progress = re.compile(opts.only), True
    import jitgrad

    if opts.threads is not None:
        jitgrad.set_num_threads(opts.threads)
    if opts.retain_memory:
        from jitgrad.onnx import retain_freed_memory

        print(f"retain_freed_memory(): {retain_freed_memory()}")
    rows = onnx_rows(opts, jitgrad.get_num_threads())
    print("\n".join(format_rows(rows)))
    return rows


if __name__ == "__main__":
    main()
