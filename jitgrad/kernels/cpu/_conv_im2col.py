"""The im2col machinery of the CPU convolutions (``_conv``, ``_conv_weight``): offset tables and packing.

Geometry is reduced to offset tables into the (zero-padded) image of one
sample: ``tap_off[k]`` for tap ``k = (c, i, j)`` and ``pix_off[p]`` for
output pixel ``p = (oh, ow)``, so ``x_pad[tap_off[k] + pix_off[p]]`` is the
im2col matrix ``cols[k, p]`` whatever the stride, padding and dilation.
Padding is a zero border in a per-thread copy of the sample (zeroed once,
only the interior rewritten per sample), so no loop checks bounds. A vector
of pixels whose inputs lie within two vectors is fetched with two loads and a
permute (``vpermute2``), otherwise with a hardware gather.

Offsets are int32: one padded sample must hold fewer than 2**31 elements.
"""

from __future__ import annotations

import numpy as np

from ._gemm import _jit
from ._gemm_simd import (
    HAS_PERMUTE2,
    VEC_BYTES,
    load,
    vgather,
    vlanes,
    vload,
    vload_even,
    vload_masked,
    vpermute2,
    vstore,
    vstore_masked,
)
from ._jit import njit


@njit(inline="always", **_jit)
def conv_shapes(x, w, y):
    """``n, c_in, h, wd, c_out, kh, kw, h_out, w_out`` of a convolution: input ``x`` (N, C_in, H, W),
    weights ``w`` (C_out, C_in, kh, kw), output ``y`` (N, C_out, H_out, W_out) or their gradients."""
    n, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    return n, c_in, h, wd, c_out, kh, kw, y.shape[2], y.shape[3]


@njit(inline="always", **_jit)  # inlined: no compile of its own
def int32_filled(count, value):
    """``np.full(count, value, np.int32)``, as ``np.empty`` and a loop: every int32 table of the conv
    kernels comes from this one specialisation of ``np.empty``. ``np.zeros`` and ``np.full`` compile
    implementations of their own per dtype (and ``np.zeros`` one to zero-fill each array type), each
    0.1-0.25 CPU-s of a cold start, in the step and again in the background process."""
    out = np.empty(count, dtype=np.int32)
    for q in range(count):
        out[q] = value
    return out


@njit(inline="always", **_jit)  # inlined: no compile of its own
def channel_offsets(channels, stride):
    """``int32`` offsets ``c * stride`` of ``channels`` planes (a loop: in a parallel kernel an array
    expression is compiled apart, and Numba warns that it found nothing to parallelise there)."""
    out = np.empty(channels, dtype=np.int32)
    for c in range(channels):
        out[c] = c * stride
    return out


@njit(**_jit)
def tap_offsets(c_in, kh, kw, dh, dw, hp, wp, count):
    """``off[k]`` for ``k = (c * kh + i) * kw + j``: tap ``(c, i, j)``'s offset in a padded sample.

    Entries past ``c_in * kh * kw`` (up to ``count``) are 0, a valid index.
    """
    off = int32_filled(count, 0)
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
    off = int32_filled(count, 0)
    for oh in range(h_out):
        for ow in range(w_out):
            off[oh * w_out + ow] = oh * sh * wp + ow * sw
    return off


@njit(**_jit)
def window_tables(offsets, lanes):
    """For each vector of ``lanes`` consecutive ``offsets``: the window it spans.

    Negative offsets mark lanes that are 0. Returns ``(start, perm, fits)``:
    vector ``v``'s lanes are ``start[v] + perm[v * lanes + l]`` (``perm`` is -1
    for a zero lane) and ``fits[v]`` (int32, as the others) says whether they lie within
    ``2 * lanes`` of ``start[v]`` (1: then ``vpermute2`` fetches them; 0: a gather does), or
    are ``lanes`` consecutive elements from ``start[v]`` (2: one load, the common case of a unit
    stride: pixels of one output row) or every second one (3: ``vload_even``, a stride of 2).
    """
    nvec = offsets.size // lanes
    start = int32_filled(nvec, 0)
    perm = int32_filled(nvec * lanes, -1)
    fits = int32_filled(nvec, 0)
    for v in range(nvec):
        lo = 2**31 - 1
        hi = -1
        for q in range(v * lanes, (v + 1) * lanes):
            o = np.int64(offsets[q])  # min/max of (int64, int32) would compile overloads of their own
            if o >= 0:
                lo = min(lo, o)
                hi = max(hi, o)
        if hi < 0:
            lo = 0
        start[v] = lo
        fits[v] = hi - lo < 2 * lanes
        run = True
        even = True
        for q in range(v * lanes, (v + 1) * lanes):
            if offsets[q] >= 0:
                perm[q] = offsets[q] - lo
            run = run and perm[q] == q - v * lanes
            even = even and perm[q] == 2 * (q - v * lanes)
        if run:
            fits[v] = 2
        elif even:
            fits[v] = 3
    return start, perm, fits


@njit(**_jit)
def pack_windows(src, base, src_end, tap_off, ntaps, offsets, start, perm, fits, v, panels, dst, stride):
    """``panels[dst + t * stride + l] = src[base + tap_off[t] + offsets[v * lanes + l]]`` for every
    tap ``t`` (0 where the offset is negative): vector ``v`` of an im2col panel.

    ``start`` and ``fits`` are vector ``v``'s entries of :func:`window_tables`. The callers pass
    raw pointers (``_gemm_simd.data_pointer``) for ``src``, ``tap_off``, ``offsets``, ``perm`` and
    ``panels``: it is called once a vector of pixels, and five arrays cost ten reference counts a
    call (atomic operations and calls, more than the copy itself for a few taps).
    """
    lanes = vlanes(panels)
    if fits == 2:
        # Consecutive elements (every lane valid, so the vector lies inside the sample): one load
        # instead of two and a permute, a blend and a mask. Native Zen 3, one thread, im2col
        # packing alone of a 3 x 3 convolution over 16 padded samples of 32 x 56 x 56: 4.6 -> 2.7 ms.
        for t in range(ntaps):
            vstore(panels, dst + t * stride, vload(src, base + load(tap_off, t) + start))
    elif fits == 3:
        # Every second element (a stride of 2, every lane valid): the even lanes of two loads.
        for t in range(ntaps):
            b = base + load(tap_off, t)
            if b + start <= src_end:
                vstore(panels, dst + t * stride, vload_even(src, b + start))
            else:
                vstore(panels, dst + t * stride, vgather(src, b, offsets, v * lanes))
    elif HAS_PERMUTE2 and fits:
        for t in range(ntaps):
            b = base + load(tap_off, t)
            if b + start <= src_end:
                vstore(panels, dst + t * stride, vpermute2(src, b + start, perm, v * lanes))
            else:
                vstore(panels, dst + t * stride, vgather(src, b, offsets, v * lanes))
    else:
        for t in range(ntaps):
            vstore(panels, dst + t * stride, vgather(src, base + load(tap_off, t), offsets, v * lanes))


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
