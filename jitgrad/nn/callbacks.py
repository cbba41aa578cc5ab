"""Callbacks of :func:`jitgrad.nn.fit` and what they see: history, training state, the hooks.

Keras-style hooks: :class:`EarlyStopping`, :class:`ModelCheckpoint` and
:class:`TerminateOnNaN`; subclass :class:`Callback` for others.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from jitgrad._checks import check_int
from jitgrad.nn.module import Module

__all__ = ["History", "TrainingState", "Callback", "EarlyStopping", "ModelCheckpoint", "TerminateOnNaN"]


class History:
    """Per-epoch metrics recorded by :func:`fit`.

    ``history["loss"]`` is the list of each epoch's mean training loss; other
    keys: ``accuracy`` (classification), ``val_loss`` and ``val_accuracy``
    (with ``val_data``), ``lr`` (first group's rate during the epoch),
    ``time`` (seconds per epoch) and ``samples_per_s`` (training throughput,
    kernel compilation left out).

    Attributes
    ----------
    history : dict of str to list of float
    epochs : list of int
        Zero-based index of each recorded epoch.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epochs: list[int] = []

    def record(self, epoch: int, logs: dict[str, float]) -> None:
        """Append one epoch's logs."""
        self.epochs.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def keys(self):
        return self.history.keys()

    def __len__(self) -> int:
        return len(self.epochs)

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items()) if self.epochs else ""
        return f"History({len(self.epochs)} epochs{': last ' + last if last else ''})"


class TrainingState:
    """What callbacks see: the model, optimizer, history, epoch and a stop flag.

    Attributes
    ----------
    model : Module
    optimizer : Optimizer
    history : History
    epoch : int
        Zero-based index of the current epoch.
    epochs : int
        Epochs requested.
    stop_training : bool
        Set True (e.g. by :class:`EarlyStopping`) to end training after the
        current batch or epoch.
    """

    def __init__(self, model: Module, optimizer: Any, history: History, epochs: int) -> None:
        self.model, self.optimizer, self.history = model, optimizer, history
        self.epoch, self.epochs = 0, epochs
        self.stop_training = False


class Callback:
    """Base class of training hooks; override the ones you need (each does nothing here)."""

    def on_train_begin(self, state: TrainingState) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, state: TrainingState) -> None:
        """Before each epoch's first batch."""

    def on_batch_end(self, state: TrainingState, batch: int, logs: dict[str, Any]) -> None:
        """After each optimizer step.

        ``logs["loss"]`` is the batch's loss as a 0-d Tensor on the training
        device (``float()`` it only when needed: each conversion waits for the
        device), ``logs["batch_size"]`` an int.
        """

    def on_epoch_end(self, state: TrainingState, logs: dict[str, float]) -> None:
        """After each epoch (and validation); ``logs`` as recorded in the history."""

    def on_train_end(self, state: TrainingState) -> None:
        """After the last epoch, or after training was stopped."""


class _Monitor:
    """Tracks the best value of one logged metric, for EarlyStopping and ModelCheckpoint."""

    def __init__(self, owner: str, monitor: str, mode: str, min_delta: float) -> None:
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min', 'max' or 'auto', got {mode!r}")
        if not min_delta >= 0:
            raise ValueError(f"{owner}: min_delta must be >= 0, got {min_delta!r}")
        self.owner, self.monitor, self.mode, self.min_delta = owner, monitor, mode, float(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def value(self, logs: dict[str, float]) -> float:
        if self.monitor not in logs:
            hint = "; pass val_data to fit" if self.monitor.startswith("val_") else ""
            raise KeyError(f"{self.owner}: monitored metric {self.monitor!r} is not logged "
                           f"(available: {', '.join(logs)}){hint}")
        return float(logs[self.monitor])

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta``; records it if so."""
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best = value
        return better


class EarlyStopping(Callback):
    """Stop training when a monitored metric has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the epoch logs (``loss``, ``accuracy``, ``val_loss``, ...).
    patience : int, default 0
        Epochs without improvement tolerated; training stops on the next one.
    min_delta : float, default 0
        Smallest change that counts as an improvement.
    mode : {"auto", "min", "max"}, default "auto"
        ``auto``: ``max`` for metrics whose name contains "acc", else ``min``.
    restore_best_weights : bool, default False
        At the end of training, load the weights of the best epoch.

    Attributes
    ----------
    stopped_epoch : int or None
        Zero-based epoch after which training stopped, None if it ran out.
    best_epoch : int or None
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False) -> None:
        patience = check_int("EarlyStopping", "patience", patience, minimum=0, what="an int >= 0")
        self._monitor = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.monitor, self.patience = monitor, patience
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_epoch: int | None = None
        self._best_state: dict[str, np.ndarray] | None = None

    @property
    def best(self) -> float:
        """Best value of the monitored metric so far."""
        return self._monitor.best

    def on_train_begin(self, state: TrainingState) -> None:
        self._monitor.best = math.inf if self._monitor.mode == "min" else -math.inf
        self.wait, self.stopped_epoch, self.best_epoch, self._best_state = 0, None, None, None

    def on_epoch_end(self, state: TrainingState, logs: dict[str, float]) -> None:
        if self._monitor.improved(self._monitor.value(logs)):
            self.wait, self.best_epoch = 0, state.epoch
            if self.restore_best_weights:
                self._best_state = state.model.state_dict()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = state.epoch
            state.stop_training = True

    def on_train_end(self, state: TrainingState) -> None:
        if self.restore_best_weights and self._best_state is not None:
            state.model.load_state_dict(self._best_state)


