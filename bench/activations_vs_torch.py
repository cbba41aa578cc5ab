#!/usr/bin/env python
"""Every activation, softmax and softmax-CE kernel, forward and backward: jitgrad CPU vs NumPy vs PyTorch.

One process, backends interleaved sample by sample, medians, ratios (above 1:
jitgrad faster), all on the same ``--threads``. Each sample records wall time
and the process's CPU time (``time.process_time``: every thread's), so on a
shared machine the CPU-time ratio shows what the kernels cost when another
process steals the cores. Shapes: activations at the ``bench/report.py`` row
(128x32x26x26) and a small (128, 1000) batch; softmax, log-softmax and
cross-entropy at (128, 10), (128, 1000) and (4096, 1000); float32.

    PYTHONPATH=/work/torchenv/lib/python3.11/site-packages python bench/activations_vs_torch.py --threads 1
    ... --only gelu,softmax        # rows whose name contains one of these
    ... --markdown                 # the table as docs/performance.md prints it
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import jitgrad  # noqa: E402,F401
from jitgrad.config import set_num_threads  # noqa: E402
from jitgrad.kernels import cpu  # noqa: E402
from jitgrad.kernels import reference as ref  # noqa: E402

ACTIVATIONS = [("relu", {}), ("leaky_relu", {}), ("sigmoid", {}), ("tanh", {}), ("gelu", {}),
               ("gelu", {"approximate": "tanh"}), ("elu", {}), ("softplus", {})]
ACTIVATION_SHAPES = ((128, 32, 26, 26), (128, 1000))
SOFTMAX_SHAPES = ((128, 10), (128, 1000), (4096, 1000))


def _torch_activations(torch, x, g):
    f, aten = torch.nn.functional, torch.ops.aten
    tx, tg = torch.from_numpy(x), torch.from_numpy(g)
    return {
        "relu": (lambda: torch.relu(tx), lambda: aten.threshold_backward(tg, tx, 0)),
        "leaky_relu": (lambda: f.leaky_relu(tx), lambda: aten.leaky_relu_backward(tg, tx, 0.01, False)),
        "sigmoid": (lambda: torch.sigmoid(tx), lambda: aten.sigmoid_backward(tg, torch.sigmoid(tx))),
        "tanh": (lambda: torch.tanh(tx), lambda: aten.tanh_backward(tg, torch.tanh(tx))),
        "gelu": (lambda: f.gelu(tx), lambda: aten.gelu_backward(tg, tx)),
        "gelu-tanh": (lambda: f.gelu(tx, approximate="tanh"), lambda: aten.gelu_backward(tg, tx, approximate="tanh")),
        "elu": (lambda: f.elu(tx), lambda: aten.elu_backward(tg, 1.0, 1, 1, False, tx)),
        "softplus": (lambda: f.softplus(tx), lambda: aten.softplus_backward(tg, tx, 1.0, 20.0)),
    }


def _torch_softmax(torch, logits, labels, gg, y, ly):
    tl, tlab, tgg = torch.from_numpy(logits), torch.from_numpy(labels), torch.from_numpy(gg)
    ty, tly = torch.from_numpy(y), torch.from_numpy(ly)
    aten = torch.ops.aten
    one = torch.tensor(1.0)
    return {
        "softmax": lambda: torch.softmax(tl, 1),
        "softmax bwd": lambda: aten._softmax_backward_data(tgg, ty, 1, ty.dtype),
        "log_softmax": lambda: torch.log_softmax(tl, 1),
        "log_softmax bwd": lambda: aten._log_softmax_backward_data(tgg, tly, 1, tly.dtype),
        "cross_entropy": lambda: torch.nn.functional.cross_entropy(tl, tlab),
        # nll_loss backward then log_softmax backward: what autograd runs
        "cross_entropy bwd": lambda: aten._log_softmax_backward_data(
            aten.nll_loss_backward(one, tly, tlab, None, 1, -100, one), tly, 1, tly.dtype),
    }


def _time(fns: dict, repeats: int, budget: float) -> dict:
    """Per backend: (median wall seconds, median CPU seconds) per call."""
    for fn in fns.values():
        fn()
        fn()
    wall: dict = {k: [] for k in fns}
    cpu_t: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            n, t0, c0 = 0, time.perf_counter(), time.process_time()
            while True:
                fn()
                n += 1
                if time.perf_counter() - t0 > budget:
                    break
            wall[k].append((time.perf_counter() - t0) / n)
            cpu_t[k].append((time.process_time() - c0) / n)
    return {k: (statistics.median(wall[k]), statistics.median(cpu_t[k])) for k in fns}


def _rows(torch, opts):
    rng = np.random.default_rng(0)
    want = [s for s in opts.only.split(",") if s] if opts.only else None

    def wanted(name):
        return want is None or any(w in name for w in want)

    for shape in ACTIVATION_SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        tc = _torch_activations(torch, x, g) if torch else {}
        for name, kw in ACTIVATIONS:
            label = name + ("-tanh" if kw else "")
            for bwd in (False, True):
                row = label + (" bwd" if bwd else "")
                if not wanted(row):
                    continue
                k = name + ("_backward" if bwd else "")
                args = (g, x) if bwd else (x,)
                fns = {"numpy": lambda k=k, args=args: getattr(ref, k)(*args, **kw),
                       "cpu": lambda k=k, args=args: getattr(cpu, k)(*args, **kw)}
                if torch:
                    fns["torch"] = tc[label][bwd]
                yield row, "x".join(map(str, shape)), _time(fns, opts.repeats, opts.sample_time)
    for shape in SOFTMAX_SHAPES:
        logits = (3 * rng.standard_normal(shape)).astype(np.float32)
        labels = rng.integers(0, shape[1], shape[0])
        gg = rng.standard_normal(shape).astype(np.float32)
        y, ly = ref.softmax(logits), ref.log_softmax(logits)
        _, probs = ref.softmax_cross_entropy(logits, labels)
        cases = {
            "softmax": (lambda b: lambda: b.softmax(logits)),
            "softmax bwd": (lambda b: lambda: b.softmax_backward(gg, y)),
            "log_softmax": (lambda b: lambda: b.log_softmax(logits)),
            "log_softmax bwd": (lambda b: lambda: b.log_softmax_backward(gg, ly)),
            "cross_entropy": (lambda b: lambda: b.softmax_cross_entropy(logits, labels)),
            "cross_entropy bwd": (lambda b: lambda: b.softmax_cross_entropy_backward(probs, labels)),
        }
        tcases = _torch_softmax(torch, logits, labels, gg, y, ly) if torch else {}
        for name, make in cases.items():
            if not wanted(name):
                continue
            fns = {"numpy": make(ref), "cpu": make(cpu)}
            if torch:
                fns["torch"] = tcases[name]
            yield name, "x".join(map(str, shape)), _time(fns, opts.repeats, opts.sample_time)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sample-time", type=float, default=0.05)
    p.add_argument("--only", default="", help="comma-separated substrings of row names")
    p.add_argument("--markdown", action="store_true")
    opts = p.parse_args()
    set_num_threads(opts.threads)
    try:
        import torch

        torch.set_num_threads(opts.threads)
    except ImportError:
        torch = None
    from jitgrad.kernels.cpu import _isa

    print(f"# threads {opts.threads}; {_isa.describe()}; torch "
          f"{torch.__version__ if torch else 'absent'}; ratios above 1: jitgrad faster; wall | CPU time")
    if opts.markdown:
        print("| kernel | shape | jitgrad µs | vs NumPy (wall / CPU) | vs PyTorch (wall / CPU) |")
        print("|---|---|---|---|---|")
    else:
        print(f"{'kernel':20s} {'shape':14s} {'cpu us':>9s} {'numpy wall':>10s} {'numpy cpu':>10s} "
              f"{'torch wall':>10s} {'torch cpu':>10s}")
    for name, shape, t in _rows(torch, opts):
        (cw, cc), (nw, nc) = t["cpu"], t["numpy"]
        tw, tcc = t["torch"] if "torch" in t else (float("nan"), float("nan"))
        if opts.markdown:
            print(f"| {name} | {shape} | {cw * 1e6:.1f} | {nw / cw:.2f} / {nc / max(cc, 1e-12):.2f} | "
                  f"{tw / cw:.2f} / {tcc / max(cc, 1e-12):.2f} |")
        else:
            print(f"{name:20s} {shape:14s} {cw * 1e6:9.1f} {nw / cw:9.2f}x {nc / max(cc, 1e-12):9.2f}x "
                  f"{tw / cw:9.2f}x {tcc / max(cc, 1e-12):9.2f}x", flush=True)


if __name__ == "__main__":
    main()
