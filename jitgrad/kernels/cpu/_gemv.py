"""Matrix-vector products: ``c = op(a) @ op(b)`` when C has one row or one column.

A product with ``M = 1`` or ``N = 1`` reuses nothing: every value of the matrix is used once, so the
GEMM's packing is a second pass over it and its register tile is mostly padding. Its vector is
contiguous whatever the flags (a ``1 x K`` or ``K x 1`` array), and the matrix is read in place in
one of two ways, by the layout of its rows:

* ``dot_rows``: ``y[i] = W[i, :] . x`` for a matrix whose rows run along K (``a @ v``, ``v @ b.T``):
  four rows at a time, each row's products summed in two vector accumulators (eight chains of FMAs
  for the FMA units' latency), the last lanes by masked loads;
* ``axpy_rows``: ``y = sum_k x[k] W[k, :]`` for a matrix whose rows run along C (``v @ b``,
  ``a.T @ v``): four rows at a time added into ``y``, in blocks of ``AXPY_BYTES`` of columns so that the
  block of ``y`` stays in L1 while every row passes.

Both read the matrix as four sequential streams. ``_gemm.gemm_checked`` sends every such product
here, on the calling thread, except a float32 matrix above ``GEMV_TEAM_MIN`` with more than one
thread set, which ``matmul`` runs on the GEMM team in spans of the output (``_team_spans.run_gemv``):
bound by memory, not by the FMA units, such a product needs both cores' share of the bandwidth.
"""

from __future__ import annotations

from ._gemm_simd import (
    VEC_BYTES,
    vbroadcast_load,
    vfma,
    vload,
    vload_masked,
    vstore,
    vstore_masked,
    vsum,
    vzero,
)
from ._jit import FASTMATH, njit

_jit = {"cache": True, "fastmath": FASTMATH, "nogil": True}

#: Matrix elements from which ``matmul`` runs a float32 matrix-vector product on the team
#: (``_team_spans.run_gemv``) when it has more than one thread: 1 MiB, beyond this VM's L2.
GEMV_TEAM_MIN = 1 << 18
#: Bytes of ``y`` that ``axpy_rows`` keeps in L1 while the rows of the matrix pass (half of a 32 KiB L1).
AXPY_BYTES = 16 * 1024


@njit(inline="always", **_jit)
def dot_rows(w, ld, rows, k, x, y):
    """``y[i] = sum_p w[i * ld + p] * x[p]`` for ``i < rows`` (flat arrays)."""
    lanes = VEC_BYTES // w.itemsize
    kv = k - k % (2 * lanes)
    tail = k - kv
    i = 0
    while i + 4 <= rows:
        r0 = i * ld
        r1 = r0 + ld
        r2 = r1 + ld
        r3 = r2 + ld
        s00 = vzero(w)
        s01 = vzero(w)
        s10 = vzero(w)
        s11 = vzero(w)
        s20 = vzero(w)
        s21 = vzero(w)
        s30 = vzero(w)
        s31 = vzero(w)
        for p in range(0, kv, 2 * lanes):
            x0 = vload(x, p)
            x1 = vload(x, p + lanes)
            s00 = vfma(vload(w, r0 + p), x0, s00)
            s01 = vfma(vload(w, r0 + p + lanes), x1, s01)
            s10 = vfma(vload(w, r1 + p), x0, s10)
            s11 = vfma(vload(w, r1 + p + lanes), x1, s11)
            s20 = vfma(vload(w, r2 + p), x0, s20)
            s21 = vfma(vload(w, r2 + p + lanes), x1, s21)
            s30 = vfma(vload(w, r3 + p), x0, s30)
            s31 = vfma(vload(w, r3 + p + lanes), x1, s31)
        if tail:
            n0 = min(tail, lanes)
            n1 = tail - n0
            x0 = vload_masked(x, kv, n0)
            x1 = vload_masked(x, kv + lanes, n1)
            s00 = vfma(vload_masked(w, r0 + kv, n0), x0, s00)
            s01 = vfma(vload_masked(w, r0 + kv + lanes, n1), x1, s01)
            s10 = vfma(vload_masked(w, r1 + kv, n0), x0, s10)
            s11 = vfma(vload_masked(w, r1 + kv + lanes, n1), x1, s11)
            s20 = vfma(vload_masked(w, r2 + kv, n0), x0, s20)
            s21 = vfma(vload_masked(w, r2 + kv + lanes, n1), x1, s21)
            s30 = vfma(vload_masked(w, r3 + kv, n0), x0, s30)
            s31 = vfma(vload_masked(w, r3 + kv + lanes, n1), x1, s31)
        y[i] = vsum(s00) + vsum(s01)
        y[i + 1] = vsum(s10) + vsum(s11)
        y[i + 2] = vsum(s20) + vsum(s21)
        y[i + 3] = vsum(s30) + vsum(s31)
        i += 4
    while i < rows:
        r0 = i * ld
        s00 = vzero(w)
        s01 = vzero(w)
        for p in range(0, kv, 2 * lanes):
            s00 = vfma(vload(w, r0 + p), vload(x, p), s00)
            s01 = vfma(vload(w, r0 + p + lanes), vload(x, p + lanes), s01)
        if tail:
            n0 = min(tail, lanes)
            s00 = vfma(vload_masked(w, r0 + kv, n0), vload_masked(x, kv, n0), s00)
            s01 = vfma(vload_masked(w, r0 + kv + lanes, tail - n0), vload_masked(x, kv + lanes, tail - n0), s01)
        y[i] = vsum(s00) + vsum(s01)
        i += 1


