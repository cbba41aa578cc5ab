"""Fit the tables of the float32 ``tanh`` by tables (``_elementary.vtanh``): AVX-512's
(``jitgrad/kernels/cpu/_tanh_table.py``) and, with ``--avx2``, AVX2's (``_tanh_table_avx2.py``).

    python bench/tanh_table.py [--avx2]            # print each interval's fit error
    python bench/tanh_table.py [--avx2] --write    # and rewrite the table module
    python bench/tanh_table.py --check             # every float32 in [0, 16) through the tanh kernel
    NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES= python bench/tanh_table.py --check   # AVX2's tables

AVX-512: 16 intervals of ``|x|``, half binades from ``2^-4``, cut where the exponent or the first
mantissa bit changes (``[1, 1.5)``, ``[1.5, 2)``, ...; interval 0 also holds ``[0, 2^-4)``,
interval 15 everything from 12), degree 6. AVX2: 8 binades from ``2^-3`` (interval 0 also holds
``[0, 2^-3)``, interval 7 everything from 16), degree 8. A table is one register (16 entries in a
zmm, 8 in a ymm), read by one non-destructive ``vpermps`` a coefficient. On each interval,
``tanh(|x|) = C0 + t (C1 + ... + t Cn)`` with ``t = |x| - X0``, ``X0`` the midpoint (0 for
interval 0, where ``C0 = 0`` keeps the relative accuracy down to the subnormals) and ``C0`` the
float32 ``tanh(X0)``; ``C1..Cn`` minimise the relative error by reweighted least squares (the
weights of the worst points raised, 40 rounds) on 40,000 float32 points of the interval, then
round to float32 (``t`` is at most a quarter of ``|x|`` with half binades, a third with binades,
so their rounding weighs little). From 9.5 ``tanh`` rounds to 1: ``C0 = 1``, the rest 0.
``tests/kernels/test_elementary.py`` holds the result to 2 ulp (the AVX2 tables in CI's
forced-AVX2 run of it, ``tests/kernels/test_isa.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

_CPU = Path(__file__).resolve().parents[1] / "jitgrad" / "kernels" / "cpu"


class Layout(NamedTuple):
    """One path's tables: ``|x|``'s bits shifted right by ``shift`` index ``intervals`` intervals from the
    float32 whose bits are ``first_bits``; polynomials of degree ``deg``; written to ``out``."""

    shift: int
    first_bits: int
    intervals: int
    deg: int
    out: Path
    isa: str


LAYOUTS = {"avx512": Layout(22, 0x3D800000, 16, 6, _CPU / "_tanh_table.py", "AVX-512"),
           "avx2": Layout(23, 0x3E000000, 8, 8, _CPU / "_tanh_table_avx2.py", "AVX2")}
OUT = LAYOUTS["avx512"].out
DEG = LAYOUTS["avx512"].deg


def table_names(deg: int) -> tuple[str, ...]:
    """The table module's names: ``X0`` and ``C0..C<deg>``."""
    return ("X0",) + tuple(f"C{d}" for d in range(deg + 1))


NAMES = table_names(DEG)


def _float(bits: int) -> float:
    return float(np.array([bits], np.uint32).view(np.float32)[0])


def fit_layout(layout: Layout = LAYOUTS["avx512"]) -> np.ndarray:
    """``(deg + 2, intervals)`` float32: ``X0, C0..Cn`` per interval."""
    deg = layout.deg
    base = layout.first_bits >> layout.shift
    tables = np.zeros((deg + 2, layout.intervals))
    for i in range(layout.intervals):
        lo = 0.0 if i == 0 else _float((base + i) << layout.shift)
        hi = _float((base + i + 1) << layout.shift)
        x0 = 0.0 if i == 0 else float(np.float32((lo + hi) / 2))
        c0 = float(np.float32(np.tanh(x0)))
        if lo >= 9.5:
            tables[:, i] = [x0, 1.0] + [0.0] * deg
            continue
        blo = int(np.array([lo], np.float32).view(np.uint32)[0]) if lo > 0 else 1
        bhi = int(np.array([hi], np.float32).view(np.uint32)[0])
        bits = np.unique(np.linspace(blo, bhi - 1, 40000).astype(np.uint32))
        x = bits.view(np.float32).astype(np.float64)
        if i == 0:
            x = np.concatenate([x[x > 1e-4], np.geomspace(1e-4, 1e-2, 2000)])
        f = np.tanh(x)
        c, rel = relative_fit(x - x0, f, f - c0, 1, deg)
        print(f"interval {i:2d} [{lo:.4g}, {hi:.4g}): relative error {rel:.2e} (float64)")
        tables[:, i] = [x0, c0] + [float(np.float32(v)) for v in c]
    return tables.astype(np.float32)


