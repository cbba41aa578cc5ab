"""Packing of plain matrices into the GEMM's panels (conv packs its own panels straight from images).

A panel of A holds ``MR`` rows of ``op(a)``, the ``MR`` values of one ``k``
side by side; a panel of B holds ``NR`` columns of ``op(b)``, the ``NR``
values of one ``k`` side by side. Partial panels are zero-padded. See
``_gemm_tile`` for how the micro-kernel reads them.
"""

from __future__ import annotations

import numpy as np

from ._gemm_simd import VEC_BYTES, load, store, vload, vload_masked, vstore, vtranspose_copy, vzero
from ._gemm_tile import MR, _jit, nr_of
from ._jit import njit
from ._tier import shared


@njit(**_jit)
def pack_a_panel(a, trans, i0, p0, p1, ap, off):
    """Pack rows ``i0 : i0 + MR`` of ``op(a)``, its ``k`` in ``p0 : p1``, into ``ap[off:]``, zero-padded."""
    if trans:
        k, m = a.shape
    else:
        m, k = a.shape
    af = a.reshape(a.size)
    rows = min(MR, m - i0)
    for p in range(p0, p1):
        dst = off + (p - p0) * MR
        for r in range(rows):
            src = p * m + i0 + r if trans else (i0 + r) * k + p
            store(ap, dst + r, load(af, src))
        for r in range(rows, MR):
            store(ap, dst + r, 0.0)


