#!/usr/bin/env python
"""The GEMM micro-kernel's inner loops on paper: their instructions, and llvm-mca's cycles on other CPUs.

A loop's speed on a CPU one does not have can still be estimated: LLVM's
machine-code analyser (``llvm-mca``, from the LLVM tools: Debian's
``llvm-14`` package) runs a loop body through the scheduling model of a named
CPU. This script compiles ``gemm_block`` (float32, into a fresh temporary
cache, as the CPU Numba targets: ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES``
as usual), finds its straight inner loops with FMAs (a backward jump to a
label with no label or jump between), and prints per loop its FMAs,
instructions, register-to-register vector copies (``vmovaps``) and, per
model, cycles per ``2 * MR`` FMAs (one ``k`` of a full-height two-vector
tile; the FMAs alone take ``MR`` cycles on two FMA pipes)::

    NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES= python bench/gemm_mca.py haswell skylake znver2 znver3
    python bench/gemm_mca.py skylake-avx512 icelake-server          # this host's path (AVX-512 here)
    ... --asm DIR                                                   # also write the assembly there

The models are LLVM's, so a number here is an estimate (no caches, no
branch prediction, no frequency), good for comparing two versions of one
loop on one model: docs/performance.md quotes it that way.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile


def straight_loops(asm: str) -> list[tuple[str, list[str]]]:
    """``(label, instructions)`` of every loop that is one basic block ending in a jump back to its label."""
    lines = asm.split("\n")
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"^(\.LBB\d+_\d+):", line))}
    loops = []
    for i, line in enumerate(lines):
        m = re.match(r"\s+j\w+\s+(\.LBB\d+_\d+)\s*$", line)
        if not (m and m.group(1) in labels and labels[m.group(1)] < i):
            continue
        inside = lines[labels[m.group(1)] + 1:i + 1]
        body = [x for x in inside if x.strip() and not x.strip().startswith((".", "#"))]
        if any(re.match(r"^\.LBB", x) for x in inside) or any(re.match(r"\s+j\w+\s", x) for x in body[:-1]):
            continue
        loops.append((m.group(1), body))
    return loops


def register_copies(body: list[str]) -> list[str]:
    """The register-to-register vector moves (``vmovaps``/``vmovapd``) among ``body``'s instructions."""
    return [x.strip() for x in body if re.match(r"\s+vmovap[sd]\s+%[xyz]mm\d+,\s+%[xyz]mm\d+", x)]


def mca_cycles(tool: str, cpu: str, label: str, body: list[str], iterations: int = 1000) -> float | None:
    """llvm-mca's cycles per iteration of ``body`` on ``cpu``, or None if the tool failed."""
    proc = subprocess.run([tool, f"-mcpu={cpu}", f"-iterations={iterations}"], input=f"{label}:\n" + "\n".join(body)
                          + "\n", capture_output=True, text=True, check=False)
    m = re.search(r"Total Cycles:\s+(\d+)", proc.stdout)
    return int(m.group(1)) / iterations if m else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=["haswell", "skylake", "znver2", "znver3"],
                   help="llvm-mca -mcpu names (default: haswell skylake znver2 znver3)")
    p.add_argument("--mca", default=shutil.which("llvm-mca") or shutil.which("llvm-mca-14"),
                   help="the llvm-mca program (default: llvm-mca or llvm-mca-14 on PATH)")
    p.add_argument("--asm", metavar="DIR", help="write gemm_block's assembly to DIR/gemm_block.s")
    opts = p.parse_args()
    cache = tempfile.mkdtemp(prefix="jitgrad-mca-")
    os.environ["JITGRAD_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"] = cache  # compiled here, so it has assembly
    try:
        from numba import types

        from jitgrad.kernels.cpu import _isa
        tile = importlib.import_module("jitgrad.kernels.cpu._gemm_tile")
        v, i, b = types.float32[::1], types.int64, types.boolean
        sig = (v, i, i, i, i, v, i, i, i, i, i, i, i, i, i, i, v, i, i, b, v, b, i)
        tile.gemm_block.compile(sig)
        asm = tile.gemm_block.inspect_asm(sig).split("cpython", 1)[0]  # the native function, not its wrapper
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if opts.asm:
        os.makedirs(opts.asm, exist_ok=True)
        with open(os.path.join(opts.asm, "gemm_block.s"), "w") as f:
            f.write(asm)
    step = 2 * tile.MR
    print(f"# {_isa.describe()}; cycles per {step} FMAs (one k of a {tile.MR}-row two-vector tile) by llvm-mca"
          + ("" if opts.mca else ": no llvm-mca found (--mca), instructions only"))
    for label, body in straight_loops(asm):
        fmas = sum("vfmadd" in x for x in body)
        if fmas < 4:
            continue
        copies = len(register_copies(body))
        cells = []
        for cpu in opts.models if opts.mca else ():
            cycles = mca_cycles(opts.mca, cpu, label, body)
            cells.append(f"{cpu} {cycles / fmas * step:.2f}" if cycles else f"{cpu} ?")
        print(f"{label}: {fmas} FMA, {len(body)} instructions, {copies} register copies"
              + (" | " + ", ".join(cells) if cells else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
