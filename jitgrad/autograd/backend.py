"""Per-device backends: the one door through which autograd ops touch arrays.

Every op in :mod:`jitgrad.autograd.ops` reaches its arrays only through a
backend object (``ctx.backend`` inside a :class:`~jitgrad.autograd.Function`),
never through NumPy directly. The CPU backend below is NumPy plus the
``@njit`` kernels of :mod:`jitgrad.kernels.cpu`; a CUDA backend is another
object with the same attributes, operating on Numba device arrays and the
``@cuda.jit`` kernels, plugged in with :func:`register_backend`. The engine
and every op then run unchanged on the new device.

The interface a backend implements
----------------------------------
Attributes
    ``name`` (``"cpu"``, ``"cuda"``: the value of ``Tensor.device``),
    ``array_type`` (the exact array class: ``numpy.ndarray``, ``DeviceNDArray``),
    ``kernels`` (a module with the functions of ``docs/kernel-api.md``:
    ``matmul``, ``conv2d``, ``conv2d_backward_input``, ``conv2d_backward_weight``,
    ``max_pool2d``, ``max_pool2d_backward``, ``avg_pool2d``, ``avg_pool2d_backward``,
    ``relu`` ... ``softplus`` and their ``*_backward``, ``softmax``,
    ``softmax_backward``, ``log_softmax``, ``log_softmax_backward``,
    ``softmax_cross_entropy``, ``softmax_cross_entropy_backward`` and the
    ``*_update`` optimizers).

Creation and transfer
    ``asarray(data, dtype=None)`` (no copy when ``data`` already is an array of
    that dtype), ``copy(a)``, ``astype(a, dtype)``, ``zeros(shape, dtype)``,
    ``ones(shape, dtype)``, ``full(shape, value, dtype)``,
    ``from_numpy(a)`` (host NumPy array to this device),
    ``to_numpy(a)`` (this device to a host NumPy array),
    ``owns_data(a)`` (True only when ``a`` shares its memory with no other
    array; return False when unsure: the engine then copies a gradient before
    storing it in ``.grad``).

Elementwise, NumPy broadcasting; operands may be arrays or Python scalars
    ``add``, ``subtract``, ``multiply``, ``divide``, ``power``, ``negative``,
    ``exp``, ``log``, ``log1p``, ``sqrt``, ``abs``, ``sign``, ``maximum``,
    ``where(cond, a, b)``, ``equal``, ``not_equal``, ``less``, ``less_equal``,
    ``greater``, ``greater_equal``.

Reductions (``axis``: None, an int or a tuple of ints)
    ``sum(a, axis=None, keepdims=False)``, ``max(a, axis=None, keepdims=False)``,
    ``argmax(a, axis=None)``, ``first_max_mask(a, axis)`` (boolean array of
    ``a``'s shape, True at the first maximum of every reduced slice),
    ``sum_to_shape(g, shape)`` (sum a broadcast gradient back to ``shape``).

Layout
    ``reshape(a, shape)``, ``transpose(a, axes)``, ``expand_dims(a, axis)``,
    ``broadcast_to(a, shape)``, ``ascontiguousarray(a)``, ``getitem(a, index)``,
    ``getitem_backward(g, index, shape)`` (zeros of ``shape`` with ``g``
    scatter-added at ``index``; repeated integer indices accumulate),
    ``matmul_operand(a)`` (returns ``(array, transposed)``: a C-contiguous
    array and whether ``a`` is its transpose, so the ``matmul`` kernel's
    ``trans_*`` flags replace a copy).

Random
    ``dropout_mask(shape, p, dtype, rng)``: ``1 / (1 - p)`` with probability
    ``1 - p``, else 0, drawn from the ``numpy.random.Generator`` ``rng``.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

__all__ = ["CPUBackend", "register_backend", "get_backend", "backend_for", "cpu"]


def _normalize_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """Axes as a tuple of non-negative ints (``None`` means every axis)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        return tuple(int(a) % ndim for a in axis)
    return (int(axis) % ndim,)


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
            self._kernels = importlib.import_module("jitgrad.kernels.cpu")
        return self._kernels

    # --- creation and transfer ------------------------------------------
    asarray = staticmethod(np.asarray)
    zeros = staticmethod(np.zeros)
    ones = staticmethod(np.ones)
    full = staticmethod(np.full)

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

    # --- elementwise -----------------------------------------------------
    add = staticmethod(np.add)
    subtract = staticmethod(np.subtract)
    multiply = staticmethod(np.multiply)
    divide = staticmethod(np.divide)
    power = staticmethod(np.power)
    negative = staticmethod(np.negative)
    exp = staticmethod(np.exp)

    @staticmethod
    def log(a: Any) -> np.ndarray:
        # log(0) = -inf without a warning, as in PyTorch (BCE clamps it to -100).
        with np.errstate(divide="ignore"):
            return np.log(a)

    log1p = staticmethod(np.log1p)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    maximum = staticmethod(np.maximum)
    where = staticmethod(np.where)
    equal = staticmethod(np.equal)
    not_equal = staticmethod(np.not_equal)
    less = staticmethod(np.less)
    less_equal = staticmethod(np.less_equal)
    greater = staticmethod(np.greater)
    greater_equal = staticmethod(np.greater_equal)

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
        axes = _normalize_axes(axis, a.ndim)
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
    reshape = staticmethod(np.reshape)
    transpose = staticmethod(np.transpose)
    expand_dims = staticmethod(np.expand_dims)
    broadcast_to = staticmethod(np.broadcast_to)

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
    def dropout_mask(shape: tuple[int, ...], p: float, dtype: Any, rng: np.random.Generator) -> np.ndarray:
        keep = rng.random(shape) >= p
        return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)

    def __repr__(self) -> str:
        return "CPUBackend()"


