"""Row building blocks of the CPU softmax, log-softmax and cross-entropy kernels (``softmax.py``).

Two ways through a row-major ``(rows, length)`` block:

- long rows (``length >= SHORT_ROW``): row by row, the max, then ``exp(x - max)``
  and its sum in one unit-stride loop (8 float32 lanes of ``_elementary.exp``);
- short rows (the (128, 10) classifier batch): a block of rows at a time
  (``BLOCK`` elements, L1-resident): each row's max and ``x - max`` written
  first, then one flat ``exp`` loop over the whole block, then the row sums.
  A per-row ``exp`` loop of 10 elements ran almost all in its scalar tail
  (measured 6 us for softmax at (128, 10), the whole of PyTorch's call).

Both compute ``exp(x - max)`` with the same float32 operations, so results do
not depend on the path (only the summation order, which ``reassoc`` frees anyway).
"""

from __future__ import annotations

import numpy as np

from jitgrad.kernels.cpu import _elementary as ef
from jitgrad.kernels.cpu._gemm_simd import VEC_BYTES, vload, vmax, vmax_lanes
from jitgrad.kernels.cpu._jit import FASTMATH as _FASTMATH
from jitgrad.kernels.cpu._jit import njit

#: The callers' flags less ``reassoc``, for the one subtraction whose order is the point.
_IN_ORDER = _FASTMATH - {"reassoc"}

#: Rows shorter than this take the block path.
SHORT_ROW = 64
#: Elements per block of short rows (16 KiB of float32: L1-resident with its input).
BLOCK = 4096


@njit(cache=True, error_model="numpy", fastmath=_IN_ORDER)
def shifted_minus(x, m, c):
    """``(x - m) - c`` in that order: exact ``x - m`` for nearby logits, one rounding after.

    A function of its own, because inlined into a kernel compiled with ``reassoc`` the
    subtractions would be regrouped as ``x - (m + c)`` (measured: log_softmax of
    ``[1e5, 1e5, 1e5 - 1]`` gave -0.859375 for -0.8619948). LLVM inlines it but keeps
    each instruction's flags.
    """
    return (x - m) - c


