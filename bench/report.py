#!/usr/bin/env python
"""Side-by-side report: every kernel on NumPy, jitgrad CPU and (if installed) PyTorch CPU.

One process times each case on every backend, interleaving the backends
sample by sample so that a noisy, shared machine slows them alike; it prints
medians and, above all, ratios (a ratio survives noise, an absolute time does
not). The cases, shapes and seeded inputs are those of the asv suite
(``bench/benchmarks/common.py``), so both tools time the same thing.

Sections:

- kernels: one row per kernel and shape: NumPy reference time, jitgrad CPU
  time, speed-up over NumPy, and PyTorch's time and jitgrad's speed-up over it
  when ``torch`` is importable (with ``torch.set_num_threads`` set to jitgrad's
  thread count);
- end to end: LeNet-5 and the Keras convnet, training and inference images/s
  at batch 128, jitgrad and PyTorch;
- onnx: jitgrad vs onnxruntime inference of the model-zoo ResNet-50 and an
  exported LeNet-5 (``bench/report_onnx.py``);
- latency: seconds from ``import jitgrad`` to the end of the first LeNet-5
  training step in a fresh interpreter, with a warm Numba cache and (not in
  ``--quick``) with an empty one.

Usage::

    python bench/report.py                   # full report (a few minutes)
    python bench/report.py --quick           # tiny shapes, 1 repeat: CI smoke
    python bench/report.py --only conv       # rows whose id matches a regex
    python bench/report.py --json out.json   # also write the numbers
    python bench/report.py --doc docs/performance.md   # the issue-13 sections, into this path's block
    python bench/report.py --doc docs/performance.md --isa avx2   # the same, compiled for AVX2
    python bench/report.py --doc docs/performance.md --isa sse    # ... for x86-64-v2 (no AVX)

``--doc``/``--markdown`` run only the sections of issue 13's targets (``bench/report_doc.py``) and
write them as Markdown (``bench/report_markdown.py``).
"""

from __future__ import annotations

import os

