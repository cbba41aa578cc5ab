"""Tiered compilation (jitgrad/kernels/cpu/_tier.py): serial twins, ready markers, the background switch."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, prange

from jitgrad import compile as jcompile
from jitgrad.kernels.cpu import _gemm, _tier, pooling
from jitgrad.kernels.reference.pooling import max_pool2d as ref_max_pool2d


def _scaled_sum(x, out):
    for i in prange(x.size):
        out[i] = 2 * x[i]
    return x.size


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A fresh tiered kernel (not in the cache) with its markers in ``tmp_path``; tiering on, no background."""
    monkeypatch.setattr(_tier, "_marker_dir", tmp_path)
    monkeypatch.setenv(_tier.ENV_VAR, "1")
    monkeypatch.setattr(_tier, "_forced", None)
    started = []
    monkeypatch.setattr(_tier, "start_background", lambda: started.append(1) or True)
    monkeypatch.setattr(_tier, "background_running", lambda: bool(started))
    k = _tier.Tiered(njit(parallel=True)(_scaled_sum))  # fresh dispatchers: nothing compiled yet
    monkeypatch.delitem(_tier.REGISTRY, k.name)
    k.started = started
    return k


def _call(k):
    x = np.arange(5, dtype=np.float32)
    out = np.full(5, np.nan, dtype=np.float32)
    assert k(x, out) == 5
    np.testing.assert_array_equal(out, 2 * x)


def test_cold_runs_the_serial_twin_and_starts_one_background_compile(kernel):
    _call(kernel)
    _call(kernel)
    assert kernel.serial.signatures and not kernel.parallel.signatures
    assert kernel.started == [1]  # one start; the second call sees it running
    assert not _tier.is_ready(kernel.name)


def test_marker_switches_to_the_parallel_version_for_good(kernel):
    _call(kernel)
    (_tier.marker_dir() / f"{kernel.name}.ready").write_text("")
    kernel._serial_until = 0.0  # skip the 0.2 s between looks
    _call(kernel)
    assert kernel.parallel.signatures
    assert kernel._fn is kernel.parallel  # memoised: no more marker checks


def test_marker_is_rechecked_at_most_every_recheck_interval(kernel):
    _call(kernel)
    (_tier.marker_dir() / f"{kernel.name}.ready").write_text("")
    _call(kernel)  # within RECHECK_S of the last look: still serial
    assert not kernel.parallel.signatures


def test_background_gone_without_marker_compiles_here_and_leaves_the_marker(kernel, monkeypatch):
    monkeypatch.setattr(_tier, "_background_started", True)
    monkeypatch.setattr(_tier, "background_running", lambda: False)
    _call(kernel)
    assert kernel.parallel.signatures and not kernel.serial.signatures
    assert _tier.is_ready(kernel.name)


def test_tiering_off_by_env_runs_parallel_and_never_spawns(kernel, monkeypatch):
    monkeypatch.setenv(_tier.ENV_VAR, "0")
    assert not _tier.enabled()
    _call(kernel)
    assert kernel.started == [] and kernel.parallel.signatures and not kernel.serial.signatures
    assert _tier.is_ready(kernel.name)


def test_force_overrides_and_rejects_unknown_versions(kernel, monkeypatch):
    monkeypatch.setattr(_tier, "REGISTRY", {kernel.name: kernel})
    _tier.force("serial")
    try:
        _call(kernel)
        assert kernel.serial.signatures and not kernel.parallel.signatures
        _tier.force("parallel")
        _call(kernel)
        assert kernel.parallel.signatures and kernel.started == []
    finally:
        _tier.force(None)
    with pytest.raises(ValueError, match="version must be"):
        _tier.force("fast")


def test_compile_tasks_run_the_parallel_versions_and_leave_markers(kernel, monkeypatch):
    monkeypatch.setitem(jcompile.TASKS, "tiny", lambda dtype: _call(kernel))
    jcompile._run_task("tiny", "float32")
    assert _tier.is_ready(kernel.name) and kernel.started == []
    assert _tier._forced is None  # put back


