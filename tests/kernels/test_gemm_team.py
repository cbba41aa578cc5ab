"""The GEMM team (kernels/cpu/_team.py): helper threads that spin between products and claim blocks of C.

Every product the team computes is bit for bit the one-thread driver's (each block of C is the same
micro-kernel over the same k order, whoever computes it), and close to the reference. The tests
also hold the team's protocol: helpers really take blocks, fall asleep when idle and wake for the
next product; a held team leaves the product to the caller; concurrent callers, a forked child
(none of the parent's helpers) and ``JITGRAD_GEMM_TEAM=0`` all still compute the right product.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time

import numba
import numpy as np
import pytest

from jitgrad import config
from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from jitgrad.kernels.cpu import _gemm, _gemv, _team, _team_spans
from jitgrad.kernels.cpu._gemm_epilogue import EPI_COL_BIAS, EPI_RELU
from jitgrad.kernels.cpu._team_state import NO_TEAM
from tests.helpers import nan_like, randn
from tests.kernels.test_conv import guarded

pytestmark = pytest.mark.skipif(not _team.AVAILABLE, reason="the GEMM team runs on Linux x86-64 only")

matmul_module = sys.modules[cpu.matmul.__module__]
TRANS = list(itertools.product([False, True], [False, True]))
#: Shapes: one task row or column, partial tiles and panels, A in place and packed, B in place and
#: packed, a shared packing pass (64 x 1936 x 288), deep K over several KC slices.
# (33, 65, 700) and (128, 40, 120) on 2 threads: a row of tasks cut in two (``partition``'s uneven runs of B
# panels) on the AVX-512 and the AVX2 tile.
# (40, 8100, 520): B above _gemm.PACK_BYTES, each task packing its panels in blocks; (2100, 40, 1100): a
# row-major A above it, in two blocks of rows; (2100, 140, 1024): a packed A above it (row-major: its
# 4 KiB row pitch packs it on one thread too), each task packing both operands a K slice at a time.
SHAPES = [(9, 200, 40), (300, 7, 33), (130, 140, 300), (16, 2000, 600), (64, 288, 1936), (33, 65, 700),
          (128, 40, 120), (40, 8100, 520), (2100, 40, 1100), (2100, 140, 1024)]


def operands(m, n, k, trans_a, trans_b, seed=0):
    a = randn((k, m) if trans_a else (m, k), np.float32, seed)
    b = randn((n, k) if trans_b else (k, n), np.float32, seed + 1)
    return a, b


def team(nthreads):
    return _team.team_state(nthreads)


def wait_for(predicate, seconds=10.0):
    end = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.001)
    return True


@pytest.mark.parametrize("nthreads", [2, 3])
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=["NN", "NT", "TN", "TT"])
def test_team_product_is_the_serial_drivers_bit_for_bit(trans_a, trans_b, nthreads):
    for m, n, k in SHAPES:
        a, b = operands(m, n, k, trans_a, trans_b)
        bias = randn((n,), np.float32, 7)
        for epi, col_bias in [(0, np.zeros(1, np.float32)), (EPI_COL_BIAS | EPI_RELU, bias)]:
            expected = nan_like((m, n), np.float32)
            _gemm.run_serial(a, b, trans_a, trans_b, expected, col_bias, epi)
            got = nan_like((m, n), np.float32)
            assert _team.gemm_team(a, b, trans_a, trans_b, got, nthreads, col_bias, epi, team(nthreads))
            np.testing.assert_array_equal(got, expected, err_msg=f"{m}x{n}x{k} epi={epi}")
        product = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
        np.testing.assert_allclose(got, np.maximum(product + bias, 0), rtol=1e-4, atol=1e-4 * np.sqrt(k))


def test_team_stays_inside_its_arrays():
    # Every argument ends at an inaccessible page: a helper reading or writing past one crashes.
    for (m, n, k), (trans_a, trans_b) in itertools.product([(70, 45, 33), (130, 67, 150), (37, 100, 13)], TRANS):
        a, b = operands(m, n, k, trans_a, trans_b)
        a, b = guarded(a), guarded(b)
        for _ in range(20):  # enough products for the helper to take blocks of some
            out = guarded(nan_like((m, n), np.float32))
            assert _team.gemm_team(a, b, trans_a, trans_b, out, 2, np.zeros(1, np.float32), 0, team(2))
        np.testing.assert_allclose(out, ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b), rtol=1e-4, atol=1e-3)


def test_helpers_take_blocks_and_sleep_when_idle():
    state = team(2)
    a, b = operands(128, 120, 256, False, True)
    out = np.empty((128, 120), np.float32)

    def helped_after_products():
        before = state[_team.HELPED]
        for _ in range(50):
            _team.gemm_team(a, b, False, True, out, 2, np.zeros(1, np.float32), 0, state)
        return state[_team.HELPED] > before

    # In a loop of products the helper spins between them and computes some blocks (could be False:
    # a helper that never saw a product, or one the calling thread always beat to every block).
    assert wait_for(helped_after_products)
    # Idle, it stops spinning: asleep on the futex within SPIN_PAUSES pauses (~1 ms).
    assert wait_for(lambda: state[_team.SLEEPERS] == len(_team._HELPERS))
    # ... and the next products wake it.
    assert wait_for(helped_after_products)
    np.testing.assert_array_equal(out, cpu.matmul(a, b, trans_b=True))


def test_a_held_team_leaves_the_product_to_the_caller():
    state = team(2)
    a, b = operands(130, 140, 300, False, False)
    expected = ref.matmul(a, b)
    assert wait_for(lambda: state[_team.BUSY] == 0)
    state[_team.BUSY] = 1  # another thread's product
    try:
        out = nan_like((130, 140), np.float32)
        assert not _team.gemm_team(a, b, False, False, out, 2, np.zeros(1, np.float32), 0, state)
        assert np.isnan(out).all()  # untouched
        np.testing.assert_allclose(cpu.matmul(a, b), expected, rtol=1e-4, atol=1e-3)  # matmul runs it alone
    finally:
        state[_team.BUSY] = 0


def in_threads(caller, count=4):
    """Run ``caller(i)`` on ``count`` Python threads at once, ``i`` in ``range(count)``; wait for all."""
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_callers_each_get_their_product():
    products = [operands(96 + 8 * i, 100, 200, i % 2 == 1, False, seed=i) for i in range(4)]
    expected = [cpu.matmul(a, b, trans_a=i % 2 == 1) for i, (a, b) in enumerate(products)]
    wrong = []

    def caller(i):
        a, b = products[i]
        for _ in range(100):
            if not np.array_equal(cpu.matmul(a, b, trans_a=i % 2 == 1), expected[i]):
                wrong.append(i)

    in_threads(caller)
    assert not wrong


def test_matmul_uses_the_team_only_on_more_than_one_thread():
    a, b = operands(128, 120, 256, False, True)
    state = team(2)
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        before = state[_team.HELPED]
        for _ in range(50):
            cpu.matmul(a, b, trans_b=True)
        assert state[_team.HELPED] == before
    finally:
        numba.set_num_threads(old)
    if old > 1:  # and with them, matmul hands it blocks
        assert matmul_module.TEAM_MIN_MACS < 128 * 120 * 256
        assert wait_for(lambda: [cpu.matmul(a, b, trans_b=True) for _ in range(50)]
                        and state[_team.HELPED] > before)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="a team needs two threads")
def test_a_team_product_opens_matmuls_fast_path(monkeypatch):
    # A process whose float32 products all run on the team (no one-thread product has opened the
    # serial GEMM's entry point) takes matmul's fast path after its first product, not the Python
    # checks and drivers (``_matmul_kernel``) on every call.
    a, b = operands(128, 120, 84, False, False)
    expected = nan_like((128, 120), np.float32)
    _gemm.run_serial(a, b, False, False, expected, np.zeros(1, np.float32), 0)
    monkeypatch.setattr(_gemm, "_SERIAL_ENTRIES", {})
    old = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        np.testing.assert_array_equal(cpu.matmul(a, b), expected)  # the full path, on the team
        assert np.dtype(np.float32) in _gemm._SERIAL_ENTRIES

        def no_driver(*args):
            raise AssertionError("the drivers' Python path ran")

        monkeypatch.setattr(matmul_module, "_matmul_kernel", no_driver)
        out = nan_like((128, 120), np.float32)
        assert cpu.matmul(a, b, out=out) is out
        np.testing.assert_array_equal(out, expected)
    finally:
        numba.set_num_threads(old)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="a team needs two threads")
def test_the_entry_point_posts_larger_products_to_the_team_itself(monkeypatch):
    # Once the team is ready (its product job in the state), matmul's one compiled call checks a
    # larger float32 product and runs it on the team, no Python between (``_team_product`` patched
    # out): the helper takes blocks, and the product, the fused linear's epilogue in its store, is
    # the serial driver's bit for bit.
    x, w = operands(128, 120, 256, False, True)
    bias = randn((120,), np.float32, 7)
    expected = nan_like((128, 120), np.float32)
    _gemm.run_serial(x, w, False, True, expected, bias, EPI_COL_BIAS | EPI_RELU)
    old = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        state = _team.product_state(2)
        cpu.matmul(x, w, trans_b=True)  # (opens the fast path: the serial entry point exists)

        def no_python(*args):
            raise AssertionError("the team's Python path ran")

        monkeypatch.setattr(matmul_module, "_team_product", no_python)
        before = state[_team.HELPED]

        def helped():
            for _ in range(50):
                np.testing.assert_array_equal(cpu.fused.linear(x, w, bias, activation="relu"), expected)
            return state[_team.HELPED] > before

        assert wait_for(helped)
    finally:
        numba.set_num_threads(old)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="a team needs two threads")
def test_the_entry_point_leaves_to_python_what_the_team_cannot_take():
    # gemm_checked answers LARGER (out untouched; matmul's Python then readies the team or runs a
    # driver) for a state without the product job, helpers fewer than the thread setting, a held
    # team, and a job that did not finish (a cfunc that raised prints and returns: here one that
    # does nothing), the team released after it; on one thread it runs the product itself.
    entry = _gemm.serial_entry(np.dtype(np.float32))
    a, b = operands(128, 120, 256, False, False)
    expected = nan_like((128, 120), np.float32)
    _gemm.run_serial(a, b, False, False, expected, np.zeros(1, np.float32), 0)
    old = numba.get_num_threads()
    numba.set_num_threads(2)
    state = _team.product_state(2)
    job = state[_team.PRODUCT_JOB]

    def answer(team, max_macs=matmul_module.TEAM_MIN_MACS):
        out = nan_like((128, 120), np.float32)
        got = entry(a, b, False, False, out, np.zeros(1, np.float32), 0, max_macs, team)
        if got == _gemm.DONE:
            np.testing.assert_array_equal(out, expected)
        else:
            assert np.isnan(out).all()
        return got

    try:
        assert answer(state) == _gemm.DONE
        assert answer(NO_TEAM) == _gemm.LARGER
        assert answer(NO_TEAM, max_macs=-2) == _gemm.LARGER
        state[_team.HELPERS_STARTED] = 0
        assert answer(state) == _gemm.LARGER
        state[_team.HELPERS_STARTED] = len(_team._HELPERS)
        assert wait_for(lambda: state[_team.BUSY] == 0)
        state[_team.BUSY] = 1
        assert answer(state) == _gemm.LARGER and answer(state, max_macs=-2) == _gemm.LARGER
        state[_team.BUSY] = 0
        state[_team.PRODUCT_JOB] = numba.cfunc(numba.types.void(numba.types.int64, numba.types.int64))(
            lambda address, block: None).address
        assert answer(state) == _gemm.LARGER
        assert state[_team.BUSY] == 0
        state[_team.PRODUCT_JOB] = job
        numba.set_num_threads(1)
        before = state[_team.HELPED]
        assert answer(state) == _gemm.DONE and state[_team.HELPED] == before
    finally:
        state[_team.PRODUCT_JOB], state[_team.BUSY] = job, 0
        state[_team.HELPERS_STARTED] = len(_team._HELPERS)
        numba.set_num_threads(old)


def test_shutdown_stops_the_helpers_and_the_next_product_starts_them_again():
    a, b = operands(128, 120, 256, False, True)
    expected = cpu.matmul(a, b, trans_b=True)
    state = team(2)
    helpers = list(_team._HELPERS)
    assert helpers and all(helper.is_alive() for helper in helpers)
    _team.shutdown(timeout=10.0)  # (atexit runs it too) spinning or asleep, each helper leaves
    assert not any(helper.is_alive() for helper in helpers)
    assert not _team._HELPERS and state[_team.STOP] == 0
    before = state[_team.HELPED]
    out = np.empty((128, 120), np.float32)

    width = len(helpers) + 1  # (an earlier test may have run 3 threads)

    def product_with_help():
        assert _team.gemm_team(a, b, False, True, out, width, np.zeros(1, np.float32), 0, team(width))
        return np.array_equal(out, expected) and state[_team.HELPED] > before

    assert wait_for(product_with_help)
    assert all(helper.is_alive() for helper in _team._HELPERS) and len(_team._HELPERS) == len(helpers)


def test_config_switch_sends_products_back_to_the_old_drivers(monkeypatch):
    a, b = operands(128, 120, 256, False, True)
    state = team(2)
    expected = nan_like((128, 120), np.float32)
    _gemm.run_serial(a, b, False, True, expected, np.zeros(1, np.float32), 0)
    monkeypatch.setattr(config, "gemm_team", False)
    assert not _team.enabled()
    before = state[_team.HELPED]
    for _ in range(50):
        np.testing.assert_array_equal(cpu.matmul(a, b, trans_b=True), expected)
    assert state[_team.HELPED] == before
    monkeypatch.setattr(config, "gemm_team", True)
    assert _team.enabled()
    if numba.get_num_threads() > 1:  # back on the team at the next products
        assert wait_for(lambda: np.array_equal(cpu.matmul(a, b, trans_b=True), expected)
                        and state[_team.HELPED] > before)


SCRIPT = textwrap.dedent("""
    import os, threading
    import numpy as np
    from jitgrad.kernels import cpu
    from jitgrad.kernels.cpu import _team
    rng = np.random.default_rng(0)
    a = rng.standard_normal((130, 300)).astype(np.float32)
    b = rng.standard_normal((300, 140)).astype(np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    x = rng.standard_normal(300_000).astype(np.float32)  # above tanh's team_min: spans on the team
    tanh_expected = np.tanh(x.astype(np.float64))
    for _ in range(20):
        got = cpu.matmul(a, b)
        got_tanh = cpu.tanh(x)
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-3)
    assert np.allclose(got_tanh, tanh_expected, rtol=1e-6, atol=1e-6)
    helpers = [t.name for t in threading.enumerate() if t.name.startswith("jitgrad-gemm-helper")]
    print("helpers", len(helpers), "enabled", _team.enabled())
    if _team.enabled():  # (off, the product ran on Numba's OpenMP pool: it ends a forked child)
        pid = os.fork()
        if pid == 0:  # the child has none of the parent's helper threads: matmul starts its own
            ok = all(np.allclose(cpu.matmul(a, b), expected, rtol=1e-4, atol=1e-3)
                     and np.allclose(cpu.tanh(x), tanh_expected, rtol=1e-6, atol=1e-6) for _ in range(20))
            os._exit(0 if ok else 3)
        print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
