"""NumPy reference ``matmul``: ``op(a) @ op(b)`` by ``np.matmul`` on transposed views."""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._validate import check_array, check_out, check_same_dtype

__all__: list[str] = kernel_names("matmul")  # the one list: kernels/_constants.py


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _valid_fast(a: Any, b: Any, trans_a: Any, trans_b: Any,
                out: Any) -> tuple[int, int, int, np.dtype, bool, bool] | None:
    """The arguments' sizes when they are plainly valid NumPy arrays, else None.

    The general checks cost about 5 us, a tenth of a Linear layer's matmul
    at MNIST sizes; this accepts the common case in well under a microsecond
    and leaves everything else (and every error message) to the full checks.
    """
    if not (type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == 2 and b.ndim == 2
            and type(trans_a) is bool and type(trans_b) is bool):
        return None
    dtype = a.dtype
    if dtype != b.dtype or dtype not in _FLOATS or not (a.flags.c_contiguous and b.flags.c_contiguous):
        return None
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    k_b, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != k_b:
        return None
    if out is not None and not (type(out) is np.ndarray and out.shape == (m, n) and out.dtype == dtype
                                and out.flags.c_contiguous and out.flags.writeable):
        return None
    return m, n, k, dtype, trans_a, trans_b


def check_matmul_args(a: Any, b: Any, trans_a: Any, trans_b: Any,
                      out: Any) -> tuple[int, int, int, np.dtype, bool, bool]:
    """Validate ``matmul``'s arguments (shared by every backend).

    Returns ``(M, N, K, dtype, trans_a, trans_b)`` where ``op(a)`` is
    ``M x K`` and ``op(b)`` is ``K x N``.
    """
    fast = _valid_fast(a, b, trans_a, trans_b, out)
    if fast is not None:
        return fast
    check_array("a", a, ndim=2)
    check_array("b", b, ndim=2)
    dtype = check_same_dtype(a=a, b=b)
    trans_a = _check_flag("trans_a", trans_a)
    trans_b = _check_flag("trans_b", trans_b)
    m, k = (a.shape[1], a.shape[0]) if trans_a else (a.shape[0], a.shape[1])
    k_b, n = (b.shape[1], b.shape[0]) if trans_b else (b.shape[0], b.shape[1])
    if k != k_b:
        raise ValueError(
            f"matmul: inner dimensions differ: op(a) is {m}x{k} (a has shape {tuple(a.shape)}, "
            f"trans_a={trans_a}) but op(b) is {k_b}x{n} (b has shape {tuple(b.shape)}, trans_b={trans_b})"
        )
    if out is not None:
        check_out(out, (m, n), dtype)
    return m, n, k, dtype, trans_a, trans_b


def matmul(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
           out: np.ndarray | None = None) -> np.ndarray:
    """Matrix product ``op(a) @ op(b)``, ``op(x) = x.T`` when the flag is set.

    Parameters
    ----------
    a, b : ndarray, 2-D, float32 or float64 (one dtype), C-contiguous
        ``a`` is ``(M, K)`` (``(K, M)`` with ``trans_a``); ``b`` is ``(K, N)``
        (``(N, K)`` with ``trans_b``).
    trans_a, trans_b : bool
        Use the transpose of ``a`` / ``b`` (a view, never a copy).
    out : ndarray, optional
        ``(M, N)`` C-contiguous buffer of the inputs' dtype to write into.

    Returns
    -------
    ndarray, ``(M, N)``, the inputs' dtype (``out`` when given).
    """
    _, _, _, _, trans_a, trans_b = check_matmul_args(a, b, trans_a, trans_b, out)
    return np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)
