"""MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28, uint8.

The four original gzip IDX files live in ``<data dir>/mnist/`` under their
original names; the data directory is ``root``, else ``$JITGRAD_DATA``, else
``~/.cache/jitgrad`` (see `jitgrad.config.data_dir`).
"""

from __future__ import annotations

import os

import numpy as np

from jitgrad.data.datasets import load_idx_dataset

__all__ = ["load", "MIRRORS", "FILES", "MD5", "CLASSES", "MEAN", "STD"]

#: Public mirrors, tried in order (yann.lecun.com no longer serves the files reliably).
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: Published MD5 of each file (the values torchvision checks).
MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

#: Mean and standard deviation of the training pixels scaled to [0, 1].
MEAN, STD = 0.1307, 0.3081


def load(split: str = "train", root: str | os.PathLike[str] | None = None, download: bool = True,
         *, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load a split of MNIST.

    Parameters
    ----------
    split : {"train", "test"}
    root : str or os.PathLike, optional
        Data directory holding ``mnist/``; default ``$JITGRAD_DATA`` or ``~/.cache/jitgrad``.
    download : bool
        Download missing files from `MIRRORS` (verified against `MD5`).
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    images : numpy.ndarray of uint8, shape (N, 28, 28)
        N = 60000 for ``"train"``, 10000 for ``"test"``.
    labels : numpy.ndarray of uint8, shape (N,)
        Digits 0 to 9.

    Raises
    ------
    DatasetNotFoundError
        Files missing and not downloadable; the message says where they were
        looked for and how to provide them.
    ChecksumError
        A local or downloaded file's MD5 is wrong.
    ValueError
        A bad ``split``, or a malformed file.
    """
    return load_idx_dataset("MNIST", "mnist", FILES, MD5, MIRRORS, split, root, download, progress)