""")


@pytest.mark.parametrize("setting", ["1", "0"])
def test_forked_child_and_switching_the_team_off(setting):
    env = dict(os.environ, JITGRAD_GEMM_TEAM=setting, NUMBA_NUM_THREADS="2")
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    on = setting == "1"
    assert f"helpers {1 if on else 0} enabled {on}" in result.stdout
    assert ("child 0" in result.stdout) == on



FREED_SCRIPT = textwrap.dedent("""
    import numpy as np
    from jitgrad.kernels.cpu import _team
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 288)).astype(np.float32)
    b = rng.standard_normal((288, 32768)).astype(np.float32)
    got = np.empty((32, 32768), np.float32)
    assert _team.gemm_team(a, b, False, False, got, 2, np.zeros(1, np.float32), 0, _team.team_state(2))
    print("error", np.abs(got - a.astype(np.float64) @ b).max())
""")


def test_packed_buffers_outlive_the_team_s_work():
    # The product job's packed buffers were freed at their last use in it, the store of their addresses
    # before the work: the team then packed into freed memory, silently while malloc kept it, and into
    # unmapped memory (a segfault) once it was a mapping of its own. Here B is packed into 37.7 MB, above
    # the largest block glibc's malloc serves from its heap (32 MiB), in a fresh process.
    result = subprocess.run([sys.executable, "-c", FREED_SCRIPT], env=dict(os.environ, NUMBA_NUM_THREADS="2"), check=False,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) < 1e-3


#: Matrix-vector products on the team (``_team_spans.run_gemv``): by rows of the matrix (dot products)
#: and by columns of the output (rows added), spans with a partial last one, a single short span.
GEMV_SHAPES = [(1, 1030, 700), (1, 70, 5000), (700, 1, 1030), (5000, 1, 70), (3, 1, 5)]


@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=["NN", "NT", "TN", "TT"])
def test_matrix_vector_products_on_the_team(trans_a, trans_b):
    state = team(2)
    for m, n, k in GEMV_SHAPES:
        a, b = operands(m, n, k, trans_a, trans_b)
        a, b = guarded(a), guarded(b)
        expected = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
        out = guarded(nan_like((m, n), np.float32))
        assert wait_for(lambda: state[_team.BUSY] == 0)
        assert _team_spans.run_gemv(a, b, trans_a, trans_b, out)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.sqrt(k), err_msg=f"{m}x{n}x{k}")


def test_matmul_runs_a_large_matrix_vector_product_on_the_team():
    # Above GEMV_TEAM_MIN matmul's entry point leaves it to the team, whose helper takes spans of it in
    # a loop of products; on one thread it is computed alone (nothing for the helper).
    state = team(2)
    a, b = operands(1, 1024, 1024, False, False)
    expected = ref.matmul(a, b)
    assert 1024 * 1024 >= _gemv.GEMV_TEAM_MIN
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        before = state[_team.HELPED]
        for _ in range(20):
            np.testing.assert_allclose(cpu.matmul(a, b), expected, rtol=1e-4, atol=1e-3)
        assert state[_team.HELPED] == before
    finally:
        numba.set_num_threads(old)
    if old > 1:
        assert wait_for(lambda: [cpu.matmul(a, b) for _ in range(50)] and state[_team.HELPED] > before)
        np.testing.assert_allclose(cpu.matmul(a, b), expected, rtol=1e-4, atol=1e-3)
