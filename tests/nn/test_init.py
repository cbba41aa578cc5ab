"""Initialisers: bounds and moments as PyTorch's, seeding, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jitgrad.nn import init


def test_kaiming_uniform_a_sqrt5_is_pytorch_default_bound():
    w = np.empty((50, 40), np.float32)
    init.kaiming_uniform_(w, a=math.sqrt(5), generator=np.random.default_rng(0))
    bound = 1 / math.sqrt(40)
    assert w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound


def test_conv_fan_in_counts_receptive_field():
    assert init.calculate_fan_in_and_fan_out((6, 3, 5, 5)) == (75, 150)
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(4,\)"):
        init.calculate_fan_in_and_fan_out((4,))


@pytest.mark.parametrize("fn, std", [
    (init.kaiming_normal_, math.sqrt(2 / (1 + 0.01**2)) / math.sqrt(200)),
    (init.xavier_normal_, math.sqrt(2 / (200 + 300))),
])
def test_normal_initialisers_have_expected_std(fn, std):
    w = np.empty((300, 200))
    fn(w, generator=np.random.default_rng(1))
    assert abs(w.std() / std - 1) < 0.02 and abs(w.mean()) < 0.05 * std


def test_xavier_uniform_bound_and_glorot_alias():
    w = np.empty((30, 20))
    init.glorot_uniform(w, gain=2.0, generator=np.random.default_rng(2))
    bound = 2.0 * math.sqrt(6 / 50)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert init.glorot_uniform is init.xavier_uniform_


def test_constant_initialisers_and_return_value():
    w = np.empty((2, 3))
    assert init.zeros_(w) is w and not w.any()
    assert (init.ones_(w) == 1).all()
    assert (init.constant_(w, 0.25) == 0.25).all()
    assert (init.normal_(w, 3.0, 0.0) == 3.0).all()


def test_manual_seed_makes_draws_reproducible():
    init.manual_seed(7)
    a = init.uniform_(np.empty(5), -1, 1)
    init.manual_seed(7)
    b = init.uniform_(np.empty(5), -1, 1)
    c = init.uniform_(np.empty(5), -1, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    g = init.manual_seed(3)
    assert init.get_generator() is g


def test_gains():
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    with pytest.raises(ValueError, match="calculate_gain: unknown nonlinearity 'swish'"):
        init.calculate_gain("swish")


def test_bad_input_errors():
    with pytest.raises(TypeError, match="manual_seed: seed must be an int, got float"):
        init.manual_seed(1.5)
    with pytest.raises(ValueError, match="manual_seed: seed must be >= 0, got -1"):
        init.manual_seed(-1)
    with pytest.raises(TypeError, match="init: expected a Tensor or a NumPy array, got list"):
        init.zeros_([1.0, 2.0])
    with pytest.raises(ValueError, match="uniform_: need a <= b, got a=1, b=0"):
        init.uniform_(np.empty(2), 1, 0)
    with pytest.raises(ValueError, match="normal_: std must be >= 0, got -1"):
        init.normal_(np.empty(2), 0, -1)
    with pytest.raises(ValueError, match="kaiming: mode must be 'fan_in' or 'fan_out', got 'fan'"):
        init.kaiming_uniform_(np.empty((2, 2)), mode="fan")


def test_nn_and_jitgrad_manual_seed_share_one_generator():
    import jitgrad

    jitgrad.manual_seed(11)
    a = init.uniform_(np.empty(4))
    init.manual_seed(11)
    b = init.uniform_(np.empty(4))
    np.testing.assert_array_equal(a, b)
    assert init.get_generator() is jitgrad.autograd.default_generator()
