"""Small models shared by the ONNX tests: LeNet-5 and the Keras convnet (from examples/mnist_cnn.py) and a
residual net with a custom forward."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

import jitgrad
from jitgrad import nn


def _example():
    """examples/mnist_cnn.py, imported by path: the tests export the very models the example trains."""
    path = Path(__file__).resolve().parents[2] / "examples" / "mnist_cnn.py"
    spec = importlib.util.spec_from_file_location("mnist_cnn_example_for_onnx", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_EXAMPLE = _example()
lenet5 = _EXAMPLE.lenet5
convnet = _EXAMPLE.convnet
resnet = _EXAMPLE.resnet


class Residual(nn.Module):
    """A custom forward: conv stem, one residual block, global average pooling as a mean, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x).relu()
        y = self.conv2(self.conv1(x).relu())
        x = (x + y).relu()
        x = nn.functional.avg_pool2d(x, 2)
        x = x.mean(axis=(2, 3))
        return self.head(x).log_softmax(-1)


def images(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 28, 28)).astype(np.float32)


class ModernCNN(nn.Module):
    """Issue 14's layers: BatchNorm, grouped conv, SkipConnection, Parallel + cat, ConvTranspose2d,
    global pooling, LayerNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.SkipConnection(
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.BatchNorm2d(8), nn.ReLU()), lambda a, b: a + b)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = nn.LayerNorm(12)
        self.head = nn.Linear(12, 10)

    def forward(self, x):
        x = self.block(self.stem(x))
        y = nn.functional.max_pool2d(self.up(x), 2)
        z = jitgrad.cat([x, y], axis=1)
        z = self.pool(z).reshape(z.shape[0], -1)
        return self.head(self.norm(z))
