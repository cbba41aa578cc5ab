"""The SIMD path follows the CPU Numba compiles for, and its kernels use that path's vector registers.

Each check runs in a subprocess: Numba reads ``NUMBA_CPU_NAME`` and
``NUMBA_CPU_FEATURES`` once, at import. A forced AVX-512 target is only
compiled (never run), so these tests pass on any x86-64 machine; the AVX2
kernels are also run, on hosts that have AVX2.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jitgrad.kernels.cpu import _isa

x86_only = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                              reason="forced x86 targets need an x86-64 LLVM")
_HOST_FEATURES = _isa._parse_features(_isa.target_cpu()[1])

# Compiles the micro-kernel and the dot kernel for one signature each (no call: the target may
# not be this CPU) and reports the path and the FMA instructions of their assembly.
_PROBE = r"""
import json, re
from numba import types
from jitgrad.kernels.cpu import _conv_weight, _gemm, _gemm_dot, _isa
dtype = types.float32 if "{dtype}" == "float32" else types.float64
arr, i, b = dtype[::1], types.int64, types.boolean
gemm_sig = (i, arr, i, i, i, arr, i, i, arr, i, i, i, i, b, arr, i, b)
dot_sig = (arr, i, i, i, arr, i, i, i, i, i, i, i, arr, i)
out = {{"path": _isa.ISA.name, "mr": _gemm.MR, "dot_rows": _conv_weight.DOT_ROWS}}
for name, fn, sig in (("gemm", _gemm.micro_kernel, gemm_sig), ("dot", _conv_weight.dot_tile, dot_sig)):
    fn.compile(sig)
    asm = fn.inspect_asm(sig)
    out[name] = re.findall(r"\bvfmadd\w*\s+[^\n]*", asm)
