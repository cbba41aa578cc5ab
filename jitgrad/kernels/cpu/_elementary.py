"""Vectorisable elementary functions for the CPU kernels: ``exp``, ``expm1``, ``log``, ``log1p``, ``tanh``, ``erf``.

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
- ``expm1``: the same reduction, Taylor polynomial of ``expm1(r)`` to degree
  8, and ``expm1(x) = 2 (2^(n-1) expm1(r) + (2^(n-1) - 1/2))``, exact
  rescaling by powers of two.
- ``log``, ``log1p``: fdlibm/FreeBSD ``e_logf.c``/``s_log1pf.c`` (Sun
  Microsystems, 1993): ``x = 2^k m``, ``m`` in ``[sqrt(1/2), sqrt 2)``,
  ``s = f/(2+f)``, the Remez polynomial ``Lg1..Lg4`` in ``s^2``; ``log1p``
  adds the rounding error of ``1 + x`` as ``c / (1 + x)``. Subnormal inputs
  are scaled by ``2^25`` with a select.
- ``tanh``: in float32 (8 lanes, twice the float64 form's): ``|x| < 0.66``:
  ``x + x^3 P(x^2)``, ``P`` a degree-5 minimax fit (relative error 3.2e-10);
  beyond, ``1 - 2/(e + 1)`` with ``e = exp(2|x|)`` (the ``exp`` below; the
  division's result is below 1/2, so its rounding counts half in the
  result's ulp); sign restored with ``copysign``. Worst error 1.26 ulp (at
  0.6615, just past the seam).
- ``erf``: in float64; ``|x| < 0.75``: Taylor series ``2/sqrt(pi) sum (-1)^n
  x^(2n+1) / (n! (2n+1))`` to n = 9 (alternating: error < 5e-11 relative);
  ``0.75 <= |x| <= 4``: Chebyshev interpolant of degree 16 (near-minimax,
  Trefethen, *Approximation Theory and Approximation Practice*, ch. 16)
  converted to monomials in ``u = (|x| - 2.375) / 1.625``, absolute error
  3e-9; beyond 4, ``erf`` rounds to ±1 in float32.

These functions carry their own fast-math flags (``contract`` and ``nsz``, no
``reassoc``): the Cody-Waite subtraction and fdlibm's summation order must
not be re-associated. They are plain ``@njit`` functions that LLVM inlines
into the calling loop (Numba's ``inline="always"`` would instead re-type
their bodies in every kernel and take the caller's ``reassoc`` flag).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

__all__: list[str] = ["exp", "expm1", "log", "log1p", "tanh", "erf"]

#: No ``reassoc``/``arcp``/``afn``: they would undo the reductions' exact steps.
_FLAGS = {"contract", "nsz"}

_f32 = np.float32
_f64 = np.float64

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

# float64 constants of erf.

_ERF_SMALL = _f64(0.75)
_ERF_BIG = _f64(4.0)
_ERF_MID = _f64(2.375)
_ERF_INV_HALF = _f64(1.0 / 1.625)
_ERF_TAYLOR = tuple(_f64(2.0 / math.sqrt(math.pi) * (-1.0) ** n / (math.factorial(n) * (2 * n + 1)))
                    for n in range(10))
_ERF_CHEB = tuple(_f64(c) for c in (
    0.9992170617821078, 0.006510477252856639, -0.025126553635479124, 0.058920307808398346,
    -0.09157706064662453, 0.09466377107037618, -0.0573321544453001, 0.0039024330831439833,
    0.028841284845173003, -0.027399119895769326, 0.007187744933572809, 0.008030079596523491,
    -0.007405036076494906, 8.926779451118855e-05, 0.00196734711150767, -0.0002950436218249352,
    -0.00019482448309316266,
))
_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7, _T8, _T9 = _ERF_TAYLOR
(_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13, _C14, _C15,
 _C16) = _ERF_CHEB


# ----------------------------------------------------------------------------- bit views

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
    xc = x if x < _EXP_HI else _EXP_HI  # NaN and +inf land here too; fixed at the end
    xc = xc if xc > _EXP_LO else _EXP_LO
    n = np.floor(xc * _LOG2E + _HALF)
    r = xc - n * _LN2_HI
    r = r - n * _LN2_LO
    z = r * r
    p = (((((_EP0 * r + _EP1) * r + _EP2) * r + _EP3) * r + _EP4) * r + _EP5) * z + r + _ONE
    n1 = np.floor(n * _HALF)
    y = p * _pow2_f32(n1) * _pow2_f32(n - n1)
    return x if x != x else y


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _expm1_f32(x):
    xc = x if x < _EXP_HI else _EXP_HI
    xc = xc if xc > _EXPM1_LO else _EXPM1_LO
    n = np.floor(xc * _LOG2E + _HALF)
    r = xc - n * _LN2_HI
    r = r - n * _LN2_LO
    z = r * r
    q = (((((_M8 * r + _M7) * r + _M6) * r + _M5) * r + _M4) * r + _M3)
    em = r + (z * _HALF + z * r * q)
    t = _pow2_f32(n - _ONE)  # n - 1 in [-27, 127]: finite; the final doubling may overflow to inf
    y = _TWO * (t * em + (t - _HALF))
    return x if (x != x) | (x == _ZERO) else y  # NaN, and the sign of -0


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
    m, k = _log_split_f32(x * _TWO25 if tiny else x)
    y = _log_core_f32(m, k - _TWENTY_FIVE if tiny else k, _ZERO)
    y = -_INF if x == _ZERO else y
    y = _NAN if x < _ZERO else y
    return x if (x != x) | (x == _INF) else y


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _log1p_f32(x):
    u = _ONE + x
    m, k = _log_split_f32(u)
    # The rounding error of 1 + x, relative to u (fdlibm s_log1pf.c); irrelevant once k >= 25.
    # Which difference is exact depends on u's binade, not on k (k also counts the sqrt 2 shift).
    c = (_ONE - (u - x)) if u >= _TWO else (x - (u - _ONE))
    c = c / u if k < _TWENTY_FIVE else _ZERO
    y = _log_core_f32(m, k, c)
    y = -_INF if x == -_ONE else y
    y = _NAN if x < -_ONE else y
    return x if (x != x) | (x == _INF) else y


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _tanh_f32(x):
    a = abs(x)
    t = a * a
    small = a + a * t * (((((_TH5 * t + _TH4) * t + _TH3) * t + _TH2) * t + _TH1) * t + _TH0)
    # 1 - 2/(e + 1) with e = exp(2a), 2a in [1.32, 19]: Cephes exp without its range fix-ups
    # (n in [2, 28]: one power of two, no overflow, no subnormal). Written out here rather
    # than calling _exp_f32: LLVM would not inline the nested call, and the loop stayed scalar.
    y = a + a
    y = y if y < _TANH_CLAMP else _TANH_CLAMP
    n = np.floor(y * _LOG2E + _HALF)
    r = y - n * _LN2_HI
    r = r - n * _LN2_LO
    p = (((((_EP0 * r + _EP1) * r + _EP2) * r + _EP3) * r + _EP4) * r + _EP5) * (r * r) + r + _ONE
    big = _ONE - _TWO / (p * _pow2_f32(n) + _ONE)
    th = small if a < _TANH_SMALL else big
    return x if x != x else np.copysign(th, x)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _erf_f32(x):
    a = _f64(abs(x))
    t = a * a
    small = _T9
    small = small * t + _T8
    small = small * t + _T7
    small = small * t + _T6
    small = small * t + _T5
    small = small * t + _T4
    small = small * t + _T3
    small = small * t + _T2
    small = small * t + _T1
    small = small * t + _T0
    small = small * a
    ac = a if a < _ERF_BIG else _ERF_BIG
    u = (ac - _ERF_MID) * _ERF_INV_HALF
    big = _C16
    big = big * u + _C15
    big = big * u + _C14
    big = big * u + _C13
    big = big * u + _C12
    big = big * u + _C11
    big = big * u + _C10
    big = big * u + _C9
    big = big * u + _C8
    big = big * u + _C7
    big = big * u + _C6
    big = big * u + _C5
    big = big * u + _C4
    big = big * u + _C3
    big = big * u + _C2
    big = big * u + _C1
    big = big * u + _C0
    e = np.float32(small if a < _ERF_SMALL else big)
    return x if x != x else np.copysign(e, x)


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
expm1 = _dispatching("expm1", "``e**x - 1``, accurate near 0.", _expm1_f32, math.expm1)
log = _dispatching("log", "Natural logarithm (``-inf`` at 0, NaN below).", _log_f32, math.log)
log1p = _dispatching("log1p", "``log(1 + x)``, accurate near 0.", _log1p_f32, math.log1p)
tanh = _dispatching("tanh", "Hyperbolic tangent.", _tanh_f32, math.tanh)
erf = _dispatching("erf", "Error function.", _erf_f32, math.erf)
