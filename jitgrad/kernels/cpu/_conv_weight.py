"""Numba kernels of the convolution's weight gradient (``jitgrad.kernels.cpu.conv``), on ``_gemm``.

* ``conv2d_backward_weight``: ``grad_w += g[n] (C_out x P) @ cols[n]^T``
  with ``g`` read in place as A and the im2col rows gathered into B panels.
* ``conv2d_backward_weight_unit``: unit stride and few taps, where as a
  GEMM the taps would fill one B panel mostly with padding: a dot kernel
  (``dot_tile``) on the pitched layout, where both operands are contiguous.

Work is split into tasks of (run of samples, group of tap panels or tiles),
so a small batch still feeds every thread. Each task sums into its own
partial; the partials are summed in a fixed order (deterministic for a
given thread count).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._atomic import new_counter, next_task, share_done
from ._conv_im2col import (channel_offsets, conv_shapes, copy_padded, int32_filled, pack_windows, pixel_offsets,
                           tap_offsets, window_tables)
from ._gemm import MR, _jit, cdiv, gemm_block, nr_of
from ._gemm_simd import VEC_BYTES, data_pointer, load, vfma, vgather, vload, vstore, vzero
from ._isa import ISA
from ._jit import PRANGE_ONLY, njit
from ._tier import tiered


#: Up to this many additions the partials are summed on the calling thread: a second parallel
#: region would cost a wake-up of the pool's threads, ~100 us on the 2-core EPYC VM (an idle vCPU
#: halts; ``bench/omp_wait.py``), more than 256k additions.
SERIAL_SUM_MAX = 1 << 18


@njit(inline="always", **_jit)  # inlined: no compile of its own
def _sum_partials(partial, chunks, q):
    """``gw.flat[q]``: the sum of the ``chunks`` partials of ``conv2d_backward_weight``, in order."""
    s = partial[0, q]
    for chunk in range(1, chunks):
        s += partial[chunk, q]
    return s


@tiered
@njit(parallel=PRANGE_ONLY, **_jit)
def conv2d_backward_weight(x, g, sh, sw, ph, pw, dh, dw, gw, gb, nthreads):
    """``gw, gb = d conv2d / d (w, b)`` contracted with ``g`` (validated; written in place)."""
    n, c_in, h, wd, c_out, kh, kw, h_out, w_out = conv_shapes(x, gw, g)
    npix = h_out * w_out
    k = c_in * kh * kw
    nr = nr_of(gw)
    lanes = nr // 2
    npa = cdiv(c_out, MR)
    npb = cdiv(k, nr)
    padded = ph > 0 or pw > 0
    hp = h + 2 * ph
    wp = wd + 2 * pw
    tap_off = tap_offsets(c_in, kh, kw, dh, dw, hp, wp, npb * nr)
    pix_off = pixel_offsets(h_out, w_out, sh, sw, wp, npix)

    chunks_n = min(n, nthreads)
    groups = 1 if n >= nthreads else min(npb, cdiv(nthreads, n))
    per_group = cdiv(npb, groups)
    groups = cdiv(npb, per_group)
    ntasks = chunks_n * groups
    partial = np.zeros((chunks_n, c_out * k), dtype=gw.dtype)
    bias_partial = np.zeros((chunks_n, c_out), dtype=gw.dtype)
    bp = np.empty((ntasks, per_group * npix * nr), dtype=gw.dtype)
    xpad = np.zeros((ntasks, c_in * hp * wp if padded else 1), dtype=gw.dtype)
    g_flat = g.reshape(g.size)
    xflat = x.reshape(x.size)
    # Typed, not literals: one gemm_block for every caller (see _conv.conv2d_forward).
    zero = np.intp(0)
    one = np.intp(1)
    yes = np.bool_(True)
    no = np.bool_(False)
    counter = new_counter()  # the calling thread waits awake for the other shares (_atomic)
    for t in prange(ntasks):
        next_task(counter)
        chunk = t // groups
        grp = t - chunk * groups
        jp0 = grp * per_group
        jp1 = min(npb, jp0 + per_group)
        b_panels = bp[t]
        for img in range(chunk * n // chunks_n, (chunk + 1) * n // chunks_n):
            if padded:
                src = xpad[t]
                src_base = 0
                copy_padded(xflat, img * c_in * h * wd, 0, c_in, h, wd, ph, pw, src)
            else:
                src = xflat
                src_base = img * c_in * h * wd
            for jp in range(jp0, jp1):
                off = (jp - jp0) * npix * nr
                for p in range(npix):
                    base = src_base + pix_off[p]
                    dst = off + p * nr
                    vstore(b_panels, dst, vgather(src, base, tap_off, jp * nr))
                    vstore(b_panels, dst + lanes, vgather(src, base, tap_off, jp * nr + lanes))
            # A = g[img] (C_out x P) read in place.
            gemm_block(g_flat, img * c_out * npix, MR * npix, npix, one, b_panels, npix * nr, nr, zero, npix,
                       c_out, k - jp0 * nr, zero, npa, zero, jp1 - jp0, partial[chunk], jp0 * nr, k, yes, g_flat, no,
                       zero)
            if grp == 0:
                for co in range(c_out):
                    s = 0.0
                    for p in range(npix):
                        s += load(g_flat, (img * c_out + co) * npix + p)
                    bias_partial[chunk, co] += s
        share_done(counter, t, ntasks)
    gwflat = gw.reshape(gw.size)
    if c_out * k * chunks_n <= SERIAL_SUM_MAX:
        for q in range(c_out * k):
            gwflat[q] = _sum_partials(partial, chunks_n, q)
    else:
        for q in prange(c_out * k):
            gwflat[q] = _sum_partials(partial, chunks_n, q)
    for co in range(c_out):
        s = bias_partial[0, co]
        for chunk in range(1, chunks_n):
            s += bias_partial[chunk, co]
        gb[co] = s


#: Output channels x taps of one register tile of the weight-gradient dot
#: kernel: 8 x 3 with AVX-512's 32 registers, 4 x 3 with AVX2's 16 (see
#: ``_isa``). ``dot_tile`` is written for 8 rows; ``DOT_ROWS`` is a
#: compile-time constant, so with 4 the code of rows 4 to 7 is never emitted.
DOT_ROWS = ISA.dot_rows
DOT_TAPS = 3


@njit(**_jit)
def dot_tile(g, g_off, g_ld, g_next, x, x_off, x_next, t0, t1, t2, nsteps, nimg, part, p_off):
    """``part[p_off + (r * DOT_TAPS + t) * lanes + l] += sum over i, q = l (mod lanes) of
    g[g_off + i * g_next + r * g_ld + q] * x[x_off + i * x_next + t_t + q]`` for the
    ``DOT_ROWS x 3`` tile, ``q < nsteps * lanes``, ``i < nimg`` (a group of samples).

    The weight gradient of a unit-stride convolution on the pitched layout:
    both operands are contiguous in ``q``, so the reduction runs along the
    vector lanes (``3 * DOT_ROWS`` accumulators; per ``lanes`` columns:
    ``DOT_ROWS + 3`` loads and ``3 * DOT_ROWS`` FMAs) with no packing. The accumulators stay in registers over a group
    of samples (a pass over one sample is too short to hide reloading them);
    the lanes are summed once, at the very end.
    """
    lanes = VEC_BYTES // part.itemsize
    a00 = vload(part, p_off)
    a01 = vload(part, p_off + 1 * lanes)
    a02 = vload(part, p_off + 2 * lanes)
    a10 = vload(part, p_off + 3 * lanes)
    a11 = vload(part, p_off + 4 * lanes)
    a12 = vload(part, p_off + 5 * lanes)
    a20 = vload(part, p_off + 6 * lanes)
    a21 = vload(part, p_off + 7 * lanes)
    a22 = vload(part, p_off + 8 * lanes)
    a30 = vload(part, p_off + 9 * lanes)
    a31 = vload(part, p_off + 10 * lanes)
    a32 = vload(part, p_off + 11 * lanes)
    a40 = vzero(part)
    a41 = vzero(part)
    a42 = vzero(part)
    a50 = vzero(part)
    a51 = vzero(part)
    a52 = vzero(part)
    a60 = vzero(part)
    a61 = vzero(part)
    a62 = vzero(part)
    a70 = vzero(part)
    a71 = vzero(part)
    a72 = vzero(part)
    if DOT_ROWS > 4:
        a40 = vload(part, p_off + 12 * lanes)
        a41 = vload(part, p_off + 13 * lanes)
        a42 = vload(part, p_off + 14 * lanes)
        a50 = vload(part, p_off + 15 * lanes)
        a51 = vload(part, p_off + 16 * lanes)
        a52 = vload(part, p_off + 17 * lanes)
        a60 = vload(part, p_off + 18 * lanes)
        a61 = vload(part, p_off + 19 * lanes)
        a62 = vload(part, p_off + 20 * lanes)
        a70 = vload(part, p_off + 21 * lanes)
        a71 = vload(part, p_off + 22 * lanes)
        a72 = vload(part, p_off + 23 * lanes)
    for i in range(nimg):
        g_base = g_off + i * g_next
        x_base = x_off + i * x_next
        for q in range(0, nsteps * lanes, lanes):
            x0 = vload(x, x_base + t0 + q)
            x1 = vload(x, x_base + t1 + q)
            x2 = vload(x, x_base + t2 + q)
            gv = vload(g, g_base + q)
            a00 = vfma(gv, x0, a00)
            a01 = vfma(gv, x1, a01)
            a02 = vfma(gv, x2, a02)
            gv = vload(g, g_base + 1 * g_ld + q)
            a10 = vfma(gv, x0, a10)
            a11 = vfma(gv, x1, a11)
            a12 = vfma(gv, x2, a12)
            gv = vload(g, g_base + 2 * g_ld + q)
            a20 = vfma(gv, x0, a20)
            a21 = vfma(gv, x1, a21)
            a22 = vfma(gv, x2, a22)
            gv = vload(g, g_base + 3 * g_ld + q)
            a30 = vfma(gv, x0, a30)
            a31 = vfma(gv, x1, a31)
            a32 = vfma(gv, x2, a32)
            if DOT_ROWS > 4:
                gv = vload(g, g_base + 4 * g_ld + q)
                a40 = vfma(gv, x0, a40)
                a41 = vfma(gv, x1, a41)
                a42 = vfma(gv, x2, a42)
                gv = vload(g, g_base + 5 * g_ld + q)
                a50 = vfma(gv, x0, a50)
                a51 = vfma(gv, x1, a51)
                a52 = vfma(gv, x2, a52)
                gv = vload(g, g_base + 6 * g_ld + q)
                a60 = vfma(gv, x0, a60)
                a61 = vfma(gv, x1, a61)
                a62 = vfma(gv, x2, a62)
                gv = vload(g, g_base + 7 * g_ld + q)
                a70 = vfma(gv, x0, a70)
                a71 = vfma(gv, x1, a71)
                a72 = vfma(gv, x2, a72)
    vstore(part, p_off, a00)
    vstore(part, p_off + 1 * lanes, a01)
    vstore(part, p_off + 2 * lanes, a02)
    vstore(part, p_off + 3 * lanes, a10)
    vstore(part, p_off + 4 * lanes, a11)
    vstore(part, p_off + 5 * lanes, a12)
    vstore(part, p_off + 6 * lanes, a20)
    vstore(part, p_off + 7 * lanes, a21)
    vstore(part, p_off + 8 * lanes, a22)
    vstore(part, p_off + 9 * lanes, a30)
    vstore(part, p_off + 10 * lanes, a31)
    vstore(part, p_off + 11 * lanes, a32)
    if DOT_ROWS > 4:
        vstore(part, p_off + 12 * lanes, a40)
        vstore(part, p_off + 13 * lanes, a41)
        vstore(part, p_off + 14 * lanes, a42)
        vstore(part, p_off + 15 * lanes, a50)
        vstore(part, p_off + 16 * lanes, a51)
        vstore(part, p_off + 17 * lanes, a52)
        vstore(part, p_off + 18 * lanes, a60)
        vstore(part, p_off + 19 * lanes, a61)
        vstore(part, p_off + 20 * lanes, a62)
        vstore(part, p_off + 21 * lanes, a70)
        vstore(part, p_off + 22 * lanes, a71)
        vstore(part, p_off + 23 * lanes, a72)


@njit(inline="always", **_jit)  # inlined: no compile of its own
def _sum_tile_partials(partial, ntasks, lanes, k, tap_tiles, q):
    """``gw.flat[q]``: the sum over tasks and lanes of its slot in ``conv2d_backward_weight_unit``'s
    partials (tiles of ``DOT_ROWS`` channels x ``DOT_TAPS`` taps x ``lanes``), in order."""
    co = q // k
    tap = q - co * k
    rt = co // DOT_ROWS
    tt = tap // DOT_TAPS
    base = (((rt * tap_tiles + tt) * DOT_ROWS + co - rt * DOT_ROWS) * DOT_TAPS + tap - tt * DOT_TAPS) * lanes
    s = 0.0
    for t in range(ntasks):
        for l in range(lanes):
            s += partial[t, base + l]
    return s


@tiered
@njit(parallel=PRANGE_ONLY, **_jit)
def conv2d_backward_weight_unit(x, g, ph, pw, dh, dw, gw, gb, nthreads):
    """``conv2d_backward_weight`` for unit stride: ``dot_tile`` on the pitched layout.

    Per sample: ``g`` is copied onto the padded input's row pitch (column
    ``q = oh * wp + ow``, zero where ``ow >= w_out``), the input into a
    zero-bordered buffer; then ``grad_w[co, tap] += sum_q g_q[co, q] *
    x_pad[tap_off[tap] + q]`` for every 8 x 3 tile of (channels, taps).
    Tasks are chunks of samples (and, for a small batch, groups of tap
    tiles); each chunk sums into its own partial, reduced in a fixed order.
    """
    n, c_in, h, wd, c_out, kh, kw, h_out, w_out = conv_shapes(x, gw, g)
    npix = h_out * w_out
    k = c_in * kh * kw
    lanes = VEC_BYTES // gw.itemsize
    hp = h + 2 * ph
    wp = wd + 2 * pw
    nq = h_out * wp
    nsteps = cdiv(nq, lanes)
    qpad = nsteps * lanes
    row_tiles = cdiv(c_out, DOT_ROWS)
    tap_tiles = cdiv(k, DOT_TAPS)
    tap_off = tap_offsets(c_in, kh, kw, dh, dw, hp, wp, tap_tiles * DOT_TAPS)
    # Column q of the pitched layout reads g's pixel oh * w_out + ow (none past w_out).
    q_off = int32_filled(qpad + lanes, -1)
    for oh in range(h_out):
        for ow in range(w_out):
            q_off[oh * wp + ow] = oh * w_out + ow
    q_start, q_perm, q_fits = window_tables(q_off, lanes)
    co_off = channel_offsets(c_out, npix)

    chunks_n = min(n, nthreads)
    groups = 1 if n >= nthreads else min(tap_tiles, cdiv(nthreads, n))
    per_group = cdiv(tap_tiles, groups)
    groups = cdiv(tap_tiles, per_group)
    ntasks = chunks_n * groups
    tile_size = DOT_ROWS * DOT_TAPS * lanes
    # Samples per pass over a tile: as many as keep one tile's rows of g
    # (DOT_ROWS x qpad per sample, reread for every tap tile) within 24 KB of
    # L1; for the few-tap convolutions this kernel serves that is usually one,
    # and a pass over one sample is long enough (qpad / lanes steps) to hide
    # reloading the accumulators.
    x_next = c_in * hp * wp
    g_rows = row_tiles * DOT_ROWS
    batch = max(1, min(cdiv(n, chunks_n), (24 << 10) // (DOT_ROWS * qpad * gw.itemsize)))
    g_ld = batch * qpad
    partial = np.zeros((ntasks, row_tiles * tap_tiles * tile_size), dtype=gw.dtype)
    # Rows past c_out stay 0; the slack keeps every load in bounds.
    gq = np.zeros((ntasks, (g_rows + 1) * g_ld), dtype=gw.dtype)
    xpad = np.zeros((ntasks, batch * x_next + 2 * qpad + 2 * lanes), dtype=gw.dtype)
    bias_partial = np.zeros((ntasks, c_out), dtype=gw.dtype)
    g_flat = g.reshape(g.size)
    xflat = x.reshape(x.size)
    counter = new_counter()  # the calling thread waits awake for the other shares (_atomic)
    for t in prange(ntasks):
        next_task(counter)
        chunk = t // groups
        grp = t - chunk * groups
        tt0 = grp * per_group
        tt1 = min(tap_tiles, tt0 + per_group)
        gqt = gq[t]
        # Pointers, not arrays, for the call a vector (see pack_windows).
        g_p = data_pointer(g_flat)
        co_p = data_pointer(co_off)
        q_p = data_pointer(q_off)
        perm_p = data_pointer(q_perm)
        gqt_p = data_pointer(gqt)
        xt = xpad[t]
        part = partial[t]
        img_end = (chunk + 1) * n // chunks_n
        for img0 in range(chunk * n // chunks_n, img_end, batch):
            nimg = min(batch, img_end - img0)
            for i in range(nimg):
                img = img0 + i
                copy_padded(xflat, img * c_in * h * wd, 0, c_in, h, wd, ph, pw, xt[i * x_next:])
                for v in range(nsteps):
                    pack_windows(g_p, img * c_out * npix, g_flat.size - 2 * lanes, co_p, c_out, q_p,
                                 q_start[v], perm_p, q_fits[v], v, gqt_p, i * qpad + v * lanes, g_ld)
                if grp == 0:
                    for co in range(c_out):
                        s = 0.0
                        for p in range(npix):
                            s += load(g_flat, (img * c_out + co) * npix + p)
                        bias_partial[t, co] += s
            for rt in range(row_tiles):
                for tt in range(tt0, tt1):
                    tp = tt * DOT_TAPS
                    dot_tile(gqt, rt * DOT_ROWS * g_ld, g_ld, qpad, xt, 0, x_next,
                             tap_off[tp], tap_off[tp + 1], tap_off[tp + 2], nsteps, nimg, part,
                             (rt * tap_tiles + tt) * tile_size)
        share_done(counter, t, ntasks)
    gwflat = gw.reshape(gw.size)
    if c_out * k * ntasks * lanes <= SERIAL_SUM_MAX:
        for q in range(c_out * k):
            gwflat[q] = _sum_tile_partials(partial, ntasks, lanes, k, tap_tiles, q)
    else:
        for q in prange(c_out * k):
            gwflat[q] = _sum_tile_partials(partial, ntasks, lanes, k, tap_tiles, q)
    for co in range(c_out):
        s = 0.0
        for t in range(ntasks):
            s += bias_partial[t, co]
        gb[co] = s
