"""CPU ``matmul``: a register-tiled, multi-threaded GEMM written with Numba (no BLAS); see ``_gemm``."""

from __future__ import annotations

import numba
import numpy as np

from jitgrad import config as _config
from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference.matmul import check_matmul_args

from . import _conv, _gemm, _team, _team_spans
from ._gemm import DOT, SMALL_MACS, SWAPPED, product_route
from ._gemm_dot import gemm_dot, gemm_dot_parallel
from ._gemm_epilogue import apply_epilogue
from ._gemv import GEMV_TEAM_MIN
from ._jit import overlaps
from ._team_state import NO_TEAM
from ._threading import serialised

__all__: list[str] = kernel_names("matmul")  # the one list: kernels/_constants.py

#: Below this many multiply-adds one thread beats an OpenMP launch (float64; float32 with the GEMM
#: team off, see TEAM_MIN_MACS). Each parallel region wakes the
#: pool's sleeping thread (passive waiting, see jitgrad/config.py): ~45 us on the idle 2-core EPYC
#: VM, whose idle vCPUs halt (bench/omp_wait.py), a few us on bare metal. Since the calling thread
#: no longer sleeps at the region's end (``_atomic``), 2 threads against 1 there (Zen 4): 128^3
#: (2.1M) 0.80x, 128 x 120 x 256 and the two other products of LeNet's fc1 (3.9M) 1.08-1.21x,
#: 160^3 (4.1M) 1.06x, 192^3 1.22x (with the sleep at the end: 192^3 0.92x, 224^3 1.15x). On bare
#: metal the even point lies lower.
SERIAL_MACS = 7 << 19
#: float32 products of more multiply-adds than this run on the GEMM team (``_team``: helpers that
#: spin between products, blocks claimed from both ends; the dot-product driver's by spans of C's
#: columns or rows, ``_team_spans.run_dot``) when more than one thread is set; smaller ones on one
#: thread. Two threads against one, Zen 4 VM, in loops of calls: 64^3 6.5 -> 4.7 us,
#: 128 x 64 x 64 11.7 -> 7.9 us, but 10 x 128 x 84 (a weight gradient of two A panels) 4.0 ->
#: 4.4-4.7 us and 128 x 10 x 84 4.4 -> 4.9-5.0 us. Large products match the OpenMP driver, whose
#: wake-up they no longer pay: 256^3 165 us (OpenMP 195-226), 1024^3 11.0-12.0 ms (11.3-11.7),
#: 2048^3 86-93 ms (86-89).
TEAM_MIN_MACS = 1 << 17


def _matmul_kernel(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, out: np.ndarray,
                   bias: np.ndarray | None = None, epi: int = 0) -> None:
    """``out = op(a) @ op(b)`` in place (validated arguments), then the store epilogue ``epi``
    (``_gemm_epilogue`` bits; its column bias is ``bias``, of ``out``'s dtype, ``(N,)``)."""
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    macs = m * n * k
    if bias is None:
        bias = _NO_BIAS_F32 if out.dtype is _F32 else _NO_BIAS[out.dtype]
    if m == 1 or n == 1:  # a matrix-vector product (_gemv)
        if (macs >= GEMV_TEAM_MIN and out.dtype is _F32 and _team_spans.usable()
                and _team_spans.run_gemv(a, b, trans_a, trans_b, out)):
            if epi:
                apply_epilogue(out, bias, epi)
            return
        if out.dtype is not _F32 or _gemm.gemm_parallel.ready():
            # The entry point's kernel, its Python checks skipped from now on (it opens the fast path).
            _gemm.run_serial(a, b, trans_a, trans_b, out, bias, epi)
            return
    if macs <= SMALL_MACS:
        if macs == 0:
            if m and n:
                out.fill(0)
        else:
            _gemm.gemm_small(a, b, trans_a, trans_b, out)
        if epi and m and n:
            apply_epilogue(out, bias, epi)
        return
    # float32 above TEAM_MIN_MACS on the GEMM team; otherwise one thread below SERIAL_MACS (the thread
    # count is asked only where it decides). An OpenMP launch takes the workqueue lock (_parallel); the
    # serial kernels and the team need none.
    route = product_route(trans_a, trans_b, m, n, k, out.itemsize)
    if route == SWAPPED:  # a @ b.T as (b @ a.T).T (see _gemm.SWAP_NT), then the epilogue
        scratch = np.empty((n, m), dtype=out.dtype)
        _matmul_kernel(b, a, False, True, scratch)
        out[...] = scratch.T
        if epi:
            apply_epilogue(out, bias, epi)
        return
    dot = route == DOT
    if macs > TEAM_MIN_MACS and out.dtype is _F32:
        if not dot:
            if _team_product(a, b, trans_a, trans_b, out, bias, epi):  # (it opens the fast path)
                return
        elif _team_spans.usable() and _team_spans.run_dot(a, b, out):
            if epi:
                apply_epilogue(out, bias, epi)
            _open_fast_path()
            return
    if macs > SERIAL_MACS and _parallel(a, b, trans_a, trans_b, out, bias, epi, dot):
        return
    if dot:
        gemm_dot(a, b, out, 0, n)
    elif a.dtype is not _F32 or _gemm.gemm_parallel.ready():  # float64 never takes _as_convolution
        _gemm.run_serial(a, b, trans_a, trans_b, out, bias, epi)  # matmul's fast path: its entry point from now on
        return
    else:
        _as_convolution(a, b, trans_a, trans_b, out)
    if epi:  # after the product, as unfused: the same bits either way
        apply_epilogue(out, bias, epi)


