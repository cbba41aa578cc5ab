"""Training on the GPU end to end: a LeNet-shaped network's steps on cuda match the CPU's.

Under the simulator a CUDA thread is a Python thread, so the network is
LeNet-5's shape (conv, ReLU, max-pool, conv, ReLU, pool, flatten, three dense
layers) shrunk to 1x8x8 inputs and a batch of 2; on a real GPU the same
code trains examples/mnist_cnn.py's full LeNet-5 (``--device cuda``).
"""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad
from jitgrad import nn, optim
from jitgrad.data import DataLoader
from jitgrad.nn import functional as F


def lenet_like() -> nn.Module:
    """LeNet-5's layer sequence for 1x8x8 inputs: 8 -conv3-> 6 -pool-> 3 -conv2-> 2 -avgpool-> 1."""
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2, 3, 2), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(3, 8), nn.ReLU(),
        nn.Linear(8, 6), nn.ReLU(),
        nn.Linear(6, 3),
    )


def train(model: nn.Module, loader: DataLoader, steps: int) -> list[float]:
    """``steps`` Adam steps; the losses, read with ``item()`` (the one host sync of a step)."""
    optimizer = optim.Adam(model.parameters(), lr=0.05)
    losses = []
    batches = iter(loader)
    for _ in range(steps):
        x, y = next(batches)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_lenet_shaped_training_on_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    jitgrad.manual_seed(0)
    cpu_model = lenet_like()
    gpu_model = lenet_like()
    initial = cpu_model.state_dict()
    gpu_model.load_state_dict(initial)  # same initial weights
    gpu_model.to("cuda")
    assert all(p.device == "cuda" for p in gpu_model.parameters())

    cpu_losses = train(cpu_model, DataLoader((images, labels), batch_size=2, shuffle=True, seed=1), 2)
    gpu_loader = DataLoader((images, labels), batch_size=2, shuffle=True, seed=1, device="cuda")
    gpu_losses = train(gpu_model, gpu_loader, 2)

    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-5)
    assert all(p.device == "cuda" and p.grad.device == "cuda" for p in gpu_model.parameters())
    gpu_state, cpu_state = gpu_model.state_dict(), cpu_model.state_dict()
    for name, value in cpu_state.items():
        # Two Adam steps of lr 0.05 move weights by ~0.1: float32 rounding of different
        # summation orders stays far below that.
        np.testing.assert_allclose(gpu_state[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    # The comparison means something only if training moved the weights.
    assert all(not np.allclose(cpu_state[name], initial[name]) for name in ("0.weight", "11.weight"))


def test_module_to_moves_grads_and_optimizer_state_follows_the_parameters():
    x = np.random.default_rng(1).standard_normal((3, 2)).astype(np.float32)
    y = np.array([0, 1, 1])
    results = []
    for device_after_first_step in ("cpu", "cuda"):
        jitgrad.manual_seed(4)
        model = nn.Linear(2, 2)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        F.cross_entropy(model(jitgrad.tensor(x)), y).backward()
        opt.step()
        model.to(device_after_first_step)
        assert all(p.grad.device == device_after_first_step for p in model.parameters())
        xb, yb = jitgrad.gpu((x, y)) if device_after_first_step == "cuda" else (jitgrad.tensor(x), y)
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()  # momentum buffers made on the CPU move to the GPU here
        assert all(s["momentum_buffer"].__class__ is p.data.__class__
                   for s, p in zip(opt.state.values(), model.parameters()))
        results.append([p.numpy() for p in model.parameters()])
    for cpu_value, gpu_value in zip(*results):
        np.testing.assert_allclose(gpu_value, cpu_value, rtol=1e-5, atol=1e-7)


def test_gpu_and_cpu_move_tensors_modules_and_structures():
    assert jitgrad.cuda.is_available()
    model = nn.Linear(2, 1)
    x = np.ones((1, 2), np.float32)
    moved_model, (xt, label), extras = jitgrad.gpu((model, [x, jitgrad.tensor([1])], {"k": 3}))
    assert moved_model is model and model.weight.device == "cuda"
    assert xt.device == "cuda" and label.device == "cuda" and label.dtype == np.int64
    assert extras == {"k": 3}
    out = model(xt)
    assert out.device == "cuda"
    back = jitgrad.cpu([out, model])
    assert back[0].device == "cpu" and model.bias.device == "cpu"
    assert jitgrad.cpu(x) is x


def test_dataloader_yields_device_tensors_labels_included():
    images = np.arange(12, dtype=np.float32).reshape(6, 2)
    labels = np.arange(6)
    loader = DataLoader((images, labels), batch_size=4, device="cuda", transform=lambda b: b * 2)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 2]
    (xb, yb), _ = batches
    assert xb.device == yb.device == "cuda" and yb.dtype == labels.dtype
    np.testing.assert_array_equal(xb.numpy(), images[:4] * 2)
    np.testing.assert_array_equal(yb.numpy(), labels[:4])
    assert "device='cuda'" in repr(loader)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        DataLoader((images, labels), batch_size=2, device="tpu")
