"""Optimizers against NumPy simulations of PyTorch's formulas; schedules against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jitgrad.autograd.tensor import Tensor
from jitgrad.nn.module import Parameter
from jitgrad.optim import (SGD, Adam, AdamW, CosineAnnealingLR, OneCycleLR, ReduceLROnPlateau, StepLR)
from tests.helpers import assert_close


def _params(dtype=np.float64, shapes=((3, 4), (4,)), seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


def _grads(params, step, seed=1):
    rng = np.random.default_rng(seed + step)
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def _run(opt_factory, simulate, dtype, steps=5):
    params = _params(dtype)
    expected = [p.numpy().astype(np.float64) for p in params]
    opt = opt_factory(params)
    sim_state = [dict() for _ in params]
    for t in range(1, steps + 1):
        grads = _grads(params, t)
        for p, g in zip(params, grads):
            p.grad = Tensor(g)
        opt.step()
        for i, g in enumerate(grads):
            expected[i] = simulate(expected[i], g.astype(np.float64), sim_state[i], t)
    for p, e in zip(params, expected):
        assert p.dtype == dtype
        assert_close(p.numpy(), e.astype(dtype), dtype, rtol=1e-10 if dtype == np.float64 else 1e-5)


def _sgd_sim(lr, momentum=0.0, nesterov=False, wd=0.0):
    def simulate(p, g, state, t):
        g = g + wd * p
        if momentum:
            # PyTorch: the first buffer is the gradient itself.
            state["buf"] = g.copy() if t == 1 else momentum * state["buf"] + g
            g = g + momentum * state["buf"] if nesterov else state["buf"]
        return p - lr * g
    return simulate


def _adam_sim(lr, b1, b2, eps, wd, decoupled):
    def simulate(p, g, state, t):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        state["m"] = b1 * state.get("m", 0) + (1 - b1) * g
        state["v"] = b2 * state.get("v", 0) + (1 - b2) * g * g
        step_size = lr / (1 - b1 ** t)
        denom = np.sqrt(state["v"]) / math.sqrt(1 - b2 ** t) + eps
        return p - step_size * state["m"] / denom
    return simulate


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum, nesterov, wd", [(0.0, False, 0.0), (0.9, False, 1e-2), (0.9, True, 0.0)])
def test_sgd_matches_pytorch_formulas(dtype, momentum, nesterov, wd):
    _run(lambda ps: SGD(ps, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd),
         _sgd_sim(0.1, momentum, nesterov, wd), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, wd", [(Adam, 0.0), (Adam, 0.1), (AdamW, 0.1)])
def test_adam_and_adamw_match_pytorch_formulas(dtype, cls, wd):
    _run(lambda ps: cls(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=wd),
         _adam_sim(0.01, 0.8, 0.99, 1e-6, wd, cls is AdamW), dtype)


def test_adamw_default_weight_decay():
    assert AdamW(_params()).param_groups[0]["weight_decay"] == 1e-2
    assert Adam(_params()).param_groups[0]["weight_decay"] == 0.0


def test_parameters_without_grad_are_skipped_and_state_allocated_once():
    params = _params()
    opt = Adam(params, lr=0.1)
    before = params[1].numpy().copy()
    params[0].grad = Tensor(np.ones(params[0].shape))
    opt.step()
    np.testing.assert_array_equal(params[1].numpy(), before)
    assert list(opt.state) == [0]
    buffer = opt.state[0]["exp_avg"]
    opt.step()
    assert opt.state[0]["exp_avg"] is buffer and opt.state[0]["step"] == 2


def test_zero_grad_sets_none():
    params = _params()
    for p in params:
        p.grad = Tensor(np.ones(p.shape))
    SGD(params, lr=0.1).zero_grad()
    assert all(p.grad is None for p in params)


def test_param_groups_use_their_own_hyperparameters():
    a, b = _params()
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a0, b0 = a.numpy().copy(), b.numpy().copy()
    a.grad, b.grad = Tensor(np.ones(a.shape)), Tensor(np.ones(b.shape))
    opt.step()
    assert_close(a.numpy(), a0 - 0.1)
    assert_close(b.numpy(), b0 - 0.5)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_state_dict_round_trips_bit_identically(cls, tmp_path):
    from jitgrad.serialization import load, save

    def train(params, opt, start, steps):
        for t in range(start, start + steps):
            for p, g in zip(params, _grads(params, t)):
                p.grad = Tensor(g)
            opt.step()

    kwargs = {"lr": 0.05, "momentum": 0.9} if cls is SGD else {"lr": 0.05}
    params = _params(np.float32)
    opt = cls(params, **kwargs)
    train(params, opt, 0, 3)
    save(opt.state_dict(), tmp_path / "opt.safetensors")
    snapshot = [p.numpy().copy() for p in params]
    train(params, opt, 3, 4)

    fresh = [Parameter(s) for s in snapshot]
    opt2 = cls(fresh, lr=123.0, **({"momentum": 0.5} if cls is SGD else {}))
    opt2.load_state_dict(load(tmp_path / "opt.safetensors"))
    assert opt2.param_groups[0]["lr"] == 0.05
    train(fresh, opt2, 3, 4)
    for p, q in zip(params, fresh):
        assert p.numpy().tobytes() == q.numpy().tobytes()


def test_load_state_dict_errors_leave_optimizer_untouched():
    opt = Adam(_params(), lr=0.1)
    for p in opt.param_groups[0]["params"]:
        p.grad = Tensor(np.ones(p.shape))
    opt.step()
    good = opt.state_dict()
    bad = {"state": {0: {**good["state"][0], "exp_avg": np.zeros((2, 2))}}, "param_groups": good["param_groups"]}
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: state 0.exp_avg has shape \(2, 2\), parameter has \(3, 4\)"):
        opt.load_state_dict(bad)
    assert opt.state[0]["step"] == 1
    with pytest.raises(ValueError, match=r"saved state has 2 parameter group\(s\), this optimizer has 1"):
        opt.load_state_dict({"state": {}, "param_groups": good["param_groups"] * 2})
    other = Adam(_params(shapes=((2,),)), lr=0.1)
    with pytest.raises(ValueError, match=r"group 0 has 2 saved parameter\(s\), this optimizer has 1"):
        other.load_state_dict(good)


@pytest.mark.parametrize("make, error, message", [
    (lambda ps: SGD(ps, lr=-1), ValueError, r"SGD: lr must be a number >= 0.0, got -1"),
    (lambda ps: SGD(ps, lr="fast"), TypeError, r"SGD: lr must be a number >= 0.0, got 'fast'"),
    (lambda ps: SGD(ps, lr=True), TypeError, r"SGD: lr must be a number >= 0.0, got True"),
    (lambda ps: SGD(ps, lr=0.1, momentum=-0.5), ValueError, r"SGD: momentum must be a number >= 0.0, got -0.5"),
    (lambda ps: SGD(ps, lr=0.1, nesterov=True), ValueError, r"SGD: nesterov=True needs momentum > 0"),
    (lambda ps: Adam(ps, betas=(0.9, 1.0)), ValueError, r"Adam: betas\[1\] must be a number in \[0.0, 1.0\), got 1.0"),
    (lambda ps: Adam(ps, betas=0.9), ValueError, r"Adam: betas must be a pair \(beta1, beta2\), got 0.9"),
    (lambda ps: AdamW(ps, eps=-1e-8), ValueError, r"AdamW: eps must be a number >= 0.0, got -1e-08"),
    (lambda ps: Adam(ps, weight_decay=-1), ValueError, r"Adam: weight_decay must be a number >= 0.0, got -1"),
    (lambda ps: Adam([]), ValueError, r"Adam: got an empty parameter list"),
    (lambda ps: Adam([np.zeros(2)]), TypeError, r"Adam: parameters must be Tensors, got ndarray"),
    (lambda ps: Adam(ps[0]), TypeError, r"Adam: params must be an iterable of Tensors or of dicts, got a single Parameter"),
    (lambda ps: Adam([ps[0], ps[0]]), ValueError, r"Adam: a parameter appears more than once"),
    (lambda ps: Adam([{"params": ps, "momentum": 0.9}]), ValueError, r"Adam: unknown hyper-parameter\(s\) \['momentum'\]"),
])
def test_bad_hyperparameters(make, error, message):
    with pytest.raises(error, match=message):
        make(_params())


# ---------------------------------------------------------------- schedules
def _lrs(scheduler, steps):
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return lrs


def test_step_lr_closed_form():
    opt = SGD(_params(), lr=1.0)
    lrs = _lrs(StepLR(opt, step_size=3, gamma=0.5), 9)
    assert lrs == [0.5 ** (t // 3) for t in range(10)]
    assert opt.param_groups[0]["lr"] == lrs[-1]


def test_cosine_annealing_closed_form():
    opt = SGD(_params(), lr=0.1)
    lrs = _lrs(CosineAnnealingLR(opt, T_max=10, eta_min=0.001), 10)
    expected = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(11)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-14)
    assert lrs[-1] == pytest.approx(0.001)


def test_one_cycle_lr_and_momentum_closed_form():
    opt = SGD(_params(), lr=0.1, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3, div_factor=10, final_div_factor=100)
    lrs, moms = [opt.param_groups[0]["lr"]], [opt.param_groups[0]["momentum"]]
    for _ in range(9):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])

    def cos(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    warm = 0.3 * 10 - 1
    expected = [cos(0.1, 1.0, t / warm) if t <= warm else cos(1.0, 1e-3, (t - warm) / (9 - warm)) for t in range(10)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-14)
    assert lrs[0] == pytest.approx(0.1) and lrs[2] == pytest.approx(1.0) and lrs[-1] == pytest.approx(1e-3)
    assert moms[0] == pytest.approx(0.95) and moms[2] == pytest.approx(0.85) and moms[-1] == pytest.approx(0.95)
    sched.step()  # PyTorch allows total_steps steps after construction
    with pytest.raises(ValueError, match="OneCycleLR: stepped 11 times, more than total_steps=10"):
        sched.step()


def test_one_cycle_cycles_adam_beta1():
    opt = Adam(_params(), lr=0.1)
    OneCycleLR(opt, max_lr=0.1, total_steps=5)
    assert opt.param_groups[0]["betas"] == (0.95, 0.999)


def test_reduce_lr_on_plateau():
    opt = SGD(_params(), lr=1.0)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    lrs = []
    for metric in [5, 4, 4, 4, 4, 4, 4, 4, 4, 4]:
        sched.step(metric)
        lrs.append(sched.get_last_lr()[0])
    # 3 bad epochs (> patience 2) -> cut; cooldown 1 resets the count once.
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    for _ in range(10):
        sched.step(4)
    assert sched.get_last_lr() == [0.2]  # floored at min_lr


def test_schedule_bad_arguments():
    opt = SGD(_params(), lr=0.1)
    with pytest.raises(ValueError, match="StepLR: step_size must be a positive int, got 0"):
        StepLR(opt, step_size=0)
    with pytest.raises(TypeError, match="CosineAnnealingLR: T_max must be a positive int, got 2.5"):
        CosineAnnealingLR(opt, T_max=2.5)
    with pytest.raises(ValueError, match="OneCycleLR: give total_steps, or both epochs and steps_per_epoch"):
        OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="ReduceLROnPlateau: factor must be in \\(0, 1\\), got 1.5"):
        ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(TypeError, match="ReduceLROnPlateau: patience must be an int >= 0, got 1.5"):
        ReduceLROnPlateau(opt, patience=1.5)
    with pytest.raises(TypeError, match="StepLR: step_size must be a positive int, got True"):
        StepLR(opt, step_size=True)
    with pytest.raises(ValueError, match="StepLR: gamma must be > 0, got 0"):
        StepLR(opt, step_size=1, gamma=0)
    with pytest.raises(TypeError, match="ReduceLROnPlateau: factor must be in \\(0, 1\\), got '0.5'"):
        ReduceLROnPlateau(opt, factor="0.5")
    with pytest.raises(ValueError, match="OneCycleLR: pct_start must be in \\(0, 1\\), got 1.0"):
        OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=1.0)
    with pytest.raises(TypeError, match="StepLR: expected an Optimizer, got list"):
        StepLR([], step_size=1)
