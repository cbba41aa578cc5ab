"""Numba kernels behind ``jitgrad.kernels.cpu.conv``: convolution as GEMM on ``_gemm``'s micro-kernel.

The im2col offset tables and packing live in ``_conv_im2col``, the weight
gradients in ``_conv_weight``; this module holds the forward and the input
gradient.

* ``conv2d``: ``y[n] = W (C_out x K) @ cols[n] (K x P)``, written in place
  into ``y``, bias folded into the micro-kernel's initial accumulators. W
  is packed once; each task packs the im2col columns of its pixels.
* ``conv2d_backward_input``: ``dcols = W^T @ g[n]`` (W read in place as
  the A operand) into a per-thread workspace, then col2im: each tap's
  row of ``dcols`` is added into the padded input gradient. With unit
  stride ``g`` is packed onto the padded input's row pitch (column
  ``q = oh * wp + ow``, zero where ``ow >= w_out``), so a tap's col2im is one
  contiguous run. A task owns whole channels of one sample: its writes
  are disjoint from every other task's (no atomics, deterministic).

Work is split into tasks of (sample, slice) where the slice is a group of
pixel panels (forward), of channels (backward input) or of tap panels or
tiles (backward weight), so a small batch still feeds every thread;
consecutive tasks form one chunk per thread, whose workspaces are
allocated before the parallel loop (never inside it).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._atomic import new_counter, next_task, share_done
from ._conv_im2col import (channel_offsets, conv_shapes, copy_padded, int32_filled, pack_windows, pixel_offsets,
                           tap_offsets, window_tables)
from ._gemm import MR, _jit, cdiv, gemm_block, nr_of, pack_a, pack_b
from ._gemm_simd import data_pointer, load, store
from ._jit import PRANGE_ONLY, njit
from ._tier import tiered


@tiered
@njit(parallel=PRANGE_ONLY, **_jit)
def conv2d_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, y, nthreads, epi):
    """``y = act(conv2d(x, w) (+ bias))`` (validated arguments; ``y`` written in place; ``epi``: the
    activation bits of ``_gemm_epilogue``, applied in the GEMM's store)."""
    n, c_in, h, wd, c_out, kh, kw, h_out, w_out = conv_shapes(x, w, y)
    npix = h_out * w_out
    k = c_in * kh * kw
    nr = nr_of(y)
    lanes = nr // 2
    npa = cdiv(c_out, MR)
    npb = cdiv(npix, nr)
    ap = np.empty(npa * k * MR, dtype=y.dtype)
    # Typed zero/one/False, not literals: Numba would compile pack_a and
    # gemm_block once more per pattern of literal arguments (see _gemm.gemm_cols).
    zero = np.intp(0)
    one = np.intp(1)
    mr = np.intp(MR)
    no = np.bool_(False)
    pack_a(w.reshape(c_out, k), no, zero, npa, zero, k, ap)
    bias_p = np.empty(npa * MR, dtype=y.dtype)  # not np.zeros: see _conv_im2col.int32_filled
    for co in range(npa * MR):
        bias_p[co] = 0.0
    if has_bias:
        # A loop, not ``bias_p[:c_out] = bias``: compiled without parallel=True (the serial twin,
        # see _tier) a slice assignment pulls in Numba's broadcast-error message (unicode
        # formatting, ~2.5 s of compile).
        for co in range(c_out):
            bias_p[co] = bias[co]
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
    counter = new_counter()  # the calling thread waits awake for the other shares (_atomic)
    for ch in prange(nchunks):
        next_task(counter)
        # Pointers, not arrays, for the call a vector (see pack_windows).
        tap_p = data_pointer(tap_off)
        pix_p = data_pointer(pix_off)
        perm_p = data_pointer(win_perm)
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
            src_p = data_pointer(src)
            panels_p = data_pointer(panels)
            for jp in range(jp0, jp1):
                for v in range(2 * jp, 2 * jp + 2):
                    pack_windows(src_p, src_base, src_end, tap_p, k, pix_p, win_start[v], perm_p, win_fits[v], v,
                                 panels_p, (jp - jp0) * k * nr + (v - 2 * jp) * lanes, nr)
            gemm_block(ap, zero, k * MR, one, mr, panels, k * nr, nr, zero, k, c_out, npix - jp0 * nr, zero, npa,
                       zero, jp1 - jp0, yflat, img * c_out * npix + jp0 * nr, npix, no, bias_p, has_bias, epi)
        share_done(counter, ch, nchunks)


@tiered
@njit(parallel=PRANGE_ONLY, **_jit)
def conv2d_backward_input(g, w, sh, sw, ph, pw, dh, dw, gx, nthreads):
    """``gx = d conv2d / d x`` contracted with ``g`` (validated arguments; ``gx`` written in place).

    With unit stride the columns of ``dcols`` are laid out on the padded
    input's row pitch (column ``q = oh * wp + ow``, zero where ``ow >= w_out``,
    because ``g`` is packed that way), so each tap's col2im is one contiguous
    run ``gpad[tap_off + q] += dcols[tap, q]`` instead of ``h_out`` short rows.
    """
    n, c_in, h, wd, c_out, kh, kw, h_out, w_out = conv_shapes(gx, w, g)
    npix = h_out * w_out
    taps = kh * kw
    k = c_in * taps
    nr = nr_of(gx)
    lanes = nr // 2
    # A = W^T (K x C_out), read in place: A[k, co] = w[co, k].
    wflat = w.reshape(w.size)
    zero = np.intp(0)  # typed, not literals (see conv2d_forward)
    one = np.intp(1)
    mr = np.intp(MR)
    no = np.bool_(False)
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
        q_off = int32_filled(ld, -1)
        for oh in range(h_out):
            for ow in range(w_out):
                q_off[oh * wp + ow] = oh * w_out + ow
    else:
        q_off = int32_filled(ld, 0)
    q_start, q_perm, q_fits = window_tables(q_off, lanes)
    co_off = channel_offsets(c_out, npix)
    gflat = g.reshape(g.size)
    gxflat = gx.reshape(gx.size)
    counter = new_counter()  # the calling thread waits awake for the other shares (_atomic)
    for ch in prange(nchunks):
        next_task(counter)
        # Pointers, not arrays, for the call a vector (see pack_windows).
        g_p = data_pointer(gflat)
        co_p = data_pointer(co_off)
        q_p = data_pointer(q_off)
        perm_p = data_pointer(q_perm)
        last = -1
        for t in range(ch * ntasks // nchunks, (ch + 1) * ntasks // nchunks):
            img = t // groups
            grp = t - img * groups
            c0 = grp * per_group
            c1 = min(c_in, c0 + per_group)
            panels = bp[ch]
            if img != last:
                if unit:
                    panels_p = data_pointer(panels)
                    for v in range(2 * npb):
                        jp = v // 2
                        pack_windows(g_p, img * c_out * npix, gflat.size - 2 * lanes, co_p, c_out, q_p,
                                     q_start[v], perm_p, q_fits[v], v, panels_p, jp * c_out * nr + (v - 2 * jp) * lanes,
                                     nr)
                else:
                    pack_b(g3[img], no, zero, npb, panels)
                last = img
            ip0 = (c0 * taps) // MR
            ip1 = cdiv(c1 * taps, MR)
            work = dcols[ch]
            # dcols row r holds K-row ip0 * MR + r.
            gemm_block(wflat, zero, mr, one, k, panels, c_out * nr, nr, zero, c_out, k, ncols, ip0, ip1, zero, npb,
                       work, -ip0 * MR * ld, ld, no, wflat, no, zero)
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
        share_done(counter, ch, nchunks)
