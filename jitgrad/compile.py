"""Fill Numba's cache with jitgrad's CPU kernels ahead of time: ``python -m jitgrad.compile``.

Numba compiles a kernel the first time it is called with a new type
signature, then keeps the machine code in its on-disk cache
(:func:`jitgrad.config.cache_dir`), so only the first run on a machine pays.
This module pays that cost up front and in parallel: the kernels a training
run calls are split into independent *tasks* (conv forward, conv backward
input, conv backward weight, matmul, pooling, the rest of a step), and each
task runs in its own process, one per core, each calling its kernels once on
small inputs of the shapes that select every code path the MNIST examples
take. Only the signatures a run uses are compiled: float32 by default,
float64 with ``--dtype float64`` (gradcheck and the float64 tests use it).

A stamp file in the cache directory records a complete compile for this
kernel source, Numba version, Python and CPU; :func:`ensure_compiled` returns
at once when it is present (the warm path costs a hash of the sources), so
scripts call it unconditionally before training.

Examples
--------
    python -m jitgrad.compile                    # float32, one process per core
    python -m jitgrad.compile --dtype float32 --dtype float64 --jobs 4
    python -m jitgrad.compile --force            # recompile what is missing, whatever the stamp says
    python -m jitgrad.compile --where            # print the cache folder
    python -m jitgrad.compile --clear            # delete this checkout's kernels from it
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from jitgrad import config

__all__ = ["TASKS", "ensure_compiled", "compile_kernels", "is_compiled", "clear", "main"]

_PACKAGE = Path(__file__).resolve().parent

# Layer shapes of the examples (batch 4: compiled code depends on types and
# on which path a shape selects, not on the batch size).
# (C_in, H, W, C_out, k): LeNet-5's two convolutions, the Keras convnet's two.
_CONVS = ((1, 28, 28, 6, 5), (6, 12, 12, 16, 5), (1, 28, 28, 32, 3), (32, 13, 13, 64, 3))
# (in_features, out_features) of their Linear layers.
_LINEARS = ((256, 120), (120, 84), (84, 10), (1600, 10))
_BATCH = 4
# A batch large enough that a matmul takes the parallel GEMM driver (the
# examples' batch 128 does for the first Linear layer).
_WIDE_BATCH = 128


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _conv_inputs(dtype: np.dtype):
    rng = _rng()
    for c_in, h, w, c_out, k in _CONVS:
        x = rng.standard_normal((_BATCH, c_in, h, w)).astype(dtype)
        weight = rng.standard_normal((c_out, c_in, k, k)).astype(dtype)
        grad_out = rng.standard_normal((_BATCH, c_out, h - k + 1, w - k + 1)).astype(dtype)
        yield x, weight, grad_out


def _task_conv2d(dtype: np.dtype) -> None:
    from jitgrad.kernels import cpu as K

    for x, weight, _ in _conv_inputs(dtype):
        K.conv2d(x, weight, np.zeros(weight.shape[0], dtype))
        K.conv2d(x, weight)


def _task_conv2d_backward_input(dtype: np.dtype) -> None:
    from jitgrad.kernels import cpu as K

    for x, weight, grad_out in _conv_inputs(dtype):
        K.conv2d_backward_input(grad_out, weight, input_shape=x.shape)


def _task_conv2d_backward_weight(dtype: np.dtype) -> None:
    from jitgrad.kernels import cpu as K

    for x, weight, grad_out in _conv_inputs(dtype):
        K.conv2d_backward_weight(x, grad_out, weight_shape=weight.shape)


def _task_linear(dtype: np.dtype) -> None:
    import jitgrad
    from jitgrad.nn import functional as F

    rng = _rng()
    for batch in (_BATCH, _WIDE_BATCH):
        for n_in, n_out in _LINEARS:
            x = jitgrad.tensor(rng.standard_normal((batch, n_in)).astype(dtype), requires_grad=True)
            w = jitgrad.tensor(rng.standard_normal((n_out, n_in)).astype(dtype), requires_grad=True)
            b = jitgrad.tensor(np.zeros(n_out, dtype), requires_grad=True)
            F.linear(x, w, b).sum().backward()
            F.linear(x, w, b, activation="relu").sum().backward()  # the fused epilogue's backward kernel
    # Products above matmul's SERIAL_MACS, on its parallel drivers: float32 on the GEMM team (_team),
    # float64 on the packed GEMM's OpenMP driver, which float32 takes too when the team is off or
    # held by another thread; ``a @ b.T`` with a short side as dot products (float32: on the team,
    # _team_spans.run_dot). The examples' batch-128
    # Linear layers stay below SERIAL_MACS.
    from jitgrad.kernels import cpu as K
    from jitgrad.kernels.cpu import _gemm, _gemm_dot

    a = rng.standard_normal((272, 272)).astype(dtype)
    K.matmul(a, a)
    _gemm.gemm_parallel(a, a, False, False, np.empty_like(a), 2, np.zeros(1, dtype), 0)
    # 10 rows: a short side that never fills a B panel, so on the dot route on every path (``product_route``)
    g, x = rng.standard_normal((10, 4096)).astype(dtype), rng.standard_normal((288, 4096)).astype(dtype)
    K.matmul(g, x, trans_b=True)
    _gemm_dot.gemm_dot_parallel(g, x, np.empty((10, 288), dtype), 2)  # (float32 itself runs on the team)
    # A matrix-vector product above GEMV_TEAM_MIN: float32 on the team by spans (_team_spans.run_gemv).
    v, big = rng.standard_normal((1, 1024)).astype(dtype), rng.standard_normal((1024, 1024)).astype(dtype)
    K.matmul(v, big)


def _task_pooling(dtype: np.dtype) -> None:
    import jitgrad
    from jitgrad.nn import functional as F

    rng = _rng()
    for _, h, w, c_out, k in _CONVS:
        x = jitgrad.tensor(rng.standard_normal((_BATCH, c_out, h - k + 1, w - k + 1)).astype(dtype),
                           requires_grad=True)
        F.max_pool2d(F.relu(x), 2).sum().backward()
    # A window other than 2 x 2 of stride 2 (a ResNet stem's): where no gather exists (SSE, NEON) those
    # two run kernels of their own (``pooling._PAIRS``), and both must be left in the cache.
    F.max_pool2d(x, 3, stride=2, padding=1).sum().backward()
    # ReLU on the GEMM team (from a quarter of its OpenMP size, in spans: ``_team_spans``), as LeNet-5's
    # first one at the examples' batch 128 runs: its span jobs, forward and backward, are compiled
    # functions of their own that the batch-4 step never reaches (after make's compile, `make train`'s
    # first step compiled them: 2.56 s against 0.62 s).
    x = jitgrad.tensor(rng.standard_normal((_WIDE_BATCH, 6, 24, 24)).astype(dtype), requires_grad=True)
    F.relu(x).sum().backward()


def _task_loss_optim(dtype: np.dtype) -> None:
    # Cross-entropy forward and backward, and Adam/AdamW on a parameter above and one below the
    # optimizer kernels' parallel threshold: what a step calls after its layers (SGD is left to the
    # training-step task: this one runs first in a tiered cold start's background process).
    import jitgrad
    from jitgrad import nn, optim

    rng = _rng()
    logits = jitgrad.tensor(rng.standard_normal((_BATCH, 10)).astype(dtype), requires_grad=True)
    nn.functional.cross_entropy(logits, rng.integers(0, 10, _BATCH)).backward()
    from jitgrad.kernels.cpu import _tier
    from jitgrad.kernels.cpu.optim import _PARALLEL_MIN_SIZE

    # The background's serial phase (twins forced) leaves the parallel update kernel, which no example
    # model's first step needs (their parameters are below the threshold), to its parallel phase:
    # 1.1 CPU-s less before the cold step's optimizer update.
    sizes = (10,) if _tier._forced == "serial" else (10, _PARALLEL_MIN_SIZE)
    params = [jitgrad.tensor(rng.standard_normal(size).astype(dtype), requires_grad=True) for size in sizes]
    sum(p.sum() for p in params).backward()
    for optimizer in (optim.Adam(params, lr=1e-3, weight_decay=1e-4), optim.AdamW(params, lr=1e-3)):
        optimizer.step()


def _task_recurrent(dtype: np.dtype) -> None:
    # Each cell's forward and backward time loops (one kernel each per cell, kernels/cpu/recurrent):
    # examples/sequence_mnist.py's LSTM and its Linear head, then a GRU and both plain RNNs (the
    # loops' code is the same whatever the batch, one task of rows or several); the input and
    # weight-gradient products are matmul's.
    import jitgrad
    from jitgrad import nn

    config.default_dtype = np.dtype(dtype)  # new parameters take it (_run_task restores it)
    rng = _rng()
    x = jitgrad.tensor(rng.standard_normal((12, 3, 28)).astype(dtype))
    for layer in (nn.LSTM(28, 64, batch_first=True), nn.GRU(28, 64, batch_first=True),
                  nn.RNN(28, 64, batch_first=True), nn.RNN(28, 64, nonlinearity="relu", batch_first=True)):
        y, _ = layer(x)
        nn.functional.cross_entropy(nn.Linear(64, 10)(y[:, -1]), rng.integers(0, 10, 12)).backward()


def _example_resnet() -> list:
    """``examples/mnist_models.py``'s ResNet when the examples sit beside the package (a checkout, as
    ``make`` installs it), else nothing: batch norm, padded and strided convolutions, residual sums
    and global pooling, which the other models' steps never reach (after make's compile its first
    step compiled for 6.5 s)."""
    import importlib.util

    path = _PACKAGE.parent / "examples" / "mnist_models.py"
    spec = importlib.util.spec_from_file_location("_jitgrad_example_models", path) if path.is_file() else None
    if spec is None or spec.loader is None:
        return []
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [module.resnet()]


def _task_step(dtype: np.dtype) -> None:
    # Cross-entropy, dropout and both optimizers on a tiny model, then one
    # full training step of each example model: whatever an earlier task did
    # not reach is compiled here, the rest loads from the cache.
    import jitgrad
    from jitgrad import nn, optim

    config.default_dtype = np.dtype(dtype)  # new parameters take it (_run_task restores it)
    rng = _rng()
    labels = rng.integers(0, 10, _BATCH)
    for model in (nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                                nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(),
                                nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)),
                  nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                                nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(1600, 10)),
                  *_example_resnet()):
        for optimizer in (optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4),
                          optim.AdamW(model.parameters(), lr=1e-3),
                          optim.SGD(model.parameters(), lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-4)):
            x = jitgrad.tensor(rng.standard_normal((_BATCH, 1, 28, 28)).astype(dtype))
            loss = nn.functional.cross_entropy(model(x), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with jitgrad.no_grad():
            model.eval()
            nn.functional.cross_entropy(model(x), labels)
            model.train()


#: Name and function of each independent compile task; the full step goes last.
TASKS: dict[str, Callable[[np.dtype], None]] = {
    "conv2d backward weight": _task_conv2d_backward_weight,
    "conv2d backward input": _task_conv2d_backward_input,
    "conv2d": _task_conv2d,
    "linear (matmul)": _task_linear,
    "max_pool2d + relu": _task_pooling,
    "loss + optimizers": _task_loss_optim,
    "recurrent layers": _task_recurrent,
    "training step": _task_step,
}


_LAST_TASK = "training step"


def _run_task(name: str, dtype_name: str, version: str = "parallel") -> tuple[str, str, float]:
    # Runs in a worker process (and must be importable by name for spawn), or
    # in the caller's with jobs=1: the default dtype a task sets is put back.
    # The progress bar says what compiles: the one-line notice of a first compile stays quiet.
    # The parallel versions of the tiered drivers (the serial twins only for the background
    # process's first phase): each leaves its ready marker, so a filled cache never tiers
    # (see kernels/cpu/_tier).
    from jitgrad.kernels.cpu import _tier

    start, default_dtype, forced = time.perf_counter(), config.default_dtype, _tier._forced
    notice = os.environ.get("JITGRAD_COMPILE_NOTICE")
    os.environ["JITGRAD_COMPILE_NOTICE"] = "0"
    _tier.force(version)
    try:
        TASKS[name](np.dtype(dtype_name))
    finally:
        _tier.force(forced)
        config.default_dtype = default_dtype
        if notice is None:
            del os.environ["JITGRAD_COMPILE_NOTICE"]
        else:
            os.environ["JITGRAD_COMPILE_NOTICE"] = notice
    return name, dtype_name, time.perf_counter() - start


#: The tasks whose serial twins the background process of a tiered cold start compiles first, in
#: this order, while the first step compiles its conv forward tree: what that step reaches after it.
#: The conv weight gradient shares the GEMM block with the conv forward (``_tier.shared``: the later
#: process waits for it), so it comes last. Not here, because a cold step does not compile them:
#: the conv input gradient (the forward kernel computes it, ``conv._backward_input_as_forward``),
#: the dot kernel of few-tap weight gradients (the GEMM one serves until its parallel version is
#: ready) and the Linear layers' ``gemm_serial`` (the conv forward kernel computes their products,
#: ``matmul._as_convolution``): their trees compile once, in the parallel phase.
#: Measured on the 2-core Zen 3 (cold LeNet-5 step, wall s, 4 runs each): before, loss, weight and
#: input gradients here and the GEMM in the step: 16.7-20.3; now: 14.2-16.0 (14.8-16.2 with max-pool
#: left to the step); 12.6-15.3 without the parallel optimizer kernel (``_task_loss_optim``).
BACKGROUND_SERIAL_TASKS = ("max_pool2d + relu", "loss + optimizers", "conv2d backward weight")
_LOSS_TASK = "loss + optimizers"


def _background() -> None:
    """``python -m jitgrad.compile --background``, started by a cold first step (kernels/cpu/_tier)."""
    from jitgrad.kernels.cpu import _tier

    def serial_phase() -> None:
        import jitgrad.kernels.cpu  # noqa: F401  (every kernel module: the jobs a step may request)

        done: set[str] = set()
        _tier.run_requests(done)  # what the step asked for first (_tier.request)
        tasks = list(BACKGROUND_SERIAL_TASKS)
        if done:  # a step that asked (a recurrent layer's) reaches its loss before any pooling
            tasks.sort(key=lambda name: name != _LOSS_TASK)
        for name in tasks:
            _tier.run_requests(done)
            _run_task(name, "float32", "serial")
        _tier.run_requests(done)

    _tier.background_main(serial_phase,
                          lambda: compile_kernels(("float32",), jobs=1, progress=False))


def _stamp_path(dtypes: tuple[str, ...]) -> Path:
    """The stamp of a complete compile of ``dtypes`` for this source (and checkout), Numba, Python and CPU."""
    import llvmlite.binding as llvm
    import numba

    cpu = os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name()
    features = os.environ.get("NUMBA_CPU_FEATURES") or llvm.get_host_cpu_features().flatten()
    # The checkout's path too: Numba keys its cache files by each source file's path, so another
    # checkout of the same sources sharing the cache folder has compiled nothing of this one.
    digest = config.source_digest(("kernels/", "autograd/", "nn/", "optim/", "compile.py"),
                                  (numba.__version__, sys.version, cpu, features, ",".join(dtypes), str(_PACKAGE)))
    return config.cache_dir() / f"jitgrad-compiled-{digest}.stamp"


def _dtype_names(dtypes) -> tuple[str, ...]:
    names = []
    for dtype in dtypes:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"compile: dtypes must name float32 or float64, got {dtype!r}") from None
        if dt not in config.FLOAT_DTYPES:
            raise ValueError(f"compile: dtypes must be float32 or float64, got {dt}")
        if dt.name not in names:
            names.append(dt.name)
    if not names:
        raise ValueError("compile: dtypes is empty")
    return tuple(names)


def is_compiled(dtypes=("float32",)) -> bool:
    """Whether a complete compile of ``dtypes`` for this source and CPU is in the cache."""
    return _stamp_path(_dtype_names(dtypes)).is_file()


def compile_kernels(dtypes=("float32",), *, jobs: int | None = None, progress: bool = True,
                    file=None) -> float:
    """Compile (or load from the cache) every kernel a training run uses; returns the seconds taken.

    Parameters
    ----------
    dtypes : iterable of dtype-like, default ("float32",)
    jobs : int, optional
        Worker processes; default one per core (at most the number of tasks).
        ``1`` compiles in this process.
    progress : bool, default True
        Show a progress bar naming the tasks being compiled.
    file : text stream, optional
        Where the bar goes (default ``sys.stderr``).
    """
    from tqdm.auto import tqdm

    names = _dtype_names(dtypes)
    if jobs is None:
        jobs = os.cpu_count() or 1
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"compile: jobs must be a positive int, got {jobs!r}")
    every = [(task, dtype) for dtype in names for task in TASKS]
    last_tasks = [t for t in every if t[0] == _LAST_TASK]
    parallel = [t for t in every if t[0] != _LAST_TASK]
    start = time.perf_counter()
    bar = tqdm(total=len(parallel) + len(last_tasks), desc="compiling jitgrad kernels", unit="task",
               disable=not progress, file=file or sys.stderr, dynamic_ncols=True,
               bar_format="{desc}: {n_fmt}/{total_fmt} tasks [{elapsed}]{postfix}")
    running: set[str] = set()
    # On a terminal the bar ticks twice a second (the elapsed time shows it is alive); into a
    # file or pipe (make's log) it is written only when the tasks running change.
    live = bool(getattr(file or sys.stderr, "isatty", lambda: False)())
    shown = [None]

    def show() -> None:
        names = ", ".join(sorted(running))
        if live or names != shown[0]:
            shown[0] = names
            bar.set_postfix_str(names, refresh=False)
            bar.refresh()

    try:
        if jobs == 1 or not parallel:
            for task, dtype in parallel + last_tasks:
                running.add(f"{task} {dtype}")
                show()
                _run_task(task, dtype)
                running.clear()
                bar.update()
        else:
            # spawn, not fork: a forked child of a process whose OpenMP pool has
            # started can hang, and each worker needs a fresh Numba anyway.
            context = multiprocessing.get_context("spawn")
            with futures.ProcessPoolExecutor(min(jobs, len(parallel)), mp_context=context) as pool:
                pending = {pool.submit(_run_task, task, dtype): f"{task} {dtype}" for task, dtype in parallel}
                queued = list(pending.values())
                while pending:
                    running.clear()
                    running.update(queued[:jobs])
                    show()
                    done, _ = futures.wait(pending, timeout=0.5, return_when=futures.FIRST_COMPLETED)
                    for future in done:
                        future.result()  # re-raises a task's error here
                        queued.remove(pending.pop(future))
                        bar.update()
                # The full steps go last, each in its own process, when every
                # kernel they call is in the cache.
                for task, dtype in last_tasks:
                    running.clear()
                    running.add(f"{task} {dtype}")
                    future = pool.submit(_run_task, task, dtype)
                    while not future.done():
                        show()
                        futures.wait([future], timeout=0.5)
                    future.result()
                    bar.update()
        running.clear()
        show()
    finally:
        bar.close()
    stamp = _stamp_path(names)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(f"compiled {', '.join(names)} in {time.perf_counter() - start:.1f}s\n")
    return time.perf_counter() - start


def ensure_compiled(dtypes=("float32",), *, jobs: int | None = None, progress: bool = True, file=None,
                    verbose: bool = True) -> bool:
    """Compile the kernels in parallel unless the cache already holds them; returns whether it compiled.

    Scripts call this before training: on a warm cache it only hashes the
    kernel sources; on a cold one the user sees a line saying that this
    happens once (and, with ``progress``, a bar naming what compiles), instead
    of a first batch that seems to hang. ``verbose=False`` silences the lines.
    """
    names = _dtype_names(dtypes)
    if _stamp_path(names).is_file():
        return False
    out = file or sys.stderr
    if verbose:
        print(f"jitgrad: compiling CPU kernels for this machine (first run only; cached in "
              f"{config.cache_dir()}; `python -m jitgrad.compile` does this ahead of time)", file=out, flush=True)
    seconds = compile_kernels(names, jobs=jobs, progress=progress, file=out)
    if verbose:
        print(f"jitgrad: kernels compiled in {seconds:.0f}s", file=out, flush=True)
    return True


def clear() -> int:
    """Delete this installation's compiled kernels (and stamps) from the cache; returns the folders removed.

    Numba keeps each source folder's kernels in a sub-folder of its own
    (under one ``kernels-<digest>`` folder per version of the kernel
    sources), so other checkouts sharing the cache keep theirs.
    """
    import shutil

    from numba.core.caching import UserProvidedCacheLocator

    root = config.cache_dir()
    subpaths = {UserProvidedCacheLocator.get_suitable_cache_subpath(str(path)) for path in _PACKAGE.rglob("*.py")}
    removed = 0
    for versions in root.glob("kernels-*"):  # this source's and earlier ones' (config.numba_cache_dir)
        for folder in (versions / sub for sub in subpaths):
            if folder.is_dir():
                shutil.rmtree(folder)
                removed += 1
        if versions.is_dir() and not any(versions.iterdir()):
            versions.rmdir()
    for stamp in root.glob("jitgrad-compiled-*.stamp"):
        stamp.unlink()
    for markers in root.glob("jitgrad-tier-*"):
        shutil.rmtree(markers, ignore_errors=True)
    return removed


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m jitgrad.compile [--dtype D ...] [--jobs N] [--force] [--quiet]``."""
    parser = argparse.ArgumentParser(prog="python -m jitgrad.compile",
                                     description="Compile jitgrad's CPU kernels into Numba's cache ahead of time.")
    parser.add_argument("--dtype", action="append", choices=["float32", "float64"], default=None,
                        help="dtype to compile for (repeatable; default float32)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--force", action="store_true", help="run every task even if the cache looks complete")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--where", action="store_true", help="print the cache directory and exit")
    parser.add_argument("--clear", action="store_true",
                        help="delete this checkout's compiled kernels from the cache and exit")
    parser.add_argument("--background", action="store_true",
                        help="(started by jitgrad itself) compile the parallel kernels niced, in one process, "
                             "while a first run uses their serial twins")
    args = parser.parse_args(argv)
    if args.background:
        _background()
        return 0
    if args.where:
        print(config.cache_dir())
        return 0
    if args.clear:
        removed = clear()
        if not args.quiet:
            print(f"jitgrad: removed {removed} kernel folder(s) from {config.cache_dir()}")
        return 0
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs: expected a positive integer, got {args.jobs}")
    dtypes = tuple(args.dtype or ("float32",))
    if not args.force and is_compiled(dtypes):
        if not args.quiet:
            print(f"jitgrad: kernels for {', '.join(dtypes)} already compiled in {config.cache_dir()}")
        return 0
    seconds = compile_kernels(dtypes, jobs=args.jobs, progress=not args.quiet)
    if not args.quiet:
        print(f"jitgrad: compiled {', '.join(dtypes)} kernels in {seconds:.0f}s into {config.cache_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