block_sig = (arr, i, i, i, i, arr, i, i, i, i, i, i, i, i, i, i, arr, i, i, b, arr, b, i)
_gemm.gemm_block.compile(block_sig)
body = _gemm.gemm_block.inspect_asm(block_sig).split("cpython", 1)[0]  # the native function, not its wrapper
out["block_refcount_sites"] = re.findall(r"NRT_(?:incref|decref)", body)
# Vector register copies in gemm_block's straight inner loops of full-height two-vector tiles (a
# jump back to a label, no label or jump between, at least 2 * MR FMAs; bench/gemm_mca.py's parser):
# instructions the FMAs wait for.
import sys
sys.path.insert(0, {bench!r})
from gemm_mca import register_copies, straight_loops
full_loops = [loop for _, loop in straight_loops(body) if sum("vfmadd" in x for x in loop) >= 2 * _gemm.MR]
out["block_loop_copies"] = [copy for loop in full_loops for copy in register_copies(loop)]
out["block_loop_sizes"] = [[len(loop), sum("vfmadd" in x for x in loop)] for loop in full_loops]
m2 = dtype[:, ::1]
_gemm_dot.gemm_dot.compile((m2, m2, m2, i, i))
out["rowdot"] = re.findall(r"\bvfmadd\w*\s+[^\n]*", _gemm_dot.gemm_dot.inspect_asm((m2, m2, m2, i, i)))
print("RESULT" + json.dumps(out))
"""


def forced_env(cpu_name: str | None, tmp_path=None) -> dict:
    """The environment of a fresh interpreter compiled for ``cpu_name`` (``None``: the host), with its
    own cache in ``tmp_path``."""
    env = dict(os.environ)
    env.pop("NUMBA_CPU_FEATURES", None)
    env.pop("NUMBA_CPU_NAME", None)
    if cpu_name is not None:
        # Empty features: the named CPU's own feature set, not the host's.
        env["NUMBA_CPU_NAME"] = cpu_name
        env["NUMBA_CPU_FEATURES"] = ""
    if tmp_path is not None:
        # A fresh cache, so the kernels are compiled (a cached function has no assembly to inspect).
        # jitgrad.config takes JITGRAD_CACHE_DIR before NUMBA_CACHE_DIR, and the suite's own is
        # set: with NUMBA_CACHE_DIR alone the probe used (and filled) the suite's cache, and a
        # second run loaded its kernels from there and found no FMA at all.
        env["JITGRAD_CACHE_DIR"] = env["NUMBA_CACHE_DIR"] = str(tmp_path)
    return env


def run_forced(cpu_name: str | None, script: str, tmp_path=None) -> dict:
    """Run ``script`` in a fresh interpreter compiled for ``cpu_name`` (``None``: the host); return the
    JSON it printed after ``RESULT``."""
    proc = subprocess.run([sys.executable, "-c", script], env=forced_env(cpu_name, tmp_path), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def probe(cpu_name: str | None, dtype: str = "float32", tmp_path=None) -> dict:
    return run_forced(cpu_name, _PROBE.format(dtype=dtype, bench=str(Path(__file__).resolve().parents[2] / "bench")),
                      tmp_path)


def registers(fmas: list[str]) -> set[str]:
    return {m[:3] for fma in fmas for m in re.findall(r"%?([xyz]mm)\d+", fma)}


# One compile per target costs ~10 s on a quiet 2-core machine: the default suite compiles one
# target per x86 path; the other CPU names and the float64 tiles run with the slow tests.
@x86_only
@pytest.mark.parametrize("cpu_name,path,dtype,reg,mr,dot_rows", [
    ("haswell", "avx2", "float32", "ymm", 6, 4),
    pytest.param("znver3", "avx2", "float64", "ymm", 6, 4, marks=pytest.mark.slow),
    ("skylake-avx512", "avx512", "float32", "zmm", 8, 8),
    pytest.param("icelake-server", "avx512", "float64", "zmm", 8, 8, marks=pytest.mark.slow),
])
def test_forced_cpu_picks_path_and_vector_registers(cpu_name, path, dtype, reg, mr, dot_rows, tmp_path):
    out = probe(cpu_name, dtype, tmp_path)
    assert (out["path"], out["mr"], out["dot_rows"]) == (path, mr, dot_rows)
    # Every FMA of the hot loops works on full-width vectors of the path (no scalar or half-width ones).
    assert registers(out["gemm"]) == {reg}, out["gemm"]
    assert registers(out["dot"]) == {reg}, out["dot"]
    # One FMA per accumulator per step (LLVM may unroll a loop, never drop or split FMAs): 2 * mr a
    # step of the two full-height loops (A packed, A in place), 6 or 8 of the edge tiles' loop (3 or
    # 4 rows), mr of the narrow (one-vector) loop; each loop at least once.
    assert len(out["gemm"]) % 2 == 0 and len(out["gemm"]) >= 2 * mr + 2 * mr + 6 + mr
    assert len(out["dot"]) % (3 * dot_rows) == 0 and len(out["dot"]) >= 3 * dot_rows
    # The tile loop of gemm_block counts no references (``_gemm_simd.data_pointer``): each count was an
    # atomic operation and a call that spilled the 2 * mr accumulators, ~150 cycles a tile. What is left
    # is one site each for the arguments at entry and exit (with arrays in the loop: 9 sites).
    assert len(out["block_refcount_sites"]) <= 2, out["block_refcount_sites"]
    # No accumulator moves through spare registers in the tile loops: with 12 accumulators in 16 ymm
    # registers LLVM moved two of them every k of the AVX2 packed loop (27 instructions per k for
    # 12 FMAs, where a four-wide core issues 22 in the FMAs' 6 cycles) until it ran two k a turn.
    assert out["block_loop_copies"] == [], out["block_loop_copies"]
    # The row-dot kernel of skinny a @ b.T (_gemm_dot): its 3 x 4 tile, on full-width vectors.
    assert registers(out["rowdot"]) == {reg}, out["rowdot"]
    assert len(out["rowdot"]) % 12 == 0 and len(out["rowdot"]) >= 12


# Runs the GEMM and conv kernels compiled for haswell on this CPU and compares them with float64 NumPy:
# on an AVX-512 host (CI's) the AVX2 tile is otherwise only compiled, never run. The shapes reach
# what only that path has: the 6-row tile's three heights (16 = 6 + 6 + 4: the 4-row loop; 10 = 6 + 4;
# 64 = 60 + 4), B taller than three tiles packed rather than read in place, an odd K on the packed
# loop (two k a turn on this tile, then the last one), B in place at up to three tiles, a B packed at
# a 4 KiB row pitch, shallow and narrow products, the parallel driver, the row-dot kernel (a @ b.T,
# skinny and deep), and a convolution's three products.
_RUN_FORCED = r"""
import importlib, json
import numpy as np
from jitgrad.kernels.cpu import _isa
mm = importlib.import_module("jitgrad.kernels.cpu.matmul")
cv = importlib.import_module("jitgrad.kernels.cpu.conv")
rconv = importlib.import_module("jitgrad.kernels.reference.conv")
rng = np.random.default_rng(7)
worst = {}

