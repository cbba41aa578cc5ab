"""Zero-size and degenerate geometries, huge sizes, and non-finite values through the core kernels:
a clear error or exactly the reference's result, on cpu and reference."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad.kernels.cpu as cpu
import jitgrad.kernels.reference as reference

BACKENDS = pytest.mark.parametrize("K", [cpu, reference], ids=["cpu", "reference"])


@BACKENDS
def test_zero_size_kernel_is_rejected_not_uninitialised(K):
    with pytest.raises(ValueError, match=r"^w must have a kernel of at least 1x1, got shape \(1, 1, 0, 0\)"):
        K.conv2d(np.ones((1, 1, 4, 4), "f4"), np.zeros((1, 1, 0, 0), "f4"))
    with pytest.raises(ValueError, match=r"^weight_shape must have positive sizes"):
        K.conv2d_backward_weight(np.ones((1, 1, 4, 4), "f4"), np.ones((1, 1, 5, 5), "f4"),
                                 weight_shape=(1, 1, 0, 0))


@BACKENDS
@pytest.mark.parametrize("padding", [2**40, (0, 2**31)])
def test_huge_padding_is_a_clear_error(K, padding):
    with pytest.raises(ValueError, match=r"^padding must be at most 2\*\*31 - 1"):
        K.conv2d(np.ones((1, 1, 4, 4), "f4"), np.ones((1, 1, 1, 1), "f4"), padding=padding)


@BACKENDS
def test_huge_output_is_refused_before_allocating(K):
    with pytest.raises(ValueError, match=r"output would have shape \(1, 1, 2097156, 2097156\)"):
        K.conv2d(np.ones((1, 1, 4, 4), "f4"), np.ones((1, 1, 1, 1), "f4"), padding=2**20)
    with pytest.raises(ValueError, match="kernel_size must be at most 2"):
        K.max_pool2d(np.ones((1, 1, 4, 4), "f4"), kernel_size=2**40)


@BACKENDS
@pytest.mark.parametrize("shapes", [
    ((2, 0, 4, 4), (3, 0, 2, 2)),  # no input channels: an empty sum, bias only
    ((0, 2, 4, 4), (3, 2, 2, 2)),  # empty batch
    ((2, 2, 4, 4), (0, 2, 2, 2)),  # no output channels
])
def test_empty_convolutions_give_exact_zeros(K, shapes):
    x_shape, w_shape = shapes
    x, w = np.ones(x_shape, "f4"), np.ones(w_shape, "f4")
    b = np.arange(w_shape[0], dtype="f4") + 1
    y = K.conv2d(x, w, b)
    expected = np.broadcast_to(b[:, None, None], y.shape[1:])
    assert y.shape == (x_shape[0], w_shape[0], 3, 3)
    assert np.array_equal(y, np.broadcast_to(expected, y.shape))
    g = np.full(y.shape, 2.0, "f4")
    gx = K.conv2d_backward_input(g, w, input_shape=x_shape)
    gw, gb = K.conv2d_backward_weight(x, g, weight_shape=w_shape)
    assert gx.shape == x_shape and gw.shape == w_shape and gb.shape == (w_shape[0],)
    ref_gw, ref_gb = reference.conv2d_backward_weight(x, g, weight_shape=w_shape)
    np.testing.assert_array_equal(gw, ref_gw)
    np.testing.assert_array_equal(gb, ref_gb)
    np.testing.assert_array_equal(gx, reference.conv2d_backward_input(g, w, input_shape=x_shape))


@BACKENDS
def test_empty_matmul_reduction_is_zero(K):
    out = np.full((3, 2), np.nan, "f4")
    K.matmul(np.ones((3, 0), "f4"), np.ones((0, 2), "f4"), out=out)
    assert np.array_equal(out, np.zeros((3, 2), "f4"))


@BACKENDS
def test_max_pool_argmax_never_points_into_padding(K):
    x = np.full((1, 1, 3, 3), -np.inf, "f4")
    x[0, 0, 2, 2] = 1.0
    y, argmax = K.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    assert argmax.min() >= 0
    # A window of only -inf picks its first real element (PyTorch's rule).
    assert argmax[0, 0, 0, 0] == 0 and argmax[0, 0, 0, 2] == 1 and argmax[0, 0, 1, 1] == 8
    np.testing.assert_array_equal(argmax, reference.max_pool2d(x, kernel_size=3, stride=1, padding=1)[1])


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("dtype", ["f4", "f8"])
def test_adam_moments_stay_infinite_like_the_reference(decoupled, value, dtype):
    states = []
    for K in (cpu, reference):
        p, g = np.ones(5, dtype), np.full(5, 0.5, dtype)
        m, v = np.full(5, 0.1, dtype), np.full(5, 0.2, dtype)
        g[1] = value
        with np.errstate(invalid="ignore"):
            K.adam_update(p, g, m, v, step=3, lr=0.01, weight_decay=0.01, decoupled_weight_decay=decoupled)
        states.append((p, m, v))
    for actual, expected in zip(*states):
        np.testing.assert_allclose(actual, expected, rtol=1e-6)  # NaN and inf positions equal


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_sgd_and_gemm_and_conv_propagate_non_finite_like_the_reference(value):
    a = np.ones((4, 5), "f4")
    a[1, 2] = value
    b = np.ones((5, 3), "f4")
    np.testing.assert_array_equal(cpu.matmul(a, b), reference.matmul(a, b))
    x = np.ones((1, 1, 5, 5), "f4")
    x[0, 0, 2, 2] = value
    w = np.ones((2, 1, 3, 3), "f4")
    np.testing.assert_array_equal(cpu.conv2d(x, w, padding=1), reference.conv2d(x, w, padding=1))
    for kernel in ("max_pool2d", "avg_pool2d"):
        got, want = getattr(cpu, kernel)(x, kernel_size=2), getattr(reference, kernel)(x, kernel_size=2)
        for g_, w_ in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            np.testing.assert_array_equal(g_, w_)
    results = []
    for K in (cpu, reference):
        p, buf = np.ones(5, "f4"), np.zeros(5, "f4")
        grad = np.full(5, 0.5, "f4")
        grad[3] = value
        K.sgd_update(p, grad, buf, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
        results.append((p, buf))
    for actual, expected in zip(*results):
        np.testing.assert_allclose(actual, expected, rtol=1e-6)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_conv_weight_gradient_of_non_finite_input_matches_reference(value):
    # Found by the sweep: the unit-stride dot kernel multiplied an infinite input by the zero
    # padding of grad_out, giving NaN in taps that never see that input.
    rng = np.random.default_rng(8)
    x, g = rng.standard_normal((3, 1, 3, 3)), rng.standard_normal((3, 2, 3, 3))
    x[2, 0, 2, 2] = value
    kw = dict(weight_shape=(2, 1, 2, 2), padding=1, dilation=2)
    with np.errstate(invalid="ignore"):
        expected = reference.conv2d_backward_weight(x, g, **kw)
    for actual, want in zip(cpu.conv2d_backward_weight(x, g, **kw), expected):
        np.testing.assert_allclose(actual, want, rtol=1e-12)


@BACKENDS
@pytest.mark.parametrize("kernel", ["max_pool2d", "avg_pool2d"])
def test_pooling_an_empty_plane_is_refused(K, kernel):
    # Found by the sweep: with padding, a 0-row input gave a window made only of padding, and the
    # CPU max_pool2d returned uninitialised memory for it (the reference -inf).
    with pytest.raises(ValueError, match=r"^pooling needs an input plane of at least 1x1, got input of shape \(2, 1, 0, 1\)"):
        getattr(K, kernel)(np.ones((2, 1, 0, 1)), kernel_size=2, stride=1, padding=1)
