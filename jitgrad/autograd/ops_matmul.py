"""Matrix products: ``MatMul`` (with NumPy's 1-D and stacked-rows rules in :func:`matmul`), ``Linear``
and ``BatchedMatMul``, each on the ``matmul`` kernel whose ``trans_*`` flags replace transposed copies.
"""

from __future__ import annotations

from typing import Any

from jitgrad.autograd.function import Context, Function
from jitgrad.autograd.tensor import Tensor, attach_methods

__all__ = ["MatMul", "matmul", "Linear", "BatchedMatMul", "batched_matmul"]

ArrayLike = Any


class MatMul(Function):
    """``a @ b`` for 2-D ``a (M, K)``, ``b (K, N)``, on the ``matmul`` kernel.

    A transposed view (``w.T``) is passed to the kernel as its C-contiguous
    base with a ``trans_*`` flag, so it is never copied. The backward uses the
    same kernel: ``dA = g @ op(B).T``, ``dB = op(A).T @ g``, each transpose
    again a flag.
    """

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        xp = ctx.backend
        a_arr, trans_a = xp.matmul_operand(a)
        b_arr, trans_b = xp.matmul_operand(b)
        ctx.save_for_backward(a_arr, b_arr)
        ctx.trans = (trans_a, trans_b)
        return xp.kernels.matmul(a_arr, b_arr, trans_a=trans_a, trans_b=trans_b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        a_arr, b_arr = ctx.saved_tensors
        trans_a, trans_b = ctx.trans
        need_a, need_b = ctx.needs_input_grad
        g = xp.ascontiguousarray(g)
        grad_a = xp.kernels.matmul(g, b_arr, trans_b=not trans_b) if need_a else None
        grad_b = xp.kernels.matmul(a_arr, g, trans_a=not trans_a) if need_b else None
        return grad_a, grad_b


def matmul(a: Any, b: Any) -> Tensor:
    """``a @ b`` with NumPy's rules for 1-D operands and a stack of rows times a matrix.

    1-D ``a`` is a row, 1-D ``b`` a column (the added axis is dropped again);
    ``a`` of shape ``(..., K)`` times 2-D ``b`` flattens the leading axes into
    the rows of one kernel call.
    """
    a = a if isinstance(a, Tensor) else Tensor(a)
    b = b if isinstance(b, Tensor) else Tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
    if a.ndim == 3 and b.ndim == 3:
        return batched_matmul(a, b)
    if b.ndim > 2:
        raise ValueError(f"matmul: b must be 1-D or 2-D, got shape {b.shape} (a 3-D b needs a 3-D a: batched matmul)")
    if a.shape[-1] != b.shape[0]:
        raise ValueError(f"matmul: inner sizes differ: a has shape {a.shape}, b has shape {b.shape}")
    if a.ndim == 2 and b.ndim == 2:
        return MatMul.apply(a, b)
    lead = a.shape[:-1]
    a2 = a.reshape(1, -1) if a.ndim == 1 else a.reshape(-1, a.shape[-1]) if a.ndim > 2 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    out = MatMul.apply(a2, b2)
    return out.reshape(lead + ((b.shape[1],) if b.ndim == 2 else ()))


class Linear(Function):
    """``x @ w.T + b`` for ``x (N, in)``, ``w (out, in)``, ``b (out,)``: the three matmuls of a dense layer.

    Forward ``matmul(x, w, trans_b=True)``; backward ``dx = matmul(g, w)``,
    ``dw = matmul(g, x, trans_a=True)`` (already in ``w``'s layout), ``db = g.sum(0)``.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, w: Any, b: Any = None) -> Any:
        xp = ctx.backend
        x = xp.ascontiguousarray(x)
        w = xp.ascontiguousarray(w)
        ctx.save_for_backward(x, w)
        y = xp.kernels.matmul(x, w, trans_b=True)
        return y if b is None else xp.add(y, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, ...]:
        xp = ctx.backend
        x, w = ctx.saved_tensors
        needs = ctx.needs_input_grad
        g = xp.ascontiguousarray(g)
        grad_x = xp.kernels.matmul(g, w) if needs[0] else None
        grad_w = xp.kernels.matmul(g, x, trans_a=True) if needs[1] else None
        grad_b = xp.sum(g, axis=0) if len(needs) > 2 and needs[2] else None
        return grad_x, grad_w, grad_b


class BatchedMatMul(Function):
    """``a (B, M, K) @ b (B, K, N)``: one ``matmul`` kernel call per batch entry, written in place."""

    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        xp = ctx.backend
        a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
        ctx.save_for_backward(a, b)
        out = xp.zeros((a.shape[0], a.shape[1], b.shape[2]), a.dtype)
        for i in range(a.shape[0]):
            xp.kernels.matmul(a[i], b[i], out=out[i])
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        g = xp.ascontiguousarray(g)
        grad_a = xp.zeros(a.shape, a.dtype) if need_a else None
        grad_b = xp.zeros(b.shape, b.dtype) if need_b else None
        for i in range(a.shape[0]):
            if need_a:
                xp.kernels.matmul(g[i], b[i], trans_b=True, out=grad_a[i])
            if need_b:
                xp.kernels.matmul(a[i], g[i], trans_a=True, out=grad_b[i])
        return grad_a, grad_b


def batched_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a (B, M, K) @ b (B, K, N) -> (B, M, N)``."""
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"matmul: batched operands must be (B, M, K) and (B, K, N), got shapes {a.shape} and "
                         f"{b.shape}")
    return BatchedMatMul.apply(a, b)


# ----------------------------------------------------------------------------- Tensor methods


@attach_methods
class TensorMatmulMethods:
    """``a @ b`` for Tensors (see :func:`matmul`)."""

    def __matmul__(self, other: ArrayLike) -> "Tensor":
        return matmul(self, other)

    def __rmatmul__(self, other: ArrayLike) -> "Tensor":
        return matmul(other, self)
