"""The CPU kernels' float32 elementary functions: error in ulps over float32, specials, vector code.

Every function is held to the float64 ``math``/NumPy function of the same
(exactly converted) input: the error of a float32 result ``y`` is
``|y - f(x)|`` in units of the float32 spacing at ``f(x)`` (2^-149 for
subnormals), so 0.5 is a correctly rounded result. The suite checks every
4099th of the 2^32 bit patterns (a stride prime to every binade's length, so
each binade is sampled at shifting mantissas) plus dense windows around each
function's thresholds; ``bench/elementary_ulp.py`` runs all 2^32.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit, prange

from jitgrad.kernels.cpu import _elementary as ef
from tests.helpers import (
    elementary_loop_asm,
    packed_vector_ops,
    recompiled,
    wide_vectors,
)

#: The promised bound (float32, whole range) and the worst error measured exhaustively.
MAX_ULP = 2.0
#: ``ndtr`` (GELU's normal CDF) is one piece with a division and an ``exp``: its bound is looser,
#: and relative all the way into the left tail (where ``(1 + erf(x/sqrt 2))/2`` is thousands of ulps off).
#: ``sigmoid`` (an activation built on ``exp``, not one of the promised functions) carries ``exp``'s error
#: into a result that can lie a binade below it: 2.40 ulp measured on every third bit pattern.
BOUNDS = {"ndtr": 8.0, "sigmoid": 2.5}

NAMES = ("exp", "exp_nonpos", "expm1", "log", "log1p", "log1pexp", "tanh", "sigmoid", "erf", "ndtr")


def _make_runner(fn):
    @njit(parallel=True, error_model="numpy")
    def run(x, out):
        for i in prange(x.size):
            out[i] = fn(x[i])
    return run


_RUNNERS = {name: _make_runner(getattr(ef, name)) for name in NAMES}


@njit(parallel=True)
def _erf64(x, out):
    for i in prange(x.size):
        out[i] = math.erf(np.float64(x[i]))


@njit(parallel=True)
def _ndtr64(x, out):
    for i in prange(x.size):
        out[i] = 0.5 * math.erfc(-np.float64(x[i]) / math.sqrt(2.0))


def run_function(name: str, x: np.ndarray) -> np.ndarray:
    """``ef.<name>`` applied to every element of the 1-D array ``x`` (in an ``@njit`` loop)."""
    out = np.empty_like(x)
    _RUNNERS[name](x, out)
    return out


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """The float64 function at float32 ``x`` (exactly converted): the correctly rounded target."""
    xd = x.astype(np.float64)
    if name in ("erf", "ndtr"):
        out = np.empty_like(xd)
        (_erf64 if name == "erf" else _ndtr64)(xd, out)
        return out
    with np.errstate(all="ignore"):
        if name == "exp_nonpos":  # exp(min(x, 0)), results below the smallest normal float32 flushed to 0
            y = np.exp(np.where(xd > 0, 0.0, xd))
            return np.where(y < np.finfo(np.float32).tiny, 0.0, y)
        if name == "log1pexp":  # log(1 + e^x), flushed to 0 below the smallest normal float32
            y = np.logaddexp(0.0, xd)
            return np.where(y < np.finfo(np.float32).tiny, 0.0, y)
        if name == "sigmoid":  # 1 / (1 + e^-x), flushed to 0 below the smallest normal float32
            y = 1.0 / (1.0 + np.exp(-xd))
            return np.where(y < np.finfo(np.float32).tiny, 0.0, y)
        return getattr(np, name)(xd)


def ulp_error(y: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Error of float32 ``y`` in float32 ulps of the float64 ``exact``; 0 where both are the same special."""
    with np.errstate(all="ignore"):  # signalling-NaN bit patterns warn when widened
        y64 = y.astype(np.float64)
        exponent = np.frexp(np.abs(exact))[1]
        ulp = np.ldexp(1.0, np.maximum(exponent - 24, -149))
        err = np.abs(y64 - exact) / ulp
        rounded = exact.astype(np.float32)
    same = (y == rounded) | (np.isnan(y) & np.isnan(exact))
    err = np.where(same, 0.0, err)
    return np.where(np.isnan(err), np.inf, err)  # a NaN or inf where a number belongs: infinitely wrong


