"""The 128x128 CUDA matmul kernel compiles to the code its speed rests on (no GPU needed).

Its 8x8 accumulators, operand registers and prefetch registers are
``cuda.local.array``s: they live in registers only when NVVM unrolls every loop
over them to constant indices. Anything else puts them in local memory (DRAM
behind the L1), and the kernel runs at a fraction of its speed on the GPU while
every simulator test still passes. So: float32 PTX with no local-memory traffic,
every shared-memory k step fully unrolled, and, from ptxas (same wheel as NVVM),
no spills and at most 128 registers a thread: two 256-thread blocks an SM.
"""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

import pytest

CC = (9, 0)


@pytest.fixture(scope="module")
def ptx(tmp_path_factory) -> tuple[str, Path]:
    from numba import cuda, types

    mm = importlib.import_module("jitgrad.kernels.cuda.matmul")
    arr = types.Array(types.float32, 2, "C")
    sig = (arr, arr, types.boolean, types.boolean, types.int64, types.int64, types.int64, arr)
    from types import SimpleNamespace

    from numba.cuda import dispatcher

    # As in test_float32_ptx.py: device functions ask the driver for the target; answer without one.
    mp = pytest.MonkeyPatch()
    mp.setattr(dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=CC))
    try:
        text, _ = cuda.compile_ptx(mm._matmul_big_kernel.py_func, sig, cc=CC)
    finally:
        mp.undo()
    path = tmp_path_factory.mktemp("ptx") / "matmul_big.ptx"
    path.write_text(text)
    return text, path


def test_big_tile_float32_ptx_keeps_its_arrays_in_registers(ptx):
    mm = importlib.import_module("jitgrad.kernels.cuda.matmul")
    text, _ = ptx
    local = [line.strip() for line in text.splitlines() if re.search(r"\b(ld|st)\.local\b", line)]
    assert not local, f"_matmul_big_kernel float32 uses local memory ({len(local)} accesses), e.g. {local[:3]}"
    assert ".local" not in text, "_matmul_big_kernel float32 declares a local-memory frame"
    # Two k-slices a loop iteration, each BIG_TILE_K rank-1 updates of 8x8: every one unrolled.
    fma = len(re.findall(r"\bfma\.rn\.f32\b", text))
    per_slice = mm.BIG_TILE_K * mm.BIG_THREAD_M * mm.BIG_THREAD_N
    assert fma == 2 * per_slice, f"expected the {2 * per_slice} FMAs of two unrolled k-slices, got {fma}"
    assert not re.search(r"\.f64\b", text), "float32 kernel computes in float64"
    assert "ld.shared.f32" in text, "the tile reads lost their shared address space (generic loads)"


def test_big_tile_float32_fits_two_blocks_an_sm_without_spills(ptx):
    _, path = ptx
    import nvidia.cuda_nvcc

    ptxas = Path(next(iter(nvidia.cuda_nvcc.__path__))) / "bin" / "ptxas"
    assert ptxas.is_file(), f"no ptxas at {ptxas}: install the 'dev' extra (nvidia-cuda-nvcc-cu12)"
    cubin = path.with_suffix(".cubin")
    done = subprocess.run([str(ptxas), f"-arch=sm_{CC[0]}{CC[1]}", "-v", str(path), "-o", str(cubin)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    registers = int(re.search(r"Used (\d+) registers", done.stderr).group(1))
    spills = [int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", done.stderr)]
    assert spills and not any(spills), done.stderr
    assert registers <= 128, f"{registers} registers a thread: one 256-thread block an SM, not two"
