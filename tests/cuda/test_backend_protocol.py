"""The CUDA backend instance against the ``Backend`` protocol (class signatures: tests/autograd)."""

import numpy as np

import jitgrad
from jitgrad import config
from jitgrad.autograd import backend as backend_module
from jitgrad.autograd.backend_protocol import Backend
from tests.cuda.conftest import dev


def test_cuda_backend_is_a_backend_with_the_cpu_defaults():
    cuda = backend_module.get_backend("cuda:0")
    assert isinstance(cuda, Backend) and cuda.name == "cuda"
    assert "cuda" in backend_module._BY_NAME and "cuda" not in backend_module._LAZY
    for make in (lambda b: b.zeros((2,)), lambda b: b.ones((2,)), lambda b: b.full((2,), 3)):
        assert make(cuda).dtype == make(backend_module.cpu).dtype == config.default_dtype
    assert cuda.zeros((2,), np.float64).dtype == np.float64


def test_a_device_array_made_outside_jitgrad_is_claimed():
    t = jitgrad.Tensor(dev(np.arange(3.0)))
    assert t.device == "cuda"
    np.testing.assert_array_equal(t.numpy(), np.arange(3.0))