@njit(inline="always", **_jit)
def axpy_rows(w, ld, k, cols, x, y):
    """``y[j] = sum_p x[p] * w[p * ld + j]`` for ``j < cols`` (flat arrays)."""
    lanes = VEC_BYTES // w.itemsize
    block = AXPY_BYTES // w.itemsize
    for j0 in range(0, cols, block):
        j1 = min(cols, j0 + block)
        jv = j1 - (j1 - j0) % lanes
        zero = vzero(w)
        for j in range(j0, jv, lanes):
            vstore(y, j, zero)
        if jv < j1:
            vstore_masked(y, jv, zero, j1 - jv)
        p = 0
        while p + 4 <= k:
            a0 = vbroadcast_load(x, p)
            a1 = vbroadcast_load(x, p + 1)
            a2 = vbroadcast_load(x, p + 2)
            a3 = vbroadcast_load(x, p + 3)
            r0 = p * ld
            r1 = r0 + ld
            r2 = r1 + ld
            r3 = r2 + ld
            for j in range(j0, jv, lanes):
                acc = vfma(a0, vload(w, r0 + j), vload(y, j))
                acc = vfma(a1, vload(w, r1 + j), acc)
                acc = vfma(a2, vload(w, r2 + j), acc)
                vstore(y, j, vfma(a3, vload(w, r3 + j), acc))
            if jv < j1:
                t = j1 - jv
                acc = vfma(a0, vload_masked(w, r0 + jv, t), vload_masked(y, jv, t))
                acc = vfma(a1, vload_masked(w, r1 + jv, t), acc)
                acc = vfma(a2, vload_masked(w, r2 + jv, t), acc)
                vstore_masked(y, jv, vfma(a3, vload_masked(w, r3 + jv, t), acc), t)
            p += 4
        while p < k:
            a0 = vbroadcast_load(x, p)
            r0 = p * ld
            for j in range(j0, jv, lanes):
                vstore(y, j, vfma(a0, vload(w, r0 + j), vload(y, j)))
            if jv < j1:
                t = j1 - jv
                vstore_masked(y, jv, vfma(a0, vload_masked(w, r0 + jv, t), vload_masked(y, jv, t)), t)
            p += 1


def gemv_form(m, trans_a, trans_b):
    """``(matrix_is_b, dot)`` of a product with ``m`` rows of C and one row or column: the matrix is ``b``
    (``c = x @ op(b)``, x being a's K values) when ``m == 1``, else ``a`` (``c = op(a) @ x``); ``dot``: its
    rows run along K (``dot_rows``), else along C (``axpy_rows``)."""
    return m == 1, (trans_b if m == 1 else not trans_a)


#: :func:`gemv_form` for the kernels (the same source; ``_team_spans.run_gemv`` calls the Python one).
gemv_form_jit = njit(inline="always", **_jit)(gemv_form)


@njit(**_jit)
def gemv(a, b, trans_a, trans_b, c):
    """``c = op(a) @ op(b)`` for C-contiguous arrays with ``c.shape[0] == 1`` or ``c.shape[1] == 1``
    (checked by the caller, as the sizes and the overlaps are)."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    af = a.reshape(a.size)
    bf = b.reshape(b.size)
    cf = c.reshape(c.size)
    # The matrix w and the vector x. One call site of each kernel (each inlined copy is compiled again).
    matrix_is_b, dot = gemv_form_jit(m, trans_a, trans_b)
    w, x, size = (bf, af, n) if matrix_is_b else (af, bf, m)
    if dot:
        dot_rows(w, k, size, k, x, cf)  # w: size rows of k (b transposed, or a)
    else:
        axpy_rows(w, size, k, size, x, cf)  # w: k rows of size (b, or a transposed)
