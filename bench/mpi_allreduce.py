"""Time jitgrad.distributed's all-reduce of float32 gradients of several sizes (run under mpirun).

    mpirun -n 2 python bench/mpi_allreduce.py

Prints, on rank 0, the median time of ``all_reduce`` (non-blocking MPI
``Iallreduce`` plus jitgrad's timed wait) and of a plain blocking
``MPI_Allreduce`` for each size, so that docs/distributed.md can fit the
latency and bandwidth of this machine's shared-memory transport.
"""

import time

import numpy as np

import jitgrad.distributed as dist

SIZES = [1, 1_000, 10_000, 44_426, 300_000, 1_000_000]   # 44,426 = LeNet-5's gradients
REPS = 40


def median_seconds(fn, reps=REPS):
    times = []
    for _ in range(reps):
        dist.barrier()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(dist.all_gather_object(float(np.median(times)))))


def main():
    dist.init()
    comm = dist.world._get().comm  # the communicator behind the public functions
    from mpi4py import MPI

    rows = []
    for n in SIZES:
        a = np.ones(n, dtype=np.float32)
        for _ in range(5):
            dist.all_reduce(a)
        ours = median_seconds(lambda: dist.all_reduce(a))
        mpi = median_seconds(lambda: comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM))
        rows.append((n, ours, mpi))
    if dist.is_main_process():
        print(f"ranks={dist.get_world_size()}")
        print("floats,bytes,all_reduce_us,MPI_Allreduce_us")
        for n, ours, mpi in rows:
            print(f"{n},{4 * n},{1e6 * ours:.1f},{1e6 * mpi:.1f}")


if __name__ == "__main__":
    main()
