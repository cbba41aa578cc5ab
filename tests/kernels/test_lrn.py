"""Local response normalisation: CPU held to the reference, the reference to its definition and to finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from tests.cases.lrn import (
    CASES, PARALLEL_CASE, check_backend, check_bad_input, check_matches_its_definition, check_non_finite,
)
from tests.helpers import DTYPES, assert_close, numerical_grad, randn


def test_reference_matches_its_definition():
    check_matches_its_definition()


@pytest.mark.parametrize("name", ["odd-size-4d", "even-size-onnx", "even-size-pytorch", "3d-input"])
def test_reference_backward_is_the_gradient_of_its_forward(name):
    shape, *hp = CASES[name]
    x, g = randn(shape, seed=3), randn(shape, seed=4)
    expected = numerical_grad(lambda a: float((ref.lrn(a, *hp) * g).sum()), x)
    assert_close(ref.lrn_backward(g, x, *hp), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_cpu_matches_reference(name, dtype):
    check_backend(cpu, *CASES[name], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_parallel_twin_matches_reference(dtype):
    check_backend(cpu, *PARALLEL_CASE, dtype)


@pytest.mark.parametrize("backend", [ref, cpu], ids=["reference", "cpu"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_propagate_as_the_reference(backend, dtype):
    check_non_finite(backend, dtype)


@pytest.mark.parametrize("backend", [ref, cpu], ids=["reference", "cpu"])
def test_bad_input(backend):
    check_bad_input(backend)


def test_float32_stays_float32_and_empty_batch():
    x = np.zeros((0, 3, 2, 2), np.float32)
    assert cpu.lrn(x, 3).shape == x.shape and cpu.lrn_backward(x, x, 3).dtype == np.float32
    assert ref.lrn(x, 3).shape == x.shape
