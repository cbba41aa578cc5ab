"""Datasets, loaders and transforms, on plain NumPy arrays.

This package imports nothing else of jitgrad but `jitgrad.config`: it yields
NumPy arrays, which any model (jitgrad's or another framework's) can consume.

- `idx`: read and write the IDX format (gzip or plain).
- `mnist`, `fashion_mnist`: ``load(split, root, download)`` with download
  from public mirrors, MD5 verification and a local cache.
- `DataLoader`: in-memory mini-batches, reshuffled reproducibly every epoch.
- `transforms`: `to_float`, `normalize`, `min_max_scale`, `one_hot`, `onecold`, `accuracy`.
- `augment`: `RandomShift` (random translation / padded random crop, per image, vectorised).
"""

from jitgrad.data import fashion_mnist, mnist
from jitgrad.data._download import ChecksumError, DownloadError
from jitgrad.data.datasets import DatasetNotFoundError
from jitgrad.data.idx import read_idx, write_idx
from jitgrad.data.loader import DataLoader
from jitgrad.data.augment import RandomShift, random_shift
from jitgrad.data.transforms import (Compose, Normalize, accuracy, min_max_scale, normalize, one_hot,
                                     onecold, to_float)

__all__ = ["mnist", "fashion_mnist", "read_idx", "write_idx", "DataLoader", "Compose", "Normalize",
           "to_float", "normalize", "min_max_scale", "one_hot", "onecold", "accuracy",
           "ChecksumError", "DownloadError", "DatasetNotFoundError", "RandomShift", "random_shift"]
