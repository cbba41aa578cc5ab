"""Numba kernels behind ``jitgrad.kernels.cpu.conv``: convolution as GEMM on ``_gemm``'s micro-kernel.

Geometry is reduced to offset tables into the (zero-padded) image of one
sample: ``tap_off[k]`` for tap ``k = (c, i, j)`` and ``pix_off[p]`` for
output pixel ``p = (oh, ow)``, so ``x_pad[tap_off[k] + pix_off[p]]`` is the
im2col matrix ``cols[k, p]`` whatever the stride, padding and dilation.
Padding is a zero border in a per-thread copy of the sample (zeroed once,
only the interior rewritten per sample), so no loop checks bounds.

* ``conv2d``: ``y[n] = W (C_out x K) @ cols[n] (K x P)``, written in place
  into ``y``, bias folded into the micro-kernel's initial accumulators. W
  is packed once; each task packs the im2col columns of its pixels. A
  vector of pixels whose inputs lie within two vectors is fetched with two
  loads and a permute (``vpermute2``), otherwise with a hardware gather.
* ``conv2d_backward_input``: ``dcols = W^T @ g[n]`` (W read in place as
  the A operand) into a per-thread workspace, then col2im: each tap's
  row of ``dcols`` is added into the padded input gradient. With unit
  stride ``g`` is packed onto the padded input's row pitch (column
  ``q = oh * wp + ow``, zero where ``ow >= w_out``), so a tap's col2im is one
  contiguous run. A task owns whole channels of one sample: its writes
  are disjoint from every other task's (no atomics, deterministic).
* ``conv2d_backward_weight``: ``grad_w += g[n] (C_out x P) @ cols[n]^T``
  with ``g`` read in place as A and the im2col rows gathered into B panels.
  With unit stride and few taps, ``conv2d_backward_weight_unit`` instead:
  a dot kernel on the pitched layout, where both operands are contiguous.
  Each task sums into its own partial; the partials are summed in a fixed
  order (deterministic for a given thread count).

Work is split into tasks of (sample, slice) where the slice is a group of
pixel panels (forward), of channels (backward input) or of tap panels or
tiles (backward weight), so a small batch still feeds every thread;
consecutive tasks form one chunk per thread, whose workspaces are
allocated before the parallel loop (never inside it).

Offsets are int32: one padded sample must hold fewer than 2**31 elements.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._gemm import MR, _jit, cdiv, gemm_block, nr_of, pack_a, pack_b
from ._gemm_simd import (HAS_PERMUTE2, VEC_BYTES, load, store, vfma, vgather, vload, vload_masked, vpermute2, vstore,
                         vstore_masked, vzero)
from ._isa import ISA


@njit(**_jit)
def tap_offsets(c_in, kh, kw, dh, dw, hp, wp, count):
    """``off[k]`` for ``k = (c * kh + i) * kw + j``: tap ``(c, i, j)``'s offset in a padded sample.

    Entries past ``c_in * kh * kw`` (up to ``count``) are 0, a valid index.
    """
    off = np.zeros(count, dtype=np.int32)
    k = 0
    for c in range(c_in):
        for i in range(kh):
            for j in range(kw):
                off[k] = c * hp * wp + i * dh * wp + j * dw
                k += 1
    return off


@njit(**_jit)
def pixel_offsets(h_out, w_out, sh, sw, wp, count):
    """``off[p]`` for ``p = oh * w_out + ow``: the top-left of pixel ``p``'s window.

    Entries past ``h_out * w_out`` (up to ``count``) are 0, a valid index.
    """
    off = np.zeros(count, dtype=np.int32)
    for oh in range(h_out):
        for ow in range(w_out):
            off[oh * w_out + ow] = oh * sh * wp + ow * sw
    return off


@njit(**_jit)
def window_tables(offsets, lanes):
    """For each vector of ``lanes`` consecutive ``offsets``: the window it spans.

    Negative offsets mark lanes that are 0. Returns ``(start, perm, fits)``:
    vector ``v``'s lanes are ``start[v] + perm[v * lanes + l]`` (``perm`` is -1
    for a zero lane) and ``fits[v]`` says whether they lie within
    ``2 * lanes`` of ``start[v]`` (then ``vpermute2`` fetches them; otherwise
    a gather does).
    """
    nvec = offsets.size // lanes
    start = np.zeros(nvec, dtype=np.int32)
    perm = np.full(nvec * lanes, -1, dtype=np.int32)
    fits = np.zeros(nvec, dtype=np.bool_)
    for v in range(nvec):
        lo = 2**31 - 1
        hi = -1
        for q in range(v * lanes, (v + 1) * lanes):
            if offsets[q] >= 0:
                lo = min(lo, offsets[q])
                hi = max(hi, offsets[q])
        if hi < 0:
            lo = 0
        start[v] = lo
        fits[v] = hi - lo < 2 * lanes
        for q in range(v * lanes, (v + 1) * lanes):
            if offsets[q] >= 0:
                perm[q] = offsets[q] - lo
    return start, perm, fits


@njit(**_jit)
def pack_windows(src, base, src_end, tap_off, ntaps, offsets, start, perm, fits, v, panels, dst, stride):
    """``panels[dst + t * stride + l] = src[base + tap_off[t] + offsets[v * lanes + l]]`` for every
    tap ``t`` (0 where the offset is negative): vector ``v`` of an im2col panel."""
    lanes = VEC_BYTES // panels.itemsize
    if HAS_PERMUTE2 and fits[v]:
        for t in range(ntaps):
            b = base + tap_off[t]
            if b + start[v] <= src_end:
                vstore(panels, dst + t * stride, vpermute2(src, b + start[v], perm, v * lanes))
            else:
                vstore(panels, dst + t * stride, vgather(src, b, offsets, v * lanes))
    else:
        for t in range(ntaps):
            vstore(panels, dst + t * stride, vgather(src, base + tap_off[t], offsets, v * lanes))


@njit(**_jit)
def copy_padded(x, base, c_first, c_count, h, w, ph, pw, dst):
    """Copy channels ``c_first : c_first + c_count`` of a sample (flat ``x`` at ``base``)
    into the interior of the zero-bordered ``dst`` (``c_count x (h + 2ph) x (w + 2pw)``)."""
    lanes = VEC_BYTES // dst.itemsize
    hp = h + 2 * ph
    wp = w + 2 * pw
    for c in range(c_count):
        for r in range(h):
            src = base + ((c_first + c) * h + r) * w
            d = (c * hp + r + ph) * wp + pw
            for q in range(0, w, lanes):
                count = min(lanes, w - q)
                vstore_masked(dst, d + q, vload_masked(x, src + q, count), count)


@njit(parallel=True, **_jit)
def conv2d_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, y, nthreads):
    """``y = conv2d(x, w) (+ bias)`` (validated arguments; ``y`` written in place)."""
    n, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    h_out = y.shape[2]
    w_out = y.shape[3]
    npix = h_out * w_out
    k = c_in * kh * kw
    nr = nr_of(y)
    lanes = nr // 2
    npa = cdiv(c_out, MR)
    npb = cdiv(npix, nr)
    ap = np.empty(npa * k * MR, dtype=y.dtype)
    pack_a(w.reshape(c_out, k), False, 0, npa, ap)
    bias_p = np.zeros(npa * MR, dtype=y.dtype)
    if has_bias:
        bias_p[:c_out] = bias
    padded = ph > 0 or pw > 0
    hp = h + 2 * ph
    wp = wd + 2 * pw
    tap_off = tap_offsets(c_in, kh, kw, dh, dw, hp, wp, k)
    pix_off = pixel_offsets(h_out, w_out, sh, sw, wp, npb * nr)
    win_start, win_perm, win_fits = window_tables(pix_off, lanes)

    groups = 1 if n >= nthreads else min(npb, cdiv(nthreads, n))
    per_group = cdiv(npb, groups)
    groups = cdiv(npb, per_group)
    ntasks = n * groups
    nchunks = min(ntasks, nthreads)
    xpad = np.zeros((nchunks, c_in * hp * wp if padded else 1), dtype=y.dtype)
    bp = np.empty((nchunks, per_group * k * nr), dtype=y.dtype)
    xflat = x.reshape(x.size)
    yflat = y.reshape(y.size)
    for ch in prange(nchunks):
        last = -1
        for t in range(ch * ntasks // nchunks, (ch + 1) * ntasks // nchunks):
            img = t // groups
            grp = t - img * groups
            if padded:
                src = xpad[ch]
                src_base = 0
                if img != last:
                    copy_padded(xflat, img * c_in * h * wd, 0, c_in, h, wd, ph, pw, src)
                    last = img
            else:
                src = xflat
                src_base = img * c_in * h * wd
            jp0 = grp * per_group
            jp1 = min(npb, jp0 + per_group)
            panels = bp[ch]
            src_end = src.size - 2 * lanes
            for jp in range(jp0, jp1):
                for v in range(2 * jp, 2 * jp + 2):
                    pack_windows(src, src_base, src_end, tap_off, k, pix_off, win_start, win_perm, win_fits, v,
                                 panels, (jp - jp0) * k * nr + (v - 2 * jp) * lanes, nr)
            gemm_block(ap, 0, k * MR, 1, MR, panels, k * nr, nr, 0, k, c_out, npix - jp0 * nr, 0, npa, 0, jp1 - jp0,
                       yflat, img * c_out * npix + jp0 * nr, npix, False, bias_p, has_bias)


@njit(parallel=True, **_jit)
def conv2d_backward_input(g, w, sh, sw, ph, pw, dh, dw, gx, nthreads):
    """``gx = d conv2d / d x`` contracted with ``g`` (validated arguments; ``gx`` written in place).

    With unit stride the columns of ``dcols`` are laid out on the padded
    input's row pitch (column ``q = oh * wp + ow``, zero where ``ow >= w_out``,
    because ``g`` is packed that way), so each tap's col2im is one contiguous
    run ``gpad[tap_off + q] += dcols[tap, q]`` instead of ``h_out`` short rows.
    """
    n, c_in, h, wd = gx.shape
    c_out, _, kh, kw = w.shape
    h_out = g.shape[2]
    w_out = g.shape[3]
    npix = h_out * w_out
    taps = kh * kw
    k = c_in * taps
    nr = nr_of(gx)
    lanes = nr // 2
    npa = cdiv(k, MR)
    # A = W^T (K x C_out), read in place: A[k, co] = w[co, k].
    wflat = w.reshape(w.size)
    hp = h + 2 * ph
    wp = wd + 2 * pw
    padded = ph > 0 or pw > 0
    unit = sh == 1 and sw == 1
    ncols = h_out * wp if unit else npix
    last_col = (h_out - 1) * wp + w_out
    npb = cdiv(ncols, nr)

    groups = 1 if n >= nthreads else min(c_in, cdiv(nthreads, n))
    per_group = cdiv(c_in, groups)
    groups = cdiv(c_in, per_group)
    ntasks = n * groups
    nchunks = min(ntasks, nthreads)
    ld = npb * nr
    rows = (cdiv(per_group * taps, MR) + 1) * MR
    bp = np.empty((nchunks, npb * c_out * nr), dtype=gx.dtype)
    dcols = np.empty((nchunks, rows * ld), dtype=gx.dtype)
    gpad = np.empty((nchunks, per_group * hp * wp if padded else 1), dtype=gx.dtype)
    g3 = g.reshape(n, c_out, npix)
    if unit:
        # Column q = oh * wp + ow of the pitched layout reads g's pixel oh * w_out + ow (none past w_out).
        q_off = np.full(ld, -1, dtype=np.int32)
        for oh in range(h_out):
            for ow in range(w_out):
                q_off[oh * wp + ow] = oh * w_out + ow
    else:
        q_off = np.zeros(ld, dtype=np.int32)
    q_start, q_perm, q_fits = window_tables(q_off, lanes)
    co_off = np.arange(c_out).astype(np.int32) * np.int32(npix)
    gflat = g.reshape(g.size)
    gxflat = gx.reshape(gx.size)
    for ch in prange(nchunks):
        last = -1
        for t in range(ch * ntasks // nchunks, (ch + 1) * ntasks // nchunks):
            img = t // groups
            grp = t - img * groups
            c0 = grp * per_group
            c1 = min(c_in, c0 + per_group)
            panels = bp[ch]
            if img != last:
                if unit:
                    for v in range(2 * npb):
                        jp = v // 2
                        pack_windows(gflat, img * c_out * npix, gflat.size - 2 * lanes, co_off, c_out, q_off,
                                     q_start, q_perm, q_fits, v, panels, jp * c_out * nr + (v - 2 * jp) * lanes, nr)
                else:
                    pack_b(g3[img], False, 0, npb, panels)
                last = img
            ip0 = (c0 * taps) // MR
            ip1 = cdiv(c1 * taps, MR)
            work = dcols[ch]
            # dcols row r holds K-row ip0 * MR + r.
            gemm_block(wflat, 0, MR, 1, k, panels, c_out * nr, nr, 0, c_out, k, ncols, ip0, ip1, 0, npb,
                       work, -ip0 * MR * ld, ld, False, wflat, False)
            if padded:
                dst = gpad[ch]
                dst_base = -c0 * hp * wp
                for q in range((c1 - c0) * hp * wp):
                    store(dst, q, 0.0)
            else:
                dst = gxflat
                dst_base = img * c_in * h * wd
                for q in range(dst_base + c0 * h * wd, dst_base + c1 * h * wd):
                    store(dst, q, 0.0)
            for c in range(c0, c1):
                for i in range(kh):
                    for j in range(kw):
                        r = (c * kh + i) * kw + j - ip0 * MR
                        base = dst_base + c * hp * wp + i * dh * wp + j * dw
                        if unit:
                            # Up to the last valid column only: the padding columns of the
                            # last row would run into the next channel (another task's).
                            srow = r * ld
                            for q in range(last_col):
                                store(dst, base + q, load(dst, base + q) + load(work, srow + q))
                            continue
                        for oh in range(h_out):
                            drow = base + oh * sh * wp
                            srow = r * ld + oh * w_out
                            if sw == 1:
                                for ow in range(w_out):
                                    store(dst, drow + ow, load(dst, drow + ow) + load(work, srow + ow))
                            else:
                                for ow in range(w_out):
                                    q = drow + ow * sw
                                    store(dst, q, load(dst, q) + load(work, srow + ow))
            if padded:
                for c in range(c0, c1):
                    for rr in range(h):
                        src = ((c - c0) * hp + rr + ph) * wp + pw
                        d = ((img * c_in + c) * h + rr) * wd
                        for q in range(wd):
                            store(gxflat, d + q, load(dst, src + q))


@njit(parallel=True, **_jit)
def conv2d_backward_weight(x, g, sh, sw, ph, pw, dh, dw, gw, gb, nthreads):
    """``gw, gb = d conv2d / d (w, b)`` contracted with ``g`` (validated; written in place)."""
    n, c_in, h, wd = x.shape
    c_out, _, kh, kw = gw.shape
    h_out = g.shape[2]
    w_out = g.shape[3]
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
    for t in prange(ntasks):
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
            gemm_block(g_flat, img * c_out * npix, MR * npix, npix, 1, b_panels, npix * nr, nr, 0, npix,
                       c_out, k - jp0 * nr, 0, npa, 0, jp1 - jp0, partial[chunk], jp0 * nr, k, True, g_flat, False)
            if grp == 0:
                for co in range(c_out):
                    s = 0.0
                    for p in range(npix):
                        s += load(g_flat, (img * c_out + co) * npix + p)
                    bias_partial[chunk, co] += s
    gwflat = gw.reshape(gw.size)
    for q in prange(c_out * k):
        s = partial[0, q]
        for chunk in range(1, chunks_n):
            s += partial[chunk, q]
        gwflat[q] = s
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


@njit(parallel=True, **_jit)
def conv2d_backward_weight_unit(x, g, ph, pw, dh, dw, gw, gb, nthreads):
    """``conv2d_backward_weight`` for unit stride: ``dot_tile`` on the pitched layout.

    Per sample: ``g`` is copied onto the padded input's row pitch (column
    ``q = oh * wp + ow``, zero where ``ow >= w_out``), the input into a
    zero-bordered buffer; then ``grad_w[co, tap] += sum_q g_q[co, q] *
    x_pad[tap_off[tap] + q]`` for every 8 x 3 tile of (channels, taps).
    Tasks are chunks of samples (and, for a small batch, groups of tap
    tiles); each chunk sums into its own partial, reduced in a fixed order.
    """
    n, c_in, h, wd = x.shape
    c_out, _, kh, kw = gw.shape
    h_out = g.shape[2]
    w_out = g.shape[3]
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
    q_off = np.full(qpad + lanes, -1, dtype=np.int32)
    for oh in range(h_out):
        for ow in range(w_out):
            q_off[oh * wp + ow] = oh * w_out + ow
    q_start, q_perm, q_fits = window_tables(q_off, lanes)
    co_off = np.arange(c_out).astype(np.int32) * np.int32(npix)

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
    for t in prange(ntasks):
        chunk = t // groups
        grp = t - chunk * groups
        tt0 = grp * per_group
        tt1 = min(tap_tiles, tt0 + per_group)
        gqt = gq[t]
        xt = xpad[t]
        part = partial[t]
        img_end = (chunk + 1) * n // chunks_n
        for img0 in range(chunk * n // chunks_n, img_end, batch):
            nimg = min(batch, img_end - img0)
            for i in range(nimg):
                img = img0 + i
                copy_padded(xflat, img * c_in * h * wd, 0, c_in, h, wd, ph, pw, xt[i * x_next:])
                for v in range(nsteps):
                    pack_windows(g_flat, img * c_out * npix, g_flat.size - 2 * lanes, co_off, c_out, q_off,
                                 q_start, q_perm, q_fits, v, gqt, i * qpad + v * lanes, g_ld)
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
    gwflat = gw.reshape(gw.size)
    for q in prange(c_out * k):
        co = q // k
        tap = q - co * k
        rt = co // DOT_ROWS
        tt = tap // DOT_TAPS
        slot = ((rt * tap_tiles + tt) * DOT_ROWS + co - rt * DOT_ROWS) * DOT_TAPS + tap - tt * DOT_TAPS
        s = 0.0
        for t in range(ntasks):
            base = slot * lanes
            for l in range(lanes):
                s += partial[t, base + l]
        gwflat[q] = s
    for co in range(c_out):
        s = 0.0
        for t in range(ntasks):
            s += bias_partial[t, co]
        gb[co] = s
