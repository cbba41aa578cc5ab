"""Vectorisable elementary functions for the CPU kernels: ``exp``, ``exp_nonpos``, ``expm1``, ``log``, ``log1p``,
``log1pexp``, ``tanh`` (and ``vtanh``, by tables on AVX-512 and AVX2), ``sigmoid``, ``erf``, ``ndtr`` (and GELU's
``vgelu``, by tables on AVX-512).

Numba lowers ``math.exp`` and friends to scalar calls into libm (llvmlite has
no SVML), so a loop that calls one never vectorises. The float32 versions
here are straight-line code: a range reduction, a polynomial, and the
exponent put in or taken out through integer views of the bits; special
inputs (NaN, ±inf, overflow, underflow) are fixed up with selects, never
branches, so LLVM vectorises every loop that calls them (8 float32 lanes in
a ymm register on AVX2). float64 arguments go to ``math`` (correctly
rounded enough, and no float64 polynomial here reaches 1 ulp).

Methods and measured error (float32, every one of the 2^32 inputs against
the float64 ``math`` function; ``tests/kernels/test_elementary.py`` checks a
dense sample in the suite, ``bench/elementary_ulp.py`` runs all 2^32):

- ``exp``: Cody-Waite reduction ``x = n ln2 + r``, ``|r| <= ln2/2``, with
  ln2 split in two (Cephes ``C1``, ``C2``), and Moshier's degree-6 minimax
  polynomial of Cephes ``expf`` (S. L. Moshier, *Methods and Programs for
  Mathematical Functions*, 1989); ``2^n`` is applied as two factors
  ``2^(n//2) * 2^(n - n//2)`` so overflow gives inf and subnormal results
  are rounded once.
- ``exp_nonpos``: ``exp(min(x, 0))``, for the arguments that cannot be positive
  (``x - max`` in softmax, a log-probability): the same reduction and polynomial
  with one power of two and none of ``exp``'s overflow and subnormal steps;
  results below the smallest normal float32 (``x < -87.34``) are flushed to 0,
  as with the FTZ mode of vector units. 1.01 ulp worst where the result is
  normal (all 2^32 inputs); 0.68x the time of ``exp`` in a loop over 128k
  values in [-20, 0] (Zen 4: 31.8 against 47.0 us on AVX-512, 46.8 against
  65.5 us compiled for AVX2).
- ``expm1``: the same reduction, Taylor polynomial of ``expm1(r)`` to degree
  8, and ``expm1(x) = 2 (2^(n-1) expm1(r) + (2^(n-1) - 1/2))``, exact
  rescaling by powers of two.
- ``log``, ``log1p``: fdlibm/FreeBSD ``e_logf.c``/``s_log1pf.c`` (Sun
  Microsystems, 1993): ``x = 2^k m``, ``m`` in ``[sqrt(1/2), sqrt 2)``,
  ``s = f/(2+f)``, the Remez polynomial ``Lg1..Lg4`` in ``s^2``; ``log1p``
  adds the rounding error of ``1 + x`` as ``c / (1 + x)``. Subnormal inputs
  are scaled by ``2^25`` with a select.
- ``log1pexp``: ``log(1 + e^x)`` (softplus), as ``max(x, 0) + log1p(e)`` with
  ``e = exp_nonpos(-|x|)`` in ``(0, 1]``: ``1 + e`` lies in ``[1, 2]``, so ``log1p``'s
  special-input selects drop out (the ``log`` core and its rounding correction
  ``c/u`` stay). Results below the smallest normal are flushed to 0, as
  ``exp_nonpos``'s.
- ``tanh``: in float32 (8 lanes, twice the float64 form's): ``|x| < 0.66``:
  ``x + x^3 P(x^2)``, ``P`` a degree-5 minimax fit (relative error 3.2e-10);
  beyond, ``1 - 2/(e + 1)`` with ``e = exp(2|x|)`` (the ``exp`` below; the
  division's result is below 1/2, so its rounding counts half in the
  result's ulp); sign restored with ``copysign``. Worst error 1.26 ulp (at
  0.6615, just past the seam).
- ``vtanh`` (AVX-512, on 16 float32 lanes, and AVX2, on 8; the tanh activation's
  float32 kernels): NumPy's AVX-512 method, no ``exp`` and no division. The
  half binade of ``|x|`` from ``2^-4`` (16 intervals; below ``2^-4`` the
  first, from 12 the last) indexes 16-entry tables held in one zmm register
  each, fetched with one ``vpermps`` a coefficient: a degree-6 polynomial
  in ``t = |x| - X0`` (``_tanh_table``, fitted by ``bench/tanh_table.py``).
  Worst error 1.23 ulp over every float32 in ``[0, 16)``
  (``bench/tanh_table.py --check``); ~35 % faster than ``tanh``'s form in
  the activation's loops. On AVX2 (8 lanes): 8 binades from ``2^-3``
  (from 16 the last), 8-entry tables in one ymm register each, degree 8
  (``_tanh_table_avx2``): 1.46 ulp, ~32 % faster. ``vtanh_grad`` is its
  ``g * (1 - tanh^2)``.
- ``vgelu`` (AVX-512, 16 float32 lanes, and AVX2, 8; the erf-form GELU's float32
  kernels): ``x Phi(x)`` with ``Phi(-|x|)`` a degree-6 polynomial in
  ``t = |x| - (i + 1/2)/4`` on 16 intervals of width 1/4 below ``|x| = 4``
  (``_ndtr_table``, fitted by ``bench/ndtr_table.py``), each coefficient
  fetched with one ``vpermps`` from a table held in one register;
  ``Phi(x) = 1 - Phi(-x)`` for ``x >= 0``. ``vgelu_grad`` is the backward's
  ``g (Phi + x phi)``, ``phi`` a second table polynomial. Lanes from 4 (and
  NaN), which ``vgelu_beyond`` finds, take ``ndtr`` / ``ndtr_pdf``. Worst
  error 2.13 ulp over every float32 in (-4, 4) (``bench/ndtr_table.py
  --check``), against 5.7 for ``ndtr``'s form; the forward 2x as fast, the
  backward 1.25x. On AVX2 (8-entry tables in one ymm register each): 8
  intervals of width 1/2, degree 7, expanded at each interval's right end
  (``_ndtr_table_avx2``), worst error 2.57 ulp; the forward 1.45x as fast,
  the backward slower than ``ndtr_pdf``'s (``HAS_VGELU_GRAD``).
- ``sigmoid``: ``(1 or e) / (1 + e)`` with ``e = exp_nonpos(-|x|)`` and the
  numerator chosen by the sign of ``x``: one division, no overflow. Worst
  error 2.40 ulp on every third bit pattern (at -4.157: ``exp``'s error,
  carried into a result a binade below ``e``); results below the smallest
  normal are flushed to 0, as ``exp_nonpos``'s. The form it replaced in the
  activations and the recurrent gates, ``e * (1 / (1 + e))``, had 2.83 ulp.
  float64: the same formula with ``math.exp``.
- ``erf``: in float32. ``|x| < 0.75``: Taylor series ``2/sqrt(pi) sum (-1)^n
  x^(2n+1) / (n! (2n+1))`` to n = 8, ``2/sqrt(pi)`` carried as a float32
  pair; ``0.75 <= |x| < 2`` and ``2 <= |x| <= 4``: ``1 - erfc`` with ``erfc``
  a degree-10 Chebyshev interpolant on each piece (near-minimax, Trefethen,
  *Approximation Theory and Approximation Practice*, ch. 16), whose values
  (below 0.29) carry their rounding at a fraction of the result's ulp;
  beyond 4, ``erf`` rounds to ±1 in float32. All three pieces are evaluated
  and selected (no branch). Worst error sampled 1.22 ulp (just past 0.75);
  2.5x faster than the former float64 evaluation.
- ``ndtr`` (the standard normal CDF ``Phi``) and ``ndtr_pdf`` (``Phi`` and the
  density ``phi`` together), for GELU: one piece over the whole range,
  ``Phi(-a) = exp(-a^2/2) t G(t)`` for ``a = |x|``, ``t = 1/(1 + 0.35 a)``, ``G``
  a degree-9 polynomial in ``t`` (centred; fitted for this module by reweighted
  least squares on the relative error, coefficients rounded to float32 one at a
  time from the highest, each rounding refitted by the rest; relative error
  1.3e-7 including the rounding of ``t``), and ``Phi(x) = 1 - Phi(-x)`` for
  ``x >= 0`` (no cancellation: ``Phi(-a) <= 1/2``). ``-a^2/2`` is split exactly
  in two with an FMA, so the tail keeps its relative accuracy. The same
  ``exp(-x^2/2)`` is the density: GELU's backward ``Phi + x phi`` pays one
  ``exp``, not two. Unlike ``1 + erf(x/sqrt 2)`` (thousands of ulps where
  ``Phi`` is small) ``Phi`` keeps its relative accuracy down to the
  subnormals (``exp`` is applied as ``2^(n+26)`` with ``G`` scaled by
  ``2^-26``, so one rounding). Worst error 5.7 ulp on every 1009th bit pattern
  in [-15, 7] plus a dense grid (x = -8.7, the left tail), 5.5 ulp on every
  61st of all 2^32 (``bench/elementary_ulp.py ndtr --stride 61``); about 4 %
  of all inputs, 20 % of those in [-15, 7], are above 1 ulp.

These functions carry their own fast-math flags (``contract`` and ``nsz``, no
``reassoc``): the Cody-Waite subtraction and fdlibm's summation order must
not be re-associated. They are plain ``@njit`` functions that LLVM inlines
into the calling loop (Numba's ``inline="always"`` would instead re-type
their bodies in every kernel and take the caller's ``reassoc`` flag).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from jitgrad.kernels._constants import GELU_KAPPA as _GELU_KAPPA
from jitgrad.kernels._constants import INV_SQRT_2 as _INV_SQRT_2
from jitgrad.kernels._constants import INV_SQRT_2PI as _INV_SQRT_2PI
from jitgrad.kernels._constants import SQRT_2_OVER_PI as _SQRT_2_OVER_PI
from jitgrad.kernels.cpu._jit import njit

from . import _ndtr_table, _ndtr_table_avx2, _tanh_table, _tanh_table_avx2
from ._gemm_simd import SimdVector, _intrinsic_fn, _mark_vector_width
from ._isa import ISA, has_avx2

__all__: list[str] = ["exp", "exp_nonpos", "expm1", "log", "log1p", "log1pexp", "tanh", "sigmoid", "erf", "ndtr",
                      "ndtr_pdf", "vtanh", "vtanh_grad", "HAS_VTANH", "TANH_LANES", "HAS_VGELU", "GELU_LANES",
                      "HAS_VGELU_GRAD", "vgelu", "vgelu_grad", "vgelu_beyond", "GELU_TABLE_TOP"]

#: No ``reassoc``/``arcp``/``afn``: they would undo the reductions' exact steps.
_FLAGS = {"contract", "nsz"}

_f32 = np.float32

_ZERO = _f32(0.0)
_HALF = _f32(0.5)
_ONE = _f32(1.0)
_TWO = _f32(2.0)
_INF = _f32(np.inf)
_NAN = _f32(np.nan)

_LOG2E = _f32(1.44269504088896341)
_LN2_HI = _f32(0.693359375)        # Cephes C1: few bits, so n * C1 is exact
_LN2_LO = _f32(-2.12194440e-4)     # Cephes C2 = ln2 - C1
_EXP_HI = _f32(89.0)               # exp overflows to inf beyond 88.72
_EXP_LO = _f32(-104.0)             # exp rounds to 0 below -103.97
_EXP_NORMAL_LO = _f32(-87.33654)  # exp(x) below 2^-126, the smallest normal float32
_EXPM1_LO = _f32(-18.0)            # expm1 rounds to -1 below -17.33

# Cephes expf: exp(r) = 1 + r + r^2 P(r), |r| <= ln2/2.
_EP0 = _f32(1.9875691500e-4)
_EP1 = _f32(1.3981999507e-3)
_EP2 = _f32(8.3334519073e-3)
_EP3 = _f32(4.1665795894e-2)
_EP4 = _f32(1.6666665459e-1)
_EP5 = _f32(5.0000001201e-1)

# expm1(r) = r + r^2/2 + r^3 (1/6 + r/24 + ...), Taylor to r^8.
_M3 = _f32(1.0 / 6.0)
_M4 = _f32(1.0 / 24.0)
_M5 = _f32(1.0 / 120.0)
_M6 = _f32(1.0 / 720.0)
_M7 = _f32(1.0 / 5040.0)
_M8 = _f32(1.0 / 40320.0)

# fdlibm e_logf.c: |(log(1+s)-log(1-s))/s - Lg(s)| < 2**-34.24.
_LG1 = _f32(0.66666662693)
_LG2 = _f32(0.40000972152)
_LG3 = _f32(0.28498786688)
_LG4 = _f32(0.24279078841)
_LOG_LN2_HI = _f32(6.9313812256e-01)
_LOG_LN2_LO = _f32(9.0580006145e-06)
_MIN_NORMAL = _f32(1.17549435e-38)
_TWO25 = _f32(33554432.0)
_TWENTY_FIVE = _f32(25.0)

# tanh(x) = x + x^3 P(x^2) for |x| < 0.66: a minimax fit of degree 5 in x^2 (relative error
# 3.2e-10, fitted for this module by reweighted least squares on 20000 points).
_TANH_SMALL = _f32(0.66)
_TANH_CLAMP = _f32(19.0)  # 2|x| beyond which tanh rounds to 1 (|x| > 9.01)
_TH0 = _f32(-0.3333332873894185)
_TH1 = _f32(0.13333125763362885)
_TH2 = _f32(-0.05393676746713317)
_TH3 = _f32(0.021646940217050985)
_TH4 = _f32(-0.008047239544707305)
_TH5 = _f32(0.0020265409945813885)

# erf.

_ERF_SMALL = _f32(0.75)
_ERF_SEAM = _f32(2.0)
_ERF_BIG = _f32(4.0)
_ERF_MID_A = _f32(1.375)
_ERF_INV_HALF_A = _f32(1.0 / 0.625)
_ERF_MID_B = _f32(3.0)
_ERF_TAYLOR = tuple(2.0 / math.sqrt(math.pi) * (-1.0) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(9))
# 2/sqrt(pi) as a float32 pair: rounded alone it is 0.9 ulp off, and it is the whole of erf near 0.
_T0_HI = _f32(_ERF_TAYLOR[0])
_T0_LO = _f32(_ERF_TAYLOR[0] - float(_T0_HI))
_T1, _T2, _T3, _T4, _T5, _T6, _T7, _T8 = (_f32(c) for c in _ERF_TAYLOR[1:])
# erfc on [0.75, 2] in u = (|x| - 1.375) / 0.625 and on [2, 4] in v = |x| - 3: Chebyshev
# interpolants of degree 10 (numpy.polynomial.chebyshev.chebinterpolate of math.erfc) converted
# to monomials; absolute error 1.7e-9 and 1.0e-8 (0.03 and 0.17 float32 ulp of erf there).
(_A0, _A1, _A2, _A3, _A4, _A5, _A6, _A7, _A8, _A9, _A10) = (_f32(c) for c in (
    0.051829927217909744, -0.10647484045476198, 0.09150183091668349, -0.038559373381994035,
    0.004654037047919869, 0.0029208589770331763, -0.001320988790541676, 4.8126981073253554e-05,
    9.939429977594157e-05, -1.8089368314983485e-05, -3.149981340655472e-06,
))
(_B0, _B1, _B2, _B3, _B4, _B5, _B6, _B7, _B8, _B9, _B10) = (_f32(c) for c in (
    2.2090496998586383e-05, -0.0001391481912065331, 0.0004177400526906565, -0.0007912032744696951,
    0.0010447848146928707, -0.0010046955653441494, 0.0007358043278922249, -0.0004179976523996877,
    0.00014021302481070203, 1.4175968418530731e-05, -2.175621431311444e-05,
))

# ndtr: Phi(-a) = exp(-a^2/2) t G(s), t = 1/(1 + K a), s = t S1 + S0 in [-1, 1] for a in [0, 14.5]
# (beyond, exp(-a^2/2) is below the smallest subnormal). G's coefficients are written unscaled
# and multiplied by 2^-26 (exact): exp is built as 2^(n+26) p, a normal float32 for every n the
# clamp allows, and the one rounding into the subnormals is the final product's.
_NDTR_K = _f32(0.35)
_NDTR_A_MAX = _f32(14.5)
_NDTR_S1 = _f32(2.3940887451171875)
_NDTR_S0 = _f32(-1.394088625907898)
_NDTR_SHIFT = _f32(26.0)
(_G0, _G1, _G2, _G3, _G4, _G5, _G6, _G7, _G8, _G9) = (_f32(c * 2.0**-26) for c in (
    0.2834422290325165, 0.16343410313129425, 0.05251673609018326, 0.00376489176414907,
    -0.003041537245735526, -0.00039188985829241574, 0.00028926366940140724, 9.421846698387526e-06,
    -2.7130841772304848e-05, 3.88796752304188e-06,
))
_PDF_SCALE = _f32(2.0**-26 * _INV_SQRT_2PI)  # 1/sqrt(2 pi), undoing the 2^26 of exp


# ----------------------------------------------------------------------------- bit views

@intrinsic
def _fma_f32(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``): the exact low part of a product."""
    if not (a == types.float32 and b == types.float32 and c == types.float32):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float32(types.float32, types.float32, types.float32), codegen


