"""The CUDA backend: every function of the backend interface over Numba device arrays.

The autograd reaches arrays only through a backend object (see
:mod:`jitgrad.autograd.backend`); this one keeps every array of a training
step on the GPU. Arithmetic, reductions and layout changes call
:mod:`jitgrad.kernels.cuda.elementwise` and :mod:`~jitgrad.kernels.cuda.reduction`;
matmul, conv, pooling, activations, softmax, losses and the fused optimizer
updates are the ``@cuda.jit`` kernels of :mod:`jitgrad.kernels.cuda` (``self.kernels``).
The few array operations those modules lack (``log1p``, the first-maximum
mask of ``max``'s backward, indexing and its backward) are the kernels of
:mod:`jitgrad.kernels.cuda.indexing`, planned here on the host.

Registered lazily: importing :mod:`jitgrad` never touches CUDA. The first
``get_backend("cuda")`` (``Tensor.to("cuda")``, ``Module.to("cuda")``, ...)
calls :func:`register`, which raises a clear ``RuntimeError`` when neither a
GPU nor Numba's simulator is there.

What crosses between host and device
------------------------------------
Only what the user asks for (``to``, ``numpy()``, ``item()``) and host
*constants* an op is handed: a NumPy array passed as an operand (labels,
``gradcheck``'s weights) is copied to the device, and an index's
positions are computed on the host and uploaded (indexing is not on a
training step's path). Nothing is ever read back to decide what to do next,
so a step queues its kernels without waiting for them.

Layout
------
Every array this backend makes is C-contiguous, with one exception: the
transpose of a 2-D array is a view with swapped strides (F-contiguous), so
``x @ w.T`` reaches the ``matmul`` kernel as ``w`` and ``trans_b=True``
(:meth:`CUDABackend.matmul_operand`), never as a copy. Every other function
makes its inputs C-contiguous first (a copy only for such a view).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
from numba import cuda

from jitgrad import config
from jitgrad.autograd.backend import register_backend
from jitgrad.kernels import cuda as cuda_kernels
from jitgrad.kernels._validate import normalize_axes
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda import elementwise as ew
from jitgrad.kernels.cuda import indexing as idx
from jitgrad.kernels.cuda import reduction as red

__all__ = ["CUDABackend", "register"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------------------- host helpers

def _is_device(a: Any) -> bool:
    return _launch.is_device_array(a)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float, np.generic))


def _shape_tuple(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _resolve_shape(size: int, shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` with its one ``-1`` filled in, checked against ``size`` (as ``np.reshape``)."""
    shape = _shape_tuple(shape)
    unknown = [i for i, s in enumerate(shape) if s == -1]
    known = math.prod(s for s in shape if s != -1)
    if len(unknown) > 1 or any(s < -1 for s in shape):
        raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
    if unknown:
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
        shape = shape[: unknown[0]] + (size // known,) + shape[unknown[0] + 1:]
    if math.prod(shape) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
    return shape


def _transposed_view(a: Any) -> Any:
    """The transpose of a 2-D device array as a view (strides swapped, memory shared)."""
    if not hasattr(a, "gpu_data"):
        # The simulator's arrays wrap NumPy arrays, whose .T already is a view.
        return a.T
    # numba-cuda's own DeviceNDArray.T launches a copy kernel; the constructor makes a view.
    return type(a)(shape=tuple(a.shape)[::-1], strides=tuple(a.strides)[::-1], dtype=a.dtype,
                   stream=a.stream, gpu_data=a.gpu_data)


def _is_transposed_2d(a: Any) -> bool:
    return a.ndim == 2 and not a.is_c_contiguous() and a.is_f_contiguous()


def _basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer)) and not isinstance(p, bool)
               for p in parts)