def _windows(centres, half_width=2048) -> np.ndarray:
    """Every float32 within ``half_width`` bit patterns of each centre (both signs)."""
    bits = np.array(centres, dtype=np.float32).view(np.int32).astype(np.int64)
    offsets = np.arange(-half_width, half_width + 1)
    near = (bits[:, None] + offsets[None, :]).reshape(-1)
    near = near[(near >= 0) & (near < 0x7F800000)].astype(np.uint32)
    return np.concatenate([near, near | np.uint32(0x80000000)]).view(np.float32)


_SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38, 1.1754944e-38,
                      3.4028235e38, -3.4028235e38, 1.0, -1.0], dtype=np.float32)
#: Range-reduction boundaries, over- and underflow thresholds, the pieces' seams.
_THRESHOLDS = [1.0, 0.5, 2.0, 88.72284, 88.0, 103.97, 87.33, 17.33, 9.01, 0.34657, 1.4142135, 0.70710677,
               0.75, 4.0, 3.92, 1e-3, 1e-8, 0.2554, 0.5493, 1.0e20, 0.66, 14.5, 14.0, 13.0, 5.42]


def _sample() -> np.ndarray:
    stride = np.arange(0, 1 << 32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return np.concatenate([stride, _windows(_THRESHOLDS), _SPECIALS])


@pytest.fixture(scope="module")
def sample():
    return _sample()


@pytest.mark.parametrize("name", NAMES)
def test_float32_error_within_bound(name, sample):
    y = run_function(name, sample)
    assert y.dtype == np.float32
    err = ulp_error(y, reference(name, sample))
    worst = int(np.argmax(err))
    assert err[worst] <= BOUNDS.get(name, MAX_ULP), (f"{name}({sample[worst]!r}) = {y[worst]!r}, exact "
                                   f"{reference(name, sample[worst:worst + 1])[0]!r}: {err[worst]:.3f} ulp")


def test_tanh_kernels_within_bound(sample):
    """The tanh activation's float32 kernels, serial and parallel: on AVX-512 they run by tables
    (``ef.vtanh``), elsewhere ``ef.tanh``; either way within the bound, specials included."""
    import importlib

    act = importlib.import_module("jitgrad.kernels.cpu.activations")
    exact = reference("tanh", sample)
    for kernel in (act._TANH_F32.parallel, act._TANH_F32.serial):
        out = np.empty_like(sample)
        kernel(sample, out)
        err = ulp_error(out, exact)
        worst = int(np.argmax(err))
        assert err[worst] <= MAX_ULP, f"{kernel.__name__}: tanh({sample[worst]!r}) = {out[worst]!r}, {err[worst]:.3f} ulp"
    grad = np.linspace(-2, 2, sample.size).astype(np.float32)
    for kernel in (act._TANH_BACKWARD_F32.parallel, act._TANH_BACKWARD_F32.serial):
        out = np.empty_like(sample)
        kernel(grad, sample, out)
        t = np.tanh(sample.astype(np.float64))
        with np.errstate(all="ignore"):
            want = grad * (1.0 - t * t)
        finite = np.isfinite(sample)  # 1 - t^2 cancels where tanh nears 1: an absolute bound, |grad| <= 2
        np.testing.assert_allclose(out[finite], want[finite], rtol=1e-6, atol=1e-6)
        assert np.isnan(out[np.isnan(sample)]).all()


def test_gelu_kernels_within_bound(sample):
    """The erf-form GELU's float32 kernels, serial and parallel: on AVX-512 and AVX2 ``Phi`` comes from
    tables (``ef.vgelu``) below ``|x| = 4``, whatever its neighbours, and from ``ef.ndtr`` beyond (and
    for NaN); elsewhere from ``ef.ndtr`` throughout, by loops without the form as an argument (bit for
    bit the generic kernels' erf form, also checked here). Sizes that end in a partial vector and a
    partial block included. The backward kernels likewise (``ef.vgelu_grad`` on AVX-512,
    ``ef.ndtr_pdf``)."""
    import importlib

    act = importlib.import_module("jitgrad.kernels.cpu.activations")
    exact = sample.astype(np.float64) * reference("ndtr", sample)
    kernels = [lambda x, out, k=k: k(x, out) for k in (act._GELU_F32.parallel, act._GELU_F32.serial)]
    # Tables, measured over every float32 in (-4, 4) (bench/ndtr_table.py --check): 2.13 ulp on AVX-512,
    # 2.57 on AVX2 (8 intervals of 1/2).
    table_bound = {16: 2.5, 8: 3.0}.get(ef.GELU_LANES, BOUNDS["ndtr"] + 0.5)
    inside = np.abs(sample) < ef.GELU_TABLE_TOP
    for kernel in kernels:
        for n in (sample.size, sample.size - 1037):  # 1037 = 64 blocks of 16 + 13
            out = np.empty_like(sample[:n])
            kernel(sample[:n], out)
            err = ulp_error(out, exact[:n])
            for part, bound in ((inside[:n], table_bound), (~inside[:n], BOUNDS["ndtr"] + 0.5)):
                worst = int(np.argmax(np.where(part, err, 0.0)))
                assert err[worst] <= bound, f"gelu({sample[worst]!r}) = {out[worst]!r}, {err[worst]:.3f} ulp"
    generic, flagless = np.empty_like(sample), np.empty_like(sample)
    act._gelu_kernel_serial(sample, False, generic)
    act._gelu_erf_kernel_serial(sample, flagless)
    np.testing.assert_array_equal(flagless, generic)
    # The backward, g (Phi + x phi): absolute (it crosses 0 near x = -0.75), |g| <= 2.
    grad = np.linspace(-2, 2, sample.size).astype(np.float32)
    xd = sample.astype(np.float64)
    with np.errstate(all="ignore"):
        want = grad * (reference("ndtr", sample) + xd * np.exp(-0.5 * xd * xd) / math.sqrt(2 * math.pi))
    for kernel in (act._GELU_BACKWARD_F32.parallel, act._GELU_BACKWARD_F32.serial):
        out = np.empty_like(sample)
        kernel(grad, sample, out)
        finite = np.isfinite(want)
        np.testing.assert_allclose(out[finite], want[finite], rtol=1e-6, atol=1e-6)
        assert np.isnan(out[np.isnan(sample)]).all()
    act._gelu_backward_kernel_serial(grad, sample, False, generic)
    act._gelu_erf_backward_kernel_serial(grad, sample, flagless)
    np.testing.assert_array_equal(flagless, generic)


def test_gelu_tanh_kernels_keep_the_exp_forms_accuracy(sample):
    """GELU's tanh form, float32 kernels serial and parallel: on AVX-512 and AVX2 the tanh comes from
    tables (``ef.vgelu_tanh``), elsewhere from ``ef.tanh``; either way within the error the formula
    allows. ``x/2 (1 + t)`` cancels for negative ``x`` (``t`` near -1), so the bound is absolute in
    ``|x|``: 2^-22 |x| (measured 1.90 2^-24 |x| with tables, 1.70 with ``ef.tanh``), and 2.5 ulp
    for positive ``x`` (1.90 and 1.70). Sizes that end in a partial vector and a partial block. The
    backward to 2e-6 (|g| <= 2) up to |x| = 1e12: beyond, the exp-form loop's ``x^3`` (reassociated)
    overflows into 0 * inf (NaN from 1.47e13), while the tables' IR gives 1 or 0, as the reference
    does, until ``x^2`` overflows (1.8e19; NaN there in the reference too)."""
    import importlib

    from jitgrad.kernels._constants import GELU_KAPPA, SQRT_2_OVER_PI

    act = importlib.import_module("jitgrad.kernels.cpu.activations")
    xs = sample[~(np.abs(sample) >= 1e12)]  # NaN kept
    with np.errstate(all="ignore"):
        x = xs.astype(np.float64)
        t = np.tanh(SQRT_2_OVER_PI * (x + GELU_KAPPA * x ** 3))
        exact = 0.5 * x * (1 + t)
    grad = np.linspace(-2, 2, xs.size).astype(np.float32)
    want = grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_KAPPA * x * x))
    if act._GELU_TANH_F32 is not None:
        forwards = (act._GELU_TANH_F32.parallel, act._GELU_TANH_F32.serial)
        backwards = (act._GELU_TANH_BACKWARD_F32.parallel, act._GELU_TANH_BACKWARD_F32.serial)
    else:  # no tables on this path: the exp-form loops
        forwards = [lambda x, out, k=k: k(x, True, out) for k in (act._GELU.parallel, act._GELU.serial)]
        backwards = [lambda g, x, out, k=k: k(g, x, True, out)
                     for k in (act._GELU_BACKWARD.parallel, act._GELU_BACKWARD.serial)]
    finite = np.isfinite(x)
    for kernel in forwards:
        for n in (xs.size, xs.size - 1037):  # 1037 = 64 vectors of 16 + 13
            out = np.empty_like(xs[:n])
            kernel(xs[:n], out)
            err = np.abs(out.astype(np.float64) - exact[:n])
            fin = finite[:n]
            assert (err[fin] <= 2.0 ** -22 * np.abs(x[:n][fin]) + 1e-45).all(), xs[:n][fin][np.argmax(err[fin])]
            positive = fin & (x[:n] > 0)
            assert ulp_error(out[positive], exact[:n][positive]).max() <= 2.5
            assert np.isnan(out[np.isnan(xs[:n])]).all()
    for kernel in backwards:
        out = np.empty_like(xs)
        kernel(grad, xs, out)
        np.testing.assert_allclose(out[finite], want[finite], rtol=2e-6, atol=2e-6)
        assert np.isnan(out[np.isnan(xs)]).all()
    if act._GELU_TANH_F32 is not None:
        huge = np.array([1e12, 1.5e13, 1e19, -1e12, -1.5e13, -1e19, np.inf, -np.inf], np.float32)
        for kernel in backwards:
            out = np.empty_like(huge)
            kernel(np.ones_like(huge), huge, out)
            np.testing.assert_array_equal(out, [1, 1, 1, 0, 0, 0, np.nan, np.nan])


