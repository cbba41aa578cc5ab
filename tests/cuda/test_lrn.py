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
