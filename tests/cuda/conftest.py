"""CUDA tests: a real GPU, or Numba's simulator (``NUMBA_ENABLE_CUDASIM=1`` before numba is imported).

Nothing here is skipped: without a GPU and without the simulator every test
errors with a message that says how to run them. Under the simulator each CUDA
thread is a Python thread, so the tests use tiny shapes; the fixture below
shrinks threads per block and the grid cap so that the multi-block, tail and
grid-stride paths run even on those shapes (on a real GPU too: same code path).
"""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad.cuda
from jitgrad import config
from jitgrad.kernels.cuda import _launch


@pytest.fixture(autouse=True)
def cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Require CUDA (GPU or simulator); use 8 threads per block and at most 3 blocks per launch."""
    jitgrad.cuda.require_cuda()
    monkeypatch.setattr(config, "cuda_threads_per_block", 8)
    monkeypatch.setattr(_launch, "MAX_BLOCKS", 3)


def dev(a: np.ndarray):
    """Host array to device array."""
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(a))


def host(d) -> np.ndarray:
    """Device array to host array."""
    return d.copy_to_host()


# ----------------------------------------------------------------------------- launch recording
#
# With JITGRAD_RECORD_LAUNCHES=<file> under the simulator, every kernel launch of
# this session is recorded (kernel, argument types) and written to <file> at the
# end. tests/ptx/test_float32_ptx.py compiles each recorded float32 launch to PTX
# with NVVM and holds it to "float32 stays float32" (no f64 instruction), which the
# simulator alone cannot see: it runs kernels as Python.

_LAUNCHES: dict[tuple, dict] = {}


def _describe(arg):
    if hasattr(arg, "dtype") and hasattr(arg, "ndim") and getattr(arg, "ndim", 0) > 0:
        layout = "C" if arg.flags["C_CONTIGUOUS"] else ("F" if arg.flags["F_CONTIGUOUS"] else "A")
        return ["array", np.dtype(arg.dtype).str, int(arg.ndim), layout]
    if isinstance(arg, (bool, np.bool_)):
        return ["scalar", "bool"]
    if isinstance(arg, np.generic):
        return ["scalar", np.dtype(type(arg)).str]
    if isinstance(arg, int):
        return ["scalar", "int"]
    if isinstance(arg, float):
        return ["scalar", "float"]
    if isinstance(arg, tuple):
        return ["tuple", [_describe(a) for a in arg]]
    return ["other", type(arg).__name__]


def pytest_configure(config):  # noqa: D103 - pytest hook
    import os

    if not os.environ.get("JITGRAD_RECORD_LAUNCHES") or os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        return
    from numba.cuda.simulator import kernel as sim_kernel

    original = sim_kernel.FakeCUDAKernel.__call__

    def recording_call(self, *args):
        if not self._device and not sim_kernel._kernel_context:
            described = [_describe(a) for a in args]
            if any(d[0] == "array" and d[1] == "<f4" for d in described):
                key = (self.fn.__module__, self.fn.__qualname__, repr(described))
                _LAUNCHES.setdefault(key, {"module": self.fn.__module__, "name": self.fn.__qualname__,
                                           "args": described})
        return original(self, *args)

    sim_kernel.FakeCUDAKernel.__call__ = recording_call


def pytest_sessionfinish(session, exitstatus):  # noqa: D103 - pytest hook
    import json
    import os

    path = os.environ.get("JITGRAD_RECORD_LAUNCHES")
    if path and _LAUNCHES:
        with open(path, "w") as f:
            json.dump(sorted(_LAUNCHES.values(), key=lambda d: (d["module"], d["name"], repr(d["args"]))), f,
                      indent=0)
