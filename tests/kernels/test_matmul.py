"""matmul: the reference against its definition, the CPU kernel against the reference, bad input."""

from __future__ import annotations

import importlib
import itertools

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from jitgrad.kernels.cpu import _gemm, _gemv
from jitgrad.kernels.cpu._gemm_dot import gemm_dot, gemm_dot_parallel
from jitgrad.kernels.cpu._gemm_epilogue import EPI_COL_BIAS, EPI_RELU
from jitgrad.kernels.cpu._gemm_simd import VEC_BYTES, vload, vstore_masked
from jitgrad.kernels.cpu._team_state import NO_TEAM
from tests.helpers import DTYPES, assert_close, nan_like, randn
from tests.kernels.test_conv import guarded

BACKENDS = [pytest.param(ref, id="reference"), pytest.param(cpu, id="cpu")]
TRANS = list(itertools.product([False, True], [False, True]))
TRANS_IDS = ["NN", "NT", "TN", "TT"]
cpu_matmul = importlib.import_module("jitgrad.kernels.cpu.matmul")
#: The GEMM drivers' trailing ``(bias, epi)``: no store epilogue (see kernels/cpu/_gemm_epilogue.py).
NO_EPILOGUE = {np.dtype(t): (np.zeros(1, t), 0) for t in DTYPES}


def operands(m, n, k, trans_a, trans_b, dtype, seed=0):
    a = randn((k, m) if trans_a else (m, k), dtype, seed)
    b = randn((n, k) if trans_b else (k, n), dtype, seed + 1)
    return a, b


def tolerance(dtype, k):
    """(rtol, atol): float32 sums of ``k`` products of unit normals drift like ``sqrt(k)``."""
    if np.dtype(dtype) == np.float64:
        return 1e-10, 1e-12 * max(k, 1)
    return 1e-4, 2e-5 * max(np.sqrt(k), 1)


def check_matmul(m, n, k, trans_a, trans_b, dtype, seed=0):
    a, b = operands(m, n, k, trans_a, trans_b, dtype, seed)
    expected = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    out = nan_like((m, n), dtype)
    got = cpu.matmul(a, b, trans_a=trans_a, trans_b=trans_b, out=out)
    assert got is out
    rtol, atol = tolerance(dtype, k)
    assert_close(got, expected, dtype, rtol=rtol, atol=atol, err_msg=f"{m}x{n}x{k} ta={trans_a} tb={trans_b}")


# ---------------------------------------------------------------- reference


