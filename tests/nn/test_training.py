"""Training end to end: fit, callbacks, throttle, reproducibility, checkpoints of model and optimizer."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad.optim as optim
from jitgrad import nn
from jitgrad.autograd.tensor import tensor
from jitgrad.nn import functional as F
from jitgrad.serialization import load, save


def _xor():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([0, 1, 1, 0])
    return x, y


def _blobs(n=32, seed=0):
    """Two separable clusters, float32 inputs and int labels, as 4 batches."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.standard_normal((n, 3)) + 3 * y[:, None]).astype(np.float32)
    return [(x[i:i + 8], y[i:i + 8]) for i in range(0, n, 8)]


def test_throttle_runs_at_most_once_per_interval():
    now = [0.0]
    calls = []
    throttled = nn.throttle(lambda v: calls.append(v) or v, 1.0, clock=lambda: now[0])
    assert throttled("a") == "a"
    now[0] = 0.5
    assert throttled("b") == "a"  # skipped: returns the last result
    now[0] = 1.0
    throttled("c")
    now[0] = 1.9
    throttled("d")
    assert calls == ["a", "c"]
    with pytest.raises(ValueError, match="throttle: seconds must be a number >= 0, got -1"):
        nn.throttle(print, -1)
    with pytest.raises(TypeError, match="throttle: seconds must be a number >= 0, got '1'"):
        nn.throttle(print, "1")
    with pytest.raises(TypeError, match="throttle: fn must be callable, got int"):
        nn.throttle(3, 1)


def test_mlp_learns_xor():
    nn.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    x, y = _xor()
    history = nn.fit(model, F.cross_entropy, [(x, y)], optim.Adam(model.parameters(), lr=0.05), 150,
                     progress=False)
    assert history["loss"][-1] < 0.05 < history["loss"][0]
    assert history["accuracy"][-1] == 1.0
    assert (model(tensor(x)).numpy().argmax(1) == y).all()


def test_small_cnn_overfits_64_mnist_shaped_images():
    nn.manual_seed(1)
    rng = np.random.default_rng(1)
    images = rng.random((64, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 64)
    model = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(144, 10))
    opt = optim.Adam(model.parameters(), lr=1e-2)

    class StopAtPerfect(nn.Callback):
        def on_epoch_end(self, state, logs):
            state.stop_training = state.stop_training or logs["accuracy"] == 1.0

    history = nn.fit(model, F.cross_entropy, [(images, labels)], opt, 100, callbacks=[StopAtPerfect()],
                     progress=False)
    assert len(history) < 100
    assert nn.evaluate(model, F.cross_entropy, [(images, labels)])["accuracy"] == 1.0


class _LossRecorder(nn.Callback):
    """Records every batch's loss."""

    def on_train_begin(self, state):
        self.losses = []

    def on_batch_end(self, state, batch, logs):
        self.losses.append(float(logs["loss"]))


def test_same_seed_same_loss_trajectory_with_dropout():
    trajectories = []
    for _ in range(2):
        nn.manual_seed(123)
        model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        recorder = _LossRecorder()
        nn.fit(model, F.cross_entropy, _blobs() * 5, opt, 1, progress=False, callbacks=[recorder])
        trajectories.append(recorder.losses)
    assert len(trajectories[0]) == 20
    assert trajectories[0] == trajectories[1]
    assert trajectories[0][-1] < trajectories[0][0]


def test_history_has_validation_lr_and_time():
    nn.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 2))
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    history = nn.fit(model, F.cross_entropy, _blobs(), opt, 3, val_data=_blobs(seed=1), progress=False,
                     scheduler=sched)
    assert set(history.keys()) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time", "samples_per_s"}
    assert history["lr"] == [0.1, 0.05, 0.025]
    assert all(t > 0 for t in history["time"]) and len(history) == 3
    assert model.training  # evaluate restores the mode
    assert "3 epochs" in repr(history)


def test_regression_history_has_no_accuracy():
    model = nn.Linear(3, 1)
    x = np.ones((4, 3), np.float32)
    y = tensor(np.zeros((4, 1), np.float32))
    history = nn.fit(model, F.mse_loss, [(x, y)], optim.SGD(model.parameters(), lr=0.1), 2, progress=False)
    assert set(history.keys()) == {"loss", "lr", "time", "samples_per_s"}
    assert history["loss"][1] < history["loss"][0]


def test_one_cycle_is_stepped_per_batch_and_plateau_per_epoch():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.OneCycleLR(opt, max_lr=0.5, epochs=2, steps_per_epoch=4)
    nn.fit(model, F.cross_entropy, _blobs(), opt, 2, progress=False, scheduler=sched)
    assert sched.last_epoch == 8
    opt = optim.SGD(model.parameters(), lr=0.1)
    plateau = optim.ReduceLROnPlateau(opt, patience=0)
    history = nn.fit(model, F.cross_entropy, _blobs(), opt, 2, val_data=_blobs(seed=3), progress=False,
                     scheduler=plateau)
    assert plateau.last_epoch == 2 and plateau.best == min(history["val_loss"])


