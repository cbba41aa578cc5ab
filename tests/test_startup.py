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