@pytest.mark.parametrize("name,x,expected", [
    ("exp", np.inf, np.inf), ("exp", -np.inf, 0.0), ("exp", 89.0, np.inf), ("exp", -104.0, 0.0),
    ("exp", -100.0, math.exp(-100.0)),  # subnormal result
    ("exp_nonpos", -np.inf, 0.0), ("exp_nonpos", -0.0, 1.0), ("exp_nonpos", 0.0, 1.0), ("exp_nonpos", 5.0, 1.0),
    ("exp_nonpos", np.inf, 1.0), ("exp_nonpos", -87.0, math.exp(-87.0)), ("exp_nonpos", -87.4, 0.0),
    ("exp_nonpos", -1e30, 0.0),
    ("log1pexp", np.inf, np.inf), ("log1pexp", -np.inf, 0.0), ("log1pexp", 0.0, math.log(2.0)),
    ("log1pexp", 100.0, 100.0), ("log1pexp", -87.0, math.exp(-87.0)), ("log1pexp", -90.0, 0.0),
    ("log1pexp", 3e38, 3e38), ("log1pexp", 1e-8, math.log(2.0)),
    ("expm1", np.inf, np.inf), ("expm1", -np.inf, -1.0), ("expm1", -0.0, -0.0), ("expm1", 1e-40, 1e-40),
    ("log", 0.0, -np.inf), ("log", -0.0, -np.inf), ("log", -1.0, np.nan), ("log", np.inf, np.inf),
    ("log", -np.inf, np.nan), ("log", 2.0**-149, -149 * math.log(2.0)), ("log", 1.0, 0.0),
    ("log1p", -1.0, -np.inf), ("log1p", -2.0, np.nan), ("log1p", np.inf, np.inf), ("log1p", 1e-30, 1e-30),
    ("tanh", np.inf, 1.0), ("tanh", -np.inf, -1.0), ("tanh", -0.0, -0.0), ("tanh", 1e-40, 1e-40),
    ("sigmoid", np.inf, 1.0), ("sigmoid", -np.inf, 0.0), ("sigmoid", 0.0, 0.5), ("sigmoid", -0.0, 0.5),
    ("sigmoid", 20.0, 1.0), ("sigmoid", -87.0, 1.0 / (1.0 + math.exp(87.0))), ("sigmoid", -88.0, 0.0),
    ("erf", np.inf, 1.0), ("erf", -np.inf, -1.0), ("erf", -0.0, -0.0), ("erf", 5.0, 1.0),
    ("ndtr", np.inf, 1.0), ("ndtr", -np.inf, 0.0), ("ndtr", 0.0, 0.5), ("ndtr", -0.0, 0.5), ("ndtr", 6.0, 1.0),
    ("ndtr", -20.0, 0.0), ("ndtr", -14.0, 0.5 * math.erfc(14.0 / math.sqrt(2.0))),  # a subnormal result
])
def test_special_values(name, x, expected):
    got = run_function(name, np.array([x], np.float32))[0]
    want = np.float32(expected)
    if np.isnan(want):
        assert np.isnan(got), f"{name}({x}) = {got}, expected NaN"
    else:
        assert got == want and np.signbit(got) == np.signbit(want), f"{name}({x}) = {got!r}, expected {want!r}"


