"""examples/sequence_mnist.py end to end: one short epoch of row-by-row MNIST must learn.

Real MNIST (a 2,000-image subset) when it is in the data directory; otherwise a
synthetic, learnable stand-in (the digit is a bright row at its index), so the
test always runs.
"""

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

from jitgrad import config
from jitgrad.data import mnist
from jitgrad.data.idx import write_idx

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "sequence_mnist.py"


def _import_example():
    spec = importlib.util.spec_from_file_location("sequence_mnist_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _synthetic_mnist(root: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    md5 = {}
    for split, n in (("train", 2000), ("test", 500)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 2 + 2 * labels] = 255
        (root / "mnist").mkdir(exist_ok=True)
        for name, arr in zip(mnist.FILES[split], (images, labels)):
            path = write_idx(root / "mnist" / name, arr)
            md5[name] = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setattr(mnist, "MD5", md5)


def test_one_short_epoch_learns(tmp_path, monkeypatch):
    ex = _import_example()
    folder = config.data_dir() / "mnist"
    data_dir = None
    if not all((folder / f).is_file() for f in mnist.MD5):
        _synthetic_mnist(tmp_path, monkeypatch)
        data_dir = str(tmp_path)
    history = ex.train(epochs=1, batch_size=50, lr=5e-3, hidden=64, limit=2000, data_dir=data_dir, verbose=False)
    assert len(history["test_accuracy"]) == 1
    # Chance is 10 %; 40 steps of the LSTM reach well past it.
    assert history["test_accuracy"][0] > 0.3, history
    assert np.isfinite(history["loss"][0])
