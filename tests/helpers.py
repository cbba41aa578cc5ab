"""Test helpers shared by every test package: tolerances, seeded inputs, finite differences."""

from __future__ import annotations

import re
from typing import Callable

import numpy as np
import pytest

from jitgrad.kernels.cpu import _isa

#: (rtol, atol) per dtype when a fast kernel is held to the reference.
TOLERANCES = {
    np.dtype(np.float64): (1e-10, 1e-12),
    np.dtype(np.float32): (1e-4, 1e-5),
}

DTYPES = (np.float32, np.float64)


def assert_close(actual, expected, dtype=None, *, rtol=None, atol=None, err_msg: str = "") -> None:
    """``assert_allclose`` with the tolerance of ``dtype`` (default: ``expected``'s dtype).

    NaN anywhere in ``actual`` fails, which catches output elements a kernel never wrote
    when the output buffer was pre-filled with NaN.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    dt = np.dtype(dtype if dtype is not None else expected.dtype)
    r, a = TOLERANCES.get(dt, (1e-4, 1e-5))
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape} {err_msg}"
    np.testing.assert_allclose(actual, expected, rtol=rtol if rtol is not None else r,
                               atol=atol if atol is not None else a, err_msg=err_msg)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(shape, dtype=np.float64, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """Seeded standard-normal array of the given dtype."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def nan_like(shape, dtype) -> np.ndarray:
    """An output buffer full of NaN: an element the kernel never writes stays NaN."""
    return np.full(shape, np.nan, dtype=dtype)


def tie_free(shape, dtype=np.float64, seed: int = 0) -> np.ndarray:
    """Distinct values (a permutation, scaled): max-pool has no ties to break."""
    n = int(np.prod(shape))
    perm = np.random.default_rng(seed).permutation(n).astype(np.float64)
    return ((perm - n / 2) / max(n, 1)).reshape(shape).astype(dtype)


def numerical_grad(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of a scalar function of a float64 array."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat_x = x.reshape(-1)
    flat_g = g.reshape(-1)
    for i in range(flat_x.size):
        old = flat_x[i]
        flat_x[i] = old + eps
        fp = f(x)
        flat_x[i] = old - eps
        fm = f(x)
        flat_x[i] = old
        flat_g[i] = (fp - fm) / (2 * eps)
    return g


#: The packed-arithmetic checks (``packed_vector_ops`` and the like) count ymm/zmm instructions: they run
#: where the kernels compile for AVX2 or AVX-512 (the host's path, or a forced one: ``_isa``), not for
#: SSE or NEON (128-bit vectors; a forced ``x86-64`` run of the suite failed five of them).
wide_vectors = pytest.mark.skipif(_isa.ISA.name not in ("avx2", "avx512"),
                                  reason=f"ymm/zmm arithmetic is checked on the avx2 and avx512 paths (this run: "
                                         f"{_isa.ISA.name}; test_isa.py compiles both on any x86 host)")


def packed_vector_ops(asm: str) -> int:
    """Packed arithmetic on 256- or 512-bit registers in ``asm`` (an AVX-512 host's loops run in zmm)."""
    ops = r"fmadd\d+p[sd]|mulp[sd]|addp[sd]|subp[sd]|divp[sd]|blendvp[sd]|cmp\w*p[sd]"
    return len(re.findall(rf"\bv(?:{ops})\s[^\n]*[yz]mm", asm))


def recompiled(dispatcher):
    """A copy of the ``@njit`` ``dispatcher`` with its own options but no cache, so that ``inspect_asm``
    sees its code (code loaded from Numba's cache cannot be inspected)."""
    from numba import njit

    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in ("cache", "nopython")}
    return njit(**options)(dispatcher.py_func)


def elementary_loop_asm(name: str) -> str:
    """The assembly of a float32 loop calling ``jitgrad.kernels.cpu._elementary``'s ``name`` on every
    element (compiled, not run: the target may be another CPU)."""
    from numba import njit

    from jitgrad.kernels.cpu import _elementary

    fn = getattr(_elementary, name)

    @njit(error_model="numpy")
    def loop(x, out):
        for i in range(x.size):
            out[i] = fn(x[i])

    loop.compile("(float32[::1], float32[::1])")
    return loop.inspect_asm(loop.signatures[0])