def record(name, got, want):
    assert got.shape == want.shape, (name, got.shape, want.shape)
    worst[name] = float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))

shapes = [(16, 150, 100), (64, 97, 200), (10, 40, 1024), (40, 9, 64), (130, 84, 10), (200, 300, 260), (7, 300, 130)]
for dtype in (np.float32, np.float64):
    for m, k, n in shapes if dtype == np.float32 else shapes[:2] + shapes[5:6]:
        for ta in (False, True):
            for tb in (False, True):
                a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
                record(f"matmul {np.dtype(dtype).name} {m}x{k}x{n} {'T' if ta else 'N'}{'T' if tb else 'N'}",
                       mm.matmul(a, b, trans_a=ta, trans_b=tb), want)
x = rng.standard_normal((3, 6, 14, 14)).astype(np.float32)
w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
bias = rng.standard_normal(16).astype(np.float32)
x64, w64, b64 = x.astype(np.float64), w.astype(np.float64), bias.astype(np.float64)
y = cv.conv2d(x, w, bias, padding=1)
record("conv2d forward", y, rconv.conv2d(x64, w64, b64, padding=1))
g = rng.standard_normal(y.shape).astype(np.float32)
record("conv2d input gradient", cv.conv2d_backward_input(g, w, input_shape=x.shape, padding=1),
       rconv.conv2d_backward_input(g.astype(np.float64), w64, input_shape=x.shape, padding=1))
gw, gb = cv.conv2d_backward_weight(x, g, weight_shape=w.shape, padding=1)
rw, rb = rconv.conv2d_backward_weight(x64, g.astype(np.float64), weight_shape=w.shape, padding=1)
record("conv2d weight gradient", gw, rw)
record("conv2d bias gradient", gb, rb)
rpool = importlib.import_module("jitgrad.kernels.reference.pooling")
xp = np.maximum(rng.standard_normal((4, 8, 12, 13)), 0).astype(np.float32)  # ReLU zeros: tied windows
for pool_kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)):  # pairs path on SSE; clipped
    yp, ip = importlib.import_module("jitgrad.kernels.cpu.pooling").max_pool2d(xp, **pool_kw)
    yr, ir = rpool.max_pool2d(xp, **pool_kw)
    record(f"max_pool2d {pool_kw['kernel_size']}", np.concatenate([yp.ravel(), ip.ravel().astype(np.float32)]),
           np.concatenate([yr.ravel(), ir.ravel().astype(np.float32)]))
ef = importlib.import_module("jitgrad.kernels.cpu._elementary")
print("RESULT" + json.dumps({"path": _isa.ISA.name, "mr": importlib.import_module("jitgrad.kernels.cpu._gemm").MR,
                              "worst": worst, "tanh_lanes": ef.TANH_LANES,
                              "gelu_tables": [ef.GELU_LANES, ef.HAS_VGELU_GRAD]}))
"""


_needs_avx2 = pytest.mark.skipif(not (_HOST_FEATURES.get("avx2") and _HOST_FEATURES.get("fma")),
                                 reason="running AVX2 code needs a CPU with AVX2 and FMA")


def _assert_matches_numpy(worst: dict) -> None:
    """Every product of ``_RUN_FORCED`` within its dtype's error of float64 NumPy."""
    assert len(worst) == 7 * 4 + 3 * 4 + 4 + 2
    for name, err in worst.items():
        # float32 sums of up to 300 products of unit normals, against float64; float64 to its own rounding
        assert err < (1e-5 if "float64" not in name else 1e-13), (name, err)