@njit(**_jit)
def pack_a(a, trans, ip0, ip1, p0, p1, ap):
    """Pack A panels ``ip0 : ip1`` of ``op(a)``, its ``k`` in ``p0 : p1`` (all of K: ``0 : K``), panel
    ``ip`` at ``ap[(ip - ip0) * (p1 - p0) * MR]`` (as ``pack_b`` places its panels).

    Loop orders follow the source layout: with ``trans`` rows of ``a`` are
    read in full cache lines and dealt out to the panels; otherwise each
    panel reads ``MR`` rows side by side.
    """
    if trans:
        k, m = a.shape
    else:
        m, k = a.shape
    depth = p1 - p0
    af = a.reshape(a.size)
    full = min(ip1, m // MR)
    if trans:
        # Tiles of 16 rows of ``a``: the rows stay in L1 while each panel
        # receives 16 consecutive ``k`` (one run of writes per panel). The MR values of one ``k`` move
        # as whole vectors (``span`` values): those past MR land in the panel's next ``k``, written after
        # them (and may come from the next row of ``a``, never from past its end: a row of ``a`` follows);
        # the panel's last ``k`` value by value. Float32 on Zen 3, 512 x 256 values: 48 -> 39 us.
        lanes = VEC_BYTES // ap.itemsize
        span = -(-MR // lanes) * lanes
        vectors = span <= 2 * MR
        for q0 in range(p0, p1, 16):
            q1 = min(p1, q0 + 16)
            for ip in range(ip0, full):
                for p in range(q0, q1):
                    dst = (ip - ip0) * depth * MR + (p - p0) * MR
                    src = p * m + ip * MR
                    if vectors and p < p1 - 1:
                        for r in range(0, span, lanes):
                            vstore(ap, dst + r, vload(af, src + r))
                    else:
                        for r in range(MR):
                            store(ap, dst + r, load(af, src + r))
    else:
        for ip in range(ip0, full):
            dst = (ip - ip0) * depth * MR
            src = ip * MR * k
            for p in range(p0, p1):
                for r in range(MR):
                    store(ap, dst + (p - p0) * MR + r, load(af, src + r * k + p))
    for ip in range(max(ip0, full), ip1):
        pack_a_panel(a, trans, ip * MR, p0, p1, ap, (ip - ip0) * depth * MR)


@njit(inline="always", **_jit)
def transpose_rows(bf, src, k, bp, off, nr, vectors):
    """Rows ``0 : vectors * lanes`` of the ``k``-long rows at ``bf[src:]`` into the first ``vectors``
    vectors of columns at ``bp[off:]``, whose rows are ``nr`` apart (row ``r`` to column ``r``: a B
    panel's, or a matrix's, ``_gemm.transpose_into``): square blocks of ``lanes`` rows x ``lanes`` k
    transposed in registers, the last ``k % lanes`` by scalar moves."""
    lanes = VEC_BYTES // bp.itemsize
    kv = k - k % lanes
    for p0 in range(0, kv, lanes):
        for v in range(vectors):
            vtranspose_copy(bf, src + v * lanes * k + p0, k, bp, off + p0 * nr + v * lanes, nr)
    for p in range(kv, k):
        dst = off + p * nr
        for j in range(vectors * lanes):
            store(bp, dst + j, load(bf, src + j * k + p))


@njit(**_jit)
def pack_b_panel(b, trans, j0, bp, off):
    """Pack columns ``j0 : j0 + NR`` of ``op(b)`` (all of K) into ``bp[off:]``, zero-padded."""
    nr = nr_of(bp)
    lanes = VEC_BYTES // bp.itemsize
    if trans:
        n, k = b.shape
    else:
        k, n = b.shape
    cols = min(nr, n - j0)
    bf = b.reshape(b.size)
    if trans:
        # Each row of ``b`` is one column of the panel. Its whole vectors of columns (both, or the
        # first of a partial panel: a Linear layer to 10 outputs) by register transposes; the rest
        # of a partial panel zeroed in vectors, then its rows of ``b`` (contiguous reads) moved into
        # their columns one by one. Scalar moves throughout took 0.6-1.0 ns per element on Zen 3 (a
        # 576 x 784 B: 280-460 us, a third of its NT product; 10 columns: 0.1 us more of 128 x 84 x
        # 10's 5 us than with its first 8 transposed).
        whole = cols // lanes
        transpose_rows(bf, j0 * k, k, bp, off, nr, whole)
        if cols < nr:
            zero = vzero(bp)
            for p in range(k):
                for v in range(whole, nr // lanes):
                    vstore(bp, off + p * nr + v * lanes, zero)
            for j in range(whole * lanes, cols):
                src = (j0 + j) * k
                for p in range(k):
                    store(bp, off + p * nr + j, load(bf, src + p))
    elif cols == nr:
        for p in range(k):
            dst = off + p * nr
            src = p * n + j0
            vstore(bp, dst, vload(bf, src))
            vstore(bp, dst + lanes, vload(bf, src + lanes))
    else:
        # Row-major: per ``k`` the ``cols`` values in lane-masked loads (the masked lanes read as 0).
        n0 = min(cols, lanes)
        n1 = cols - lanes
        for p in range(k):
            dst = off + p * nr
            src = p * n + j0
            vstore(bp, dst, vload_masked(bf, src, n0))
            vstore(bp, dst + lanes, vload_masked(bf, src + lanes, n1))


@shared  # the cold step's GEMM and the background's conv backward input both reach it first (_tier)
@njit(**_jit)
def pack_b(b, trans, jp0, jp1, bp):
    """Pack B panels ``jp0 : jp1`` of ``op(b)`` (all of K; panel ``jp`` at ``bp[(jp - jp0) * K * NR]``).

    A transposed ``b`` holds a panel's ``NR`` values of one ``k`` in ``NR``
    different rows: square blocks of them are transposed in registers.
    """
    nr = nr_of(bp)
    lanes = VEC_BYTES // bp.itemsize
    if trans:
        n, k = b.shape
    else:
        k, n = b.shape
    full = min(jp1, n // nr)
    base = jp0 * k * nr
    if trans and jp0 < full:
        # Each row of ``b`` is one column of a panel: whole panels are transposed in registers by
        # ``pack_b_panel``, one panel at a time (its NR rows of ``b`` pass once, in k blocks).
        for jp in range(jp0, full):
            pack_b_panel(b, trans, jp * nr, bp, jp * k * nr - base)
        jp0 = full
    elif not trans and jp0 < full:
        # Row-major B: bands of 8 rows, each read left to right across the panels (8 sequential
        # streams the prefetcher follows; a panel at a time would read one line per row, at a
        # pitch that is often a multiple of 4 KiB).
        bf = b.reshape(b.size)
        for p0 in range(0, k, 8):
            p1 = min(k, p0 + 8)
            for jp in range(jp0, full):
                dst = jp * k * nr - base
                for p in range(p0, p1):
                    src = p * n + jp * nr
                    vstore(bp, dst + p * nr, vload(bf, src))
                    vstore(bp, dst + p * nr + lanes, vload(bf, src + lanes))
        jp0 = full
    for jp in range(jp0, jp1):
        pack_b_panel(b, trans, jp * nr, bp, jp * k * nr - base)
