"""CUDA grouped/depthwise conv2d, conv_transpose2d and adaptive pooling against the reference (tiny shapes)."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
import jitgrad.kernels.reference as ref
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, nan_like, randn, tie_free

GROUPED = [
    ((2, 4, 5, 4), (6, 2, 3, 3), dict(stride=1, padding=1, dilation=1, groups=2)),
    ((1, 3, 5, 6), (6, 1, 3, 2), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs,ws,hp", GROUPED, ids=["groups2", "depthwise-multiplier2"])
def test_grouped_conv2d_and_gradients(xs, ws, hp, dtype):
    x, w, b = randn(xs, dtype, 1), randn(ws, dtype, 2), randn((ws[0],), dtype, 3)
    y = ref.conv2d(x, w, b, **hp)
    out = dev(nan_like(y.shape, dtype))
    assert kc.conv2d(dev(x), dev(w), dev(b), out=out, **hp) is out
    assert_close(host(out), y)
    assert_close(host(kc.conv2d(dev(x), dev(w), **hp)), ref.conv2d(x, w, **hp))
    g = randn(y.shape, dtype, 4)
    assert_close(host(kc.conv2d_backward_input(dev(g), dev(w), input_shape=xs, **hp)),
                 ref.conv2d_backward_input(g, w, input_shape=xs, **hp))
    gw, gb = kc.conv2d_backward_weight(dev(x), dev(g), weight_shape=ws, **hp)
    rw, rb = ref.conv2d_backward_weight(x, g, weight_shape=ws, **hp)
    assert_close(host(gw), rw)
    assert_close(host(gb), rb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hp", [dict(stride=2, padding=1, output_padding=1, dilation=1, groups=1),
                                dict(stride=1, padding=0, output_padding=0, dilation=2, groups=2)],
                         ids=["outpad", "groups2-dilated"])
def test_conv_transpose2d_and_gradients(hp, dtype):
    x, w, b = randn((2, 2, 3, 3), dtype, 5), randn((2, 2, 2, 3), dtype, 6), randn((2 * hp["groups"],), dtype, 7)
    y = ref.conv_transpose2d(x, w, b, **hp)
    assert_close(host(kc.conv_transpose2d(dev(x), dev(w), dev(b), **hp)), y)
    g = randn(y.shape, dtype, 8)
    assert_close(host(kc.conv_transpose2d_backward_input(dev(g), dev(w), input_shape=x.shape, **hp)),
                 ref.conv_transpose2d_backward_input(g, w, input_shape=x.shape, **hp))
    gw, gb = kc.conv_transpose2d_backward_weight(dev(x), dev(g), weight_shape=w.shape, **hp)
    rw, rb = ref.conv_transpose2d_backward_weight(x, g, weight_shape=w.shape, **hp)
    assert_close(host(gw), rw)
    assert_close(host(gb), rb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,size", [((2, 3, 5, 7), 1), ((1, 2, 7, 5), (3, 2)), ((1, 1, 3, 2), (4, None))],
                         ids=["global", "overlap", "upsample"])
def test_adaptive_pooling_and_gradients(shape, size, dtype):
    x = tie_free(shape, dtype, 9)
    y = ref.adaptive_avg_pool2d(x, output_size=size)
    assert_close(host(kc.adaptive_avg_pool2d(dev(x), output_size=size)), y)
    g = randn(y.shape, dtype, 10)
    assert_close(host(kc.adaptive_avg_pool2d_backward(dev(g), input_shape=shape)),
                 ref.adaptive_avg_pool2d_backward(g, input_shape=shape))
    (ym, am), (rym, ram) = kc.adaptive_max_pool2d(dev(x), output_size=size), ref.adaptive_max_pool2d(
        x, output_size=size)
    assert_close(host(ym), rym)
    np.testing.assert_array_equal(host(am), ram)
    assert_close(host(kc.adaptive_max_pool2d_backward(dev(g), am, input_shape=shape)),
                 ref.adaptive_max_pool2d_backward(g, ram, input_shape=shape))


def test_bad_groups_and_output_padding():
    x = dev(np.ones((1, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="groups=3 must divide"):
        kc.conv2d(x, dev(np.ones((3, 1, 3, 3), np.float32)), groups=3)
    with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
        kc.conv_transpose2d(x, dev(np.ones((4, 1, 3, 3), np.float32)), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        kc.adaptive_avg_pool2d(x, output_size=0)
