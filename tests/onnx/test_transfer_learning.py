"""examples/transfer_learning.py on a small subset: every stage runs and the numbers make sense.

Real MNIST when it is there (``JITGRAD_DATA``), else the docs test's synthetic digits (same loader contract).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from jitgrad import config  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "transfer_learning.py"


def test_transfer_learning_script_on_a_subset(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("transfer_learning", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not (config.data_dir() / "mnist").is_dir():
        from tests.test_docs import tiny_mnist

        monkeypatch.setattr(module.mnist, "load", tiny_mnist(3000, 1000))
    result = module.main(["--limit", "600", "--epochs", "2", "--onnx", str(tmp_path / "f.onnx")])
    out = capsys.readouterr().out
    assert (tmp_path / "f.onnx").is_file()
    assert "transfer (frozen ONNX features" in out and "from scratch" in out
    # 600 images, 2 epochs: both learn clearly above chance (0.2) on the 5 classes
    assert result["accuracy_a"] > 0.5
    assert result["transfer"][-1] > 0.4 and result["scratch"][-1] > 0.4
    assert len(result["transfer"]) == len(result["scratch"]) == 2
