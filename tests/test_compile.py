"""python -m jitgrad.compile: tasks, the stamp that makes a warm start free, the progress it shows."""

from __future__ import annotations

import io

import numpy as np
import pytest

from jitgrad import compile as jc


@pytest.fixture
def fake_tasks(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """Tasks that only record their calls, and a cache directory of the test's own."""
    calls: list[tuple[str, str]] = []
    tasks = {name: (lambda dtype, name=name: calls.append((name, dtype.name))) for name in jc.TASKS}
    monkeypatch.setattr(jc, "TASKS", tasks)
    monkeypatch.setenv("JITGRAD_CACHE_DIR", str(tmp_path))
    return calls


def test_every_task_runs_once_per_dtype_with_the_full_step_last(fake_tasks) -> None:
    out = io.StringIO()
    jc.compile_kernels(("float32", "float64"), jobs=1, file=out)
    assert sorted(fake_tasks) == sorted((name, d) for name in jc.TASKS for d in ("float32", "float64"))
    assert [name for name, _ in fake_tasks[-2:]] == ["training step", "training step"]
    # The bar names what is compiling (never a bare 0 %).
    assert "conv2d backward weight float32" in out.getvalue()


def test_ensure_compiled_compiles_once_then_only_checks_the_stamp(fake_tasks, tmp_path) -> None:
    out = io.StringIO()
    assert not jc.is_compiled()
    assert jc.ensure_compiled(jobs=1, file=out) is True
    assert "compiling CPU kernels" in out.getvalue() and str(tmp_path) in out.getvalue()
    assert jc.is_compiled() and not jc.is_compiled(("float64",))
    n_calls = len(fake_tasks)
    assert jc.ensure_compiled(jobs=1, file=io.StringIO()) is False
    assert len(fake_tasks) == n_calls
    # float64 is its own stamp: compiled only when asked for.
    out = io.StringIO()
    assert jc.ensure_compiled(["float64"], jobs=1, progress=False, file=out) is True
    # Without the bar the user still reads that kernels compile, and for how long.
    assert out.getvalue().splitlines()[0].startswith("jitgrad: compiling CPU kernels")
    assert out.getvalue().splitlines()[-1].startswith("jitgrad: kernels compiled in")
    assert {d for _, d in fake_tasks[n_calls:]} == {"float64"}


def test_main_where_and_already_compiled(fake_tasks, tmp_path, capsys) -> None:
    assert jc.main(["--where"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert jc.main(["--jobs", "1", "--quiet"]) == 0
    assert len(fake_tasks) == len(jc.TASKS)
    assert jc.main(["--jobs", "1"]) == 0
    assert "already compiled" in capsys.readouterr().out
    assert len(fake_tasks) == len(jc.TASKS)
    assert jc.main(["--jobs", "1", "--force", "--quiet"]) == 0
    assert len(fake_tasks) == 2 * len(jc.TASKS)


@pytest.mark.parametrize("dtypes, error, match", [
    (("float16",), ValueError, "float32 or float64, got float16"),
    ((), ValueError, "dtypes is empty"),
    (("nonsense",), TypeError, "dtypes must name float32 or float64, got 'nonsense'"),
])
def test_bad_dtypes(dtypes, error, match) -> None:
    with pytest.raises(error, match=match):
        jc.is_compiled(dtypes)


def test_bad_jobs(fake_tasks) -> None:
    with pytest.raises(ValueError, match="jobs must be a positive int, got 0"):
        jc.compile_kernels(jobs=0)
    with pytest.raises(SystemExit):
        jc.main(["--jobs", "0"])


def test_a_real_task_compiles_in_a_worker_process(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # The pooling task in a spawned worker into a fresh cache:
    # the worker processes find the task by name and write Numba's cache files.
    monkeypatch.setenv("JITGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jc, "TASKS", {"max_pool2d + relu": jc.TASKS["max_pool2d + relu"]})
    jc.compile_kernels(("float32",), jobs=2, progress=False)
    assert list(tmp_path.rglob("*.nbi")), "no Numba index written into the cache directory"
    assert jc.is_compiled()


def test_clear_removes_this_checkouts_kernels_and_stamps_only(fake_tasks, tmp_path) -> None:
    from numba.core.caching import UserProvidedCacheLocator

    sub = UserProvidedCacheLocator.get_suitable_cache_subpath(jc.__file__)
    ours, older = (tmp_path / versions / sub for versions in ("kernels-0123456789abcdef", "kernels-00ld"))
    for folder in (ours, older):
        folder.mkdir(parents=True)
        (folder / "kernel.nbi").write_bytes(b"x")
    other = tmp_path / "kernels-0123456789abcdef" / "cpu_0123456789abcdef"  # another checkout's kernels
    other.mkdir()
    jc.compile_kernels(jobs=1, progress=False)
    assert jc.is_compiled()
    assert jc.main(["--clear", "--quiet"]) == 0
    assert not ours.exists() and not older.parent.exists() and other.is_dir() and not jc.is_compiled()


class _FakeDispatcher:
    def __init__(self, module: str) -> None:
        def kernel() -> None:
            pass

        kernel.__module__ = module
        self.py_func = kernel


def _compile_event(module: str) -> None:
    from numba.core import event

    with event.trigger_event("numba:compile", data=dict(dispatcher=_FakeDispatcher(module), args=(),
                                                        return_type=None)):
        pass


def test_first_jitgrad_compile_prints_one_notice(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from jitgrad.kernels.cpu import _compile_notice

    monkeypatch.setattr(_compile_notice._LISTENER, "shown", False)
    monkeypatch.delenv(_compile_notice.ENV_VAR, raising=False)
    _compile_event("some_user_module")  # a user's own @njit function: not ours to announce
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(_compile_notice.ENV_VAR, "0")
    _compile_event("jitgrad.kernels.cpu.pooling")
    assert capsys.readouterr().err == ""
    monkeypatch.delenv(_compile_notice.ENV_VAR)
    _compile_event("jitgrad.kernels.cpu.pooling")
    _compile_event("jitgrad.kernels.cpu._conv")
    err = capsys.readouterr().err
    assert err.count("jitgrad: compiling CPU kernels") == 1
    assert "python -m jitgrad.compile" in err


def test_the_tasks_reach_every_tiered_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    # python -m jitgrad.compile must leave every parallel driver in the cache: one it never runs
    # (a product size no task reaches) compiles mid-run in a user's process instead.
    from jitgrad.kernels.cpu import _tier

    ran: set[str] = set()
    monkeypatch.setattr(_tier, "_write_marker", ran.add)  # called after each run of a parallel version
    for name in jc.TASKS:
        jc._run_task(name, "float32", "parallel")
    kernels = {name for name in _tier.REGISTRY if name.startswith("jitgrad.")}  # not other tests' kernels
    assert kernels and kernels <= ran, sorted(kernels - ran)


def test_the_pooling_task_reaches_relus_span_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    # LeNet-5's first ReLU at the examples' batch 128 runs on the GEMM team, in span jobs (compiled
    # functions of their own, not dispatchers): the compile must leave them in the cache too.
    import numba

    from jitgrad.kernels.cpu import _team, _team_spans, activations

    if not _team.enabled() or numba.get_num_threads() < 2:
        pytest.skip("the GEMM team runs with two threads on Linux x86-64")
    monkeypatch.setattr(_team_spans, "_JOBS", {})
    jc._run_task("max_pool2d + relu", "float32", "parallel")
    kernels = {kernel for kernel, dtype in _team_spans._JOBS if dtype == np.float32}
    assert {activations._relu_kernel_serial, activations._relu_backward_kernel_serial} <= kernels


def test_the_step_task_trains_the_examples_resnet_too() -> None:
    # make's compile covers examples/mnist_cnn.py's third model (batch norm, padded and strided
    # convolutions, residual sums): the step task loads it from the checkout's examples.
    (model,) = jc._example_resnet()
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"BatchNorm2d", "GlobalAvgPool", "Conv2d"} <= kinds, kinds
