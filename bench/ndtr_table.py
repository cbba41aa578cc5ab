"""Fit the tables of the float32 GELU: AVX-512's (``jitgrad/kernels/cpu/_ndtr_table.py``) and, with
``--avx2``, AVX2's (``_ndtr_table_avx2.py``).

    python bench/ndtr_table.py [--avx2]            # print each interval's fit error
    python bench/ndtr_table.py [--avx2] --write    # and rewrite the table module
    python bench/ndtr_table.py --check             # every float32 in (-4, 4) through the GELU kernel (skips the fit)
    NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES= python bench/ndtr_table.py --check   # AVX2's tables

``Phi(-a)`` (the standard normal CDF) and the density ``phi(a)`` for ``a = |x| < 4``, in 16
intervals of width 1/4 (a 16-entry table is one zmm register: one non-destructive ``vpermps`` a
coefficient): on interval ``i``, ``Phi(-a) = C0 + t (C1 + ... + t C6)`` and ``phi(a) = D0 + t (D1 +
... + t D6)`` with ``t = a - (i + 1/2)/4``. The coefficients minimise the error relative to the
function (reweighted least squares, ``tanh_table.relative_fit``) on 20,000 points of the interval,
then round to float32 (``|t| <= 1/8``: the higher coefficients' rounding weighs little).

AVX2 (8-entry tables, one ymm register): 8 intervals of width 1/2, degree 7, in ``t = a - (i +
1)/2`` (the right end, where ``Phi(-a)`` is smallest: every term has the result's sign; from the
midpoint the constant and ``t C1`` cancelled, 2.71 ulp against 2.57). ``Phi(-a)`` falls up to
sevenfold across an interval, and the float32 rounding of ``C0`` alone, relative to the small end,
was 1.2e-7 (2 ulp); so the coefficients are rounded one at a time from ``C0`` up, each rounding
absorbed by refitting the ones above it: at most 3.8e-8 (``Phi``), 3.5e-8 (``phi``).

``Phi(x)`` is ``Phi(-a)`` for negative ``x`` and ``1 - Phi(-a)`` otherwise
(``Phi(-a) <= 1/2``: no cancellation); the backward is ``Phi(x) + x phi(x)``. From ``|x| = 4`` the
kernels take ``_elementary.ndtr`` / ``ndtr_pdf``. ``tests/kernels/test_elementary.py`` holds the
GELU kernels to their bounds.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tanh_table import OUT as _TANH_OUT
from tanh_table import main as table_main
from tanh_table import module_text, relative_fit, report_worst


class Layout(NamedTuple):
    """One path's tables: ``intervals`` of ``width`` from 0, on interval ``i`` polynomials of degree ``deg``
    in ``t = a - (i + anchor) width``, written to ``out``; ``sequential``: coefficients rounded one at a
    time, the rest refitted."""

    intervals: int
    width: float
    anchor: float
    deg: int
    sequential: bool
    out: Path
    isa: str


LAYOUTS = {"avx512": Layout(16, 0.25, 0.5, 6, False, _TANH_OUT.with_name("_ndtr_table.py"), "AVX-512"),
           "avx2": Layout(8, 0.5, 1.0, 7, True, _TANH_OUT.with_name("_ndtr_table_avx2.py"), "AVX2")}
LAYOUT = LAYOUTS["avx2" if "--avx2" in sys.argv else "avx512"]
DEG = LAYOUT.deg
WIDTH = LAYOUT.width
INTERVALS = LAYOUT.intervals
NAMES = tuple(f"{p}{d}" for p in "CD" for d in range(DEG + 1))
OUT = LAYOUT.out


def phi_neg(a: np.ndarray) -> np.ndarray:
    """``Phi(-a)`` in float64."""
    return np.array([0.5 * math.erfc(v / math.sqrt(2.0)) for v in a])


def rounded_fit(t: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, float]:
    """float32 coefficients of ``t^0 .. t^DEG`` fitting ``f`` (relative error), and the float64 fit's
    error; ``LAYOUT.sequential``: rounded from ``t^0`` up, each rounding refitted by the higher ones."""
    c, rel = relative_fit(t, f, f, 0, DEG)
    if not LAYOUT.sequential:
        return np.array([float(np.float32(v)) for v in c]), rel
    fixed = np.zeros(DEG + 1)
    rest = f.copy()
    for d in range(DEG + 1):
        fixed[d] = float(np.float32(relative_fit(t, f, rest, d, DEG)[0][0]))
        rest = rest - fixed[d] * t ** d
    return fixed, rel


def fit() -> np.ndarray:
    """``(2 (DEG + 1), INTERVALS)`` float32: ``C0..`` (``Phi(-a)``) and ``D0..`` (``phi(a)``) per interval."""
    tables = np.zeros((2 * (DEG + 1), INTERVALS))
    for i in range(INTERVALS):
        a = np.linspace(i * WIDTH, (i + 1) * WIDTH, 20000)
        t = a - (i + LAYOUT.anchor) * WIDTH
        cdf = phi_neg(a)
        pdf = np.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
        c, rel_c = rounded_fit(t, cdf)
        d, rel_d = rounded_fit(t, pdf)
        worst_c = float(np.max(np.abs(np.polyval(c[::-1], t) - cdf) / cdf))
        worst_d = float(np.max(np.abs(np.polyval(d[::-1], t) - pdf) / pdf))
        print(f"interval {i:2d} [{i * WIDTH:.3f}, {(i + 1) * WIDTH:.3f}): relative error {rel_c:.2e} (Phi), "
              f"{rel_d:.2e} (phi) (float64); {worst_c:.2e}, {worst_d:.2e} with float32 coefficients")
        tables[:, i] = np.concatenate([c, d])
    return tables.astype(np.float32)


def check() -> None:
    """Every float32 in ``(-4, 4)`` through the float32 GELU kernel against float64 ``x Phi(x)``: the
    worst error in ulps (AVX-512: the table path). (The backward, ``Phi + x phi``, crosses 0 near
    -0.75: the suite holds it to an absolute bound.)"""
    import importlib

    from numba import njit, prange

    act = importlib.import_module("jitgrad.kernels.cpu.activations")

    @njit(parallel=True)
    def exact(x, out):
        for i in prange(x.size):
            v = np.float64(x[i])
            out[i] = v * 0.5 * math.erfc(-v / math.sqrt(2.0))

    def kernel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.empty_like(x)
        act._GELU_F32.parallel(x, y)
        want = np.empty(x.size)
        exact(x, want)
        return y, want

    four = 0x40800000  # the bits of 4.0
    report_worst(kernel, [(0, four), (0x80000000, 0x80000000 + four)])


def write(tables: np.ndarray) -> None:
    OUT.write_text(module_text(tables, (
        f"Tables of the {LAYOUT.isa} float32 GELU (``_elementary.vgelu``), written by ``bench/ndtr_table.py``",
        (f"(its docstring says how they are fitted): ``C0..C{DEG}`` of ``Phi(-|x|)``, ``D0..D{DEG}`` of ``phi(x)``, "
         "per interval.")), NAMES))


if __name__ == "__main__":
    table_main(sys.argv[1:], fit, check, write, OUT)
