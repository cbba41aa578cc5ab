"""jitgrad.distributed with device arrays: world of one here, two ranks under mpirun (staged through the host)."""

import numpy as np
import pytest

import jitgrad
import jitgrad.distributed as dist
from jitgrad import nn
from jitgrad.nn.functional import cross_entropy


def test_world_of_one_with_device_arrays_and_a_cuda_model():
    from numba import cuda

    d = cuda.to_device(np.arange(3, dtype=np.float32))
    assert dist.all_reduce(d, "max") is d and dist.broadcast(d) is d
    np.testing.assert_array_equal(d.copy_to_host(), [0, 1, 2])
    model = dist.DistributedDataParallel(nn.Linear(2, 2).to("cuda"))
    cross_entropy(model(jitgrad.tensor(np.ones((1, 2), np.float32)).to("cuda")),
                  jitgrad.tensor(np.array([1])).to("cuda")).backward()
    assert all(p.grad.device == "cuda" for p in model.parameters())


def test_two_ranks_reduce_device_arrays_and_ddp_gradients():
    pytest.importorskip("mpi4py", reason="needs the extra: pip install 'jitgrad[mpi]'")
    from tests.distributed.test_mpirun import MPIRUN, mpirun

    if MPIRUN is None:
        pytest.skip("no mpirun: pip install 'jitgrad[mpi]'")
    result, _ = mpirun(2, "mpi_cuda.py", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CUDA WORKER OK" in result.stdout