def _open_fast_path() -> None:
    """Let ``fast_product`` take float32 products from now on, after the dot-product driver's spans ran
    on the team (``run_dot``): it needs ``gemm_checked``'s entry point, which a one-thread product
    (``run_serial``) and a product on the team (``_team.gemm_team``) open, but ``run_dot`` not. A process
    whose float32 products all ran on the team (a benchmark of square products, LeNet's fc1 and fc2
    products before fc3's) paid ``matmul``'s Python checks on every call: 2 threads, Zen 3, 1.3 us
    of 8 (64^3), 1.8 of ~20 (128 x 84 x 120), 2.3 of ~220 (256^3).
    Not while a tiered cold start compiles the serial GEMM (``gemm_parallel`` not ready: no entry point
    to load yet)."""
    if _F32 not in _gemm._SERIAL_ENTRIES and _gemm.gemm_parallel.ready():
        _gemm.serial_entry(_F32)


def _team_product(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, out: np.ndarray,
                  bias: np.ndarray, epi: int) -> bool:
    """Run a float32 product (valid, C-contiguous) on the GEMM team (``_team``) when it can: more than one
    thread set, the team available (Linux x86-64) and on (``config.gemm_team``) and compiled
    (``_team.ready``), and not held by another thread. False: the caller runs its serial kernel instead.
    After this, ``gemm_checked`` posts products to the team itself (``_team.product_state``)."""
    if not _team.enabled() or not _team.ready():
        return False
    nthreads = _team.num_threads()
    if nthreads == 1:
        return False
    if not bias.flags.c_contiguous:  # (the entry point's type; a fused linear's bias, checked)
        bias = np.ascontiguousarray(bias)
    done = _team.gemm_team(a, b, trans_a, trans_b, out, nthreads, bias, epi, _team._STATE)
    if done:
        _team.compiled()
    return done


# Locked: the conv forward kernel may be its parallel version already (matmul and linear lock only
# here and in _parallel).
@serialised
def _as_convolution(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, out: np.ndarray) -> None:
    """``out = op(a) @ op(b)`` by the conv forward kernel, while a tiered cold start has not compiled
    the GEMM drivers yet (``_tier``: ``gemm_parallel`` not ready).

    The product is a 1 x 1 convolution of one ``K``-channel image of ``N`` pixels (``op(b)``) with
    ``M`` filters (``op(a)``); a transposed operand is copied first (a Linear layer's weight or
    output gradient: a few thousand values). A cold LeNet-5 step then compiles one GEMM tree, the
    conv forward's, instead of two: ``gemm_serial`` with its packing routines is ~5.5 CPU-s on
    the 2-core Zen 3. The background process compiles ``gemm_serial`` (its Linear task) before the
    marker of ``gemm_parallel`` appears, so the switch loads it from the cache.
    """
    m, n = out.shape
    filters = np.ascontiguousarray(a.T if trans_a else a)
    image = np.ascontiguousarray(b.T if trans_b else b)
    k = filters.shape[1]
    _conv.conv2d_forward(image.reshape(1, k, n, 1), filters.reshape(m, k, 1, 1), _NO_BIAS_F32, False, 1, 1, 0, 0,
                         1, 1, out.reshape(1, m, n, 1), numba.get_num_threads(), np.intp(0))


