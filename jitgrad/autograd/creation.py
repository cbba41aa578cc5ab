"""Making tensors: ``zeros``, ``ones``, ``randn``, ``rand``, ``arange`` and the global random generator.

One ``numpy.random.Generator`` serves every random draw of jitgrad that is
not given its own (``randn``, ``rand``, dropout masks); ``manual_seed``
reseeds it, so a seeded run is reproducible end to end.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jitgrad import config
from jitgrad.autograd.tensor import Tensor

__all__ = ["zeros", "ones", "full", "zeros_like", "ones_like", "randn", "rand", "arange", "manual_seed",
           "default_generator"]

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Reseed the global generator used by ``randn``, ``rand`` and dropout."""
    global _generator
    _generator = np.random.default_rng(seed)


def default_generator() -> np.random.Generator:
    """The global ``numpy.random.Generator`` (reseeded by ``manual_seed``)."""
    return _generator


def _shape(shape: tuple[Any, ...]) -> tuple[int, ...]:
    # Both zeros(2, 3) and zeros((2, 3)), as PyTorch.
    if len(shape) == 1 and isinstance(shape[0], Sequence):
        return tuple(int(s) for s in shape[0])
    return tuple(int(s) for s in shape)


def _dtype(dtype: Any) -> np.dtype:
    return config.default_dtype if dtype is None else np.dtype(dtype)


def zeros(*shape: int | Sequence[int], dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros, ``dtype`` default ``config.default_dtype``."""
    return Tensor(np.zeros(_shape(shape), dtype=_dtype(dtype)), requires_grad=requires_grad)


def ones(*shape: int | Sequence[int], dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones, ``dtype`` default ``config.default_dtype``."""
    return Tensor(np.ones(_shape(shape), dtype=_dtype(dtype)), requires_grad=requires_grad)


def full(shape: Sequence[int], value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``shape`` filled with ``value``."""
    return Tensor(np.full(_shape((shape,)), value, dtype=_dtype(dtype)), requires_grad=requires_grad)


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    """Zeros of ``t``'s shape and dtype."""
    return Tensor(np.zeros(t.shape, dtype=t.dtype), requires_grad=requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    """Ones of ``t``'s shape and dtype."""
    return Tensor(np.ones(t.shape, dtype=t.dtype), requires_grad=requires_grad)


def randn(*shape: int | Sequence[int], dtype: Any = None, requires_grad: bool = False,
          generator: np.random.Generator | None = None) -> Tensor:
    """Standard-normal samples from ``generator`` (default: the global one)."""
    rng = _generator if generator is None else generator
    data = rng.standard_normal(_shape(shape)).astype(_dtype(dtype), copy=False)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape: int | Sequence[int], dtype: Any = None, requires_grad: bool = False,
         generator: np.random.Generator | None = None) -> Tensor:
    """Uniform samples in ``[0, 1)`` from ``generator`` (default: the global one)."""
    rng = _generator if generator is None else generator
    data = rng.random(_shape(shape)).astype(_dtype(dtype), copy=False)
    return Tensor(data, requires_grad=requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None) -> Tensor:
    """Evenly spaced values in ``[start, stop)``: int64 for int arguments, else the default float."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
        dtype = np.int64 if is_int else config.default_dtype
    return Tensor(np.arange(start, stop, step, dtype=dtype))
