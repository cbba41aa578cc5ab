"""One prepared check of jitgrad's CUDA half on a real NVIDIA GPU: correctness, speed against PyTorch, training.

    python bench/gpu_check.py OUTDIR [--quick] [--only tests,errors,timings,e2e] [--budget-s 480]
    make gpu-check OUT=OUTDIR

GPU time is scarce, so one run must be useful even when something breaks: each
step is guarded (a failure is written down and the next step runs), and every
result is written the moment it exists:

- ``OUTDIR/summary.md``: the tables, appended step by step;
- ``OUTDIR/results.jsonl``: one JSON object per row (the raw numbers);
- ``OUTDIR/tests.log``: the output of the CUDA tests run on the device.

Steps: ``tests`` (tests/cuda and the GPU blocks of the docs, the simulator off),
``errors`` (every CUDA kernel against the CPU kernel on the benchmark shapes),
``timings`` (CUDA events, medians after warm-up, side by side with PyTorch CUDA,
TF32 off), ``e2e`` (LeNet-5 and the Keras convnet training steps: images/s
against PyTorch on the same GPU, kernel launches and host syncs per step).

It runs with the project on ``PYTHONPATH`` and the machine's own packages (numba,
numba-cuda, numpy, safetensors, tqdm; PyTorch for the comparisons): no install
step. Without a GPU it stops at once with status 2 and a one-line message; with
``NUMBA_ENABLE_CUDASIM=1`` it is a dry run of the plumbing on tiny shapes (the
simulator's timings mean nothing, so nothing is compared there).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from benchmarks import common, models  # noqa: E402

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
STEPS = ("tests", "errors", "timings", "e2e")
#: Square matmul sizes timed against cuBLAS (the issue's 1024^2 to 8192^2).
MATMUL_SIZES = (1024, 2048, 4096, 8192)


class Report:
    """Appends markdown to ``summary.md`` and JSON rows to ``results.jsonl``, flushed at once."""

    def __init__(self, outdir: Path) -> None:
        outdir.mkdir(parents=True, exist_ok=True)
        self.outdir = outdir
        self.summary = open(outdir / "summary.md", "a", encoding="utf-8")
        self.rows = open(outdir / "results.jsonl", "a", encoding="utf-8")

    def text(self, markdown: str) -> None:
        self.summary.write(markdown.rstrip() + "\n\n")
        self.summary.flush()
        print(markdown, flush=True)

    def table(self, title: str, header: list[str]) -> Callable[[list[Any], dict[str, Any]], None]:
        self.summary.write(f"## {title}\n\n| {' | '.join(header)} |\n|{'---|' * len(header)}\n")
        self.summary.flush()
        print(f"== {title}", flush=True)

        def row(cells: list[Any], record: dict[str, Any]) -> None:
            line = "| " + " | ".join(str(c) for c in cells) + " |"
            self.summary.write(line + "\n")
            self.summary.flush()
            self.rows.write(json.dumps({"table": title, **record}) + "\n")
            self.rows.flush()
            print(line, flush=True)

        return row

    def end_table(self) -> None:
        self.summary.write("\n")
        self.summary.flush()


class Deadline:
    """The run's time budget: steps and rows stop starting once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


# ----------------------------------------------------------------------------- environment

