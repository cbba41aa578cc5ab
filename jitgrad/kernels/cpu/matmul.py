"""CPU ``matmul``: a register-tiled, multi-threaded GEMM written with Numba (no BLAS); see ``_gemm``."""

from __future__ import annotations

import numba
import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference.matmul import check_matmul_args

from . import _gemm
from ._gemm_dot import gemm_dot
from ._gemm_epilogue import apply_epilogue
from ._jit import overlaps

__all__: list[str] = kernel_names("matmul")  # the one list: kernels/_constants.py

#: Up to this many multiply-adds a plain loop beats the micro-kernel's set-up
#: (measured: the two meet near 16 x 16 x 16).
SMALL_MACS = 16 * 16 * 16
#: Below this many multiply-adds one thread beats a parallel launch.
SERIAL_MACS = 96 * 96 * 96
#: ``a @ b.T`` with at most this many rows or columns of C runs as dot products of
#: rows (``_gemm_dot``): packing the transposed B would cost more than it saves.
DOT_MAX_MN = 32
#: ... and at least this deep (conv weight gradients, wide Linear inputs): shallower ones gain
#: little, and LeNet-5's first step (no such product) compiles nothing more.
DOT_MIN_K = 256


def _matmul_kernel(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, out: np.ndarray,
                   bias: np.ndarray | None = None, epi: int = 0) -> None:
    """``out = op(a) @ op(b)`` in place (validated arguments), then the store epilogue ``epi``
    (``_gemm_epilogue`` bits; its column bias is ``bias``, of ``out``'s dtype, ``(N,)``)."""
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    if bias is None:
        bias = _NO_BIAS[out.dtype]
    macs = m * n * k
    if k == 0 or macs <= SMALL_MACS:
        if k == 0:
            out.fill(0)
        else:
            _gemm.gemm_small(a, b, trans_a, trans_b, out)
        if epi:
            apply_epilogue(out, bias, epi)
        return
    nthreads = 1 if macs <= SERIAL_MACS else numba.get_num_threads()  # ~1 us: asked only where it decides
    # Until the parallel driver is compiled (tiered compilation, see _tier), the serial one.
    if nthreads > 1 and _gemm.gemm_parallel.ready():
        _gemm.gemm_parallel(a, b, trans_a, trans_b, out, nthreads, bias, epi)
    elif trans_b and not trans_a and min(m, n) <= DOT_MAX_MN and k >= DOT_MIN_K:
        gemm_dot(a, b, out, 0, n)
        if epi:  # after the product, as unfused: the same bits either way
            apply_epilogue(out, bias, epi)
    else:
        _gemm.gemm_serial(a, b, trans_a, trans_b, out, bias, epi)


#: The GEMM drivers' ``bias`` when there is none (never read; one array per dtype, so no allocation).
_NO_BIAS = {np.dtype(np.float32): np.zeros(1, np.float32), np.dtype(np.float64): np.zeros(1, np.float64)}


def matmul(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
           out: np.ndarray | None = None) -> np.ndarray:
    """CPU: a transposed operand is read through strides, or by the packing of a large operand; never copied."""
    m, n, _, dtype, trans_a, trans_b = check_matmul_args(a, b, trans_a, trans_b, out)
    if overlaps(out, a, b):
        result = np.empty((m, n), dtype=dtype)
        _matmul_kernel(a, b, trans_a, trans_b, result)
        out[...] = result
        return out
    if out is None:
        out = np.empty((m, n), dtype=dtype)
    _matmul_kernel(a, b, trans_a, trans_b, out)
    return out
