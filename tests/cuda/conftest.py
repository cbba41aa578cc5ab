"""CUDA tests: a real GPU, or Numba's simulator (``NUMBA_ENABLE_CUDASIM=1`` before numba is imported).

Nothing here is skipped: without a GPU and without the simulator every test
errors with a message that says how to run them. Under the simulator each CUDA
thread is a Python thread, so the tests use tiny shapes; the fixture below
shrinks threads per block and the grid cap so that the multi-block, tail and
grid-stride paths run even on those shapes (on a real GPU too: same code path).
"""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad.cuda
from jitgrad import config
from jitgrad.kernels.cuda import _launch


@pytest.fixture(autouse=True)
def cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Require CUDA (GPU or simulator); use 8 threads per block and at most 3 blocks per launch."""
    jitgrad.cuda.require_cuda()
    monkeypatch.setattr(config, "cuda_threads_per_block", 8)
    monkeypatch.setattr(_launch, "MAX_BLOCKS", 3)


def dev(a: np.ndarray):
    """Host array to device array."""
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(a))


def host(d) -> np.ndarray:
    """Device array to host array."""
    return d.copy_to_host()
