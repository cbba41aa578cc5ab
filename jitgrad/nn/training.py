"""Training loop: ``fit`` with a progress bar, callbacks, early stopping and checkpoints.

``fit`` is the loop every example would otherwise write by hand: forward,
loss, ``zero_grad``, backward, ``step``; per-epoch mean loss (and accuracy
for classification), an optional validation pass under ``no_grad``,
learning-rate schedules stepped at the right moments, and callbacks
(Keras-style hooks in :mod:`jitgrad.nn.callbacks`) that may stop training
early or save checkpoints.

Metrics stay on the training device: each batch's loss and correct count are
added to running sums there, and the host reads them back once per logging
interval (the progress bar's refresh, the end of an epoch), never once per
batch: on a GPU a per-batch ``loss.item()`` would stall the pipeline.
:class:`_Running` is the one place where sums are read back (a distributed
run reduces them there).

Kernels compile on their first call; while they do, the bar says so, and the
epoch's ``samples_per_s`` leaves the compile seconds out.

``throttle`` is Flux's: wrap a function so that it runs at most once per
``seconds`` (the progress bar's live loss uses it, so formatting text never
costs a training step anything noticeable).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable

import numpy as np

from jitgrad import config
from jitgrad._checks import check_int, check_real, positive_int
from jitgrad.autograd import Tensor, no_grad
from jitgrad.nn.callbacks import (Callback, EarlyStopping, History, ModelCheckpoint, TerminateOnNaN,
                                  TrainingState)
from jitgrad.nn.module import Module

__all__ = ["fit", "evaluate", "History", "TrainingState", "Callback", "EarlyStopping", "ModelCheckpoint",
           "TerminateOnNaN", "throttle"]


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
    check_real("throttle", "seconds", seconds, minimum=0.0, what="a number >= 0")
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


def _as_input(x: Any, device: str) -> Tensor:
    """A batch's inputs as a Tensor on ``device``; integer/bool arrays (raw pixels) become ``default_dtype``."""
    if not isinstance(x, Tensor):
        from jitgrad import autograd

        array = np.asarray(x)
        if array.dtype not in config.FLOAT_DTYPES:
            array = array.astype(config.default_dtype)
        x = autograd.tensor(array)
    return x if x.device == device else x.to(device)


def _as_target(y: Any, device: str) -> Any:
    """Targets as the loss takes them: unchanged on the CPU, a Tensor on another device."""
    if device == "cpu" or isinstance(y, Tensor):
        return y
    from jitgrad import autograd

    array = np.asarray(y)
    return autograd.tensor(array.astype(np.int64) if np.issubdtype(array.dtype, np.integer) else array).to(device)


def _labels(output: Tensor, target: Any) -> Any:
    """Class indices of a classification batch's targets, or None when the batch is not one.

    Classification means logits ``(N, C)`` with ``C > 1`` and targets of
    integer class indices ``(N,)`` or one-hot/probability rows ``(N, C)``.
    """
    if output.ndim != 2 or output.shape[1] < 2:
        return None
    dtype = np.dtype(target.dtype) if hasattr(target, "dtype") else np.asarray(target).dtype
    if target.ndim == 1 and np.issubdtype(dtype, np.integer):
        return target
    if target.ndim == 2 and tuple(target.shape) == tuple(output.shape):
        return target.argmax(axis=1)
    return None


def _batch_size(x: Any) -> int:
    return int(x.shape[0]) if getattr(x, "ndim", 0) > 0 else 1


class _Running:
    """Sums of one pass's loss and correct predictions, kept on the device until :meth:`logs`."""

    def __init__(self) -> None:
        self.loss: Any = None
        self.correct: Any = None
        self.count = 0
        self.classification = True

    def add(self, loss: Tensor, output: Tensor, target: Any, n: int) -> None:
        with no_grad():
            weighted = loss.detach() * n
            self.loss = weighted if self.loss is None else self.loss + weighted
            labels = _labels(output, target) if self.classification else None
            self.classification = labels is not None
            if self.classification:
                correct = (output.argmax(axis=1) == labels).sum()
                self.correct = correct if self.correct is None else self.correct + correct
        self.count += n

    def mean_loss(self) -> float:
        """The running mean loss (one read-back from the device)."""
        return float(self.loss) / self.count

    def logs(self) -> dict[str, float]:
        """``loss`` and, for classification, ``accuracy``: the pass's only read-back of the sums."""
        logs = {"loss": self.mean_loss()}
        if self.classification:
            logs["accuracy"] = float(self.correct) / self.count
        return logs