@x86_only
@_needs_avx2
def test_forced_avx2_kernels_match_numpy(tmp_path):
    out = run_forced("haswell", _RUN_FORCED, tmp_path)
    assert (out["path"], out["mr"]) == ("avx2", 6)
    # tanh and the erf-form GELU's forward by 8-entry tables (one ymm register each); GELU's backward
    # by tables on AVX-512 alone.
    assert (out["tanh_lanes"], out["gelu_tables"]) == (8, [8, False])
    _assert_matches_numpy(out["worst"])


# The path without AVX (sse: 128-bit vectors, a multiply and an add for each multiply-add), run on any
# x86-64 CPU: x86-64-v2 is NumPy 2.4's own baseline (SSE4.2), the oldest CPU a user of it can have.
# Elsewhere it was only compiled (test_generic_x86_takes_the_sse_path); ~20 s on 2 cores.
@x86_only
def test_forced_sse_kernels_match_numpy(tmp_path):
    out = run_forced("x86-64-v2", _RUN_FORCED, tmp_path)
    assert (out["path"], out["mr"]) == ("sse", 6)
    assert (out["tanh_lanes"], out["gelu_tables"]) == (0, [0, False])  # no tables without AVX
    _assert_matches_numpy(out["worst"])


@x86_only
@_needs_avx2
def test_forced_avx2_elementwise_suites_pass(tmp_path):
    # The activation, elementary-function and softmax suites, compiled for haswell: those kernels pick
    # variants by path (AVX-512's tables, vector widths). A forced-AVX2 run of the CPU suite found a
    # failure only that path has (the tanh twins patched twice under two names); on an AVX-512 host
    # nothing else would run them. ~1 minute on 2 cores, compile included.
    root = Path(__file__).resolve().parents[2]
    files = [str(root / "tests" / "kernels" / name) for name in ("test_activations.py", "test_elementary.py",
                                                                 "test_softmax.py")]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files],
                          env=forced_env("haswell", tmp_path), cwd=root, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(r"\d+ passed", proc.stdout), proc.stdout[-500:]


# Every elementary function's loop, compiled for an AVX-512 CPU (not run): packed arithmetic per function.
_ELEMENTARY_LOOPS = r"""
import json, sys
sys.path.insert(0, {root!r})
from tests.helpers import elementary_loop_asm, packed_vector_ops
from tests.kernels.test_elementary import NAMES
print("RESULT" + json.dumps({{name: packed_vector_ops(elementary_loop_asm(name)) for name in NAMES}}))
"""


@x86_only
def test_forced_avx512_elementary_loops_vectorise(tmp_path):
    # test_elementary checks the host's path; this one AVX-512's on any x86 host. Found there first:
    # Python 3.12 left log1pexp's loop scalar (see _elementary._select); ~10 s on 2 cores.
    root = str(Path(__file__).resolve().parents[2])
    counts = run_forced("skylake-avx512", _ELEMENTARY_LOOPS.format(root=root), tmp_path)
    assert len(counts) == 10
    assert {name: n for name, n in counts.items() if n < 8} == {}


def _instructions_per_fma(cpu_name: str, tmp_path) -> float:
    """The most instructions per FMA among gemm_block's full-height float32 tile loops compiled for ``cpu_name``."""
    out = probe(cpu_name, "float32", tmp_path)
    assert out["path"] == "avx2" and out["block_loop_sizes"], out
    return max(n / fmas for n, fmas in out["block_loop_sizes"])


# On a Zen 3 host jitgrad compiles with another CPU's tuning (config.TUNE_CPU): LLVM's own znver3
# tuning unrolled the AVX2 tile's loops into ~80 instructions per 24 FMAs (3.4 an FMA: loads,
# address arithmetic and moves a four-wide core issues beside the FMAs), and one Zen 3 thread ran
# the GEMM at 47-50 GFLOP/s against 59-64 with znver2's tuning. The tuning the table picks keeps
# every full-height loop at two instructions an FMA at most (the FMA, its broadcast or B load).
@x86_only
def test_zen3_tuning_keeps_the_tile_loops_tight(tmp_path):
    from jitgrad import config

    assert _instructions_per_fma(config.TUNE_CPU["znver3"], tmp_path) <= 2.25


# What the table works around: if this fails, LLVM's znver3 tuning was fixed, and the entry can go.
@x86_only
@pytest.mark.slow
def test_zen3_own_tuning_still_loosens_the_tile_loops(tmp_path):
    assert _instructions_per_fma("znver3", tmp_path) > 3.0


