"""Batch transforms and label helpers on NumPy arrays: scaling, normalisation, one-hot, accuracy.

Each transform takes a whole batch and returns a new array, so a `DataLoader`
applies it once per batch, not once per sample.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from jitgrad._checks import positive_int

__all__ = ["Compose", "Normalize", "to_float", "normalize", "min_max_scale", "one_hot", "onecold",
           "accuracy", "MNIST_MEAN", "MNIST_STD"]

#: Mean and standard deviation of MNIST's training pixels scaled to [0, 1]
#: (the values torchvision's MNIST examples use).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def to_float(x: np.ndarray, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Scale ``uint8`` pixels to floats in [0, 1] (divide by 255).

    Parameters
    ----------
    x : numpy.ndarray of uint8, any shape
    dtype : float dtype
        ``float32`` (default) or ``float64``.

    Returns
    -------
    numpy.ndarray of ``dtype``, same shape as ``x``
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise TypeError(f"to_float: expected uint8 pixels, got {x.dtype}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"to_float: dtype must be a float dtype, got {dtype}")
    out = x.astype(dtype)
    out *= dtype.type(1 / 255)
    return out


class Normalize:
    """Standardise a float batch: ``(x - mean) / std``, keeping its dtype.

    Parameters
    ----------
    mean : float
    std : float
        Must be positive.
    """

    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        if not np.isfinite(mean):
            raise ValueError(f"normalize: mean must be finite, got {mean}")
        if not (np.isfinite(std) and std > 0):
            raise ValueError(f"normalize: std must be positive and finite, got {std}")
        self.mean = float(mean)
        self.std = float(std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"normalize: expected a float array (apply to_float first), got {x.dtype}")
        # Multiply by 1/std in the array's dtype: float32 stays float32.
        return (x - x.dtype.type(self.mean)) * x.dtype.type(1 / self.std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def normalize(mean: float = MNIST_MEAN, std: float = MNIST_STD) -> Normalize:
    """A transform ``x -> (x - mean) / std``; the defaults are MNIST's pixel mean and std in [0, 1].

    After `to_float`, this makes MNIST's training pixels zero-mean, unit-variance,
    which keeps the first layer's pre-activations well scaled at initialisation.
    """
    return Normalize(mean, std)


def min_max_scale(x: np.ndarray, low: float = 0.0, high: float = 1.0, *, per_sample: bool = False) -> np.ndarray:
    """Rescale linearly so the minimum maps to ``low`` and the maximum to ``high``.

    Parameters
    ----------
    x : numpy.ndarray
        Any numeric array; integers come back as ``float32``.
    low, high : float
        Target range, ``low < high``.
    per_sample : bool
        Use each sample's own min and max (over all axes but the first)
        instead of the whole batch's.

    Returns
    -------
    numpy.ndarray, same shape as ``x``
        A constant input (``max == min``) maps to ``low``.
    """
    if not low < high:
        raise ValueError(f"min_max_scale: need low < high, got low={low}, high={high}")
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"min_max_scale: expected a numeric array, got {x.dtype}")
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    if per_sample and x.ndim < 2:
        raise ValueError(f"min_max_scale: per_sample needs a batch of at least 2 dimensions, got shape {x.shape}")
    axes = tuple(range(1, x.ndim)) if per_sample else None
    lo = x.min(axis=axes, keepdims=True)
    span = x.max(axis=axes, keepdims=True) - lo
    # Constant inputs would divide by zero; they map to `low` instead.
    scale = np.where(span > 0, (high - low) / np.where(span > 0, span, 1), 0).astype(x.dtype)
    return ((x - lo) * scale + x.dtype.type(low)).astype(x.dtype, copy=False)


def one_hot(labels: np.ndarray, num_classes: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Encode integer labels as one-hot rows (Flux's ``onehotbatch``, batch first).

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (N,)
        Values in ``[0, num_classes)``.
    num_classes : int
    dtype : dtype
        Of the result.

    Returns
    -------
    numpy.ndarray, shape (N, num_classes)
        Row ``i`` is 1 at column ``labels[i]``, 0 elsewhere.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got {labels.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"one_hot: labels must be 1-D, got shape {labels.shape}")
    num_classes = positive_int("one_hot", "num_classes", num_classes)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: labels must lie in [0, {num_classes}), "
                         f"got values in [{labels.min()}, {labels.max()}]")
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


def onecold(scores: np.ndarray, labels: Sequence | None = None) -> np.ndarray:
    """Inverse of `one_hot`: the index of the largest score of each row (Flux's ``onecold``).

    Parameters
    ----------
    scores : numpy.ndarray, shape (N, C)
        Probabilities, logits or one-hot rows.
    labels : sequence of length C, optional
        Map each index to ``labels[index]``.

    Returns
    -------
    numpy.ndarray, shape (N,)
        int64 indices (ties: the first), or the chosen labels.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"onecold: scores must be 2-D (N, C), got shape {scores.shape}")
    idx = scores.argmax(axis=1)
    if labels is None:
        return idx
    if len(labels) != scores.shape[1]:
        raise ValueError(f"onecold: {len(labels)} labels for {scores.shape[1]} classes")
    return np.asarray(list(labels))[idx]  # list(): a string of labels is a sequence too


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest logit is at the true class.

    Parameters
    ----------
    logits : numpy.ndarray, shape (N, C)
        Scores (logits or probabilities), N >= 1.
    labels : numpy.ndarray, shape (N,) of int, or (N, C) one-hot

    Returns
    -------
    float in [0, 1]
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"accuracy: logits must be 2-D (N, C) with N >= 1, got shape {logits.shape}")
    if labels.ndim == 2:
        labels = onecold(labels)
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"accuracy: labels of shape {labels.shape} do not match logits of shape {logits.shape}")
    return float(np.mean(logits.argmax(axis=1) == labels))


class Compose:
    """Apply transforms left to right: ``Compose(to_float, normalize())(x)``."""

    def __init__(self, *transforms: Callable[[np.ndarray], np.ndarray]) -> None:
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {type(t).__name__}")
        self.transforms = transforms

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        names = ", ".join(getattr(t, "__name__", None) or repr(t) for t in self.transforms)
        return f"Compose({names})"
