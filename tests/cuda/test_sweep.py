"""The adversarial sweep of ``tests/kernels/test_sweep.py`` on the CUDA kernels (simulator or GPU).

Each batch runs in its own interpreter with this process's environment (so
``NUMBA_ENABLE_CUDASIM=1`` carries over); small batches, since every simulated
CUDA thread is a Python thread. A read-only array the kernel would write is
passed as a host array (device arrays have no read-only flag): the shared
validation must refuse it before any launch.
"""

from __future__ import annotations

import pytest

from tests.hardening_sweep import case_strategy, check_batch, draw_cases
from tests.sweep_runner import FAMILIES

CORE = FAMILIES["matmul"] + FAMILIES["conv"] + FAMILIES["pooling"] + FAMILIES["optim"]
ELEMENTWISE = FAMILIES["activations"] + FAMILIES["softmax"]


def test_sweep_cuda_core_kernels():
    check_batch("cuda", draw_cases(case_strategy(CORE), 48))


def test_sweep_cuda_elementwise_kernels():
    check_batch("cuda", draw_cases(case_strategy(ELEMENTWISE), 32))
