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
    # counted Numba's calls alone and read 7 for a LeNet-5 step of 54 kernels).
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import gpu_check
    from numba.cuda import dispatcher

    from jitgrad.kernels.cuda._fastlaunch import FastKernel

    def launch(self, griddim, blockdim, signature):  # a new signature goes through Numba's launch
        if signature == "new":
            dispatcher.CUDADispatcher.call(None, signature)

    monkeypatch.setattr(gpu_check, "SIMULATOR", False)
    monkeypatch.setattr(dispatcher.CUDADispatcher, "call", lambda self, *args, **kwargs: None)
    monkeypatch.setattr(FastKernel, "_launch", launch)
    kernel = FastKernel(SimpleNamespace(py_func=launch))  # (only the wrapped function's name is read)
    with gpu_check.count_launches_and_syncs() as counts:
        kernel[1, 32]("new")
        kernel[1, 32]("known")
        dispatcher.CUDADispatcher.call(None, "numba alone")
    assert counts["launches"] == 3
    assert FastKernel._launch is launch  # put back