def test_early_stopping_stops_and_restores_best_weights():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.0)  # loss never improves after epoch 1
    stop = nn.EarlyStopping(monitor="val_loss", patience=2)
    history = nn.fit(model, F.cross_entropy, _blobs(), opt, 50, val_data=_blobs(), callbacks=[stop],
                     progress=False)
    assert len(history) == 4 and stop.stopped_epoch == 3 and stop.best_epoch == 0

    nn.manual_seed(5)
    model = nn.Linear(3, 2)
    # A huge learning rate makes the loss explode after the first steps.
    opt = optim.SGD(model.parameters(), lr=50.0)
    stop = nn.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)

    class Snapshots(nn.Callback):
        states: list = []

        def on_epoch_end(self, state, logs):
            self.states.append(state.model.state_dict())

    snaps = Snapshots()
    history = nn.fit(model, F.cross_entropy, _blobs(), opt, 20, callbacks=[snaps, stop], progress=False)
    best = int(np.argmin(history["loss"]))
    assert stop.best_epoch == best
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, snaps.states[best][key])


def test_early_stopping_missing_metric_is_a_clear_error():
    model = nn.Linear(3, 2)
    with pytest.raises(KeyError, match=r"EarlyStopping: monitored metric 'val_loss' is not logged "
                                       r"\(available: loss, accuracy, lr, time, samples_per_s\); pass val_data to fit"):
        nn.fit(model, F.cross_entropy, _blobs(), optim.SGD(model.parameters(), lr=0.1), 2,
               callbacks=[nn.EarlyStopping()], progress=False)


def test_model_checkpoint_saves_best_only(tmp_path):
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.0)
    ckpt = nn.ModelCheckpoint(tmp_path / "m-{epoch:02d}.safetensors", monitor="loss")
    nn.fit(model, F.cross_entropy, _blobs(), opt, 3, callbacks=[ckpt], progress=False)
    assert [p.name for p in ckpt.saved] == ["m-01.safetensors"]
    loaded = load(ckpt.saved[0])
    for key, value in model.state_dict().items():
        assert loaded[key].tobytes() == value.tobytes()
    every = nn.ModelCheckpoint(tmp_path / "e{epoch}.safetensors", monitor="loss", save_best_only=False)
    nn.fit(model, F.cross_entropy, _blobs(), opt, 2, callbacks=[every], progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1.safetensors", "e2.safetensors", "m-01.safetensors"]


def test_progress_bar_prints_epoch_summary(capsys):
    model = nn.Linear(3, 2)
    nn.fit(model, F.cross_entropy, _blobs(), optim.SGD(model.parameters(), lr=0.1), 1, progress=True)
    assert "epoch 1/1  loss" in capsys.readouterr().out


def test_model_and_optimizer_checkpoint_round_trip_bit_identically(tmp_path):
    def make():
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))

    rng = np.random.default_rng(0)
    batches = [(rng.random((4, 1, 6, 6), dtype=np.float32), rng.integers(0, 3, 4)) for _ in range(3)]
    nn.manual_seed(9)
    model = make()
    opt = optim.AdamW(model.parameters(), lr=0.01)
    nn.fit(model, F.cross_entropy, batches, opt, 2, progress=False)
    save(model.state_dict(), tmp_path / "model.safetensors")
    save(opt.state_dict(), tmp_path / "opt.safetensors")
    nn.fit(model, F.cross_entropy, batches, opt, 2, progress=False)

    nn.manual_seed(77)  # different init: everything must come from the files
    restored = make()
    restored_opt = optim.AdamW(restored.parameters(), lr=0.5)
    restored.load_state_dict(load(tmp_path / "model.safetensors"))
    restored_opt.load_state_dict(load(tmp_path / "opt.safetensors"))
    nn.fit(restored, F.cross_entropy, batches, restored_opt, 2, progress=False)
    for key, value in model.state_dict().items():
        assert restored.state_dict()[key].tobytes() == value.tobytes(), key


def test_issue_3_lenet_snippet_runs():
    import jitgrad.optim

    model = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84),
                          nn.ReLU(), nn.Linear(84, 10))
    x = tensor(np.random.default_rng(0).random((8, 1, 28, 28)).astype(np.float32))
    y = np.arange(8) % 10
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    before = model[0].weight.numpy().copy()
    opt = jitgrad.optim.Adam(model.parameters(), lr=3e-4)
    opt.step()
    assert np.isfinite(loss.item()) and abs(loss.item() - np.log(10)) < 0.5
    assert not np.array_equal(before, model[0].weight.numpy())
    assert sorted(model.state_dict()) == sorted(n for n, _ in model.named_parameters())
    assert str(model).startswith("Sequential(\n  Conv2d(1 => 6, 5×5),")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"model": lambda x: x}, TypeError, "fit: model must be an nn.Module, got function"),
    ({"epochs": 0}, ValueError, "fit: epochs must be a positive int, got 0"),
    ({"epochs": 2.0}, TypeError, "fit: epochs must be a positive int, got 2.0"),
    ({"callbacks": [print]}, TypeError, "fit: callbacks must be Callback instances, got builtin_function_or_method"),
    ({"train_data": []}, ValueError, "fit: train_data yielded no batches in epoch 1"),
    ({"optimizer": object()}, TypeError, r"fit: optimizer must have step\(\) and zero_grad\(\), got object"),
    ({"scheduler": object()}, TypeError, "fit: scheduler must be a jitgrad.optim schedule, got object"),
])
def test_fit_bad_arguments(kwargs, error, message):
    model = nn.Linear(3, 2)
    args = {"model": model, "loss_fn": F.cross_entropy, "train_data": _blobs(),
            "optimizer": optim.SGD(model.parameters(), lr=0.1), "epochs": 1, **kwargs}
    epochs = args.pop("epochs")
    with pytest.raises(error, match=message):
        nn.fit(args.pop("model"), args.pop("loss_fn"), args.pop("train_data"), args.pop("optimizer"), epochs,
               progress=False, **args)
