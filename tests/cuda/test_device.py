"""jitgrad.cuda helpers, and that importing the CUDA kernels needs no GPU."""

import os
import subprocess
import sys

import numpy as np
import pytest

import jitgrad.cuda as jcuda
from jitgrad import config
from jitgrad.kernels.cuda import _launch


def test_available_here():
    # The conftest already required it; is_available must agree with require_cuda.
    assert jcuda.is_available()


def test_require_cuda_message_names_the_simulator(monkeypatch):
    monkeypatch.setattr(jcuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"no NVIDIA GPU.*NUMBA_ENABLE_CUDASIM=1"):
        jcuda.require_cuda()


def test_round_trip_keeps_shape_dtype_and_values():
    a = np.arange(12, dtype=np.float32).reshape(3, 4).T  # a strided view: to_device makes it contiguous
    d = jcuda.to_device(a)
    assert d.shape == (4, 3) and d.dtype == np.float32
    np.testing.assert_array_equal(jcuda.to_host(d), a)
    assert jcuda.to_device([1, 2], dtype=np.float64).dtype == np.float64


def test_to_host_rejects_non_arrays():
    with pytest.raises(TypeError, match="to_host: expected a numba device array, got list"):
        jcuda.to_host([1.0])


def test_threads_per_block_is_checked(monkeypatch):
    monkeypatch.setattr(config, "cuda_threads_per_block", 2048)
    with pytest.raises(ValueError, match=r"config.cuda_threads_per_block must be an int in \[1, 1024\], got 2048"):
        _launch.grid_1d(10)


def test_import_without_gpu_or_simulator():
    # The package must import (and expose every kernel) where no GPU exists: no device call at import.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = ("import jitgrad.kernels.cuda as c, jitgrad.cuda as j; "
            "print(callable(c.matmul) and callable(c.elementwise.add) and callable(c.reduction.sum))")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True"