@x86_only  # the host names it swaps in are x86 CPUs: an ARM LLVM knows neither
def test_tune_cpu_picks_the_table_entry_and_lets_the_user_choose(tmp_path):
    """``config._tune_cpu`` in fresh interpreters, the host's LLVM name replaced by ``znver3`` or ``skylake``."""
    script = (
        "import llvmlite.binding as llvm\n"
        "llvm.get_host_cpu_name = lambda: {host!r}\n"
        "import os\n"
        "from jitgrad import config\n"
        "from jitgrad.kernels.cpu import _isa\n"
        "from numba.core.registry import cpu_target\n"
        "print('RESULT', config.TUNED_CPU, os.environ.get('NUMBA_CPU_NAME'), "
        "cpu_target.target_context.codegen()._get_host_cpu_name(), _isa.describe())\n"
    )

    def run(host: str, **env: str) -> list[str]:
        full = forced_env(None, tmp_path)
        full.pop("JITGRAD_TUNE_CPU", None)
        full.update(env)
        proc = subprocess.run([sys.executable, "-c", script.format(host=host)], env=full, capture_output=True,
                              check=False, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return next(x for x in proc.stdout.splitlines() if x.startswith("RESULT")).split(" ", 4)[1:]

    tuned, name, codegen, line = run("znver3")
    assert (tuned, name, codegen) == ("znver2", "znver2", "znver2")
    assert "LLVM cpu znver2 (tuning; the host's znver3 features)" in line
    assert run("skylake")[:3] == ["None", "None", "skylake"]
    assert run("znver3", JITGRAD_TUNE_CPU="0")[:3] == ["None", "None", "znver3"]
    assert run("znver3", NUMBA_CPU_NAME="haswell")[:3] == ["None", "haswell", "haswell"]
    assert run("znver3", NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="")[:3] == ["None", "haswell", "haswell"]
    # A child process (the background compile, bench/report.py's runs) inherits the name and says so.
    inherited = run("znver3", NUMBA_CPU_NAME="znver2")
    assert inherited[:3] == ["znver2", "znver2", "znver2"] and "(tuning; the host's znver3 features)" in inherited[3]


@x86_only
@pytest.mark.slow
def test_generic_x86_takes_the_sse_path(tmp_path):
    out = probe("x86-64", "float32", tmp_path)
    assert out["path"] == "sse" and out["gemm"] == [] and out["dot"] == [] and out["rowdot"] == []


@x86_only
def test_host_path_matches_its_features():
    features = _HOST_FEATURES
    if features.get("avx512f"):
        assert _isa.ISA.name == "avx512"
    elif features.get("avx2") and features.get("fma"):
        assert _isa.ISA.name == "avx2"
    else:
        assert _isa.ISA.name == "sse"


@x86_only
def test_feature_string_overrides_the_cpu_defaults():
    # skylake-avx512 with AVX-512 switched off is an AVX2 machine; haswell with it switched on is not
    # possible in hardware but LLVM honours it, and so must the path.
    assert _isa.x86_path("skylake-avx512", "-avx512f").name == "avx2"
    assert _isa.x86_path("haswell", "").name == "avx2"
    assert _isa.x86_path("haswell", "+avx512f").name == "avx512"
    assert _isa.x86_path("x86-64", "").name == "sse"


@x86_only
def test_avx2_is_told_from_avx_with_fma():
    # The avx2 path also serves AVX + FMA CPUs (AMD Piledriver, bdver2) and Sandy Bridge's AVX alone
    # takes sse; the tanh tables need AVX2's permutes, which only has_avx2 tells apart.
    assert _isa.x86_path("bdver2", "").name == "avx2"
    assert _isa.has_avx2("haswell", "") and _isa.has_avx2("znver3", "") and _isa.has_avx2("skylake-avx512", "")
    assert not _isa.has_avx2("bdver2", "") and not _isa.has_avx2("sandybridge", "")
    assert not _isa.has_avx2("haswell", "-avx2") and _isa.has_avx2("x86-64", "+avx2")


def test_describe_names_the_path():
    assert _isa.describe().startswith(_isa.ISA.name + " (")