@serialised
def _parallel(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, out: np.ndarray,
              bias: np.ndarray, epi: int, dot: bool) -> bool:
    """Run the parallel driver (``dot``: the dot-product one) when more than one thread is set and it
    is compiled (tiered compilation, see _tier); False when the caller should run its serial kernel instead.

    Under the workqueue layer's lock (``_threading``): the one part of ``matmul`` that launches threads.
    """
    nthreads = numba.get_num_threads()
    if nthreads == 1:
        return False
    if dot:
        if not gemm_dot_parallel.ready():
            return False
        gemm_dot_parallel(a, b, out, nthreads)
        if epi:
            apply_epilogue(out, bias, epi)
        return True
    if _gemm.gemm_parallel.ready():
        _gemm.gemm_parallel(a, b, trans_a, trans_b, out, nthreads, bias, epi)
        return True
    return False


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
#: The GEMM drivers' ``bias`` when there is none (never read; one array per dtype, so no allocation).
_NO_BIAS = {_F32: np.zeros(1, np.float32), _F64: np.zeros(1, np.float64)}
_NO_BIAS_F32 = _NO_BIAS[_F32]
#: The largest product ``matmul``'s fast path runs on one thread, by dtype: float32 above it on the
#: GEMM team, float64 on the OpenMP driver.
_FAST_MACS = {_F32: TEAM_MIN_MACS, _F64: SERIAL_MACS}
_NDARRAY = np.ndarray


def fast_product(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, out: np.ndarray | None,
                 bias: np.ndarray | None, epi: int) -> np.ndarray | None:
    """``op(a) @ op(b)`` with the store epilogue ``bias``, ``epi`` into ``out`` (allocated when None), or
    None: the caller's full checks decide. The fast path of ``matmul`` and the fused ``linear``.

    For plain ndarrays ``a``, ``b`` (checked by the caller: their types, bool flags, a C-contiguous 1-D
    ``bias`` of ``a``'s dtype, a valid ``epi``) once ``_matmul_kernel`` has run the serial GEMM:
    its entry point (``_gemm.serial_entry``) checks the sizes, layouts and overlaps itself and runs
    the one-thread products (a Linear layer's at MNIST sizes take 3-10 us: these checks in Python
    took ~1 us of that, and ``linear``'s full checks ~5 us). Here only what an entry point cannot
    check: the dtypes, ranks and a writeable ``out``.
    """
    dtype = a.dtype
    entry = _gemm._SERIAL_ENTRIES.get(dtype)
    if entry is None or b.dtype is not dtype or a.ndim != 2 or b.ndim != 2:
        return None
    if out is None:
        out = np.empty((a.shape[1] if trans_a else a.shape[0], b.shape[0] if trans_b else b.shape[1]), dtype)
    elif not (type(out) is _NDARRAY and out.dtype is dtype and out.ndim == 2 and out.flags.writeable):
        return None
    column_bias = _NO_BIAS[dtype] if bias is None else bias
    # float32 with the team on: its state, through which the entry point runs a larger product on
    # the team once the team is ready (``_team_product`` below readies it).
    team = _team._STATE if dtype is _F32 and _config.gemm_team else NO_TEAM
    done = entry(a, b, trans_a, trans_b, out, column_bias, epi, _FAST_MACS[dtype], team)
    if done == _gemm.DONE:
        return out
    if done == _gemm.UNCHECKED:
        return None
    # Valid (sizes, layouts and overlaps checked): a larger product on the team, else the drivers; on
    # one thread the serial GEMM at once, where the drivers would come back to it ~3.5 us later (128 x
    # 20 x 64 on one thread, Zen 4: 9.3 us through them against 5.7 us by the entry point).
    if done == _gemm.LARGER:
        if dtype is _F32 and _team_product(a, b, trans_a, trans_b, out, column_bias, epi):
            return out
        if _team.num_threads() == 1:
            entry(a, b, trans_a, trans_b, out, column_bias, epi, 0, NO_TEAM)
            if team is not NO_TEAM:
                _team.note_threads_fn()  # from now on the entry point runs one-thread products itself
            return out
    _matmul_kernel(a, b, trans_a, trans_b, out, bias, epi)
    return out


def matmul(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
           out: np.ndarray | None = None) -> np.ndarray:
    """CPU: a transposed operand is read through strides, or by the packing of a large operand; never copied
    (except in the first steps of a tiered cold start: ``_as_convolution``)."""
    # Fast path (``fast_product``): plain ndarrays and bool flags. Anything else, and every error,
    # goes through the reference's checks below.
    if (type(a) is _NDARRAY and type(b) is _NDARRAY and (trans_a is False or trans_a is True)
            and (trans_b is False or trans_b is True)):
        result = fast_product(a, b, trans_a, trans_b, out, None, 0)
        if result is not None:
            return result
    m, n, _, dtype, trans_a, trans_b = check_matmul_args(a, b, trans_a, trans_b, out)
    if overlaps(out, a, b):
        result = np.empty((m, n), dtype=dtype)
        _matmul_kernel(a, b, trans_a, trans_b, result)
        out[...] = result
        return out
    if out is None:
        out = np.empty((m, n), dtype=dtype)
    _matmul_kernel(a, b, trans_a, trans_b, out)
    return out


# Not wrapped in the package's workqueue lock (``_threading.serialised``): the serial kernels
# need none, and ``_parallel`` and ``_as_convolution`` take it around its parallel launches
# (~0.3 us a call saved).
matmul.serialises_itself = True