class _CompileWatch:
    """Counts the seconds Numba spends compiling while active, and calls ``on_start`` when it begins.

    Numba's event API reports each compilation, nested ones inside their
    caller's; only the outermost are timed. Without that API it counts nothing.
    """

    def __init__(self, on_start: Callable[[], None]) -> None:
        self.on_start, self.seconds, self.compiled = on_start, 0.0, False
        self._depth, self._since = 0, 0.0
        self._context: Any = None

    def __enter__(self) -> "_CompileWatch":
        try:
            from numba.core import event
        except ImportError:  # pragma: no cover - an older numba
            return self
        watch = self

        class Listener(event.Listener):
            def on_start(self, ev: Any) -> None:
                if watch._depth == 0:
                    watch._since = time.perf_counter()
                    if not watch.compiled:
                        watch.compiled = True
                        watch.on_start()
                watch._depth += 1

            def on_end(self, ev: Any) -> None:
                watch._depth -= 1
                if watch._depth == 0:
                    watch.seconds += time.perf_counter() - watch._since

        self._context = event.install_listener("numba:compile", Listener())
        self._context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)


def evaluate(model: Module, loss_fn: Callable[[Any, Any], Any], data: Iterable[tuple[Any, Any]], *,
             device: str | None = None) -> dict[str, float]:
    """Mean loss (and accuracy, for classification) of ``model`` over ``data``, without gradients.

    The model is put in evaluation mode for the pass and its previous mode
    restored after. The sums stay on the device until the pass ends.

    Parameters
    ----------
    model : Module
    loss_fn : callable
        ``loss_fn(output, target)`` returning a scalar Tensor (mean over the batch).
    data : iterable of (x, y)
        Batches; ``x`` an array or Tensor ``(N, ...)``.
    device : str, optional
        Where the batches go (default: where the model's first parameter is).

    Returns
    -------
    dict
        ``{"loss": float}`` plus ``"accuracy"`` for classification batches.
    """
    device = device or _model_device(model)
    was_training = model.training
    model.eval()
    running = _Running()
    try:
        with no_grad():
            for x, y in data:
                x, y = _as_input(x, device), _as_target(y, device)
                output = model(x)
                running.add(loss_fn(output, y), output, y, _batch_size(x))
    finally:
        model.train(was_training)
    if running.count == 0:
        raise ValueError("evaluate: data yielded no batches")
    return running.logs()


def _model_device(model: Module) -> str:
    for p in model.parameters():
        return p.device
    return "cpu"


