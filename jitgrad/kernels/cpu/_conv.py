"""Numba kernels behind ``jitgrad.kernels.cpu.conv``: im2col straight into GEMM panels.

All three kernels are GEMMs on the packed panels of ``_gemm`` (same
micro-kernel as ``matmul``); what is specific to convolution is how the
panels are filled:

* Geometry is reduced to two offset tables into the (zero-padded) image of
  one sample: ``tap_off[k]`` for tap ``k = (c, i, j)`` and ``pix_off[p]`` for
  output pixel ``p = (oh, ow)``, so ``x_pad[tap_off[k] + pix_off[p]]`` is
  the im2col matrix ``cols[k, p]`` whatever the stride, padding and
  dilation. Padding is a zero border in a per-thread copy of the sample
  (zeroed once, only the interior is rewritten per sample), so the packing
  loops have no bounds checks.
* ``conv2d``: ``y[n] = W (C_out x K) @ cols[n] (K x P)``. W is packed once;
  each task packs the columns of its pixels and writes ``y[n]`` in place.
* ``conv2d_backward_input``: ``dcols = W^T @ g[n]`` into a per-thread
  workspace, then col2im: each tap's rows are added into the padded input
  gradient. A task owns whole channels of one sample, so its writes are
  disjoint from every other task's (no atomics, deterministic).
* ``conv2d_backward_weight``: ``grad_w += g[n] (C_out x P) @ cols[n]^T``,
  summed over the samples of a chunk into a per-chunk partial, the partials
  then summed in a fixed order (deterministic for a given thread count).

Work is split into tasks of (sample, slice) where the slice is a group of
pixel panels (forward), of channels (backward input) or of tap panels
(backward weight), so a small batch still feeds every thread; consecutive
tasks are grouped into one chunk per thread so that workspaces are
allocated per chunk, before the parallel loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._gemm import MR, _jit, cdiv, gemm_block, nr_of, pack_a, pack_b
from ._gemm_simd import load, store, vgather, vstore


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
def copy_padded(x, base, c_first, c_count, h, w, ph, pw, dst):
    """Copy channels ``c_first : c_first + c_count`` of a sample (flat ``x`` at ``base``)
    into the interior of the zero-bordered ``dst`` (``c_count x (h + 2ph) x (w + 2pw)``)."""
    hp = h + 2 * ph
    wp = w + 2 * pw
    for c in range(c_count):
        for r in range(h):
            src = base + ((c_first + c) * h + r) * w
            d = (c * hp + r + ph) * wp + pw
            for q in range(w):
                store(dst, d + q, load(x, src + q))


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

    groups = 1 if n >= nthreads else min(npb, cdiv(nthreads, n))
    per_group = cdiv(npb, groups)
    groups = cdiv(npb, per_group)
    ntasks = n * groups
    nchunks = min(ntasks, nthreads)
    xpad = np.zeros((nchunks, c_in * hp * wp if padded else 1), dtype=y.dtype)
    bp = np.empty((nchunks, per_group * k * nr), dtype=y.dtype)
    tmp = np.empty((nchunks, MR * nr), dtype=y.dtype)
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
            for jp in range(jp0, jp1):
                off = (jp - jp0) * k * nr
                for kk in range(k):
                    base = src_base + tap_off[kk]
                    dst = off + kk * nr
                    vstore(panels, dst, vgather(src, base, pix_off, jp * nr))
                    vstore(panels, dst + lanes, vgather(src, base, pix_off, jp * nr + lanes))
            gemm_block(ap, k * MR, panels, k * nr, 0, k, c_out, npix - jp0 * nr, 0, npa, 0, jp1 - jp0,
                       yflat, img * c_out * npix + jp0 * nr, npix, False, tmp[ch], bias_p, has_bias)


@njit(parallel=True, **_jit)
def conv2d_backward_input(g, w, sh, sw, ph, pw, dh, dw, gx, nthreads):
    """``gx = d conv2d / d x`` contracted with ``g`` (validated arguments; ``gx`` written in place)."""
    n, c_in, h, wd = gx.shape
    c_out, _, kh, kw = w.shape
    h_out = g.shape[2]
    w_out = g.shape[3]
    npix = h_out * w_out
    taps = kh * kw
    k = c_in * taps
    nr = nr_of(gx)
    npa = cdiv(k, MR)
    npb = cdiv(npix, nr)
    # A = W^T (K x C_out), packed once.
    ap = np.empty(npa * c_out * MR, dtype=gx.dtype)
    pack_a(w.reshape(c_out, k), True, 0, npa, ap)
    hp = h + 2 * ph
    wp = wd + 2 * pw
    padded = ph > 0 or pw > 0

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
    tmp = np.empty((nchunks, MR * nr), dtype=gx.dtype)
    g3 = g.reshape(n, c_out, npix)
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
                pack_b(g3[img], False, 0, npb, panels)
                last = img
            ip0 = (c0 * taps) // MR
            ip1 = cdiv(c1 * taps, MR)
            work = dcols[ch]
            # dcols row r holds K-row ip0 * MR + r.
            gemm_block(ap, c_out * MR, panels, c_out * nr, 0, c_out, k, npix, ip0, ip1, 0, npb,
                       work, -ip0 * MR * ld, ld, False, tmp[ch], tmp[ch], False)
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
    ap = np.empty((ntasks, npa * npix * MR), dtype=gw.dtype)
    bp = np.empty((ntasks, per_group * npix * nr), dtype=gw.dtype)
    xpad = np.zeros((ntasks, c_in * hp * wp if padded else 1), dtype=gw.dtype)
    tmp = np.empty((ntasks, MR * nr), dtype=gw.dtype)
    g2 = g.reshape(n * c_out, npix)
    g_flat = g.reshape(g.size)
    xflat = x.reshape(x.size)
    for t in prange(ntasks):
        chunk = t // groups
        grp = t - chunk * groups
        jp0 = grp * per_group
        jp1 = min(npb, jp0 + per_group)
        a_panels = ap[t]
        b_panels = bp[t]
        for img in range(chunk * n // chunks_n, (chunk + 1) * n // chunks_n):
            gi = g2[img * c_out: (img + 1) * c_out]
            pack_a(gi, False, 0, npa, a_panels)
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
            gemm_block(a_panels, npix * MR, b_panels, npix * nr, 0, npix, c_out, k - jp0 * nr, 0, npa,
                       0, jp1 - jp0, partial[chunk], jp0 * nr, k, True, tmp[t], tmp[t], False)
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
