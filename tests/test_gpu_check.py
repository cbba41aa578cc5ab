"""bench/gpu_check.py without a GPU: it stops at once, with status 2 and one line saying why."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]


def test_without_a_gpu_it_exits_2_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA GPU here"), proc.stderr
    assert not (tmp_path / "out").exists()




def test_launches_through_fastkernel_and_numba_are_counted_once_each(monkeypatch):
    # On a GPU jitgrad's kernels launch through FastKernel, which calls Numba's dispatcher only for a new
    # signature: the training table's "launches per step" counts each launch once (the first device run
    # counted Numba's calls alone and read 7 for a LeNet-5 step of 54 kernels). Both paths end in the
    # driver launch numba.cuda.dispatcher imports as `launch`: the check counts that.
    import inspect

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import gpu_check
    from numba.cuda import dispatcher

    from jitgrad.kernels.cuda import _fastlaunch

    assert "launch(stream, config" in inspect.getsource(dispatcher._Kernel.launch)  # Numba's own path

    class Numba:  # the dispatcher FastKernel wraps: a new signature is typed, compiled and launched by Numba
        py_func = staticmethod(lambda *args: None)

        def __init__(self):
            self.overloads = {}

        def typeof_pyval(self, value):
            return dispatcher.CUDADispatcher.typeof_pyval(None, value)

        def __getitem__(self, config):
            def launch(*args):
                dispatcher.launch("stream", config, "cufunc", *args)  # what _Kernel.launch ends in
                types = tuple(self.typeof_pyval(a) for a in args)
                self.overloads[types] = SimpleNamespace(
                    argument_types=list(types), debug=False, cooperative=False, extensions=[],
                    _codelibrary=SimpleNamespace(get_cufunc=lambda: SimpleNamespace(kernel="cufunc")))
            return launch

    monkeypatch.setattr(gpu_check, "SIMULATOR", False)
    monkeypatch.setattr(dispatcher, "launch", lambda *args: None)
    monkeypatch.setattr(_fastlaunch, "_default_stream", lambda nd: "stream0")
    monkeypatch.setattr(_fastlaunch, "_launch_config", lambda nd, g, b: (g, b))
    kernel = _fastlaunch.FastKernel(Numba())
    with gpu_check.count_launches_and_syncs() as counts:
        kernel[1, 32](2.5)  # a new signature: Numba's path
        kernel[1, 32](3.5)  # a known one: FastKernel's driver call
        dispatcher.launch("stream", (1, 32), "cufunc")  # a kernel launched by Numba alone
    assert counts["launches"] == 3
    assert dispatcher.launch.__name__ == "<lambda>"  # put back