@pytest.mark.parametrize("name", NAMES)
def test_nan_propagates(name):
    assert np.isnan(run_function(name, np.array([np.nan, -np.nan], np.float32))).all()


@pytest.mark.parametrize("name", NAMES)
def test_float64_is_math(name):
    x = np.array([-3.5, -0.25, 1e-300, 0.5, 2.0, 40.0])
    if name in ("log", "log1p"):
        x = np.abs(x)
    out = np.empty_like(x)
    _RUNNERS[name](x, out)
    exact = {"ndtr": lambda v: 0.5 * math.erfc(-v * (1.0 / math.sqrt(2.0))),
             "exp_nonpos": lambda v: math.exp(min(v, 0.0)),
             "log1pexp": lambda v: max(v, 0.0) + math.log1p(math.exp(-abs(v))),
             "sigmoid": lambda v: (1.0 if v >= 0 else math.exp(-abs(v))) / (1.0 + math.exp(-abs(v)))}.get(
                 name, getattr(math, name, None))
    np.testing.assert_array_equal(out, [exact(v) for v in x])


@njit(error_model="numpy")
def _ndtr_pdf_loop(x, cdf, pdf):
    for i in range(x.size):
        cdf[i], pdf[i] = ef.ndtr_pdf(x[i])


def test_ndtr_pdf_is_ndtr_and_the_normal_density():
    """GELU's backward takes both from one call: the CDF is ``ndtr``'s, the density within 3 ulp."""
    x = np.concatenate([np.linspace(-14.5, 14.5, 200001, dtype=np.float32), _SPECIALS])
    cdf, pdf = np.empty_like(x), np.empty_like(x)
    _ndtr_pdf_loop(x, cdf, pdf)
    np.testing.assert_array_equal(cdf, run_function("ndtr", x))
    xd = x.astype(np.float64)
    with np.errstate(all="ignore"):
        exact = np.exp(-0.5 * xd * xd) / math.sqrt(2.0 * math.pi)
    err = ulp_error(pdf, exact)
    assert err.max() <= 3.0, f"phi({x[np.argmax(err)]!r}): {err.max():.2f} ulp"
    cdf64, pdf64 = np.empty(3), np.empty(3)
    _ndtr_pdf_loop(np.array([-2.0, 0.0, 1.5]), cdf64, pdf64)
    np.testing.assert_array_equal(cdf64, [0.5 * math.erfc(-v * (1.0 / math.sqrt(2.0))) for v in (-2.0, 0.0, 1.5)])
    np.testing.assert_array_equal(pdf64, [math.exp(-0.5 * v * v) / math.sqrt(2 * math.pi) for v in (-2.0, 0.0, 1.5)])


