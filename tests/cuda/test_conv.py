"""CUDA conv2d and its gradients against the reference: strides, padding, dilation, batch 1, odd sizes."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
import jitgrad.kernels.cuda._conv_backward as cb
import jitgrad.kernels.reference as ref
from tests.cases.conv import (
    CASES,
    HYPER,
    HYPER_IDS,
    check_backend,
    check_out_may_alias_an_input,
    tolerance,
)
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, nan_like, randn

#: The shared table's named cases the simulator can afford (each CUDA thread is a Python thread there,
#: and the tiled kernels run 256 a block).
SIM_CASES = ["dilated-kernel-is-padded-input", "1x1", "1x1-stride2"]


def check_cuda(*case, seed=0, bias=True):
    check_backend(kc, *case, seed=seed, bias=bias, to_device=dev, to_host=host)


@pytest.mark.parametrize("stride,padding,dilation", HYPER, ids=HYPER_IDS)
def test_every_hyper_parameter_combination(monkeypatch, stride, padding, dilation):
    # The CPU test's 27 combinations, on a smaller image (float32; the named cases below run both dtypes),
    # the input gradient by its GEMM (the direct gather takes the named cases' few channels).
    monkeypatch.setattr(cb, "GEMM_MIN_C_IN", 1)
    check_cuda(1, 1, 6, 5, 2, 3, 2, stride, padding, dilation, np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SIM_CASES)
def test_fixed_cases(name, dtype):
    check_cuda(*CASES[name], dtype, bias=name != "1x1")


def test_conv2d_batch_one_no_bias_into_out():
    x, w = randn((1, 1, 5, 5), np.float32, 7), randn((3, 1, 3, 3), np.float32, 8)
    out = dev(nan_like((1, 3, 3, 3), np.float32))
    assert kc.conv2d(dev(x), dev(w), out=out) is out
    assert_close(host(out), ref.conv2d(x, w))


def test_conv2d_bad_input():
    x, w = dev(np.ones((1, 2, 4, 4), np.float32)), dev(np.ones((3, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="channel mismatch: x has 2 input channels"):
        kc.conv2d(x, w)
    with pytest.raises(TypeError, match="w has dtype float64 but x has dtype float32"):
        kc.conv2d(x, dev(np.ones((3, 2, 2, 2), np.float64)))
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        kc.conv2d(x, dev(np.ones((3, 2, 2, 2), np.float32)), stride=0)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 3, 3, 3\)"):
        kc.conv2d_backward_input(dev(np.ones((1, 3, 2, 2), np.float32)), dev(np.ones((3, 2, 2, 2), np.float32)),
                                 input_shape=(1, 2, 4, 4))
    with pytest.raises(ValueError, match="weight_shape must be a tuple of 4 ints"):
        kc.conv2d_backward_weight(x, dev(np.ones((1, 3, 3, 3), np.float32)), weight_shape=(3, 2, 2))


def test_out_may_alias_an_input():
    check_out_may_alias_an_input(kc, to_device=dev, to_host=host)


def test_split_k_rule():
    assert cb.split_k(0, 5) == (1, cb.TILE_K)
    assert cb.split_k(100, 5) == (1, 112)  # under one minimum chunk: no split
    # Keras conv2 at batch 128: P = 128 * 11 * 11, 5 tiles -> 121 chunks of 128 pixels (the last 0 short).
    assert cb.split_k(15488, 5) == (121, 128)
    assert cb.split_k(15488 + 1, 5) == (122, 128)
    # A long P over few tiles: about SPLIT_TARGET_BLOCKS blocks in all, chunks a multiple of TILE_K.
    splits, chunk = cb.split_k(10**6, 2)
    assert splits * 2 <= cb.SPLIT_TARGET_BLOCKS + 2 and chunk % cb.TILE_K == 0 and (splits - 1) * chunk < 10**6


@pytest.mark.parametrize("case,small_max", [((1, 8, 5, 5, 3, 3, 3, 1, 1, 1), cb.SMALL_MAX_OUTPUTS),
                                             ((2, 2, 13, 9, 3, 3, 2, (3, 2), (2, 0), (1, 2)), 0),
                                             ((2, 2, 13, 9, 3, 3, 2, (3, 2), (2, 0), (1, 2)), cb.SMALL_MAX_OUTPUTS)],
                         ids=["two-column-tiles", "strided-tiled", "strided-small"])
def test_split_k_weight_gradient_with_tails(monkeypatch, case, small_max):
    # Chunks of 16 pixels: two or three chunks per tile, the last one short, each a partial tile summed by
    # the second kernel; the first case's [im2col | 1] has 73 columns (two column tiles, the second a tail:
    # the tiled kernel either way). The second is small enough for the small kernel unless forced off.
    monkeypatch.setattr(cb, "SPLIT_MIN_CHUNK", 16)
    monkeypatch.setattr(cb, "SMALL_MAX_OUTPUTS", small_max)
    check_cuda(*case, np.float32)


def _split_case():
    x, g = randn((2, 3, 6, 5), np.float32, 3), randn((2, 4, 6, 5), np.float32, 4)
    return x, g, dict(weight_shape=(4, 3, 3, 3), padding=1)


@pytest.mark.parametrize("small_max", [0, cb.SMALL_MAX_OUTPUTS], ids=["tiled", "small"])
def test_weight_gradient_is_bit_identical_run_to_run(monkeypatch, small_max):
    monkeypatch.setattr(cb, "SPLIT_MIN_CHUNK", 16)
    monkeypatch.setattr(cb, "SMALL_MAX_OUTPUTS", small_max)
    x, g, kw = _split_case()
    assert cb.split_k(60, 1)[0] == 4
    first = [host(a) for a in kc.conv2d_backward_weight(dev(x), dev(g), **kw)]
    second = [host(a) for a in kc.conv2d_backward_weight(dev(x), dev(g), **kw)]
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes()
    if small_max:
        return
    dx = [host(kc.conv2d_backward_input(dev(g), dev(np.ones((4, 3, 3, 3), np.float32)), input_shape=x.shape,
                                        padding=1)) for _ in range(2)]
    assert dx[0].tobytes() == dx[1].tobytes()


@pytest.mark.parametrize("use", ["weight gradient", "matmul"])
@pytest.mark.parametrize("splits,dtype", [(3, np.float32), (3, np.float64), (100, np.float32)])
def test_split_sums_are_in_a_fixed_order_on_any_grid(monkeypatch, use, splits, dtype):
    # The split sums (conv weight gradient with its bias column, matmul's split K): a block of 32 elements
    # by min(splits, 32) warps, each warp its splits in turn. 6 x 26 = 156 elements (LeNet-5's first
    # layer: 4 full groups of 32 and a tail) over the conftest's 3 blocks and over 1; 100 splits (LeNet-5's
    # are hundreds): warps take 4 or 3. Against the exact sum within the error bound of adding `splits`
    # terms in the dtype, bit-identical between the grids, inf and NaN carried.
    import importlib
    import math

    from jitgrad.kernels.cuda import _launch

    matmul = importlib.import_module("jitgrad.kernels.cuda.matmul")  # (the package's matmul is the function)
    rows, cols = 6, 26
    parts = randn((splits, rows * cols), np.float64, 7).astype(dtype)
    parts[splits - 1, 3] = np.inf
    parts[0, 40] = np.nan
    exact = np.array([math.fsum(c) for c in parts.T.astype(np.float64)]).reshape(rows, cols)
    bound = splits * np.finfo(dtype).eps * np.abs(parts).astype(np.float64).sum(axis=0).reshape(rows, cols)
    results = []
    for max_blocks in (3, 1):
        monkeypatch.setattr(_launch, "MAX_BLOCKS", max_blocks)
        blocks, threads = _launch.split_sum_grid(splits, rows * cols)
        assert threads == (32, min(splits, 32)) and blocks == min(max_blocks, 5)
        if use == "matmul":
            out = dev(nan_like((rows, cols), dtype))
            matmul.sum_splits_kernel[blocks, threads](dev(parts), out, out)
            results.append(host(out))
        else:
            grad_w, grad_b = dev(nan_like((rows, cols - 1), dtype)), dev(nan_like((rows, 1), dtype))
            matmul.sum_splits_kernel[blocks, threads](dev(parts), grad_w, grad_b)
            results.append(np.concatenate([host(grad_w), host(grad_b)], axis=1))
    assert results[0].dtype == dtype and results[0].tobytes() == results[1].tobytes()
    assert np.isposinf(results[0][0, 3]) and np.isnan(results[0][1, 14])
    finite = np.isfinite(exact)
    assert finite.sum() == rows * cols - 2
    assert np.all(np.abs(results[0][finite] - exact[finite]) <= bound[finite])


def test_weight_gradient_of_many_splits_and_few_outputs(monkeypatch):
    # LeNet-5's first layer in small: C_out 6, 5x5 taps of 1 channel (6 x 26 = 156 sums, not a multiple of
    # 32), P = 2 * 16 * 24 in 48 chunks of 16 pixels (warps sum 2 or 1; LeNet-5's batch of 128 has 784).
    # Against the reference, and bit-identical on a rerun over another grid (the conftest's 3 blocks, then 1).
    from jitgrad.kernels.cuda import _launch

    monkeypatch.setattr(cb, "SPLIT_MIN_CHUNK", 16)
    x, g = randn((2, 1, 20, 28), np.float32, 5), randn((2, 6, 16, 24), np.float32, 6)
    assert cb.split_k(2 * 16 * 24, 1) == (48, 16)
    expected = ref.conv2d_backward_weight(x, g, weight_shape=(6, 1, 5, 5))
    rtol, atol = tolerance(np.float32, 2 * 16 * 24)
    runs = []
    for max_blocks in (3, 1):
        monkeypatch.setattr(_launch, "MAX_BLOCKS", max_blocks)
        runs.append([host(a) for a in kc.conv2d_backward_weight(dev(x), dev(g), weight_shape=(6, 1, 5, 5))])
    for got, want, again in zip(runs[0], expected, runs[1]):
        assert_close(got, want, np.float32, rtol=rtol, atol=atol)
        assert got.tobytes() == again.tobytes()


def _assert_same_specials(actual, expected):
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(actual), np.isinf(expected))
    finite = np.isfinite(expected)
    assert_close(np.where(finite, actual, 0), np.where(finite, expected, 0))


@pytest.mark.parametrize("small_max", [0, cb.SMALL_MAX_OUTPUTS], ids=["tiled", "small"])
def test_weight_gradient_infinite_grad_out_meets_the_padding_zeros(monkeypatch, small_max):
    # The reference multiplies the im2col padding zeros too: inf * 0 is NaN in those weight taps only.
    monkeypatch.setattr(cb, "SPLIT_MIN_CHUNK", 16)
    monkeypatch.setattr(cb, "SMALL_MAX_OUTPUTS", small_max)
    x, g, kw = _split_case()
    g[1, 2, 0, 4] = np.inf  # a corner output: its window reaches into the padding
    g[0, 0, 3, 2] = np.nan
    got = [host(a) for a in kc.conv2d_backward_weight(dev(x), dev(g), **kw)]
    want = ref.conv2d_backward_weight(x, g, **kw)
    assert np.isnan(want[0]).any() and np.isfinite(want[0]).any() and np.isinf(want[1]).any()
    for a, b in zip(got, want):
        _assert_same_specials(a, b)


@pytest.mark.parametrize("stride", [1, 2])
def test_input_gradient_with_non_finite_weights_matches_the_reference(monkeypatch, stride):
    # The GEMM multiplies every weight by the zeros where no output sees a pixel; a block that loads a
    # non-finite weight recomputes its tile directly, so the border keeps the reference's finite values.
    g = randn((2, 3, 5 if stride == 1 else 3, 5 if stride == 1 else 3), np.float32, 5)
    w = randn((3, 2, 3, 3), np.float32, 6)
    w[1, 0, 0, 2] = np.inf
    w[2, 1, 2, 1] = np.nan
    kw = dict(input_shape=(2, 2, 5, 5), stride=stride, padding=1)
    monkeypatch.setattr(cb, "GEMM_MIN_C_IN", 1)
    got = host(kc.conv2d_backward_input(dev(g), dev(w), **kw))
    want = ref.conv2d_backward_input(g, w, **kw)
    assert np.isfinite(want).any() and not np.isfinite(want).all()
    _assert_same_specials(got, want)


@pytest.mark.parametrize("small_max", [0, cb.SMALL_MAX_OUTPUTS], ids=["tiled", "small"])
def test_gemm_gradients_on_the_adversarial_sweep(monkeypatch, small_max):
    # tests/cuda/test_sweep.py's conv gradient cases (NaN, infinities, huge values, empty and degenerate
    # shapes), in process so that the GEMM paths take the sweep's few channels and short P.
    from tests.hardening_sweep import case_strategy, draw_cases
    from tests.sweep_runner import run_case

    monkeypatch.setattr(cb, "GEMM_MIN_C_IN", 1)
    monkeypatch.setattr(cb, "SPLIT_MIN_CHUNK", 16)
    monkeypatch.setattr(cb, "SMALL_MAX_OUTPUTS", small_max)
    cases = draw_cases(case_strategy(["conv2d_backward_input", "conv2d_backward_weight"],
                                     kinds=("normal", "nan", "inf", "ninf", "huge")), 24)
    problems = [(c, run_case(c, ref, kc, lambda a, written: dev(a) if isinstance(a, np.ndarray) else a,
                             lambda a: host(a) if hasattr(a, "copy_to_host") else np.asarray(a)))
                for c in cases]
    assert not [p for p in problems if p[1] is not None], [p for p in problems if p[1] is not None]
