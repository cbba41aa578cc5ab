"""jitgrad.distributed without a launcher: a world of one process, MPI never loaded; argument errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

import jitgrad
import jitgrad.distributed as dist
from jitgrad import nn
from jitgrad.distributed import world as world_module
from jitgrad.nn.functional import cross_entropy
from jitgrad.nn.training import Callback, History, TrainingState

LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_ID",
                      "JITGRAD_DISTRIBUTED")


def test_without_a_launcher_the_world_is_one_process_and_mpi_is_never_loaded():
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    code = ("import sys, jitgrad.distributed as d; d.init(); d.init(); "
            "print(d.is_initialized(), d.get_rank(), d.get_world_size(), d.get_local_rank(), d.is_main_process(), "
            "'mpi4py.MPI' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "0", "1", "0", "True", "False"]


@pytest.mark.parametrize("env, expected", [
    ({}, False), ({"OMPI_COMM_WORLD_SIZE": "2"}, True), ({"PMI_SIZE": "4"}, True), ({"PMIX_RANK": "0"}, True),
    ({"SLURM_STEP_ID": "0"}, True), ({"PMIX_RANK": "0", "JITGRAD_DISTRIBUTED": "0"}, False),
    ({"JITGRAD_DISTRIBUTED": "1"}, True),
])
def test_launcher_detection(monkeypatch, env, expected):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert dist.launched_by_mpi() is expected


def test_timeouts_are_validated(monkeypatch):
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        dist.init(timeout=0)
    monkeypatch.setenv("JITGRAD_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="JITGRAD_DIST_TIMEOUT must be a positive number of seconds, got 'soon'"):
        world_module._timeout_from_env()
    monkeypatch.setenv("JITGRAD_DIST_TIMEOUT", "2.5")
    assert world_module._timeout_from_env() == 2.5


def test_collectives_of_one_rank_return_their_input():
    a = np.array([1.0, -2.0], dtype=np.float32)
    for op in ("sum", "mean", "max", "min"):
        assert dist.all_reduce(a, op) is a
    np.testing.assert_array_equal(a, [1.0, -2.0])
    t = jitgrad.tensor([3.0])
    assert dist.all_reduce(t, "mean") is t and t.item() == 3.0
    assert dist.all_reduce(4) == 4 and dist.all_reduce(4, "mean") == 4.0
    assert dist.broadcast(a) is a and dist.broadcast({"k": 1}) == {"k": 1}
    assert dist.all_gather_object("x") == ["x"]
    dist.barrier()


@pytest.mark.parametrize("call, error, message", [
    (lambda: dist.all_reduce(np.zeros(2), "avg"), ValueError, "op must be one of 'sum', 'mean', 'max', 'min', got 'avg'"),
    (lambda: dist.all_reduce(np.zeros(2, np.int64), "mean"), TypeError, "op='mean' needs a floating-point array"),
    (lambda: dist.all_reduce([1.0, 2.0]), TypeError, "expected a Tensor, NumPy array, CUDA device array or number, got list"),
    (lambda: dist.all_reduce(np.broadcast_to(np.zeros(1), (2,))), ValueError, "the array is read-only"),
    (lambda: dist.broadcast(np.zeros(2), src=1), ValueError, r"src must be a rank in \[0, 1\), got 1"),
    (lambda: dist.DistributedDataParallel("model"), TypeError, "module must be an nn.Module, got str"),
    (lambda: dist.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=0), ValueError,
     "bucket_cap_mb must be a positive number, got 0"),
    (lambda: dist.reduce_metrics([1.0]), TypeError, "logs must be a dict, got list"),
    (lambda: dist.reduce_metrics({"loss": 1.0}, weight=-1), ValueError, "weight must be a number >= 0, got -1"),
    (lambda: dist.OnMainProcess(print), TypeError, "expected a Callback, got builtin_function_or_method"),
])
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _model():
    nn.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_ddp_of_one_rank_gives_the_plain_gradients_and_accumulates_under_no_sync():
    x = jitgrad.tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    y = np.array([0, 1, 1, 0, 1])
    plain, wrapped = _model(), dist.DistributedDataParallel(_model())
    assert "world_size=1" in repr(wrapped) and "Linear(3 => 4)" in repr(wrapped)
    for model in (plain, wrapped):
        cross_entropy(model(x), y).backward()
    for p, q in zip(plain.parameters(), wrapped.module.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    with wrapped.no_sync():
        cross_entropy(wrapped(x), y).backward()
    assert wrapped._sync
    for p, q in zip(plain.parameters(), wrapped.module.parameters()):
        np.testing.assert_allclose(2 * p.grad.numpy(), q.grad.numpy(), rtol=1e-6)


def test_metric_reduction_and_main_process_callbacks_with_one_rank():
    assert dist.reduce_metrics({"loss": 0.5, "accuracy": 0.9, "lr": 0.1, "time": 2.0}) == \
        {"loss": 0.5, "accuracy": 0.9, "lr": 0.1, "time": 2.0}
    history = History()
    history.record(0, {"loss": 0.25})
    state = TrainingState(_model(), None, history, 1)
    logs = {"loss": 0.25}
    dist.MetricReducer().on_epoch_end(state, logs)
    assert history["loss"] == [0.25]

    class Recorder(Callback):
        calls = []

        def on_epoch_end(self, state, logs):
            self.calls.append(logs)

    dist.OnMainProcess(Recorder()).on_epoch_end(state, logs)
    assert Recorder.calls == [logs]
