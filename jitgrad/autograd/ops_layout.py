"""Layout and conversion: reshape, permute, indexing, dtype casts and device copies (one ``Function`` each).

The Tensor methods of these ops (``reshape``, ``permute``, ``[]``, ``astype``,
``to``...) are attached at the end.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jitgrad.autograd.backend import get_backend
from jitgrad.autograd.function import Context, Function
from jitgrad.autograd.tensor import Tensor, attach_methods

__all__ = ["Reshape", "Permute", "Getitem", "Cast", "ToDevice"]


class Reshape(Function):
    """The same elements in a new shape."""

    @staticmethod
    def forward(ctx: Context, a: Any, shape: tuple[int, ...]) -> Any:
        ctx.shape = a.shape
        return ctx.backend.reshape(a, shape)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return ctx.backend.reshape(g, ctx.shape)


class Permute(Function):
    """Axes reordered (a view; kernels that need contiguity copy it when they must)."""

    @staticmethod
    def forward(ctx: Context, a: Any, axes: tuple[int, ...]) -> Any:
        ctx.axes = axes
        return ctx.backend.transpose(a, axes)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        inverse = [0] * len(ctx.axes)
        for position, axis in enumerate(ctx.axes):
            inverse[axis] = position
        return ctx.backend.transpose(g, tuple(inverse))


class Getitem(Function):
    """``a[index]``: ints, slices, ``None``, ``...``, integer or boolean arrays."""

    @staticmethod
    def forward(ctx: Context, a: Any, index: Any) -> Any:
        ctx.shape, ctx.index = a.shape, index
        return ctx.backend.getitem(a, index)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return ctx.backend.getitem_backward(g, ctx.index, ctx.shape)


class Cast(Function):
    """The same values in another dtype; the gradient is cast back."""

    @staticmethod
    def forward(ctx: Context, a: Any, dtype: Any) -> Any:
        ctx.dtype = a.dtype
        return ctx.backend.astype(a, dtype)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return ctx.backend.astype(g, ctx.dtype)


class ToDevice(Function):
    """A copy on another device (through host memory); the gradient travels back."""

    @staticmethod
    def forward(ctx: Context, a: Any, backend: Any) -> Any:
        ctx.target = backend
        return backend.from_numpy(ctx.backend.to_numpy(a))

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return ctx.backend.from_numpy(ctx.target.to_numpy(g))


def _unwrap_index(index: Any) -> Any:
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        # A list index is advanced indexing: as an array it is unambiguous.
        return np.asarray(index)
    return index


# ----------------------------------------------------------------------------- Tensor methods


@attach_methods
class TensorLayoutMethods:
    """Shape, indexing, dtype and device methods of ``Tensor``."""

    # --- conversion -------------------------------------------------------
    def astype(self, dtype: Any) -> "Tensor":
        """This tensor in another dtype (gradients are cast back)."""
        if np.dtype(dtype) == self.dtype:
            return self
        return Cast.apply(self, dtype=np.dtype(dtype))

    def float(self) -> "Tensor":
        """As float32."""
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        """As float64."""
        return self.astype(np.float64)

    def to(self, device: str) -> "Tensor":
        """This tensor on ``device`` (``"cpu"`` or ``"cuda"``); ``self`` when already there.

        The copy is recorded by autograd (the gradient travels back to this
        device). Moving to ``"cuda"`` without a GPU (and without
        ``NUMBA_ENABLE_CUDASIM=1``) raises ``RuntimeError`` saying so.
        """
        backend = get_backend(device)
        if backend.name == self.device:
            return self
        return ToDevice.apply(self, backend=backend)

    def cpu(self) -> "Tensor":
        """This tensor on the CPU."""
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        """This tensor on the GPU (``to("cuda")``)."""
        return self.to("cuda")

    # --- shape --------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> "Tensor":
        """Same elements in a new shape (``-1`` infers one size): ``x.reshape(2, -1)``."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])  # type: ignore[arg-type]
        return Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        """Merge dimensions ``start_dim..end_dim`` (inclusive) into one, as PyTorch."""
        ndim = self.ndim
        if ndim == 0:
            return self.reshape(1)
        start, end = start_dim % ndim, end_dim % ndim
        if start > end:
            raise ValueError(f"flatten: start_dim={start_dim} comes after end_dim={end_dim} for shape {self.shape}")
        shape = self.shape
        return self.reshape(shape[:start] + (-1,) + shape[end + 1:])

    def permute(self, *axes: int | Sequence[int]) -> "Tensor":
        """Reorder dimensions: ``x.permute(0, 2, 3, 1)``."""
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = tuple(axes[0])  # type: ignore[arg-type]
        if sorted(int(a) % max(self.ndim, 1) for a in axes) != list(range(self.ndim)):  # type: ignore[arg-type]
            raise ValueError(
                f"permute: axes {axes} are not a permutation of the {self.ndim} dims of shape {self.shape}")
        return Permute.apply(self, axes=tuple(int(a) % self.ndim for a in axes))  # type: ignore[arg-type]

    def transpose(self, dim0: int = -2, dim1: int = -1) -> "Tensor":
        """Swap two dimensions (PyTorch's meaning; see ``permute`` for NumPy's)."""
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return Permute.apply(self, axes=tuple(axes))

    @property
    def T(self) -> "Tensor":
        """Dimensions reversed (the matrix transpose for 2-D)."""
        return Permute.apply(self, axes=tuple(range(self.ndim - 1, -1, -1)))

    def __getitem__(self, index: Any) -> "Tensor":
        return Getitem.apply(self, index=_unwrap_index(index))