# ``forceinline`` (LLVM inlines it), not ``inline="always"``: Numba's IR inlining deep-copies a
# callee's blocks with the caller's whole scope per call site; this and row_max_exp, inlined at
# three sites, cost ~1.7 CPU-s of a cold start that way (Zen 3); compiled once each, 0.8 and 0.3.
@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, forceinline=True)
def row_max(x, i):
    """Largest element of row ``i`` (a NaN may be skipped or returned: either way the row turns NaN).

    LLVM does not vectorise a float max reduction without ``nnan``, which softmax cannot
    have, so a unit-stride row of at least four vectors takes explicit vectors
    (:func:`_row_max_vectors`); shorter rows eight independent scalar accumulators (one
    select chain is latency-bound, eight keep the compare unit busy: 1.7x faster at 1000
    columns than one; the vectors 3.3x faster again at 128 x 1000, Zen 4, AVX-512).
    """
    c = x.shape[1]
    lanes = VEC_BYTES // x.itemsize
    if c >= 4 * lanes and x.strides[1] == x.itemsize:
        return _row_max_vectors(x[i], lanes)
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x[i, 0]
    c8 = c - c % 8
    # ``max(m, v)`` is ``v if v > m else m`` as one select: written as conditional expressions the
    # sixteen selects were 68 blocks of Numba IR, 1 CPU-s of compile.
    for j in range(0, c8, 8):
        m0 = max(m0, x[i, j])
        m1 = max(m1, x[i, j + 1])
        m2 = max(m2, x[i, j + 2])
        m3 = max(m3, x[i, j + 3])
        m4 = max(m4, x[i, j + 4])
        m5 = max(m5, x[i, j + 5])
        m6 = max(m6, x[i, j + 6])
        m7 = max(m7, x[i, j + 7])
    for j in range(c8, c):
        m0 = max(m0, x[i, j])
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _row_max_vectors(row, lanes):
    """:func:`row_max` of a unit-stride ``row`` of at least ``4 * lanes`` elements: four vector
    accumulators (independent compare chains), then the tail one vector and one element at a time."""
    c = row.size
    v0 = vload(row, 0)
    v1 = vload(row, lanes)
    v2 = vload(row, 2 * lanes)
    v3 = vload(row, 3 * lanes)
    j = 4 * lanes
    while j + 4 * lanes <= c:
        v0 = vmax(v0, vload(row, j))
        v1 = vmax(v1, vload(row, j + lanes))
        v2 = vmax(v2, vload(row, j + 2 * lanes))
        v3 = vmax(v3, vload(row, j + 3 * lanes))
        j += 4 * lanes
    while j + lanes <= c:
        v0 = vmax(v0, vload(row, j))
        j += lanes
    m = vmax_lanes(vmax(vmax(v0, v1), vmax(v2, v3)))
    for k in range(j, c):
        v = row[k]
        m = v if v > m else m
    return m


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, forceinline=True)
def row_max_exp(x, i, out):
    """Write ``exp(x[i] - max)`` into ``out[i]``; return ``(max, sum of those exponentials)``.

    A NaN is skipped by the max but turns the sum, so the whole row, NaN (as the reference).
    """
    c = x.shape[1]
    m = row_max(x, i)
    s = x.dtype.type(0)
    for j in range(c):
        e = ef.exp_nonpos(x[i, j] - m)
        out[i, j] = e
        s += e
    return m, s


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def flat_exp_into(a, lo, hi, out):
    """``out.flat[lo:hi] = exp(a.flat[lo:hi])`` (``a`` and ``out`` of one shape; ``a <= 0``: ``exp_nonpos``), in full vectors.

    Over slices from 0: indexed ``flat[k]`` with ``k`` from ``lo``, Numba's negative-index
    wrap-around stays in the loop, which then does not vectorise (measured 4x slower).
    """
    src = a.reshape(a.size)[lo:hi]
    dst = out.reshape(out.size)[lo:hi]
    for k in range(src.size):
        dst[k] = ef.exp_nonpos(src[k])


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def block_max_exp(x, r0, r1, out, m, s):
    """:func:`row_max_exp` for rows ``r0:r1`` at once: ``m[i - r0]`` the maxima, ``s[i - r0]`` the sums.

    Three passes: each row's max and ``x - max`` written, one flat ``exp`` loop over the
    block in place (sliced from 0, see :func:`flat_exp_into`), the row sums. In one function:
    as three called functions, each caller's module re-optimised and re-compiled the
    three (Numba links callees into every caller), 2.05 CPU-s for this alone.
    """
    c = x.shape[1]
    for i in range(r0, r1):
        mi = row_max(x, i)
        m[i - r0] = mi
        for j in range(c):
            out[i, j] = x[i, j] - mi
    flat = out.reshape(out.size)[r0 * c:r1 * c]
    for k in range(flat.size):
        flat[k] = ef.exp_nonpos(flat[k])
    for i in range(r0, r1):
        acc = out.dtype.type(0)
        for j in range(c):
            acc += out[i, j]
        s[i - r0] = acc


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def block_rows(c):
    """Rows per block of the short-row path for rows of length ``c``."""
    return max(1, BLOCK // c)


# ----------------------------------------------------------------------------- cross-entropy rows

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def softmax_lse_rows(logits, probs, r0, r1, m, s):
    """Rows ``r0:r1`` of ``probs`` = softmax; ``m[i - r0]`` each row's max, ``s[i - r0]`` the log-sum-exp
    of its shifted row (short rows by block, long ones row by row: see ``_softmax_rows``)."""
    c = logits.shape[1]
    if c < SHORT_ROW:
        block_max_exp(logits, r0, r1, probs, m, s)
    else:
        for i in range(r0, r1):
            m[i - r0], s[i - r0] = row_max_exp(logits, i, probs)
    for i in range(r0, r1):
        inv = logits.dtype.type(1) / s[i - r0]
        for j in range(c):
            probs[i, j] *= inv
    for k in range(r1 - r0):
        s[k] = ef.log(s[k])


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _index_loss(logits, labels, eps, i, m, lse):
    """Row ``i``'s loss; NaN for a label outside ``[0, C)`` (the wrapper then names it)."""
    c = logits.shape[1]
    one = logits.dtype.type(1)
    label = labels[i]
    if label < 0 or label >= c:
        return logits.dtype.type(np.nan)
    # -log p_j = lse - (x_j - m): never 0 * inf, so a -inf logit off the label gives no NaN.
    loss = -shifted_minus(logits[i, label], m, lse)
    if eps != 0:
        total = logits.dtype.type(0)
        for j in range(c):
            total -= shifted_minus(logits[i, j], m, lse)
        loss = (one - eps) * loss + eps / logits.dtype.type(c) * total
    return loss


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _prob_loss(logits, target, eps, i, m, lse):
    c = logits.shape[1]
    one = logits.dtype.type(1)
    eps_c = eps / logits.dtype.type(c)
    zero = logits.dtype.type(0)
    loss = zero
    for j in range(c):
        t = target[i, j] * (one - eps) + eps_c if eps != 0 else target[i, j]
        # 0 * log 0 is 0: no NaN from a -inf logit the target does not weight. A select, not an
        # update under an `if`: inlined in a prange body, Python 3.12's bytecode for the latter
        # made Numba's parfor reduction analysis fail ("unexpected cycle in lookup()").
        term = t * shifted_minus(logits[i, j], m, lse)
        loss -= term if t != 0 else zero
    return loss


# Cross-entropy, rows ``r0:r1``: probabilities and losses; each returns the sum of its losses.
# Two functions on purpose: one with an ``is_index`` test per row was slower (see softmax.py).

@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def cross_entropy_index_rows(logits, labels, eps, probs, losses, r0, r1):
    m = np.empty(r1 - r0, logits.dtype)
    s = np.empty(r1 - r0, logits.dtype)
    softmax_lse_rows(logits, probs, r0, r1, m, s)
    part = logits.dtype.type(0)
    for i in range(r0, r1):
        loss = _index_loss(logits, labels, eps, i, m[i - r0], s[i - r0])
        losses[i] = loss
        part += loss
    return part


@njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def cross_entropy_prob_rows(logits, target, eps, probs, losses, r0, r1):
    m = np.empty(r1 - r0, logits.dtype)
    s = np.empty(r1 - r0, logits.dtype)
    softmax_lse_rows(logits, probs, r0, r1, m, s)
    part = logits.dtype.type(0)
    for i in range(r0, r1):
        loss = _prob_loss(logits, target, eps, i, m[i - r0], s[i - r0])
        losses[i] = loss
        part += loss
    return part
