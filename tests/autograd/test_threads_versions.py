"""Grad mode is per thread; a tensor saved for backward and modified in place afterwards is an error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import nn
from jitgrad.nn import functional as F


#: jitgrad's generator is global, as PyTorch's: seeding it and drawing the initial weights must not
#: interleave with another thread's (a thread switch there gave one run the other's weights).
_INIT = threading.Lock()


def _train(seed: int, steps: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = jg.tensor(rng.standard_normal((16, 5)).astype(np.float32))
    y = rng.integers(0, 3, 16)
    with _INIT:
        jg.manual_seed(seed)
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = jg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses + [float(p.data.sum()) for p in model.parameters()])


def test_grad_mode_is_thread_local():
    seen = {}
    entered, release = threading.Event(), threading.Event()

    def evaluator():
        with jg.no_grad():
            entered.set()
            release.wait(10)
            seen["evaluator"] = jg.is_grad_enabled()

    t = threading.Thread(target=evaluator)
    t.start()
    assert entered.wait(10)
    try:
        # The other thread is inside no_grad: this one still records the graph.
        assert jg.is_grad_enabled()
        w = jg.tensor([1.0, 2.0], requires_grad=True)
        assert (w * 3.0).requires_grad
    finally:
        release.set()
        t.join(10)
    assert seen["evaluator"] is False
    assert jg.is_grad_enabled()


def test_new_thread_starts_with_grad_enabled():
    seen = []
    with jg.no_grad():
        t = threading.Thread(target=lambda: seen.append(jg.is_grad_enabled()))
        t.start()
        t.join(10)
    assert seen == [True]


def test_two_threads_training_match_sequential_runs():
    sequential = [_train(1), _train(2)]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def worker(seed):
        try:
            results[seed] = _train(seed)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    stop = threading.Event()

    def evaluator():  # toggles grad mode all the time in a third thread
        while not stop.is_set():
            with jg.no_grad():
                pass

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
    noisy = threading.Thread(target=evaluator)
    noisy.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    noisy.join(10)
    assert not errors, errors
    np.testing.assert_array_equal(results[1], sequential[0])
    np.testing.assert_array_equal(results[2], sequential[1])


def test_backward_after_optimizer_step_on_a_saved_parameter_raises():
    layer = nn.Linear(3, 2)
    x = jg.tensor(np.ones((4, 3), np.float32), requires_grad=True)
    loss = F.relu(layer(x)).sum() + (layer.weight * layer.weight).sum()
    opt = jg.optim.SGD(layer.parameters(), lr=0.1)
    for p in layer.parameters():
        p.grad = jg.tensor(np.ones(p.shape, np.float32))
    opt.step()  # modifies layer.weight in place: the graph above saved it
    with pytest.raises(RuntimeError, match="modified in place after it was saved"):
        loss.backward()


def test_version_counter_counts_in_place_updates_and_fresh_graph_works():
    w = jg.tensor(np.ones(3, np.float32), requires_grad=True)
    assert w._version == 0
    opt = jg.optim.Adam([w], lr=0.1)
    w.grad = jg.tensor(np.ones(3, np.float32))
    opt.step()
    opt.step()
    assert w._version == 2
    w.grad = None
    loss = (w * w).sum()  # saved after the updates: fine
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * w.data)


def test_saved_output_modified_in_place_is_detected():
    x = jg.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    y = x.exp()  # exp saves its output
    loss = (y * 2.0).sum()
    y.data[...] = 0.0
    y.bump_version()
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_concurrent_kernels_on_the_workqueue_layer_do_not_abort():
    # Numba's workqueue layer aborts the process on concurrent parallel launches (old code: SIGABRT).
    code = textwrap.dedent("""
        import importlib, threading, numpy as np, numba
        import jitgrad.kernels.cpu as K
        a = np.ones((160, 160), np.float32)
        expected = a @ a
        size = importlib.import_module("jitgrad.kernels.cpu.activations")._PARALLEL_MIN_SIZE
        x = np.linspace(-4, 4, size, dtype=np.float32).reshape(-1, 256)  # sigmoid's parallel size
        expected_sigmoid = K.sigmoid(x)
        a64, bias64 = a.astype(np.float64), np.ones(160)  # float64: the OpenMP drivers, not the GEMM team
        expected_linear = K.linear(a64, a64, bias64)  # (locks its parallel launch itself, as matmul)
        bad = []
        def work():
            for _ in range(20):
                if not np.array_equal(K.matmul(a, a), expected):
                    bad.append(1)
                if not np.array_equal(K.linear(a64, a64, bias64), expected_linear):
                    bad.append(1)
                if not np.array_equal(K.sigmoid(x), expected_sigmoid):  # locks its parallel launch itself
                    bad.append(1)
        ts = [threading.Thread(target=work) for _ in range(3)]
        [t.start() for t in ts]; [t.join() for t in ts]
        print(numba.threading_layer(), len(bad))
    """)
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["workqueue", "0"]
