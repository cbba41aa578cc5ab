"""A PyTorch state_dict with BatchNorm/LayerNorm/GroupNorm loads by name; logits, gradients and running stats match.

Runs only where PyTorch is importable (it is never a dependency).
"""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad
from jitgrad import nn, optim
from tests.helpers import assert_close, randn

torch = pytest.importorskip("torch")


def _jitgrad_model():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, dtype=np.float64), nn.BatchNorm2d(4, momentum=0.3, dtype=np.float64), nn.ReLU(),
        nn.Conv2d(4, 4, 3, dtype=np.float64), nn.GroupNorm(2, 4, dtype=np.float64), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 3 * 3, 6, dtype=np.float64), nn.BatchNorm1d(6, dtype=np.float64),
        nn.LayerNorm(6, dtype=np.float64), nn.Linear(6, 3, dtype=np.float64),
    )


def _torch_model():
    tnn = torch.nn
    torch.manual_seed(0)
    model = tnn.Sequential(
        tnn.Conv2d(2, 4, 3, padding=1), tnn.BatchNorm2d(4, momentum=0.3), tnn.ReLU(),
        tnn.Conv2d(4, 4, 3), tnn.GroupNorm(2, 4), tnn.ReLU(), tnn.Flatten(),
        tnn.Linear(4 * 3 * 3, 6), tnn.BatchNorm1d(6), tnn.LayerNorm(6), tnn.Linear(6, 3),
    ).double()
    with torch.no_grad():  # non-trivial affine parameters, so a mix-up of weight and bias would show
        for module in model:
            if isinstance(module, (tnn.BatchNorm2d, tnn.BatchNorm1d, tnn.GroupNorm, tnn.LayerNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model


def _step(jg_model, jg_opt, t_model, t_opt, x, labels):
    """One training step on both; returns (jitgrad logits, torch logits)."""
    xt = torch.tensor(x, requires_grad=True)
    t_logits = t_model(xt)
    torch.nn.functional.cross_entropy(t_logits, torch.tensor(labels)).backward()
    xj = jitgrad.tensor(x, requires_grad=True)
    j_logits = jg_model(xj)
    nn.functional.cross_entropy(j_logits, labels).backward()
    assert_close(xj.grad.numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    t_params = dict(t_model.named_parameters())
    for name, p in jg_model.named_parameters():
        assert_close(p.grad.numpy(), t_params[name].grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
    if jg_opt is not None:
        jg_opt.step()
        jg_opt.zero_grad()
        t_opt.step()
        t_opt.zero_grad()
    return j_logits.numpy(), t_logits.detach().numpy()


def test_pytorch_state_dict_loads_and_train_eval_match():
    t_model = _torch_model()
    jg_model = _jitgrad_model()
    state = {k: v.detach().numpy() for k, v in t_model.state_dict().items()}
    assert list(state) == list(jg_model.state_dict())  # same names, same order
    jg_model.load_state_dict(state)
    jg_opt = optim.SGD(jg_model.parameters(), lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.1, momentum=0.9)
    labels = np.array([0, 2, 1, 1, 0])
    for seed in range(3):  # train mode: batch statistics, running statistics updated, parameters stepped
        x = randn((5, 2, 5, 5), seed=seed, scale=2.0) + 0.5
        j_logits, t_logits = _step(jg_model, jg_opt, t_model, t_opt, x, labels)
        assert_close(j_logits, t_logits, rtol=1e-8, atol=1e-10)
    for key, value in t_model.state_dict().items():  # running stats and num_batches_tracked included
        assert_close(jg_model.state_dict()[key], value.detach().numpy(), rtol=1e-8, atol=1e-10, err_msg=key)
    jg_model.eval()
    t_model.eval()
    x = randn((4, 2, 5, 5), seed=9)
    j_logits, t_logits = _step(jg_model, None, t_model, None, x, labels[:4])
    assert_close(j_logits, t_logits, rtol=1e-8, atol=1e-10)
    assert int(jg_model[1].num_batches_tracked.numpy()) == 3


def test_jitgrad_state_dict_loads_into_pytorch():
    jg_model = _jitgrad_model()
    jg_model(jitgrad.tensor(randn((3, 2, 5, 5), seed=1)))  # a training forward: running stats move
    t_model = _torch_model()
    t_model.load_state_dict({k: torch.tensor(v) for k, v in jg_model.state_dict().items()})
    jg_model.eval()
    t_model.eval()
    x = randn((2, 2, 5, 5), seed=2)
    assert_close(jg_model(jitgrad.tensor(x)).numpy(), t_model(torch.tensor(x)).detach().numpy(), rtol=1e-8,
                 atol=1e-10)
