"""Elementwise kernels on the GEMM team (``_team``): a kernel's serial twin run on spans of its
arrays by the calling thread and the team's helpers, with no OpenMP wake-up.

Why: a parallel region of Numba's OpenMP pool wakes the pool's sleeping thread (~100 us on a VM
whose idle vCPUs halt, ``jitgrad/config.py``), so the activations ran serially below 128k
elements, and larger ones paid that wake-up every call (tanh of 128 x 32 x 26 x 26, float32,
Zen 4: 539 us in a loop of calls, 820 us in ``bench/report.py``'s, where the thread sleeps between
calls, against 958 us serial). On the team the calling thread starts at once and a helper joins
when it sees the job, taking spans from the other end (``_team.claim``).

How: a helper runs code it was not compiled with through a C function pointer
(``_team.call_job``): each kernel gets a ``numba.cfunc`` *span job*, ``job(address, block)``, that
rebuilds the arrays from the addresses in the team's state (``address``) and calls the kernel's
serial twin on block ``block``'s span. The jobs come from six templates below (2 or 3 arrays, 0 to 2
scalars), each compiled with the kernel as its global ``KERNEL`` under a name of its own, so that
Numba caches every job in a file of its own (a closure would not be cached: its key holds the
dispatcher, which pickles differently in every process). :func:`run` posts a job
(``_post_spans``: the addresses, the scalars as float64, the span size) and runs it.

A job cannot report an error (a ``cfunc`` prints an exception and returns): the kernels it runs
raise none (no bounds checks, ``error_model="numpy"``; ``gemm_dot`` allocates 3 x ``DOT_NR``
values).

A job's arguments in ``state[ARGS:]``: the element count, the span size, up to three array
addresses (the kernel's arrays in order, its output last), up to two scalars (float64 bits).

``run_dot`` does the same for ``matmul``'s dot-product driver (``a @ b.T``, deep, with few rows or
columns of C: conv weight gradients, a 10-class head's forward): one job, ``_dot_job``, on spans
of C's columns or rows. It ran serially below 3.7M multiply-adds and on OpenMP above: Keras fc's
forward (128 x 1600 x 10) took 71 us on one thread, 31 us on the team.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import carray, literal_unroll, types

from jitgrad.kernels.cpu._jit import code_copy, njit

from . import _team
from ._cache_load import cached_cfunc
from ._gemm_dot import DOT_MR, DOT_NR, gemm_dot
from ._gemm_simd import address_to_pointer
from ._gemv import axpy_rows, dot_rows, gemv_form
from ._team import ARGS, STATE_SLOTS

#: Elements below which an elementwise kernel runs serially even on the team, as a multiple of its
#: OpenMP size (``Twins.min_size``): the team needs no wake-up, so it pays from a quarter of it.
TEAM_FRACTION = 4
#: Spans of at least this many elements, and about ``SPANS_PER_THREAD`` a thread: each claim is an
#: atomic add on a line both threads write (~0.1 us), and the last span decides when the call ends.
MIN_SPAN = 1 << 13
SPANS_PER_THREAD = 16

_N, _SPAN, _ARRAYS, _SCALARS = ARGS, ARGS + 1, ARGS + 2, ARGS + 5


@njit(inline="always", cache=True)
def _array(state, i, lo, hi, dtype):
    """Array ``i`` of the job, its span ``[lo, hi)``."""
    return carray(address_to_pointer(state[_ARRAYS + i], dtype), (state[_N],))[lo:hi]


@njit(inline="always", cache=True)
def _span(address, block):
    """The team's state at ``address``, and block ``block``'s span."""
    state = carray(address_to_pointer(address, np.int64), (STATE_SLOTS,))
    lo = block * state[_SPAN]
    return state, lo, min(state[_N], lo + state[_SPAN])


@njit(inline="always", cache=True)
def _scalar(state, j):
    """Scalar ``j`` of the job (float64)."""
    return carray(address_to_pointer(state.ctypes.data, np.float64), (STATE_SLOTS,))[_SCALARS + j]


# The templates: ``KERNEL`` (the serial twin), ``DTYPE`` (its arrays') and ``S`` (its scalars' type)
# are the globals :func:`_job` gives each copy. ``x`` ... ``out``: the kernel's arguments in order.
def _job_2_0(address, block):
    state, lo, hi = _span(address, block)
    KERNEL(_array(state, 0, lo, hi, DTYPE), _array(state, 1, lo, hi, DTYPE))  # noqa: F821


def _job_2_1(address, block):
    state, lo, hi = _span(address, block)
    KERNEL(_array(state, 0, lo, hi, DTYPE), S(_scalar(state, 0)), _array(state, 1, lo, hi, DTYPE))  # noqa: F821


def _job_2_2(address, block):
    state, lo, hi = _span(address, block)
    KERNEL(_array(state, 0, lo, hi, DTYPE), S(_scalar(state, 0)), S(_scalar(state, 1)),  # noqa: F821
           _array(state, 1, lo, hi, DTYPE))  # noqa: F821


def _job_3_0(address, block):
    state, lo, hi = _span(address, block)
    KERNEL(_array(state, 0, lo, hi, DTYPE), _array(state, 1, lo, hi, DTYPE),  # noqa: F821
           _array(state, 2, lo, hi, DTYPE))  # noqa: F821


def _job_3_1(address, block):
    state, lo, hi = _span(address, block)
    KERNEL(_array(state, 0, lo, hi, DTYPE), _array(state, 1, lo, hi, DTYPE), S(_scalar(state, 0)),  # noqa: F821
           _array(state, 2, lo, hi, DTYPE))  # noqa: F821


def _job_3_2(address, block):
    state, lo, hi = _span(address, block)
    KERNEL(_array(state, 0, lo, hi, DTYPE), _array(state, 1, lo, hi, DTYPE), S(_scalar(state, 0)),  # noqa: F821
           S(_scalar(state, 1)), _array(state, 2, lo, hi, DTYPE))  # noqa: F821


_TEMPLATES = {(2, 0): _job_2_0, (2, 1): _job_2_1, (2, 2): _job_2_2, (3, 0): _job_3_0, (3, 1): _job_3_1,
              (3, 2): _job_3_2}
_JOB_SIGNATURE = types.void(types.int64, types.int64)
#: ``{(kernel, dtype): its job}`` (the ``CFunc``, which keeps the machine code alive), filled on first use.
_JOBS: dict[tuple, Any] = {}


def _job(kernel: Any, narrays: int, nscalars: int, dtype: np.dtype) -> int | None:
    """The address of ``kernel``'s span job for arrays of ``dtype`` (its scalars cast to it), compiled
    or loaded from Numba's cache on first use; None for a signature no template has."""
    key = (kernel, dtype)
    job = _JOBS.get(key)
    if job is None:
        template = _TEMPLATES.get((narrays, nscalars))
        if template is None:
            return None
        # One cache file per kernel and type (Numba names them by the qualified name).
        qualname = (f"{template.__name__}.{kernel.py_func.__module__.replace('.', '_')}."
                    f"{kernel.py_func.__name__}.{dtype.name}")
        function = code_copy(template, template.__name__, qualname, KERNEL=kernel, DTYPE=dtype.type, S=dtype.type)
        job = _JOBS[key] = cached_cfunc(function, _JOB_SIGNATURE)
    return job.address