def device_info() -> dict[str, Any]:
    import numba
    from numba import cuda

    info: dict[str, Any] = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                            "simulator": SIMULATOR, "numba": numba.__version__, "numpy": np.__version__}
    with contextlib.suppress(Exception):
        import numba_cuda
        info["numba-cuda"] = numba_cuda.__version__
    if not SIMULATOR:
        dev = cuda.get_current_device()
        info["gpu"] = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        info["compute_capability"] = "%d.%d" % dev.compute_capability
        with contextlib.suppress(Exception):
            info["driver"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
    torch = import_torch_cuda()
    info["torch"] = getattr(torch, "__version__", None)
    return info


def import_torch_cuda() -> Any | None:
    """PyTorch with CUDA and TF32 off (fp32 against fp32), or None."""
    if SIMULATOR:
        return None
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


# ----------------------------------------------------------------------------- timing

def time_numba(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``fn`` between two CUDA events (after two warm-up calls)."""
    from numba import cuda

    for _ in range(2):
        fn()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = cuda.event(), cuda.event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cuda.event_elapsed_time(start, end) / 1e3)
    return statistics.median(times)


def time_torch(torch: Any, fn: Callable[[], Any], repeats: int) -> float:
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.3f} ms"


def ratio(ours: float | None, theirs: float | None) -> str:
    """PyTorch time / jitgrad time: above 1 jitgrad is faster."""
    return "-" if not ours or not theirs else f"{theirs / ours:.2f}x"


# ----------------------------------------------------------------------------- cases

def cases(opts: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(family, kernel, shape label) for every kernel (or those --kernels names) at the report's shapes.

    ``--quick`` takes the tiny shapes instead.
    """
    wanted = set(opts.kernels.split(",")) if opts.kernels else None
    out = []
    for family in common.FAMILIES.values():
        labels = list(common.QUICK_SHAPES.get(family.name, {})) if opts.quick else list(family.shapes)
        out += [(family.name, kernel, label) for kernel in family.kernels for label in labels
                if wanted is None or kernel in wanted]
    return out


def _host(value: Any) -> list[np.ndarray]:
    """Every array in a kernel's result (or its in-place arguments), as host arrays."""
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _host(v)]
    if value is None:
        return []
    if hasattr(value, "copy_to_host"):
        return [value.copy_to_host()]
    return [np.asarray(value)]


def backend_call(family: str, kernel: str, shape: str, backend: str) -> tuple[Callable[[], Any], tuple]:
    """``kernel`` on ``backend`` at ``shape`` (float32) as a zero-argument call, and its positional inputs.

    On CUDA the call only queues the kernel (no synchronize): the timings put CUDA events around it.
    """
    fn = common.kernel_function(backend, kernel)
    args, kwargs = common.make_inputs(family, kernel, shape, "float32")
    if backend == "cuda":
        args = tuple(common._to_device(a) for a in args)
        kwargs = {k: common._to_device(v) for k, v in kwargs.items()}
    return (lambda: fn(*args, **kwargs)), args


def run_backend(family: str, kernel: str, shape: str, backend: str) -> list[np.ndarray]:
    """One call of ``kernel`` on ``backend`` at ``shape`` (float32); outputs as host arrays.

    In-place kernels (the optimizer updates) return None: their first argument is the output.
    """
    call, args = backend_call(family, kernel, shape, backend)
    result = call()
    return _host(result if result is not None else args[0])


# ----------------------------------------------------------------------------- steps

def step_tests(report: Report, opts: argparse.Namespace, deadline: Deadline) -> None:
    """tests/cuda on the device (simulator off), then the docs' GPU blocks, the heavy ones included."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["JITGRAD_DOCS_REAL_GPU"] = "1"
    flags = ["-v", "-p", "no:cacheprovider", "--tb=short", "-rfE"]  # -v: a run cut short still says which passed
    runs = [[*opts.tests.split(","), *flags], ["tests/test_docs.py::test_gpu_blocks_run_in_the_cuda_process", *flags]]
    if opts.workers > 1:  # pytest-xdist, where the machine has it: the tests compile their kernels in parallel
        with contextlib.suppress(ImportError):
            import xdist  # noqa: F401

            runs[0] += ["-n", str(opts.workers)]
    if opts.skip_docs:
        runs = runs[:1]
    if SIMULATOR:  # a dry run only checks that the runs are found
        runs = [r + ["--collect-only"] for r in runs]
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    row = report.table("CUDA tests on the device", ["run", "exit", "last line", "seconds"])
    log_path = report.outdir / "tests.log"
    for run in runs:
        timeout = max(30.0, min(opts.tests_timeout, deadline.left() - 60))
        t0 = time.monotonic()
        with open(log_path, "a", encoding="utf-8") as log:  # streamed: a run cut short keeps what it printed
            log.write(f"$ pytest {' '.join(run)}\n")
            log.flush()
            start = log.tell()
            proc = subprocess.Popen([sys.executable, "-m", "pytest", *run], cwd=ROOT, env=env, text=True,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code: int | str = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)  # the xdist workers and the tests' subprocesses too
                proc.wait()
                code = f"timeout {timeout:.0f}s"
        with open(log_path, encoding="utf-8") as log:
            log.seek(start)
            out = log.read()
        last = next((ln for ln in reversed(out.splitlines()) if ln.strip()), "")
        row([run[0], code, last.replace("|", "/")[:200], f"{time.monotonic() - t0:.0f}"],
            {"run": run[0], "exit": code, "last": last})
    report.end_table()


def step_errors(report: Report, opts: argparse.Namespace, deadline: Deadline) -> None:
    """Every CUDA kernel against the CPU kernel, same float32 inputs: max abs error and error / max |cpu|."""
    row = report.table("CUDA against the CPU kernels (float32)",
                       ["kernel", "shape", "max abs error", "relative to max |cpu|", "ok"])
    for family, kernel, shape in cases(opts):
        if deadline.left() < 30:
            break
        try:
            cpu_out = run_backend(family, kernel, shape, "cpu")
            gpu_out = run_backend(family, kernel, shape, "cuda")
            err = max(float(np.max(np.abs(g.astype(np.float64) - c))) if c.size else 0.0
                      for c, g in zip(cpu_out, gpu_out))
            scale = max(float(np.max(np.abs(c))) if c.size else 0.0 for c in cpu_out) or 1.0
            ok = err <= 1e-4 * scale and all(c.shape == g.shape for c, g in zip(cpu_out, gpu_out))
            row([kernel, shape, f"{err:.3g}", f"{err / scale:.2g}", "yes" if ok else "**NO**"],
                {"kernel": kernel, "shape": shape, "max_abs": err, "rel": err / scale, "ok": ok})
        except Exception as exc:  # noqa: BLE001 - the run goes on; the failure is the row
            row([kernel, shape, "error", type(exc).__name__, "**NO**"],
                {"kernel": kernel, "shape": shape, "error": traceback.format_exc(limit=3)})
    report.end_table()


def _square_matmul(torch: Any | None, n: int) -> tuple[Callable[[], Any], Callable[[], Any] | None]:
    """jitgrad's and (with PyTorch) cuBLAS's ``(n, n) @ (n, n)`` on the same float32 operands."""
    from numba import cuda

    from jitgrad.kernels import cuda as kc

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    da, db, out = cuda.to_device(a), cuda.to_device(b), cuda.device_array((n, n), np.float32)
    theirs = None
    if torch is not None:
        ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        theirs = lambda: torch.matmul(ta, tb)  # noqa: E731
    return (lambda: kc.matmul(da, db, out=out)), theirs


def step_timings(report: Report, opts: argparse.Namespace, deadline: Deadline) -> None:
    """Kernels timed with CUDA events next to PyTorch CUDA (cuBLAS/cuDNN), TF32 off."""
    torch = import_torch_cuda()
    row = report.table("Kernel times on the GPU (medians, CUDA events)",
                       ["kernel", "shape", "jitgrad", "PyTorch", "PyTorch time / jitgrad time"])
    timed: list[tuple[str, str, Callable[[], tuple[Callable[[], Any], Callable[[], Any] | None]]]] = []
    if not opts.quick and not opts.kernels:
        for n in MATMUL_SIZES:
            timed.append(("matmul", f"{n}x{n}x{n}", lambda n=n: _square_matmul(torch, n)))
    for family, kernel, shape in cases(opts):
        def make(family=family, kernel=kernel, shape=shape):
            ours, _ = backend_call(family, kernel, shape, "cuda")
            theirs = None
            if torch is not None:
                import report as cpu_report

                theirs = cpu_report.torch_kernel_call(torch, family, kernel, shape, "float32", device="cuda")
            return ours, theirs
        timed.append((kernel, shape, make))
    for kernel, shape, make in timed:
        if deadline.left() < 60:
            break
        try:
            ours, theirs = make()
            if SIMULATOR:  # plumbing only: one call, nothing timed
                ours()
                row([kernel, shape, "ran", "-", "-"], {"kernel": kernel, "shape": shape, "simulated": True})
                continue
            t_ours = time_numba(ours, opts.repeats)
            t_theirs = time_torch(torch, theirs, opts.repeats) if theirs else None
            row([kernel, shape, fmt_s(t_ours), fmt_s(t_theirs), ratio(t_ours, t_theirs)],
                {"kernel": kernel, "shape": shape, "jitgrad_s": t_ours, "torch_s": t_theirs})
        except Exception as exc:  # noqa: BLE001
            row([kernel, shape, "error", type(exc).__name__, "-"],
                {"kernel": kernel, "shape": shape, "error": traceback.format_exc(limit=3)})
    report.end_table()


@contextlib.contextmanager
def count_launches_and_syncs():
    """Counts kernel launches and device-to-host copies (each one a host sync) while active."""
    from numba.cuda.cudadrv import devicearray

    counts = {"launches": 0, "host_syncs": 0}
    patched: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, key: str) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return

        def counting(*args: Any, **kwargs: Any) -> Any:
            counts[key] += 1
            return original(*args, **kwargs)

        setattr(owner, name, counting)
        patched.append((owner, name, original))

    if SIMULATOR:
        from numba.cuda.simulator import kernel as sim_kernel

        original = sim_kernel.FakeCUDAKernel.__call__

        def launch(self: Any, *args: Any) -> Any:
            # The simulator calls device functions through the same method: count launches only.
            if not self._device and not sim_kernel._kernel_context:
                counts["launches"] += 1
            return original(self, *args)

        sim_kernel.FakeCUDAKernel.__call__ = launch
        patched.append((sim_kernel.FakeCUDAKernel, "__call__", original))
    else:
        from numba.cuda import dispatcher

        # Numba's launches (_Kernel.launch) and jitgrad's FastKernel both end in the driver launch that
        # numba.cuda.dispatcher imports as `launch`, looked up at each call: every launch counted once.
        wrap(dispatcher, "launch", "launches")
        wrap(devicearray.DeviceNDArray, "copy_to_host", "host_syncs")
    try:
        yield counts
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def step_e2e(report: Report, opts: argparse.Namespace, deadline: Deadline) -> None:
    """Training steps of the examples' models on the GPU: images/s next to PyTorch, launches and syncs per step."""
    torch = import_torch_cuda()
    batch = 2 if SIMULATOR else (8 if opts.quick else common.BATCH)
    steps = 1 if SIMULATOR else (2 if opts.quick else opts.e2e_steps)
    names = ["tiny-mlp"] if SIMULATOR else list(models.MODELS)
    row = report.table(f"Training on the GPU (batch {batch}, {steps} timed steps, MNIST-shaped data)",
                       ["model", "jitgrad images/s", "PyTorch images/s", "jitgrad / PyTorch speed",
                        "epoch (60k images) jitgrad / PyTorch", "launches per step", "host syncs per step"])
    for name in names:
        if deadline.left() < 60:
            break
        try:
            step = models.train_step(name, "cuda", batch)
            with count_launches_and_syncs() as counts:  # also the warm-up: compiles every kernel
                step()
            t0 = time.perf_counter()
            for _ in range(steps):
                step()  # ends in a synchronize (models.train_step)
            ours = batch * steps / (time.perf_counter() - t0)
            theirs = None
            if torch is not None:
                import report as cpu_report

                t_step, _ = cpu_report.torch_train_step(torch, name, batch, device="cuda")
                for _ in range(3):
                    t_step()
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(steps):
                    t_step()
                torch.cuda.synchronize()
                theirs = batch * steps / (time.perf_counter() - t0)
            epoch = (f"{60000 / ours:.2f} s / {60000 / theirs:.2f} s" if theirs else f"{60000 / ours:.2f} s / -")
            row([name, f"{ours:,.0f}", f"{theirs:,.0f}" if theirs else "-",
                 f"{ours / theirs:.2f}x" if theirs else "-", epoch, counts["launches"], counts["host_syncs"]],
                {"model": name, "jitgrad_img_s": ours, "torch_img_s": theirs, **counts})
        except Exception as exc:  # noqa: BLE001
            row([name, "error", type(exc).__name__, "-", "-", "-", "-"],
                {"model": name, "error": traceback.format_exc(limit=3)})
    report.end_table()


# ----------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", type=Path, help="folder for summary.md, results.jsonl and tests.log")
    p.add_argument("--only", default=",".join(STEPS), help=f"comma-separated steps out of {','.join(STEPS)}")
    p.add_argument("--quick", action="store_true", help="tiny shapes only (a dry run of the plumbing)")
    p.add_argument("--kernels", default="", help="comma-separated kernel names: only these (default: all)")
    p.add_argument("--budget-s", type=float, default=480.0, help="stop starting new work after this many seconds")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per kernel (the median is kept)")
    p.add_argument("--e2e-steps", type=int, default=50, help="timed training steps per model")
    p.add_argument("--tests", default="tests/cuda", help="comma-separated test paths for the tests step")
    p.add_argument("--skip-docs", action="store_true", help="tests step: not the docs' GPU blocks")
    p.add_argument("--workers", type=int, default=1, help="pytest-xdist workers for tests/cuda (if installed)")
    p.add_argument("--tests-timeout", type=float, default=240.0, help="seconds for each pytest run")
    opts = p.parse_args(argv)
    unknown = set(opts.only.split(",")) - set(STEPS)
    if unknown:
        p.error(f"--only: unknown step(s) {', '.join(sorted(unknown))}; choose from {', '.join(STEPS)}")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    from numba import cuda

    if not SIMULATOR and not cuda.is_available():
        print("gpu_check: no CUDA GPU here (numba.cuda.is_available() is False); run it on a machine with an "
              "NVIDIA GPU, or set NUMBA_ENABLE_CUDASIM=1 for a dry run", file=sys.stderr)
        return 2
    if SIMULATOR:
        # The benchmarks refuse the simulator (its timings mean nothing); the dry run only needs the calls.
        common.cuda_ready = models.cuda_ready = lambda: None
        opts.quick = True
        # 28x28 -> 4x4 first: the simulator runs each CUDA thread as a Python thread, and a K=784 matmul
        # would take minutes there. The dry run checks plumbing, not the model.
        models.MODELS.setdefault("tiny-mlp", [("AvgPool2d", (7,), {}), ("Flatten", (), {}), ("Linear", (16, 10), {})])
    deadline = Deadline(opts.budget_s)
    report = Report(opts.outdir)
    info = device_info()
    report.text("# jitgrad GPU check\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()))
    failed = []
    for name in opts.only.split(","):
        if deadline.left() < 30:
            report.text(f"(time budget spent: step {name} not run)")
            continue
        try:
            globals()[f"step_{name}"](report, opts, deadline)
        except Exception:  # noqa: BLE001 - one broken step must not cost the others
            failed.append(name)
            report.text(f"step {name} failed:\n\n```\n{traceback.format_exc()}\n```")
    report.text(f"done in {opts.budget_s - deadline.left():.0f} s" + (f"; failed steps: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