# Before NumPy, Numba or PyTorch start a thread pool. Numba (threading layer
# "omp") and PyTorch each run their own OpenMP pool; with the default
# (spinning) wait policy, the idle pool of one framework busy-waits on the
# cores the other needs, and a 64x64 matmul measured 15 ms instead of 30 us on
# a 2-core machine. Passive waiting applies to both, so the comparison stays
# fair; set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# NumPy's OpenBLAS runs a pthread pool of its own, which OMP_WAIT_POLICY does not reach: after each
# call its workers spin for its THREAD_TIMEOUT (~0.1 s, longer than a sample) on the cores the next
# backend's sample needs. Measured on the 2-core Zen 4: the conv2d rows of jitgrad and PyTorch ran at
# half speed after the NumPy sample (keras-conv2 forward 6.7 -> 3.4 ms, PyTorch 6.3 -> 3.2 ms with
# the workers sleeping at once, 2^4 cycles). The GEMM table's child gets OpenBLAS's default back
# (``report_doc.gemm_rows``): there NumPy is the competitor, spinning as in a user's loop of calls,
# and that script pauses between blocks instead. Set OPENBLAS_THREAD_TIMEOUT yourself to override.
if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
    os.environ["JITGRAD_REPORT_SET_BLAS_TIMEOUT"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from benchmarks import common, models  # noqa: E402
from machine import machine_info  # noqa: E402
from report_onnx import format_rows as onnx_table, onnx_rows  # noqa: E402
import report_modern  # noqa: E402  (rows of the grouped/transposed conv and adaptive pooling kernels)
import activations_vs_torch  # noqa: E402  (every activation and softmax-family kernel, CE at 4096x1000)
import machine  # noqa: E402
import report_doc  # noqa: E402  (--doc / --markdown / --isa)

#: Backends of the kernel table, in column order; "torch" only if importable.
KERNEL_BACKENDS = ("numpy", "cpu")
QUICK_BATCH = 8


# ----------------------------------------------------------------------------- timing

def _sample(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def measure(calls: dict[str, Callable[[], Any]], repeats: int, sample_time: float) -> dict[str, float]:
    """Median seconds per call of each callable.

    Each callable is called once to warm up (compilation, caches, page
    faults), then calibrated so that one sample lasts at least
    ``sample_time`` seconds; then ``repeats`` samples are taken, going round
    the callables in turn so that a burst of load on the shared machine hits
    every backend of a row rather than one of them.
    """
    numbers: dict[str, int] = {}
    for name, fn in calls.items():
        fn()
        once = _sample(fn, 1)
        numbers[name] = max(1, int(sample_time / once)) if once > 0 else 1
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            samples[name].append(_sample(fn, numbers[name]))
    return {name: statistics.median(s) for name, s in samples.items()}


# ----------------------------------------------------------------------------- torch

def import_torch(threads: int) -> Any | None:
    """``torch`` with ``threads`` intra-op threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def torch_kernel_call(torch: Any, family: str, kernel: str, shape: str, dtype: str,
                      device: str = "cpu") -> Callable[[], Any]:
    """A callable doing in PyTorch what ``kernel`` does, on the same inputs, on ``device``.

    Backward kernels call the ATen functions PyTorch's own autograd calls for
    that layer, so neither side pays for a graph the other does not build.
    (``bench/gpu_check.py`` uses ``device="cuda"``.)
    """
    aten = torch.ops.aten
    args, kwargs = common.make_inputs(family, kernel, shape, dtype)

    def tensor(a: np.ndarray) -> Any:
        return torch.from_numpy(a).to(device)

    t = [tensor(a) if isinstance(a, np.ndarray) else a for a in args]
    stride = kwargs.get("stride")
    padding = kwargs.get("padding", 0)
    if kernel == "matmul":
        a = t[0].T if kwargs["trans_a"] else t[0]
        b = t[1].T if kwargs["trans_b"] else t[1]
        return lambda: torch.matmul(a, b)
    if kernel == "conv2d":
        return lambda: torch.nn.functional.conv2d(t[0], t[1], t[2], stride=stride, padding=padding)
    if kernel in ("conv2d_backward_input", "conv2d_backward_weight"):
        if kernel == "conv2d_backward_input":
            grad_out, weight = t
            x = torch.empty(kwargs["input_shape"], dtype=weight.dtype, device=device)
            mask = [True, False, False]
        else:
            x, grad_out = t
            weight = torch.empty(kwargs["weight_shape"], dtype=x.dtype, device=device)
            mask = [False, True, True]  # jitgrad returns grad_w and grad_b
        return lambda: aten.convolution_backward(
            grad_out, x, weight, [weight.shape[0]], [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1, mask
        )
    if kernel in ("max_pool2d", "avg_pool2d", "max_pool2d_backward", "avg_pool2d_backward"):
        fwd_args, hyper = common.make_inputs(family, kernel.replace("_backward", ""), shape, dtype)
        x = tensor(fwd_args[0])
        k, s = hyper["kernel_size"], hyper["stride"]
        if kernel == "max_pool2d":
            return lambda: torch.nn.functional.max_pool2d(x, k, s, return_indices=True)
        if kernel == "avg_pool2d":
            return lambda: torch.nn.functional.avg_pool2d(x, k, s)
        if kernel == "max_pool2d_backward":
            _, indices = torch.nn.functional.max_pool2d(x, k, s, return_indices=True)
            return lambda: aten.max_pool2d_with_indices_backward(t[0], x, [k, k], [s, s], [0, 0], [1, 1], False, indices)
        return lambda: aten.avg_pool2d_backward(t[0], x, [k, k], [s, s], [0, 0], False, True, None)
    if kernel == "relu":
        return lambda: torch.relu(t[0])
    if kernel == "relu_backward":
        return lambda: aten.threshold_backward(t[0], t[1], 0)
    if kernel == "sigmoid":
        return lambda: torch.sigmoid(t[0])
    if kernel == "sigmoid_backward":
        y = torch.sigmoid(t[1])  # PyTorch's backward takes the saved output
        return lambda: aten.sigmoid_backward(t[0], y)
    if kernel == "gelu":
        return lambda: torch.nn.functional.gelu(t[0])
    if kernel == "gelu_backward":
        return lambda: aten.gelu_backward(t[0], t[1])
    if kernel == "softmax_cross_entropy":
        return lambda: torch.nn.functional.cross_entropy(t[0], t[1])
    if kernel == "softmax_cross_entropy_backward":
        # cross_entropy = nll_loss(log_softmax(x)); its backward is these two.
        (logits, labels), _ = common.make_inputs(family, "softmax_cross_entropy", shape, dtype)
        logp = torch.log_softmax(tensor(logits), 1)
        target = tensor(labels)
        one = torch.ones((), dtype=logp.dtype, device=device)
        total_weight = torch.tensor(float(len(labels)), dtype=logp.dtype, device=device)

        def ce_backward() -> Any:
            g = aten.nll_loss_backward(one, logp, target, None, 1, -100, total_weight)
            return aten._log_softmax_backward_data(g, logp, 1, logp.dtype)

        return ce_backward
    if kernel in ("sgd_update", "adam_update"):
        param = torch.nn.Parameter(t[0])
        param.grad = t[1]
        if kernel == "sgd_update":
            opt = torch.optim.SGD([param], lr=kwargs["lr"], momentum=kwargs["momentum"])
        else:
            opt = torch.optim.Adam([param], lr=kwargs["lr"])
        return opt.step
    if kernel in ("batch_norm", "batch_norm_backward"):
        (x, rm, rv, w, b), _ = common.make_inputs(family, "batch_norm", shape, dtype)
        x, rm, rv, w, b = (tensor(a) for a in (x, rm, rv, w, b))
        if kernel == "batch_norm":
            return lambda: aten.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)
        _, mean, invstd = aten.native_batch_norm(x, w, b, rm.clone(), rv.clone(), True, 0.1, 1e-5)
        return lambda: aten.native_batch_norm_backward(t[0], x, w, rm, rv, mean, invstd, True, 1e-5,
                                                       [True, True, True])
    if kernel in ("layer_norm", "layer_norm_backward"):
        (x, norm, w, b), _ = common.make_inputs(family, "layer_norm", shape, dtype)
        x, w, b = (tensor(a) for a in (x, w, b))
        if kernel == "layer_norm":
            return lambda: aten.native_layer_norm(x, list(norm), w, b, 1e-5)
        _, mean, rstd = aten.native_layer_norm(x, list(norm), w, b, 1e-5)
        return lambda: aten.native_layer_norm_backward(t[0], x, list(norm), mean, rstd, w, b, [True, True, True])
    raise NotImplementedError(f"torch: no equivalent of {kernel!r}")


def torch_train_step(torch: Any, model: str, batch: int,
                     device: str = "cpu") -> tuple[Callable[[], Any], Callable[[], Any]]:
    """PyTorch twins of ``models.train_step`` and ``models.inference`` on ``device``.

    On CUDA the calls are asynchronous; the caller synchronises around what it times.
    """
    torch.manual_seed(common.SEED)
    net = models.build(torch.nn, model).to(device)
    images, labels = models.batch_data(batch)
    x, y = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        net.train()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

    def forward() -> None:
        net.eval()
        with torch.no_grad():
            net(x)

    return step, forward


# ----------------------------------------------------------------------------- rows

def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:120]


def _build(make: Callable[[], Callable[[], Any]], label: str, verbose: bool) -> tuple[Callable[[], Any] | None, str | None]:
    """``make()``, or ``(None, why)`` when the backend cannot run the case."""
    try:
        return make(), None
    except NotImplementedError as exc:
        return None, _error_text(exc)
    except Exception as exc:  # a broken kernel must not hide every other row
        if verbose:
            traceback.print_exc()
        print(f"  {label}: {_error_text(exc)}", file=sys.stderr)
        return None, _error_text(exc)


def _timed_row(row: dict[str, Any], makers: dict[str, Callable[[], Callable[[], Any]]], opts: argparse.Namespace) -> dict[str, Any]:
    calls, notes = {}, {}
    for backend, make in makers.items():
        call, why = _build(make, f"{row['id']} [{backend}]", opts.verbose)
        if call is None:
            notes[backend] = why
        else:
            calls[backend] = call
    times: dict[str, float | None] = {b: None for b in makers}
    try:
        times.update(measure(calls, opts.repeats, opts.sample_time))
    except Exception as exc:  # a kernel that fails when called, not when built
        if opts.verbose:
            traceback.print_exc()
        print(f"  {row['id']}: {_error_text(exc)}", file=sys.stderr)
        notes["all"] = _error_text(exc)
    row["times"] = times
    if notes:
        row["notes"] = notes
    return row


def kernel_rows(opts: argparse.Namespace, torch: Any | None) -> list[dict[str, Any]]:
    """Time every selected (family, kernel, shape) on NumPy, jitgrad CPU and torch."""
    rows = []
    for family in common.FAMILIES.values():
        shapes = common.QUICK_SHAPES[family.name] if opts.quick else family.shapes
        for kernel in family.kernels:
            for shape in shapes:
                row_id = f"{family.name}.{kernel}.{shape}"
                if not opts.only.search(row_id):
                    continue
                makers: dict[str, Callable[[], Callable[[], Any]]] = {
                    b: (lambda b=b: common.kernel_call(family.name, kernel, shape, opts.dtype, b))
                    for b in KERNEL_BACKENDS
                }
                if torch is not None:
                    makers["torch"] = lambda: torch_kernel_call(torch, family.name, kernel, shape, opts.dtype)
                row = {"id": row_id, "family": family.name, "kernel": kernel, "shape": shape, "dtype": opts.dtype}
                rows.append(_timed_row(row, makers, opts))
                _progress(rows[-1], opts)
    return rows


def end_to_end_rows(opts: argparse.Namespace, torch: Any | None) -> list[dict[str, Any]]:
    """Training-step and inference throughput of each model, jitgrad CPU and torch."""
    batch = QUICK_BATCH if opts.quick else common.BATCH
    rows = []
    for model in models.MODELS:
        torch_pair: dict[str, Any] = {}
        for phase in ("train", "inference"):
            row_id = f"end_to_end.{phase}.{model}"
            if not opts.only.search(row_id):
                continue
            build = models.train_step if phase == "train" else models.inference
            makers = {"cpu": lambda build=build: build(model, "cpu", batch)}
            if torch is not None:
                def make_torch(phase=phase) -> Callable[[], Any]:
                    if not torch_pair:
                        torch_pair["train"], torch_pair["inference"] = torch_train_step(torch, model, batch)
                    return torch_pair[phase]

                makers["torch"] = make_torch
            row = {"id": row_id, "model": model, "phase": phase, "batch": batch}
            row = _timed_row(row, makers, opts)
            row["images_per_s"] = {b: (batch / s if s else None) for b, s in row["times"].items()}
            rows.append(row)
            _progress(row, opts)
    return rows


_FIRST_STEP = """\
import time
t0 = time.perf_counter()
import sys
sys.path.insert(0, {bench!r})
import jitgrad
from benchmarks import models
models.train_step("lenet5", "cpu", {batch})()
print(time.perf_counter() - t0)
"""


def _first_step_seconds(batch: int, cache_dir: str | None) -> float:
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = env["JITGRAD_CACHE_DIR"] = cache_dir
    code = _FIRST_STEP.format(bench=str(BENCH_DIR), batch=batch)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "first step failed")
    return float(done.stdout.strip().splitlines()[-1])


def latency_rows(opts: argparse.Namespace) -> list[dict[str, Any]]:
    """Seconds from ``import jitgrad`` to the end of the first LeNet-5 training step.

    Warm: with the Numba cache this environment uses (filled by one run
    first). Cold: with an empty temporary ``NUMBA_CACHE_DIR``, so every
    kernel compiles; skipped with ``--quick`` (it takes minutes, not seconds).
    """
    batch = QUICK_BATCH if opts.quick else common.BATCH
    rows = []
    for cache in ("warm", "cold"):
        row_id = f"latency.first_step.{cache}"
        if not opts.only.search(row_id) or (cache == "cold" and opts.quick):
            continue
        row: dict[str, Any] = {"id": row_id, "cache": cache, "batch": batch, "seconds": None}
        try:
            if cache == "warm":
                _first_step_seconds(batch, None)  # fills the cache if it is empty
                row["seconds"] = statistics.median(_first_step_seconds(batch, None) for _ in range(opts.latency_repeats))
            else:
                with tempfile.TemporaryDirectory(prefix="jitgrad-cold-cache-") as empty:
                    row["seconds"] = _first_step_seconds(batch, empty)
        except Exception as exc:
            print(f"  {row_id}: {_error_text(exc)}", file=sys.stderr)
            row["notes"] = _error_text(exc)
        rows.append(row)
        _progress(row, opts)
    return rows


# ----------------------------------------------------------------------------- output

def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _fmt_ratio(num: float | None, den: float | None) -> str:
    return f"{num / den:.2f}x" if num and den else "-"


def _table(header: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def format_report(report: dict[str, Any]) -> str:
    """The tables as plain text (also valid Markdown-ish for docs/performance.md)."""
    has_torch = report["machine"]["torch"] is not None
    machine = report["machine"]
    out = [f"cpu: {machine['cpu']}; jitgrad SIMD path: {machine.get('isa_path')}",
           "machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()), ""]
    header = ["kernel", "shape", "numpy", "jitgrad cpu", "cpu vs numpy"]
    if has_torch:
        header += ["torch", "cpu vs torch"]
    by_family: dict[str, list[list[str]]] = {}
    for row in report["kernels"]:
        t = row["times"]
        line = [row["kernel"], row["shape"], _fmt_time(t["numpy"]), _fmt_time(t["cpu"]), _fmt_ratio(t["numpy"], t["cpu"])]
        if has_torch:
            line += [_fmt_time(t.get("torch")), _fmt_ratio(t.get("torch"), t["cpu"])]
        by_family.setdefault(row["family"], []).append(line)
    for family, lines in by_family.items():
        out += [f"[{family}]", _table(header, lines), ""]
    if report["end_to_end"]:
        header = ["model", "phase", "jitgrad img/s"] + (["torch img/s", "jitgrad vs torch"] if has_torch else [])
        lines = []
        for row in report["end_to_end"]:
            ips = row["images_per_s"]
            line = [row["model"], f"{row['phase']} (batch {row['batch']})", f"{ips['cpu']:.0f}" if ips["cpu"] else "n/a"]
            if has_torch:
                line += [f"{ips['torch']:.0f}" if ips.get("torch") else "n/a", _fmt_ratio(ips["cpu"], ips.get("torch"))]
            lines.append(line)
        out += ["[end to end]", _table(header, lines), ""]
    if report["latency"]:
        lines = [["import -> first LeNet-5 step", f"{r['cache']} cache", _fmt_time(r["seconds"])] for r in report["latency"]]
        out += ["[latency]", _table(["what", "numba cache", "seconds"], lines), ""]
    out += onnx_table(report.get("onnx", []))
    out.append("cpu vs numpy = numpy time / jitgrad time (above 1: jitgrad faster); "
               "cpu vs torch = torch time / jitgrad time.")
    return "\n".join(out)


def _progress(row: dict[str, Any], opts: argparse.Namespace) -> None:
    if opts.progress:
        shown = row.get("times") or row.get("seconds")
        print(f"  {row['id']}: {shown}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes and 1 repeat (CI smoke test)")
    parser.add_argument("--only", default="", metavar="REGEX",
                        help="only rows whose id matches, e.g. 'conv', 'matmul.*square', 'end_to_end|latency'")
    parser.add_argument("--json", metavar="PATH", help="also write every number to PATH as JSON")
    parser.add_argument("--repeats", type=int, help="samples per backend (default 7; 1 with --quick)")
    parser.add_argument("--sample-time", type=float, help="seconds per sample (default 0.05; 0 with --quick)")
    parser.add_argument("--threads", type=int, help="CPU threads for jitgrad and torch (default: numba's)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no per-row lines on stderr")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failing kernels")
    report_doc.add_arguments(parser)
    opts = parser.parse_args(argv)
    report_doc.check_args(opts)
    if opts.repeats is None:
        opts.repeats = 1 if opts.quick else 7
    if opts.sample_time is None:
        opts.sample_time = 0.0 if opts.quick else 0.05
    opts.latency_repeats = 1 if opts.quick else 3
    opts.only = re.compile(opts.only)
    return opts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the report, print it, write ``--json`` if asked; return the numbers."""
    argv = sys.argv[1:] if argv is None else list(argv)
    opts = parse_args(argv)
    if opts.isa != "native" and os.environ.get(machine.ISA_ENV_VAR) != opts.isa:
        raise SystemExit(report_doc.run_forced_isa(opts, argv))
    doc_mode = bool(opts.doc or opts.markdown)
    if doc_mode:  # time the parallel kernels, never a serial twin of a tiered first compile
        os.environ.setdefault("JITGRAD_TIERED", "0")
    import jitgrad

    if opts.threads is not None:
        jitgrad.set_num_threads(opts.threads)
    threads = jitgrad.get_num_threads()
    torch = import_torch(threads)
    if doc_mode:
        hooks = {"kernel_rows": kernel_rows, "end_to_end_rows": end_to_end_rows, "timed_row": _timed_row,
                 "progress": _progress}
        run = report_doc.run(opts, argv, torch, threads, hooks)
        if opts.json:
            Path(opts.json).write_text(json.dumps(run, indent=2) + "\n")
        return run
    report: dict[str, Any] = {
        "settings": {"quick": opts.quick, "repeats": opts.repeats, "sample_time": opts.sample_time,
                     "only": opts.only.pattern, "dtype": opts.dtype},
        "kernels": kernel_rows(opts, torch)
        + report_modern.kernel_rows(opts, torch, _timed_row, _progress)
        + activations_vs_torch.kernel_rows(opts, torch, _timed_row, _progress),
        "end_to_end": end_to_end_rows(opts, torch),
        "latency": latency_rows(opts),
        "onnx": onnx_rows(opts, threads),
    }
    # After the kernels ran, so that numba's threading layer is known.
    report = {"machine": machine_info(threads, torch), **report}
    print(format_report(report))
    if opts.json:
        Path(opts.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
