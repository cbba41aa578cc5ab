"""Train LeNet-5 on MNIST data-parallel over MPI ranks with jitgrad.distributed and ``fit``.

    mpirun -n 2 python examples/mnist_distributed.py --epochs 2       # or: make train-mpi NP=2 EPOCHS=2
    python examples/mnist_distributed.py --epochs 2                   # the same script, one process

Every rank holds a replica of the model (rank 0's weights, broadcast by
``DistributedDataParallel``), trains on its own shard of each epoch's
permutation (``DataLoader(rank=, world_size=)``), and backward averages the
gradients over the ranks, so ``--batch-size`` is per rank and the global batch
is ``world_size * batch_size``. Metrics are averaged over the ranks; only rank
0 prints, writes the checkpoint (atomically, after every epoch) and plots.
``--resume`` restarts from that checkpoint with any number of ranks: the
epoch's permutation depends only on the seed, and is re-sharded.

``--benchmark`` prints images/s and the time per step spent waiting for the
gradient all-reduce (the communication not hidden behind backward).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import jitgrad
import jitgrad.distributed as dist
from jitgrad import nn
from jitgrad.data import DataLoader, mnist, normalize, to_float
from jitgrad.nn.functional import cross_entropy
from jitgrad.optim import Adam

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_cnn import lenet5  # noqa: E402 - the one LeNet-5 of the examples


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="total epochs (default 2)")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per rank per step (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--bucket-mb", type=float, default=1.0, help="DDP bucket size in MiB (default 1)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="write model+optimizer here every epoch")
    parser.add_argument("--resume", type=Path, default=None, help="continue from this checkpoint")
    parser.add_argument("--plot", type=Path, default=None, help="save the loss curves here (matplotlib)")
    parser.add_argument("--benchmark", action="store_true", help="print images/s and communication time")
    parser.add_argument("--data-dir", default=None, help="directory holding mnist/ (default $JITGRAD_DATA)")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive int, got {getattr(args, name)}")
    return args


class EpochReport(nn.Callback):
    """Print each epoch's logs (after ``MetricReducer`` averaged them) and save the checkpoint."""

    def __init__(self, args: argparse.Namespace, first_epoch: int, ddp: dist.DistributedDataParallel) -> None:
        self.args, self.first_epoch, self.ddp = args, first_epoch, ddp

    def on_epoch_end(self, state: nn.TrainingState, logs: dict[str, float]) -> None:
        epoch = self.first_epoch + state.epoch + 1
        shown = "  ".join(f"{key} {value:.4f}" for key, value in logs.items() if key not in ("lr", "time"))
        print(f"epoch {epoch}/{self.args.epochs}  {shown}  ({logs['time']:.1f} s)", flush=True)
        if self.args.checkpoint is not None:
            jitgrad.save({"model": self.ddp.module.state_dict(), "optimizer": state.optimizer.state_dict(),
                          "epoch": epoch, "world_size": dist.get_world_size()}, self.args.checkpoint)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    dist.init()
    rank, world = dist.get_rank(), dist.get_world_size()
    train_x, train_y = mnist.load("train", root=args.data_dir, progress=dist.is_main_process())
    test_x, test_y = mnist.load("test", root=args.data_dir, progress=False)
    if args.limit is not None:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    standardise = normalize(mnist.MEAN, mnist.STD)

    def transform(x: np.ndarray) -> np.ndarray:
        return standardise(to_float(x))[:, None]

    nn.manual_seed(args.seed)
    model = lenet5()
    optimizer = Adam(model.parameters(), lr=args.lr)
    first_epoch = 0
    if args.resume is not None:
        # Rank 0 reads the file and sends it: no shared file system needed.
        checkpoint = dist.broadcast(jitgrad.load(args.resume) if rank == 0 else None, src=0)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        first_epoch = int(checkpoint["epoch"])
        if rank == 0:
            print(f"resumed from {args.resume} after epoch {first_epoch} (written by {checkpoint['world_size']} "
                  f"ranks, now {world})")
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    loader = DataLoader((train_x, train_y), args.batch_size, shuffle=True, seed=args.seed, transform=transform,
                        rank=rank, world_size=world)
    loader.set_epoch(first_epoch)  # the permutation an uninterrupted run would see, re-sharded
    test_loader = DataLoader((test_x, test_y), 1000, transform=transform, rank=rank, world_size=world)
    if rank == 0:
        print(f"LeNet-5 on {world} rank(s): {len(train_y):,} images, {args.batch_size} per rank per step "
              f"(global batch {args.batch_size * world}), {len(loader)} steps per epoch, "
              f"{jitgrad.get_num_threads()} thread(s) per rank", flush=True)
    epochs = args.epochs - first_epoch
    history = nn.History()
    if epochs > 0:
        start = time.perf_counter()
        # --benchmark times training steps only: no test pass inside the epoch's time.
        history = nn.fit(ddp, cross_entropy, loader, optimizer, epochs, progress=False,
                         val_data=None if args.benchmark else test_loader,
                         callbacks=[dist.MetricReducer(), dist.OnMainProcess(EpochReport(args, first_epoch, ddp))])
        seconds = dist.all_reduce(time.perf_counter() - start, "max")
        if args.benchmark and rank == 0:
            steps = epochs * len(loader)
            train_seconds = sum(history["time"])
            print(f"BENCHMARK ranks={world} images/s={steps * args.batch_size * world / train_seconds:.0f} "
                  f"step_ms={1e3 * train_seconds / steps:.2f} "
                  f"comm_wait_ms={1e3 * ddp.comm_wait_seconds / steps:.3f} total_s={seconds:.1f}", flush=True)
    if args.plot is not None and rank == 0 and len(history):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        epochs_axis = [first_epoch + e + 1 for e in history.epochs]
        ax.plot(epochs_axis, history["loss"], "o-", label="train")
        if "val_loss" in history:
            ax.plot(epochs_axis, history["val_loss"], "s-", label="test")
        ax.set(xlabel="epoch", ylabel="loss (mean over ranks)", title=f"LeNet-5 on {world} rank(s)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
    return {"history": history, "model": model}


if __name__ == "__main__":
    main()
