"""Numba kernels for depthwise convolution (``groups == C_in``), forward and both backwards.

A depthwise filter sees one input channel: its GEMM has ``K = kH * kW``
(9 for 3x3), far too short to amortise packing, so im2col + GEMM is the
wrong algorithm: on (64, 32, 28, 28) 3x3 the per-group GEMM path measured
~2x slower than these direct kernels (see ``docs/performance.md``).

Each task copies one input plane into a zero-bordered buffer (allocated
once per thread), so the inner loops never test bounds: with unit stride
an output row is a sum of ``kH * kW`` shifted, contiguous runs of buffer
rows (for ``kW = 3`` the three taps of a row are fused in one pass, one
load and store of the output per three multiply-adds). The input gradient
of a unit-stride convolution is the same correlation of the padded
``grad_out`` plane with the flipped filter; other strides scatter.

``m = C_out / C_in`` is the channel multiplier: output channel ``co``
reads input channel ``co // m``. Parallelism is over chunks of input
planes ``(n, ci)`` (forward, input gradient) or of channels (weight
gradient): writes are disjoint, no atomics, deterministic.

Inner loops index with ``np.uintp``: Numba adds a negative-index
wraparound check to every signed index, which stops LLVM from vectorising
the loop; unsigned indices have none (81 -> 29 ms for that forward, one
thread, before the padded buffer took it to 16 ms).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._gemm import _jit
from ._jit import PRANGE_ONLY, njit


@njit(**_jit)
def _load_padded(src, top, left, buf):
    """Copy the plane ``src`` into ``buf`` at ``(top, left)``, clipped to ``buf`` (its border stays zero)."""
    h, w = src.shape
    hb, wb = buf.shape
    for r in range(h):
        rb = r + top
        if rb < 0 or rb >= hb:
            continue
        c0 = max(0, -left)
        c1 = min(w, wb - left)
        if c1 > c0:
            s = src[r, c0:c1]
            d = buf[rb, c0 + left:c1 + left]
            for c in range(c1 - c0):
                d[np.uintp(c)] = s[np.uintp(c)]


@njit(**_jit)
def _correlate_into(buf, w, co, flip, sh, sw, dh, dw, out):
    """``out[oh, ow] += sum_ij w'[i, j] * buf[oh*sh + i*dh, ow*sw + j*dw]`` with ``w' = w[co, 0]``
    (flipped in both axes when ``flip``)."""
    kh, kw = w.shape[2], w.shape[3]
    h_out, w_out = out.shape
    for oh in range(h_out):
        row = out[oh]
        for i in range(kh):
            wi = kh - 1 - i if flip else i
            prow = buf[oh * sh + i * dh]
            if sw == 1 and kw == 3:
                # Unrolled on purpose (and again in _correlate_pitched): the three taps of a 3-wide
                # filter row fused into one pass over the row, one load/store of ``row`` instead of
                # three. A shared helper would hide the three slices from LLVM's vectoriser.
                w0 = w[co, 0, wi, 2 if flip else 0]
                w1 = w[co, 0, wi, 1]
                w2 = w[co, 0, wi, 0 if flip else 2]
                p0 = prow[0:w_out]
                p1 = prow[dw:dw + w_out]
                p2 = prow[2 * dw:2 * dw + w_out]
                for k in range(w_out):
                    u = np.uintp(k)
                    row[u] += w0 * p0[u] + w1 * p1[u] + w2 * p2[u]
            else:
                for j in range(kw):
                    wv = w[co, 0, wi, kw - 1 - j if flip else j]
                    if sw == 1:
                        pj = prow[j * dw:j * dw + w_out]
                        for k in range(w_out):
                            row[np.uintp(k)] += wv * pj[np.uintp(k)]
                    else:
                        for ow in range(w_out):
                            row[ow] += wv * prow[ow * sw + j * dw]


@njit(**_jit)
def _correlate_pitched(flat, wp, w, co, flip, dh, dw, acc):
    """Unit stride on the pitched layout: ``acc[q] += sum_ij w'[i, j] * flat[q + i*dh*wp + j*dw]`` for
    ``q < acc.size``, one long contiguous run per tap (a whole plane, not one short row), three
    taps fused per pass when ``kW = 3``. Output ``(oh, ow)`` is ``acc[oh * wp + ow]``."""
    kh, kw = w.shape[2], w.shape[3]
    n = acc.size
    for i in range(kh):
        wi = kh - 1 - i if flip else i
        base = i * dh * wp
        if kw == 3:
            # Unrolled on purpose, as in _correlate_into: three taps fused per pass over the plane.
            w0 = w[co, 0, wi, 2 if flip else 0]
            w1 = w[co, 0, wi, 1]
            w2 = w[co, 0, wi, 0 if flip else 2]
            p0 = flat[base:base + n]
            p1 = flat[base + dw:base + dw + n]
            p2 = flat[base + 2 * dw:base + 2 * dw + n]
            for k in range(n):
                u = np.uintp(k)
                acc[u] += w0 * p0[u] + w1 * p1[u] + w2 * p2[u]
        else:
            for j in range(kw):
                wv = w[co, 0, wi, kw - 1 - j if flip else j]
                pj = flat[base + j * dw:base + j * dw + n]
                for k in range(n):
                    acc[np.uintp(k)] += wv * pj[np.uintp(k)]


@njit(**_jit)
def _unpitch(acc, wp, out):
    h_out, w_out = out.shape
    for oh in range(h_out):
        src = acc[oh * wp:oh * wp + w_out]
        dst = out[oh]
        for c in range(w_out):
            dst[np.uintp(c)] = src[np.uintp(c)]


@njit(parallel=PRANGE_ONLY, **_jit)
def depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, y, nthreads):
    n_img, c_in, h, wid = x.shape
    c_out = w.shape[0]
    m = c_out // c_in
    tasks = n_img * c_in
    chunk = (tasks + nthreads - 1) // nthreads
    wp = wid + 2 * pw
    h_out, w_out = y.shape[2], y.shape[3]
    # Pitched accumulator: output rows on the buffer's row pitch; the last row stops where the
    # rightmost tap would read past the buffer (only columns >= w_out, never copied out, are lost).
    n_acc = h_out * wp - (w.shape[3] - 1) * dw
    for t in prange(nthreads):
        buf = np.zeros((h + 2 * ph, wp), dtype=x.dtype)
        flat = buf.reshape(-1)
        acc = np.empty(max(n_acc, 1), dtype=x.dtype)
        zero = buf[0, 0]  # a 0 of the array's dtype: float32 stays float32
        for task in range(t * chunk, min(tasks, (t + 1) * chunk)):
            img = task // c_in
            ci = task - img * c_in
            _load_padded(x[img, ci], ph, pw, buf)
            for co in range(ci * m, ci * m + m):
                plane = y[img, co]
                b0 = bias[co] if has_bias else zero
                if sh == 1 and sw == 1:
                    for k in range(n_acc):
                        acc[np.uintp(k)] = b0
                    _correlate_pitched(flat, wp, w, co, False, dh, dw, acc)
                    _unpitch(acc, wp, plane)
                else:
                    for r in range(h_out):
                        for c in range(w_out):
                            plane[r, np.uintp(c)] = b0
                    _correlate_into(buf, w, co, False, sh, sw, dh, dw, plane)


@njit(parallel=PRANGE_ONLY, **_jit)
def depthwise_backward_input_unit(g, w, ph, pw, dh, dw, gx, nthreads):
    """Unit stride, ``padding <= dilation * (k - 1)``: ``gx`` is the correlation of ``g`` padded by
    ``dilation * (k - 1) - padding`` with the flipped filter, summed over the ``m`` channels."""
    n_img, c_in, h, wid = gx.shape
    c_out, _, kh, kw = w.shape
    m = c_out // c_in
    qh = (kh - 1) * dh - ph
    qw = (kw - 1) * dw - pw
    tasks = n_img * c_in
    chunk = (tasks + nthreads - 1) // nthreads
    wp = wid + (kw - 1) * dw
    n_acc = h * wp - (kw - 1) * dw
    for t in prange(nthreads):
        buf = np.zeros((h + (kh - 1) * dh, wp), dtype=g.dtype)
        flat = buf.reshape(-1)
        acc = np.empty(n_acc, dtype=g.dtype)
        for task in range(t * chunk, min(tasks, (t + 1) * chunk)):
            img = task // c_in
            ci = task - img * c_in
            for k in range(n_acc):
                acc[np.uintp(k)] = 0
            for co in range(ci * m, ci * m + m):
                _load_padded(g[img, co], qh, qw, buf)
                _correlate_pitched(flat, wp, w, co, True, dh, dw, acc)
            _unpitch(acc, wp, gx[img, ci])


@njit(parallel=PRANGE_ONLY, **_jit)
def depthwise_backward_input_scatter(g, w, sh, sw, ph, pw, dh, dw, gx):
    """Any stride: each input plane gathers the scatter of its ``m`` output planes (clipped runs)."""
    n_img, c_in, h, wid = gx.shape
    c_out, _, kh, kw = w.shape
    h_out, w_out = g.shape[2], g.shape[3]
    m = c_out // c_in
    for task in prange(n_img * c_in):
        img = task // c_in
        ci = task - img * c_in
        plane = gx[img, ci]
        for ih in range(h):
            for iw in range(wid):
                plane[ih, np.uintp(iw)] = 0
        for co in range(ci * m, ci * m + m):
            for oh in range(h_out):
                src = g[img, co, oh]
                for i in range(kh):
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= h:
                        continue
                    dst = plane[ih]
                    for j in range(kw):
                        off = j * dw - pw
                        lo = 0 if off >= 0 else (-off + sw - 1) // sw
                        hi = min(w_out, (wid - 1 - off) // sw + 1) if wid - 1 - off >= 0 else 0
                        wv = w[co, 0, i, j]
                        for ow in range(lo, hi):
                            dst[ow * sw + off] += wv * src[ow]


@njit(parallel=PRANGE_ONLY, **_jit)
def depthwise_backward_weight(x, g, sh, sw, ph, pw, dh, dw, gw, gb, nthreads):
    n_img, c_in, h, wid = x.shape
    c_out, _, kh, kw = gw.shape
    h_out, w_out = g.shape[2], g.shape[3]
    m = c_out // c_in
    chunk = (c_in + nthreads - 1) // nthreads
    wp = wid + 2 * pw
    n_acc = h_out * wp - (kw - 1) * dw
    unit = sh == 1 and sw == 1
    for t in prange(nthreads):
        buf = np.zeros((h + 2 * ph, wp), dtype=x.dtype)
        flat = buf.reshape(-1)
        # grad_out on the buffer's pitch, zero in columns >= w_out: each tap's gradient is then
        # one long dot product over the plane (unit stride).
        gp = np.zeros(max(n_acc, 1), dtype=x.dtype)
        zero = buf[0, 0]
        for ci in range(t * chunk, min(c_in, (t + 1) * chunk)):
            for co in range(ci * m, ci * m + m):
                for i in range(kh):
                    for j in range(kw):
                        gw[co, 0, i, j] = 0
                gb[co] = 0
            for img in range(n_img):
                _load_padded(x[img, ci], ph, pw, buf)
                for co in range(ci * m, ci * m + m):
                    bsum = zero
                    if unit:
                        for oh in range(h_out):
                            grow = g[img, co, oh]
                            dst = gp[oh * wp:oh * wp + w_out]
                            for k in range(w_out):
                                v = grow[np.uintp(k)]
                                dst[np.uintp(k)] = v
                                bsum += v
                        for i in range(kh):
                            for j in range(kw):
                                base = i * dh * wp + j * dw
                                run = flat[base:base + n_acc]
                                acc = zero
                                for k in range(n_acc):
                                    acc += gp[np.uintp(k)] * run[np.uintp(k)]
                                gw[co, 0, i, j] += acc
                        gb[co] += bsum
                        continue
                    for oh in range(h_out):
                        grow = g[img, co, oh]
                        for k in range(w_out):
                            bsum += grow[np.uintp(k)]
                        for i in range(kh):
                            prow = buf[oh * sh + i * dh]
                            for j in range(kw):
                                acc = zero
                                if sw == 1:
                                    pj = prow[j * dw:j * dw + w_out]
                                    for k in range(w_out):
                                        acc += grow[np.uintp(k)] * pj[np.uintp(k)]
                                else:
                                    for ow in range(w_out):
                                        acc += grow[ow] * prow[ow * sw + j * dw]
                                gw[co, 0, i, j] += acc
                    gb[co] += bsum
