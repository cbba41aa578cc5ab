"""Conv2d(groups=), ConvTranspose2d, adaptive/global pooling, Identity, SkipConnection and Parallel."""

from __future__ import annotations

import operator

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import nn
from jitgrad.kernels import reference as ref
from tests.helpers import assert_close, randn


def test_grouped_and_depthwise_conv2d_layers():
    conv = nn.Conv2d(4, 8, 3, padding=1, groups=2)
    assert conv.weight.shape == (8, 2, 3, 3)
    assert "groups=2" in repr(conv)
    x = jg.tensor(randn((2, 4, 5, 5), np.float32))
    assert_close(conv(x).numpy(), ref.conv2d(x.numpy(), conv.weight.numpy(), conv.bias.numpy(), padding=1, groups=2))
    dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    assert dw.weight.shape == (4, 1, 3, 3)
    dw(x).sum().backward()
    assert dw.weight.grad.shape == (4, 1, 3, 3)
    with pytest.raises(ValueError, match="Conv2d: groups=3 must divide in_channels=4 and out_channels=6"):
        nn.Conv2d(4, 6, 3, groups=3)


def test_conv_transpose2d_layer_doubles_the_size():
    up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    assert up.weight.shape == (4, 2, 3, 3)
    x = jg.tensor(randn((1, 4, 5, 6), np.float32), requires_grad=True)
    y = up(x)
    assert y.shape == (1, 2, 10, 12)
    assert_close(y.numpy(), ref.conv_transpose2d(x.numpy(), up.weight.numpy(), up.bias.numpy(), stride=2,
                                                 padding=1, output_padding=1))
    y.sum().backward()
    assert x.grad.shape == x.shape and up.weight.grad.shape == up.weight.shape
    assert "output_padding=1" in repr(up) and "stride=2" in repr(up)
    with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
        nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="expected input"):
        up(jg.zeros((1, 3, 5, 5)))


def test_adaptive_and_global_pooling_layers():
    x = jg.tensor(randn((2, 3, 7, 5), np.float32))
    assert nn.AdaptiveAvgPool2d((2, 3))(x).shape == (2, 3, 2, 3)
    assert nn.AdaptiveMaxPool2d(1)(x).shape == (2, 3, 1, 1)
    g = nn.GlobalAvgPool()(x)
    assert_close(g.numpy(), x.numpy().mean(axis=(2, 3), keepdims=True))
    assert nn.GlobalMeanPool is nn.GlobalAvgPool
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        nn.AdaptiveAvgPool2d(0)
    assert "output_size=(2, 3)" in repr(nn.AdaptiveAvgPool2d((2, 3)))


def test_identity_and_residual_block_without_subclassing():
    jg.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1))
    block = nn.SkipConnection(body, operator.add)
    x = jg.tensor(randn((2, 3, 4, 4), np.float32), requires_grad=True)
    assert_close(block(x).numpy(), body(x).numpy() + x.numpy())
    assert set(dict(block.named_parameters())) == {"layer.0.weight", "layer.0.bias", "layer.2.weight",
                                                   "layer.2.bias"}
    block(x).sum().backward()
    assert x.grad is not None and body[0].weight.grad is not None
    assert nn.Identity()(x) is x
    plus = nn.SkipConnection(body, "+")
    assert_close(plus(x).numpy(), block(x).numpy())
    dense = nn.SkipConnection(body, lambda y, x: jg.cat([y, x], dim=1))
    assert dense(x).shape == (2, 6, 4, 4)
    assert repr(block).startswith("SkipConnection(")


def test_parallel_projection_shortcut():
    body = nn.Conv2d(2, 4, 3, stride=2, padding=1)
    shortcut = nn.Conv2d(2, 4, 1, stride=2)
    block = nn.Parallel("+", body, shortcut)
    x = jg.tensor(randn((1, 2, 6, 6), np.float32))
    assert_close(block(x).numpy(), body(x).numpy() + shortcut(x).numpy())
    assert len(list(block.parameters())) == 4
    cat = nn.Parallel(lambda a, b: jg.cat([a, b], 1), nn.Identity(), nn.Identity())
    assert cat(x).shape == (1, 4, 6, 6)
    assert cat(x, x).shape == (1, 4, 6, 6)
    with pytest.raises(ValueError, match="got 3 inputs for 2 layers"):
        cat(x, x, x)
    with pytest.raises(TypeError, match="connection must be callable"):
        nn.Parallel(3, nn.Identity())
    with pytest.raises(TypeError, match="SkipConnection: layer must be callable"):
        nn.SkipConnection(5, "+")
