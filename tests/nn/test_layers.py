"""Layers: gradcheck of every layer in float64 (inputs and parameters), shape errors, dropout."""

from __future__ import annotations

import numpy as np
import pytest

from jitgrad import nn
from jitgrad.autograd.gradcheck import gradcheck
from jitgrad.autograd.tensor import Tensor
from tests.helpers import randn, tie_free


def check_layer(layer: nn.Module, x: np.ndarray) -> None:
    """gradcheck ``layer`` with respect to its input and every parameter, in float64.

    gradcheck hands ``fn`` float64 copies of its inputs; the copies of the
    parameters are bound into the layer (by instance attribute, which is where
    ``forward`` reads them) for the duration of each call.
    """
    layer.to(dtype=np.float64)
    names = [name for name, _ in layer.named_parameters()]
    owners = [(layer.get_submodule(n.rpartition(".")[0]) if "." in n else layer, n.rpartition(".")[2])
              for n in names] if names else []
    originals = [p for _, p in layer.named_parameters()]

    def fn(x, *params):
        for (owner, attr), p in zip(owners, params):
            owner.__dict__[attr] = p
        try:
            return layer(x)
        finally:
            for (owner, attr), p in zip(owners, originals):
                owner.__dict__[attr] = p

    params = [Tensor(p.numpy().copy(), requires_grad=True) for p in originals]
    assert gradcheck(fn, Tensor(x, requires_grad=True), *params)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(bias):
    check_layer(nn.Linear(4, 3, bias=bias), randn((2, 5, 4), seed=1))


@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), ((1, 2), (2, 0), (2, 1))])
def test_conv2d_gradcheck(stride, padding, dilation):
    layer = nn.Conv2d(2, 3, (3, 2), stride=stride, padding=padding, dilation=dilation)
    check_layer(layer, randn((2, 2, 6, 5), seed=2))  # batch 2: weight gradients sum over it


@pytest.mark.parametrize("kernel_size, stride, padding", [(2, None, 0), (3, 2, 1), ((2, 3), 1, (1, 0))])
@pytest.mark.parametrize("cls", [nn.MaxPool2d, nn.AvgPool2d])
def test_pool_gradcheck(cls, kernel_size, stride, padding):
    # Tie-free input: a max whose argmax flips under +-eps has no derivative.
    check_layer(cls(kernel_size, stride=stride, padding=padding), tie_free((1, 2, 5, 6), seed=3))


@pytest.mark.parametrize("layer", [
    nn.ReLU(), nn.LeakyReLU(0.1), nn.Sigmoid(), nn.Tanh(), nn.GELU(), nn.GELU(approximate="tanh"),
    nn.ELU(0.5), nn.Softplus(beta=2.0), nn.Softmax(dim=1), nn.LogSoftmax(dim=-1), nn.Flatten(),
    nn.Flatten(2), nn.Dropout(0.3),
], ids=repr)
def test_elementwise_and_shape_layers_gradcheck(layer):
    x = randn((3, 4, 2), seed=4)
    x[np.abs(x) < 1e-3] = 0.5  # keep kinks (relu at 0) away from the finite differences
    if isinstance(layer, nn.Dropout):
        layer.eval()  # the mask is random per call: check the (identity) eval path here
    check_layer(layer, x)


def test_sequential_gradcheck():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(8, 3), nn.LogSoftmax())
    check_layer(model, randn((2, 1, 4, 4), seed=5))


def test_dropout_train_masks_and_scales_reproducibly():
    x = Tensor(np.ones((50, 40)))
    layer = nn.Dropout(0.25, generator=np.random.default_rng(0))
    y = layer(x).numpy()
    kept = y != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    nn.manual_seed(3)
    a = nn.Dropout(0.5)(x).numpy()
    nn.manual_seed(3)
    b = nn.Dropout(0.5)(x).numpy()
    np.testing.assert_array_equal(a, b)
    assert nn.Dropout(0.5).eval()(x) is x


def test_output_shapes():
    x = Tensor(np.zeros((2, 3, 9, 9), np.float32))
    assert nn.Conv2d(3, 4, 3, stride=2, padding=1)(x).shape == (2, 4, 5, 5)
    assert nn.MaxPool2d(3, stride=2)(x).shape == (2, 3, 4, 4)
    assert nn.Flatten()(x).shape == (2, 243)
    assert nn.Linear(9, 2)(x).shape == (2, 3, 9, 2)


@pytest.mark.parametrize("layer, shape, message", [
    (nn.Linear(256, 120), (8, 300), r"Linear\(256 => 120\) expected input \(\.\.\., 256\), got \(8, 300\)"),
    (nn.Conv2d(1, 6, 5), (8, 3, 28, 28), r"Conv2d\(1 => 6, 5×5\) expected input \(N, 1, H, W\), got \(8, 3, 28, 28\)"),
    (nn.Conv2d(1, 6, 5), (1, 28, 28), r"Conv2d\(1 => 6, 5×5\) expected input \(N, 1, H, W\), got \(1, 28, 28\)"),
    (nn.MaxPool2d(2), (4, 4), r"MaxPool2d\(2×2\) expected input \(N, C, H, W\), got \(4, 4\)"),
    (nn.AvgPool2d(2), (1, 4, 4), r"AvgPool2d\(2×2\) expected input \(N, C, H, W\), got \(1, 4, 4\)"),
    (nn.Flatten(), (5,), r"Flatten\(\) expected input with more than 1 dimension\(s\), got \(5,\)"),
])
def test_wrong_input_shape_names_layer_and_shapes(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(Tensor(np.zeros(shape, np.float32)))
