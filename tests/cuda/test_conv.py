"""CUDA conv2d and its gradients against the reference: strides, padding, dilation, batch 1, odd sizes."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
import jitgrad.kernels.reference as ref
from tests.cuda.conftest import dev, host
from tests.cases.conv import CASES, HYPER, HYPER_IDS, check_backend, check_out_may_alias_an_input
from tests.helpers import DTYPES, assert_close, nan_like, randn

#: The shared table's named cases the simulator can afford (each CUDA thread is a Python thread there).
#: (The weight gradient runs one block per filter element: large filters cost minutes here.)
SIM_CASES = ["dilated-kernel-is-padded-input", "1x1", "1x1-stride2"]


def check_cuda(*case, seed=0, bias=True):
    check_backend(kc, *case, seed=seed, bias=bias, to_device=dev, to_host=host)


@pytest.mark.parametrize("stride,padding,dilation", HYPER, ids=HYPER_IDS)
def test_every_hyper_parameter_combination(stride, padding, dilation):
    # The CPU test's 27 combinations, on a smaller image (float32; the named cases below run both dtypes).
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
