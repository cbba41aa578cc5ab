"""``Backend``: the interface every autograd backend implements, as a ``typing.Protocol``.

The autograd reaches arrays only through a backend object (``ctx.backend``
inside a :class:`~jitgrad.autograd.Function`), never through NumPy
directly: :class:`~jitgrad.autograd.backend.CPUBackend` (NumPy plus the
``@njit`` kernels) and :class:`~jitgrad.autograd.cuda_backend.CUDABackend`
(Numba device arrays plus the ``@cuda.jit`` kernels) implement this
protocol, and ``tests/autograd/test_backend_protocol.py`` holds both to it
member by member, signatures and defaults included. A new device is one
more class with these members, registered with
:func:`~jitgrad.autograd.backend.register_backend` (or, to import it only
when first asked for, :func:`~jitgrad.autograd.backend.register_lazy_backend`).

Operands of the elementwise functions may be arrays of this backend,
Python or NumPy scalars, or host NumPy arrays (constants: labels,
``gradcheck``'s weights), combined with NumPy's broadcasting and dtype
rules. ``axis`` arguments are None (every axis), an int or a tuple of ints.
``dtype=None`` means ``config.default_dtype`` (float32) on every backend.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Backend"]

Array = Any


@runtime_checkable
class Backend(Protocol):
    """The members an autograd backend provides (see the module docstring)."""

    #: The device's name, the value of ``Tensor.device`` (``"cpu"``, ``"cuda"``).
    name: str
    #: The exact array class of this device (``numpy.ndarray``, ``DeviceNDArray``).
    array_type: type

    @property
    def kernels(self) -> Any:
        """The module of kernels of ``docs/kernel-api.md`` for this device (``jitgrad.kernels.cpu``, ...)."""

    # --- creation and transfer ------------------------------------------
    def asarray(self, data: Any, dtype: Any = None) -> Array:
        """``data`` as an array of this device; no copy when it already is one of that dtype."""

    def ascontiguousarray(self, a: Any) -> Array:
        """``a`` C-contiguous (itself when it already is; a 0-d array stays 0-d)."""

    def copy(self, a: Array) -> Array:
        """A new array with ``a``'s values (never shares memory with ``a``)."""

    def astype(self, a: Array, dtype: Any) -> Array:
        """``a``'s values in ``dtype`` (a new array)."""

    def zeros(self, shape: Any, dtype: Any = None) -> Array:
        """Zeros of ``shape`` in ``dtype`` (None: ``config.default_dtype``)."""

    def ones(self, shape: Any, dtype: Any = None) -> Array:
        """Ones of ``shape`` in ``dtype`` (None: ``config.default_dtype``)."""

    def full(self, shape: Any, value: Any, dtype: Any = None) -> Array:
        """``value`` repeated to ``shape`` in ``dtype`` (None: ``config.default_dtype``)."""

    def from_numpy(self, a: np.ndarray) -> Array:
        """A host NumPy array on this device."""

    def to_numpy(self, a: Array) -> np.ndarray:
        """An array of this device as a host NumPy array."""

    def owns_data(self, a: Array) -> bool:
        """True only when ``a`` shares memory with no other array (False when unsure)."""

    # --- elementwise -----------------------------------------------------
    def add(self, a: Any, b: Any) -> Array: ...

    def subtract(self, a: Any, b: Any) -> Array: ...

    def multiply(self, a: Any, b: Any) -> Array: ...

    def divide(self, a: Any, b: Any) -> Array: ...

    def power(self, a: Any, b: Any) -> Array: ...

    def maximum(self, a: Any, b: Any) -> Array: ...

    def negative(self, a: Any) -> Array: ...

    def exp(self, a: Any) -> Array: ...

    def log(self, a: Any) -> Array:
        """Natural log; ``log(0) = -inf`` without a warning."""

    def log1p(self, a: Any) -> Array: ...

    def sqrt(self, a: Any) -> Array: ...

    def abs(self, a: Any) -> Array: ...

    def sign(self, a: Any) -> Array: ...

    def where(self, cond: Any, a: Any, b: Any) -> Array: ...

    def equal(self, a: Any, b: Any) -> Array: ...

    def not_equal(self, a: Any, b: Any) -> Array: ...

    def less(self, a: Any, b: Any) -> Array: ...

    def less_equal(self, a: Any, b: Any) -> Array: ...

    def greater(self, a: Any, b: Any) -> Array: ...

    def greater_equal(self, a: Any, b: Any) -> Array: ...

    # --- reductions ------------------------------------------------------
    def sum(self, a: Array, axis: Any = None, keepdims: bool = False) -> Array: ...

    def max(self, a: Array, axis: Any = None, keepdims: bool = False) -> Array: ...

    def argmax(self, a: Array, axis: Any = None) -> Array:
        """Index of the first maximum (int64)."""

    def first_max_mask(self, a: Array, axis: Any) -> Array:
        """Boolean array of ``a``'s shape, True at the first maximum of every reduced slice."""

    def sum_to_shape(self, g: Array, shape: tuple[int, ...]) -> Array:
        """Sum a broadcast gradient ``g`` back down to ``shape`` (NumPy broadcasting rules)."""

    # --- layout ----------------------------------------------------------
    def reshape(self, a: Array, shape: Any) -> Array: ...

    def transpose(self, a: Array, axes: Any = None) -> Array: ...

    def expand_dims(self, a: Array, axis: Any) -> Array: ...

    def broadcast_to(self, a: Any, shape: Any) -> Array: ...

    def getitem(self, a: Array, index: Any) -> Array:
        """``a[index]`` (ints, slices, None, ..., integer or boolean arrays) as a new array."""

    def getitem_backward(self, g: Array, index: Any, shape: tuple[int, ...]) -> Array:
        """Zeros of ``shape`` with ``g`` added at ``index`` (repeated integer indices accumulate)."""

    def matmul_operand(self, a: Array) -> tuple[Array, bool]:
        """``(array, transposed)``: a C-contiguous array and whether ``a`` is its transpose."""

    # --- random ----------------------------------------------------------
    def dropout_mask(self, shape: Any, p: float, dtype: Any, rng: np.random.Generator) -> Array:
        """``1 / (1 - p)`` with probability ``1 - p``, else 0, in ``dtype``, seeded from ``rng``."""
