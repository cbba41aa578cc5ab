"""CUDA matmul against the reference: every transposition case, both dtypes, tails and the tile grid stride."""

import importlib

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


# ----------------------------------------------------------------------------- the 128x128 kernel
#
# Large float32 outputs (BIG_TILE_MIN_TILES 128x128 tiles or more) take _matmul_big_kernel; the tests lower
# the threshold to 1 so that small shapes reach it (256 threads a block: each case runs seconds in the simulator).


@pytest.fixture
def big_tile(monkeypatch):
    # (jitgrad.kernels.cuda.matmul is the function: the package re-exports it over the module's name)
    cuda_matmul = importlib.import_module("jitgrad.kernels.cuda.matmul")
    monkeypatch.setattr(cuda_matmul, "BIG_TILE_MIN_TILES", 1)
    return cuda_matmul


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_big_tile_matches_reference(big_tile, trans_a, trans_b):
    # M = 130: two row tiles, the second a 2-row tail; N = 3: a column tail; K = 33 = 16 + 16 + 1: both
    # shared buffers, the prefetch of a k tail, and the loop's last iteration with its second slice skipped.
    m, k, n = 130, 33, 3
    assert big_tile.uses_big_tile(m, n, np.float32)
    a = randn((k, m) if trans_a else (m, k), np.float32, seed=11)
    b = randn((n, k) if trans_b else (k, n), np.float32, seed=12)
    got = host(kc.matmul(dev(a), dev(b), trans_a=trans_a, trans_b=trans_b))
    assert got.dtype == np.float32
    assert_close(got, ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b))


def test_big_tile_grid_stride_over_column_tiles_into_out(big_tile, monkeypatch):
    from jitgrad.kernels.cuda import _launch

    monkeypatch.setattr(_launch, "MAX_BLOCKS", 1)  # one block visits all 4 tiles (2 x 2, tails in both)
    a, b = randn((129, 1), np.float32, 13), randn((1, 130), np.float32, 14)
    out = dev(nan_like((129, 130), np.float32))
    assert kc.matmul(dev(a), dev(b), out=out) is out
    assert_close(host(out), a @ b)


def test_big_tile_empty_inner_dimension_gives_zeros(big_tile):
    got = host(kc.matmul(dev(np.ones((129, 0), np.float32)), dev(np.ones((0, 2), np.float32))))
    np.testing.assert_array_equal(got, np.zeros((129, 2), np.float32))


def test_tile_choice():
    # The CNN examples' products (batch 128) stay on the 64x64 kernel; 1024^2 (64 tiles) takes 128x128;
    # float64 never does (its 16-wide double-buffered tiles would need 66 KB of static shared memory).
    cuda_matmul = importlib.import_module("jitgrad.kernels.cuda.matmul")
    assert cuda_matmul.BIG_TILE_MIN_TILES == 32
    big = cuda_matmul.uses_big_tile
    f32 = np.float32
    assert not big(128, 120, f32) and not big(128, 10, f32) and not big(10, 1600, f32)
    assert not big(512, 512, f32) and not big(128 * 31, 128, f32)  # 16 and 31 tiles
    assert big(1024, 512, f32) and big(1024, 1024, f32) and big(4096, 4096, f32)  # 32, 64, 1024 tiles
    assert not big(4096, 4096, np.float64)


# ----------------------------------------------------------------------------- split-K (64x64 kernel)


@pytest.mark.parametrize("dtype,trans_a,trans_b", [(np.float32, False, True), (np.float32, True, False),
                                                   (np.float64, True, True)])
def test_split_k_matches_reference_into_out(monkeypatch, dtype, trans_a, trans_b):
    # SPLIT_K_MIN_SLICES = 1 splits K = 40 into 16 + 16 + 8 (a short last split); M = 65 is 2 tiles, so
    # 6 (split, tile) jobs stride over the conftest's 3 blocks; out= receives the sum.
    cuda_matmul = importlib.import_module("jitgrad.kernels.cuda.matmul")
    monkeypatch.setattr(cuda_matmul, "SPLIT_K_MIN_SLICES", 1)
    m, k, n = 65, 40, 5
    assert cuda_matmul.k_splits(m, n, k) == (3, 16)
    a = randn((k, m) if trans_a else (m, k), dtype, seed=21)
    b = randn((n, k) if trans_b else (k, n), dtype, seed=22)
    out = dev(nan_like((m, n), dtype))
    assert kc.matmul(dev(a), dev(b), trans_a=trans_a, trans_b=trans_b, out=out) is out
    assert_close(host(out), ref.matmul(a, b, trans_a=trans_a, trans_b=trans_b))


def test_split_k_choice():
    # Few output tiles and a long K split; many tiles or a short K do not.
    cuda_matmul = importlib.import_module("jitgrad.kernels.cuda.matmul")
    assert cuda_matmul.k_splits(128, 10, 1600) == (25, 64)  # 2 tiles, 100 slices: 4 slices a split
    assert cuda_matmul.k_splits(128, 120, 400) == (5, 80)
    assert cuda_matmul.k_splits(67, 3, 17) == (1, 17)  # 2 slices
    assert cuda_matmul.k_splits(1024, 1024, 4096) == (1, 4096)  # 256 tiles fill the GPU already
    for m, n, k in [(128, 10, 1600), (128, 120, 400), (10, 1600, 128), (512, 512, 512)]:
        splits, chunk = cuda_matmul.k_splits(m, n, k)
        assert chunk % cuda_matmul.TILE_K == 0 and (splits - 1) * chunk < k <= splits * chunk
