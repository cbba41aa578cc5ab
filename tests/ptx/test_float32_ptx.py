"""Float32 CUDA kernels compute in float32: every recorded launch compiled to PTX has no f64 instruction.

The simulator runs kernels as Python, so a ``1.0`` literal or a Python-float
scalar argument that silently promotes a float32 kernel to float64 arithmetic
passes every simulator test, yet runs at 1/64 of the speed on most GPUs and
rounds differently from the CPU kernel. This test sees what the GPU would run:
``make test-cuda`` records each kernel launch of the simulator session with its
argument types (``tests/cuda/conftest.py``), and here each launch that takes a
float32 array is compiled to PTX by NVVM (no GPU needed) and searched for f64
instructions.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

RECORDING = Path(os.environ.get("JITGRAD_RECORD_LAUNCHES",
                                Path(__file__).resolve().parents[2] / ".pytest_cache" / "cuda_launches.json"))
_F64 = re.compile(r"\.f64\b")


def _launches() -> list[dict]:
    if not RECORDING.is_file():
        return []
    return json.loads(RECORDING.read_text())


def _numba_type(desc):
    from numba import types
    from numba.np.numpy_support import from_dtype

    kind = desc[0]
    if kind == "tuple":
        return types.BaseTuple.from_types([_numba_type(d) for d in desc[1]])
    if kind == "array":
        return types.Array(from_dtype(np.dtype(desc[1])), desc[2], desc[3])
    name = desc[1]
    if name == "bool":
        return types.boolean
    if name == "int":
        return types.int64
    if name == "float":
        return types.float64
    return from_dtype(np.dtype(name))


def _nvvm_available() -> str | None:
    try:
        from numba import cuda

        def probe(a):
            a[0] = 1

        from numba import float32
        cuda.compile_ptx(probe, (float32[:],), cc=CC)
    except Exception as exc:  # pragma: no cover - depends on the install
        return f"{type(exc).__name__}: {exc}"
    return None


LAUNCHES = _launches()
#: Hopper, the GPU the project is timed on; any cc >= 6.0 gives the same answer here.
CC = (9, 0)


@pytest.fixture(autouse=True)
def _no_driver_needed(monkeypatch):
    # A kernel that calls a device function compiles that function for "the current device",
    # which asks the driver: answer for the target compute capability instead, so no GPU is needed.
    from types import SimpleNamespace

    import numba.cuda.dispatcher as dispatcher

    monkeypatch.setattr(dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=CC))


def test_recording_exists():
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") != "1", "run this file without the simulator"
    assert LAUNCHES, (f"no kernel launches recorded at {RECORDING}: run `make test-cuda` first "
                      "(it records the simulator session's launches)")
    problem = _nvvm_available()
    assert problem is None, f"NVVM cannot compile PTX here ({problem}); install the 'dev' extra"


@pytest.mark.parametrize("launch", LAUNCHES, ids=[f"{d['module'].rsplit('.', 1)[-1]}.{d['name']}:{i}"
                                                   for i, d in enumerate(LAUNCHES)])
def test_float32_launch_has_no_f64(launch):
    from numba import cuda

    kernel = getattr(importlib.import_module(launch["module"]), launch["name"])
    argtypes = tuple(_numba_type(d) for d in launch["args"])
    ptx, _ = cuda.compile_ptx(kernel.py_func, argtypes, cc=CC)
    f64 = [line.strip() for line in ptx.splitlines() if _F64.search(line) and not line.strip().startswith("//")]
    assert not f64, (f"{launch['module']}.{launch['name']}{argtypes} computes in float64 "
                     f"({len(f64)} f64 lines), e.g. {f64[:4]}")
