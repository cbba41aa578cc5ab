"""Run under ``mpirun -n 2`` with NUMBA_ENABLE_CUDASIM=1 (or on GPUs): collectives and DDP on device arrays.

Device arrays are staged through the host; this checks that values go
down, get reduced, and come back to the device, and that DDP's gradients
of a model on "cuda" are the mean of the ranks' (rank 0 recomputes them on
the CPU from the whole batch). Prints ``CUDA WORKER OK`` on rank 0.
"""

import numpy as np
from numba import cuda

import jitgrad
import jitgrad.distributed as dist
from jitgrad import nn
from jitgrad.nn.functional import cross_entropy

dist.init()
rank, world = dist.get_rank(), dist.get_world_size()
d = cuda.to_device(np.full(5, rank + 1.0, dtype=np.float32))
assert dist.all_reduce(d, "mean") is d
np.testing.assert_allclose(d.copy_to_host(), np.full(5, (world + 1) / 2))
t = jitgrad.tensor(np.full((2, 2), float(rank), dtype=np.float32)).to("cuda")
dist.broadcast(t, src=1)
assert t.device == "cuda" and np.all(t.numpy() == 1.0)

x = np.random.default_rng(0).standard_normal((2 * world, 3)).astype(np.float32)
y = np.arange(2 * world) % 2
nn.manual_seed(rank)  # different weights: DDP broadcasts rank 0's to the device arrays
model = nn.Linear(3, 2).to("cuda")
ddp = dist.DistributedDataParallel(model, bucket_cap_mb=1e-5)  # one parameter per bucket
mine = slice(2 * rank, 2 * rank + 2)
cross_entropy(ddp(jitgrad.tensor(x[mine]).to("cuda")), jitgrad.tensor(y[mine]).to("cuda")).backward()
grads = [p.grad for p in model.parameters()]
assert all(g.device == "cuda" for g in grads)
gathered = dist.all_gather_object([g.numpy() for g in grads])
if rank == 0:
    reference = nn.Linear(3, 2)
    reference.load_state_dict(model.state_dict())
    cross_entropy(reference(jitgrad.tensor(x)), y).backward()
    for other in gathered:
        for g, p in zip(other, reference.parameters()):
            np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-5, atol=1e-7)
    print("CUDA WORKER OK", flush=True)
