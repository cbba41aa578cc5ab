"""What ``bench/report.py`` measured on: CPU model, jitgrad's SIMD path, library versions, thread settings."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa_path() -> str | None:
    """The SIMD path jitgrad's CPU kernels were compiled for (``avx2``, ``avx512``, ...) and its tiles."""
    try:
        from jitgrad.kernels.cpu import _isa
    except Exception:
        return None
    return _isa.describe()


def blas_info() -> str | None:
    """The BLAS NumPy calls and the kernel it picked (``threadpoolctl``, when installed).

    ``OPENBLAS_CORETYPE`` forces OpenBLAS's kernel: a forced older kernel makes
    NumPy slower and every ratio against it look better than it is, unless jitgrad
    is forced to the same path (``--isa avx2``, :func:`competitor_environment`).
    """
    try:
        import threadpoolctl
    except ImportError:
        return None
    for lib in threadpoolctl.threadpool_info():
        if lib.get("user_api") == "blas":
            return f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')}, {lib.get('num_threads')} threads)"
    return None


def machine_info(threads: int, torch: Any | None) -> dict[str, Any]:
    """The machine and software the numbers were measured with."""
    import numba

    try:
        import jitgrad

        jitgrad_version = jitgrad.__version__
    except Exception:
        jitgrad_version = None
    return {
        "cpu": cpu_model(),
        "isa_path": isa_path(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        # The limits a forced run put on NumPy, OpenBLAS and PyTorch (competitor_environment).
        "competitor_limits": {k: os.environ[k] for k in COMPETITOR_VARS if os.environ.get(k)},
        "numba": numba.__version__,
        "jitgrad": jitgrad_version,
        "torch": getattr(torch, "__version__", None),
        "threads": threads,
        "numba_threading_layer": _threading_layer(),
        "numba_cache_dir": _cache_dir(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        # glibc's malloc thresholds set at import (jitgrad.config; the process's PyTorch gets them too).
        "malloc_tuned": _malloc_tuned(),
        # float32 matmul on jitgrad's own helper threads (kernels/cpu/_team.py), or on Numba's OpenMP pool.
        "gemm_team": _gemm_team(),
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
        # Set by bench/report.py (not by the user): then the GEMM table's child runs without it.
        "openblas_thread_timeout_by_report": bool(os.environ.get("JITGRAD_REPORT_SET_BLAS_TIMEOUT")),
    }


def _threading_layer() -> str | None:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return None


def _malloc_tuned() -> bool | None:
    """Whether ``import jitgrad`` set glibc's malloc thresholds (``jitgrad.config.malloc_tuned``)."""
    try:
        import jitgrad

        return bool(jitgrad.config.malloc_tuned)
    except Exception:  # noqa: BLE001 - the report still runs without jitgrad importable
        return None


def _gemm_team() -> bool | None:
    """Whether jitgrad's float32 ``matmul`` runs on its GEMM team (``kernels/cpu/_team.enabled()``)."""
    try:
        from jitgrad.kernels.cpu import _team

        return bool(_team.enabled())
    except Exception:  # noqa: BLE001 - the report still runs without jitgrad importable
        return None


def _cache_dir() -> str | None:
    """jitgrad's one Numba cache folder (``jitgrad.config.cache_dir()``)."""
    try:
        import jitgrad

        return str(jitgrad.config.cache_dir())
    except Exception:  # noqa: BLE001 - the report still runs without jitgrad importable
        return None


# ----------------------------------------------------------------------------- forcing another SIMD path

#: LLVM CPU that ``bench/report.py --isa PATH`` compiles for (with ``NUMBA_CPU_FEATURES`` empty, so
#: the name's own feature set decides, not the host's). ``sse``: ``x86-64-v2`` (SSE4.2, no AVX), the
#: oldest x86 CPU NumPy 2.4 runs on (its baseline, ``X86_V2``): a Nehalem-era machine, or a VM whose
#: CPU model exposes no AVX.
FORCED_CPUS = {"avx2": "haswell", "avx512": "skylake-avx512", "sse": "x86-64-v2"}
#: Host features a path's code needs to run.
_NEEDS = {"avx2": ("avx2", "fma"), "avx512": ("avx512f", "avx512bw", "avx512dq", "avx512vl"), "sse": ("sse4.2",)}
#: Set in the child of a forced run (so it does not fork again).
ISA_ENV_VAR = "JITGRAD_REPORT_ISA"


def host_features() -> set[str]:
    """The host CPU's features (LLVM's names: ``avx2``, ``fma``, ``avx512f``, ...)."""
    try:
        import llvmlite.binding as llvm

        return {name for name, on in llvm.get_host_cpu_features().items() if on}
    except Exception:  # noqa: BLE001 - /proc/cpuinfo spells the x86 ones alike
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
        except OSError:
            pass
    return set()


def cannot_run(isa: str) -> str | None:
    """Why this host cannot execute code of path ``isa`` (None: it can)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the {isa} path is x86-64 code; this is {platform.machine()}"
    missing = [f for f in _NEEDS[isa] if f not in host_features()]
    if missing:
        return f"this CPU ({cpu_model()}) lacks {', '.join(missing)}, so {isa} code would die with SIGILL"
    return None


def isa_environment(isa: str, cache_root: Path) -> dict[str, str]:
    """Environment of a child compiled for ``isa``: a forced LLVM CPU, a Numba cache folder of
    its own (``<cache_root>/isa-<path>-<cpu>``) so machine code of two paths never mixes, and
    the competitors held to the same path (:func:`competitor_environment`)."""
    cpu = FORCED_CPUS[isa]
    cache = str(Path(cache_root) / f"isa-{isa}-{cpu}")
    return {"NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": "", "JITGRAD_CACHE_DIR": cache,
            "NUMBA_CACHE_DIR": cache, ISA_ENV_VAR: isa, **competitor_environment(isa)}


#: The variables by which :func:`competitor_environment` limits NumPy, OpenBLAS and PyTorch.
COMPETITOR_VARS = ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                   "MKL_ENABLE_INSTRUCTIONS")


#: The competitors' own limits per forced path: OpenBLAS's kernel, PyTorch's CPU capability, oneDNN's and
#: MKL's instruction sets.
_COMPETITOR_LIMITS = {
    "avx2": {"OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "sse": {"OPENBLAS_CORETYPE": "Nehalem", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
            "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}


def _numpy_wider_than(isa: str) -> list[str]:
    """NumPy's dispatch targets wider than path ``isa`` that this host supports (naming one the host
    lacks in ``NPY_DISABLE_CPU_FEATURES`` is an error): the AVX-512 ones for ``avx2``; for ``sse``
    every one above NumPy 2's baseline ``X86_V2`` (``X86_V3`` is AVX2 + FMA)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    if isa == "avx2":
        wide = [t for t in __cpu_dispatch__ if "AVX512" in t or t == "X86_V4"]
    else:
        wide = [t for t in __cpu_dispatch__ if t not in ("X86_V2", "SSE41", "SSE42", "POPCNT")]
    return [t for t in wide if __cpu_features__.get(t)]


def competitor_environment(isa: str) -> dict[str, str]:
    """What NumPy, OpenBLAS and PyTorch would run on a machine of path ``isa``, for a forced run.

    jitgrad compiled for AVX2 against NumPy's AVX-512 ``exp``/``tanh`` loops, OpenBLAS's
    SkylakeX kernel and PyTorch's AVX-512 kernels is no machine anyone has; an AVX2 CPU runs all
    of them on their AVX2 paths: NumPy without its AVX-512 dispatch targets, OpenBLAS's Haswell
    kernel, PyTorch's ``avx2`` kernels, oneDNN and MKL capped at AVX2. A machine without AVX
    (``sse``) runs NumPy's baseline loops, OpenBLAS's Nehalem kernel, PyTorch's ``default``
    kernels and oneDNN's SSE4.1 ones. Empty for ``avx512`` (forcing it needs an AVX-512 host, where
    the libraries pick it themselves).
    """
    if isa not in _COMPETITOR_LIMITS:
        return {}
    env = dict(_COMPETITOR_LIMITS[isa])
    wide = _numpy_wider_than(isa)
    if wide:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(wide)
    return env
