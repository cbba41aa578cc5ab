"""Elementwise kernels on the GEMM team (kernels/cpu/_team_spans.py): a serial twin run on spans.

Every kernel a ``Twins`` pairs (each activation, forward and backward) gives on the team, bit for bit,
what its serial twin gives on the whole array, whoever runs which span; the spans stay inside the
arrays; the activations use the team from ``team_min`` elements on more than one thread, and fall
back (a held team, one thread, the switch off, a flag among the scalars) with the same result.
"""

from __future__ import annotations

import importlib
import inspect

import numba
import numpy as np
import pytest

from jitgrad import config
from jitgrad.kernels import cpu
from jitgrad.kernels.cpu import _team, _team_spans
from jitgrad.kernels.cpu._activation_calls import Twins
from tests.helpers import nan_like, randn
from tests.kernels.test_conv import guarded
from tests.kernels.test_gemm_team import in_threads, wait_for

pytestmark = [pytest.mark.skipif(not _team.AVAILABLE, reason="the GEMM team runs on Linux x86-64 only"),
              pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="a team needs two threads")]


@pytest.fixture(autouse=True)
def two_threads():
    old = numba.get_num_threads()
    numba.set_num_threads(2)
    yield
    numba.set_num_threads(old)

act = importlib.import_module("jitgrad.kernels.cpu.activations")
#: Every kernel pair of the activations module, by name.
TWINS = {name: k for name, k in sorted(vars(act).items()) if isinstance(k, Twins)}
#: Scalars by parameter name (a kernel's other parameters are its arrays).
SCALARS = {"slope": 0.1, "alpha": 1.3, "beta": 1.5, "threshold": 3.0}
#: Sizes: below one span, not a whole number of spans, many spans.
SIZES = [5000, _team_spans.MIN_SPAN * 3 + 77, 200_003]


def kernel_args(k: Twins, size: int, dtype, out: np.ndarray | None = None) -> tuple | None:
    """Arguments of ``k.serial`` for ``size`` elements (its output last: ``out``, or NaN), or None
    when it takes a flag (which the team does not)."""
    names = list(inspect.signature(k.serial.py_func).parameters)
    if any(name not in SCALARS and name not in ("x", "grad_out", "out") for name in names):
        return None
    args = []
    for i, name in enumerate(names):
        if name == "out":
            args.append(nan_like(size, dtype) if out is None else out)
        elif name in SCALARS:
            args.append(np.dtype(dtype).type(SCALARS[name]))
        else:
            args.append(randn(size, dtype, seed=i, scale=3.0))
    return tuple(args)


@pytest.mark.parametrize("name, dtype", [(name, dtype) for name, k in TWINS.items() if kernel_args(k, 1, np.float32)
                                         for dtype in (np.float32, np.float64)
                                         if dtype is np.float32 or not name.endswith("_F32")])  # tables: float32
def test_spans_on_the_team_are_the_serial_twin_bit_for_bit(name, dtype):
    k = TWINS[name]
    team_state = _team.team_state(2)
    for size in SIZES:
        args = kernel_args(k, size, dtype)
        expected = nan_like(size, dtype)
        k.serial(*args[:-1], expected)
        assert _team_spans.run(k.serial, args, size)
        np.testing.assert_array_equal(args[-1], expected)
        assert team_state[_team.BUSY] == 0 and team_state[_team.ACTIVE] == 0  # released, no helper inside


def test_spans_stay_inside_their_arrays():
    # Every array ends at an inaccessible page: a span past an end crashes the test.
    k = TWINS["_SOFTPLUS_BACKWARD"]
    for size in (_team_spans.MIN_SPAN + 1, 100_001):
        args = tuple(guarded(a) if isinstance(a, np.ndarray) else a for a in kernel_args(k, size, np.float32))
        expected = np.empty(size, np.float32)
        k.serial(*args[:-1], expected)
        for _ in range(20):  # enough calls for the helper to run spans of some
            args[-1][...] = np.nan
            assert _team_spans.run(k.serial, args, size)
            np.testing.assert_array_equal(args[-1], expected)