def test_python_fallbacks_are_math():
    assert ef.exp(1.5) == math.exp(1.5) and ef.erf(0.3) == math.erf(0.3) and ef.log1p(2.0) == math.log1p(2.0)
    assert ef.ndtr(-1.0) == 0.5 * math.erfc(1.0 * (1.0 / math.sqrt(2.0)))


@wide_vectors
@pytest.mark.parametrize("name", NAMES)
def test_loops_calling_them_vectorise(name):
    assert packed_vector_ops(elementary_loop_asm(name)) >= 8, f"{name}: no packed ymm/zmm arithmetic in the loop"


#: Serial kernels whose loops call the functions above, and a float32 call of each (x: 64 zeros).
_KERNEL_CALLS = {
    "softmax._cross_entropy_index_kernel_serial": lambda x, f: (x.reshape(4, 16), np.zeros(4, np.int64), f(0),
                                                                np.empty((4, 16), f), np.empty(4, f)),
    "activations._sigmoid_kernel_serial": lambda x, f: (x, np.empty_like(x)),
    "activations._elu_kernel_serial": lambda x, f: (x, f(1), np.empty_like(x)),
    "activations._gelu_kernel_serial": lambda x, f: (x, False, np.empty_like(x)),
    "activations._softplus_kernel_serial": lambda x, f: (x, f(1), f(20), np.empty_like(x)),
    "activations._softplus_backward_kernel_serial": lambda x, f: (x, x, f(1), f(20), np.empty_like(x)),
}


@wide_vectors
@pytest.mark.parametrize("name", list(_KERNEL_CALLS))
def test_kernels_vectorise(name):
    """The kernels' own loops run packed (softplus's did not under Python 3.12, see ``_select``): the serial
    kernel recompiled here (cached code cannot be inspected) with its own options."""
    import importlib

    module, attr = name.split(".")
    kernel = recompiled(getattr(importlib.import_module(f"jitgrad.kernels.cpu.{module}"), attr))  # (re-exported names)
    kernel(*_KERNEL_CALLS[name](np.zeros(64, np.float32), np.float32))
    assert packed_vector_ops(kernel.inspect_asm(kernel.signatures[0])) >= 8
