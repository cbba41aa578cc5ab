"""Task counters of a parallel region, on atomic Numba intrinsics (Numba's CPU target has none).

Why: with passive waiting (``jitgrad/config.py``) a region costs two
wake-ups of a sleeping thread, ~50 us each on a VM whose idle vCPUs halt:
the pool's thread at the start, and the calling thread when it reaches the
region's closing barrier first and sleeps there until the last task ends.
So a region's body counts the tasks it starts (:func:`next_task`, which
also hands them out) and ends (:func:`task_end`), and the calling thread,
done with its own, waits awake for the tasks still running
(:func:`wait_running`): it reaches the barrier last, which needs no
wake-up. It never waits for a task nobody has started (compiled without
``parallel``, as a tiered serial twin, the loop runs on one thread and
nothing is running when it looks) and gives up after :data:`MAX_SPINS`
pauses::

    counter = new_counter()
    for w in prange(nshares):           # one fixed share a thread (the GEMM and conv drivers)
        next_task(counter)
        ...                             # share w
        share_done(counter, w, nshares)

:func:`next_task` also hands tasks out one by one (``t = next_task(counter)``
until ``t >= ntasks``, each ended with :func:`task_end`, then
``wait_running(counter, ntasks)`` on share 0). No driver does: tried on the
GEMM driver, the calling thread took more tasks while the other woke (32 x
288 x 3136: 392 -> 365 us in a loop of calls), but in
``bench/matmul_side_by_side.py``, with NumPy's OpenBLAS threads in the
process, blocks of calls ran at half speed at random (Keras conv2's forward
product 400 -> 660-890 us), with or without the wait; the fixed shares
never did.

Counters are read through :func:`load_acquire` only: Numba's array analysis
does not know that the intrinsics write, and under ``parallel=True`` (not
the drivers' ``PRANGE_ONLY``) it folded ``counter[1]`` after such a loop to
the 0 of ``np.zeros``.
"""

from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._gemm_simd import _element_pointer
from ._jit import njit

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _is_counter(arr, index) -> bool:
    return (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1
            and isinstance(index, types.Integer))


def _slot_and_value(context, builder, sig, args):
    """``(pointer to arr[index], value as int64)`` of an ``(arr, index, value)`` intrinsic call."""
    ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
    return ptr, context.cast(builder, args[2], sig.args[2], types.int64)


@intrinsic
def fetch_add(typingctx, arr, index, value):
    """``old = arr[index]; arr[index] += value; return old`` as one atomic step (``arr``: int64)."""
    if not (_is_counter(arr, index) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.atomic_rmw("add", *_slot_and_value(context, builder, sig, args), "seq_cst")

    return types.int64(arr, index, value), codegen


@intrinsic
def load_acquire(typingctx, arr, index):
    """``arr[index]`` read atomically (int64; never hoisted out of a waiting loop)."""
    if not _is_counter(arr, index):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, index), codegen


@intrinsic
def spin_pause(typingctx):
    """A hint that this thread is busy-waiting (x86 ``pause``; nothing elsewhere)."""

    def codegen(context, builder, sig, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def store_seq(typingctx, arr, index, value):
    """``arr[index] = value`` as one sequentially consistent atomic store (int64)."""
    if not (_is_counter(arr, index) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr, val = _slot_and_value(context, builder, sig, args)
        builder.store_atomic(val, ptr, "seq_cst", 8)
        return context.get_dummy_value()

    return types.none(arr, index, value), codegen


@intrinsic
def compare_swap(typingctx, arr, index, expected, value):
    """``arr[index] = value`` if it holds ``expected``, as one atomic step; True when it did (int64)."""
    if not (_is_counter(arr, index) and isinstance(expected, types.Integer) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        old = context.cast(builder, args[2], sig.args[2], types.int64)
        new = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(ptr, old, new, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return types.boolean(arr, index, expected, value), codegen


#: Pauses the calling thread spends at most waiting for running tasks (a ``pause`` is 40-150 cycles;
#: 8192 took 200-230 us on the Zen 4 VM), then it sleeps at the barrier as before.
MAX_SPINS = 8192


@njit(cache=True, inline="always")
def new_counter():
    """``[tasks started, tasks ended]`` (one cache line of int64 of its own)."""
    counter = np.empty(8, dtype=np.int64)  # and a loop, not np.zeros: see _conv_im2col.int32_filled
    for i in range(8):
        counter[i] = 0
    return counter


@njit(cache=True, inline="always")
def next_task(counter):
    """The next task to run, counted as started (tasks past the last are counted too)."""
    return fetch_add(counter, 0, 1)


@njit(cache=True, inline="always")
def task_end(counter):
    fetch_add(counter, 1, 1)


@njit(cache=True, inline="always")
def wait_running(counter, ntasks):
    """Spin (``pause``) until every started task of the first ``ntasks`` has ended, or MAX_SPINS."""
    spins = 0
    while spins < MAX_SPINS and load_acquire(counter, 1) < min(load_acquire(counter, 0), ntasks):
        spin_pause()
        spins += 1


@njit(cache=True, inline="always")
def share_done(counter, w, nshares):
    """The end of share ``w`` of a ``prange(nshares)`` loop whose shares each began with
    :func:`next_task`: counted, and share 0 (the calling thread's) then waits for the others running."""
    task_end(counter)
    if w == 0:
        wait_running(counter, nshares)
