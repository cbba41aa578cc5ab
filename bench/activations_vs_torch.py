#!/usr/bin/env python
"""Every activation, softmax and softmax-CE kernel, forward and backward: jitgrad CPU vs NumPy vs PyTorch.

One process, backends interleaved sample by sample, medians, ratios (above 1:
jitgrad faster). Shapes: the activation rows of ``bench/report.py``
(128x32x26x26) and softmax/CE at (128, 1000) and (4096, 1000), float32.

    PYTHONPATH=/work/torchenv/lib/python3.11/site-packages python bench/activations_vs_torch.py --threads 2
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

ACTIVATIONS = [("sigmoid", {}), ("tanh", {}), ("gelu", {}), ("gelu", {"approximate": "tanh"}), ("elu", {}),
               ("softplus", {}), ("relu", {})]


def _torch_cases(torch, x, g):
    f, aten = torch.nn.functional, torch.ops.aten
    tx, tg = torch.from_numpy(x), torch.from_numpy(g)
    return {
        "sigmoid": (lambda: torch.sigmoid(tx), lambda: aten.sigmoid_backward(tg, torch.sigmoid(tx))),
        "tanh": (lambda: torch.tanh(tx), lambda: aten.tanh_backward(tg, torch.tanh(tx))),
        "gelu": (lambda: f.gelu(tx), lambda: aten.gelu_backward(tg, tx)),
        "gelu-tanh": (lambda: f.gelu(tx, approximate="tanh"), lambda: aten.gelu_backward(tg, tx, approximate="tanh")),
        "elu": (lambda: f.elu(tx), lambda: aten.elu_backward(tg, 1.0, 1, 1, False, tx)),
        "softplus": (lambda: f.softplus(tx), lambda: aten.softplus_backward(tg, tx, 1.0, 20.0)),
        "relu": (lambda: torch.relu(tx), lambda: aten.threshold_backward(tg, tx, 0)),
    }


def _time(fns: dict, repeats: int, budget: float) -> dict:
    for fn in fns.values():
        fn()
    samples: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            n, t0 = 0, time.perf_counter()
            while True:
                fn()
                n += 1
                if time.perf_counter() - t0 > budget:
                    break
            samples[k].append((time.perf_counter() - t0) / n)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sample-time", type=float, default=0.05)
    opts = p.parse_args()
    set_num_threads(opts.threads)
    try:
        import torch

        torch.set_num_threads(opts.threads)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    rows = []
    x = rng.standard_normal((128, 32, 26, 26)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    tc = _torch_cases(torch, x, g) if torch else {}
    for name, kw in ACTIVATIONS:
        label = name + ("-tanh" if kw else "")
        for bwd in (False, True):
            k = name + ("_backward" if bwd else "")
            args = (g, x) if bwd else (x,)
            fns = {"numpy": lambda: getattr(ref, k)(*args, **kw), "cpu": lambda: getattr(cpu, k)(*args, **kw)}
            if torch:
                fns["torch"] = tc[label][bwd]
            rows.append((label + (" bwd" if bwd else ""), "128x32x26x26", _time(fns, opts.repeats, opts.sample_time)))
    for shape in ((128, 1000), (4096, 1000), (128, 10)):
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
        if torch:
            tl, tlab, tgg = torch.from_numpy(logits), torch.from_numpy(labels), torch.from_numpy(gg)
            ty, tly = torch.from_numpy(y), torch.from_numpy(ly)
            aten = torch.ops.aten
            tcases = {
                "softmax": lambda: torch.softmax(tl, 1),
                "softmax bwd": lambda: aten._softmax_backward_data(tgg, ty, 1, ty.dtype),
                "log_softmax": lambda: torch.log_softmax(tl, 1),
                "log_softmax bwd": lambda: aten._log_softmax_backward_data(tgg, tly, 1, tly.dtype),
                "cross_entropy": lambda: torch.nn.functional.cross_entropy(tl, tlab),
                # nll_loss backward then log_softmax backward: what autograd runs
                "cross_entropy bwd": lambda: aten._log_softmax_backward_data(
                    aten.nll_loss_backward(torch.tensor(1.0), tly, tlab, None, 1, -100, torch.tensor(1.0)),
                    tly, 1, tly.dtype),
            }
        for name, make in cases.items():
            fns = {"numpy": make(ref), "cpu": make(cpu)}
            if torch:
                fns["torch"] = tcases[name]
            rows.append((name, "x".join(map(str, shape)), _time(fns, opts.repeats, opts.sample_time)))
    print(f"{'kernel':20s} {'shape':14s} {'cpu us':>9s} {'vs numpy':>9s} {'vs torch':>9s}")
    for name, shape, t in rows:
        vt = f"{t['torch'] / t['cpu']:8.2f}x" if "torch" in t else "       -"
        print(f"{name:20s} {shape:14s} {t['cpu'] * 1e6:9.1f} {t['numpy'] / t['cpu']:8.2f}x {vt}")


if __name__ == "__main__":
    main()
