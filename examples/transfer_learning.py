"""Transfer learning through ONNX: the classic MNIST 0-4 -> 5-9 experiment (after Keras' mnist_transfer_cnn).

1. Train a CNN (LeNet-5's feature layers + a dense classifier) on digits 0-4.
2. Export its feature layers to ONNX, then import them back with ``jitgrad.onnx.load``
   (an ONNX model from anywhere could stand in here).
3. Freeze the imported feature layers, put a new classifier on top and train only it on digits 5-9.
4. Train the same network from scratch on 5-9 for the same number of epochs, and compare
   accuracy and time; ``--plot`` saves the test accuracy per epoch of both.

Examples
--------
    JITGRAD_DATA=/work/shared/data python examples/transfer_learning.py --epochs 2 --plot transfer.png
    python examples/transfer_learning.py --limit 512 --epochs 1      # a quick smoke run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import jitgrad
from jitgrad import nn, optim
from jitgrad import onnx as jonnx
from jitgrad.data import mnist


def feature_layers() -> nn.Module:
    """LeNet-5's convolutional part: (N, 1, 28, 28) -> (N, 256)."""
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())


def classifier(classes: int = 5) -> nn.Module:
    """LeNet-5's dense part: (N, 256) -> (N, classes) logits."""
    return nn.Sequential(nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))


def digits(split: str, low: int, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Images of digits ``low..low+4``, standardised, as (N, 1, 28, 28) float32; labels 0..4."""
    x, y = mnist.load(split, progress=False)
    keep = (y >= low) & (y < low + 5)
    x, y = x[keep][:limit], y[keep][:limit].astype(np.int64) - low
    x = ((x.astype(np.float32) / 255.0 - 0.1307) / 0.3081)[:, None]
    return x, y


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    model.eval()
    with jitgrad.no_grad():
        pred = np.concatenate([model(jitgrad.Tensor(x[i:i + batch])).numpy().argmax(1)
                               for i in range(0, len(x), batch)])
    model.train()
    return float((pred == y).mean())


def train(model: nn.Module, data: tuple, test: tuple, epochs: int, lr: float, seed: int) -> tuple[list[float], float]:
    """Adam on the parameters that require grad; returns test accuracy after each epoch and the seconds taken."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optim.Adam(params, lr=lr)
    x, y = data
    rng = np.random.default_rng(seed)
    curve, seconds = [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        order = rng.permutation(len(x))
        for i in range(0, len(x), 128):
            idx = order[i:i + 128]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(jitgrad.Tensor(x[idx])), y[idx])
            loss.backward()
            opt.step()
        seconds += time.perf_counter() - start
        curve.append(accuracy(model, *test))
    return curve, seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each training (default 2)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--limit", type=int, default=None, help="use only this many images per split (smoke runs)")
    parser.add_argument("--onnx", type=Path, default=None, help="where to write the feature layers' .onnx "
                        "(default: a temporary file)")
    parser.add_argument("--plot", type=Path, default=None, help="save test accuracy per epoch (needs matplotlib)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    train_a, test_a = digits("train", 0, args.limit), digits("test", 0, args.limit)
    train_b, test_b = digits("train", 5, args.limit), digits("test", 5, args.limit)

    # 1. digits 0-4
    jitgrad.manual_seed(args.seed)
    features, head = feature_layers(), classifier()
    curve_a, time_a = train(nn.Sequential(features, head), train_a, test_a, args.epochs, args.lr, args.seed)
    print(f"digits 0-4: test accuracy {curve_a[-1]:.4f} after {args.epochs} epoch(s), {time_a:.1f} s")

    # 2. out through ONNX and back in
    path = args.onnx or Path(tempfile.mkdtemp()) / "features.onnx"
    jonnx.export(features, train_a[0][:2], path, input_names=["image"], output_names=["features"])
    imported = jonnx.load(path)
    print(f"exported the feature layers to {path} and imported them: {imported.num_parameters()} parameters")

    # 3. freeze the imported features, train a new classifier on 5-9
    for p in imported.parameters():
        p.requires_grad = False
    jitgrad.manual_seed(args.seed + 1)
    transfer = nn.Sequential(imported, classifier())
    curve_t, time_t = train(transfer, train_b, test_b, args.epochs, args.lr, args.seed)
    trainable = sum(p.size for p in transfer.parameters() if p.requires_grad)
    print(f"digits 5-9, transfer (frozen ONNX features, {trainable} trainable parameters): "
          f"test accuracy {curve_t[-1]:.4f}, {time_t:.1f} s")

    # 4. the same network from scratch on 5-9
    jitgrad.manual_seed(args.seed + 2)
    scratch = nn.Sequential(feature_layers(), classifier())
    curve_s, time_s = train(scratch, train_b, test_b, args.epochs, args.lr, args.seed)
    print(f"digits 5-9, from scratch ({scratch.num_parameters()} trainable parameters): "
          f"test accuracy {curve_s[-1]:.4f}, {time_s:.1f} s")
    print(f"transfer / scratch training time: {time_t / time_s:.2f}")

    if args.plot is not None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        epochs = range(1, args.epochs + 1)
        ax.plot(epochs, curve_t, "o-", label=f"transfer (frozen features), {time_t:.0f} s")
        ax.plot(epochs, curve_s, "s--", label=f"from scratch, {time_s:.0f} s")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy, digits 5-9")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    return {"accuracy_a": curve_a[-1], "transfer": curve_t, "scratch": curve_s, "time_transfer": time_t,
            "time_scratch": time_s}


if __name__ == "__main__":
    main(sys.argv[1:])
