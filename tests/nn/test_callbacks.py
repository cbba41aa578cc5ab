"""fit's device-side metrics, TerminateOnNaN, initial_epoch, and what fit shows while kernels compile."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

import jitgrad.optim as optim
from jitgrad import nn
from jitgrad.autograd.tensor import Tensor
from jitgrad.nn import functional as F
from jitgrad.nn import training


def _blobs(n=64, batch=4, seed=0):
    """Two separable clusters as ``n // batch`` batches of float32 inputs and int labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.standard_normal((n, 3)) + 3 * y[:, None]).astype(np.float32)
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def _model():
    nn.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))


@pytest.fixture
def read_backs(monkeypatch):
    """Counts Tensor -> host scalar conversions (``item``, which ``float()`` calls): host syncs on a GPU."""
    count = [0]
    real_item = Tensor.item

    def item(self):
        count[0] += 1
        return real_item(self)

    monkeypatch.setattr(Tensor, "item", item)
    return count


@pytest.mark.parametrize("n_batches", [4, 32])
def test_fit_and_evaluate_read_metrics_back_once_per_pass_not_per_batch(read_backs, n_batches):
    model = _model()
    data = _blobs(n=4 * n_batches)
    nn.fit(model, F.cross_entropy, data, optim.SGD(model.parameters(), lr=0.1), 1, val_data=data,
           progress=False)
    # loss and accuracy of the training pass, and of the validation pass: whatever the batch count.
    assert read_backs[0] == 4
    read_backs[0] = 0
    logs = nn.evaluate(model, F.cross_entropy, data)
    assert read_backs[0] == 2 and set(logs) == {"loss", "accuracy"}


def test_device_sums_match_per_batch_means():
    model = _model()
    data = _blobs(n=30, batch=4)  # a partial last batch: the mean is weighted by batch size
    logs = nn.evaluate(model, F.cross_entropy, data)
    losses, correct = [], 0
    for x, y in data:
        out = model(Tensor(x))
        losses.append(float(F.cross_entropy(out, y)) * len(y))
        correct += int((out.numpy().argmax(axis=1) == y).sum())
    assert logs["loss"] == pytest.approx(sum(losses) / 30, rel=1e-5)
    assert logs["accuracy"] == correct / 30


def test_terminate_on_nan_stops_within_check_every_batches_and_says_where():
    model = _model()
    data = _blobs(n=80)  # 20 batches

    class Poison(nn.Callback):
        def on_batch_end(self, state, batch, logs):
            if batch == 6:
                for p in model.parameters():
                    p.data[...] = np.nan

    seen = []

    class Count(nn.Callback):
        def on_batch_end(self, state, batch, logs):
            seen.append(batch)

    out = io.StringIO()
    stop = nn.TerminateOnNaN(check_every=5, file=out)
    history = nn.fit(model, F.cross_entropy, data, optim.SGD(model.parameters(), lr=0.1), 3,
                     callbacks=[Poison(), stop, Count()], progress=False)
    # Batch 7's loss is NaN; the check after batch 10 (batches 6-10) catches it: epoch 1 stops there.
    assert seen == list(range(10)) and len(history) == 1 and math.isnan(history["loss"][0])
    assert stop.message == out.getvalue().strip()
    assert stop.message.startswith("training stopped: the loss became nan in epoch 1 (batches 6-10)")


def test_terminate_on_nan_catches_an_inf_at_the_end_of_an_epoch():
    model = _model()
    stop = nn.TerminateOnNaN(check_every=1000, verbose=False)

    def loss_fn(output, y):
        loss = F.cross_entropy(output, y)
        return loss + (np.float32(np.inf) - loss.detach())  # inf forward, a finite gradient

    history = nn.fit(model, loss_fn, _blobs(n=16), optim.SGD(model.parameters(), lr=0.0), 5,
                     callbacks=[stop], progress=False)
    assert len(history) == 1 and "the loss became inf in epoch 1 (the epoch)" in stop.message


def test_terminate_on_nan_checks_its_argument():
    with pytest.raises(ValueError, match="TerminateOnNaN: check_every must be an int >= 1, got 0"):
        nn.TerminateOnNaN(check_every=0)
    with pytest.raises(TypeError, match="TerminateOnNaN: check_every must be an int >= 1, got 2.0"):
        nn.TerminateOnNaN(check_every=2.0)
    with pytest.raises(TypeError, match="EarlyStopping: patience must be an int >= 0, got True"):
        nn.EarlyStopping(patience=True)


def test_model_checkpoint_skips_weights_with_a_non_finite_loss(tmp_path):
    model = _model()
    ckpt = nn.ModelCheckpoint(tmp_path / "m-{epoch}.safetensors", monitor="loss", save_best_only=False)
    ckpt.on_epoch_end(nn.TrainingState(model, None, nn.History(), 1), {"loss": float("nan")})
    assert ckpt.saved == [] and not list(tmp_path.iterdir())


def test_initial_epoch_continues_the_count():
    model = _model()
    epochs_seen = []

    class Epochs(nn.Callback):
        def on_epoch_begin(self, state):
            epochs_seen.append(state.epoch)

    history = nn.fit(model, F.cross_entropy, _blobs(), optim.SGD(model.parameters(), lr=0.1), 5,
                     initial_epoch=3, callbacks=[Epochs()], progress=False)
    assert epochs_seen == [3, 4] and history.epochs == [3, 4]
    with pytest.raises(ValueError, match=r"fit: initial_epoch must be an int in \[0, epochs=5\], got 6"):
        nn.fit(model, F.cross_entropy, _blobs(), optim.SGD(model.parameters(), lr=0.1), 5, initial_epoch=6)


def test_compile_time_is_announced_and_left_out_of_the_throughput(monkeypatch, capsys):
    # A fake watch that "compiles" for 100 s in the first batch: the summary says so, and the
    # throughput is computed from the rest of the time.
    class FakeWatch:
        def __init__(self, on_start):
            self.on_start, self.seconds, self.compiled = on_start, 0.0, False

        def __enter__(self):
            self.on_start()
            self.compiled, self.seconds = True, 100.0
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(training, "_CompileWatch", FakeWatch)
    model = _model()
    history = nn.fit(model, F.cross_entropy, _blobs(), optim.SGD(model.parameters(), lr=0.1), 1,
                     progress=False, summary=True)
    out = capsys.readouterr().out
    assert "epoch 1/1: compiling kernels: first use only, cached after" in out
    assert "100s of it compiling" in out
    # time - 100 s is negative: the throughput is then huge, never negative or counted with the compile.
    assert history["samples_per_s"][0] > 1e6


def test_compile_watch_times_real_numba_compilation():
    from numba import njit

    @njit
    def add_one(x):
        return x + 1

    started = []
    with training._CompileWatch(lambda: started.append(True)) as watch:
        add_one(1)
    assert started == [True] and watch.compiled and watch.seconds > 0
    with training._CompileWatch(lambda: started.append(True)) as again:
        add_one(2)  # compiled already: nothing to report
    assert started == [True] and not again.compiled and again.seconds == 0


def test_fit_runs_each_dataloader_epoch_once():
    # The shuffle of epoch k depends on (seed, k) only: a resumed run relies on fit calling
    # iter() exactly once per epoch (tqdm.auto's bar once called it a second time).
    from jitgrad.data import DataLoader

    x, y = _blobs(n=16, batch=16)[0]
    loader = DataLoader((x, y), 4, shuffle=True, seed=1)
    model = _model()
    nn.fit(model, F.cross_entropy, loader, optim.SGD(model.parameters(), lr=0.1), 3, progress=True)
    assert loader.epoch == 3