class ModelCheckpoint(Callback):
    """Save the model's ``state_dict()`` as a safetensors file after epochs.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; may hold ``{epoch}`` (1-based) and log keys, as in
        ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``.
    monitor : str, default "val_loss"
    save_best_only : bool, default True
        Save only when ``monitor`` improves; else after every epoch.
    mode : {"auto", "min", "max"}, default "auto"

    Attributes
    ----------
    best : float
    saved : list of pathlib.Path
        Every file written, in order.
    """

    def __init__(self, path: Any, monitor: str = "val_loss", save_best_only: bool = True,
                 mode: str = "auto") -> None:
        self.path = str(path)
        self.save_best_only = save_best_only
        self._monitor = _Monitor("ModelCheckpoint", monitor, mode, 0.0)
        self.monitor = monitor
        self.saved: list[Path] = []

    @property
    def best(self) -> float:
        return self._monitor.best

    def on_epoch_end(self, state: TrainingState, logs: dict[str, float]) -> None:
        from jitgrad.serialization import save

        if not math.isfinite(logs.get("loss", 0.0)):
            return  # weights that gave a NaN/inf loss are not worth a file
        improved = self._monitor.improved(self._monitor.value(logs))
        if self.save_best_only and not improved:
            return
        path = Path(self.path.format(epoch=state.epoch + 1, **logs))
        save(state.model.state_dict(), path)
        self.saved.append(path)


class TerminateOnNaN(Callback):
    """Stop training when the loss becomes NaN or infinite, with a message saying when.

    The batch losses are summed on the device and the sum is read back every
    ``check_every`` batches and at the end of every epoch, so the check costs
    one host synchronisation per ``check_every`` steps rather than one per step
    (a non-finite loss makes the sum non-finite). Training stops within
    ``check_every`` batches of the first bad one; the model then holds the
    weights of that step, which :class:`ModelCheckpoint` does not save.

    Parameters
    ----------
    check_every : int, default 20
        Batches between two checks, ``>= 1``.
    file : text stream, optional
        Where the message goes (default ``sys.stderr``).
    verbose : bool, default True
        Print the message (else only set :attr:`message`, for callers that
        report it themselves).

    Attributes
    ----------
    message : str or None
        The message printed when training was stopped, else None.
    """

    def __init__(self, check_every: int = 20, file: Any = None, verbose: bool = True) -> None:
        check_every = check_int("TerminateOnNaN", "check_every", check_every, minimum=1, what="an int >= 1")
        self.check_every, self.file, self.verbose = check_every, file, verbose
        self.message: str | None = None
        self._sum: Any = None
        self._first_batch = 0

    def on_train_begin(self, state: TrainingState) -> None:
        self.message, self._sum = None, None

    def on_epoch_begin(self, state: TrainingState) -> None:
        self._sum, self._first_batch = None, 0

    def on_batch_end(self, state: TrainingState, batch: int, logs: dict[str, Any]) -> None:
        from jitgrad.autograd import no_grad

        with no_grad():
            loss = logs["loss"]
            loss = loss.detach() if hasattr(loss, "detach") else loss
            self._sum = loss if self._sum is None else self._sum + loss
        if (batch + 1) % self.check_every == 0:
            self._check(state, f"batches {self._first_batch + 1}-{batch + 1}")
            self._sum, self._first_batch = None, batch + 1

    def on_epoch_end(self, state: TrainingState, logs: dict[str, float]) -> None:
        if self.message is None and not math.isfinite(logs["loss"]):
            self._stop(state, float(logs["loss"]), "the epoch")

    def _check(self, state: TrainingState, where: str) -> None:
        value = float(self._sum)
        if not math.isfinite(value):
            self._stop(state, value, where)

    def _stop(self, state: TrainingState, value: float, where: str) -> None:
        self.message = (f"training stopped: the loss became {value} in epoch {state.epoch + 1} ({where}); "
                        f"the learning rate may be too high, or the data hold NaN/inf")
        state.stop_training = True
        if self.verbose:
            print(self.message, file=self.file or sys.stderr, flush=True)
