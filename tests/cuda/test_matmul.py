"""CUDA matmul against the reference: every transposition case, both dtypes, tails and the tile grid stride."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
import jitgrad.kernels.reference as ref
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, nan_like, randn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_matches_reference(dtype, trans_a, trans_b):
    # M = 67 > one 64-row tile and K = 17 > one 16-wide slice: both tails run; MAX_BLOCKS=3 in the
    # conftest is more than the 2 tiles here, the next test strides.
    m, k, n = 67, 17, 3
    a = randn((k, m) if trans_a else (m, k), dtype, seed=1)
    b = randn((n, k) if trans_b else (k, n), dtype, seed=2)
    got = host(kc.matmul(dev(a), dev(b), trans_a=trans_a, trans_b=trans_b))
    assert got.dtype == dtype
    assert_close(got, ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b))


def test_matmul_grid_stride_over_tiles_and_out(monkeypatch):
    from jitgrad.kernels.cuda import _launch

    monkeypatch.setattr(_launch, "MAX_BLOCKS", 1)  # one block must visit all 4 tiles
    a, b = randn((65, 2), np.float32, 3), randn((2, 66), np.float32, 4)
    out = dev(nan_like((65, 66), np.float32))
    assert kc.matmul(dev(a), dev(b), out=out) is out
    assert_close(host(out), a @ b)


def test_matmul_batch_one_row():
    a, b = randn((1, 5), np.float64, 5), randn((5, 1), np.float64, 6)
    assert_close(host(kc.matmul(dev(a), dev(b))), a @ b)


def test_matmul_bad_input():
    a32, b64 = dev(np.ones((2, 3), np.float32)), dev(np.ones((3, 2), np.float64))
    with pytest.raises(TypeError, match="b has dtype float64 but a has dtype float32"):
        kc.matmul(a32, b64)
    with pytest.raises(ValueError, match=r"matmul: inner dimensions differ: op\(a\) is 2x3"):
        kc.matmul(a32, dev(np.ones((2, 2), np.float32)))
    with pytest.raises(ValueError, match="a must be 2-D, got 1-D"):
        kc.matmul(dev(np.ones(3, np.float32)), a32)
    with pytest.raises(TypeError, match="trans_a must be a bool"):
        kc.matmul(a32, a32, trans_a=1)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 2\), got \(3, 3\)"):
        kc.matmul(a32, dev(np.ones((3, 2), np.float32)), out=dev(np.ones((3, 3), np.float32)))


@pytest.mark.parametrize("alias", ["a", "b"])
def test_out_may_alias_an_input(alias):
    # The out= rule of every backend (tests/kernels/test_matmul.py holds the CPU to it): an out that
    # overlaps an input gets the product as if computed aside.
    a, b = randn((9, 9), np.float32, 1), randn((9, 9), np.float32, 2)
    expected = ref.matmul(a, b, trans_b=True)
    da, db = dev(a), dev(b)
    out = da if alias == "a" else db
    assert kc.matmul(da, db, trans_b=True, out=out) is out
    assert_close(host(out), expected)
