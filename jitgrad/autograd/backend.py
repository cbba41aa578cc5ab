"""Per-device backends: the one door through which autograd ops touch arrays.

Every op in :mod:`jitgrad.autograd.ops` reaches its arrays only through a
backend object (``ctx.backend`` inside a :class:`~jitgrad.autograd.Function`),
never through NumPy directly. The CPU backend below is NumPy plus the
``@njit`` kernels of :mod:`jitgrad.kernels.cpu`; a CUDA backend is another
object with the same attributes, operating on Numba device arrays and the
``@cuda.jit`` kernels, plugged in with :func:`register_backend`. The engine
and every op then run unchanged on the new device.

The interface a backend implements is :class:`~jitgrad.autograd.backend_protocol.Backend`
(a ``typing.Protocol``); both backends are held to it by
``tests/autograd/test_backend_protocol.py``.

Backends are found by name (:func:`get_backend`) and by array type
(:func:`backend_for`) in one registry. A backend whose module is costly to
import registers lazily (:func:`register_lazy_backend`): its module is
imported the first time its name is asked for or one of its arrays is seen.
CUDA is registered that way below, so ``import jitgrad`` never imports
``numba.cuda`` nor initialises a GPU.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from jitgrad import config
from jitgrad._startup import gc_paused
from jitgrad.kernels._validate import normalize_axes

__all__ = ["CPUBackend", "register_backend", "register_lazy_backend", "get_backend", "backend_for",
           "find_backend", "is_backend_array", "claim_lazily", "cpu"]


def _load_cpu_kernels() -> Any:
    """``jitgrad.kernels.cpu``, imported (with Numba) with the garbage collector paused: the
    objects this makes are the process's for good (see :mod:`jitgrad._startup`). Its kernels load
    from the cache without Numba's compiler set-up (``kernels/cpu/_cache_load``); a compile makes it."""
    with gc_paused():
        return importlib.import_module("jitgrad.kernels.cpu")


