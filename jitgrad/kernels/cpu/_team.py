"""A GEMM helper team: threads of jitgrad's own that spin briefly between products, and a driver
that hands C's blocks out one by one, so that a product never waits for a helper to wake.

Why: a parallel region of Numba's OpenMP pool costs a wake-up of the pool's thread, which sleeps
between regions (passive waiting, ``jitgrad/config.py``): ~100 us on a VM whose idle vCPUs halt.
So products below ``SERIAL_MACS`` ran on one thread, and the larger ones paid that wake-up.
OpenBLAS keeps its workers spinning for ~0.1 s after each call instead.

Here each helper, after a product, spins (``pause``, yielding the CPU every few hundred pauses
to any other runnable thread) for ``SPIN_PAUSES`` pauses, then sleeps on a futex. The calling
thread posts a product (its operands' addresses in the team's ``state``), wakes sleeping
helpers, and then claims blocks of C itself (``claim``: from the front, helpers from the back); a helper joins when it
sees the post. A helper that is asleep, late, or gone (after ``fork``) costs no wait: the calling
thread then computes every block, as on one thread. At the end the calling thread closes the
product and waits only for blocks a helper has started.

The same protocol runs span jobs (``KIND`` = ``SPANS``, :func:`run_spans`): a C function called on
each block, through which the activations and the dot-product driver reach the helpers
(``_team_spans``).

Linux on x86-64 only (the futex and ``sched_yield`` are reached by ``syscall`` numbers); elsewhere
``AVAILABLE`` is False and ``matmul`` keeps its one-thread and OpenMP drivers, as it does when
``jitgrad.config.gemm_team`` is off.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import platform
import sys
import threading

import numba
import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.ufunc import parallel as _numba_parallel

from jitgrad import config
from jitgrad.kernels.cpu._jit import njit

from . import _tier
from ._atomic import fetch_add, load_acquire, spin_pause, store_seq
from ._cache_load import cached_cfunc
from ._gemm import DONE, _jit, gemm_task, pack_share, plan, prepare_tasks, serial_entry
from ._gemm_simd import _element_pointer, address_to_pointer
from ._team_state import (  # noqa: F401 (the state's layout, also for _team_spans, tests, benchmarks)
    _A, _A_CS, _A_PSTRIDE, _A_RS, _AF, _AF_COLS, _AF_ROWS, _B, _B_DIRECT, _BIAS, _BIAS_LEN, _BP, _BP_COLS, _BP_ROWS,
    _C, _EPI, _K, _M, _N, _NPA, _NPB, _PACK_PARTS, _SHARE_A, _SHARE_B, _TASK_A, _TASK_B, _TI, _TJ, _TRANS_A,
    _TRANS_B, ACTIVE, ARGS, BLOCKS, BUSY, FUNCTION, GEMM, HELPED, HELPERS_STARTED, JOB, JOB_DONE, KIND, OPEN,
    PACK_DONE, PACK_NEXT, PRODUCT_JOB, SEQ, SLEEPERS, SPANS, STATE_SLOTS, STOP, TASK, THREADS_FN, WIDTH, acquire,
    call_job, release,
)

_LINUX_X86_64 = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")
_SYS_SCHED_YIELD = 24
_SYS_FUTEX = 202
_FUTEX_WAIT_PRIVATE = 128
_FUTEX_WAKE_PRIVATE = 129


def _syscall(builder, number, *args):
    i64 = ir.IntType(64)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64], var_arg=True), "syscall")
    return builder.call(fn, [ir.Constant(i64, number), *args])


@intrinsic
def sched_yield(typingctx):
    """Give the CPU to another runnable thread, if any (Linux ``sched_yield``)."""

    def codegen(context, builder, sig, args):
        _syscall(builder, _SYS_SCHED_YIELD)
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def futex_wait(typingctx, arr, index, expected):
    """Sleep while the low 32 bits of ``arr[index]`` (int64) equal ``expected``'s (or until woken)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        val = builder.and_(context.cast(builder, args[2], sig.args[2], types.int64), ir.Constant(i64, 0xFFFFFFFF))
        _syscall(builder, _SYS_FUTEX, builder.ptrtoint(ptr, i64), ir.Constant(i64, _FUTEX_WAIT_PRIVATE), val,
                 ir.Constant(i64, 0))
        return context.get_dummy_value()

    return types.none(arr, index, expected), codegen


