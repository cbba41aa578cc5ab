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
    NumPy slower and every ratio against it look better than it is.
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
        "numba": numba.__version__,
        "jitgrad": jitgrad_version,
        "torch": getattr(torch, "__version__", None),
        "threads": threads,
        "numba_threading_layer": _threading_layer(),
        "numba_cache_dir": _cache_dir(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def _threading_layer() -> str | None:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return None


def _cache_dir() -> str | None:
    """jitgrad's one Numba cache folder (``jitgrad.config.cache_dir()``)."""
    try:
        import jitgrad

        return str(jitgrad.config.cache_dir())
    except Exception:  # noqa: BLE001 - the report still runs without jitgrad importable
        return None
