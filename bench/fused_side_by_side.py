"""Fused epilogues against the unfused ops, side by side in one process: Linear+ReLU and Conv2d+ReLU.

Each row times, through the autograd as a user calls it, ``F.linear(x, w, b,
activation="relu")`` against ``F.relu(F.linear(x, w, b))`` (and ``conv2d``
likewise), forward alone and forward + backward, at the LeNet-5 and Keras
convnet shapes. The two variants alternate within every repetition, each
timed by its thread's CPU time (the machine may be shared), and the table
shows medians and the ratio unfused / fused (> 1: the fusion wins).
The last rows are whole training steps (batch 128, Adam, forward,
cross-entropy, backward, update): ``examples/mnist_models.py``'s fused
LeNet-5 against the same network with separate ``ReLU`` layers, and the
Keras convnet with and without its two convolutions' ReLU fused.
``--threads`` sets Numba's threads (default 1).

    NUMBA_NUM_THREADS=1 .venv/bin/python bench/fused_side_by_side.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

LINEAR_SHAPES = {  # (batch, in, out)
    "LeNet fc1 64x256->120": (64, 256, 120),
    "LeNet fc2 64x120->84": (64, 120, 84),
    "LeNet fc1 b128": (128, 256, 120),
    "Keras dense 128x1600->10": (128, 1600, 10),
}
CONV_SHAPES = {  # x shape, w shape
    "LeNet conv1 64x1x28x28 6@5x5": ((64, 1, 28, 28), (6, 1, 5, 5)),
    "LeNet conv2 64x6x12x12 16@5x5": ((64, 6, 12, 12), (16, 6, 5, 5)),
    "Keras conv1 128x1x28x28 32@3x3": ((128, 1, 28, 28), (32, 1, 3, 3)),
    "Keras conv2 128x32x13x13 64@3x3": ((128, 32, 13, 13), (64, 32, 3, 3)),
}


def _time(fn, reps: int) -> float:
    start = time.thread_time()
    for _ in range(reps):
        fn()
    return (time.thread_time() - start) / reps


def side_by_side(fused, unfused, repeats: int, reps: int) -> tuple[float, float]:
    fused(), unfused()  # compile, warm caches
    tf, tu = [], []
    for _ in range(repeats):
        tf.append(_time(fused, reps))
        tu.append(_time(unfused, reps))
    return statistics.median(tf), statistics.median(tu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    import numba
    import numpy as np

    from jitgrad import Tensor
    from jitgrad.nn import functional as F

    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    def tensor(shape, grad=False):
        return Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=grad)

    print(f"{'row':40s} {'pass':>8s} {'fused us':>10s} {'unfused us':>11s} {'unfused/fused':>14s}")

    def report(name, make):
        for mode in ("fwd", "fwd+bwd"):
            def run(fused, mode=mode):
                y = make(fused)
                if mode == "fwd+bwd":
                    y.backward(grad_y[name])
            reps = max(1, int(2e-2 / max(_time(lambda: run(True), 1), 1e-6)))
            tf, tu = side_by_side(lambda: run(True), lambda: run(False), args.repeats, reps)
            print(f"{name:40s} {mode:>8s} {tf * 1e6:10.1f} {tu * 1e6:11.1f} {tu / tf:14.2f}", flush=True)

    grad_y = {}
    for name, (n, k, m) in LINEAR_SHAPES.items():
        x, w, b = tensor((n, k)), tensor((m, k), True), tensor((m,), True)
        grad_y[name] = rng.standard_normal((n, m)).astype(np.float32)
        report(name, lambda fused, x=x, w=w, b=b: F.linear(x, w, b, activation="relu") if fused
               else F.relu(F.linear(x, w, b)))
    for name, (xs, ws) in CONV_SHAPES.items():
        x, w, b = tensor(xs), tensor(ws, True), tensor((ws[0],), True)
        out_shape = (xs[0], ws[0], xs[2] - ws[2] + 1, xs[3] - ws[3] + 1)
        grad_y[name] = rng.standard_normal(out_shape).astype(np.float32)
        report(name, lambda fused, x=x, w=w, b=b: F.conv2d(x, w, b, activation="relu") if fused
               else F.relu(F.conv2d(x, w, b)))
    training_steps(args.repeats)


def training_steps(repeats: int) -> None:
    """LeNet-5 (the example's, fused) and the Keras convnet, each fused against unfused, one step each."""
    import numpy as np

    import jitgrad
    from jitgrad import Tensor, nn, optim

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    from mnist_models import lenet5

    def unfused_lenet5():
        return nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(256, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10),
        )

    def convnet(fused):
        relu = "relu" if fused else None
        layers = [nn.Conv2d(1, 32, 3, activation=relu), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, activation=relu),
                  nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(1600, 10)]
        if not fused:
            layers[1:1] = [nn.ReLU()]
            layers[4:4] = [nn.ReLU()]
        return nn.Sequential(*layers)

    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((128, 1, 28, 28)).astype(np.float32))
    labels = rng.integers(0, 10, 128)
    for name, pair in (("LeNet-5 training step, batch 128", (lenet5, unfused_lenet5)),
                       ("Keras convnet training step, batch 128", (lambda: convnet(True), lambda: convnet(False)))):
        steps = []
        for make in pair:
            jitgrad.manual_seed(0)
            model = make()
            opt = optim.Adam(model.parameters(), lr=1e-3)

            def step(model=model, opt=opt):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x), labels)
                loss.backward()
                opt.step()
            steps.append(step)
        tf, tu = side_by_side(steps[0], steps[1], repeats, 3)
        print(f"{name:40s} {'step':>8s} {tf * 1e6:10.1f} {tu * 1e6:11.1f} {tu / tf:14.2f}", flush=True)


if __name__ == "__main__":
    main()
