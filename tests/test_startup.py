"""Start-up and exit costs: the collector paused while the kernels load (``jitgrad/_startup.py``), and
the quick interpreter exit (``jitgrad/kernels/cpu/_exit.py``: one collection, then ``gc.freeze()``).

The exit cases run their own interpreter: freezing the test process's objects
would change every later test's garbage collection.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import weakref

import pytest

from jitgrad._startup import gc_paused


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_exit_still_finalises_garbage_and_flushes_files_modules_hold(tmp_path):
    """What a shutdown must still do with the quick exit on: a garbage cycle with ``__del__`` is
    finalised, a file a module holds (never closed) is flushed, later atexit callbacks run first."""
    out = tmp_path / "out.txt"
    code = f"""
        import atexit, gc
        import jitgrad.kernels.cpu

        class Cycle:
            def __init__(self):
                self.me = self
            def __del__(self):
                with open({str(out)!r}, "a") as f:
                    f.write("finalised;")

        gc.disable()  # only the exit's collection may find the cycle
        Cycle()
        held = open({str(out)!r} + ".held", "w")
        held.write("flushed")
        atexit.register(lambda: print("user callback, frozen:", gc.get_freeze_count()))
    """
    done = _run(code)
    assert done.stdout.strip() == "user callback, frozen: 0", done.stdout
    assert out.read_text() == "finalised;"
    assert (tmp_path / "out.txt.held").read_text() == "flushed"


def test_reachable_and_old_cycles_are_finalised_only_on_the_usual_shutdown(tmp_path):
    """The difference the module doc states: a self-referencing global, and a cycle that became
    garbage in the oldest generation, are not finalised at exit."""
    out = tmp_path / "out.txt"
    code = f"""
        import gc, os
        import jitgrad.kernels.cpu

        fd = os.open({str(out)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

        class Cycle:
            def __init__(self):
                self.me = self
            def __del__(self, _write=os.write, _fd=fd):  # at shutdown imports and globals may be gone
                _write(_fd, b"finalised;")

        kept = Cycle()
        old = Cycle()
        gc.collect()
        gc.collect()  # old is in the oldest generation now
        del old
    """
    _run(code, JITGRAD_FAST_EXIT="0")
    assert out.read_text() == "finalised;finalised;"
    out.unlink()
    _run(code)
    assert out.read_text() == ""


def test_collect_and_freeze_freezes_live_objects_and_the_switch_turns_it_off():
    code = """
        import atexit, gc
        import jitgrad.kernels.cpu
        from jitgrad.kernels.cpu import _exit
        before = atexit._ncallbacks()
        _exit.install()  # a second install registers nothing
        assert atexit._ncallbacks() == before, (before, atexit._ncallbacks())
        _exit.collect_and_freeze()
        print(gc.get_freeze_count())
    """
    assert int(_run(code).stdout) > 1000  # Numba's registries and jitgrad's modules
    assert int(_run(code, JITGRAD_FAST_EXIT="0").stdout) == 0
    assert int(_run(code, JITGRAD_FAST_EXIT="off").stdout) == 0


class _Node:
    pass


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_paused_restores_the_collector_as_it_was(enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(KeyError), gc_paused():
            raise KeyError("inside")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_gc_paused_keeps_garbage_collectable_and_a_programs_frozen_set():
    with gc_paused():
        node = _Node()
        node.me = node  # a cycle: only the collector frees it
        ref = weakref.ref(node)
        del node
    assert ref() is not None and gc.get_freeze_count() == 0  # promoted, not frozen
    gc.collect()
    assert ref() is None
    # Another thread of the test process (a progress bar's monitor, a pool's worker) that drops a
    # frozen object between the two counts would change them: no thread switch in between.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            _Node()
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)


def test_loading_the_cpu_kernels_leaves_the_collector_on_and_nothing_frozen():
    code = """
        import gc
        import jitgrad
        from jitgrad.autograd.backend import get_backend
        get_backend("cpu").kernels.relu
        print(gc.isenabled(), gc.get_freeze_count())
    """
    assert _run(code).stdout.split() == ["True", "0"]


def test_every_cached_cpu_kernel_loads_without_the_compiler_set_up():
    """Every module-level cached dispatcher of ``jitgrad.kernels.cpu`` (both versions of a tiered
    kernel) has ``_cache_load.LoadingCache``: a first call that finds its kernel in the cache skips
    Numba's registry refresh (``kernels/cpu/_cache_load.py``)."""
    import jitgrad.kernels.cpu  # noqa: F401
    from numba.core.caching import FunctionCache
    from numba.core.dispatcher import Dispatcher

    from jitgrad.kernels.cpu import _cache_load

    seen = 0
    kernel_modules = [m for name, m in list(sys.modules.items()) if name.startswith("jitgrad.kernels.cpu.")]
    for module in kernel_modules:
        for value in vars(module).values():
            for d in _cache_load._dispatchers(value):
                if isinstance(d, Dispatcher) and isinstance(d._cache, FunctionCache):
                    assert type(d._cache) is _cache_load.LoadingCache, f"{module.__name__}: {d.py_func.__qualname__}"
                    seen += 1
    assert seen > 100  # the GEMM, conv, activation, softmax, optimizer ... kernels and tiered twins
    assert _cache_load.install(kernel_modules) == 0  # already installed: nothing changes


def test_a_cached_kernel_loads_and_runs_in_a_fresh_process_without_the_registries():
    """relu, leaky_relu and the GEMM driver compiled (or loaded) here, then loaded in a fresh
    interpreter: right results, loaded from the cache (no compile), and Numba's registry modules
    (``numba.np.linalg``, ``numba.typed.typeddict``), which only the refresh imports, never imported.
    A compile in that process still works (it refreshes first)."""
    import numpy as np

    from jitgrad.kernels import cpu

    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(4, 6)
    cpu.relu(x)
    cpu.leaky_relu(x, 0.1)
    cpu.matmul(x, x.T.copy())
    code = """
        import sys
        import numpy as np
        from jitgrad.kernels import cpu
        from jitgrad.kernels.cpu import activations
        x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(4, 6)
        assert np.array_equal(cpu.relu(x), np.maximum(x, 0))
        assert np.allclose(cpu.leaky_relu(x, 0.1), np.where(x > 0, x, 0.1 * x))
        assert np.allclose(cpu.matmul(x, x.T.copy()), x @ x.T, rtol=1e-5, atol=1e-5)
        hits = sum(activations._relu_kernel_serial._cache_hits.values())
        misses = sum(activations._relu_kernel_serial._cache_misses.values())
        print(hits, misses, "numba.np.linalg" in sys.modules, "numba.typed.typeddict" in sys.modules)
        import numba
        @numba.njit
        def twice(v):
            return 2 * v
        print(twice(np.ones(3)).sum(), "numba.np.linalg" in sys.modules)
    """
    first, second = _run(code).stdout.splitlines()
    assert first.split() == ["1", "0", "False", "False"], first
    assert second.split() == ["6.0", "True"], second


def test_a_loaded_kernel_parses_its_ir_only_when_a_compile_links_it():
    """A kernel loaded from the cache runs from its machine code alone: its LLVM IR for linking
    (``_cache_load.LazyLinkingLibrary``) stays unparsed until a new function that calls it compiles;
    that compile links it and gets the same results. With Numba's own loading, the parse and
    the walk of its symbols took ~0.14 s of a warm LeNet-5 start (15 kernels)."""
    import numpy as np

    from jitgrad.kernels import cpu

    cpu.relu(np.ones((2, 3), np.float32))  # compiled (or loaded) into the cache here
    code = """
        import numba
        import numpy as np
        from jitgrad.kernels import cpu
        from jitgrad.kernels.cpu import _cache_load, activations
        x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(4, 6)
        assert np.array_equal(cpu.relu(x), np.maximum(x, 0))
        kernel = activations._relu_kernel_serial
        (library,) = [cres.library for cres in kernel.overloads.values()]
        print(type(library).__name__, library._shared_bitcode is not None, library._shared_module is None,
              sum(kernel._cache_hits.values()), sum(kernel._cache_misses.values()))

        @numba.njit
        def relu_then_double(v, out):
            kernel(v, out)
            return 2 * out

        flat = x.reshape(-1)  # the kernel's own arguments: flat arrays
        print(np.array_equal(relu_then_double(flat, np.empty_like(flat)), 2 * np.maximum(flat, 0)),
              library._shared_bitcode is None, library._shared_module is not None)
    """
    loaded, linked = _run(code).stdout.splitlines()
    assert loaded.split() == ["LazyLinkingLibrary", "True", "True", "1", "0"], loaded
    assert linked.split() == ["True", "True", "True"], linked


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine not in ("x86_64", "AMD64"),
                    reason="the GEMM team runs on Linux x86-64 only")
def test_the_teams_jobs_load_as_the_kernels_do():
    """The GEMM team's product job and a span job (``numba.cfunc``s, ``_cache_load.cached_cfunc``) load
    from the cache in a fresh process without Numba's registry refresh, as the kernels do (with
    Numba's ``cfunc`` decorator each first job took 0.15-0.25 s more of a warm process), and run:
    a product on the team, ``tanh`` in spans."""
    code = """
        import sys
        import numpy as np
        from jitgrad.kernels.cpu import _cache_load, _team, _team_spans, activations
        a = np.linspace(-1, 1, 130 * 70, dtype=np.float32).reshape(130, 70)
        out = np.empty((130, 130), np.float32)
        assert _team.gemm_team(a, a, False, True, out, 2, np.zeros(1, np.float32), 0, _team.product_state(2))
        assert np.allclose(out, a @ a.T, rtol=1e-5, atol=1e-5)
        job = _team._PRODUCT_JOB[0]
        x = np.linspace(-3, 3, 1 << 15, dtype=np.float32)
        y = np.empty_like(x)
        assert _team_spans.run(activations._tanh_kernel_serial, (x, y), x.size)
        assert np.allclose(y, np.tanh(x), atol=1e-6)
        (span_job,) = _team_spans._JOBS.values()
        print(type(job._cache).__name__, job.cache_hits, span_job.cache_hits, "numba.np.linalg" in sys.modules)
    """
    # A first process fills the cache with whatever these calls compile (the jobs, and the span
    # driver of tanh, which no other test may have run before this one); the second loads it all.
    _run(code, NUMBA_NUM_THREADS="2")
    assert _run(code, NUMBA_NUM_THREADS="2").stdout.split() == ["LoadingCache", "1", "1", "False"]
