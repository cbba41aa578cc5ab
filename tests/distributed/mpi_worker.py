"""Run under ``mpirun -n W``: every check of jitgrad.distributed that needs real ranks, in one launch.

Each mpirun start costs seconds, so one script checks the collectives, the
data shards, DDP's equivalence with one big-batch process (SGD, Adam,
no_sync, different starting weights, buffers) and determinism. Rank 0 also
trains the single-process reference itself. Prints ``WORKER OK`` on rank 0
at the end; any failed assertion aborts the job (the excepthook of
``jitgrad.distributed``), so mpirun exits non-zero.
"""

from __future__ import annotations

import sys

import numpy as np

import jitgrad
import jitgrad.distributed as dist
from jitgrad import nn
from jitgrad.autograd.tensor import Tensor
from jitgrad.data import DataLoader
from jitgrad.nn.functional import cross_entropy
from jitgrad.optim import SGD, Adam

B = 4          # samples per rank per step
STEPS = 3      # steps per optimizer
TOL = 1e-5     # relative difference allowed in float32


class WithBuffer(nn.Module):
    """A small CNN plus a ``named_buffers()`` method, as BatchNorm's running statistics will have."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(27, 8), nn.ReLU(), nn.Linear(8, 5))
        object.__setattr__(self, "running", Tensor(np.random.default_rng().random(5).astype(np.float32)))

    def named_buffers(self):
        yield "running", self.running

    def forward(self, x):
        return self.body(x)


def check_collectives(rank: int, world: int) -> None:
    a = np.full(3, rank + 1.0, dtype=np.float32)
    assert dist.all_reduce(a) is a and np.all(a == world * (world + 1) / 2), a
    m = np.arange(4.0) + rank
    dist.all_reduce(m, op="mean")
    np.testing.assert_allclose(m, np.arange(4.0) + (world - 1) / 2)
    t = jitgrad.tensor([float(rank), -float(rank)])
    assert dist.all_reduce(t, op="max") is t and t.tolist() == [world - 1, 0]
    assert dist.all_reduce(rank, op="min") == 0 and dist.all_reduce(1.5) == 1.5 * world
    strided = np.zeros((4, 4), dtype=np.float64)[:, ::2] + rank  # non-contiguous: reduced through a copy
    dist.all_reduce(strided)
    assert np.all(strided == world * (world - 1) / 2)
    b = np.full((2, 3), float(rank))
    dist.broadcast(b, src=world - 1)
    assert np.all(b == world - 1)
    assert dist.broadcast({"rank": rank}, src=1) == {"rank": 1}
    assert dist.all_gather_object(("r", rank, "x" * rank)) == [("r", r, "x" * r) for r in range(world)]
    logs = dist.reduce_metrics({"loss": float(rank), "accuracy": 1.0, "lr": 0.1 * (rank + 1), "time": float(rank)})
    assert logs == {"loss": (world - 1) / 2, "accuracy": 1.0, "lr": 0.1 * (rank + 1), "time": world - 1.0}, logs
    weighted = dist.reduce_metrics({"loss": float(rank)}, weight=rank)  # rank r counts r times
    assert abs(weighted["loss"] - sum(r * r for r in range(world)) / sum(range(world))) < 1e-12
    dist.barrier()


def check_shards(rank: int, world: int) -> None:
    x = np.arange(23)
    for drop_last in (False, True):
        loader = DataLoader((x, x), 3, shuffle=True, seed=5, drop_last=drop_last, rank=rank, world_size=world)
        for epoch in range(2):
            shard = np.concatenate([yb for _, yb in loader] or [np.zeros(0, int)])
            shards = dist.all_gather_object(shard)
            assert len({len(s) for s in shards}) == 1, "ranks run different numbers of samples"
            assert len({len(loader)} | set(dist.all_gather_object(len(loader)))) == 1
            full = np.random.default_rng([5, epoch]).permutation(23)
            union = np.concatenate(shards)
            if drop_last:
                assert len(set(union.tolist())) == len(union), "shards overlap"
            else:
                assert set(union.tolist()) == set(range(23)) and len(union) == -(-23 // world) * world
            assert set(union.tolist()) <= set(full.tolist())


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def train(model: nn.Module, loader: DataLoader, steps: int, accumulate: bool = False,
          ddp: dist.DistributedDataParallel | None = None) -> list[float]:
    """SGD with momentum for ``steps`` steps, then Adam for ``steps``; the per-step losses (rank mean)."""
    losses = []
    batches = iter(loader)
    for optimizer in (SGD(model.parameters(), lr=0.1, momentum=0.9), Adam(model.parameters(), lr=0.01)):
        for _ in range(steps):
            optimizer.zero_grad()
            if accumulate:  # two micro-batches per step: the first without synchronisation
                xb, yb = next(batches)
                with ddp.no_sync() if ddp is not None else _nothing():
                    cross_entropy(model(Tensor(xb)), yb).backward()
            xb, yb = next(batches)
            loss = cross_entropy(model(Tensor(xb)), yb)
            loss.backward()
            optimizer.step()
            losses.append(dist.all_reduce(float(loss.item()), "mean") if ddp is not None else float(loss.item()))
    return losses


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def check_equivalence(rank: int, world: int, accumulate: bool) -> list[float]:
    n = world * B * STEPS * 2 * (2 if accumulate else 1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, n)
    nn.manual_seed(100 + rank)  # every rank starts from different weights: DDP must broadcast rank 0's
    model = WithBuffer()
    start = {k: v.copy() for k, v in model.state_dict().items()}
    buffer0 = model.running.numpy().copy()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=200 / 2**20)  # ~200-byte buckets: several of them
    assert len(ddp._buckets) >= 3, ddp
    starts = dist.all_gather_object(model.state_dict())
    for other in starts:
        for k in other:
            assert np.array_equal(other[k], starts[0][k]), f"parameter {k} differs after the broadcast"
    assert np.array_equal(model.running.numpy(), dist.all_gather_object(buffer0)[0]), "buffer not broadcast"
    loader = DataLoader((x, y), B, shuffle=True, seed=1, rank=rank, world_size=world)
    losses = train(ddp, loader, STEPS, accumulate, ddp)
    final = model.state_dict()
    finals = dist.all_gather_object(final)
    for other in finals:
        for k in other:
            assert np.array_equal(other[k], finals[0][k]), f"replicas diverged at {k}"
    if rank == 0:
        assert any(not np.array_equal(start[k], final[k]) for k in start)
        reference = WithBuffer()
        reference.load_state_dict(starts[0])
        ref_losses = train(reference, DataLoader((x, y), world * B, shuffle=True, seed=1), STEPS, accumulate)
        for k, value in reference.state_dict().items():
            d = rel_diff(final[k], value)
            assert d <= TOL, f"{k}: relative difference {d:.3g} between {world} ranks and one process"
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
        print(f"equivalence (accumulate={accumulate}): max rel diff "
              f"{max(rel_diff(final[k], v) for k, v in reference.state_dict().items()):.2g}", flush=True)
    return losses


def main() -> int:
    dist.init()
    assert dist.is_initialized() and dist.launched_by_mpi()
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == int(sys.argv[1]), (world, sys.argv)
    assert 0 <= dist.get_local_rank() < world and dist.is_main_process() == (rank == 0)
    check_collectives(rank, world)
    check_shards(rank, world)
    first = check_equivalence(rank, world, accumulate=False)
    check_equivalence(rank, world, accumulate=True)
    again = check_equivalence(rank, world, accumulate=False)
    assert first == again, f"same seed, same world size, different losses: {first} vs {again}"
    if rank == 0:
        print("WORKER OK", world, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
