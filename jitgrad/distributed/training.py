"""Training-loop pieces for data-parallel runs: metric reduction and rank-0-only callbacks.

With ``fit`` (see docs/distributed.md for the exact lines)::

    model = DistributedDataParallel(lenet5())
    loader = DataLoader(train, 64, shuffle=True, seed=0, rank=get_rank(), world_size=get_world_size())
    fit(model, cross_entropy, loader, optimizer, epochs,
        progress=is_main_process(),
        callbacks=[MetricReducer(), OnMainProcess(ModelCheckpoint("best.safetensors"))])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad.distributed.collectives import all_reduce
from jitgrad.distributed.world import _get
from jitgrad.nn.training import Callback, TrainingState

__all__ = ["reduce_metrics", "MetricReducer", "OnMainProcess"]

#: Log keys that are the same on every rank or are not means: never averaged.
_NOT_AVERAGED = ("lr",)


def reduce_metrics(logs: dict[str, Any], weight: float | None = None) -> dict[str, float]:
    """The mean over ranks of every number in ``logs`` (one all-reduce for all of them).

    Parameters
    ----------
    logs : dict of str to number
        This rank's metrics, the same keys in the same order on every rank
        (e.g. ``{"loss": 0.31, "accuracy": 0.91}``). ``"time"`` is reduced
        with ``max`` (the slowest rank sets the pace), ``"lr"`` is kept.
    weight : float, optional
        This rank's weight, e.g. its number of samples, when ranks saw
        different amounts of data; the default weighs ranks equally (what
        ``DataLoader(rank=, world_size=)`` guarantees).

    Returns
    -------
    dict of str to float
        Same keys, identical on every rank.
    """
    if not isinstance(logs, dict):
        raise TypeError(f"reduce_metrics: logs must be a dict, got {type(logs).__name__}")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0):
        raise ValueError(f"reduce_metrics: weight must be a number >= 0, got {weight!r}")
    keys = [k for k in logs if k not in _NOT_AVERAGED and k != "time"]
    w = 1.0 if weight is None else float(weight)
    packed = np.array([float(logs[k]) * w for k in keys] + [w], dtype=np.float64)
    if _get().size > 1:
        all_reduce(packed, "sum")
    reduced = {k: float(logs[k]) for k in logs}
    for k, total in zip(keys, packed[:-1]):
        reduced[k] = float(total / packed[-1]) if packed[-1] > 0 else float("nan")
    if "time" in logs:
        reduced["time"] = all_reduce(float(logs["time"]), "max")
    return reduced


class MetricReducer(Callback):
    """Average each epoch's logs over the ranks, in place and in the history; put it first in ``callbacks``.

    ``fit`` records and prints an epoch's logs before callbacks see them;
    this callback then replaces them (and the History's last entries) with
    the mean over ranks, so that callbacks after it (EarlyStopping,
    ModelCheckpoint) decide identically on every rank.
    """

    def on_epoch_end(self, state: TrainingState, logs: dict[str, float]) -> None:
        reduced = reduce_metrics(logs)
        logs.update(reduced)
        for key, value in reduced.items():
            values = state.history.history.get(key)
            if values:
                values[-1] = value


class OnMainProcess(Callback):
    """Run ``callback`` on rank 0 only (checkpoints, plots, logging); other ranks skip it.

    Do not wrap callbacks that change training (EarlyStopping): every rank
    must take the same decisions. Wrap only callbacks with side effects
    outside the job.
    """

    def __init__(self, callback: Callback) -> None:
        if not isinstance(callback, Callback):
            raise TypeError(f"OnMainProcess: expected a Callback, got {type(callback).__name__}")
        self.callback = callback

    def _main(self) -> bool:
        return _get().rank == 0

    def on_train_begin(self, state: TrainingState) -> None:
        if self._main():
            self.callback.on_train_begin(state)

    def on_epoch_begin(self, state: TrainingState) -> None:
        if self._main():
            self.callback.on_epoch_begin(state)

    def on_batch_end(self, state: TrainingState, batch: int, logs: dict[str, float]) -> None:
        if self._main():
            self.callback.on_batch_end(state, batch, logs)

    def on_epoch_end(self, state: TrainingState, logs: dict[str, float]) -> None:
        if self._main():
            self.callback.on_epoch_end(state, logs)

    def on_train_end(self, state: TrainingState) -> None:
        if self._main():
            self.callback.on_train_end(state)
