"""Random batch augmentation on NumPy arrays: `RandomShift` (random translation / padded random crop).

Like the other transforms, each call takes a whole batch and is vectorised:
one gather for the batch, no Python loop over images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad._checks import check_int

__all__ = ["RandomShift", "random_shift"]


class RandomShift:
    """Translate every image of a batch by its own random whole-pixel offset, filling uncovered pixels.

    Equivalent to torchvision's ``RandomCrop(size, padding=max_shift, fill=fill)``
    applied per image: each image is padded by ``max_shift`` pixels of ``fill``
    on every side and cropped back to its size at a uniformly random offset,
    so it moves by ``dy, dx`` drawn independently from ``-max_shift..max_shift``.

    Parameters
    ----------
    max_shift : int >= 0
        Largest shift in pixels along each axis (0 returns the batch unchanged, copied).
    fill : float
        Value of the uncovered pixels (0 is MNIST's background before normalisation).
    seed : int, numpy.random.Generator or None
        Source of the offsets; an int makes the sequence of batches reproducible.

    Call
    ----
    ``shift(x)`` with ``x`` of shape ``(N, H, W)`` or ``(N, C, H, W)`` (any dtype)
    returns a new array of the same shape and dtype; the channels of one image move together.
    """

    def __init__(self, max_shift: int = 2, fill: float = 0, seed: Any = None) -> None:
        max_shift = check_int("RandomShift", "max_shift", max_shift, minimum=0)
        if not np.isfinite(fill):
            raise ValueError(f"RandomShift: fill must be finite, got {fill!r}")
        self.max_shift = int(max_shift)
        self.fill = fill
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim not in (3, 4):
            raise ValueError(f"RandomShift: expected a batch of shape (N, H, W) or (N, C, H, W), got {x.shape}")
        s = self.max_shift
        if s == 0 or x.shape[0] == 0:
            return x.copy()
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        lead = x.shape[1:-2]  # () or (C,)
        padded = np.full((n, *lead, h + 2 * s, w + 2 * s), self.fill, dtype=x.dtype)
        padded[..., s:s + h, s:s + w] = x
        # Crop origin in the padded image: s + shift, i.e. 0..2s; the content moves by -shift.
        oy = self.rng.integers(0, 2 * s + 1, size=n)
        ox = self.rng.integers(0, 2 * s + 1, size=n)
        rows = oy[:, None] + np.arange(h)  # (N, H)
        cols = ox[:, None] + np.arange(w)  # (N, W)
        if not lead:
            return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        # Put the channel axis last for the gather, then back.
        moved = np.moveaxis(padded, 1, -1)  # (N, H+2s, W+2s, C)
        out = moved[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        return np.ascontiguousarray(np.moveaxis(out, -1, 1))

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift}, fill={self.fill})"


def random_shift(max_shift: int = 2, fill: float = 0, seed: Any = None) -> RandomShift:
    """A transform that shifts each image of a batch by up to ``max_shift`` pixels (see `RandomShift`)."""
    return RandomShift(max_shift, fill, seed)
