"""``activation=`` on nn.Linear / nn.Conv2d (Keras's ``Dense(activation=...)``, Flux's ``Dense(in => out, relu)``)."""

from __future__ import annotations

import numpy as np
import pytest

from jitgrad import Tensor, nn
from jitgrad.nn import functional as F
from tests.helpers import randn


def _pair(make_fused, make_plain):
    fused = make_fused()
    plain = make_plain()
    plain.load_state_dict(fused.state_dict())
    return fused, plain


@pytest.mark.parametrize("activation", ["relu", F.relu])
def test_linear_activation_layer(activation):
    fused, plain = _pair(lambda: nn.Linear(6, 4, activation=activation), lambda: nn.Linear(6, 4))
    assert list(fused.state_dict()) == ["weight", "bias"] and fused.activation == "relu"
    assert repr(fused) == "Linear(6 => 4, relu)"
    x = Tensor(randn((5, 6), np.float32, 1))
    np.testing.assert_array_equal(fused(x).numpy(), F.relu(plain(x)).numpy())
    assert (fused(x).numpy() == 0).any()


def test_conv2d_activation_layer_and_dense_alias():
    fused, plain = _pair(lambda: nn.Conv2d(2, 3, 3, padding=1, activation="relu"), lambda: nn.Conv2d(2, 3, 3, padding=1))
    assert repr(fused) == "Conv2d(2 => 3, 3×3, padding=1, relu)"
    x = Tensor(randn((2, 2, 5, 5), np.float32, 2))
    np.testing.assert_array_equal(fused(x).numpy(), F.relu(plain(x)).numpy())
    assert nn.Dense(3, 2, activation="relu").activation == "relu"
    assert nn.Linear(3, 2).activation is None and nn.Conv2d(1, 1, 1).activation is None  # unfused default


@pytest.mark.parametrize("layer, args", [(nn.Linear, (3, 2)), (nn.Conv2d, (1, 2, 3))])
def test_bad_activation(layer, args):
    name = layer.__name__
    with pytest.raises(ValueError, match=rf"^{name}: activation must be None or 'relu' .*got 'softmax'$"):
        layer(*args, activation="softmax")
    with pytest.raises(TypeError, match=rf"^{name}: activation must be None, 'relu' or nn.functional.relu, got "):
        layer(*args, activation=np.tanh)