@intrinsic
def _select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select``: both are computed, and no branch is left to undo.

    Python 3.12 compiles a conditional expression that ends a function (or an assignment just
    before its ``return``) into two ``return`` statements: Numba's code then branches, LLVM sinks
    the computation of the value returned on one side into that branch, and a loop calling the
    function did not vectorise (``log1pexp``'s, through ``exp_nonpos``'s last choice). 3.11 kept
    one return and LLVM made the select itself. Every choice in the float32 functions is this.
    """
    if cond != types.boolean or a != b:
        return None

    def codegen(context, builder, signature, args):
        return builder.select(*args)

    return a(cond, a, b), codegen


@intrinsic
def _pow2_f32(typingctx, n):
    """``2.0**n`` for a float32 ``n`` holding an integer in [-126, 127], built from its exponent bits."""
    if n != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        k = builder.fptosi(args[0], i32)
        bits = builder.shl(builder.add(k, ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def _log_split_f32(typingctx, x):
    """``(m, k)`` with ``x = 2^k m``, ``m`` in ``[sqrt(1/2), sqrt 2)`` for a positive normal float32 ``x``.

    fdlibm's trick: adding ``0x3f800000 - 0x3f3504f3`` to the bits carries into the
    exponent exactly when the mantissa is at least ``sqrt 2``.
    """
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        f32 = ir.FloatType()
        ix = builder.add(builder.bitcast(args[0], i32), ir.Constant(i32, 0x3F800000 - 0x3F3504F3))
        k = builder.sub(builder.lshr(ix, ir.Constant(i32, 23)), ir.Constant(i32, 127))
        m = builder.add(builder.and_(ix, ir.Constant(i32, 0x007FFFFF)), ir.Constant(i32, 0x3F3504F3))
        return context.make_tuple(builder, signature.return_type,
                                  (builder.bitcast(m, f32), builder.sitofp(k, f32)))

    return types.UniTuple(types.float32, 2)(types.float32), codegen


# ----------------------------------------------------------------------------- float32 kernels

@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _exp_f32(x):
    xc = _select(x < _EXP_HI, x, _EXP_HI)  # NaN and +inf land here too; fixed at the end
    xc = _select(xc > _EXP_LO, xc, _EXP_LO)
    n = np.floor(xc * _LOG2E + _HALF)
    r = xc - n * _LN2_HI
    r = r - n * _LN2_LO
    z = r * r
    p = (((((_EP0 * r + _EP1) * r + _EP2) * r + _EP3) * r + _EP4) * r + _EP5) * z + r + _ONE
    n1 = np.floor(n * _HALF)
    y = p * _pow2_f32(n1) * _pow2_f32(n - n1)
    return _select(x != x, x, y)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _exp_nonpos_f32(x):
    xc = _select(x > _ZERO, _ZERO, x)  # NaN fails both tests and stays NaN through every step
    xc = _select(xc < _EXP_NORMAL_LO, _EXP_NORMAL_LO, xc)
    n = np.floor(xc * _LOG2E + _HALF)  # in [-126, 0]: 2^n is a normal float32
    r = xc - n * _LN2_HI
    r = r - n * _LN2_LO
    z = r * r
    p = (((((_EP0 * r + _EP1) * r + _EP2) * r + _EP3) * r + _EP4) * r + _EP5) * z + r + _ONE
    y = p * _pow2_f32(n)
    return _select(x < _EXP_NORMAL_LO, _ZERO, y)


def _exp_nonpos_f64(x: float) -> float:
    return math.exp(min(x, 0.0))


_exp_nonpos_f64_jit = njit(cache=True, error_model="numpy")(_exp_nonpos_f64)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _sigmoid_f32(x):
    e = _exp_nonpos_f32(-abs(x))  # exp of a non-positive number: no overflow, no branch
    return _select(x >= _ZERO, _ONE, e) / (_ONE + e)  # NaN: e is NaN, and so is the result


def _sigmoid_f64(x: float) -> float:
    e = math.exp(-abs(x))
    return (1.0 if x >= 0.0 else e) / (1.0 + e)


_sigmoid_f64_jit = njit(cache=True, error_model="numpy")(_sigmoid_f64)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _expm1_f32(x):
    xc = _select(x < _EXP_HI, x, _EXP_HI)
    xc = _select(xc > _EXPM1_LO, xc, _EXPM1_LO)
    n = np.floor(xc * _LOG2E + _HALF)
    r = xc - n * _LN2_HI
    r = r - n * _LN2_LO
    z = r * r
    q = (((((_M8 * r + _M7) * r + _M6) * r + _M5) * r + _M4) * r + _M3)
    em = r + (z * _HALF + z * r * q)
    t = _pow2_f32(n - _ONE)  # n - 1 in [-27, 127]: finite; the final doubling may overflow to inf
    y = _TWO * (t * em + (t - _HALF))
    return _select((x != x) | (x == _ZERO), x, y)  # NaN, and the sign of -0


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _log_core_f32(m, k, c):
    """fdlibm's ``log(2^k m) + c`` for ``m`` in ``[sqrt(1/2), sqrt 2)``, ``c`` a small correction."""
    f = m - _ONE
    s = f / (_TWO + f)
    z = s * s
    w = z * z
    big_r = z * (_LG1 + w * _LG3) + w * (_LG2 + w * _LG4)
    hfsq = _HALF * f * f
    return k * _LOG_LN2_HI - ((hfsq - (s * (hfsq + big_r) + (k * _LOG_LN2_LO + c))) - f)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _log_f32(x):
    tiny = x < _MIN_NORMAL
    m, k = _log_split_f32(_select(tiny, x * _TWO25, x))
    y = _log_core_f32(m, _select(tiny, k - _TWENTY_FIVE, k), _ZERO)
    y = _select(x == _ZERO, -_INF, y)
    y = _select(x < _ZERO, _NAN, y)
    return _select((x != x) | (x == _INF), x, y)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _log1p_f32(x):
    u = _ONE + x
    m, k = _log_split_f32(u)
    # The rounding error of 1 + x, relative to u (fdlibm s_log1pf.c); irrelevant once k >= 25.
    # Which difference is exact depends on u's binade, not on k (k also counts the sqrt 2 shift).
    c = _select(u >= _TWO, _ONE - (u - x), x - (u - _ONE))
    c = _select(k < _TWENTY_FIVE, c / u, _ZERO)
    y = _log_core_f32(m, k, c)
    y = _select(x == -_ONE, -_INF, y)
    y = _select(x < -_ONE, _NAN, y)
    return _select((x != x) | (x == _INF), x, y)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _log1pexp_f32(x):
    e = _exp_nonpos_f32(-abs(x))  # NaN stays NaN through every step
    u = _ONE + e  # in [1, 2]
    m, k = _log_split_f32(u)
    c = (e - (u - _ONE)) / u  # the rounding error of 1 + e (exact difference), relative to u
    return _select(x > _ZERO, x, _ZERO) + _log_core_f32(m, k, c)