@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
def test_reference_is_the_definition(trans_a, trans_b):
    a, b = operands(4, 3, 5, trans_a, trans_b, np.float64)
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    expected = np.array([[sum(opa[i, p] * opb[p, j] for p in range(5)) for j in range(3)] for i in range(4)])
    assert_close(ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_keeps_dtype_and_writes_out(dtype):
    a, b = operands(3, 4, 5, False, False, dtype)
    out = nan_like((3, 4), dtype)
    assert ref.matmul(a, b, out=out) is out
    assert out.dtype == dtype and not np.isnan(out).any()


# ---------------------------------------------------------------- cpu vs reference

# Sizes chosen to cover the unpacked path (tiny), the serial and parallel
# micro-kernel paths, operands read in place or packed, edges in every
# dimension (not multiples of 8 / 16 / 32) and the Linear-layer GEMM shapes
# of an MNIST CNN.
SHAPES = [
    (1, 1, 1), (3, 5, 7), (1, 64, 9), (64, 1, 9), (9, 9, 1),
    (17, 33, 65), (40, 50, 60), (64, 64, 64), (100, 130, 70),
    (128, 120, 256), (256, 128, 120), (120, 256, 128),
    (40, 96, 50), (100, 160, 90),  # B read in place, no partial panel
    (257, 129, 301),
    # a @ b.T with min(M, N) <= DOT_MAX_MN and K >= DOT_MIN_K runs as dot products of rows (_gemm_dot): rows and
    # columns that are not multiples of its 3 x 4 tile, K not a multiple of the vector width,
    # K over several K blocks (DOT_KC_BYTES: 2048 float32, 1024 float64)
    (7, 130, 300), (130, 5, 283), (20, 25, 1100), (2, 70, 260), (65, 20, 513), (5, 40, 2100),
    # shallow K (<= SHALLOW_K) with a row pitch of a multiple of 256 bytes: B read in place; of
    # 4 KiB (N = 1024): B packed
    (40, 64, 9), (30, 128, 32), (20, 1024, 8),
    # up to 3 row panels: B read in place at any pitch; the edge panel (16 = 8 + 8 on AVX-512,
    # 6 + 6 + 4 on AVX2: the 4-row height of the general loop); exactly MR rows of a transposed A
    # read in place; packed at a 4 KiB pitch
    (16, 64, 150), (6, 40, 50), (12, 1024, 40),
    # at most one vector of columns (a 10-class head: the narrow micro-kernel loop), A read in place,
    # over one and several K slices; 33, 130 and 129 above end in a narrow edge panel
    (128, 10, 84), (70, 12, 600),
    # a @ b.T whose short side fills B panels (``_gemm.product_route``, AVX2): M short, run as
    # (b @ a.T).T and transposed back (edges of the register-block transposition: 30 rows, 77
    # columns); N short, on the GEMM rather than the dot kernel
    (16, 150, 300), (30, 77, 260), (150, 16, 300), (77, 30, 260),
    # an edge panel of two rows and of one (32 = 5 x 6 + 2, 13 = 2 x 6 + 1 on AVX2), K odd and even;
    # at most FEW_A_PANELS A panels: B packed in small blocks
    (32, 48, 67), (13, 40, 45), (32, 20, 96),
    # M = 10 and 18: an edge panel of two rows after 8-row panels (AVX-512's two-row loop), in place and
    # packed, over a partial last B panel (84 = 2 x 32 + 20 columns)
    (10, 84, 128), (18, 84, 40),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_cpu_matches_reference(m, n, k, trans_a, trans_b, dtype):
    check_matmul(m, n, k, trans_a, trans_b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_large_square(dtype):
    # several K slices (KC), several task blocks, edges everywhere
    check_matmul(530, 515, 600, False, False, dtype, seed=3)
    check_matmul(530, 515, 600, True, True, dtype, seed=4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_allocates_output(dtype):
    a, b = operands(20, 30, 40, False, True, dtype)
    got = cpu.matmul(a, b, trans_b=True)
    assert got.dtype == dtype and got.shape == (20, 30) and got.flags.c_contiguous
    assert_close(got, ref.matmul(a, b, trans_b=True), dtype, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_dimensions(backend):
    a = np.zeros((3, 0))
    b = np.zeros((0, 4))
    out = nan_like((3, 4), np.float64)
    backend.matmul(a, b, out=out)
    np.testing.assert_array_equal(out, 0)
    assert backend.matmul(np.zeros((0, 5)), np.ones((5, 2))).shape == (0, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_may_alias_an_input(backend):
    a = randn((70, 70), np.float64, 1)
    b = randn((70, 70), np.float64, 2)
    expected = a @ b.T
    backend.matmul(a, b, trans_b=True, out=a)
    assert_close(a, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nthreads", [1, 2, 3, 16])
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
def test_parallel_driver_any_thread_count(nthreads, trans_a, trans_b, dtype):
    # The block partition and who packs each operand depend on the thread count: exercise counts
    # other than this machine's. Among these shapes each operand is packed by the tasks that read
    # it, or before them on this thread (SERIAL_PACK), or in a packing region of its own, alone or
    # with the other operand in any of those ways: (130, 140, 300) float64 NT on 1 thread packs A
    # here and B in the tasks; (200, 150, 260) NT float32 the reverse, and float64 both in a region.
    # (33, 65, 700), (128, 40, 120) on 2 threads: a row of tasks cut in two (partition's uneven runs of B panels).
    for m, n, k in [(9, 200, 40), (300, 7, 33), (130, 140, 300), (200, 150, 260), (16, 2000, 600), (33, 65, 700),
                    (128, 40, 120)]:
        a, b = operands(m, n, k, trans_a, trans_b, dtype)
        out = nan_like((m, n), dtype)
        _gemm.gemm_parallel(a, b, trans_a, trans_b, out, nthreads, *NO_EPILOGUE[np.dtype(dtype)])
        rtol, atol = tolerance(dtype, k)
        assert_close(out, ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b), dtype, rtol=rtol, atol=atol)


def test_partition_covers_c_and_evens_the_threads_shares():
    # Every panel of C lies in exactly one task, blocks differ by at most one panel, and each thread's
    # equal run of tasks holds an even share of panels, the calling thread's (the first) the largest. Fixed-size blocks
    # had left 49 B panels on 2 threads as 26 and 23, and 196 in 13 tasks as 7 runs against 6.
    for npa, npb, nthreads, rows_first in itertools.product((1, 3, 11, 48, 96), (1, 2, 9, 49, 196, 784),
                                                             (1, 2, 3, 16), (False, True)):
        ti, tj = _gemm.partition(npa, npb, nthreads, rows_first)
        assert 1 <= ti <= npa and 1 <= tj <= npb
        assert ti * tj >= min(nthreads, npa * npb)
        if tj < npb:
            assert (ti * tj) % nthreads == 0, (npa, npb, nthreads, rows_first, ti, tj)
        for parts, total in ((ti, npa), (tj, npb)):
            cuts = [_gemm.split_at(i, parts, total) for i in range(parts + 1)]
            sizes = np.diff(cuts)
            assert cuts[0] == 0 and cuts[-1] == total and sizes.min() >= 1
            assert sizes.max() - sizes.min() <= 1
        if ti == 1 and tj % nthreads == 0:
            ntasks = ti * tj
            shares = [_gemm.split_at((w + 1) * ntasks // nthreads, tj, npb)
                      - _gemm.split_at(w * ntasks // nthreads, tj, npb) for w in range(nthreads)]
            assert max(shares) - min(shares) <= 1 and shares[0] == max(shares), (npb, nthreads, shares)
        if ti == 1 and tj < 4 * nthreads and npa >= nthreads:  # a few tasks in one row: even runs of B panels
            assert -(-npb // tj) * tj * 5 <= npb * 6, (npa, npb, nthreads, rows_first, ti, tj)
    assert _gemm.partition(11, 49, 2, False) == (1, 4)  # a ResNet conv's 64 x 576 x 784 on AVX2
    # LeNet fc2's forward product on AVX-512 (16 A panels, 3 B panels): 2 x 2 tasks, so that each
    # thread's run (prange's in order, the team's from either end) holds 24 of the 48 tiles, not 32 or 16.
    assert _gemm.partition(16, 3, 2, False) == (2, 2)
    tiles = [(_gemm.split_at(bi + 1, 2, 16) - _gemm.split_at(bi, 2, 16))
             * (_gemm.split_at(bj + 1, 2, 3) - _gemm.split_at(bj, 2, 3)) for bi in range(2) for bj in range(2)]
    assert tiles[0] + tiles[1] == tiles[2] + tiles[3] == tiles[0] + tiles[3] == 24
    assert [_gemm.split_at(i, 4, 49) for i in range(5)] == [0, 13, 25, 37, 49]


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_argument_path_agrees_with_full_checks(dtype):
    # cpu.matmul takes plain C-contiguous float ndarrays with bool flags on a short path; np.bool_
    # flags, read-only inputs and an ``out`` that overlaps an input through views take the full one.
    a, b = operands(30, 10, 84, False, True, dtype)  # a Linear layer to 10 outputs (partial B panel)
    expected = ref.matmul(a, b, trans_b=True)
    rtol, atol = tolerance(dtype, 84)
    got = cpu.matmul(a, b, trans_b=True)
    assert got.dtype == dtype and got.shape == (30, 10) and got.flags.c_contiguous
    assert_close(got, expected, dtype, rtol=rtol, atol=atol)
    assert_close(cpu.matmul(a, b, trans_a=np.bool_(False), trans_b=np.bool_(True)), expected, dtype,
                 rtol=rtol, atol=atol)
    a_ro, b_ro = a.copy(), b.copy()
    a_ro.flags.writeable = b_ro.flags.writeable = False
    out = nan_like((30, 10), dtype)
    assert cpu.matmul(a_ro, b_ro, trans_b=True, out=out) is out
    assert_close(out, expected, dtype, rtol=rtol, atol=atol)
    # ``out`` and ``a`` are overlapping views of one buffer: the product goes through a temporary.
    buf = randn((40, 30), dtype, 5).ravel()
    x, out, w = buf.reshape(40, 30), buf.reshape(40, 30), randn((30, 30), dtype, 6)
    want = ref.matmul(x.copy(), w)
    assert cpu.matmul(x, w, out=out) is out
    assert_close(out, want, dtype, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="out"):
        cpu.matmul(a, b, trans_b=True, out=np.empty((30, 10), dtype).T.copy().T)
    with pytest.raises(ValueError, match="inner"):
        cpu.matmul(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_serial_entry_point_path(dtype):
    # A one-thread product runs through gemm_checked's compiled entry point once _matmul_kernel has
    # run it (plain ndarrays, bool flags; no epilogue); every transposition, a partial
    # B panel and the full path after it all agree with the reference.
    for trans_a, trans_b in TRANS:
        a, b = operands(10, 84, 128, trans_a, trans_b, dtype)
        expected = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
        for _ in range(2):  # the first call may record the entry point, the second runs it
            got = cpu.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
            rtol, atol = tolerance(dtype, 128)
            assert_close(got, expected, dtype, rtol=rtol, atol=atol)
    assert np.dtype(dtype) in _gemm._SERIAL_ENTRIES
    a, b = operands(10, 84, 128, True, False, dtype)
    out = nan_like((10, 84), dtype)
    assert cpu.matmul(a, b, trans_a=np.bool_(True), out=out) is out  # np.bool_: the full path
    rtol, atol = tolerance(dtype, 128)
    assert_close(out, ref.matmul(a, b, trans_a=True), dtype, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_thread_larger_product_runs_the_entry_point(dtype, monkeypatch):
    # On one thread a product above the fast path's size (LARGER) runs through the serial entry
    # point at once, never the drivers' Python path (``_matmul_kernel``: ~3.5 us more a call): with
    # the drivers patched out, matmul and the fused linear (its epilogue in the store) are still right.
    mm = importlib.import_module("jitgrad.kernels.cpu.matmul")
    fused = importlib.import_module("jitgrad.kernels.cpu.fused")
    m, n, k = (128, 64, 40) if dtype is np.float32 else (256, 128, 128)
    assert m * n * k > mm._FAST_MACS[np.dtype(dtype)]
    x, w = operands(m, n, k, False, True, dtype)
    bias = randn((n,), dtype, 7)
    _gemm.serial_entry(np.dtype(dtype))  # the fast path runs from here on

    def no_driver(*args):
        raise AssertionError("one thread: the drivers' Python path ran")

    monkeypatch.setattr(mm, "_matmul_kernel", no_driver)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        product = cpu.matmul(x, w, trans_b=True)
        layer = fused.linear(x, w, bias, activation="relu")
    finally:
        numba.set_num_threads(before)
    rtol, atol = tolerance(dtype, k)
    expected = ref.matmul(x, w, trans_b=True)
    assert_close(product, expected, dtype, rtol=rtol, atol=atol)
    assert_close(layer, np.maximum(expected + bias, 0), dtype, rtol=rtol, atol=atol)


def test_one_thread_float32_product_above_the_fast_size_is_one_entry_call(monkeypatch):
    # On one thread the GEMM team never starts, so the entry point could not tell one thread from a
    # team not yet ready and answered LARGER, and matmul called it again with max_macs = 0 (128 x 84 x
    # 120 on one thread, Zen 4: 35.4-35.8 against 27.4-28.0 us). After the first such product it reads the
    # thread setting itself (``_team.note_threads_fn``): one call, and the product right.
    mm = importlib.import_module("jitgrad.kernels.cpu.matmul")
    team = importlib.import_module("jitgrad.kernels.cpu._team")
    if not team.enabled():
        pytest.skip("the GEMM team runs on Linux x86-64 with config.gemm_team on")
    f32 = np.dtype(np.float32)
    x, w = operands(128, 64, 40, False, True, np.float32)
    assert 128 * 64 * 40 > mm.TEAM_MIN_MACS
    expected = ref.matmul(x, w, trans_b=True)
    real = _gemm.serial_entry(f32)
    calls = []
    monkeypatch.setitem(_gemm._SERIAL_ENTRIES, f32, lambda *args: calls.append(args[7]) or real(*args))
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        first = cpu.matmul(x, w, trans_b=True)
        assert team._STATE[team.THREADS_FN] != 0
        calls.clear()
        second = cpu.matmul(x, w, trans_b=True)
    finally:
        numba.set_num_threads(before)
    assert calls == [mm.TEAM_MIN_MACS]
    rtol, atol = tolerance(np.float32, 40)
    assert_close(first, expected, np.float32, rtol=rtol, atol=atol)
    assert_close(second, expected, np.float32, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_checked_serial_gemm_answers(dtype):
    # gemm_checked's entry point types nothing: it checks the sizes, the layouts and overlaps itself,
    # answers UNCHECKED for anything it cannot run (and leaves out alone), LARGER or ELSEWHERE for the
    # products matmul's fast path gives other kernels, and DONE with the product in out.
    entry = _gemm.serial_entry(np.dtype(dtype))
    bias, epi = NO_EPILOGUE[np.dtype(dtype)]
    cap = 64 * 64 * 64

    def answer(a, b, trans_a, trans_b, out, max_macs=cap):
        before = out.copy()
        got = entry(a, b, trans_a, trans_b, out, bias, epi, max_macs, NO_TEAM)
        if got != _gemm.DONE:
            np.testing.assert_array_equal(out, before)
        return got

    for (m, n, k), (trans_a, trans_b) in itertools.product([(10, 84, 128), (13, 7, 5), (40, 70, 37)], TRANS):
        a, b = operands(m, n, k, trans_a, trans_b, dtype)
        out = nan_like((m, n), dtype)
        assert answer(a, b, trans_a, trans_b, out) == _gemm.DONE
        rtol, atol = tolerance(dtype, k)
        assert_close(out, ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b), dtype, rtol=rtol, atol=atol)
    a, b = operands(40, 70, 37, False, False, dtype)
    out = nan_like((40, 70), dtype)
    assert answer(a, b, False, False, nan_like((40, 71), dtype)) == _gemm.UNCHECKED  # out's shape
    assert answer(a, b, True, False, nan_like((37, 70), dtype)) == _gemm.UNCHECKED  # inner sizes
    assert answer(a[:, ::2], b[::2], False, False, nan_like((40, 70), dtype)) == _gemm.UNCHECKED  # a strided
    assert answer(a, np.asfortranarray(b), False, False, out) == _gemm.UNCHECKED  # b column-major
    assert answer(a, b, False, False, nan_like((80, 70), dtype)[::2]) == _gemm.UNCHECKED  # out strided
    square = randn((40, 40), dtype, 3)
    assert answer(square, square[:, :37].copy(), False, False, square[:, :37]) == _gemm.UNCHECKED
    assert answer(square[:, :37].copy(), square[3:, :], False, False, square[:, 3:]) == _gemm.UNCHECKED
    buf = nan_like(40 * 37 + 37 * 70 + 40 * 70, dtype)  # side by side in one buffer: apart, so DONE
    a2, b2, out2 = buf[:1480].reshape(40, 37), buf[1480:4070].reshape(37, 70), buf[4070:].reshape(40, 70)
    a2[...], b2[...] = a, b
    assert answer(a2, b2, False, False, out2) == _gemm.DONE
    assert_close(out2, ref.matmul(a, b), dtype, rtol=1e-4, atol=1e-4)
    # Routing: a product above max_macs is LARGER, a deep a @ b.T with a short side ELSEWHERE; with
    # max_macs = 0 (any product) the micro-kernel runs them.
    assert answer(a, b, False, False, out, max_macs=40 * 70 * 37 - 1) == _gemm.LARGER
    assert answer(a, b, False, False, out, max_macs=40 * 70 * 37) == _gemm.DONE
    g, x = randn((10, _gemm.DOT_MIN_K), dtype, 4), randn((50, _gemm.DOT_MIN_K), dtype, 5)
    itemsize = np.dtype(dtype).itemsize
    assert _gemm.product_route(False, True, 10, 50, _gemm.DOT_MIN_K, itemsize) == _gemm.DOT
    assert answer(g, x, False, True, nan_like((10, 50), dtype), max_macs=1 << 30) == _gemm.ELSEWHERE
    out = nan_like((10, 50), dtype)
    assert answer(g, x, False, True, out, max_macs=0) == _gemm.DONE
    rtol, atol = tolerance(dtype, _gemm.DOT_MIN_K)
    assert_close(out, ref.matmul(g, x, trans_b=True), dtype, rtol=rtol, atol=atol)
    # Empty sizes: a product of k = 0 is zeros; nothing to write for m = 0.
    out = nan_like((5, 6), dtype)
    assert answer(np.empty((5, 0), dtype), np.empty((0, 6), dtype), False, False, out) == _gemm.DONE
    np.testing.assert_array_equal(out, 0)
    assert answer(np.empty((0, 4), dtype), randn((4, 6), dtype), False, False, np.empty((0, 6), dtype)) == _gemm.DONE


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_short_side_that_fills_b_panels_takes_the_packed_gemm(dtype, monkeypatch):
    # a @ b.T with a short side of whole B panels (the last 7/8 full) and a long operand read in place:
    # on AVX2 the GEMM packs the short operand, swapped when the short side is M; elsewhere the routes before
    # (k = 300 is deep enough for the dot products up to DOT_MAX_MN: two AVX-512 float32 panels are not).
    itemsize = np.dtype(dtype).itemsize
    nr = 2 * _gemm.VEC_BYTES // itemsize
    route = _gemm.product_route

    def before(short: int) -> int:
        return _gemm.DOT if short <= _gemm.DOT_MAX_MN else _gemm.GEMM

    swap, direct = (_gemm.SWAPPED, _gemm.GEMM) if _gemm.SWAP_NT else (before(nr), before(nr))
    assert route(False, True, nr, 300, 300, itemsize) == swap
    assert route(False, True, 300, nr, 300, itemsize) == direct
    two = 2 * nr - nr // 8  # the last panel 7/8 full
    assert route(False, True, two, 300, 300, itemsize) == (_gemm.SWAPPED if _gemm.SWAP_NT else before(two))
    assert route(False, True, 2 * nr - nr // 4, 300, 300, itemsize) == before(2 * nr - nr // 4)  # 3/4 full
    assert route(False, True, nr, 300, 4096 // itemsize, itemsize) == _gemm.DOT  # a 4 KiB row pitch
    assert route(False, True, nr - 1, 300, 300, itemsize) == _gemm.DOT  # under one panel
    assert route(False, True, 64, 300, 300, itemsize) == _gemm.GEMM  # past DOT_MAX_MN: as before
    for trans_a, trans_b in [(False, False), (True, False), (True, True)]:
        assert route(trans_a, trans_b, nr, 300, 300, itemsize) == _gemm.GEMM
    # The swapped product, through every entry: the entry point (one thread, and the dot route answered
    # by the micro-kernel with max_macs = 0), matmul's parallel drivers (gemm_checked not taken).
    m, n, k = 2 * nr - nr // 8, 90, 300  # rows that are not a multiple of the vector width
    a, b = guarded(randn((m, k), dtype, 1)), guarded(randn((n, k), dtype, 2))
    expected = ref.matmul(a, b, trans_b=True)
    rtol, atol = tolerance(dtype, k)
    entry = _gemm.serial_entry(np.dtype(dtype))
    for max_macs in (0, 1 << 30):
        out = guarded(nan_like((m, n), dtype))
        answer = entry(a, b, False, True, out, *NO_EPILOGUE[np.dtype(dtype)], max_macs, NO_TEAM)
        # Unswapped, the dot products take the product up to DOT_MAX_MN rows (float64 on AVX-512: 30),
        # the GEMM here above it (float32 on AVX-512: 60 rows, two panels).
        dot = route(False, True, m, n, k, itemsize) == _gemm.DOT
        assert dot == (not _gemm.SWAP_NT and m <= _gemm.DOT_MAX_MN)
        assert answer == (_gemm.ELSEWHERE if max_macs and dot else _gemm.DONE)
        if answer == _gemm.DONE:
            assert_close(out, expected, dtype, rtol=rtol, atol=atol)
    kernel = cpu_matmul._matmul_kernel
    calls = []
    monkeypatch.setattr(cpu_matmul, "_matmul_kernel", lambda *args: calls.append(args[0].shape) or kernel(*args))
    out = guarded(nan_like((m, n), dtype))
    kernel(a, b, False, True, out)
    assert_close(out, expected, dtype, rtol=rtol, atol=atol)
    assert calls == ([(n, k)] if _gemm.SWAP_NT else [])  # the swapped operands, once


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_fast_path_leaves_what_it_cannot_check_to_the_full_checks(dtype):
    _gemm.serial_entry(np.dtype(dtype))  # the fast path runs from here on
    a, b = operands(40, 70, 37, False, False, dtype)
    expected = ref.matmul(a, b)
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.matmul(np.asfortranarray(a), b)
    with pytest.raises(ValueError, match="inner"):
        cpu.matmul(a, b, trans_a=True)
    with pytest.raises(ValueError, match="out"):
        cpu.matmul(a, b, out=np.empty((40, 71), dtype))
    readonly = np.empty((40, 70), dtype)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        cpu.matmul(a, b, out=readonly)
    with pytest.raises((TypeError, ValueError), match="dtype"):
        cpu.matmul(a, b.astype(np.float32 if np.dtype(dtype) == np.float64 else np.float64))
    buf = nan_like(40 * 70 + 100, dtype)  # out overlaps a (both C-contiguous): a temporary first
    a_view, out = buf[100:100 + 40 * 37].reshape(40, 37), buf[:40 * 70].reshape(40, 70)
    a_view[...] = a
    assert cpu.matmul(a_view, b, out=out) is out
    assert_close(out, expected, dtype, rtol=1e-4, atol=1e-4)
    ro_a, ro_b = a.copy(), b.copy()  # read-only inputs are fine
    ro_a.flags.writeable = ro_b.flags.writeable = False
    assert_close(cpu.matmul(ro_a, ro_b), expected, dtype, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_path_agrees(dtype):
    a, b = operands(37, 45, 29, True, False, dtype)
    expected = ref.matmul(a, b, trans_a=True)
    for path in (_gemm.gemm_small, lambda *args: _gemm.run_serial(*args, *NO_EPILOGUE[np.dtype(dtype)])):
        out = nan_like((37, 45), dtype)
        path(a, b, True, False, out)
        assert_close(out, expected, dtype, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
def test_cpu_stays_inside_its_arrays(trans_a, trans_b, dtype):
    # Every argument ends at an inaccessible page: an access past its end crashes.
    for m, n, k in [(13, 37, 29), (70, 45, 33), (130, 67, 150), (30, 77, 260)]:  # (30, 77, 260) NT: swapped
        a, b = operands(m, n, k, trans_a, trans_b, dtype)
        a, b = guarded(a), guarded(b)
        expected = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
        no_epi = NO_EPILOGUE[np.dtype(dtype)]
        for path in (_gemm.gemm_small, lambda *args, no_epi=no_epi: _gemm.run_serial(*args, *no_epi),
                     lambda *args, no_epi=no_epi: _gemm.gemm_parallel(*args, 3, *no_epi)):
            out = guarded(nan_like((m, n), dtype))
            path(a, b, trans_a, trans_b, out)
            rtol, atol = tolerance(dtype, k)
            assert_close(out, expected, dtype, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_row_major_a_in_place_for_wide_c(dtype):
    # gemm_serial reads a row-major A in place for wide C (beyond A_IN_PLACE_MAX_N) while it is at most
    # A_IN_PLACE_MAX_BYTES (on AVX2 at any size), packed beyond and where its row pitch is a multiple of
    # 4 KiB (the last case); the parallel drivers pack it. Both sides of each rule, a partial last panel
    # of rows and of columns, on the serial and the parallel driver, every operand ending at a guard page.
    itemsize = np.dtype(dtype).itemsize
    no_epi = NO_EPILOGUE[np.dtype(dtype)]
    n = _gemm.A_IN_PLACE_MAX_N + 67
    small = min(_gemm.A_IN_PLACE_MAX_BYTES, 8192)
    for m, k in [(37, 13), (2 * _gemm.MR + 1, small // itemsize // (2 * _gemm.MR + 1)), (264, 40),
                 (13, 4096 // itemsize)]:
        assert not _gemm.a_in_place(False, m, k, n, itemsize)
        assert _gemm.small_a_in_place(False, m, k, itemsize) == (
            (k * itemsize) % 4096 != 0 and m * k * itemsize <= _gemm.A_IN_PLACE_MAX_BYTES)
        a, b = operands(m, n, k, False, False, dtype)
        a, b = guarded(a), guarded(b)
        expected = ref.matmul(a, b)
        rtol, atol = tolerance(dtype, k)
        for path in (lambda *args: _gemm.run_serial(*args, *no_epi),
                     lambda *args: _gemm.gemm_parallel(*args, 3, *no_epi)):
            out = guarded(nan_like((m, n), dtype))
            path(a, b, False, False, out)
            assert_close(out, expected, dtype, rtol=rtol, atol=atol)
    assert not _gemm.small_a_in_place(True, 37, 13, 4)
    assert not _gemm.small_a_in_place(False, 2, 1024, 4)  # a row pitch of 4 KiB: packed however small


def check_bias_relu_on_both_drivers(a, b, trans_a, trans_b, bias, expected, dtype, k):
    """The product with a column bias and ReLU in the store, on the serial and the parallel driver
    (three threads), each into a guarded output, against ``expected``."""
    m, n = expected.shape
    rtol, atol = tolerance(dtype, k)
    epi = EPI_COL_BIAS | EPI_RELU
    for path in (lambda *args: _gemm.run_serial(*args, bias, epi),
                 lambda *args: _gemm.gemm_parallel(*args, 3, bias, epi)):
        out = guarded(nan_like((m, n), dtype))
        path(a, b, trans_a, trans_b, out)
        assert_close(out, expected, dtype, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
def test_b_above_the_packing_bound_in_blocks(trans_a, trans_b, dtype):
    # A B whose packed panels exceed PACK_BYTES is packed and used a block at a time (gemm_b_blocks):
    # here in two column blocks, the second ending in a partial panel, and (row-major B) two k slices
    # accumulated in C; with a column bias and ReLU in the store (shifted to each block's columns), on
    # the serial and the parallel driver (each task packing its own blocks), every operand ending at a
    # guard page.
    m, k = 264, 520  # (more A panels than a task takes: two rows of tasks, but for the rule below)
    itemsize = np.dtype(dtype).itemsize
    nr = 2 * VEC_BYTES // itemsize
    sliced = -(-k // -(-k // _gemm.KC))  # the depth of row-major B's KC slices
    depth = k if trans_b else sliced
    # Past one column block of those slices (AVX-512's KC = 256 takes 12,032 float32 columns) and ending
    # in a partial panel.
    n = max(8100, nr * (_gemm.PACK_BYTES // (sliced * 2 * VEC_BYTES) + 1) - nr // 2)
    npb = -(-n // nr)
    assert not _gemm.b_fits(k, npb)
    assert npb > _gemm.PACK_BYTES // (depth * 2 * VEC_BYTES)  # more than one column block
    a, b = operands(m, n, k, trans_a, trans_b, dtype)
    a, b = guarded(a), guarded(b)
    bias = guarded(randn((n,), dtype, 5))
    expected = np.maximum(ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b) + bias, 0)
    # On three threads: one row of tasks (none shares B, packed whole before them), each packing its own.
    assert _gemm.plan(a, trans_a, trans_b, nan_like((m, n), dtype), 3)[-2] == 1
    check_bias_relu_on_both_drivers(a, b, trans_a, trans_b, bias, expected, dtype, k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
def test_few_a_panels_pack_b_in_small_blocks(trans_a, trans_b, dtype):
    # A product with at most FEW_A_PANELS A panels (here 4) packs B a SMALL_B_BLOCK at a time, each
    # block used at once, on the serial driver and in each task of the parallel one: several blocks
    # and a partial last panel, a column bias and ReLU in the store, every operand at a guard page.
    m, n, k = 20, 1000, 300
    itemsize = np.dtype(dtype).itemsize
    assert -(-m // _gemm.MR) <= _gemm.FEW_A_PANELS
    depth = k if trans_b else -(-k // -(-k // _gemm.KC))
    assert -(-n // (2 * VEC_BYTES // itemsize)) > 2 * (_gemm.SMALL_B_BLOCK // (depth * 2 * VEC_BYTES))
    a, b = operands(m, n, k, trans_a, trans_b, dtype)
    a, b = guarded(a), guarded(b)
    bias = guarded(randn((n,), dtype, 6))
    expected = np.maximum(ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b) + bias, 0)
    check_bias_relu_on_both_drivers(a, b, trans_a, trans_b, bias, expected, dtype, k)


#: Matrix-vector products (``_gemv``): one row or one column of C; K across the kernels' two-vector
#: steps (0, under a vector, a step and a masked tail); rows of the dot kernel in fours and a rest; columns
#: of the axpy kernel past one vector and past one block of ``_gemv.AXPY_BYTES`` with a tail.
GEMV_SIZES = [(1, 1), (1, 7), (1, 33), (1, 4100), (5, 1), (37, 1), (2100, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("m,n", GEMV_SIZES)
def test_matrix_vector_products(m, n, trans_a, trans_b, dtype):
    # _gemv's kernel, the entry point that sends them to it (with the store's epilogue: bit for bit the
    # plain product's, plus bias, ReLU) and matmul, held to the reference; every operand ending at a
    # guard page.
    # (The entry point's copy of the kernel is optimised in its own module: under fastmath its sums may
    # differ from the kernel's alone in the last bit.)
    for k in (0, 3, 17, 100):
        a, b = operands(m, n, k, trans_a, trans_b, dtype)
        a, b = guarded(a), guarded(b)
        expected = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
        rtol, atol = tolerance(dtype, k)
        direct = guarded(nan_like((m, n), dtype))
        _gemv.gemv(a, b, trans_a, trans_b, direct)
        assert_close(direct, expected, dtype, rtol=rtol, atol=atol)
        bias = guarded(randn((n,), dtype, 5))
        out = guarded(nan_like((m, n), dtype))
        _gemm.run_serial(a, b, trans_a, trans_b, out, bias, EPI_COL_BIAS | EPI_RELU)
        plain = guarded(nan_like((m, n), dtype))
        _gemm.run_serial(a, b, trans_a, trans_b, plain, *NO_EPILOGUE[np.dtype(dtype)])
        assert_close(plain, expected, dtype, rtol=rtol, atol=atol)
        np.testing.assert_array_equal(out, np.maximum(plain + bias, 0))
        # matmul: the entry point's kernel, or on two threads above GEMV_TEAM_MIN the team's spans
        assert_close(cpu.matmul(a, b, trans_a=trans_a, trans_b=trans_b), expected, dtype, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_b", [False, True], ids=["NN", "NT"])
def test_a_above_the_packing_bound_in_row_blocks(trans_b, dtype):
    # A row-major A above PACK_BYTES with a B that fits: the entry point multiplies it in blocks of
    # rows (a_row_block; the last shorter), each a product of its own, with a column bias
    # and ReLU in the store, every operand ending at a guard page.
    m, n, k = 2100, 40, 1100
    itemsize = np.dtype(dtype).itemsize
    assert m * k * itemsize > _gemm.PACK_BYTES
    rows = _gemm.a_row_block(False, m, k, n, itemsize)
    assert rows % _gemm.MR == 0 and rows < m and m % rows
    assert _gemm.a_row_block(True, m, k, n, itemsize) == m  # (a transposed A: not split)
    a, b = operands(m, n, k, False, trans_b, dtype)
    a, b = guarded(a), guarded(b)
    bias = guarded(randn((n,), dtype, 5))
    expected = np.maximum(ref.matmul(a, b, trans_b=trans_b) + bias, 0)
    out = guarded(nan_like((m, n), dtype))
    _gemm.run_serial(a, b, False, trans_b, out, bias, EPI_COL_BIAS | EPI_RELU)
    rtol, atol = tolerance(dtype, k)
    assert_close(out, expected, dtype, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans", [False, True], ids=["rows", "transposed"])
def test_pack_a_places_a_k_range_of_panels(trans, dtype):
    # pack_a: panels ip0:ip1 of op(a), its k in p0:p1, panel ip at (ip - ip0) * depth * MR, a partial
    # last panel zero-padded. A transposed A moves by whole vectors (their lanes past MR land in the
    # panel's next k, written after; the last k value by value): guard pages after a and after the
    # panels catch a read past a's end or a write past the last panel.
    mr = _gemm.MR
    for m in (1, mr - 1, mr, 2 * mr + 1, 5 * mr + 3, 40):
        npa = -(-m // mr)
        for k, p0, p1 in ((1, 0, 1), (37, 0, 37), (37, 5, 22), (37, 36, 37)):
            a = guarded(randn((k, m) if trans else (m, k), dtype, m + k))
            rows = np.zeros((npa * mr, k), dtype)
            rows[:m] = a.T if trans else a
            for ip0 in (0, npa // 2):
                depth = p1 - p0
                ap = guarded(nan_like(((npa - ip0) * depth * mr,), dtype))
                _gemm.pack_a(a, trans, np.intp(ip0), np.intp(npa), np.intp(p0), np.intp(p1), ap)
                expected = rows[ip0 * mr:, p0:p1].reshape(npa - ip0, mr, depth).transpose(0, 2, 1)
                np.testing.assert_array_equal(ap, expected.ravel(), err_msg=f"m={m} k={k} {p0}:{p1} ip0={ip0}")


#: ``(m, k)`` of a packed A above ``PACK_BYTES`` by element size: a tall one (a column of tasks, several
#: K slices, and with B transposed several blocks of A panels to a slice), and a deep one with fewer rows
#: than C has columns (a row of tasks, each packing all of A's slices).
SLICED_A = {4: [(4200, 1030), (100, 21000)], 8: [(2100, 1030), (60, 17500)]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=TRANS_IDS)
@pytest.mark.parametrize("shape", [0, 1], ids=["tall", "deep"])
def test_a_above_the_packing_bound_in_slices(shape, trans_a, trans_b, dtype):
    # A packed A above PACK_BYTES is never packed whole (a_sliced): gemm_b_blocks packs both operands a
    # K slice at a time, A in blocks of panels, the product accumulated in C over the slices; with a
    # column bias and ReLU in the store, on the serial and the parallel driver (each task packing its
    # own slices) and matmul, every operand ending at a guard page.
    itemsize = np.dtype(dtype).itemsize
    m, k = SLICED_A[itemsize][shape]
    nr = 2 * VEC_BYTES // itemsize
    n = max(_gemm.T_A_IN_PLACE_MAX_PANELS * nr, _gemm.A_IN_PLACE_MAX_N) + 5  # A packed, not read in place
    npa = -(-m // _gemm.MR)
    assert not _gemm.a_in_place(trans_a, m, k, n, itemsize) and _gemm.a_sliced(False, npa, k, itemsize)
    depth = k if trans_b else -(-k // -(-k // _gemm.KC))
    assert depth < k or trans_b
    if shape == 0 and trans_b:
        assert _gemm.PACK_BYTES // (depth * _gemm.MR * itemsize) < npa  # several blocks of A panels
    a, b = operands(m, n, k, trans_a, trans_b, dtype)
    a, b = guarded(a), guarded(b)
    bias = guarded(randn((n,), dtype, 5))
    product = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    expected = np.maximum(product + bias, 0)
    # On three threads: a task a thread, in one column (B the smaller operand) or one row, B not in place.
    sizes = _gemm.plan(a, trans_a, trans_b, nan_like((m, n), dtype), 3)
    assert (sizes[-2], sizes[-1]) == ((3, 1) if m >= n else (1, 3)) and not sizes[6]
    check_bias_relu_on_both_drivers(a, b, trans_a, trans_b, bias, expected, dtype, k)
    rtol, atol = tolerance(dtype, k)
    assert_close(cpu.matmul(a, b, trans_a=trans_a, trans_b=trans_b), product, dtype, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_transposed_a_in_place_and_packed(dtype):
    # A transposed A beyond L2 (here > 1 MiB) is read in place while B has at most
    # T_A_IN_PLACE_MAX_PANELS panels (a deep weight gradient), packed beyond: both sides of the rule,
    # an edge panel each, on the serial and the parallel driver, every operand ending at a guard page.
    m, k = 264, 1000
    itemsize = np.dtype(dtype).itemsize
    assert m * k * itemsize > 1 << 20
    nr = 2 * _gemm.VEC_BYTES // itemsize
    no_epi = NO_EPILOGUE[np.dtype(dtype)]
    for n in (21, _gemm.T_A_IN_PLACE_MAX_PANELS * nr + 5):
        assert _gemm.a_in_place(True, m, k, n, itemsize) == (n == 21)
        a, b = operands(m, n, k, True, False, dtype)
        a, b = guarded(a), guarded(b)
        expected = ref.matmul(a, b, trans_a=True)
        rtol, atol = tolerance(dtype, k)
        for path in (lambda *args: _gemm.run_serial(*args, *no_epi),
                     lambda *args: _gemm.gemm_parallel(*args, 1, *no_epi),
                     lambda *args: _gemm.gemm_parallel(*args, 3, *no_epi)):
            out = guarded(nan_like((m, n), dtype))
            path(a, b, True, False, out)
            assert_close(out, expected, dtype, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_path_column_ranges(dtype):
    # gemm_dot computes columns j0:j1 only and leaves the others untouched.
    m, n, k = 11, 23, 70
    a, b = operands(m, n, k, False, True, dtype)
    expected = ref.matmul(a, b, trans_b=True)
    rtol, atol = tolerance(dtype, k)
    for j0, j1 in [(0, 23), (5, 6), (3, 22), (20, 23)]:
        out = nan_like((m, n), dtype)
        gemm_dot(a, b, out, j0, j1)
        assert_close(out[:, j0:j1], expected[:, j0:j1], dtype, rtol=rtol, atol=atol)
        assert np.isnan(out[:, :j0]).all() and np.isnan(out[:, j1:]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nthreads", [1, 2, 3, 16])
def test_dot_path_parallel_any_thread_count(nthreads, dtype):
    # The column tiles split into runs per thread: more threads than tiles leave some runs empty.
    for m, n, k in [(5, 37, 300), (40, 9, 260), (3, 2, 257)]:
        a, b = operands(m, n, k, False, True, dtype)
        out = nan_like((m, n), dtype)
        gemm_dot_parallel(a, b, out, nthreads)
        rtol, atol = tolerance(dtype, k)
        assert_close(out, ref.matmul(a, b, trans_b=True), dtype, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_path_stays_inside_its_arrays(dtype):
    # Edge tiles re-read a clamped row; the K tail is a masked load: nothing past any array is touched.
    for m, n, k in [(4, 5, 13), (1, 1, 3), (7, 9, 600)]:
        a, b = operands(m, n, k, False, True, dtype)
        a, b = guarded(a), guarded(b)
        out = guarded(nan_like((m, n), dtype))
        gemm_dot(a, b, out, 0, n)
        rtol, atol = tolerance(dtype, k)
        assert_close(out, ref.matmul(a, b, trans_b=True), dtype, rtol=rtol, atol=atol)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(1, 70),
       trans_a=st.booleans(), trans_b=st.booleans(), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**16))
def test_cpu_matches_reference_hypothesis(m, n, k, trans_a, trans_b, dtype, seed):
    check_matmul(m, n, k, trans_a, trans_b, dtype, seed)


@settings(max_examples=10, deadline=None)
@given(m=st.integers(60, 200), n=st.integers(60, 200), k=st.integers(60, 300),
       trans_a=st.booleans(), trans_b=st.booleans(), seed=st.integers(0, 2**16))
def test_cpu_matches_reference_hypothesis_packed(m, n, k, trans_a, trans_b, seed):
    check_matmul(m, n, k, trans_a, trans_b, np.float64, seed)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("backend", BACKENDS)
class TestBadInput:
    def test_wrong_dtype(self, backend):
        with pytest.raises(TypeError, match="a must have dtype float32 or float64, got int64"):
            backend.matmul(np.ones((2, 2), dtype=np.int64), np.ones((2, 2)))

    def test_not_an_array(self, backend):
        with pytest.raises(TypeError, match="b must be an array, got list"):
            backend.matmul(np.ones((2, 2)), [[1.0, 2.0], [3.0, 4.0]])

    def test_mixed_dtypes(self, backend):
        with pytest.raises(TypeError, match="b has dtype float32 but a has dtype float64"):
            backend.matmul(np.ones((2, 2)), np.ones((2, 2), dtype=np.float32))

    def test_non_contiguous(self, backend):
        with pytest.raises(ValueError, match="a must be C-contiguous"):
            backend.matmul(np.ones((4, 4))[:, ::2], np.ones((2, 2)))

    def test_wrong_rank(self, backend):
        with pytest.raises(ValueError, match=r"b must be 2-D, got 1-D array of shape \(3,\)"):
            backend.matmul(np.ones((2, 3)), np.ones(3))

    def test_inner_dimension_mismatch(self, backend):
        with pytest.raises(ValueError, match=r"inner dimensions differ: op\(a\) is 2x3 .* op\(b\) is 4x5"):
            backend.matmul(np.ones((2, 3)), np.ones((4, 5)))
        with pytest.raises(ValueError, match=r"op\(a\) is 3x2 \(a has shape \(2, 3\), trans_a=True\)"):
            backend.matmul(np.ones((2, 3)), np.ones((3, 5)), trans_a=True)

    def test_bad_flag(self, backend):
        with pytest.raises(TypeError, match="trans_b must be a bool, got str 'yes'"):
            backend.matmul(np.ones((2, 2)), np.ones((2, 2)), trans_b="yes")

    def test_out_wrong_shape(self, backend):
        with pytest.raises(ValueError, match=r"out must have shape \(2, 5\), got \(5, 2\)"):
            backend.matmul(np.ones((2, 3)), np.ones((3, 5)), out=np.empty((5, 2)))

    def test_out_wrong_dtype(self, backend):
        with pytest.raises(TypeError, match="out must have dtype float64, got float32"):
            backend.matmul(np.ones((2, 3)), np.ones((3, 5)), out=np.empty((2, 5), dtype=np.float32))

    def test_out_non_contiguous(self, backend):
        with pytest.raises(ValueError, match="out must be C-contiguous"):
            backend.matmul(np.ones((2, 3)), np.ones((3, 5)), out=np.empty((2, 10))[:, ::2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(48, 37), (35, 8), (16, 3), (70, 129), (10, 84), (26, 19)])
def test_transposed_b_packs_into_panels(n, k, dtype):
    # pack_b of op(b) = b.T: whole panels by register transposes of lanes x lanes blocks (k % lanes by
    # scalar moves), the partial last panel zero-padded, its whole vectors of columns transposed too
    # (10 and 26 columns: one whole vector and a few columns on AVX2 and AVX-512, float32 and float64);
    # against the definition of the panel layout.
    from jitgrad.kernels.cpu import _gemm_pack

    b = randn((n, k), dtype, 5)
    nr = 2 * VEC_BYTES // np.dtype(dtype).itemsize
    npb = -(-n // nr)
    packed = nan_like((npb * k * nr,), dtype)
    _gemm_pack.pack_b(b, True, 0, npb, packed)
    padded = np.zeros((k, npb * nr), dtype)
    padded[:, :n] = b.T
    np.testing.assert_array_equal(packed, padded.reshape(k, npb, nr).transpose(1, 0, 2).ravel())


@numba.njit(cache=False)
def _store_first(src, dst, offset, count):
    vstore_masked(dst, offset, vload(src, 0), count)


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_store_writes_exactly_its_lanes(dtype):
    # The edge tiles' stores (GEMM, epilogue, im2col, elementwise tails): lanes ``0 : count`` of a
    # vector, ``count`` clamped to ``0 : lanes``, nothing else written. Below AVX-512 it is a store per
    # binary digit of ``count`` (``_gemm_simd._store_lanes``), at every offset's alignment.
    lanes = VEC_BYTES // np.dtype(dtype).itemsize
    src = np.arange(1, lanes + 1, dtype=dtype)
    for offset in (0, 1, 3):
        for count in range(-2, lanes + 3):
            dst = np.full(lanes + 8, -1, dtype)
            _store_first(src, dst, offset, count)
            expected = np.full(lanes + 8, -1, dtype)
            stored = max(0, min(count, lanes))
            expected[offset:offset + stored] = src[:stored]
            np.testing.assert_array_equal(dst, expected, err_msg=f"offset {offset}, count {count}")
