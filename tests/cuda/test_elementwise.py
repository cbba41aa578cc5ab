"""CUDA elementwise array namespace against NumPy: broadcasting, scalars, dtypes, copies, dropout masks."""

import numpy as np
import pytest

from jitgrad.kernels.cuda import elementwise as E
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, randn

BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum"]
COMPARE = ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_and_compare_broadcast_like_numpy(dtype):
    a = randn((3, 1, 4), dtype, seed=1)
    b = randn((5, 1), dtype, seed=2)
    b[0, 0] = a[0, 0, 0]  # at least one equal pair for the comparisons
    for name in BINARY + COMPARE:
        got = host(getattr(E, name)(dev(a), dev(b)))
        expected = getattr(np, name)(a, b)
        assert got.dtype == expected.dtype, name
        assert_close(got, expected, dtype, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_operands_keep_the_array_dtype(dtype):
    x = np.abs(randn((2, 3), dtype, seed=3)) + 0.5
    assert_close(host(E.subtract(1.0, dev(x))), 1.0 - x)
    got = E.power(dev(x), 1.5)
    assert got.dtype == dtype
    assert_close(host(got), x ** 1.5)
    assert_close(host(E.multiply(dev(x), 2)), x * 2)
    np.testing.assert_array_equal(host(E.greater(dev(x), 1.0)), x > 1.0)


def test_maximum_propagates_nan_and_out_is_written():
    a = np.array([1.0, np.nan, 3.0])
    out = dev(np.full(3, -7.0))
    assert E.maximum(dev(a), 2.0, out=out) is out
    np.testing.assert_array_equal(host(out), np.maximum(a, 2.0))


# The simulator runs kernels on NumPy scalars, which warn on 1/0; a GPU just returns inf.
@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
def test_unary_like_numpy():
    x = np.array([-1.5, -0.0, 0.0, 0.25, 2.0, np.inf, np.nan], np.float64)
    for name in ["negative", "exp", "log", "sqrt", "absolute", "square", "sign", "reciprocal"]:
        with np.errstate(all="ignore"):
            expected = getattr(np, name)(x)
        assert_close(host(getattr(E, name)(dev(x))), expected, err_msg=name)  # NaN where NumPy has NaN
    assert E.abs is E.absolute


def test_where_broadcasts_cond_and_values():
    cond = np.array([[True], [False]])
    a = randn((2, 3), np.float32, seed=4)
    assert_close(host(E.where(dev(cond), dev(a), 0.0)), np.where(cond, a, np.float32(0.0)))
    b = randn((3,), np.float32, seed=5)
    assert_close(host(E.where(dev(a > 0), 1.0, dev(b))), np.where(a > 0, np.float32(1), b))


def test_creation_copy_cast_transpose_broadcast():
    assert_close(host(E.full((2, 3), 2.5, np.float64)), np.full((2, 3), 2.5))
    assert host(E.zeros(4)).dtype == np.float32 and not host(E.zeros(4)).any()
    x = randn((2, 3, 4), np.float64, seed=6)
    np.testing.assert_array_equal(host(E.ones_like(dev(x))), np.ones_like(x))
    c = E.copy(dev(x))
    np.testing.assert_array_equal(host(c), x)
    E.fill(c, 0.0)
    assert not host(c).any()
    np.testing.assert_array_equal(host(E.astype(dev(x * 3), np.int32)), (x * 3).astype(np.int32))
    np.testing.assert_array_equal(host(E.transpose(dev(x), (2, 0, 1))), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(host(E.transpose(dev(x))), x.T)
    np.testing.assert_array_equal(host(E.broadcast_to(dev(x[:, :1]), (5, 2, 1, 4))),
                                  np.broadcast_to(x[:, :1], (5, 2, 1, 4)))


def _reference_mask(n, p, seed):
    """The device hash, re-derived in NumPy int64: the mask must be bit-for-bit reproducible."""
    m = 0xFFFFFFFF

    def h(v):
        v = v & m
        v ^= v >> 16
        v = (v * 0x21F0AAAD) & m
        v ^= v >> 15
        v = (v * 0x735A2D97) & m
        v ^= v >> 15
        return v

    i = np.arange(n, dtype=np.int64)
    bits = h(h(np.int64(seed)) ^ h(i & m) ^ h((i >> 32) + 0x9E3779B9))
    return np.where(bits >= int(np.ceil(p * 2.0**32)), 1.0 / (1.0 - p), 0.0)


def test_dropout_mask_is_reproducible_and_inverted():
    mask = host(E.dropout_mask((6, 50), 0.25, seed=42))
    assert mask.dtype == np.float32
    assert_close(mask.ravel(), _reference_mask(300, 0.25, 42).astype(np.float32))
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.75)}
    assert 0.6 < (mask > 0).mean() < 0.9  # 300 draws at keep 0.75
    assert not np.array_equal(mask, host(E.dropout_mask((6, 50), 0.25, seed=43)))
    assert (host(E.dropout_mask(7, 0.0, seed=1, dtype=np.float64)) == 1.0).all()


def test_elementwise_bad_input():
    a = dev(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"shapes \(2, 3\), \(4,\) cannot be broadcast together"):
        E.add(a, dev(np.ones(4, np.float32)))
    with pytest.raises(TypeError, match="b has dtype float64 but a has dtype float32"):
        E.multiply(a, dev(np.ones(3, np.float64)))
    with pytest.raises(TypeError, match="at least one operand must be a device array, got two scalars"):
        E.add(1.0, 2.0)
    with pytest.raises(TypeError, match="a must be a numba device array or a Python scalar, got ndarray"):
        E.add(np.ones(3), a)
    with pytest.raises(ValueError, match=r"axes must be a permutation of 0..1, got \(0, 0\)"):
        E.transpose(a, (0, 0))
    with pytest.raises(ValueError, match=r"cannot broadcast x of shape \(2, 3\) to shape \(3,\)"):
        E.broadcast_to(a, (3,))
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), got 1.0"):
        E.dropout_mask(3, 1.0, seed=0)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*32\), got -1"):
        E.dropout_mask(3, 0.5, seed=-1)