@njit(cache=True, nogil=True)
def _post_spans(state, function, nthreads, span, arrays, scalars):
    """Run the span job ``function`` on ``arrays`` (of one size; the output last) and ``scalars``
    (float64) on this thread and the team; False (nothing done) when another thread holds the team."""
    if not _team.acquire(state):
        return False
    n = arrays[0].size
    slot = _ARRAYS
    for x in literal_unroll(arrays):  # (its arrays' types may differ: a read-only input)
        state[slot] = x.ctypes.data
        slot += 1
    floats = carray(address_to_pointer(state.ctypes.data, np.float64), (STATE_SLOTS,))
    for j in range(len(scalars)):
        floats[_SCALARS + j] = scalars[j]
    state[_N], state[_SPAN] = n, span
    _team.run_spans(state, function, (n + span - 1) // span, nthreads)
    return True


_NO_SCALARS = (0.0, 0.0)


def run(kernel: Any, args: tuple, size: int) -> bool:
    """``kernel(*args)`` (an elementwise serial twin: its arrays plain, C-contiguous, of ``size``
    elements and one dtype; its scalars floats of that dtype) on the team, when it can run
    (:func:`usable`); False when the caller should run it another way."""
    nthreads = _team.num_threads()
    if nthreads == 1 or any(type(s) is bool for s in args):  # a flag (the generic GELU kernel's form)
        return False
    arrays = tuple(a for a in args if type(a) is np.ndarray)
    scalars = tuple(float(s) for s in args if type(s) is not np.ndarray)
    dtype = arrays[0].dtype
    function = _job(kernel, len(arrays), len(scalars), dtype)
    if function is None:
        return False
    span = max(MIN_SPAN, (-(-size // (SPANS_PER_THREAD * nthreads)) + 63) & ~63)  # whole cache lines
    return _post_spans(_team.team_state(nthreads), function, nthreads, span, arrays,
                       scalars + _NO_SCALARS[len(scalars):])


def usable() -> bool:
    """Whether span jobs (the activations', the dot-product driver's) may run on the team now: it is
    on and compiled (``_team.enabled``, ``_team.ready``) and this thread has more than one thread set."""
    return _team.enabled() and _team.ready() and _team.num_threads() > 1


# ----------------------------------------------------------------------------- a @ b.T by dot products

# ``matmul``'s dot-product driver (``_gemm_dot``: ``a @ b.T`` with few rows or columns of C, deep K) on
# the team: spans of C's columns (tiles of ``DOT_NR``) or, when there are too few of those, of its rows.
# Job arguments: the span count's unit total, the span size, the mode, then ``a``, ``b``, ``c`` as
# (address, rows, columns).
_TOTAL, _DOT_SPAN, _MODE, _MATRICES = ARGS, ARGS + 1, ARGS + 2, ARGS + 3
_BY_COLUMNS, _BY_ROWS = 0, 1
#: Spans a thread of a dot-product job: each span streams all of ``a`` (columns) or ``b`` (rows).
DOT_SPANS_PER_THREAD = 2


@njit(inline="always", cache=True)
def _matrix(state, i, row0, rows):
    """Rows ``[row0, row0 + rows)`` of the job's float32 matrix ``i`` (all rows: ``rows`` < 0)."""
    slot = _MATRICES + 3 * i
    cols = state[slot + 2]
    if rows < 0:
        rows = state[slot + 1]
    return carray(address_to_pointer(state[slot] + row0 * cols * 4, np.float32), (rows, cols))


def _dot_job(address, block):
    state = carray(address_to_pointer(address, np.int64), (STATE_SLOTS,))
    lo = block * state[_DOT_SPAN]
    hi = min(state[_TOTAL], lo + state[_DOT_SPAN])
    b = _matrix(state, 1, 0, -1)
    if state[_MODE] == _BY_COLUMNS:
        gemm_dot(_matrix(state, 0, 0, -1), b, _matrix(state, 2, 0, -1),
                 lo * DOT_NR, min(b.shape[0], hi * DOT_NR))
    else:
        gemm_dot(_matrix(state, 0, lo, hi - lo), b, _matrix(state, 2, lo, hi - lo),
                 0, b.shape[0])


@njit(cache=True, nogil=True)
def _post_dot(state, function, nthreads, a, b, c):
    """``c = a @ b.T`` by :func:`_dot_job` on this thread and the team; False when the team is held."""
    if not _team.acquire(state):
        return False
    m, n = c.shape
    tiles = (n + DOT_NR - 1) // DOT_NR
    if tiles >= DOT_SPANS_PER_THREAD * nthreads:
        state[_MODE], state[_TOTAL] = _BY_COLUMNS, tiles
    else:  # few columns (a Linear layer's 10 classes): rows, a whole number of DOT_MR at a time
        state[_MODE], state[_TOTAL] = _BY_ROWS, m
    span = (state[_TOTAL] + DOT_SPANS_PER_THREAD * nthreads - 1) // (DOT_SPANS_PER_THREAD * nthreads)
    if state[_MODE] == _BY_ROWS:
        span = (span + DOT_MR - 1) // DOT_MR * DOT_MR
    state[_DOT_SPAN] = span
    # One by one, not a loop over (a, b, c): their types may differ (a read-only operand).
    state[_MATRICES], state[_MATRICES + 1], state[_MATRICES + 2] = a.ctypes.data, a.shape[0], a.shape[1]
    state[_MATRICES + 3], state[_MATRICES + 4], state[_MATRICES + 5] = b.ctypes.data, b.shape[0], b.shape[1]
    state[_MATRICES + 6], state[_MATRICES + 7], state[_MATRICES + 8] = c.ctypes.data, c.shape[0], c.shape[1]
    _team.run_spans(state, function, (state[_TOTAL] + span - 1) // span, nthreads)
    return True

_DOT_JOB: list[Any] = []  # the CFunc, once compiled or loaded


def run_dot(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> bool:
    """``c = a @ b.T`` (float32, C-contiguous, validated) on the team when it can (:func:`usable`, more than
    one thread, not held); False when the caller should run it another way."""
    nthreads = _team.num_threads()
    if nthreads == 1:
        return False
    if not _DOT_JOB:
        _DOT_JOB.append(cached_cfunc(_dot_job, _JOB_SIGNATURE))
    return _post_dot(_team.team_state(nthreads), _DOT_JOB[0].address, nthreads, a, b, c)


# ----------------------------------------------------------------------------- matrix-vector products

# ``_gemv``'s kernels on the team, for a matrix larger than the caches: one thread is bound by its
# memory bandwidth there, and NumPy's BLAS splits the matrix between its threads. Spans of the
# matrix's rows, which each span reads whole and in order: by dot products (``dot_rows``, its rows'
# values of the output), or added into a partial output of its own (``axpy_rows``), which the calling
# thread sums at the end (spans of the output's columns instead read every row in short pieces, 4 KiB
# apart at 1024 columns: 0.61-0.66x NumPy on two threads). Job arguments: the row count, the span size,
# the mode, the matrix (address, pitch, K), the vector's and the output's addresses, the output's size,
# the partial outputs' address.
_GEMV_TOTAL, _GEMV_SPAN, _GEMV_MODE, _GEMV_W, _GEMV_LD, _GEMV_K, _GEMV_X, _GEMV_Y, _GEMV_N, _GEMV_P = range(
    ARGS, ARGS + 10)
_DOT_ROWS, _AXPY_ROWS = 0, 1
#: Spans a thread of a matrix-vector job (the calling thread starts at once, the helper joins when it
#: sees the job: a few spans each even out the difference).
GEMV_SPANS_PER_THREAD = 4


def _gemv_job(address, block):
    state = carray(address_to_pointer(address, np.int64), (STATE_SLOTS,))
    lo = block * state[_GEMV_SPAN]
    hi = min(state[_GEMV_TOTAL], lo + state[_GEMV_SPAN])
    ld, k, n = state[_GEMV_LD], state[_GEMV_K], state[_GEMV_N]
    dot = state[_GEMV_MODE] == _DOT_ROWS
    w = carray(address_to_pointer(state[_GEMV_W] + lo * ld * 4, np.float32), ((hi - lo - 1) * ld + (k if dot else n),))
    if dot:  # rows lo:hi of the matrix, K long: their values of the output
        x = carray(address_to_pointer(state[_GEMV_X], np.float32), (k,))
        y = carray(address_to_pointer(state[_GEMV_Y] + lo * 4, np.float32), (hi - lo,))
        dot_rows(w, ld, hi - lo, k, x, y)
    else:  # rows lo:hi of the K rows, n long: into this span's partial output
        x = carray(address_to_pointer(state[_GEMV_X] + lo * 4, np.float32), (hi - lo,))
        y = carray(address_to_pointer(state[_GEMV_P] + block * n * 4, np.float32), (n,))
        axpy_rows(w, ld, hi - lo, n, x, y)


@njit(cache=True, nogil=True)
def _post_gemv(state, function, nthreads, w, x, y, mode, ld, k):
    """``y`` from the matrix ``w`` (rows ``ld`` apart) and the vector ``x`` by :func:`_gemv_job` in ``mode``
    on this thread and the team; False when the team is held."""
    if not _team.acquire(state):
        return False
    n = y.size
    total = n if mode == _DOT_ROWS else k
    parts = GEMV_SPANS_PER_THREAD * nthreads
    span = ((total + parts - 1) // parts + 3) // 4 * 4  # four rows at a time
    blocks = (total + span - 1) // span
    partial = np.empty(blocks * n if mode == _AXPY_ROWS else 0, dtype=y.dtype)
    state[_GEMV_TOTAL], state[_GEMV_SPAN], state[_GEMV_MODE] = total, span, mode
    state[_GEMV_W], state[_GEMV_LD], state[_GEMV_K] = w.ctypes.data, ld, k
    state[_GEMV_X], state[_GEMV_Y], state[_GEMV_N], state[_GEMV_P] = x.ctypes.data, y.ctypes.data, n, partial.ctypes.data
    _team.run_spans(state, function, blocks, nthreads)
    if mode == _AXPY_ROWS:  # (after the job: the partial outputs live until here)
        for j in range(n):
            y[j] = partial[j]
        for b in range(1, blocks):
            for j in range(n):
                y[j] += partial[b * n + j]
    return True


_GEMV_JOB: list[Any] = []  # the CFunc, once compiled or loaded


def run_gemv(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, c: np.ndarray) -> bool:
    """``c = op(a) @ op(b)`` with one row or one column of ``c`` (float32, C-contiguous, validated, K > 0)
    on the team when it can (more than one thread, not held); False when the caller should run it
    another way."""
    nthreads = _team.num_threads()
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if nthreads == 1 or k == 0:
        return False
    matrix_is_b, dot = gemv_form(m, trans_a, trans_b)  # (``_gemv.gemv``'s choice)
    w, x, size = (b, a, n) if matrix_is_b else (a, b, m)
    if not _GEMV_JOB:
        _GEMV_JOB.append(cached_cfunc(_gemv_job, _JOB_SIGNATURE))
    # (The product state: with it the entry point knows this thread's setting, and a one-thread call
    # no longer comes back to Python.)
    return _post_gemv(_team.product_state(nthreads), _GEMV_JOB[0].address, nthreads, w.reshape(-1), x.reshape(-1),
                      c.reshape(-1), _DOT_ROWS if dot else _AXPY_ROWS, k if dot else size, k)
