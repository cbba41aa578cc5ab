"""The training script, end to end: argument errors, checkpoints and resume, and real MNIST training.

The example is imported from ``examples/mnist_cnn.py`` by path, so the test
trains exactly the models and recipe users run.
"""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from jitgrad import config, nn
from jitgrad.data import mnist
from jitgrad.data.idx import write_idx

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "mnist_cnn.py"


def _import_example():
    spec = importlib.util.spec_from_file_location("mnist_cnn_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ex = _import_example()


@pytest.fixture(autouse=True)
def _compile_lazily(monkeypatch):
    """The script compiles every kernel up front (jitgrad.compile); tests only compile what they call."""
    monkeypatch.setattr(ex, "ensure_compiled", lambda **kwargs: False)


class _InterruptAt(nn.Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) at the start of the given zero-based epoch."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, state):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


def _real_mnist_dir():
    folder = config.data_dir() / "mnist"
    return folder if all((folder / f).is_file() for f in mnist.MD5) else None


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """A tiny learnable MNIST (digit = a bright row at its index) under tmp_path/mnist."""
    rng = np.random.default_rng(0)
    md5 = {}
    for split, n in (("train", 96), ("test", 40)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 2 + 2 * labels] = 255
        for name, arr in zip(mnist.FILES[split], (images, labels)):
            (tmp_path / "mnist").mkdir(exist_ok=True)
            path = write_idx(tmp_path / "mnist" / name, arr)
            import hashlib
            md5[name] = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setattr(mnist, "MD5", md5)
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
    (["--batch-size", "x"], "argument --batch-size: expected a positive integer, got 'x'"),
    (["--lr", "-1"], "argument --lr: expected a positive number, got -1"),
    (["--weight-decay", "nan"], "argument --weight-decay: expected a non-negative number, got nan"),
    (["--model", "resnet50"], "argument --model: invalid choice: 'resnet50'"),
    (["--optimizer", "rmsprop"], "argument --optimizer: invalid choice: 'rmsprop'"),
    (["--plot", "curves.pdf"], "--plot: expected a .png path, got 'curves.pdf'"),
    (["--threads", "100000"], "--threads: set_num_threads: n must be in [1,"),
    (["--resume", "/nonexistent/ckpt.safetensors"], "--resume: no such file: /nonexistent/ckpt.safetensors"),
    (["--augment", "-1"], "argument --augment: expected a non-negative integer, got -1"),
    (["--label-smoothing", "1"], "--label-smoothing: expected a number in [0, 1), got 1"),
])
def test_bad_arguments_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        ex.parse_args(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_cuda_flag_without_cuda_backend_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(ex, "_import_cuda", lambda: None)
    with pytest.raises(SystemExit) as info:
        ex.parse_args(["--device", "cuda"])
    assert info.value.code == 2
    assert "--device cuda: jitgrad.cuda is not available" in capsys.readouterr().err


def test_plot_without_matplotlib_says_so(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(SystemExit) as info:
        ex.parse_args(["--plot", "x.png"])
    assert info.value.code == 2
    assert "--plot needs matplotlib, which is not installed: pip install 'jitgrad[plot]'" in capsys.readouterr().err


def test_models_have_the_documented_sizes():
    assert sum(p.data.size for p in ex.lenet5().parameters()) == 44_426
    assert sum(p.data.size for p in ex.convnet().parameters()) == 34_826
    assert sum(p.data.size for p in ex.resnet().parameters()) == 77_754


def test_resnet_has_batchnorm_buffers_and_switches_to_running_statistics():
    import jitgrad

    model = ex.resnet()
    state = model.state_dict()
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked"} <= set(state)
    x = jitgrad.tensor(np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32))
    assert model(x).shape == (4, 10)  # train mode: batch statistics, running ones updated
    assert not np.array_equal(model.state_dict()["1.running_mean"], state["1.running_mean"])
    model.eval()
    with jitgrad.no_grad():
        one, batch = model(x[:1]).numpy(), model(x).numpy()
    np.testing.assert_allclose(one, batch[:1], rtol=1e-4, atol=1e-5)  # eval: a sample's logits ignore its batch


def _weights(model):
    return {k: np.array(v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("extra", [[], ["--augment", "2"]])
def test_checkpoint_resume_matches_an_uninterrupted_run(fake_mnist, tmp_path, capsys, extra):
    # convnet: its Dropout makes this check that the random state is restored too; --augment, that epoch e's
    # shifts are the same in a resumed run.
    common = ["--data-dir", str(fake_mnist), "--model", "convnet", "--batch-size", "32", "--epochs", "2",
              "--no-progress", *extra]
    full = ex.train(ex.parse_args(common))

    ckpt = tmp_path / "run.safetensors"
    assert ex.main(common + ["--checkpoint", str(ckpt)], callbacks=[_InterruptAt(1)]) == 130
    assert f"interrupted; resume with --resume {ckpt}" in capsys.readouterr().err
    assert ckpt.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["mnist", "run.safetensors"]

    resumed = ex.train(ex.parse_args(common + ["--resume", str(ckpt), "--checkpoint", str(ckpt)]))
    for key in ("train_loss", "test_loss", "test_acc"):
        np.testing.assert_allclose(resumed["history"][key], full["history"][key], rtol=1e-6, err_msg=key)
    for name, w in _weights(full["model"]).items():
        np.testing.assert_allclose(_weights(resumed["model"])[name], w, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("change, message", [
    (["--model", "lenet5"], "was trained with --model convnet, not lenet5; pass --model convnet"),
    (["--optimizer", "sgd"], "was trained with --optimizer adam, not sgd; pass --optimizer adam"),
    (["--epochs", "3"], "follows a 1-epoch onecycle schedule; pass --epochs 1 to finish it"),
])
def test_mismatched_resume_is_exit_2_with_a_message(fake_mnist, tmp_path, capsys, change, message):
    ckpt = tmp_path / "c.safetensors"
    common = ["--data-dir", str(fake_mnist), "--batch-size", "48", "--epochs", "1", "--no-progress",
              "--model", "convnet"]
    assert ex.main(common + ["--checkpoint", str(ckpt)]) == 0
    capsys.readouterr()
    assert ex.main(common + change + ["--resume", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert f"mnist_cnn.py: error: {ckpt} {message}" in err and "Traceback" not in err


def test_unreadable_resume_is_exit_2_with_a_message(fake_mnist, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05\x00garbage")
    assert ex.main(["--data-dir", str(fake_mnist), "--resume", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"mnist_cnn.py: error: cannot read checkpoint {bad}: load: " in err and "Traceback" not in err


def test_plot_is_written(fake_mnist, tmp_path, capsys):
    png = tmp_path / "out" / "curves.png"
    assert ex.main(["--data-dir", str(fake_mnist), "--epochs", "1", "--batch-size", "48", "--no-progress",
                    "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "epoch   1/1  train loss" in out and "images/s" in out
    assert f"plot: {png}" in out and "best test accuracy" in out


@pytest.mark.slow
def test_lenet5_one_epoch_on_real_mnist(capsys):
    if _real_mnist_dir() is None and not os.environ.get(config.DATA_ENV_VAR):
        pytest.skip(f"real MNIST not found in {config.data_dir() / 'mnist'} and {config.DATA_ENV_VAR} is unset")
    result = ex.train(ex.parse_args(["--epochs", "1", "--no-progress"]))
    test_acc = result["history"]["test_acc"][-1]
    assert test_acc >= 0.965, capsys.readouterr().out


# ----------------------------------------------------------------------------- user errors before training

def _exit_and_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        ex.parse_args(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return info.value.code, err.strip().splitlines()[-1]


@pytest.mark.parametrize("flag, name", [("--checkpoint", "c.safetensors"), ("--plot", "p.png")])
def test_output_that_is_a_directory_fails_before_training(tmp_path, capsys, flag, name):
    target = tmp_path / name
    target.mkdir()
    code, line = _exit_and_error([flag, str(target)], capsys)
    assert code == 2 and line.endswith(f"{flag}: {target} is a directory; give a file path")


@pytest.mark.parametrize("flag, name", [("--checkpoint", "c.safetensors"), ("--plot", "p.png")])
def test_output_in_a_folder_that_cannot_be_created_or_written(tmp_path, capsys, flag, name):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, line = _exit_and_error([flag, str(blocker / "sub" / name)], capsys)
    assert code == 2 and f"{flag}: cannot create the folder {blocker / 'sub'}" in line
    # A read-only folder: /proc refuses new files even to root.
    code, line = _exit_and_error([flag, f"/proc/{name}"], capsys)
    assert code == 2 and f"{flag}: cannot write in /proc" in line


def test_output_in_a_missing_folder_is_created_before_training(tmp_path):
    args = ex.parse_args(["--checkpoint", str(tmp_path / "new" / "c.safetensors")])
    assert (tmp_path / "new").is_dir() and not list((tmp_path / "new").iterdir())
    assert args.checkpoint == tmp_path / "new" / "c.safetensors"


def test_data_dir_that_is_a_file_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    not_a_dir = tmp_path / "data.txt"
    not_a_dir.write_text("x")
    monkeypatch.setenv(config.DATA_ENV_VAR, str(not_a_dir))
    code, line = _exit_and_error([], capsys)
    assert code == 2 and line.endswith(f"$JITGRAD_DATA: {not_a_dir} is a file, not a directory (it must hold mnist/)")
    code, line = _exit_and_error(["--data-dir", str(not_a_dir)], capsys)
    assert code == 2 and line.endswith(f"--data-dir: {not_a_dir} is a file, not a directory (it must hold mnist/)")


def test_unreadable_data_dir_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    (locked / "mnist").mkdir(parents=True)
    monkeypatch.setenv(config.DATA_ENV_VAR, str(locked))
    # os.access is what the check asks; root passes any permission bits, so fake its answer.
    real_access = os.access
    monkeypatch.setattr(ex.os, "access", lambda p, mode: False if Path(p) == locked / "mnist" else real_access(p, mode))
    code, line = _exit_and_error([], capsys)
    assert code == 2 and line.endswith(f"$JITGRAD_DATA: cannot read {locked / 'mnist'} (permission denied)")


def test_missing_data_names_the_data_dir_option(tmp_path, capsys, monkeypatch):
    from jitgrad.data import _download

    def offline(*args, **kwargs):
        raise _download.DownloadError("no network")

    monkeypatch.setattr(_download, "download", offline)
    assert ex.main(["--data-dir", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--data-dir <directory containing mnist/>" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- during training

def test_ctrl_c_before_the_first_checkpoint_advertises_no_resume_file(fake_mnist, tmp_path, capsys):
    ckpt = tmp_path / "never.safetensors"
    argv = ["--data-dir", str(fake_mnist), "--epochs", "2", "--batch-size", "48", "--no-progress",
            "--checkpoint", str(ckpt)]
    assert ex.main(argv, callbacks=[_InterruptAt(0)]) == 130
    err = capsys.readouterr().err
    assert "--resume" not in err and "no checkpoint was written yet" in err and not ckpt.exists()


class _PoisonWeights(nn.Callback):
    """Sets every weight to NaN after the given batch, as a diverging run would."""

    def on_batch_end(self, state, batch, logs):
        if batch == 0:
            for p in state.model.parameters():
                p.data[...] = np.nan


def test_non_finite_loss_stops_training_with_one_line_and_no_checkpoint(fake_mnist, tmp_path, capsys):
    ckpt = tmp_path / "c.safetensors"
    argv = ["--data-dir", str(fake_mnist), "--epochs", "3", "--batch-size", "16", "--no-progress",
            "--checkpoint", str(ckpt)]
    assert ex.main(argv, callbacks=[_PoisonWeights()]) == 1
    captured = capsys.readouterr()
    error_lines = [line for line in captured.err.splitlines() if "error" in line]
    assert error_lines == [error_lines[0]] and "mnist_cnn.py: error: training stopped: the loss became nan in " \
                                                 "epoch 1" in error_lines[0]
    assert "Traceback" not in captured.err
    assert "epoch   2/3" not in captured.out  # stopped in epoch 1
    assert not ckpt.exists()


def test_augmented_adamw_label_smoothed_run(fake_mnist, monkeypatch):
    """--augment shifts the training batches only; --label-smoothing reaches the loss; adamw trains."""
    seen = []
    real = ex.RandomShift.__call__
    monkeypatch.setattr(ex.RandomShift, "__call__", lambda self, x: seen.append(x.shape) or real(self, x))
    common = ["--data-dir", str(fake_mnist), "--batch-size", "32", "--epochs", "2", "--no-progress"]
    plain = ex.train(ex.parse_args(common))["history"]
    assert seen == []
    run = ex.train(ex.parse_args(common + ["--augment", "2", "--label-smoothing", "0.1", "--optimizer", "adamw",
                                           "--weight-decay", "0.05"]))["history"]
    assert seen == [(32, 28, 28)] * 6  # 3 training batches per epoch, uint8 digits before scaling
    assert all(np.isfinite(run["train_loss"])) and run["train_loss"][1] < run["train_loss"][0]
    assert run["train_loss"] != plain["train_loss"]
    # A smoothed loss is bounded below by the entropy of the smoothed target (> 0.1 for eps 0.1, 10 classes).
    assert min(run["train_loss"]) > 0.1
