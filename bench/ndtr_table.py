"""Fit the tables of the AVX-512 float32 GELU (``jitgrad/kernels/cpu/_ndtr_table.py``).

    python bench/ndtr_table.py            # print each interval's fit error
    python bench/ndtr_table.py --write    # and rewrite the table module
    python bench/ndtr_table.py --check    # every float32 in (-4, 4) through the GELU kernel (skips the fit)

``Phi(-a)`` (the standard normal CDF) and the density ``phi(a)`` for ``a = |x| < 4``, in 16
intervals of width 1/4 (a 16-entry table is one zmm register: one non-destructive ``vpermps`` a
coefficient): on interval ``i``, ``Phi(-a) = C0 + t (C1 + ... + t C6)`` and ``phi(a) = D0 + t (D1 +
... + t D6)`` with ``t = a - (i + 1/2)/4``. The coefficients minimise the error relative to the
function (reweighted least squares, ``tanh_table.relative_fit``) on 20,000 points of the interval,
then round to float32 (``|t| <= 1/8``: the higher coefficients' rounding weighs little). ``Phi(x)`` is ``Phi(-a)`` for negative ``x`` and ``1 - Phi(-a)`` otherwise
(``Phi(-a) <= 1/2``: no cancellation); the backward is ``Phi(x) + x phi(x)``. From ``|x| = 4`` the
kernels take ``_elementary.ndtr`` / ``ndtr_pdf``. ``tests/kernels/test_elementary.py`` holds the
GELU kernels to their bounds.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from tanh_table import OUT as _TANH_OUT
from tanh_table import main as table_main
from tanh_table import module_text, relative_fit, report_worst

DEG = 6
WIDTH = 0.25
INTERVALS = 16
NAMES = tuple(f"{p}{d}" for p in "CD" for d in range(DEG + 1))
OUT = _TANH_OUT.with_name("_ndtr_table.py")


def phi_neg(a: np.ndarray) -> np.ndarray:
    """``Phi(-a)`` in float64."""
    return np.array([0.5 * math.erfc(v / math.sqrt(2.0)) for v in a])


def fit() -> np.ndarray:
    """``(14, 16)`` float32: ``C0..C6`` (``Phi(-a)``) and ``D0..D6`` (``phi(a)``) per interval."""
    tables = np.zeros((2 * (DEG + 1), INTERVALS))
    for i in range(INTERVALS):
        a = np.linspace(i * WIDTH, (i + 1) * WIDTH, 20000)
        t = a - (i + 0.5) * WIDTH
        cdf = phi_neg(a)
        pdf = np.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
        c, rel_c = relative_fit(t, cdf, cdf, 0, DEG)
        d, rel_d = relative_fit(t, pdf, pdf, 0, DEG)
        print(f"interval {i:2d} [{i * WIDTH:.3f}, {(i + 1) * WIDTH:.3f}): relative error {rel_c:.2e} (Phi), "
              f"{rel_d:.2e} (phi) (float64)")
        tables[:, i] = [float(np.float32(v)) for v in np.concatenate([c, d])]
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
        "Tables of the AVX-512 float32 GELU (``_elementary.vgelu``), written by ``bench/ndtr_table.py``",
        "(its docstring says how they are fitted): ``C0..C6`` of ``Phi(-|x|)``, ``D0..D6`` of ``phi(x)``, per interval."),
        NAMES))


if __name__ == "__main__":
    table_main(sys.argv[1:], fit, check, write, OUT)
