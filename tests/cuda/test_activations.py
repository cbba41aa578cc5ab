"""CUDA activations, forward and backward, against the reference in both dtypes."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
import jitgrad.kernels.reference as ref
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, nan_like, randn

ACTIVATIONS = [
    ("relu", {}),
    ("leaky_relu", {"negative_slope": 0.2}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("gelu", {"approximate": "none"}),
    ("gelu", {"approximate": "tanh"}),
    ("elu", {"alpha": 0.7}),
    ("softplus", {"beta": 2.0, "threshold": 3.0}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", ACTIVATIONS)
def test_activation_matches_reference(name, params, dtype):
    # 3 x 13 = 39 elements: more than 3 blocks of 8 threads, so the grid-stride loop wraps.
    x = randn((3, 13), dtype, seed=1, scale=3.0)
    x[0, :4] = [0.0, -0.0, 40.0, -40.0]  # kinks and saturation
    g = randn((3, 13), dtype, seed=2)
    y = getattr(kc, name)(dev(x), **params)
    assert y.shape == x.shape and y.dtype == dtype
    assert_close(host(y), getattr(ref, name)(x, **params))
    assert_close(host(getattr(kc, name + "_backward")(dev(g), dev(x), **params)),
                 getattr(ref, name + "_backward")(g, x, **params))


def test_activation_bad_input():
    x = dev(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int32"):
        kc.relu(dev(np.ones(3, np.int32)))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(3,\), got \(2,\)"):
        kc.relu_backward(dev(np.ones(2, np.float32)), x)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'erf'"):
        kc.gelu(x, approximate="erf")
    with pytest.raises(ValueError, match="beta must be > 0.0"):
        kc.softplus(x, beta=0.0)
    with pytest.raises(TypeError, match="negative_slope must be a real number"):
        kc.leaky_relu(x, negative_slope="0.1")


def test_empty_input_gives_empty_output():
    assert host(kc.tanh(dev(nan_like((0, 3), np.float32)))).shape == (0, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,params", ACTIVATIONS)
def test_nan_and_inf_propagate_as_reference(name, params, dtype):
    # The CPU tests' table of specials (issue 12: relu(NaN) was 0).
    from tests.kernels.test_activations import assert_same_specials, special_inputs

    x, g = special_inputs(dtype)
    with np.errstate(all="ignore"):
        want, want_grad = getattr(ref, name)(x, **params), getattr(ref, name + "_backward")(g, x, **params)
    assert_same_specials(host(getattr(kc, name)(dev(x), **params)), want, dtype)
    assert_same_specials(host(getattr(kc, name + "_backward")(dev(g), dev(x), **params)), want_grad, dtype)