def _view_geometry(shape: tuple[int, ...], index: Any) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(base offset, element strides, shape) of ``a[index]`` for basic indexing of a C-contiguous ``a``.

    NumPy computes the view on a zero-byte stand-in with ``a``'s element strides
    (``as_strided`` over one byte; basic indexing never reads memory), so every
    rule of NumPy's indexing (negative steps, ``None``, ``...``, bounds errors) holds.
    """
    strides = ew._contiguous_strides(shape)
    buffer = np.zeros(1, dtype=np.uint8)
    dummy = np.lib.stride_tricks.as_strided(buffer, shape=shape, strides=strides)
    view = dummy[index]
    base = view.__array_interface__["data"][0] - buffer.__array_interface__["data"][0]
    return base, tuple(view.strides), tuple(view.shape)


def _flat_positions(shape: tuple[int, ...], index: Any) -> np.ndarray:
    """Flat positions in an array of ``shape`` that ``a[index]`` reads (advanced indexing), int64."""
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)[index]


# ----------------------------------------------------------------------------- backend

class CUDABackend:
    """Numba device arrays, ``jitgrad.kernels.cuda`` kernels.

    See :mod:`jitgrad.autograd.backend` for the interface. Operands may be
    device arrays, Python or NumPy scalars, or NumPy arrays (host constants,
    copied to the device). Float kernels run in float32 or float64; integer
    and boolean arrays are computed in float64 and cast back where NumPy
    would keep an integer result (exact below 2**53).
    """

    name = "cuda"

    def __init__(self) -> None:
        from numba.cuda.cudadrv import devicearray

        # Under the simulator numba.cuda.cudadrv.devicearray *is* the simulator's module.
        self.array_type = getattr(devicearray, "DeviceNDArray", None) or devicearray.FakeCUDAArray
        self.kernels = cuda_kernels

    def __repr__(self) -> str:
        return "CUDABackend()"

    # --- creation and transfer ------------------------------------------
    def from_numpy(self, a: Any) -> Any:
        a = np.asarray(a)
        # np.ascontiguousarray would make a 0-d array 1-D.
        return cuda.to_device(a if a.flags.c_contiguous else np.ascontiguousarray(a))

    def to_numpy(self, a: Any) -> np.ndarray:
        if isinstance(a, np.ndarray):
            return a
        return self.ascontiguousarray(a).copy_to_host()

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        if _is_device(data):
            return data if dtype is None or np.dtype(dtype) == data.dtype else self.astype(data, dtype)
        return self.from_numpy(np.asarray(data, dtype=dtype))

    def ascontiguousarray(self, a: Any) -> Any:
        if not _is_device(a):
            return self.from_numpy(a)
        if a.is_c_contiguous():
            return a
        if _is_transposed_2d(a):
            return ew.transpose(_transposed_view(a))
        raise ValueError(f"CUDA backend: cannot make a strided device view of shape {tuple(a.shape)} "
                         "contiguous; index tensors with Tensor.__getitem__, which copies")

    def copy(self, a: Any) -> Any:
        c = self.ascontiguousarray(a)
        return ew.copy(c) if c is a else c

    def astype(self, a: Any, dtype: Any) -> Any:
        return ew.astype(self.ascontiguousarray(a), np.dtype(dtype))

    @staticmethod
    def zeros(shape: Any, dtype: Any = None) -> Any:
        return ew.zeros(_shape_tuple(shape), config.default_dtype if dtype is None else dtype)

    @staticmethod
    def ones(shape: Any, dtype: Any = None) -> Any:
        return ew.ones(_shape_tuple(shape), config.default_dtype if dtype is None else dtype)

    @staticmethod
    def full(shape: Any, value: Any, dtype: Any = None) -> Any:
        return ew.full(_shape_tuple(shape), value, config.default_dtype if dtype is None else dtype)

    @staticmethod
    def owns_data(a: Any) -> bool:
        # A device array does not say whether it is a view (reshape views share gpu_data
        # silently), so the kernels' allocator keeps a weak record of the arrays it made:
        # those own their memory, as a NumPy array with no base does; anything else is
        # "unsure", and the engine copies a leaf's first gradient.
        return _launch.owns_memory(a)

    # --- operand normalisation --------------------------------------------
    def _operand(self, v: Any) -> Any:
        """A C-contiguous device array, or a Python scalar (bools as ints, 0-d arrays unwrapped)."""
        if _is_device(v):
            return self.ascontiguousarray(v)
        if isinstance(v, np.ndarray) and v.ndim > 0:
            return self.from_numpy(v)
        v = np.asarray(v).item() if isinstance(v, (np.ndarray, np.generic)) else v
        return int(v) if isinstance(v, bool) else v

    def _unify(self, *operands: Any) -> tuple[list[Any], np.dtype, np.dtype | None]:
        """Cast array operands to one float dtype for a kernel.

        Returns the operands, the dtype the kernel computes in, and the dtype to
        cast the result back to (None when the kernel's dtype is the answer).
        """
        arrays = [v for v in operands if _is_device(v)]
        target = np.result_type(*(a.dtype for a in arrays))
        if target in _FLOATS:
            compute, back = target, None
        else:
            # Integers and bools: compute in float64; keep NumPy's integer result
            # unless a float scalar joins in (NumPy 2 then gives float64).
            compute = np.dtype(np.float64)
            float_scalar = any(isinstance(v, float) for v in operands if not _is_device(v))
            back = None if float_scalar or target.kind not in "biu" else target
        out = [ew.astype(v, compute) if _is_device(v) and v.dtype != compute else v for v in operands]
        return out, compute, back

    def _binary(self, fn: Callable[..., Any], host_fn: Callable[..., Any], a: Any, b: Any,
                compare: bool = False) -> Any:
        a, b = self._operand(a), self._operand(b)
        if not (_is_device(a) or _is_device(b)):
            return host_fn(a, b)  # two host scalars (e.g. Pow's ``b - 1``): no device work
        (a, b), _, back = self._unify(a, b)
        out = fn(a, b)
        if compare or back is None:
            return out
        return ew.astype(out, back if back.kind != "b" else np.int64)

    def _unary(self, fn: Callable[..., Any], host_fn: Callable[..., Any], a: Any, keep_int: bool = False) -> Any:
        a = self._operand(a)
        if not _is_device(a):
            return host_fn(a)
        (a,), _, back = self._unify(a)
        out = fn(a)
        return ew.astype(out, back) if keep_int and back is not None else out

    # --- elementwise -----------------------------------------------------
    def add(self, a: Any, b: Any) -> Any:
        return self._binary(ew.add, np.add, a, b)

    def subtract(self, a: Any, b: Any) -> Any:
        return self._binary(ew.subtract, np.subtract, a, b)

    def multiply(self, a: Any, b: Any) -> Any:
        return self._binary(ew.multiply, np.multiply, a, b)

    def divide(self, a: Any, b: Any) -> Any:
        out = self._binary(ew.divide, np.divide, a, b)
        # True division of integers is float in NumPy: never cast back.
        return out

    def power(self, a: Any, b: Any) -> Any:
        return self._binary(ew.power, np.power, a, b)

    def maximum(self, a: Any, b: Any) -> Any:
        return self._binary(ew.maximum, np.maximum, a, b)

    def equal(self, a: Any, b: Any) -> Any:
        return self._binary(ew.equal, np.equal, a, b, compare=True)

    def not_equal(self, a: Any, b: Any) -> Any:
        return self._binary(ew.not_equal, np.not_equal, a, b, compare=True)

    def less(self, a: Any, b: Any) -> Any:
        return self._binary(ew.less, np.less, a, b, compare=True)

    def less_equal(self, a: Any, b: Any) -> Any:
        return self._binary(ew.less_equal, np.less_equal, a, b, compare=True)

    def greater(self, a: Any, b: Any) -> Any:
        return self._binary(ew.greater, np.greater, a, b, compare=True)

    def greater_equal(self, a: Any, b: Any) -> Any:
        return self._binary(ew.greater_equal, np.greater_equal, a, b, compare=True)

    def negative(self, a: Any) -> Any:
        return self._unary(ew.negative, np.negative, a, keep_int=True)

    def exp(self, a: Any) -> Any:
        return self._unary(ew.exp, np.exp, a)

    def log(self, a: Any) -> Any:
        return self._unary(ew.log, np.log, a)

    def log1p(self, a: Any) -> Any:
        return self._unary(idx.log1p, np.log1p, a)

    def sqrt(self, a: Any) -> Any:
        return self._unary(ew.sqrt, np.sqrt, a)

    def abs(self, a: Any) -> Any:
        return self._unary(ew.absolute, np.abs, a, keep_int=True)

    def sign(self, a: Any) -> Any:
        return self._unary(ew.sign, np.sign, a, keep_int=True)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        cond, a, b = self._operand(cond), self._operand(a), self._operand(b)
        if not _is_device(cond):
            cond = ew.full((), bool(cond), np.bool_)
        if not (_is_device(a) or _is_device(b)):
            dtype = np.result_type(a, b)
            a = ew.full((), a, dtype if dtype in _FLOATS else np.float64)
        (a, b), _, back = self._unify(a, b)
        out = ew.where(cond, a, b)
        return out if back is None else ew.astype(out, back)

    # --- reductions ------------------------------------------------------
    def _reduce(self, fn: Callable[..., Any], a: Any, axis: Any, keepdims: bool, int_result: Any) -> Any:
        a = self._operand(a)
        if a.dtype in _FLOATS:
            return fn(a, axis=axis, keepdims=keepdims)
        out = fn(ew.astype(a, np.float64), axis=axis, keepdims=keepdims)
        return ew.astype(out, int_result if int_result is not None else a.dtype)

    def sum(self, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        # NumPy sums bools and small ints as int64.
        kind = np.dtype(a.dtype).kind
        int_result = np.int64 if kind in "bi" else (np.uint64 if kind == "u" else None)
        return self._reduce(red.sum, a, axis, keepdims, int_result)

    def max(self, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce(red.max, a, axis, keepdims, None)

    def argmax(self, a: Any, axis: Any = None) -> Any:
        a = self._operand(a)
        if a.dtype not in _FLOATS:
            a = ew.astype(a, np.float64)
        if axis is None:
            return red.argmax(_launch.flat(a), axis=0)
        return red.argmax(a, axis=axis)

    def first_max_mask(self, a: Any, axis: Any) -> Any:
        """Boolean array of ``a``'s shape, True at the first maximum of every reduced slice.

        As on the CPU: the reduced axes move last and flatten into one, whose
        ``argmax`` (first maximum, as PyTorch) marks one element per row.
        """
        a = self._operand(a)
        axes = normalize_axes(axis, a.ndim)
        kept = tuple(d for d in range(a.ndim) if d not in axes)
        perm = kept + tuple(axes)
        moved = self.transpose(a, perm) if perm != tuple(range(a.ndim)) else a
        moved_shape = tuple(moved.shape)
        length = math.prod(a.shape[d] for d in axes)
        rows = math.prod(a.shape[d] for d in kept)
        index = red.argmax(self.reshape(moved, (rows, length)), axis=-1)
        mask = idx.one_hot_rows(index, length).reshape(moved_shape)
        if perm == tuple(range(a.ndim)):
            return mask
        inverse = [0] * a.ndim
        for position, d in enumerate(perm):
            inverse[d] = position
        return self.transpose(mask, tuple(inverse))

    def sum_to_shape(self, g: Any, shape: tuple[int, ...]) -> Any:
        """Sum a broadcast gradient ``g`` back down to ``shape`` (NumPy broadcasting rules)."""
        g = self._operand(g)
        shape = _shape_tuple(shape)
        if g.ndim < len(shape):
            return self.broadcast_to(g, shape)
        return red.sum_to_shape(g, shape)

    # --- layout ----------------------------------------------------------
    def reshape(self, a: Any, shape: Any) -> Any:
        a = self._operand(a)
        return a.reshape(_resolve_shape(a.size, shape))

    def transpose(self, a: Any, axes: Any = None) -> Any:
        a = self._operand(a) if not _is_device(a) else a
        nd = a.ndim
        axes = tuple(range(nd))[::-1] if axes is None else tuple(int(x) % nd for x in axes)
        if axes == tuple(range(nd)):
            return a
        if nd == 2:
            # A free view: matmul_operand turns it into the kernel's trans flag.
            if a.is_c_contiguous() or _is_transposed_2d(a):
                return _transposed_view(a)
        return ew.transpose(self.ascontiguousarray(a), axes)

    def expand_dims(self, a: Any, axis: Any) -> Any:
        a = self._operand(a)
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        nd = a.ndim + len(axes)
        positions = sorted(int(x) % nd for x in axes)
        shape = list(a.shape)
        for p in positions:
            shape.insert(p, 1)
        return a.reshape(tuple(shape))

    def broadcast_to(self, a: Any, shape: Any) -> Any:
        a = self._operand(a)
        shape = _shape_tuple(shape)
        if not _is_device(a):
            return ew.full(shape, a, np.result_type(a) if np.result_type(a) in _FLOATS else np.float64)
        return a if tuple(a.shape) == shape else ew.broadcast_to(a, shape)

    def _host_index(self, index: Any) -> Any:
        """``index`` with device arrays read back to the host (indexing is planned on the host)."""
        if isinstance(index, tuple):
            return tuple(self._host_index(i) for i in index)
        if _is_device(index):
            return index.copy_to_host()
        if isinstance(index, list):
            return np.asarray(index)
        return index

    def getitem(self, a: Any, index: Any) -> Any:
        a = self._operand(a)
        index = self._host_index(index)
        shape = tuple(int(s) for s in a.shape)
        if _basic_index(index):
            base, strides, out_shape = _view_geometry(shape, index)
            return idx.strided_gather(a, base, strides, out_shape)
        positions = _flat_positions(shape, index)
        return idx.take(a, cuda.to_device(np.ascontiguousarray(positions)))

    def getitem_backward(self, g: Any, index: Any, shape: tuple[int, ...]) -> Any:
        g = self._operand(g)
        index = self._host_index(index)
        shape = _shape_tuple(shape)
        if _basic_index(index):
            base, strides, _ = _view_geometry(shape, index)
            return idx.strided_scatter(g, base, strides, ew.zeros(shape, g.dtype))
        positions = _flat_positions(shape, index).reshape(-1)
        order = np.argsort(positions, kind="stable")
        starts = np.searchsorted(positions[order], np.arange(math.prod(shape) + 1, dtype=np.int64))
        out = idx.segment_sum(g, cuda.to_device(order.astype(np.int64)), cuda.to_device(starts.astype(np.int64)))
        return out.reshape(shape)

    def matmul_operand(self, a: Any) -> tuple[Any, bool]:
        if _is_device(a) and _is_transposed_2d(a):
            # ``a`` is the transpose of a C-contiguous array (x.T): use the kernel flag.
            return _transposed_view(a), True
        return self.ascontiguousarray(a), False

    # --- random ----------------------------------------------------------
    @staticmethod
    def dropout_mask(shape: Any, p: float, dtype: Any, rng: np.random.Generator) -> Any:
        """Inverted-dropout mask made on the device from one seed drawn from ``rng``.

        The mask comes from the counter-based hash of
        :func:`jitgrad.kernels.cuda.elementwise.dropout_mask`: one host draw per
        call (an integer; nothing waits on the GPU), no mask upload, and a run
        seeded with ``jitgrad.manual_seed`` draws the same masks again. The
        masks differ from the CPU backend's (another generator), as PyTorch's do.
        """
        seed = int(rng.integers(0, 2**32))
        return ew.dropout_mask(_shape_tuple(shape), float(p), seed, np.dtype(dtype))


_BACKEND: CUDABackend | None = None


def register() -> CUDABackend:
    """Register (once) and return the CUDA backend; ``RuntimeError`` when no GPU and no simulator.

    Called by :func:`jitgrad.autograd.backend.get_backend` the first time
    ``"cuda"`` is asked for, so ``import jitgrad`` never initialises CUDA.
    """
    global _BACKEND
    from jitgrad.cuda import require_cuda

    require_cuda()
    if _BACKEND is None:
        _BACKEND = CUDABackend()
        register_backend(_BACKEND)
    return _BACKEND
