"""PyTorch weights for grouped, depthwise and transposed convolutions and adaptive pooling load by
name, and logits and gradients match PyTorch's (uses PyTorch when installed; never a dependency)."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import nn

torch = pytest.importorskip("torch")


def jitgrad_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),                       # depthwise
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4),            # grouped
        nn.SkipConnection(nn.Sequential(nn.ReLU(), nn.Conv2d(16, 16, 1)), "+"),
        nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1, groups=2),
        nn.Tanh(),
        nn.AdaptiveMaxPool2d((5, 4)),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


class TorchSkip(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x) + x


def torch_model():
    tn = torch.nn
    return tn.Sequential(
        tn.Conv2d(3, 8, 3, padding=1), tn.ReLU(),
        tn.Conv2d(8, 8, 3, padding=1, groups=8),
        tn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4),
        TorchSkip(tn.Sequential(tn.ReLU(), tn.Conv2d(16, 16, 1))),
        tn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1, groups=2),
        tn.Tanh(),
        tn.AdaptiveMaxPool2d((5, 4)),
        tn.AdaptiveAvgPool2d(2),
        tn.Flatten(),
        tn.Linear(32, 10),
    )


@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-9, 1e-11), (np.float32, 2e-4, 2e-5)])
def test_weights_load_by_name_and_logits_and_gradients_match(dtype, rtol, atol):
    torch.manual_seed(0)
    reference = torch_model().to(torch.float64 if dtype == np.float64 else torch.float32)
    state = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    model = jitgrad_model().to(dtype=dtype)
    model.load_state_dict(state)
    assert set(model.state_dict()) == set(state)

    x = np.random.default_rng(1).standard_normal((2, 3, 13, 11)).astype(dtype)
    labels = np.array([3, 7])
    tx = torch.tensor(x, requires_grad=True)
    t_logits = reference(tx)
    torch.nn.functional.cross_entropy(t_logits, torch.tensor(labels)).backward()

    jx = jg.tensor(x, requires_grad=True)
    logits = model(jx)
    nn.functional.cross_entropy(logits, labels).backward()

    np.testing.assert_allclose(logits.numpy(), t_logits.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(jx.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol)
    t_params = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=name)