def test_twin_and_parallel_have_their_own_cache_files():
    k = _gemm.gemm_parallel
    assert isinstance(k, _tier.Tiered) and k.name in _tier.REGISTRY
    paths = {k.parallel._cache._cache_file._index_path, k.serial._cache._cache_file._index_path}
    assert len(paths) == 2
    assert k.serial.py_func.__code__ is k.parallel.py_func.__code__  # one body, no copy
    assert "parallel" not in k.serial.targetoptions
    assert k.serial.targetoptions["fastmath"] == k.parallel.targetoptions["fastmath"]


def test_twin_computes_what_the_parallel_gemm_computes():
    rng = np.random.default_rng(0)
    for trans_a, trans_b in ((False, False), (True, True)):
        a = rng.standard_normal((40, 37)).astype(np.float32)
        b = rng.standard_normal((37, 70)).astype(np.float32)
        a_in = np.ascontiguousarray(a.T) if trans_a else a
        b_in = np.ascontiguousarray(b.T) if trans_b else b
        c_par = np.full((40, 70), np.nan, np.float32)
        c_ser = np.full((40, 70), np.nan, np.float32)
        no_epilogue = (np.zeros(1, np.float32), 0)  # no bias, no activation
        _gemm.gemm_parallel.parallel(a_in, b_in, trans_a, trans_b, c_par, 3, *no_epilogue)
        _gemm.gemm_parallel.serial(a_in, b_in, trans_a, trans_b, c_ser, 3, *no_epilogue)
        np.testing.assert_allclose(c_ser, a @ b, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(c_ser, c_par)  # same code, same blocking: the same sums


def test_twin_computes_what_the_parallel_max_pool_computes():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    expected, expected_idx = ref_max_pool2d(x, kernel_size=2)
    y = np.full(expected.shape, np.nan, np.float32)
    idx = np.full(expected.shape, -1, np.int32)
    pooling._max_pool2d_kernel.serial(x.reshape(6, 9, 8), 2, 2, 2, 2, 0, 0, y.reshape(6, 4, 4),
                                      idx.reshape(6, 4, 4))
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(idx, expected_idx)


def test_twin_claims_are_shared_between_processes(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    monkeypatch.setattr(_tier, "_marker_dir", tmp_path)
    assert _tier._claim_twin(f"a.k{_tier.TWIN_SUFFIX}")  # first: ours
    assert _tier._claim_twin(f"a.k{_tier.TWIN_SUFFIX}")  # ours again (same pid)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / f"b.k{_tier.TWIN_SUFFIX}.claim").write_text(str(other.pid))
        assert not _tier._claim_twin(f"b.k{_tier.TWIN_SUFFIX}")  # a live process compiles it
    finally:
        other.kill()
        other.wait()
    assert _tier._claim_twin(f"b.k{_tier.TWIN_SUFFIX}")  # its process is gone: reclaimed
    assert (tmp_path / f"b.k{_tier.TWIN_SUFFIX}.claim").read_text() == str(os.getpid())
    _tier._wait_for_twin(f"b.k{_tier.TWIN_SUFFIX}")  # our own claim, no ready marker: returns (never waits on itself)


def test_ready_follows_the_marker_without_compiling(kernel):
    assert not kernel.ready()
    assert kernel.started == [1]  # the first look starts the background compile
    assert not kernel.serial.signatures and not kernel.parallel.signatures
    (_tier.marker_dir() / f"{kernel.name}.ready").write_text("")
    kernel._serial_until = 0.0
    assert kernel.ready() and kernel._fn is kernel.parallel


def test_parallel_version_already_in_numba_cache_needs_no_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(_tier, "_marker_dir", tmp_path)
    monkeypatch.setenv(_tier.ENV_VAR, "1")
    monkeypatch.setattr(_tier, "_forced", None)
    monkeypatch.setattr(_tier, "start_background", lambda: pytest.fail("no background compile expected"))
    x, out = np.arange(5, dtype=np.float32), np.empty(5, np.float32)
    njit(parallel=True, cache=True)(_scaled_sum)(x, out)  # in Numba's cache now (as after an older jitgrad.compile)
    k = _tier.Tiered(njit(parallel=True, cache=True)(_scaled_sum))
    monkeypatch.delitem(_tier.REGISTRY, k.name)
    _call(k)
    assert k._fn is k.parallel and not k.serial.signatures
    assert _tier.is_ready(k.name)


def test_default_tiers_only_a_cache_that_never_held_a_complete_compile(tmp_path, monkeypatch):
    monkeypatch.delenv(_tier.ENV_VAR, raising=False)
    monkeypatch.setenv("JITGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_tier, "_fresh", None)
    assert _tier.enabled()  # a first run on this machine
    (tmp_path / "jitgrad-compiled-0123.stamp").write_text("compiled float32\n")
    assert _tier.enabled()  # memoised for the process's life
    monkeypatch.setattr(_tier, "_fresh", None)
    assert not _tier.enabled()  # a developer's cache after a kernel edit: no serial twins to time
    monkeypatch.setenv(_tier.ENV_VAR, "1")
    assert _tier.enabled()


def _sleeper():
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


def test_pid_lock_is_created_whole_and_taken_over_only_from_a_dead_process(tmp_path):
    import os

    lock = _tier.PidLock(tmp_path / "sub" / "x.lock")
    assert lock.holder() == 0 and not lock.held()
    assert lock.acquire() and lock.acquire()  # ours, then ours again
    assert lock.holder() == os.getpid() and lock.held() and not lock.held_by_other()
    assert [p.name for p in lock.path.parent.iterdir()] == ["x.lock"]  # no temporary file left
    other = _sleeper()
    try:
        lock.hand_over(other.pid)  # as start_background does with its child
        assert lock.holder() == other.pid and lock.held_by_other()
        lock.release()  # not ours: stays
        assert not _tier.PidLock(lock.path).acquire()
    finally:
        other.kill()
        other.wait()
    assert not lock.held()  # its process is gone: stale
    assert lock.acquire() and lock.holder() == os.getpid()
    lock.release()
    assert not lock.path.exists()


def test_background_pid_file_starts_one_compile_per_cache(tmp_path, monkeypatch):
    other = _sleeper()  # stands for the background process
    spawned = []

    class FakePopen:
        def __init__(self, args, **kwargs):
            spawned.append(args)
            self.pid = other.pid

        def poll(self):
            return other.poll()

    monkeypatch.setattr(_tier, "_marker_dir", tmp_path)
    monkeypatch.setattr(_tier, "_background", None)
    monkeypatch.setattr(_tier, "_background_started", False)
    monkeypatch.setattr(_tier.subprocess, "Popen", FakePopen)
    try:
        assert _tier.start_background() and _tier.background_started()
        assert spawned[0][-2:] == ["jitgrad.compile", "--background"]
        assert _tier.PidLock(_tier._pid_file()).holder() == other.pid
        monkeypatch.setattr(_tier, "_background", None)  # another process of the same cache
        assert _tier.background_running() and _tier.start_background() and len(spawned) == 1
    finally:
        other.kill()
        other.wait()
    assert not _tier.background_running()  # gone: its pid file is stale
    assert _tier.start_background() and len(spawned) == 2


def _plus_one(x):
    return x + 1


def test_shared_callee_is_compiled_by_one_process_the_other_waits(tmp_path, monkeypatch):
    import threading
    import time

    monkeypatch.setattr(_tier, "_marker_dir", tmp_path)
    monkeypatch.setattr(_tier, "_forced", "serial")  # as in the background process's serial phase
    d = _tier.shared(njit(_plus_one))
    key = f"{__name__}._plus_one{_tier.SHARED_SUFFIX}"
    other = _sleeper()  # holds the claim: "the step compiles it"
    (tmp_path / f"{key}.claim").write_text(str(other.pid))
    threading.Timer(0.5, lambda: (other.kill(), other.wait())).start()
    start = time.monotonic()
    assert d(np.int64(1)) == 2  # waited for the claim's process (here: until it died), then compiled
    assert time.monotonic() - start > 0.4
    assert (tmp_path / f"{key}.ready").is_file()
    # The GEMM callees that both the cold step and the background process reach are shared.
    from jitgrad.kernels.cpu import _gemm_pack, _gemm_tile

    for callee in (_gemm_tile.gemm_block, _gemm_pack.pack_b):
        assert callee.compile.__qualname__.startswith("shared.")


def test_shared_callee_outside_a_tiered_cold_start_compiles_as_numba_does(tmp_path, monkeypatch):
    monkeypatch.setattr(_tier, "_marker_dir", tmp_path)
    monkeypatch.setattr(_tier, "_forced", None)
    monkeypatch.setattr(_tier, "_background_started", False)
    d = _tier.shared(njit(_plus_one))
    assert d(np.int64(1)) == 2 and list(tmp_path.iterdir()) == []  # no claim, no marker


class _NotCompiledYet:
    """Stands in for a tiered kernel whose parallel version a cold start has not compiled: its
    ``ready()`` says so, and calling it fails the test (the caller was to take another kernel)."""

    def ready(self):
        return False

    def __call__(self, *args):
        raise AssertionError("the kernel that is not compiled yet was called")

    def compile(self, signature):
        raise AssertionError("the kernel that is not compiled yet was compiled")


@pytest.mark.parametrize("kernel_hw, padding, dilation", [((5, 5), (0, 0), (1, 1)), ((3, 2), (1, 0), (1, 1)),
                                                          ((3, 3), (1, 2), (2, 2))])
def test_cold_conv_input_gradient_runs_the_forward_kernel(kernel_hw, padding, dilation, monkeypatch):
    from jitgrad.kernels import cpu as K
    from jitgrad.kernels.cpu import _conv
    from jitgrad.kernels.reference import conv as ref

    monkeypatch.setattr(_conv, "conv2d_backward_input", _NotCompiledYet())
    rng = np.random.default_rng(2)
    x_shape = (2, 3, 9, 8)
    w = rng.standard_normal((4, 3, *kernel_hw)).astype(np.float32)
    y_shape = ref.conv2d(np.zeros(x_shape, np.float32), w, padding=padding, dilation=dilation).shape
    g = rng.standard_normal(y_shape).astype(np.float32)
    expected = ref.conv2d_backward_input(g, w, input_shape=x_shape, padding=padding, dilation=dilation)
    got = K.conv2d_backward_input(g, w, input_shape=x_shape, padding=padding, dilation=dilation)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_cold_conv_input_gradient_leaves_other_cases_to_its_own_kernel(monkeypatch):
    from jitgrad.kernels.cpu import _conv, conv
    from jitgrad.kernels.reference import conv as ref

    monkeypatch.setattr(_conv, "conv2d_backward_input", _NotCompiledYet())
    w = np.ones((2, 3, 3, 3), np.float32)
    g = np.ones((1, 2, 8, 8), np.float32)
    wide = ref.check_conv2d_backward_input_args(g, w, (1, 3, 4, 4), 1, 3, 1, None, 1, None)  # padding 3 > 2
    out = np.full((1, 3, 4, 4), 7.0, np.float32)
    assert not conv._backward_input_as_forward(g, w, wide, out)
    g = np.ones((1, 2, 6, 6), np.float32)
    w[0, 0, 0, 0] = np.inf  # the forward kernel would multiply inf by the zeros around g
    plain = ref.check_conv2d_backward_input_args(g, w, (1, 3, 8, 8), 1, 0, 1, None, 1, None)
    out = np.full((1, 3, 8, 8), 7.0, np.float32)
    assert not conv._backward_input_as_forward(g, w, plain, out)
    assert (out == 7.0).all()  # nothing written


class _CompiledSpy:
    """A compiled backward kernel (``ready()``) that counts its calls and runs the real one."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, 0

    def ready(self):
        return True

    def __call__(self, *args):
        self.calls += 1
        return self.kernel(*args)


@pytest.mark.parametrize("c_in, kernel_hw, padding, forward", [
    (16, (3, 3), (1, 1), True), (16, (5, 3), (2, 1), True), (8, (3, 3), (1, 1), False),
    (16, (3, 3), (0, 0), False), (16, (3, 3), (1, 0), False)])
def test_same_padded_input_gradient_runs_the_forward_kernel_where_faster(c_in, kernel_hw, padding, forward,
                                                                          monkeypatch):
    """On the AVX-512 path (forced here on any host) a unit-stride "same"-padded input gradient with
    C_in >= 16 takes the forward kernel even once the backward one is compiled; other cases do not."""
    from jitgrad.kernels import cpu as K
    from jitgrad.kernels.cpu import _conv, conv
    from jitgrad.kernels.reference import conv as ref

    monkeypatch.setattr(conv, "FORWARD_INPUT_GRAD_MIN_C_IN", 16)
    spy = _CompiledSpy(_conv.conv2d_backward_input)
    monkeypatch.setattr(_conv, "conv2d_backward_input", spy)
    rng = np.random.default_rng(3)
    x_shape = (2, c_in, 7, 6)
    w = rng.standard_normal((5, c_in, *kernel_hw)).astype(np.float32)
    y_shape = ref.conv2d(np.zeros(x_shape, np.float32), w, padding=padding).shape
    g = rng.standard_normal(y_shape).astype(np.float32)
    expected = ref.conv2d_backward_input(g, w, input_shape=x_shape, padding=padding)
    got = K.conv2d_backward_input(g, w, input_shape=x_shape, padding=padding)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert (spy.calls == 0) == forward


def test_forward_input_gradient_only_on_the_avx512_path():
    from jitgrad.kernels.cpu import _isa, conv

    assert (conv.FORWARD_INPUT_GRAD_MIN_C_IN > 0) == (_isa.ISA.name == "avx512")


def test_cold_conv_weight_gradient_takes_the_gemm_kernel_for_few_taps(monkeypatch):
    from jitgrad.kernels import cpu as K
    from jitgrad.kernels.cpu import _conv_weight
    from jitgrad.kernels.reference import conv as ref

    monkeypatch.setattr(_conv_weight, "conv2d_backward_weight_unit", _NotCompiledYet())
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)  # 25 taps: the dot kernel's case when warm
    g = rng.standard_normal((2, 6, 8, 8)).astype(np.float32)
    expected_w, expected_b = ref.conv2d_backward_weight(x, g, weight_shape=(6, 1, 5, 5))
    got_w, got_b = K.conv2d_backward_weight(x, g, weight_shape=(6, 1, 5, 5))
    np.testing.assert_allclose(got_w, expected_w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_b, expected_b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False), (True, True)])
def test_cold_matmul_runs_the_conv_forward_kernel(trans_a, trans_b, monkeypatch):
    # While gemm_parallel is not ready (a tiered cold start), float32 products above the small-product
    # loop are 1 x 1 convolutions on the conv forward kernel: gemm_serial is not called.
    from jitgrad.kernels import cpu as K
    from jitgrad.kernels import reference as ref
    from jitgrad.kernels.cpu import fused

    monkeypatch.setattr(_gemm, "gemm_parallel", _NotCompiledYet())
    monkeypatch.setattr(_gemm, "gemm_checked", _NotCompiledYet())
    # A cold process has no entry point of the serial GEMM yet (matmul's fast path calls it
    # without the module attribute patched here).
    monkeypatch.setattr(_gemm, "_SERIAL_ENTRIES", {})
    rng = np.random.default_rng(4)
    m, n, k = 40, 70, 37
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    expected = ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_allclose(K.matmul(a, b, trans_a=trans_a, trans_b=trans_b), expected, rtol=1e-4, atol=1e-4)
    if trans_b and not trans_a:  # a Linear layer's forward, with the bias and ReLU epilogue after the product
        bias = rng.standard_normal(n).astype(np.float32)
        np.testing.assert_allclose(fused.linear(a, b, bias, activation="relu"),
                                   ref.linear(a, b, bias, activation="relu"), rtol=1e-4, atol=1e-4)
    with pytest.raises(AssertionError, match="not compiled yet"):  # float64 keeps its GEMM
        K.matmul(a.astype(np.float64), b.astype(np.float64), trans_a=trans_a, trans_b=trans_b)


def test_a_request_is_written_once_and_only_while_tiering(tmp_path, monkeypatch):
    monkeypatch.setattr(_tier, "_marker_dir", tmp_path)
    monkeypatch.setattr(_tier, "_forced", None)
    monkeypatch.setattr(_tier, "_requested", set())
    monkeypatch.setenv(_tier.ENV_VAR, "1")
    _tier.request("lstm")
    assert (tmp_path / "requests" / "lstm").is_file()
    (tmp_path / "requests" / "lstm").unlink()
    _tier.request("lstm")  # once per process: a step's every call costs a set lookup
    assert not (tmp_path / "requests" / "lstm").exists()
    monkeypatch.setenv(_tier.ENV_VAR, "0")
    _tier.request("gru")  # no tiering, no background compile to ask
    assert not (tmp_path / "requests" / "gru").exists()


@pytest.mark.parametrize("requested", [False, True])
def test_the_background_runs_requested_jobs_first_then_the_loss(requested, tmp_path, monkeypatch):
    # A step that asked for jobs (a recurrent layer's) gets them first, then the loss and optimizers,
    # which it reaches before any pooling; otherwise the fixed order, tuned for LeNet-5's step.
    ran = []
    monkeypatch.setattr(_tier, "_marker_dir", tmp_path)
    monkeypatch.setattr(_tier, "REQUESTABLE", {"job": lambda: ran.append("job")})
    monkeypatch.setattr(jcompile, "_run_task", lambda name, dtype, version: ran.append((name, dtype, version)))
    monkeypatch.setattr(_tier, "background_main", lambda serial_phase, parallel_phase: serial_phase())
    if requested:
        (tmp_path / "requests").mkdir()
        for name in ("job", "unknown"):  # a name nothing registered is left alone
            (tmp_path / "requests" / name).touch()
    jcompile._background()
    tasks = list(jcompile.BACKGROUND_SERIAL_TASKS)
    if requested:
        tasks.remove("loss + optimizers")
        tasks.insert(0, "loss + optimizers")
    assert ran == ["job"] * requested + [(name, "float32", "serial") for name in tasks]


def test_a_recurrent_layer_requests_its_cells_backward_loop(monkeypatch):
    # Each cell's forward asks for its compile job, which runs that cell's backward loop: serial
    # twin and parallel version compute the same gradients (the same code, the batch in one task).
    from jitgrad.kernels import cpu as K
    from jitgrad.kernels.cpu import recurrent

    asked = []
    monkeypatch.setattr(_tier, "request", asked.append)
    rng = np.random.default_rng(5)
    x, h0 = rng.standard_normal((3, 2, 4)).astype(np.float32), np.zeros((2, 5), np.float32)
    w_ih, w_hh = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((5, 5)).astype(np.float32)
    y, _ = K.rnn(x, h0, w_ih, w_hh)
    assert asked == ["rnn"] and set(_tier.REQUESTABLE) >= {"lstm", "gru", "rnn"}
    grad_y = rng.standard_normal(y.shape).astype(np.float32)
    steps = {}
    for version in ("serial", "parallel"):
        monkeypatch.setattr(_tier, "_forced", version)
        if version == "serial":
            _tier.REQUESTABLE["rnn"]()  # the job: the twin compiled (or loaded)
            assert recurrent._BACKWARD[recurrent._RNN].serial.signatures
        steps[version] = recurrent._backward_steps(recurrent._RNN, False, grad_y, h0, None, h0, None, w_hh, y,
                                                   np.zeros((3, 2, 0), np.float32), np.full(2, 3, np.int64), False)
    for serial, parallel in zip(steps["serial"], steps["parallel"]):
        np.testing.assert_array_equal(serial, parallel)