cpu = CPUBackend()

_BY_NAME: dict[str, Any] = {"cpu": cpu}
_BY_TYPE: dict[type, Any] = {np.ndarray: cpu}


def register_backend(backend: Any, array_types: tuple[type, ...] = ()) -> None:
    """Make ``backend`` the handler of ``backend.name`` and of arrays of ``array_types``.

    Parameters
    ----------
    backend : object
        An object with the attributes listed in this module's docstring.
    array_types : tuple of type
        Array classes that live on this backend's device (besides
        ``backend.array_type``).
    """
    _BY_NAME[backend.name] = backend
    for t in (backend.array_type, *array_types):
        _BY_TYPE[t] = backend


def _looks_like_device_array(array: Any) -> bool:
    """A Numba device array (real or simulated), recognised without importing numba."""
    return hasattr(array, "copy_to_host") and not isinstance(array, np.ndarray)


def _load_cuda() -> Any:
    """Register the CUDA backend on first use (``RuntimeError`` naming what is missing without a GPU).

    Lazy so that ``import jitgrad`` never imports numba.cuda nor initialises a GPU.
    """
    from jitgrad.autograd.cuda_backend import register

    return register()


def get_backend(device: str) -> Any:
    """The backend registered for ``device`` (``"cpu"``, ``"cuda"``; ``"cuda:0"`` means ``"cuda"``)."""
    if isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
        device = "cuda"
    if device == "cuda" and device not in _BY_NAME:
        return _load_cuda()
    try:
        return _BY_NAME[device]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise ValueError(f"unknown device {device!r}; registered devices: {known}") from None


def backend_for(array: Any) -> Any:
    """The backend that owns ``array`` (looked up by its exact type, then by isinstance)."""
    backend = _BY_TYPE.get(type(array))
    if backend is not None:
        return backend
    for t, b in _BY_TYPE.items():
        if isinstance(array, t):
            _BY_TYPE[type(array)] = b
            return b
    if _looks_like_device_array(array) and "cuda" not in _BY_NAME:
        # A device array made outside jitgrad before anything asked for "cuda".
        _load_cuda()
        return backend_for(array)
    raise TypeError(f"no jitgrad backend holds arrays of type {type(array).__name__}")