def fit(model: Module, loss_fn: Callable[[Any, Any], Any], train_data: Iterable[tuple[Any, Any]], optimizer: Any,
        epochs: int, *, val_data: Iterable[tuple[Any, Any]] | None = None, callbacks: Iterable[Callback] = (),
        progress: bool = True, scheduler: Any = None, initial_epoch: int = 0, summary: bool | None = None,
        device: str | None = None, metrics_reducer: Callable[[dict[str, float]], dict[str, float]] | None = None
        ) -> History:
    """Train ``model`` until epoch ``epochs`` over ``train_data``.

    Parameters
    ----------
    model : Module
    loss_fn : callable
        ``loss_fn(output, y)`` returning a scalar Tensor, e.g.
        ``nn.functional.cross_entropy``.
    train_data : iterable of (x, y)
        Re-iterable batches (a list, a ``DataLoader``): ``x`` an array or
        Tensor ``(N, ...)`` (non-float arrays are cast to
        ``config.default_dtype``), ``y`` passed to ``loss_fn`` unchanged
        (on the CPU; moved to ``device`` otherwise).
    optimizer : Optimizer
    epochs : int
        Positive: the epoch to train until (Keras's meaning with ``initial_epoch``).
    val_data : iterable of (x, y), optional
        Evaluated after every epoch (no gradients, eval mode).
    callbacks : iterable of Callback
    progress : bool, default True
        Show a tqdm bar per epoch with the running mean loss (read back from
        the device at most 4 times a second).
    scheduler : learning-rate schedule, optional
        Stepped after each batch (``step_unit == "batch"``, OneCycleLR),
        after each epoch (``"epoch"``), or after each epoch with the
        validation loss (training loss without ``val_data``) for
        ``ReduceLROnPlateau``.
    initial_epoch : int, default 0
        Epochs already done (a resumed run): training runs epochs
        ``initial_epoch + 1 .. epochs``, and ``state.epoch`` counts from it.
    summary : bool, optional
        Print one line per epoch (default: as ``progress``).
    device : str, optional
        Where batches go (default: where the model's first parameter is).
    metrics_reducer : callable, optional
        Applied to each epoch's logs before they are recorded, printed and
        given to callbacks; data-parallel training passes
        ``jitgrad.distributed.reduce_metrics`` so every rank sees the mean over ranks.

    Returns
    -------
    History
        Per-epoch ``loss``, ``accuracy`` (classification), ``val_loss``,
        ``val_accuracy``, ``lr``, ``time`` (seconds, compilation included)
        and ``samples_per_s`` (training samples per second of the training
        pass, kernel compilation left out).
    """
    from tqdm.auto import tqdm

    if not isinstance(model, Module):
        raise TypeError(f"fit: model must be an nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable, got {type(loss_fn).__name__}")
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad")):
        raise TypeError(f"fit: optimizer must have step() and zero_grad(), got {type(optimizer).__name__}")
    epochs = positive_int("fit", "epochs", epochs)
    initial_epoch = check_int("fit", "initial_epoch", initial_epoch, minimum=0, maximum=epochs,
                              what=f"an int in [0, epochs={epochs}]")
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"fit: callbacks must be Callback instances, got {type(callback).__name__}")
    step_unit = getattr(scheduler, "step_unit", None)
    if scheduler is not None and step_unit not in ("epoch", "batch", "metric"):
        raise TypeError(f"fit: scheduler must be a jitgrad.optim schedule, got {type(scheduler).__name__}")
    summary = progress if summary is None else summary
    device = device or _model_device(model)

    history = History()
    state = TrainingState(model, optimizer, history, epochs)
    state.epoch = initial_epoch
    for callback in callbacks:
        callback.on_train_begin(state)
    for epoch in range(initial_epoch, epochs):
        if state.stop_training:
            break
        state.epoch = epoch
        for callback in callbacks:
            callback.on_epoch_begin(state)
        model.train()
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"] if hasattr(optimizer, "param_groups") else float("nan")
        running = _Running()
        desc = f"epoch {epoch + 1}/{epochs}"
        # The bar is updated by hand, not given train_data: tqdm.auto's asyncio flavour calls iter()
        # on its iterable at construction, which would run a DataLoader's epoch (its shuffle) twice.
        bar = tqdm(total=len(train_data) if hasattr(train_data, "__len__") else None, desc=desc,
                   disable=not progress, leave=False, dynamic_ncols=True)

        noted = []  # non-empty while the bar says "compiling"

        def compiling() -> None:
            note = "compiling kernels: first use only, cached after"
            if progress:
                noted.append(True)
                bar.set_description_str(f"{desc} ({note})")
                bar.refresh()
            elif summary:
                tqdm.write(f"{desc}: {note}")

        # The live loss is the running mean, read back from the device only when shown.
        show_loss = throttle(lambda: bar.set_postfix(loss=f"{running.mean_loss():.4f}", refresh=False), 0.25)
        try:
            with _CompileWatch(compiling) as watch:
                for batch, (x, y) in enumerate(train_data):
                    x, y = _as_input(x, device), _as_target(y, device)
                    output = model(x)
                    loss = loss_fn(output, y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    if step_unit == "batch":
                        scheduler.step()
                    n = _batch_size(x)
                    running.add(loss, output, y, n)
                    if noted:  # compiled in this batch: done now
                        bar.set_description_str(desc, refresh=False)
                        noted.clear()
                    bar.update()
                    if progress:
                        show_loss()
                    for callback in callbacks:
                        callback.on_batch_end(state, batch, {"loss": loss, "batch_size": n})
                    if state.stop_training:
                        break
        finally:
            bar.close()
        if running.count == 0:
            raise ValueError(f"fit: train_data yielded no batches in epoch {epoch + 1}")
        train_seconds = time.perf_counter() - start
        logs = running.logs()
        if val_data is not None:
            logs.update({f"val_{key}": value
                         for key, value in evaluate(model, loss_fn, val_data, device=device).items()})
        logs["lr"] = lr
        logs["time"] = time.perf_counter() - start
        logs["samples_per_s"] = running.count / max(train_seconds - watch.seconds, 1e-9)
        if metrics_reducer is not None:
            logs = metrics_reducer(logs)
        history.record(epoch, logs)
        if summary:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k not in ("time", "samples_per_s"))
            compiled = f", {watch.seconds:.0f}s of it compiling" if watch.seconds >= 0.5 else ""
            tqdm.write(f"epoch {epoch + 1}/{epochs}  {shown}  ({logs['time']:.1f}s{compiled}, "
                       f"{logs['samples_per_s']:.0f} samples/s)")
        if step_unit == "epoch":
            scheduler.step()
        elif step_unit == "metric":
            scheduler.step(logs.get("val_loss", logs["loss"]))
        for callback in callbacks:
            callback.on_epoch_end(state, logs)
    for callback in callbacks:
        callback.on_train_end(state)
    return history
