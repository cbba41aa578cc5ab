"""local_response_norm / LocalResponseNorm: forward against the reference, float64 gradcheck, PyTorch parity, errors."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as F
from jitgrad import nn
from jitgrad.kernels import reference as ref
from tests.autograd.op_helper import check_op
from tests.helpers import DTYPES, assert_close, randn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, size", [((2, 5, 3, 2), 3), ((2, 6, 3), 4), ((1, 3, 2, 2, 2), 2)], ids=str)
def test_functional_forward_and_gradcheck(shape, size, dtype):
    # PyTorch's window: size // 2 channels before the centre.
    check_op(lambda x: F.local_response_norm(x, size, alpha=2.0, beta=0.75, k=1.5),
             lambda x: ref.lrn(x, size, 2.0, 0.75, 1.5, size // 2), [shape], dtype=dtype,
             grad=dtype == np.float64)


def test_layer_is_the_functional_and_has_no_parameters():
    layer = nn.LocalResponseNorm(5, alpha=1e-3, beta=0.5, k=2.0)
    assert list(layer.parameters()) == []
    assert repr(layer) == "LocalResponseNorm(5, alpha=0.001, beta=0.5, k=2.0)"
    x = jitgrad.tensor(randn((2, 7, 3, 3), np.float32, seed=1))
    assert_close(layer(x).numpy(), F.local_response_norm(x, 5, 1e-3, 0.5, 2.0).numpy())


def test_bad_input_names_the_argument():
    x = jitgrad.tensor(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"local_response_norm: input must be at least 3-D \(N, C, \*\), got shape"):
        F.local_response_norm(jitgrad.tensor(np.ones((2, 3), np.float32)), 3)
    with pytest.raises(ValueError, match="local_response_norm: size must be a positive int, got 0"):
        F.local_response_norm(x, 0)
    with pytest.raises(ValueError, match="local_response_norm: k must be a finite real number, got nan"):
        F.local_response_norm(x, 3, k=float("nan"))
    with pytest.raises(TypeError, match="local_response_norm: alpha must be a finite real number, got None"):
        F.local_response_norm(x, 3, alpha=None)
    with pytest.raises(TypeError, match="LocalResponseNorm: size must be a positive int, got 2.5"):
        nn.LocalResponseNorm(2.5)
    with pytest.raises(TypeError, match="local_response_norm: size must be a positive int, got 2.5"):
        F.local_response_norm(x, 2.5)


@pytest.mark.parametrize("shape, size", [((2, 7, 3, 4), 5), ((2, 6, 5), 4), ((1, 4, 2, 3, 2), 2), ((2, 3, 2, 2), 7)],
                         ids=str)
def test_matches_pytorch_forward_and_gradient(shape, size):
    torch = pytest.importorskip("torch")
    x, g = randn(shape, np.float64, seed=2, scale=2.0), randn(shape, np.float64, seed=3)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.local_response_norm(tx, size, alpha=0.5, beta=0.75, k=1.2)
    ty.backward(torch.tensor(g))
    jx = jitgrad.tensor(x, requires_grad=True)
    jy = nn.LocalResponseNorm(size, alpha=0.5, beta=0.75, k=1.2)(jx)
    (jy * jitgrad.tensor(g)).sum().backward()
    assert_close(jy.numpy(), ty.detach().numpy())
    assert_close(jx.grad.numpy(), tx.grad.numpy())
