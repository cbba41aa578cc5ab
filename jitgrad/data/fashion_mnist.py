"""Fashion-MNIST (Zalando): 60,000 training and 10,000 test images of clothing, 28x28, uint8.

A drop-in replacement for MNIST with the same file names and format, kept in
``<data dir>/fashion_mnist/``; see `jitgrad.data.mnist`.
"""

from __future__ import annotations

import os

import numpy as np

from jitgrad.data.datasets import load_idx_dataset
from jitgrad.data.mnist import FILES

__all__ = ["load", "MIRRORS", "FILES", "MD5", "CLASSES", "MEAN", "STD"]

MIRRORS: tuple[str, ...] = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

#: Published MD5 of each file (from the Fashion-MNIST repository; torchvision checks the same).
MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

CLASSES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

#: Mean and standard deviation of the training pixels scaled to [0, 1].
MEAN, STD = 0.2860, 0.3530


def load(split: str = "train", root: str | os.PathLike[str] | None = None, download: bool = True,
         *, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load a split of Fashion-MNIST.

    Same contract as `jitgrad.data.mnist.load`; labels index `CLASSES`.
    Files are looked for in ``<data dir>/fashion_mnist/``.
    """
    return load_idx_dataset("Fashion-MNIST", "fashion_mnist", FILES, MD5, MIRRORS, split, root,
                            download, progress)