def test_helpers_run_spans():
    state = _team.team_state(2)
    x = randn(400_000, np.float32)

    def helped():
        before = state[_team.HELPED]
        for _ in range(30):
            cpu.tanh(x)
        return state[_team.HELPED] > before

    assert wait_for(helped)


def test_activations_use_the_team_from_team_min_and_fall_back_with_the_same_result(monkeypatch):
    k = act._SIGMOID
    x = randn((k.team_min // 64 + 1, 64), np.float32, scale=4.0)
    expected = act._sigmoid_kernel_serial
    flat = np.empty(x.size, np.float32)
    expected(x.ravel(), flat)
    calls = []
    run = _team_spans.run
    monkeypatch.setattr(_team_spans, "run", lambda *a: calls.append(a[2]) or run(*a))
    np.testing.assert_array_equal(cpu.sigmoid(x).ravel(), flat)
    assert calls == [x.size]
    small = x[: k.team_min // 64 - 1]
    cpu.sigmoid(small)
    assert calls == [x.size]  # below team_min: the serial twin, directly
    # A held team, one thread, the switch off: the old paths, the same values.
    state = _team.team_state(2)
    assert wait_for(lambda: state[_team.BUSY] == 0)
    state[_team.BUSY] = 1
    try:
        out = nan_like(x.size, np.float32)
        assert not run(k.serial, (x.ravel(), out), x.size)
        assert np.isnan(out).all()
        np.testing.assert_array_equal(cpu.sigmoid(x).ravel(), flat)
    finally:
        state[_team.BUSY] = 0
    numba.set_num_threads(1)
    assert not run(k.serial, (x.ravel(), np.empty(x.size, np.float32)), x.size)
    np.testing.assert_array_equal(cpu.sigmoid(x).ravel(), flat)
    numba.set_num_threads(2)
    monkeypatch.setattr(config, "gemm_team", False)
    assert not _team_spans.usable()
    np.testing.assert_array_equal(cpu.sigmoid(x).ravel(), flat)


def test_a_flag_among_the_scalars_is_left_to_the_other_paths():
    k = act._GELU  # (x, tanh_approx, out)
    x = randn(70_000, np.float32)
    out = nan_like(x.size, np.float32)
    assert not _team_spans.run(k.serial, (x, True, out), x.size)
    assert np.isnan(out).all()
    np.testing.assert_allclose(cpu.gelu(x, approximate="tanh"), cpu.gelu(x.astype(np.float64), approximate="tanh"),
                               rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- a @ b.T by dot products

_gemm_dot = importlib.import_module("jitgrad.kernels.cpu._gemm_dot")
matmul_module = importlib.import_module("jitgrad.kernels.cpu.matmul")
#: (M, K, N): by rows (few columns of C: a Linear layer's 10 classes, one row, a partial DOT_MR) and by
#: columns (conv weight gradients: few rows, many taps; a partial DOT_NR tile).
DOT_SHAPES = [(128, 1600, 10), (1, 300, 3), (40, 257, 7), (16, 1024, 150), (6, 9216, 25), (3, 500, 101)]


@pytest.mark.parametrize("m, k, n", DOT_SHAPES)
def test_dot_products_on_the_team_are_the_serial_drivers_bit_for_bit(m, k, n):
    a, b = randn((m, k), np.float32, seed=1), randn((n, k), np.float32, seed=2)
    expected = nan_like((m, n), np.float32)
    _gemm_dot.gemm_dot(a, b, expected, 0, n)
    for _ in range(5):
        out = nan_like((m, n), np.float32)
        assert _team_spans.run_dot(a, b, out)
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.T.astype(np.float64), rtol=1e-4, atol=1e-3)


def test_dot_spans_stay_inside_their_arrays():
    for m, k, n in [(40, 257, 7), (16, 300, 150)]:
        a, b = guarded(randn((m, k), np.float32, seed=1)), guarded(randn((n, k), np.float32, seed=2))
        expected = np.empty((m, n), np.float32)
        _gemm_dot.gemm_dot(a, b, expected, 0, n)
        for _ in range(20):
            out = guarded(nan_like((m, n), np.float32))
            assert _team_spans.run_dot(a, b, out)
            np.testing.assert_array_equal(out, expected)


def test_matmul_runs_deep_skinny_products_on_the_team_and_falls_back_when_it_is_held(monkeypatch):
    a, b = randn((128, 1600), np.float32, seed=1), randn((10, 1600), np.float32, seed=2)
    assert matmul_module.product_route(False, True, 128, 10, 1600, 4) == matmul_module.DOT
    assert 128 * 10 * 1600 > matmul_module.TEAM_MIN_MACS
    expected = np.empty((128, 10), np.float32)
    _gemm_dot.gemm_dot(a, b, expected, 0, 10)
    calls = []
    run_dot = _team_spans.run_dot
    monkeypatch.setattr(_team_spans, "run_dot", lambda *args: calls.append(1) or run_dot(*args))
    np.testing.assert_array_equal(cpu.matmul(a, b, trans_b=True), expected)
    assert calls == [1]
    state = _team.team_state(2)
    assert wait_for(lambda: state[_team.BUSY] == 0)
    state[_team.BUSY] = 1
    try:
        np.testing.assert_array_equal(cpu.matmul(a, b, trans_b=True), expected)  # the old drivers
    finally:
        state[_team.BUSY] = 0
    assert calls == [1, 1]
    monkeypatch.setattr(config, "gemm_team", False)
    np.testing.assert_array_equal(cpu.matmul(a, b, trans_b=True), expected)
    assert calls == [1, 1]


def test_concurrent_callers_each_get_their_result():
    # Python threads share one team: one holds it, the others run their calls the old way.
    inputs = [randn(150_000 + 1000 * i, np.float32, seed=i, scale=3.0) for i in range(4)]
    expected = [cpu.tanh(x) for x in inputs]
    a, b = randn((128, 1600), np.float32, seed=9), randn((10, 1600), np.float32, seed=10)
    expected_dot = cpu.matmul(a, b, trans_b=True)
    wrong = []

    def caller(i):
        for _ in range(30):
            if not np.array_equal(cpu.tanh(inputs[i]), expected[i]):
                wrong.append(("tanh", i))
            if not np.array_equal(cpu.matmul(a, b, trans_b=True), expected_dot):
                wrong.append(("dot", i))

    in_threads(caller)
    assert not wrong


def test_read_only_inputs_at_the_team_sizes():
    # A read-only input types differently from the writable output: the posters take both.
    x, g = randn(300_000, np.float32, seed=1, scale=3.0), randn(300_000, np.float32, seed=2)
    expected = {"tanh": cpu.tanh(x), "relu": cpu.relu(x), "softplus": cpu.softplus(x, beta=1.5),
                "tanh_backward": cpu.tanh_backward(g, x)}
    a, b = randn((128, 1600), np.float32, seed=3), randn((10, 1600), np.float32, seed=4)
    expected_dot = cpu.matmul(a, b, trans_b=True)
    for array in (x, g, a, b):
        array.flags.writeable = False
    assert x.size >= act._RELU.team_min
    np.testing.assert_array_equal(cpu.tanh(x), expected["tanh"])
    np.testing.assert_array_equal(cpu.relu(x), expected["relu"])
    np.testing.assert_array_equal(cpu.softplus(x, beta=1.5), expected["softplus"])
    np.testing.assert_array_equal(cpu.tanh_backward(g, x), expected["tanh_backward"])
    np.testing.assert_array_equal(cpu.matmul(a, b, trans_b=True), expected_dot)


@numba.njit
def _three_scalars(x, a, b, c, out):
    for i in range(x.size):
        out[i] = a * x[i] + b * c


def test_a_signature_no_template_has_is_left_to_the_other_paths():
    x = randn(70_000, np.float32)
    out = nan_like(x.size, np.float32)
    one = np.float32(1)
    assert not _team_spans.run(_three_scalars, (x, one, one, one, out), x.size)  # templates: two at most
    assert np.isnan(out).all()
