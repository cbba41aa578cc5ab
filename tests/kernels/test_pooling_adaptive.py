"""Adaptive average and max pooling: the reference against its definition and against fixed-window
pooling where the bins are a fixed window, the CPU kernels against the reference, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from tests.helpers import DTYPES, assert_close, numerical_grad, randn, tie_free

BACKENDS = [pytest.param(ref, id="reference"), pytest.param(cpu, id="cpu")]

# (input shape, output_size)
CASES = {
    "global": ((2, 3, 5, 7), 1),
    "divides": ((2, 2, 8, 6), (4, 3)),
    "overlapping-bins": ((1, 3, 7, 5), (3, 2)),
    "upsampling": ((2, 1, 3, 2), (5, 4)),
    "keep-width": ((1, 2, 6, 5), (4, None)),
    "identity": ((1, 2, 4, 4), 4),
}


def bins(size, out):
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def definition(x, output_size, op):
    ho, wo = (output_size, output_size) if isinstance(output_size, int) else output_size
    ho = x.shape[2] if ho is None else ho
    wo = x.shape[3] if wo is None else wo
    y = np.empty(x.shape[:2] + (ho, wo))
    for i, (h0, h1) in enumerate(bins(x.shape[2], ho)):
        for j, (w0, w1) in enumerate(bins(x.shape[3], wo)):
            y[:, :, i, j] = op(x[:, :, h0:h1, w0:w1], axis=(2, 3))
    return y


@pytest.mark.parametrize("shape,size", list(CASES.values()), ids=list(CASES))
def test_reference_is_the_definition(shape, size):
    x = tie_free(shape)
    assert_close(ref.adaptive_avg_pool2d(x, output_size=size), definition(x, size, np.mean))
    y, argmax = ref.adaptive_max_pool2d(x, output_size=size)
    assert_close(y, definition(x, size, np.max))
    assert_close(np.take_along_axis(x.reshape(*shape[:2], -1), argmax.reshape(*shape[:2], -1), -1), y.reshape(
        *shape[:2], -1))


def test_reference_equals_fixed_window_pooling_when_bins_are_a_window():
    x = randn((2, 3, 8, 6))
    assert_close(ref.adaptive_avg_pool2d(x, output_size=(4, 3)), ref.avg_pool2d(x, kernel_size=2))
    y, a = ref.adaptive_max_pool2d(x, output_size=(4, 3))
    y2, a2 = ref.max_pool2d(x, kernel_size=2)
    assert_close(y, y2)
    np.testing.assert_array_equal(a, a2)


def test_reference_ties_go_to_the_first_index():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 1, 0] = 5.0
    _, argmax = ref.adaptive_max_pool2d(x, output_size=1)
    assert argmax[0, 0, 0, 0] == 1 * 4 + 0


@pytest.mark.parametrize("shape,size", [CASES["overlapping-bins"], CASES["upsampling"]], ids=["overlap", "up"])
def test_reference_backwards_are_finite_differences(shape, size):
    x = tie_free(shape, seed=3)
    y = ref.adaptive_avg_pool2d(x, output_size=size)
    g = randn(y.shape, np.float64, 4)
    assert_close(ref.adaptive_avg_pool2d_backward(g, input_shape=shape),
                 numerical_grad(lambda v: float((ref.adaptive_avg_pool2d(v, output_size=size) * g).sum()), x),
                 rtol=1e-6, atol=1e-8)
    _, argmax = ref.adaptive_max_pool2d(x, output_size=size)
    assert_close(ref.adaptive_max_pool2d_backward(g, argmax, input_shape=shape),
                 numerical_grad(lambda v: float((ref.adaptive_max_pool2d(v, output_size=size)[0] * g).sum()), x,
                                eps=1e-7), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,size", list(CASES.values()), ids=list(CASES))
def test_cpu_matches_reference(shape, size, dtype):
    x = tie_free(shape, dtype, seed=1)
    y = cpu.adaptive_avg_pool2d(x, output_size=size)
    assert y.dtype == dtype
    assert_close(y, ref.adaptive_avg_pool2d(x, output_size=size), dtype)
    g = randn(y.shape, dtype, 2)
    assert_close(cpu.adaptive_avg_pool2d_backward(g, input_shape=shape),
                 ref.adaptive_avg_pool2d_backward(g, input_shape=shape), dtype)
    (y, argmax), (ry, rargmax) = cpu.adaptive_max_pool2d(x, output_size=size), ref.adaptive_max_pool2d(
        x, output_size=size)
    assert_close(y, ry, dtype)
    np.testing.assert_array_equal(argmax, rargmax)
    assert argmax.dtype == np.int32
    assert_close(cpu.adaptive_max_pool2d_backward(g, argmax, input_shape=shape),
                 ref.adaptive_max_pool2d_backward(g, rargmax, input_shape=shape), dtype)


def test_cpu_nan_inf_propagate_as_the_reference():
    x = randn((1, 2, 5, 5))
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 4, 4] = np.inf
    for size in (1, 2):
        np.testing.assert_allclose(cpu.adaptive_avg_pool2d(x, output_size=size),
                                   ref.adaptive_avg_pool2d(x, output_size=size), rtol=1e-12)
        for a, b in zip(cpu.adaptive_max_pool2d(x, output_size=size), ref.adaptive_max_pool2d(x, output_size=size)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
class TestBadInput:
    X = np.ones((1, 2, 4, 4), np.float32)

    @pytest.mark.parametrize("size,exc,message", [
        (0, ValueError, "output_size must be >= 1, got 0"),
        ((2, 0), ValueError, r"output_size must be >= 1, got \(2, 0\)"),
        (1.5, TypeError, "output_size must be an int or a pair"),
        ((1, 2, 3), TypeError, "output_size must be an int or a pair"),
    ])
    def test_bad_output_size(self, backend, size, exc, message):
        with pytest.raises(exc, match=message):
            backend.adaptive_avg_pool2d(self.X, output_size=size)
        with pytest.raises(exc, match=message):
            backend.adaptive_max_pool2d(self.X, output_size=size)

    def test_bad_arrays(self, backend):
        with pytest.raises(ValueError, match="x must be 4-D"):
            backend.adaptive_avg_pool2d(np.ones((2, 4, 4), np.float32), output_size=1)
        with pytest.raises(TypeError, match="x must have dtype"):
            backend.adaptive_max_pool2d(np.ones((1, 2, 4, 4), np.int64), output_size=1)
        with pytest.raises(ValueError, match="grad_out must have the batch and channels of input_shape"):
            backend.adaptive_avg_pool2d_backward(np.ones((1, 3, 1, 1), np.float32), input_shape=(1, 2, 4, 4))
        with pytest.raises(ValueError, match=r"argmax must have shape \(1, 2, 1, 1\)"):
            backend.adaptive_max_pool2d_backward(np.ones((1, 2, 1, 1), np.float32),
                                                 np.zeros((1, 2, 2, 1), np.int32), input_shape=(1, 2, 4, 4))
        with pytest.raises(ValueError, match=r"argmax must hold flat indices in \[0, H\*W\) = \[0, 16\), got 16"):
            backend.adaptive_max_pool2d_backward(np.ones((1, 2, 1, 1), np.float32),
                                                 np.full((1, 2, 1, 1), 16, np.int32), input_shape=(1, 2, 4, 4))