def relative_fit(t: np.ndarray, f: np.ndarray, target: np.ndarray, first: int, deg: int = DEG) -> tuple[np.ndarray, float]:
    """Coefficients of ``t^first .. t^deg`` fitting ``target`` with the least worst error relative to ``f``
    (reweighted least squares: the weights of the worst points raised, 40 rounds), and that error."""
    a = t[:, None] ** np.arange(first, deg + 1)
    w = 1 / np.abs(f)
    for _ in range(40):
        c, *_ = np.linalg.lstsq(a * w[:, None], target * w, rcond=None)
        rel = (a @ c - target) / np.abs(f)
        w = w * (np.abs(rel) / np.abs(rel).max() + 1e-3) ** 0.5
    return c, float(np.abs(rel).max())


def module_text(tables: np.ndarray, doc: tuple[str, str] | None = None, names: tuple[str, ...] | None = None,
                layout: Layout = LAYOUTS["avx512"]) -> str:
    """The Python module holding ``tables`` (a row of float32 per name), ``doc`` its docstring's two lines."""
    if doc is None:
        doc = (f"Tables of the {layout.isa} float32 ``tanh`` (``_elementary.vtanh``), written by ``bench/tanh_table.py``",
               (f"(its docstring says how they are fitted): ``X0`` and ``C0..C{layout.deg}`` of each of the "
                f"{layout.intervals} intervals."))
    names = names or table_names(layout.deg)
    out = ['"""' + doc[0], doc[1], '"""', "", "from __future__ import annotations", ""]
    for name, row in zip(names, tables):
        vals = [repr(float(v)) for v in row]
        out.append(f"{name} = (")
        for k in range(0, len(vals), 4):
            out.append("    " + ", ".join(vals[k:k + 4]) + ",")
        out.append(")")
    return "\n".join(out) + "\n"


def check() -> None:
    """Every float32 in ``[0, 16)`` (and their negatives by symmetry of the code) through the
    tanh kernel against float64 ``tanh``: the worst error in ulps (AVX-512: the table path)."""
    import importlib

    act = importlib.import_module("jitgrad.kernels.cpu.activations")

    def kernel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.empty_like(x)
        act._TANH_F32.parallel(x, y)
        return y, np.tanh(x.astype(np.float64))

    report_worst(kernel, [(0, 0x41800000)])


def report_worst(kernel, ranges: list[tuple[int, int]]) -> None:
    """Print the worst error in ulps of ``kernel(x) -> (float32 result, float64 exact)`` over every float32
    whose bits lie in one of ``ranges`` (half-open), run in chunks of 2^26."""
    from jitgrad.kernels.cpu import _elementary as ef

    worst, where = 0.0, 0.0
    for lo, hi in ranges:
        for start in range(lo, hi, 1 << 26):
            x = np.arange(start, min(start + (1 << 26), hi), dtype=np.uint32).view(np.float32)
            y, exact = kernel(x)
            ulp = np.ldexp(1.0, np.maximum(np.frexp(exact)[1] - 24, -149))
            err = np.where(y == exact.astype(np.float32), 0.0, np.abs(y - exact) / ulp)
            k = int(np.argmax(err))
            if err[k] > worst:
                worst, where = float(err[k]), float(x[k])
    print(f"path {ef.ISA.name}, tanh tables: {ef.HAS_VTANH}, GELU tables: {ef.HAS_VGELU}; "
          f"worst {worst:.3f} ulp at {where!r}")


def main(argv: list[str], fit=None, check=check, write=None, out: Path | None = None) -> None:
    """``--check``: ``check()``; else ``fit()``, and with ``--write`` ``write`` its tables to ``out``
    (by default this module's fit, module and file for the layout ``--avx2`` picks)."""
    if "--check" in argv:
        check()
        return
    layout = LAYOUTS["avx2" if "--avx2" in argv else "avx512"]
    tables = fit() if fit is not None else fit_layout(layout)
    if "--write" in argv:
        out = out or layout.out
        if write is not None:
            write(tables)
        else:
            out.write_text(module_text(tables, layout=layout))
        print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
