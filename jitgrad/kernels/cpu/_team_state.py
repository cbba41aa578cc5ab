"""The GEMM team's shared state (``_team``): its slots, and what a product's caller writes there.

Apart from ``_team`` so that ``_gemm.gemm_checked`` (which ``_team`` imports) can post a product to
the team itself: ``matmul``'s checks and the team product in one compiled call, where they were two
with Python between (the state fetched, the thread count asked, a second entry point's unboxing).
The product's work is a ``numba.cfunc``, the *product job* (``_team.product_job``), reached through
its address in the state (:func:`call_job`), so the team's code (packing, tasks, the protocol) is
compiled once, in the job, and ``gemm_checked`` stays small. Two threads, Zen 3, ``matmul`` against
the team's own entry point in the same process (medians of 40 interleaved blocks): 2.7-4.1 us more
before (LeNet-5's fc2 products, 128 x 84 x 120, take ~20 us), 0.9-1.7 us now; 64^3 8.0-8.5 -> 5.0 us.

A product runs on the team from ``gemm_checked`` when the state holds a job (``PRODUCT_JOB``: set by
``_team.product_state`` once the team may run, never in :data:`NO_TEAM`), Numba's thread setting of
the calling thread, read through ``THREADS_FN``, is more than one, and helpers enough for it are
started (``HELPERS_STARTED``); otherwise the caller's Python decides (``_team.product_state``
starts them).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._atomic import compare_swap, load_acquire, store_seq
from ._jit import njit

# The team's state: int64 slots, each on a cache line of its own (8 slots apart); the job's
# description after them.
SEQ = 0  # jobs posted (the futex word)
SLEEPERS = 8  # helpers asleep in futex_wait
STOP = 16  # helpers leave when set
BUSY = 24  # a calling thread owns the team (compare_swap 0 -> 1)
OPEN = 32  # 1 while the posted job takes helpers
ACTIVE = 40  # helpers inside the posted job
TASK = 48  # the next block to claim
WIDTH = 56  # threads that may work on the job (calling thread included)
HELPED = 64  # blocks the helpers have computed, over the team's life (for tests and benchmarks)
PACK_NEXT = 72  # the next part of a shared packing pass to claim
PACK_DONE = 80  # parts of it done
JOB = 88  # the job's description: a product's (below) or a span job's arguments (ARGS)
KIND = 122  # what is posted: GEMM (a product) or SPANS (a C function called on blocks, see _team.run_spans)
FUNCTION = 123  # SPANS: the function's address
BLOCKS = 124  # SPANS: how many blocks
# Written once by the team's Python side, read by gemm_checked's calling thread.
PRODUCT_JOB = 128  # the product job's address (0: products do not go to the team from gemm_checked)
THREADS_FN = 129  # the address of the threading layer's int get_num_threads(void)
HELPERS_STARTED = 130  # helper threads running
JOB_DONE = 131  # set by the product job at its end (a job cannot raise: see team_product)
STATE_SLOTS = 136
#: Job kinds (``KIND``).
GEMM, SPANS = 0, 1
#: A span job's arguments (``_team_spans``) start here; they end before ``KIND``.
ARGS = JOB

# The product's description, slots after JOB: written by team_product (a, b, c, bias, flags), the
# rest by the job.
(_A, _A_ROWS, _A_COLS, _B, _B_ROWS, _B_COLS, _C, _M, _N, _K, _TRANS_A, _TRANS_B, _BIAS, _BIAS_LEN, _EPI, _TI, _TJ,
 _NPA, _NPB, _TASK_A, _TASK_B, _B_DIRECT, _AF, _AF_ROWS, _AF_COLS, _BP, _BP_ROWS, _BP_COLS, _A_PSTRIDE, _A_RS,
 _A_CS, _SHARE_A, _SHARE_B, _PACK_PARTS) = range(JOB, JOB + 34)

#: The state passed where products must not go to the team (float64, the team off): no job.
NO_TEAM = np.zeros(STATE_SLOTS, np.int64)


@intrinsic
def call_job(typingctx, function, address, block):
    """Call the C function at ``function`` (``void f(int64 address, int64 block)``: a span job's or
    the product job's ``numba.cfunc``) with ``address`` and ``block``."""
    if not all(isinstance(t, types.Integer) for t in (function, address, block)):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(ir.VoidType(), [i64, i64])
        fn = builder.inttoptr(context.cast(builder, args[0], sig.args[0], types.int64), fnty.as_pointer())
        builder.call(fn, [context.cast(builder, args[1], sig.args[1], types.int64),
                          context.cast(builder, args[2], sig.args[2], types.int64)])
        return context.get_dummy_value()

    return types.none(function, address, block), codegen


@intrinsic
def call_int_function(typingctx, function):
    """Call the C function at ``function`` (``int f(void)``); its result as int64."""
    if not isinstance(function, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        fn = builder.inttoptr(context.cast(builder, args[0], sig.args[0], types.int64),
                              ir.FunctionType(i32, []).as_pointer())
        return builder.sext(builder.call(fn, []), ir.IntType(64))

    return types.int64(function), codegen


@njit(inline="always", cache=True)
def acquire(state):
    """Take the team for one job (its description is written next): False when another thread holds it."""
    return compare_swap(state, BUSY, 0, 1)


@njit(inline="always", cache=True)
def release(state):
    """Let the team take the next job."""
    store_seq(state, BUSY, 0)


@njit(inline="always", cache=True)
def team_threads(state):
    """The calling thread's Numba thread setting when a product may go to the team from here (a job in
    ``state``, helpers started for it) or when it is one thread (the product runs here), else 0: the
    caller's Python decides. Known once ``THREADS_FN`` is written (``_team.product_state``, or
    ``_team.note_threads_fn`` on one thread, where the team never starts)."""
    if state[THREADS_FN] == 0:
        return 0
    nthreads = call_int_function(state[THREADS_FN])
    if nthreads == 1:
        return 1
    if state[PRODUCT_JOB] == 0:
        return 0
    return nthreads if nthreads - 1 <= state[HELPERS_STARTED] else 0


@njit(inline="always", cache=True)
def team_product(state, a, b, trans_a, trans_b, c, bias, epi, nthreads):
    """``c = op(a) @ op(b)`` (checked, C-contiguous float32) with the epilogue ``bias``, ``epi`` on
    ``nthreads`` threads of the team, by its product job; False (nothing done) when the state has no
    job or another thread holds the team.

    The job reports its end in ``JOB_DONE``, read before the team is released here: a ``cfunc`` that
    raised (its packing buffers' allocation, before it posts the job to helpers) prints the error
    and returns, and then the product is not done (False: the caller computes it, and raises)."""
    if c.itemsize != 4 or state[PRODUCT_JOB] == 0 or not acquire(state):
        return False
    state[_A], state[_A_ROWS], state[_A_COLS] = a.ctypes.data, a.shape[0], a.shape[1]
    state[_B], state[_B_ROWS], state[_B_COLS] = b.ctypes.data, b.shape[0], b.shape[1]
    state[_C], state[_M], state[_N] = c.ctypes.data, c.shape[0], c.shape[1]
    state[_BIAS], state[_BIAS_LEN], state[_EPI] = bias.ctypes.data, bias.size, epi
    state[_TRANS_A], state[_TRANS_B] = trans_a, trans_b
    state[JOB_DONE] = 0
    call_job(state[PRODUCT_JOB], state.ctypes.data, nthreads)
    done = load_acquire(state, JOB_DONE) != 0
    release(state)
    return done