def _log1pexp_f64(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


_log1pexp_f64_jit = njit(cache=True, error_model="numpy")(_log1pexp_f64)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _tanh_f32(x):
    a = abs(x)
    t = a * a
    small = a + a * t * (((((_TH5 * t + _TH4) * t + _TH3) * t + _TH2) * t + _TH1) * t + _TH0)
    # 1 - 2/(e + 1) with e = exp(2a), 2a in [1.32, 19]: Cephes exp without its range fix-ups
    # (n in [2, 28]: one power of two, no overflow, no subnormal). Written out here rather
    # than calling _exp_f32: LLVM would not inline the nested call, and the loop stayed scalar.
    y = a + a
    y = _select(y < _TANH_CLAMP, y, _TANH_CLAMP)
    n = np.floor(y * _LOG2E + _HALF)
    r = y - n * _LN2_HI
    r = r - n * _LN2_LO
    p = (((((_EP0 * r + _EP1) * r + _EP2) * r + _EP3) * r + _EP4) * r + _EP5) * (r * r) + r + _ONE
    big = _ONE - _TWO / (p * _pow2_f32(n) + _ONE)
    th = _select(a >= _TANH_SMALL, big, small)  # NaN fails the test: small is NaN, no separate NaN select
    return np.copysign(th, x)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _erf_f32(x):
    a = abs(x)
    t = a * a
    p = ((((((_T8 * t + _T7) * t + _T6) * t + _T5) * t + _T4) * t + _T3) * t + _T2) * t + _T1
    small = a * _T0_HI + a * (_T0_LO + t * p)
    u = (a - _ERF_MID_A) * _ERF_INV_HALF_A
    qa = _A10
    qa = qa * u + _A9
    qa = qa * u + _A8
    qa = qa * u + _A7
    qa = qa * u + _A6
    qa = qa * u + _A5
    qa = qa * u + _A4
    qa = qa * u + _A3
    qa = qa * u + _A2
    qa = qa * u + _A1
    qa = qa * u + _A0
    v = _select(a < _ERF_BIG, a, _ERF_BIG) - _ERF_MID_B
    qb = _B10
    qb = qb * v + _B9
    qb = qb * v + _B8
    qb = qb * v + _B7
    qb = qb * v + _B6
    qb = qb * v + _B5
    qb = qb * v + _B4
    qb = qb * v + _B3
    qb = qb * v + _B2
    qb = qb * v + _B1
    qb = qb * v + _B0
    e = _ONE - _select(a < _ERF_SEAM, qa, qb)
    e = _select(a < _ERF_SMALL, small, e)
    return _select(x != x, x, np.copysign(e, x))


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _ndtr_pdf_f32(x):
    a = abs(x)
    a = _select(a > _NDTR_A_MAX, _NDTR_A_MAX, a)  # +-inf clamped; NaN stays NaN, and so does every step below
    t = _ONE / (_ONE + _NDTR_K * a)
    s = t * _NDTR_S1 + _NDTR_S0
    g = _G9
    g = g * s + _G8
    g = g * s + _G7
    g = g * s + _G6
    g = g * s + _G5
    g = g * s + _G4
    g = g * s + _G3
    g = g * s + _G2
    g = g * s + _G1
    g = g * s + _G0
    # exp(-a^2/2) with -a^2/2 = y + y_lo exactly; y in [-105.2, 0]: Cephes exp, no range fix-ups.
    na = -_HALF * a
    y = na * a
    y_lo = _fma_f32(na, a, -y)
    n = np.floor(y * _LOG2E + _HALF)
    r = y - n * _LN2_HI
    r = r - n * _LN2_LO
    p = (((((_EP0 * r + _EP1) * r + _EP2) * r + _EP3) * r + _EP4) * r + _EP5) * (r * r) + r + _ONE
    e = p * _pow2_f32(n + _NDTR_SHIFT)
    e = e + e * y_lo  # exp(-a^2/2) 2^26
    h = (e * t) * g  # Phi(-a)
    cdf = _select(x < _ZERO, h, _ONE - h)
    return cdf, e * _PDF_SCALE


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _ndtr_f32(x):
    return _ndtr_pdf_f32(x)[0]


def _ndtr_f64(x: float) -> float:
    return 0.5 * math.erfc(-x * _INV_SQRT_2)


def _ndtr_pdf_f64(x: float) -> tuple[float, float]:
    return 0.5 * math.erfc(-x * _INV_SQRT_2), math.exp(-0.5 * x * x) * _INV_SQRT_2PI


_ndtr_f64_jit = njit(cache=True, error_model="numpy")(_ndtr_f64)
_ndtr_pdf_f64_jit = njit(cache=True, error_model="numpy")(_ndtr_pdf_f64)


# ----------------------------------------------------------------------------- dtype dispatch
#
# The public names are plain Python functions (the float64 ``math`` result, so they
# work outside Numba too) overloaded for Numba: float32 gets the vectorisable
# kernel above, float64 keeps ``math``.

def _dispatching(name: str, doc: str, f32_impl, f64_impl):
    """A Python function ``name`` (``f64_impl``, for use outside Numba) overloaded for ``@njit`` code."""
    def stub(x: float) -> float:
        return f64_impl(x)

    stub.__name__ = stub.__qualname__ = name
    stub.__doc__ = doc

    @overload(stub, jit_options={"fastmath": _FLAGS, "error_model": "numpy"})
    def _ol(x):
        if x == types.float32:
            return lambda x: f32_impl(x)
        if x == types.float64:
            return lambda x: f64_impl(x)
        return None

    return stub


exp = _dispatching("exp", "``e**x``; in ``@njit`` code float32 takes the vector kernel, float64 ``math``.",
                   _exp_f32, math.exp)
exp_nonpos = _dispatching(
    "exp_nonpos", "``e**min(x, 0)``: ``exp`` for arguments that cannot be positive; float32 results below "
    "the smallest normal are flushed to 0.", _exp_nonpos_f32, _exp_nonpos_f64_jit)
expm1 = _dispatching("expm1", "``e**x - 1``, accurate near 0.", _expm1_f32, math.expm1)
log = _dispatching("log", "Natural logarithm (``-inf`` at 0, NaN below).", _log_f32, math.log)
log1p = _dispatching("log1p", "``log(1 + x)``, accurate near 0.", _log1p_f32, math.log1p)
log1pexp = _dispatching("log1pexp", "``log(1 + e**x)`` (softplus) without overflow; float32 results below the "
                        "smallest normal are flushed to 0.", _log1pexp_f32, _log1pexp_f64_jit)
tanh = _dispatching("tanh", "Hyperbolic tangent.", _tanh_f32, math.tanh)
sigmoid = _dispatching("sigmoid", "The logistic function ``1 / (1 + e**-x)``; float32 results below the smallest "
                       "normal are flushed to 0.", _sigmoid_f32, _sigmoid_f64_jit)
erf = _dispatching("erf", "Error function.", _erf_f32, math.erf)
ndtr = _dispatching("ndtr", "Standard normal CDF ``Phi(x) = erfc(-x/sqrt 2)/2``, relatively accurate in the tail.",
                    _ndtr_f32, _ndtr_f64_jit)
ndtr_pdf = _dispatching("ndtr_pdf", "``(Phi(x), phi(x))``: the normal CDF and density, sharing one ``exp``.",
                        _ndtr_pdf_f32, _ndtr_pdf_f64_jit)


# ----------------------------------------------------------------------------- tanh by tables (AVX-512, AVX2)


class _TanhTables(NamedTuple):
    """Where :func:`vtanh`'s tables live for one vector width, and how ``|x|`` indexes them."""

    #: The module holding ``X0`` and ``C0..Cn`` (written by ``bench/tanh_table.py``).
    module: Any
    #: ``|x|``'s bits shifted right by this give the interval: 22, the exponent and the first mantissa
    #: bit (half binades); 23, the exponent alone (binades).
    shift: int
    #: The bits of the lowest interval's start (interval 0 also holds everything below it).
    first_bits: int
    #: ``|x|`` is clamped to this, inside the last interval (whose table gives 1).
    top: float


#: By lanes: 16 on AVX-512 (16 half binades from 2^-4, degree 6), 8 on AVX2 (8 binades from 2^-3,
#: degree 8). One ``vpermps`` reads a whole table from one register and leaves it intact: 16
#: entries in a zmm, 8 in a ymm.
_TANH_TABLES = {16: _TanhTables(_tanh_table, 22, 0x3D800000, 15.0),
                8: _TanhTables(_tanh_table_avx2, 23, 0x3E000000, 24.0)}

#: Lanes of the vectors :func:`vtanh` takes on this path: 16 on AVX-512, 8 on AVX2 (with its integer
#: permutes; an AVX + FMA CPU without them takes this path's other kernels), 0 where it does not exist.
TANH_LANES: int = 16 if ISA.name == "avx512" else 8 if ISA.name == "avx2" and has_avx2() else 0
#: Whether :func:`vtanh` and :func:`vtanh_grad` exist on this path.
HAS_VTANH: bool = TANH_LANES > 0
#: Lanes of the vectors :func:`vgelu` takes: 16 on AVX-512 (16-entry tables: 16 intervals of 1/4,
#: degree 6), 8 on AVX2 with its integer permutes (8 intervals of 1/2, degree 7), else 0.
GELU_LANES: int = TANH_LANES
#: Whether :func:`vgelu` and its kin exist on this path.
HAS_VGELU: bool = GELU_LANES > 0
#: Whether GELU's float32 backward kernels take :func:`vgelu_grad`: on AVX-512 (1.25x ``ndtr_pdf``'s
#: loop). On AVX2 its two degree-7 polynomials, 16 ``vpermps``, lost to ``ndtr_pdf``'s one ``exp``
#: and one division (2 threads, Zen 3, 2.77M elements: 1.6-1.7 -> 1.9 ms), while the forward's one
#: polynomial won (1.52 -> 1.05 ms).
HAS_VGELU_GRAD: bool = GELU_LANES == 16
#: The GELU tables of each vector width, and where on its interval each polynomial is expanded
#: (``t = |x| - (i + anchor) w``; ``bench/ndtr_table.py``'s layouts). AVX2's 8 intervals of 1/2 are
#: expanded at their right end, where ``Phi(-|x|)`` is smallest: every term of the polynomial then
#: has the sign of the result (``Phi(-a)``'s derivatives alternate). From the midpoint, the
#: constant and ``t C1`` cancelled to less than half the constant near the end of an interval:
#: 2.71 ulp at x = -3.4858, from the right end 2.57 at -3.0386, from three quarters 2.88 (every
#: float32 in (-4, 4); AVX-512's 16 intervals of 1/4 from their midpoints: 2.13).
_GELU_TABLES = {16: (_ndtr_table, 0.5), 8: (_ndtr_table_avx2, 1.0)}


def _float_vector(v, lanes: int) -> bool:
    return lanes > 0 and isinstance(v, SimdVector) and v.dtype == types.float32 and v.lanes == lanes


def _tanh_vector(v) -> bool:
    """Whether ``v`` types as the vector :func:`vtanh` takes on this path (``TANH_LANES`` float32)."""
    return _float_vector(v, TANH_LANES)


def _gelu_vector(v) -> bool:
    """Whether ``v`` types as the vector :func:`vgelu` takes on this path (``GELU_LANES`` float32)."""
    return _float_vector(v, GELU_LANES)


def _table_intrinsic(name: str, ir_of, doc: str, accepts=_gelu_vector):
    """The intrinsic ``name(v)`` on the float32 vectors ``accepts`` takes, whose IR is ``ir_of(builder, v)``."""
    def typer(typingctx, v):
        if not accepts(v):
            return None

        def codegen(context, builder, sig, args):
            _mark_vector_width(builder)
            return ir_of(builder, args[0])

        return v(v), codegen

    typer.__name__ = typer.__qualname__ = name
    typer.__doc__ = doc
    return intrinsic(typer)


def _table_grad_intrinsic(name: str, ir_of, doc: str, accepts=_gelu_vector):
    """The intrinsic ``name(g, v)`` on two vectors ``accepts`` takes, whose IR is ``ir_of(builder, g, v)``."""
    def typer(typingctx, g, v):
        if not (accepts(v) and g == v):
            return None

        def codegen(context, builder, sig, args):
            _mark_vector_width(builder)
            return ir_of(builder, args[0], args[1])

        return v(g, v), codegen

    typer.__name__ = typer.__qualname__ = name
    typer.__doc__ = doc
    return intrinsic(typer)


def _fabs(builder, x):
    fv = x.type
    return builder.call(_intrinsic_fn(builder, f"llvm.fabs.v{fv.count}f32", fv, [fv]), [x])


def _splat(fv, value):
    """The float32 vector constant of type ``fv`` with every lane ``value`` (rounded to float32)."""
    return ir.Constant(fv, [float(np.float32(value))] * fv.count)


def _vfma(builder, a, b, c):
    """``a * b + c`` lane by lane, rounded once (``llvm.fma`` on the float32 vectors)."""
    fv = a.type
    return builder.call(_intrinsic_fn(builder, f"llvm.fma.v{fv.count}f32", fv, [fv, fv, fv]), [a, b, c])


def _lookup(builder, idx, values):
    """Lane ``k`` of the result is ``values[idx[k]]``, a table of 16 (zmm) or 8 (ymm) entries in one
    register: one ``vpermps``, which leaves it intact (``vpermi2ps``, two registers, overwrites one)."""
    fv = ir.VectorType(ir.FloatType(), len(values))
    name = "llvm.x86.avx512.permvar.sf.512" if len(values) == 16 else "llvm.x86.avx2.permps"
    permute = _intrinsic_fn(builder, name, fv, [fv, idx.type])
    return builder.call(permute, [ir.Constant(fv, [float(v) for v in values]), idx])


def _vtanh_ir(builder, x):
    """The IR of :func:`vtanh` on the float32 vector ``x`` (16 or 8 lanes)."""
    fv = x.type
    lanes = fv.count
    tables = _TANH_TABLES[lanes]
    iv = ir.VectorType(ir.IntType(32), lanes)

    def ints(value):
        return ir.Constant(iv, [value] * lanes)

    ax = _fabs(builder, x)
    # Clamped inside the last interval (constant 1): inf gives 1, not inf * 0. A NaN fails the
    # comparison and stays: t and the result are NaN whatever interval its bits pick.
    top = _splat(fv, tables.top)
    ax = builder.select(builder.fcmp_ordered(">", ax, top), top, ax)
    # The index from |x| raised to the first interval's start (below it, interval 0): no integer clamps.
    first = _splat(fv, np.array([tables.first_bits], np.uint32).view(np.float32)[0])
    ai = builder.select(builder.fcmp_ordered("<", ax, first), first, ax)
    idx = builder.sub(builder.lshr(builder.bitcast(ai, iv), ints(tables.shift)),
                      ints(tables.first_bits >> tables.shift))
    t = builder.fsub(ax, _lookup(builder, idx, tables.module.X0))
    p = _table_horner(builder, idx, t, tables.module, "C")
    sign = builder.and_(builder.bitcast(x, iv), ints(-0x80000000))
    return builder.bitcast(builder.or_(builder.bitcast(p, iv), sign), fv)


def _table_horner(builder, idx, t, module, prefix):
    """``sum_d P<d>[idx] t^d`` by Horner's rule, ``P`` = ``prefix``: the polynomial whose coefficient
    tables ``<prefix>0 .. <prefix>n`` a table module holds, each fetched with one :func:`_lookup`."""
    degree = max(int(name[len(prefix):]) for name in vars(module)
                 if name.startswith(prefix) and name[len(prefix):].isdigit())
    p = _lookup(builder, idx, getattr(module, f"{prefix}{degree}"))
    for d in range(degree - 1, -1, -1):
        p = _vfma(builder, p, t, _lookup(builder, idx, getattr(module, f"{prefix}{d}")))
    return p


def _vtanh_grad_ir(builder, g, x):
    """``g (1 - t^2)`` with ``t`` :func:`vtanh`'s IR of ``x``."""
    t = _vtanh_ir(builder, x)
    neg_t = builder.fsub(_splat(t.type, -0.0), t)
    return builder.fmul(g, _vfma(builder, neg_t, t, _splat(t.type, 1.0)))


vtanh = _table_intrinsic("vtanh", _vtanh_ir, """``tanh`` of the float32 lanes of ``v`` from the tables of ``_tanh_table`` (16 lanes, AVX-512) or
    ``_tanh_table_avx2`` (8 lanes, AVX2); see ``HAS_VTANH`` and ``TANH_LANES``.

    NumPy's AVX-512 method: the interval of ``|x|`` indexes tables of a polynomial in ``t = |x| -
    X0``, each coefficient fetched with one ``vpermps`` from a register it leaves intact; no
    ``exp``, no division. AVX-512: 16 half binades, degree 6, about 21 instructions for 16 lanes
    (against ~32 and a division for :func:`tanh`'s form); AVX2: 8 binades, degree 8, about 27 for
    8 lanes. The index comes from ``|x|`` raised to the first interval's start (no integer clamps)
    and a NaN runs through as NaN (no select). Worst error over every float32 in ``[0, 16)``
    (``bench/tanh_table.py --check``): 1.23 ulp (AVX-512), 1.46 ulp (AVX2); the sign is restored
    exactly, and from 12 the table gives 1. The first AVX-512 tables held 32 quarter binades in two
    registers each, read by ``vpermi2ps`` (which overwrites one of its three): 1.30 ulp, and 13 %
    slower (128k elements, one thread, Zen 4: 39.5 -> 34.4 us).
    """, _tanh_vector)
vtanh_grad = _table_grad_intrinsic("vtanh_grad", _vtanh_grad_ir, """``g * (1 - tanh(v)^2)`` lane by lane, ``tanh`` as
:func:`vtanh`'s (tanh's backward).""", _tanh_vector)


def _vgelu_tanh_ir(builder, x, g=None):
    """The IR of :func:`vgelu_tanh` on the float32 vector ``x`` (``TANH_LANES``); with ``g``, of
    :func:`vgelu_tanh_grad`. The scalar kernels' formulas (``activations._gelu_at``,
    ``_gelu_tanh_grad``), with :func:`vtanh`'s IR for the ``tanh``."""
    fv = x.type

    def const(value):
        return _splat(fv, value)

    x2 = builder.fmul(x, x)
    inner = builder.fmul(builder.fmul(const(_SQRT_2_OVER_PI), x),
                         _vfma(builder, const(_GELU_KAPPA), x2, const(1.0)))  # c (x + kappa x^3)
    t = _vtanh_ir(builder, inner)
    half_x = builder.fmul(const(0.5), x)
    if g is None:
        return builder.fmul(half_x, builder.fadd(const(1.0), t))
    sech2 = _vfma(builder, builder.fsub(const(-0.0), t), t, const(1.0))
    # In this order the second term is 0 wherever sech2 is (from |x| = 10) until x^2 overflows (1.8e19:
    # 0 * inf, NaN, as in the reference's float32 arithmetic).
    d_inner = builder.fmul(const(_SQRT_2_OVER_PI), _vfma(builder, const(3 * _GELU_KAPPA), x2, const(1.0)))
    half_one_plus_t = _vfma(builder, const(0.5), t, const(0.5))
    return builder.fmul(g, _vfma(builder, builder.fmul(half_x, sech2), d_inner, half_one_plus_t))


def _vgelu_tanh_grad_ir(builder, g, x):
    return _vgelu_tanh_ir(builder, x, g)


vgelu_tanh = _table_intrinsic("vgelu_tanh", _vgelu_tanh_ir, """GELU's tanh form, ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, of the float32 lanes of
    ``v`` (``TANH_LANES``), the ``tanh`` :func:`vtanh`'s.""", _tanh_vector)
vgelu_tanh_grad = _table_grad_intrinsic("vgelu_tanh_grad", _vgelu_tanh_grad_ir, """``g`` times the derivative of
    :func:`vgelu_tanh` lane by lane (its backward).""", _tanh_vector)


# ----------------------------------------------------------------------------- GELU by tables (AVX-512, AVX2)

#: Below this ``|x|`` :func:`vgelu` takes ``Phi`` from the tables (``_ndtr_table``: 16 intervals of 1/4;
#: ``_ndtr_table_avx2``: 8 of 1/2).
GELU_TABLE_TOP = 4.0


def _vgelu_ir(builder, x, g=None):
    """The IR of :func:`vgelu` on the float32 vector ``x`` (``GELU_LANES``); with ``g``, of :func:`vgelu_grad`."""
    fv = x.type
    lanes = fv.count
    iv = ir.VectorType(ir.IntType(32), lanes)
    tables, anchor = _GELU_TABLES[lanes]

    def const(value):
        return _splat(fv, value)

    intervals = len(tables.C0)
    width = GELU_TABLE_TOP / intervals  # 1/4 (AVX-512) or 1/2 (AVX2)
    ax = _fabs(builder, x)
    top = const(intervals - 1.0)
    fi = builder.call(_intrinsic_fn(builder, f"llvm.floor.v{lanes}f32", fv, [fv]), [builder.fmul(ax, const(1 / width))])
    fi = builder.select(builder.fcmp_ordered(">", fi, top), top, fi)  # |x| from 4: any interval will do
    idx = builder.fptosi(fi, iv)
    # |x| - i w exact (an FMA), then - anchor w: exact from |x| = 1/2 (a multiple of ulp(|x|) within 1/2)
    t = builder.fsub(_vfma(builder, fi, const(-width), ax), const(anchor * width))
    tail = _table_horner(builder, idx, t, tables, "C")  # Phi(-|x|)
    cdf = builder.select(builder.fcmp_ordered("<", x, const(0.0)), tail, builder.fsub(const(1.0), tail))
    if g is None:
        return builder.fmul(x, cdf)
    pdf = _table_horner(builder, idx, t, tables, "D")  # phi(x)
    return builder.fmul(g, _vfma(builder, x, pdf, cdf))  # g (Phi + x phi)


def _vgelu_grad_ir(builder, g, x):
    return _vgelu_ir(builder, x, g)


vgelu = _table_intrinsic("vgelu", _vgelu_ir, """``x Phi(x)`` (GELU) of the float32 lanes of ``v`` (``GELU_LANES``) for ``|x| < 4``, from the
    tables of ``_ndtr_table`` (16 lanes, AVX-512) or ``_ndtr_table_avx2`` (8 lanes, AVX2); a lane
    from 4 (or NaN) gets a meaningless value: the caller finds those vectors with
    :func:`vgelu_beyond` and takes :func:`ndtr` there.

    ``Phi(-|x|)`` is a degree-6 polynomial in ``t = |x| - (i + 1/2)/4`` on interval ``i`` of
    ``|x|`` (AVX2: degree 7, ``t = |x| - (i + 1)/2``), each coefficient fetched with one ``vpermps``
    from a table in one register: no ``exp``, no division (the ``ndtr`` form pays both and a degree-9 polynomial). ``Phi(x) = 1 - Phi(-x)``
    for ``x >= 0``.
    """)
vgelu_grad = _table_grad_intrinsic("vgelu_grad", _vgelu_grad_ir, """``g (Phi(x) + x phi(x))`` lane by lane (GELU's backward, ``GELU_LANES`` float32, ``|x| < 4``): ``Phi``
    as :func:`vgelu`'s, the density ``phi`` a second table polynomial on the same intervals.""")


@intrinsic
def vgelu_beyond(typingctx, v):
    """Whether a lane of ``v`` (``GELU_LANES`` float32) lies beyond :func:`vgelu`'s tables: ``|x| >= 4`` or NaN."""
    if not _gelu_vector(v):
        return None

    def codegen(context, builder, sig, args):
        x = args[0]
        lanes = x.type.count
        beyond = builder.fcmp_unordered(">=", _fabs(builder, x), ir.Constant(x.type, [GELU_TABLE_TOP] * lanes))
        return builder.icmp_unsigned("!=", builder.bitcast(beyond, ir.IntType(lanes)), ir.Constant(ir.IntType(lanes), 0))

    return types.boolean(v), codegen
