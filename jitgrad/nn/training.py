"""Training loop: ``fit`` with a progress bar, callbacks, early stopping and checkpoints.

``fit`` is the loop every example would otherwise write by hand: forward,
loss, ``zero_grad``, backward, ``step``; per-epoch mean loss (and accuracy
for classification), an optional validation pass under ``no_grad``,
learning-rate schedules stepped at the right moments, and callbacks
(Keras-style hooks) that may stop training early or save checkpoints.

``throttle`` is Flux's: wrap a function so that it runs at most once per
``seconds`` (the progress bar's live loss uses it, so formatting text never
costs a training step anything noticeable).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from jitgrad import config
from jitgrad.autograd import Tensor, no_grad
from jitgrad.nn.module import Module

__all__ = ["fit", "evaluate", "History", "TrainingState", "Callback", "EarlyStopping", "ModelCheckpoint",
           "throttle"]


def throttle(fn: Callable[..., Any], seconds: float, *, clock: Callable[[], float] = time.monotonic
             ) -> Callable[..., Any]:
    """Wrap ``fn`` so that it runs at most once every ``seconds`` (Flux's ``throttle``).

    The first call runs at once (leading edge); calls within ``seconds`` of
    the last run are skipped and return the last run's result.

    Parameters
    ----------
    fn : callable
    seconds : float
        Minimum time between two runs, ``>= 0``.
    clock : callable, default time.monotonic
        Source of the current time in seconds (tests pass a fake clock).
    """
    if not callable(fn):
        raise TypeError(f"throttle: fn must be callable, got {type(fn).__name__}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise ValueError(f"throttle: seconds must be a number >= 0, got {seconds!r}")
    last_run = -math.inf
    result = None

    def throttled(*args: Any, **kwargs: Any) -> Any:
        nonlocal last_run, result
        now = clock()
        if now - last_run >= seconds:
            last_run = now
            result = fn(*args, **kwargs)
        return result

    return throttled


class History:
    """Per-epoch metrics recorded by :func:`fit`.

    ``history["loss"]`` is the list of each epoch's mean training loss; other
    keys: ``accuracy`` (classification), ``val_loss`` and ``val_accuracy``
    (with ``val_data``), ``lr`` (first group's rate during the epoch) and
    ``time`` (seconds per epoch).

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

    def on_batch_end(self, state: TrainingState, batch: int, logs: dict[str, float]) -> None:
        """After each optimizer step; ``logs`` has the batch's ``loss`` and ``batch_size``."""

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
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
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

        improved = self._monitor.improved(self._monitor.value(logs))
        if self.save_best_only and not improved:
            return
        path = Path(self.path.format(epoch=state.epoch + 1, **logs))
        save(state.model.state_dict(), path)
        self.saved.append(path)


def _as_input(x: Any) -> Tensor:
    """A batch's inputs as a Tensor; integer/bool arrays (raw pixels) become ``default_dtype``."""
    if isinstance(x, Tensor):
        return x
    from jitgrad import autograd

    array = np.asarray(x)
    if array.dtype not in config.FLOAT_DTYPES:
        array = array.astype(config.default_dtype)
    return autograd.tensor(array)


def _host(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, Tensor) else np.asarray(value)


def _count_correct(output: Any, target: Any) -> int | None:
    """Correct predictions in a classification batch, or None when the batch is not one.

    Classification means logits ``(N, C)`` with ``C > 1`` and targets of
    integer class indices ``(N,)`` or one-hot/probability rows ``(N, C)``.
    """
    if output.ndim != 2 or output.shape[1] < 2:
        return None
    target = _host(target)
    if target.ndim == 1 and np.issubdtype(target.dtype, np.integer):
        labels = target
    elif target.ndim == 2 and target.shape == tuple(output.shape):
        labels = target.argmax(axis=1)
    else:
        return None
    return int((_host(output).argmax(axis=1) == labels).sum())


def _batch_size(x: Any) -> int:
    return int(x.shape[0]) if getattr(x, "ndim", 0) > 0 else 1


def evaluate(model: Module, loss_fn: Callable[[Any, Any], Any], data: Iterable[tuple[Any, Any]]
             ) -> dict[str, float]:
    """Mean loss (and accuracy, for classification) of ``model`` over ``data``, without gradients.

    The model is put in evaluation mode for the pass and its previous mode
    restored after.

    Parameters
    ----------
    model : Module
    loss_fn : callable
        ``loss_fn(output, target)`` returning a scalar Tensor (mean over the batch).
    data : iterable of (x, y)
        Batches; ``x`` an array or Tensor ``(N, ...)``.

    Returns
    -------
    dict
        ``{"loss": float}`` plus ``"accuracy"`` for classification batches.
    """
    was_training = model.training
    model.eval()
    total_loss, total_correct, count, classification = 0.0, 0, 0, True
    try:
        with no_grad():
            for x, y in data:
                x = _as_input(x)
                output = model(x)
                n = _batch_size(x)
                total_loss += float(loss_fn(output, y).item()) * n
                correct = _count_correct(output, y)
                classification = classification and correct is not None
                total_correct += correct or 0
                count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: data yielded no batches")
    logs = {"loss": total_loss / count}
    if classification:
        logs["accuracy"] = total_correct / count
    return logs


def fit(model: Module, loss_fn: Callable[[Any, Any], Any], train_data: Iterable[tuple[Any, Any]], optimizer: Any,
        epochs: int, *, val_data: Iterable[tuple[Any, Any]] | None = None, callbacks: Iterable[Callback] = (),
        progress: bool = True, scheduler: Any = None) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_data``.

    Parameters
    ----------
    model : Module
    loss_fn : callable
        ``loss_fn(output, y)`` returning a scalar Tensor, e.g.
        ``nn.functional.cross_entropy``.
    train_data : iterable of (x, y)
        Re-iterable batches (a list, a ``DataLoader``): ``x`` an array or
        Tensor ``(N, ...)`` (non-float arrays are cast to
        ``config.default_dtype``), ``y`` passed to ``loss_fn`` unchanged.
    optimizer : Optimizer
    epochs : int
        Positive.
    val_data : iterable of (x, y), optional
        Evaluated after every epoch (no gradients, eval mode).
    callbacks : iterable of Callback
    progress : bool, default True
        Show a tqdm bar per epoch with the running loss.
    scheduler : learning-rate schedule, optional
        Stepped after each batch (``step_unit == "batch"``, OneCycleLR),
        after each epoch (``"epoch"``), or after each epoch with the
        validation loss (training loss without ``val_data``) for
        ``ReduceLROnPlateau``.

    Returns
    -------
    History
        Per-epoch ``loss``, ``accuracy`` (classification), ``val_loss``,
        ``val_accuracy``, ``lr`` and ``time``.
    """
    from tqdm.auto import tqdm

    if not isinstance(model, Module):
        raise TypeError(f"fit: model must be an nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable, got {type(loss_fn).__name__}")
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad")):
        raise TypeError(f"fit: optimizer must have step() and zero_grad(), got {type(optimizer).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"fit: callbacks must be Callback instances, got {type(callback).__name__}")
    step_unit = getattr(scheduler, "step_unit", None)
    if scheduler is not None and step_unit not in ("epoch", "batch", "metric"):
        raise TypeError(f"fit: scheduler must be a jitgrad.optim schedule, got {type(scheduler).__name__}")

    history = History()
    state = TrainingState(model, optimizer, history, epochs)
    for callback in callbacks:
        callback.on_train_begin(state)
    for epoch in range(epochs):
        state.epoch = epoch
        for callback in callbacks:
            callback.on_epoch_begin(state)
        model.train()
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"] if hasattr(optimizer, "param_groups") else float("nan")
        total_loss, total_correct, count, classification = 0.0, 0, 0, True
        bar = tqdm(train_data, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False,
                   dynamic_ncols=True)
        show_loss = throttle(lambda value: bar.set_postfix(loss=f"{value:.4f}", refresh=False), 0.25)
        try:
            for batch, (x, y) in enumerate(bar):
                x = _as_input(x)
                output = model(x)
                loss = loss_fn(output, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if step_unit == "batch":
                    scheduler.step()
                batch_loss = float(loss.item())
                n = _batch_size(x)
                total_loss += batch_loss * n
                count += n
                correct = _count_correct(output, y)
                classification = classification and correct is not None
                total_correct += correct or 0
                show_loss(batch_loss)
                for callback in callbacks:
                    callback.on_batch_end(state, batch, {"loss": batch_loss, "batch_size": n})
                if state.stop_training:
                    break
        finally:
            bar.close()
        if count == 0:
            raise ValueError(f"fit: train_data yielded no batches in epoch {epoch + 1}")
        logs = {"loss": total_loss / count}
        if classification:
            logs["accuracy"] = total_correct / count
        if val_data is not None:
            logs.update({f"val_{key}": value for key, value in evaluate(model, loss_fn, val_data).items()})
        logs["lr"] = lr
        logs["time"] = time.perf_counter() - start
        history.record(epoch, logs)
        if progress:
            summary = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "time")
            tqdm.write(f"epoch {epoch + 1}/{epochs}  {summary}  ({logs['time']:.1f}s)")
        if step_unit == "epoch":
            scheduler.step()
        elif step_unit == "metric":
            scheduler.step(logs.get("val_loss", logs["loss"]))
        for callback in callbacks:
            callback.on_epoch_end(state, logs)
        if state.stop_training:
            break
    for callback in callbacks:
        callback.on_train_end(state)
    return history
