"""The end-to-end models (LeNet-5, Keras convnet), one training step and one inference batch.

A model is written once, as a list of layer specs, and built with any module
that has PyTorch's layer names and signatures: ``jitgrad.nn`` here, and
``torch.nn`` in ``bench/report.py``, so the two frameworks are timed on the
very same architecture.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .common import BATCH, SEED, cuda_ready

LayerSpec = tuple[str, tuple[Any, ...], dict[str, Any]]

# Both models are those of examples/mnist_cnn.py, layer for layer.

#: LeNet-5 with ReLU and max-pooling on 28x28 MNIST (44,426 parameters).
LENET5: list[LayerSpec] = [
    ("Conv2d", (1, 6, 5), {}), ("ReLU", (), {}), ("MaxPool2d", (2,), {}),
    ("Conv2d", (6, 16, 5), {}), ("ReLU", (), {}), ("MaxPool2d", (2,), {}),
    ("Flatten", (), {}),
    ("Linear", (256, 120), {}), ("ReLU", (), {}),
    ("Linear", (120, 84), {}), ("ReLU", (), {}),
    ("Linear", (84, 10), {}),
]

#: The keras.io "Simple MNIST convnet" (34,826 parameters).
KERAS_CONVNET: list[LayerSpec] = [
    ("Conv2d", (1, 32, 3), {}), ("ReLU", (), {}), ("MaxPool2d", (2,), {}),
    ("Conv2d", (32, 64, 3), {}), ("ReLU", (), {}), ("MaxPool2d", (2,), {}),
    ("Flatten", (), {}), ("Dropout", (0.5,), {}),
    ("Linear", (1600, 10), {}),
]

MODELS: dict[str, list[LayerSpec]] = {"lenet5": LENET5, "keras-convnet": KERAS_CONVNET}
#: Backends of the end-to-end benchmarks: the autograd runs on jitgrad's own
#: kernels only (the NumPy reference is a kernel baseline, not a device).
DEVICES: tuple[str, ...] = ("cpu", "cuda")


def build(nn: Any, model: str) -> Any:
    """``nn.Sequential`` of the layers of ``model``, built from the module ``nn``."""
    return nn.Sequential(*(getattr(nn, cls)(*args, **kwargs) for cls, args, kwargs in MODELS[model]))


def batch_data(batch: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    """A seeded MNIST-shaped batch: images (batch, 1, 28, 28) float32, labels (batch,) int64."""
    rng = np.random.default_rng(SEED)
    images = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, size=batch).astype(np.int64)
    return images, labels


def _jitgrad_setup(model: str, device: str, batch: int) -> tuple[Any, Any, Any, Callable[[], None]]:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if device == "cuda":
        cuda_ready()
        from numba import cuda

        sync = cuda.synchronize
    import jitgrad
    from jitgrad import nn

    jitgrad.manual_seed(SEED)
    net = build(nn, model).to(device)
    images, labels = batch_data(batch)
    x, y = jitgrad.tensor(images).to(device), jitgrad.tensor(labels).to(device)
    return net, x, y, sync


def train_step(model: str, device: str = "cpu", batch: int = BATCH) -> Callable[[], None]:
    """A callable running one jitgrad training step (forward, cross-entropy, backward, Adam).

    Not yet called: the first call compiles or loads the kernels.
    """
    from jitgrad.nn.functional import cross_entropy
    from jitgrad.optim import Adam

    net, x, y, sync = _jitgrad_setup(model, device, batch)
    net.train()
    optimizer = Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad()
        loss = cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        sync()

    return step


def inference(model: str, device: str = "cpu", batch: int = BATCH) -> Callable[[], None]:
    """A callable running one jitgrad forward pass in eval mode without autograd."""
    import jitgrad

    net, x, _, sync = _jitgrad_setup(model, device, batch)
    net.eval()

    def forward() -> None:
        with jitgrad.no_grad():
            net(x)
        sync()

    return forward