@intrinsic
def futex_wake(typingctx, arr, index):
    """Wake every thread sleeping in :func:`futex_wait` on ``arr[index]``."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        _syscall(builder, _SYS_FUTEX, builder.ptrtoint(ptr, i64), ir.Constant(i64, _FUTEX_WAKE_PRIVATE),
                 ir.Constant(i64, 0x7FFFFFFF))
        return context.get_dummy_value()

    return types.none(arr, index), codegen


#: Pauses a helper spins for between products before it sleeps (a ``pause`` is 40-150 cycles).
SPIN_PAUSES = 1 << 15
#: ... giving the CPU away every this many (``sched_yield``): another runnable thread on the helper's
#: core (an OpenMP kernel's, another process's) waits at most that long for it.
YIELD_EVERY = 256


@njit(inline="always", **_jit)
def _array2(state, slot, dtype):
    return carray(address_to_pointer(state[slot], dtype), (state[slot + 1], state[slot + 2]))


@njit(inline="always", **_jit)
def claim(state, slot, helper, total):
    """The next of ``total`` items (pack parts, blocks of C) for this thread, or -1 when none is left.

    The calling thread claims from the front, helpers from the back, by one atomic add on a word
    counting both (the front in its low 32 bits): each thread's items stay side by side, as in the
    OpenMP driver's runs. Handed out one by one, blocks of C in turn went to alternate threads:
    144 x 16 x 12544 (a ResNet conv's input-gradient product) took 510-550 us against 326 us two-ended
    (OpenMP: 370-410), 32 x 9 x 10816 83 against 48 us. Packed panels stay in the L2 of the thread
    that packed them, and its blocks read them.
    """
    claimed = fetch_add(state, slot, (1 << 32) if helper else 1)
    front = claimed & 0xFFFFFFFF
    back = claimed >> 32
    if front + back >= total:
        return -1
    return total - 1 - back if helper else front


@njit(**_jit)
def work(state, helper):
    """Claim and compute blocks of the posted product until none is left (the calling thread and
    helpers); returns how many this thread computed."""
    f32 = np.float32
    a = _array2(state, _A, f32)
    b = _array2(state, _B, f32)
    af = _array2(state, _AF, f32)
    bp = _array2(state, _BP, f32)
    m, n, k = state[_M], state[_N], state[_K]
    c = carray(address_to_pointer(state[_C], f32), (m * n,))
    bias = carray(address_to_pointer(state[_BIAS], f32), (state[_BIAS_LEN],))
    ti, tj, npa, npb = state[_TI], state[_TJ], state[_NPA], state[_NPB]
    trans_a, trans_b = state[_TRANS_A] != 0, state[_TRANS_B] != 0
    task_a, task_b, b_direct = state[_TASK_A] != 0, state[_TASK_B], state[_B_DIRECT] != 0
    a_pstride, a_rs, a_cs = state[_A_PSTRIDE], state[_A_RS], state[_A_CS]
    epi = state[_EPI]
    # A shared packing pass first, in parts claimed one by one; no block starts before it is done.
    parts = state[_PACK_PARTS]
    if parts:
        share_a, share_b = state[_SHARE_A] != 0, state[_SHARE_B] != 0
        p = claim(state, PACK_NEXT, helper, parts)
        while p >= 0:
            pack_share(a, b, trans_a, trans_b, share_a, share_b, npa, npb, af[0], bp[0], p, parts)
            fetch_add(state, PACK_DONE, 1)
            p = claim(state, PACK_NEXT, helper, parts)
        while load_acquire(state, PACK_DONE) < parts:
            spin_pause()
    ntasks = ti * tj
    done = 0
    t = claim(state, TASK, helper, ntasks)
    while t >= 0:
        gemm_task(a, b, trans_a, trans_b, af, bp, a_pstride, a_rs, a_cs, task_a, task_b, b_direct, k, m, n,
                  ti, tj, npa, npb, t, c, bias, epi)
        done += 1
        t = claim(state, TASK, helper, ntasks)
    return done


@njit(**_jit)
def work_spans(state, helper):
    """Claim blocks of the posted span job and call its function on each until none is left (the
    calling thread and helpers); returns how many this thread ran."""
    function, total, address = state[FUNCTION], state[BLOCKS], state.ctypes.data
    done = 0
    t = claim(state, TASK, helper, total)
    while t >= 0:
        call_job(function, address, t)
        done += 1
        t = claim(state, TASK, helper, total)
    return done


@njit(**_jit)
def helper_loop(state, index):
    """A helper's life: spin for a posted product, sleep on the futex after SPIN_PAUSES, work, repeat."""
    seen = load_acquire(state, SEQ)
    while True:
        spins = 0
        posted = load_acquire(state, SEQ)
        while posted == seen:
            if load_acquire(state, STOP):
                return
            spins += 1
            if spins >= SPIN_PAUSES:
                fetch_add(state, SLEEPERS, 1)
                if load_acquire(state, SEQ) == seen:
                    futex_wait(state, SEQ, seen)
                fetch_add(state, SLEEPERS, -1)
                spins = 0
            elif spins % YIELD_EVERY == 0:
                sched_yield()
            else:
                spin_pause()
            posted = load_acquire(state, SEQ)
        seen = posted
        if index + 1 < load_acquire(state, WIDTH):
            fetch_add(state, ACTIVE, 1)
            if load_acquire(state, OPEN):
                done = work_spans(state, True) if state[KIND] == SPANS else work(state, True)
                fetch_add(state, HELPED, done)
            fetch_add(state, ACTIVE, -1)


def product_job(address, nthreads):
    """The product job (a ``numba.cfunc``, see :func:`product_state`): the product ``team_product``
    described in the state at ``address``, on this thread and ``nthreads - 1`` helpers, the team held
    (``team_product`` releases it). Only its allocations could raise, before the job is posted."""
    state = carray(address_to_pointer(address, np.int64), (STATE_SLOTS,))
    f32 = np.float32
    a = _array2(state, _A, f32)
    b = _array2(state, _B, f32)
    c = _array2(state, _C, f32)
    trans_a, trans_b = state[_TRANS_A] != 0, state[_TRANS_B] != 0
    sizes = plan(a, trans_a, trans_b, c, nthreads)
    _, _, k, _, npa, npb, b_direct, _, ti, tj = sizes
    af, bp, a_pstride, a_rs, a_cs, task_a, task_b, share_a, share_b, small_share = prepare_tasks(
        a, b, trans_a, trans_b, c, nthreads, sizes)
    state[_AF], state[_AF_ROWS], state[_AF_COLS] = af.ctypes.data, af.shape[0], af.shape[1]
    state[_BP], state[_BP_ROWS], state[_BP_COLS] = bp.ctypes.data, bp.shape[0], bp.shape[1]
    state[_K] = k
    state[_TI], state[_TJ], state[_NPA], state[_NPB] = ti, tj, npa, npb
    state[_TASK_A], state[_TASK_B], state[_B_DIRECT] = task_a, task_b, b_direct
    state[_A_PSTRIDE], state[_A_RS], state[_A_CS] = a_pstride, a_rs, a_cs
    # A larger shared packing pass: in parts the team claims (prepare_tasks did a small one here).
    state[_SHARE_A], state[_SHARE_B], state[_PACK_PARTS] = share_a, share_b, 0 if small_share else 4 * nthreads
    store_seq(state, PACK_NEXT, 0)
    store_seq(state, PACK_DONE, 0)
    state[KIND] = GEMM
    _post(state, nthreads)
    work(state, False)
    _finish(state)
    # The packed buffers are used once more here, after the last helper has left the job: Numba frees
    # an array right after its last use in a function, which was the store of its address above, so
    # the team packed into freed memory (unmapped, and a segfault, when the buffer was above malloc's
    # mmap threshold: 32 x 288 x 32768, B packed into 37 MB).
    state[_AF_ROWS], state[_BP_ROWS] = af.shape[0], bp.shape[0]
    store_seq(state, JOB_DONE, 1)


def gemm_team(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, c: np.ndarray, nthreads: int,
              bias: np.ndarray, epi: int, state: np.ndarray) -> bool:
    """``c = op(a) @ op(b)`` (float32, valid C-contiguous ndarrays, ``c`` apart from ``a`` and ``b``; the
    epilogue ``bias``, ``epi``: see ``gemm_cols``) on ``nthreads`` threads of the team whatever its size,
    through ``gemm_checked``'s entry point; False (nothing done) when another thread holds the team.
    (Tests and benchmarks: ``matmul`` reaches the team through ``gemm_checked`` itself.)"""
    product_state(nthreads)
    return serial_entry(c.dtype)(a, b, trans_a, trans_b, c, bias, epi, -nthreads, state) == DONE


@njit(inline="always", **_jit)
def _post(state, nthreads):
    """Open the described job to ``nthreads - 1`` helpers and wake those asleep."""
    store_seq(state, TASK, 0)
    store_seq(state, WIDTH, nthreads)
    store_seq(state, OPEN, 1)
    fetch_add(state, SEQ, 1)
    if load_acquire(state, SLEEPERS) > 0:
        futex_wake(state, SEQ)


@njit(inline="always", **_jit)
def _finish(state):
    """Close the job (this thread has found no block left) and wait for the blocks a helper started."""
    store_seq(state, OPEN, 0)
    while load_acquire(state, ACTIVE) > 0:
        spin_pause()


@njit(inline="always", **_jit)
def _close(state):
    """:func:`_finish` the job and release the team."""
    _finish(state)
    release(state)


@njit(inline="always", **_jit)
def run_spans(state, function, blocks, nthreads):
    """Run ``function(address of state, block)`` for ``block`` in ``range(blocks)`` on this thread and
    the helpers, the team held (:func:`acquire`) and the job's arguments in ``state[ARGS:]``."""
    state[KIND], state[FUNCTION], state[BLOCKS] = SPANS, function, blocks
    _post(state, nthreads)
    work_spans(state, False)
    _close(state)


#: Whether the team can run here: Linux on x86-64.
AVAILABLE = _LINUX_X86_64


def enabled() -> bool:
    """Whether ``matmul`` and the activations use the team: available here and ``jitgrad.config.gemm_team`` on."""
    return AVAILABLE and config.gemm_team


_STATE = np.zeros(STATE_SLOTS, np.int64)
_HELPERS: list[threading.Thread] = []
#: The team's name among the tiered kernels' ready markers (``_tier``).
NAME = f"{__name__}.gemm_team"
_ready = False


def ready() -> bool:
    """Whether ``matmul`` may use the team now: its kernels are in the cache (a ready marker, left by
    :func:`compiled` in the process that first ran them), or tiering is off (a filled cache, or
    ``JITGRAD_TIERED=0``: then they compile here on first use, as the parallel drivers do). While a
    tiered cold start compiles in the background, products run as before (one thread, or OpenMP)."""
    global _ready
    if not _ready and _tier._forced != "serial":
        _ready = _tier._forced == "parallel" or not _tier.enabled() or _tier.is_ready(NAME)
    return _ready


def compiled() -> None:
    """Leave the team's ready marker (called after its first product: its machine code is cached)."""
    if not _tier.is_ready(NAME):
        _tier._write_marker(NAME)


def num_threads() -> int:
    """``numba.get_num_threads()`` (this thread's setting), by Numba's C entry once its pool is up:
    ~0.1 us instead of ~0.7 us, which a 4 us product notices."""
    if getattr(_numba_parallel, "_is_initialized", False):
        return _numba_parallel._get_num_threads()
    return numba.get_num_threads()


def team_state(nthreads: int) -> np.ndarray:
    """The team's state, with ``nthreads - 1`` helpers running (started on first use; the helpers' loop
    compiled or loaded here first, so that no helper compiles while a product waits for it)."""
    if len(_HELPERS) < nthreads - 1 and not helper_loop.signatures:
        helper_loop.compile((types.int64[::1], types.int64))
    while len(_HELPERS) < nthreads - 1:
        helper = threading.Thread(target=helper_loop, args=(_STATE, len(_HELPERS)), daemon=True,
                                  name=f"jitgrad-gemm-helper-{len(_HELPERS)}")
        helper.start()
        _HELPERS.append(helper)
    _STATE[HELPERS_STARTED] = len(_HELPERS)
    return _STATE


#: ``product_job``'s ``numba.cfunc`` (which keeps its machine code alive), once compiled or loaded.
_PRODUCT_JOB: list = []


def product_state(nthreads: int) -> np.ndarray:
    """The team's state (:func:`team_state`) with its product job: compiled or loaded on first use, its
    address and that of the threading layer's ``get_num_threads`` written, so that ``gemm_checked``
    posts float32 products to the team itself from now on (``_team_state.team_threads``)."""
    state = team_state(nthreads)
    if not state[PRODUCT_JOB]:
        if not _PRODUCT_JOB:
            _PRODUCT_JOB.append(cached_cfunc(product_job, types.void(types.int64, types.int64)))
        note_threads_fn()
        state[PRODUCT_JOB] = _PRODUCT_JOB[0].address
    return state


def note_threads_fn() -> None:
    """Write the threading layer's ``get_num_threads`` into the state (launching the layer first), so
    that ``gemm_checked`` reads the calling thread's setting itself (``_team_state.team_threads``): with
    the team started, or on one thread, where it never starts and ``matmul`` otherwise asked the entry
    point twice for each product above ``TEAM_MIN_MACS`` (once to hear ``LARGER``)."""
    if not _STATE[THREADS_FN]:
        numba.get_num_threads()  # (launches the threading layer: its functions exist from here)
        _STATE[THREADS_FN] = ctypes.cast(_numba_parallel._get_num_threads, ctypes.c_void_p).value


def shutdown(timeout: float = 1.0) -> None:
    """Stop the helpers (at exit, so none is spinning while the interpreter finalises); a later product
    starts new ones. From Python: plain stores (aligned int64 stores are atomic on x86-64) and the
    futex wake through libc's ``syscall``."""
    if not _HELPERS:
        return
    _STATE[STOP] = 1
    _STATE[SEQ] += 1
    ctypes.CDLL(None, use_errno=True).syscall(ctypes.c_long(_SYS_FUTEX), ctypes.c_void_p(_STATE.ctypes.data + 8 * SEQ),
                                              ctypes.c_long(_FUTEX_WAKE_PRIVATE), ctypes.c_long(0x7FFFFFFF))
    for helper in _HELPERS:
        helper.join(timeout)
    if not any(helper.is_alive() for helper in _HELPERS):
        _HELPERS.clear()
        _STATE[HELPERS_STARTED] = 0
        _STATE[STOP] = 0


atexit.register(shutdown)


def _after_fork_in_child() -> None:
    """The child has none of the parent's helpers: a fresh state (never BUSY), helpers started anew."""
    global _STATE
    _STATE = np.zeros(STATE_SLOTS, np.int64)
    _HELPERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