class CPUBackend:
    """NumPy arrays, ``jitgrad.kernels.cpu`` kernels.

    Elementwise arithmetic, reductions and reshapes are NumPy's compiled
    loops (jitgrad hand-writes the kernels a network's cost lives in, not
    these; on the GPU they are device kernels in ``kernels/cuda/`` so a step
    never leaves the device); everything with a derivative worth a
    kernel (matmul, conv, pooling, activations, softmax, losses) calls the
    ``@njit`` kernels through ``self.kernels``.
    """

    name = "cpu"
    array_type = np.ndarray

    def __init__(self) -> None:
        self._kernels = None

    @property
    def kernels(self) -> Any:
        # Imported on first use: importing autograd should not pay for numba.
        if self._kernels is None:
            self._kernels = _load_cpu_kernels()
        return self._kernels

    # --- creation and transfer ------------------------------------------
    @staticmethod
    def asarray(data: Any, dtype: Any = None) -> np.ndarray:
        return np.asarray(data, dtype=dtype)

    @staticmethod
    def zeros(shape: Any, dtype: Any = None) -> np.ndarray:
        return np.zeros(shape, dtype=config.default_dtype if dtype is None else dtype)

    @staticmethod
    def ones(shape: Any, dtype: Any = None) -> np.ndarray:
        return np.ones(shape, dtype=config.default_dtype if dtype is None else dtype)

    @staticmethod
    def full(shape: Any, value: Any, dtype: Any = None) -> np.ndarray:
        return np.full(shape, value, dtype=config.default_dtype if dtype is None else dtype)

    @staticmethod
    def ascontiguousarray(a: Any) -> np.ndarray:
        # np.ascontiguousarray makes a 0-d array 1-D (shape (1,)); a scalar loss's
        # gradient must stay 0-d. The flag test is also the cheap common case.
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)

    @staticmethod
    def copy(a: np.ndarray) -> np.ndarray:
        return np.array(a, copy=True)

    @staticmethod
    def astype(a: np.ndarray, dtype: Any) -> np.ndarray:
        return a.astype(dtype)

    @staticmethod
    def from_numpy(a: np.ndarray) -> np.ndarray:
        return a

    @staticmethod
    def to_numpy(a: np.ndarray) -> np.ndarray:
        return a

    @staticmethod
    def owns_data(a: np.ndarray) -> bool:
        # A view (reshape, broadcast_to) has a base; a fresh result has none.
        return a.base is None

    # --- elementwise (NumPy ufuncs; written out so that signatures can be compared) ---
    @staticmethod
    def add(a: Any, b: Any) -> np.ndarray:
        return np.add(a, b)

    @staticmethod
    def subtract(a: Any, b: Any) -> np.ndarray:
        return np.subtract(a, b)

    @staticmethod
    def multiply(a: Any, b: Any) -> np.ndarray:
        return np.multiply(a, b)

    @staticmethod
    def divide(a: Any, b: Any) -> np.ndarray:
        return np.divide(a, b)

    @staticmethod
    def power(a: Any, b: Any) -> np.ndarray:
        return np.power(a, b)

    @staticmethod
    def maximum(a: Any, b: Any) -> np.ndarray:
        return np.maximum(a, b)

    @staticmethod
    def negative(a: Any) -> np.ndarray:
        return np.negative(a)

    @staticmethod
    def exp(a: Any) -> np.ndarray:
        return np.exp(a)

    @staticmethod
    def log(a: Any) -> np.ndarray:
        # log(0) = -inf without a warning, as in PyTorch (BCE clamps it to -100).
        with np.errstate(divide="ignore"):
            return np.log(a)

    @staticmethod
    def log1p(a: Any) -> np.ndarray:
        return np.log1p(a)

    @staticmethod
    def sqrt(a: Any) -> np.ndarray:
        return np.sqrt(a)

    @staticmethod
    def abs(a: Any) -> np.ndarray:
        return np.abs(a)

    @staticmethod
    def sign(a: Any) -> np.ndarray:
        return np.sign(a)

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, a, b)

    @staticmethod
    def equal(a: Any, b: Any) -> np.ndarray:
        return np.equal(a, b)

    @staticmethod
    def not_equal(a: Any, b: Any) -> np.ndarray:
        return np.not_equal(a, b)

    @staticmethod
    def less(a: Any, b: Any) -> np.ndarray:
        return np.less(a, b)

    @staticmethod
    def less_equal(a: Any, b: Any) -> np.ndarray:
        return np.less_equal(a, b)

    @staticmethod
    def greater(a: Any, b: Any) -> np.ndarray:
        return np.greater(a, b)

    @staticmethod
    def greater_equal(a: Any, b: Any) -> np.ndarray:
        return np.greater_equal(a, b)

    # --- reductions ------------------------------------------------------
    @staticmethod
    def sum(a: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        return np.asarray(np.sum(a, axis=axis, keepdims=keepdims))

    @staticmethod
    def max(a: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        return np.asarray(np.max(a, axis=axis, keepdims=keepdims))

    @staticmethod
    def argmax(a: np.ndarray, axis: Any = None) -> np.ndarray:
        return np.asarray(np.argmax(a, axis=axis))

    @staticmethod
    def first_max_mask(a: np.ndarray, axis: Any) -> np.ndarray:
        """Boolean mask of ``a``'s shape, True at the first maximum of each reduced slice.

        The reduced axes are moved last and flattened so one ``argmax`` (which
        picks the first maximum in row-major order, as PyTorch does for ties)
        serves every combination of axes.
        """
        axes = normalize_axes(axis, a.ndim)
        last = tuple(range(a.ndim - len(axes), a.ndim))
        moved = np.moveaxis(a, axes, last)
        flat = moved.reshape(moved.shape[: a.ndim - len(axes)] + (-1,))
        mask = np.zeros(flat.shape, dtype=bool)
        np.put_along_axis(mask, flat.argmax(axis=-1)[..., None], True, axis=-1)
        return np.moveaxis(mask.reshape(moved.shape), last, axes)

    @staticmethod
    def sum_to_shape(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Sum a broadcast gradient ``g`` back down to ``shape`` (NumPy broadcasting rules)."""
        lead = g.ndim - len(shape)
        if lead < 0:
            return np.broadcast_to(g, shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, size in enumerate(shape) if size == 1 and g.shape[lead + i] != 1
        )
        if axes:
            g = g.sum(axis=axes, keepdims=True)
        return g.reshape(shape)

    # --- layout ----------------------------------------------------------
    @staticmethod
    def reshape(a: np.ndarray, shape: Any) -> np.ndarray:
        return np.reshape(a, shape)

    @staticmethod
    def transpose(a: np.ndarray, axes: Any = None) -> np.ndarray:
        return np.transpose(a, axes)

    @staticmethod
    def expand_dims(a: np.ndarray, axis: Any) -> np.ndarray:
        return np.expand_dims(a, axis)

    @staticmethod
    def broadcast_to(a: Any, shape: Any) -> np.ndarray:
        return np.broadcast_to(a, shape)

    @staticmethod
    def getitem(a: np.ndarray, index: Any) -> np.ndarray:
        return np.asarray(a[index])

    @staticmethod
    def getitem_backward(g: np.ndarray, index: Any, shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(shape, dtype=g.dtype)
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(p, (list, np.ndarray)) for p in parts):
            # Advanced indexing may repeat an element: add.at accumulates repeats.
            np.add.at(out, index, g)
        else:
            # Basic indexing (ints, slices) never repeats: plain assignment is faster.
            out[index] = g
        return out

    @staticmethod
    def matmul_operand(a: np.ndarray) -> tuple[np.ndarray, bool]:
        if a.flags.c_contiguous:
            return a, False
        if a.flags.f_contiguous:
            # ``a`` is the transpose of a C-contiguous array (x.T): use the kernel flag.
            return a.T, True
        return np.ascontiguousarray(a), False

    # --- random ----------------------------------------------------------
    @staticmethod
    def dropout_mask(shape: Any, p: float, dtype: Any, rng: np.random.Generator) -> np.ndarray:
        keep = rng.random(shape) >= p
        return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)

    def __repr__(self) -> str:
        return "CPUBackend()"


cpu = CPUBackend()

_BY_NAME: dict[str, Any] = {"cpu": cpu}
_BY_TYPE: dict[type, Any] = {np.ndarray: cpu}


@dataclass(frozen=True)
class _LazyBackend:
    """A backend known by name whose module is imported on first use."""

    module: str  #: imported on first use; its ``register()`` registers the backend and returns it
    recognizes: Callable[[Any], bool]  #: tells this backend's arrays apart without importing ``module``


_LAZY: dict[str, _LazyBackend] = {}


def register_backend(backend: Any, array_types: tuple[type, ...] = ()) -> None:
    """Make ``backend`` the handler of ``backend.name`` and of arrays of ``array_types``.

    Parameters
    ----------
    backend : Backend
        An object with the members of :class:`~jitgrad.autograd.backend_protocol.Backend`.
    array_types : tuple of type
        Array classes that live on this backend's device (besides
        ``backend.array_type``).
    """
    _BY_NAME[backend.name] = backend
    _LAZY.pop(backend.name, None)
    for t in (backend.array_type, *array_types):
        _BY_TYPE[t] = backend


def register_lazy_backend(name: str, module: str, recognizes: Callable[[Any], bool]) -> None:
    """Announce a backend whose ``module`` is imported only when it is first needed.

    Parameters
    ----------
    name : str
        The device name (``get_backend(name)`` imports ``module``).
    module : str
        Dotted module name; its ``register()`` registers the backend (with
        :func:`register_backend`) and returns it, or raises ``RuntimeError``
        saying what is missing (no GPU, no driver).
    recognizes : callable
        ``recognizes(array)`` is True for this device's arrays and must not
        import ``module`` (``backend_for`` calls it for arrays it does not know).
    """
    if name not in _BY_NAME:
        _LAZY[name] = _LazyBackend(module, recognizes)


def _load(name: str) -> Any:
    with gc_paused():  # numba.cuda's long-lived objects, like the CPU kernels' (see jitgrad._startup)
        module = importlib.import_module(_LAZY[name].module)
    return module.register()


def _device_name(device: Any) -> Any:
    """``"cuda:0"`` means ``"cuda"``: one device per backend, its index accepted and ignored."""
    if isinstance(device, str) and ":" in device:
        name, _, index = device.partition(":")
        if index.isdigit():
            return name
    return device


def get_backend(device: str) -> Any:
    """The backend registered for ``device`` (``"cpu"``, ``"cuda"``; ``"cuda:0"`` means ``"cuda"``)."""
    device = _device_name(device)
    backend = _BY_NAME.get(device)
    if backend is not None:
        return backend
    if device in _LAZY:
        return _load(device)
    known = ", ".join(sorted({*_BY_NAME, *_LAZY}))
    raise ValueError(f"unknown device {device!r}; registered devices: {known}")


def find_backend(array: Any) -> Any:
    """The backend that owns ``array``, or None (by exact type, then isinstance, then lazy backends)."""
    backend = _BY_TYPE.get(type(array))
    if backend is not None:
        return backend
    for t, b in _BY_TYPE.items():
        if isinstance(array, t):
            _BY_TYPE[type(array)] = b
            return b
    if claim_lazily(array):
        # An array made outside jitgrad before anything asked for this device.
        return find_backend(array)
    return None


def backend_for(array: Any) -> Any:
    """The backend that owns ``array``; ``TypeError`` when no backend holds arrays of its type."""
    backend = _BY_TYPE.get(type(array))
    if backend is not None:
        return backend
    backend = find_backend(array)
    if backend is None:
        raise TypeError(f"no jitgrad backend holds arrays of type {type(array).__name__}")
    return backend


def claim_lazily(array: Any) -> bool:
    """True when a lazily registered backend recognizes ``array`` (its module is then loaded)."""
    for name, lazy in list(_LAZY.items()):
        if lazy.recognizes(array):
            _load(name)
            return True
    return False


def is_backend_array(array: Any) -> bool:
    """True when ``array``'s exact type belongs to a registered backend (the hot-path check)."""
    return type(array) in _BY_TYPE


def _is_numba_device_array(array: Any) -> bool:
    """A Numba device array (real or simulated), recognised without importing numba."""
    return hasattr(array, "copy_to_host") and not isinstance(array, np.ndarray)


register_lazy_backend("cuda", "jitgrad.autograd.cuda_backend", _is_numba_device_array)
