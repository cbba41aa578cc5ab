"""Which SIMD path the CPU kernels are compiled for, and each path's register tiles.

The GEMM micro-kernel (``_gemm``) and the conv weight-gradient dot kernel
(``_conv``) keep a tile of accumulators in vector registers for a whole
reduction. How big that tile may be depends on the instruction set: with
more accumulators than registers LLVM spills them to the stack and every
step reloads them. So the tile is chosen here, once, at import, from the CPU
Numba compiles for:

========  =========  =========  ===================  ============  =================
path      vector     registers  GEMM tile (MR x NR)  float32 tile  dot tile (rows x taps)
========  =========  =========  ===================  ============  =================
avx512    512 bit    32 zmm     8 x 2 vectors        8 x 32        8 x 3
avx2      256 bit    16 ymm     6 x 2 vectors        6 x 16        4 x 3
sse       128 bit    16 xmm     6 x 2 vectors        6 x 8         4 x 3
neon      128 bit    32 q       8 x 2 vectors        8 x 8         8 x 3
========  =========  =========  ===================  ============  =================

Register budget of the GEMM tile: ``2 * MR`` accumulators, 2 vectors of B
and one broadcast of A: 19 of 32 on AVX-512, 15 of 16 on AVX2 (the 6 x 16
tile of BLIS's Haswell kernel). The dot tile: ``rows * 3`` accumulators,
3 vectors of the input and one of the gradient: 28 of 32, or 16 of 16 (the
gradient operand can be folded into the FMAs as a memory operand).

``sse`` is x86 without AVX/FMA (multiply-adds become a multiply and an
add); ``neon`` is AArch64 and, like ``sse``, compiles but is not measured.
A tuned NEON tile would be 8 x 12 (three q-registers of B, 24 accumulators,
A read as a vector and used lane by lane with ``fmla v.s[i]``), which needs a
third B vector in the micro-kernel; an SVE tile would be 8 rows x 2 vectors
of the runtime vector length, which needs length-agnostic vector types that
Numba cannot express. See ``docs/performance.md`` (SIMD paths).

The CPU is the one Numba's code generator targets, so the path always
matches the code it emits, and Numba's on-disk cache (keyed by CPU name and
features) never mixes paths: the host's CPU, or ``NUMBA_CPU_NAME`` with
``NUMBA_CPU_FEATURES`` when they are set. When a feature is not spelled out
(``NUMBA_CPU_FEATURES`` empty or silent about it), LLVM's defaults for that
CPU name decide, and they are read by compiling a probe function for it.
To compile (and test) another x86 path on any machine::

    NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES= ...          # avx2
    NUMBA_CPU_NAME=skylake-avx512 NUMBA_CPU_FEATURES= ...   # avx512 (runs only on an AVX-512 CPU)

(Without ``NUMBA_CPU_FEATURES`` Numba keeps the host's feature list, whose
``-avx512f`` or ``+avx512f`` then decides.)

On a host whose own LLVM tuning compiles the GEMM badly, :mod:`jitgrad.config`
sets ``NUMBA_CPU_NAME`` to another CPU's tuning and keeps the host's features
(``config.TUNE_CPU``: a Zen 3 compiles with ``znver2``'s), so the path, and
the instructions the kernels may use, are the host's; :func:`describe` says so.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass

import llvmlite.binding as llvm


@dataclass(frozen=True)
class IsaPath:
    """One SIMD code path and the register tiles tuned for it."""

    #: ``"avx512"``, ``"avx2"``, ``"sse"`` or ``"neon"``.
    name: str
    #: Bytes of one vector register the kernels use.
    vec_bytes: int
    #: Architectural vector registers.
    registers: int
    #: Whether a fused multiply-add is one instruction.
    has_fma: bool
    #: Rows of the GEMM register tile; its columns are two vectors.
    gemm_mr: int
    #: Output channels of the conv weight-gradient dot tile (times 3 taps).
    dot_rows: int


PATHS: dict[str, IsaPath] = {
    "avx512": IsaPath("avx512", 64, 32, True, 8, 8),
    "avx2": IsaPath("avx2", 32, 16, True, 6, 4),
    "sse": IsaPath("sse", 16, 16, False, 6, 4),
    "neon": IsaPath("neon", 16, 32, True, 8, 8),
}


def target_cpu() -> tuple[str, str]:
    """``(cpu name, feature string)`` Numba's JIT compiles for (``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` honoured)."""
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    name = config.CPU_NAME or llvm.get_host_cpu_name()
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else get_host_cpu_features()
    return name, features


