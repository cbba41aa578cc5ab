"""Launch geometry and the device helpers every CUDA kernel module shares.

Nothing here touches the GPU at import time: ``jitgrad.kernels.cuda`` must
import on a machine without one. Threads per block come from
``jitgrad.config.cuda_threads_per_block`` and are read at *launch* time, so
tests can shrink them to make the multi-block and tail paths run.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
from numba import cuda

from jitgrad import config

#: Upper bound on blocks per launch. Every kernel uses a grid-stride loop, so a
#: capped grid is still correct; a few thousand blocks already fill an H100
#: (132 SMs x 16+ resident blocks). Tests lower it to make the stride loop run.
MAX_BLOCKS: int = 8192

#: Shared-memory scratch of block reductions is sized at compile time, so
#: threads per block may not exceed it (1024 is also CUDA's own limit).
MAX_THREADS_PER_BLOCK: int = 1024


def threads_per_block() -> int:
    """Threads per block for this launch, from ``config`` (checked, 1..1024)."""
    tpb = config.cuda_threads_per_block
    if isinstance(tpb, bool) or not isinstance(tpb, (int, np.integer)) or not 1 <= tpb <= MAX_THREADS_PER_BLOCK:
        raise ValueError(
            f"config.cuda_threads_per_block must be an int in [1, {MAX_THREADS_PER_BLOCK}], got {tpb!r}"
        )
    return int(tpb)


def grid_1d(n: int) -> tuple[int, int]:
    """``(blocks, threads)`` for a grid-stride loop over ``n >= 1`` items, one per thread."""
    tpb = threads_per_block()
    return max(1, min(math.ceil(n / tpb), MAX_BLOCKS)), tpb


def grid_rows(rows: int) -> tuple[int, int]:
    """``(blocks, threads)`` for one block per row (block-stride loop over ``rows >= 1``)."""
    return max(1, min(rows, MAX_BLOCKS)), threads_per_block()


def grid_tiles(rows: int, cols: int, tile_rows: int, tile_cols: int) -> int:
    """Blocks for a tiled kernel over a ``rows x cols`` output, one ``tile_rows x tile_cols`` tile a block.

    Capped at :data:`MAX_BLOCKS`: the tiled kernels stride over tiles, so any grid is correct.
    """
    tiles = math.ceil(rows / tile_rows) * math.ceil(cols / tile_cols)
    return max(1, min(tiles, MAX_BLOCKS))


def launch_1d(kernel: Any, n: int, *args: Any) -> None:
    """Launch ``kernel(*args)`` over ``n`` items with :func:`grid_1d`; nothing when ``n == 0``."""
    if n:
        blocks, threads = grid_1d(n)
        kernel[blocks, threads](*args)


#: The arrays :func:`empty` made, weakly held by ``id``: each owns its memory, where a view of it (a
#: reshape or a slice, a new array object) does not. The autograd asks (``CudaBackend.owns_data``)
#: before it hands a leaf a gradient without a copy, as the CPU backend asks ``a.base is None``.
#: (By id: the simulator's arrays compare elementwise, so they cannot be set members.)
_FRESH: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def empty(shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised device array (``cuda.device_array``) that owns its memory."""
    out = cuda.device_array(shape, dtype=np.dtype(dtype))
    _FRESH[id(out)] = out
    return out


def owns_memory(a: Any) -> bool:
    """True when ``a`` is an array :func:`empty` made (not a view of one, not an array from elsewhere)."""
    return _FRESH.get(id(a)) is a


def typed(dtype: Any, *values: Any) -> tuple:
    """``values`` with every Python/NumPy float cast to ``dtype`` (bools and ints pass through).

    A Python float reaches a kernel as float64 and turns a float32 kernel's arithmetic into
    float64 (1/64 of the speed on most GPUs, and not what the CPU computes): every wrapper
    passes its float hyper-parameters through here.
    """
    t = np.dtype(dtype).type
    return tuple(t(v) if isinstance(v, (float, np.floating)) else v for v in values)


def overlaps(x: Any, y: Any) -> bool:
    """True when device arrays ``x`` and ``y`` share any byte (real device or simulator).

    The rule for ``out=`` on every backend: it may overlap an input, and the kernel then
    computes into a temporary and copies it in, so the result is as if computed aside.
    """
    if x.size == 0 or y.size == 0:
        return False
    if hasattr(x, "_ary") and hasattr(y, "_ary"):  # the simulator's arrays wrap host memory
        return bool(np.may_share_memory(x._ary, y._ary))

    def span(a: Any) -> tuple[int, int]:
        start = a.__cuda_array_interface__["data"][0]
        return start, start + a.size * a.dtype.itemsize

    (x0, x1), (y0, y1) = span(x), span(y)
    return x0 < y1 and y0 < x1


