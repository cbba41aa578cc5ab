"""Locate, download, verify and read IDX image-classification datasets (MNIST and kin).

`mnist` and `fashion_mnist` are thin modules over `load_idx_dataset`: each
declares its mirrors, file names and published MD5s, and this module does the rest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from jitgrad import config
from jitgrad.data import _download
from jitgrad.data.idx import read_idx

__all__ = ["DatasetNotFoundError", "load_idx_dataset", "SPLITS"]

SPLITS = ("train", "test")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are neither on disk nor downloadable; the message says how to provide them."""


def _where(root: str | os.PathLike[str] | None) -> str:
    """How the data directory was chosen, for error messages."""
    if root is not None:
        return "from the root argument"
    if os.environ.get(config.DATA_ENV_VAR):
        return f"from ${config.DATA_ENV_VAR}"
    return f"the default; ${config.DATA_ENV_VAR} is not set"


def _locate(name: str, filename: str, folder: Path, md5: str, mirrors: Sequence[str],
            root, download: bool, progress: bool) -> Path:
    path = folder / filename
    if path.exists() and not path.is_file():
        # Downloading would fail on it anyway (and a directory is never what the user meant).
        raise DatasetNotFoundError(
            f"{name} file {path} is a directory (or another non-file), not the data file; remove it or "
            f"point {config.DATA_ENV_VAR} (or root=) at the directory that holds {folder.name}/{filename}"
        )
    if path.is_file():
        _download.verify_md5(path, md5)
        return path
    how = (f"put the original file there, pass root=<directory containing {folder.name}/>, "
           f"or set {config.DATA_ENV_VAR}=<that directory>")
    if not download:
        raise DatasetNotFoundError(
            f"{name} file {filename} not found in {folder} (data directory {folder.parent}, "
            f"{_where(root)}). To provide it: {how}, or call with download=True."
        )
    try:
        return _download.download([m.rstrip("/") + "/" + filename for m in mirrors], path, md5,
                                  progress=progress)
    except _download.DownloadError as exc:
        raise DatasetNotFoundError(
            f"{name} file {filename} not found in {folder} (data directory {folder.parent}, "
            f"{_where(root)}) and the download failed ({exc}). "
            f"Without network access: {how}."
        ) from exc
    except PermissionError as exc:
        raise DatasetNotFoundError(
            f"cannot write {name} to {folder} ({exc}). Pass a writable root= or set {config.DATA_ENV_VAR}."
        ) from exc


def load_idx_dataset(
    name: str,
    subdir: str,
    files: Mapping[str, tuple[str, str]],
    md5: Mapping[str, str],
    mirrors: Sequence[str],
    split: str,
    root: str | os.PathLike[str] | None,
    download: bool,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of an IDX image dataset, downloading and verifying as needed.

    Parameters
    ----------
    name : str
        Display name for messages, e.g. ``"MNIST"``.
    subdir : str
        Folder under the data directory that holds the files, e.g. ``"mnist"``.
    files : mapping
        ``split -> (images file name, labels file name)``.
    md5 : mapping
        ``file name -> published hex MD5``.
    mirrors : sequence of str
        Base URLs, tried in order.
    split : {"train", "test"}
    root : str or os.PathLike, optional
        Data directory; None resolves through `jitgrad.config.data_dir`.
    download : bool
        Fetch missing files from the mirrors.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    images : numpy.ndarray of uint8, shape (N, H, W)
    labels : numpy.ndarray of uint8, shape (N,)
    """
    if split not in files:
        raise ValueError(f"{name}: split must be one of {sorted(files)}, got {split!r}")
    folder = config.data_dir(root) / subdir
    image_file, label_file = files[split]
    paths = [_locate(name, f, folder, md5[f], mirrors, root, download, progress)
             for f in (image_file, label_file)]
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{paths[0]}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{paths[1]}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{name} {split}: {len(images)} images in {paths[0]} but {len(labels)} labels in {paths[1]}")
    return images, labels