def _parse_features(features: str) -> dict[str, bool]:
    out = {}
    for item in features.split(","):
        item = item.strip()
        if len(item) > 1 and item[0] in "+-":
            out[item[1:]] = item[0] == "+"
    return out


#: ``platform.machine()`` names of x86 CPUs.
_X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")

_PROBE_IR = """
define void @probe(<16 x float>* %p) #0 {
  %v = load <16 x float>, <16 x float>* %p
  %r = call <16 x float> @llvm.fma.v16f32(<16 x float> %v, <16 x float> %v, <16 x float> %v)
  store <16 x float> %r, <16 x float>* %p
  ret void
}
declare <16 x float> @llvm.fma.v16f32(<16 x float>, <16 x float>, <16 x float>)
attributes #0 = { "min-legal-vector-width"="512" }
"""


def _assembly(ir_text: str, name: str, features: str) -> str:
    """The x86 assembly LLVM emits for the module ``ir_text`` compiled for ``name`` + ``features``."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    machine = llvm.Target.from_default_triple().create_target_machine(cpu=name, features=features, opt=0)
    module = llvm.parse_assembly(ir_text)
    module.triple = machine.triple
    return machine.emit_assembly(module)


def _probe_x86(name: str, features: str) -> dict[str, bool]:
    """Features LLVM enables for ``name`` + ``features``, read off the assembly of a 512-bit FMA."""
    asm = _assembly(_PROBE_IR, name, features)
    fma = "vfmadd" in asm
    return {"avx512f": "zmm" in asm, "avx2": fma and "ymm" in asm, "avx": "ymm" in asm or "zmm" in asm,
            "fma": fma}


_PROBE_AVX2_IR = """
define void @probe(<8 x i32>* %p) {
  %v = load <8 x i32>, <8 x i32>* %p
  %r = add <8 x i32> %v, %v
  store <8 x i32> %r, <8 x i32>* %p
  ret void
}
"""


def has_avx2(name: str | None = None, features: str | None = None) -> bool:
    """Whether the CPU Numba compiles for (or ``name`` + ``features``) has AVX2's 256-bit integer and
    permute instructions: LLVM adds eight 32-bit integers in one ``ymm`` register only with AVX2 (the
    ``avx2`` path also serves AVX + FMA CPUs without it, e.g. AMD Piledriver)."""
    if platform.machine().lower() not in _X86_MACHINES:
        return False
    if name is None:
        name, features = target_cpu()
    flags = _parse_features(features or "")
    if "avx2" in flags:
        return flags["avx2"]
    return re.search(r"vpaddd\s+%ymm", _assembly(_PROBE_AVX2_IR, name, features or "")) is not None


def x86_path(name: str, features: str) -> IsaPath:
    """The path for an x86 CPU ``name`` with LLVM feature string ``features``."""
    flags = _parse_features(features)
    if not all(f in flags for f in ("avx512f", "avx2", "fma")):
        flags = {**_probe_x86(name, features), **flags}
    if flags.get("avx512f"):
        return PATHS["avx512"]
    # AVX2 + FMA (and AVX + FMA, e.g. AMD Piledriver: the same 16 ymm registers).
    if flags.get("fma") and (flags.get("avx2") or flags.get("avx")):
        return PATHS["avx2"]
    return PATHS["sse"]


def detect() -> IsaPath:
    """The path of the CPU Numba compiles for (see the module docstring)."""
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return PATHS["neon"]
    if machine not in _X86_MACHINES:
        return PATHS["sse"]  # 128-bit vectors, no FMA assumed: correct everywhere LLVM runs
    try:
        return x86_path(*target_cpu())
    except Exception:  # pragma: no cover - unusual LLVM build: the safe, slow path
        return PATHS["sse"]


#: The path every CPU kernel of this process is compiled for.
ISA: IsaPath = detect()


def describe() -> str:
    """One line for reports: path, vector width, tiles, and the CPU compiled for."""
    from jitgrad import config

    name, _ = target_cpu()
    if config.TUNED_CPU is not None and name == config.TUNED_CPU:
        name = f"{name} (tuning; the host's {llvm.get_host_cpu_name()} features)"
    return (f"{ISA.name} ({ISA.vec_bytes * 8}-bit vectors, GEMM tile {ISA.gemm_mr} x {2 * ISA.vec_bytes // 4} "
            f"float32, LLVM cpu {name})")
