#!/usr/bin/env python
"""Compile the GEMM and conv kernels for a CPU (without running them) and count their FMAs by register width.

Checks that a SIMD path compiles and emits full-width vector FMAs on any
x86-64 machine, including a path this CPU cannot run::

    NUMBA_CPU_NAME=skylake-avx512 NUMBA_CPU_FEATURES= python bench/isa_asm.py   # expect zmm only
    NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES= python bench/isa_asm.py          # expect ymm only

Each kernel is compiled afresh for its float32 signature (``--float64`` for
the other): code loaded from Numba's cache cannot be inspected; its callees
come from the cache as usual (keyed by CPU name and features, so paths never
mix). Prints one line per kernel: compile seconds and FMA instructions per
register kind; exits 1 if a kernel has no FMA at the path's width (narrower
ones, a loop remainder's, are printed only). Then the activation and softmax-family
kernels (``--only activations`` or ``--only softmax`` for those alone): their
packed arithmetic per register kind; exits 1 if one has no 256/512-bit op.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time

from numba import njit, types


def signatures(dtype: types.Float) -> dict[str, tuple]:
    i, b = types.int64, types.boolean
    m2, m4, v1, any2 = dtype[:, ::1], dtype[:, :, :, ::1], dtype[::1], dtype[:, :]
    return {
        "_gemm.gemm_checked": (any2, any2, b, b, any2, v1, i, i, types.int64[::1]),
        "_gemm.gemm_parallel": (m2, m2, b, b, m2, i, v1, i),
        "_conv.conv2d_forward": (m4, m4, v1, b, i, i, i, i, i, i, m4, i, i),
        "_conv.conv2d_backward_input": (m4, m4, i, i, i, i, i, i, m4, i),
        "_conv_weight.conv2d_backward_weight": (m4, m4, i, i, i, i, i, i, m4, v1, i),
        "_conv_weight.conv2d_backward_weight_unit": (m4, m4, i, i, i, i, m4, v1, i),
        "_gemm_dot.gemm_dot": (m2, m2, m2, i, i),
        "_gemm_dot.gemm_dot_parallel": (m2, m2, m2, i),
    }


def elementwise_signatures(dtype: types.Float) -> dict[str, tuple]:
    """The serial twins of the activation and softmax-family kernels (the parallel ones run the same loop)."""
    v, m, b, i1 = dtype[::1], dtype[:, ::1], types.boolean, types.int64[::1]
    sigs = {"relu": (v, v), "leaky_relu": (v, dtype, v), "sigmoid": (v, v), "tanh": (v, v), "gelu": (v, b, v),
            "elu": (v, dtype, v), "softplus": (v, dtype, dtype, v)}
    out = {f"activations._{k}_kernel_serial": sig for k, sig in sigs.items()}
    out.update({f"activations._{k}_backward_kernel_serial": (v,) + sig[:-1] + (v,) for k, sig in sigs.items()})
    out.update({
        "softmax._softmax_rows_kernel_serial": (m, b, m),
        "softmax._softmax_backward_rows_kernel_serial": (m, m, b, m),
        "softmax._cross_entropy_index_kernel_serial": (m, i1, dtype, m, v),
        "softmax._cross_entropy_prob_kernel_serial": (m, m, dtype, m, v),
        "softmax._cross_entropy_backward_kernel_serial": (m, i1, m, b, dtype, v, m),
    })
    return out


def _uncached(fn):
    """A copy of the dispatcher ``fn`` compiled here, with its options: code loaded from Numba's cache
    cannot be inspected (its assembly reads empty, and every count would be 0)."""
    return njit(**{k: v for k, v in fn.targetoptions.items() if k not in ("cache", "nopython")})(fn.py_func)


def check_elementwise(dtype: types.Float, only: str) -> bool:
    """Print each elementwise kernel's packed arithmetic per register kind; False if one has none.

    Recompiled without the cache (cached code cannot be inspected). LLVM vectorises these
    loops at its preferred width: 256-bit (ymm) on AVX2 and, by default, on AVX-512 CPUs too.
    """
    import importlib

    ok = True
    packed = re.compile(r"\bv(?:fn?m(?:add|sub)\w*|mul|add|sub|div|max|min|blendv|cmp\w*|round)p[sd]\s[^\n]*")
    for name, sig in elementwise_signatures(dtype).items():
        if only not in name:
            continue
        mod, fn_name = name.split(".")
        fresh = _uncached(getattr(importlib.import_module(f"jitgrad.kernels.cpu.{mod}"), fn_name))
        start = time.perf_counter()
        fresh.compile(sig)
        seconds = time.perf_counter() - start
        kinds = collections.Counter(m for line in packed.findall(fresh.inspect_asm(sig))
                                    for m in set(re.findall(r"([xyz]mm)\d+", line)))
        ok &= kinds["ymm"] + kinds["zmm"] > 0
        print(f"{name:50s} {seconds:6.1f} s  packed ops: {dict(kinds)}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float64", action="store_true")
    parser.add_argument("--only", default="", help="kernels whose name contains this")
    opts = parser.parse_args(argv)
    from jitgrad.kernels.cpu import _conv, _conv_weight, _gemm, _gemm_dot, _isa

    modules = {"_gemm": _gemm, "_conv": _conv, "_conv_weight": _conv_weight, "_gemm_dot": _gemm_dot}
    want = {"avx512": "zmm", "avx2": "ymm", "sse": "xmm", "neon": "v"}[_isa.ISA.name]
    print(f"path: {_isa.describe()}")
    dtype = types.float64 if opts.float64 else types.float32
    bad = False
    for name, sig in signatures(dtype).items():
        if opts.only not in name:
            continue
        mod, fn_name = name.split(".")
        fn = _uncached(getattr(modules[mod], fn_name))
        start = time.perf_counter()
        fn.compile(sig)
        seconds = time.perf_counter() - start
        asm = fn.inspect_asm(sig)
        kinds = collections.Counter(m for line in re.findall(r"\bv?fmadd\w*\s+[^\n]*", asm)
                                    for m in set(re.findall(r"([xyz]mm)\d+", line)))
        # Narrower FMAs may be a loop's remainder (LLVM's 4-wide epilogue, scalar ss): printed, not an error
        bad |= kinds[want] == 0 and _isa.ISA.name != "sse"
        print(f"{name:36s} {seconds:6.1f} s  FMAs: {dict(kinds)}", flush=True)
    if _isa.ISA.name in ("avx2", "avx512"):
        bad |= not check_elementwise(dtype, opts.only)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
