"""The networks of examples/mnist_cnn.py: LeNet-5, the Keras MNIST convnet and a small ResNet.

Kept apart from the training script so each file stays short; ``mnist_cnn.py``
re-exports them (``from mnist_cnn import lenet5`` keeps working).
"""

from __future__ import annotations

from jitgrad import nn

__all__ = ["lenet5", "convnet", "resnet", "MODELS"]


def lenet5() -> nn.Module:
    """LeNet-5 with ReLU and max-pooling (the modern variant): 44,426 parameters.

    Input ``(N, 1, 28, 28)``: 28 -conv5-> 24 -pool-> 12 -conv5-> 8 -pool-> 4,
    so the flattened features are 16 * 4 * 4 = 256.

    Each ReLU is fused into the layer before it (``activation="relu"``: applied
    as the GEMM stores its output; the same values as a separate ``ReLU``, see
    docs/performance.md, "Fused epilogues"). The layers keep the names of the
    unfused ``Sequential`` (``0`` conv1, ``3`` conv2, ``7``, ``9``, ``11`` the
    dense layers), so checkpoints load either way.
    """
    return nn.Sequential({
        "0": nn.Conv2d(1, 6, 5, activation="relu"), "2": nn.MaxPool2d(2),
        "3": nn.Conv2d(6, 16, 5, activation="relu"), "5": nn.MaxPool2d(2),
        "6": nn.Flatten(),
        "7": nn.Linear(256, 120, activation="relu"),
        "9": nn.Linear(120, 84, activation="relu"),
        "11": nn.Linear(84, 10),
    })


def convnet() -> nn.Module:
    """The Keras "simple MNIST convnet": 34,826 parameters.

    Input ``(N, 1, 28, 28)``: 28 -conv3-> 26 -pool-> 13 -conv3-> 11 -pool-> 5,
    so the flattened features are 64 * 5 * 5 = 1600.
    """
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(1600, 10),
    )


def _residual_block(c_in: int, c_out: int, stride: int) -> nn.Module:
    """conv-BN-ReLU-conv-BN added to the input (or its 1x1 projection), then ReLU: He et al.'s basic block."""
    body = nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
    )
    if stride == 1 and c_in == c_out:
        return nn.Sequential(nn.SkipConnection(body, "+"), nn.ReLU())
    shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
    return nn.Sequential(nn.Parallel("+", body, shortcut), nn.ReLU())


def resnet() -> nn.Module:
    """A small ResNet for 28x28 digits: 3x3 stem, stages of 16, 32, 64 channels (28 -> 14 -> 7), global pooling.

    Residual blocks are written with ``SkipConnection`` (identity shortcut) and
    ``Parallel`` (1x1 projection shortcut), without subclassing ``Module``.
    """
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        _residual_block(16, 16, 1),
        _residual_block(16, 32, 2),
        _residual_block(32, 64, 2),
        nn.GlobalAvgPool(), nn.Flatten(),
        nn.Linear(64, 10),
    )


MODELS = {"lenet5": lenet5, "convnet": convnet, "resnet": resnet}