def flat(a: Any) -> Any:
    """1-D view of a C-contiguous device array (no copy)."""
    return a.reshape(a.size)


# ----------------------------------------------------------------------------- block reductions
#
# Deterministic tree reductions over the threads of one block. Every thread of
# the block must call them (they synchronise). The halving uses
# ``half = ceil(active / 2)`` so any block size works, not only powers of two.
# They end with a barrier after everyone has read the result, so the caller
# may reuse ``buf`` straight away.

@cuda.jit(device=True)
def _block_reduce(buf, value, take_max):
    # ``take_max`` is a constant at every call site below, so after inlining the branch folds away.
    tid = cuda.threadIdx.x
    buf[tid] = value
    cuda.syncthreads()
    active = cuda.blockDim.x
    while active > 1:
        half = (active + 1) // 2
        if tid < active - half:
            other = buf[tid + half]
            if not take_max:
                buf[tid] += other
            elif other > buf[tid] or other != other:  # NaN wins, as in NumPy's max (``v != v``: NaN)
                buf[tid] = other
        cuda.syncthreads()
        active = half
    result = buf[0]
    cuda.syncthreads()
    return result


@cuda.jit(device=True)
def block_sum(buf, value):
    return _block_reduce(buf, value, False)


@cuda.jit(device=True)
def block_max(buf, value):
    return _block_reduce(buf, value, True)


#: A split sum's block: 32 lanes (consecutive elements: coalesced loads) by at most this many warps,
#: warp ``w`` adding splits ``w, w + W, w + 2W, ...``. One thread adding every split in turn left a small
#: output on one or two blocks: on an H200 a LeNet-5 weight gradient's sum (156 elements, hundreds of
#: splits) took 117-141 us, more than its GEMM (30 us).
SPLIT_SUM_WARPS = 32


def split_sum_grid(splits: int, elements: int) -> tuple[int, tuple[int, int]]:
    """``(blocks, (32, W))`` of a :func:`split_total` kernel over ``elements`` sums of ``splits >= 1`` parts.

    ``W`` depends on ``splits`` alone, and with it the order of the additions: the sums are the same
    on every grid."""
    return max(1, min(-(-elements // 32), MAX_BLOCKS)), (32, min(splits, SPLIT_SUM_WARPS))


@cuda.jit(device=True)
def split_total(parts, e, buf):
    """``sum_s parts[s, e]`` for element ``e`` of the block's 32, in warp 0 (other warps, or ``e`` beyond
    ``parts``' columns: any value, to be discarded); every thread of a :func:`split_sum_grid` block calls
    it at once.

    Warp ``w``'s splits in order, then the warps' totals in order: deterministic. ``buf``: shared
    ``(SPLIT_SUM_WARPS, 32)`` of ``parts``' dtype."""
    lane, w, warps = cuda.threadIdx.x, cuda.threadIdx.y, cuda.blockDim.y
    splits, elements = parts.shape
    if e < elements:
        acc = parts[w, e]
        for s in range(w + warps, splits, warps):
            acc += parts[s, e]
        buf[w, lane] = acc
    cuda.syncthreads()
    total = buf[0, lane]
    if w == 0:  # (the warp that stores)
        for j in range(1, warps):
            total += buf[j, lane]
    cuda.syncthreads()  # buf is written again for the block's next 32 elements
    return total


@cuda.jit(device=True)
def unravel3(idx, h, w):
    """``(i0, i1, i2)`` of flat index ``idx`` into a C-contiguous ``(n, h, w)`` array (an output pixel's
    ``(image, row, col)``)."""
    i2 = idx % w
    rest = idx // w
    return rest // h, rest % h, i2


@cuda.jit(device=True)
def unravel4(idx, c, h, w):
    """``(i0, i1, i2, i3)`` of flat index ``idx`` into a C-contiguous ``(n, c, h, w)`` array (any 4-D shape:
    NCHW activations, ``(C_out, C_in, kH, kW)`` weights)."""
    i3 = idx % w
    rest = idx // w
    i2 = rest % h
    plane = rest // h
    return plane // c, plane % c, i2, i3


def is_device_array(a: Any) -> bool:
    """True for a Numba device array (real or simulated); False for NumPy arrays and scalars."""
    return hasattr(a, "copy_to_host") and not isinstance(a, np.ndarray)
