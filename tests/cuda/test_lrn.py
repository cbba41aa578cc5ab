"""CUDA local response normalisation and its gradient against the reference (the shared case table)."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
from tests.cases.lrn import CASES, check_backend, check_bad_input, check_non_finite
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_matches_reference(name, dtype):
    check_backend(kc, *CASES[name], dtype, to_device=dev, to_host=host)


def test_nan_and_inf_propagate_as_the_reference():
    check_non_finite(kc, np.float32, to_device=dev, to_host=host)


def test_bad_input():
    check_bad_input(kc, to_device=dev)


def test_layer_on_cuda_matches_cpu_forward_and_gradient():
    import jitgrad
    from jitgrad import nn
    from tests.helpers import assert_close, randn

    x = randn((2, 5, 2, 3), np.float32, seed=4)
    layer = nn.LocalResponseNorm(4, alpha=1.0, beta=0.75, k=1.5)
    results = []
    for device in ("cpu", "cuda"):
        t = jitgrad.Tensor(x).to(device) if device == "cuda" else jitgrad.Tensor(x)
        t.requires_grad = True
        y = layer(t)
        assert y.device == device
        (y * y).sum().backward()
        results.append((y.numpy(), t.grad.numpy()))
    assert_close(results[1][0], results[0][0], np.float32, rtol=2e-4, atol=2e-5)
    assert_close(results[1][1], results[0][1], np.float32, rtol=2e-4, atol=2e-5)
