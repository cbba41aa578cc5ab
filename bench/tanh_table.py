"""Fit the tables of the AVX-512 float32 ``tanh`` (``jitgrad/kernels/cpu/_tanh_table.py``).

    python bench/tanh_table.py            # print each interval's fit error
    python bench/tanh_table.py --write    # and rewrite the table module
    python bench/tanh_table.py --check    # every float32 in [0, 16) through the tanh kernel (skips the fit)

16 intervals of ``|x|``: half binades from ``2^-4``, cut where the exponent or the first mantissa
bit changes (``[1, 1.5)``, ``[1.5, 2)``, ...; interval 0 also holds ``[0, 2^-4)``, interval 15
everything from 12). A 16-entry table is one zmm register, read by one non-destructive ``vpermps``
a coefficient. On each, ``tanh(|x|) = C0 + t (C1 + ... + t C6)`` with ``t = |x| - X0``, ``X0``
the midpoint (0 for interval 0, where ``C0 = 0`` keeps the relative accuracy down to the
subnormals) and ``C0`` the float32 ``tanh(X0)``; ``C1..C6`` minimise the relative error by
reweighted least squares (the weights of the worst points raised, 40 rounds) on 40,000 float32
points of the interval, then round to float32 (``t`` is at most a quarter of ``|x|``, so their
rounding weighs little). From 9.5 ``tanh`` rounds to 1: ``C0 = 1``, the rest 0.
``tests/kernels/test_elementary.py`` holds the result to 2 ulp.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BASE = 0x3D800000 >> 22  # the bits of 2^-4, shifted as the index is
INTERVALS = 16
SHIFT = 22  # an interval per value of the exponent and the first mantissa bit
DEG = 6
NAMES = ("X0", "C0", "C1", "C2", "C3", "C4", "C5", "C6")
OUT = Path(__file__).resolve().parents[1] / "jitgrad" / "kernels" / "cpu" / "_tanh_table.py"


def _float(bits: int) -> float:
    return float(np.array([bits], np.uint32).view(np.float32)[0])


def fit() -> np.ndarray:
    """``(8, INTERVALS)`` float32: ``X0, C0..C6`` per interval."""
    tables = np.zeros((DEG + 2, INTERVALS))
    for i in range(INTERVALS):
        lo = 0.0 if i == 0 else _float((BASE + i) << SHIFT)
        hi = _float((BASE + i + 1) << SHIFT)
        x0 = 0.0 if i == 0 else float(np.float32((lo + hi) / 2))
        c0 = float(np.float32(np.tanh(x0)))
        if lo >= 9.5:
            tables[:, i] = [x0, 1.0] + [0.0] * DEG
            continue
        blo = int(np.array([lo], np.float32).view(np.uint32)[0]) if lo > 0 else 1
        bhi = int(np.array([hi], np.float32).view(np.uint32)[0])
        bits = np.unique(np.linspace(blo, bhi - 1, 40000).astype(np.uint32))
        x = bits.view(np.float32).astype(np.float64)
        if i == 0:
            x = np.concatenate([x[x > 1e-4], np.geomspace(1e-4, 1e-2, 2000)])
        f = np.tanh(x)
        c, rel = relative_fit(x - x0, f, f - c0, 1)
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


def module_text(tables: np.ndarray, doc: tuple[str, str] = (
        "Tables of the AVX-512 float32 ``tanh`` (``_elementary.vtanh``), written by ``bench/tanh_table.py``",
        "(its docstring says how they are fitted): ``X0`` and ``C0..C6`` of each of the 16 intervals."),
        names: tuple[str, ...] = NAMES) -> str:
    """The Python module holding ``tables`` (a row of float32 per name), ``doc`` its docstring's two lines."""
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
    print(f"tables: {ef.HAS_VTABLES}; worst {worst:.3f} ulp at {where!r}")


def main(argv: list[str], fit=fit, check=check, write=lambda tables: OUT.write_text(module_text(tables)),
         out: Path = OUT) -> None:
    """``--check``: ``check()``; else ``fit()``, and with ``--write`` ``write`` its tables to ``out``."""
    if "--check" in argv:
        check()
        return
    tables = fit()
    if "--write" in argv:
        write(tables)
        print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
