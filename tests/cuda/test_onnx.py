"""An imported ONNX graph runs and trains on the CUDA backend and matches the CPU (tiny shapes for the simulator)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

import jitgrad  # noqa: E402
from jitgrad import nn  # noqa: E402
from jitgrad import onnx as jonnx  # noqa: E402


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        x = nn.functional.max_pool2d(self.conv(x).relu(), 2)
        return self.fc(x.reshape(x.shape[0], -1) * 0.5)


def test_imported_graph_on_cuda_matches_cpu_and_gets_gradients(tmp_path):
    jitgrad.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    jonnx.export(Tiny(), x, tmp_path / "t.onnx")
    cpu = jonnx.load(tmp_path / "t.onnx")
    gpu = jonnx.load(tmp_path / "t.onnx").to("cuda")
    assert all(p.device == "cuda" for p in gpu.parameters())
    assert [n for n, _ in gpu.named_parameters()] == ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    y_cpu = cpu(jitgrad.Tensor(x))
    y_gpu = gpu(jitgrad.Tensor(x).to("cuda"))
    assert y_gpu.device == "cuda"
    np.testing.assert_allclose(y_gpu.numpy(), y_cpu.numpy(), rtol=1e-5, atol=1e-6)
    y_cpu.sum().backward()
    y_gpu.sum().backward()
    for (name, pc), (_, pg) in zip(cpu.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(pg.grad.numpy(), pc.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
