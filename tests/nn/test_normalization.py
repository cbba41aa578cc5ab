"""Normalisation layers, module buffers, freezing, containers and loss modules."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as F
from jitgrad import nn, optim
from tests.helpers import assert_close, randn


def _bn_model():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 5), nn.BatchNorm1d(5), nn.LayerNorm(5))


# ----------------------------------------------------------------------------- BatchNorm

def test_batchnorm2d_train_updates_running_stats_and_eval_uses_them():
    bn = nn.BatchNorm2d(3, momentum=0.2, dtype=np.float64)
    x = randn((4, 3, 2, 5), seed=1, scale=2.0) + 1.0
    y = bn(jitgrad.tensor(x))
    axes = (0, 2, 3)
    assert_close(y.numpy(), (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5))
    assert_close(bn.running_mean.numpy(), 0.2 * x.mean(axes))
    assert_close(bn.running_var.numpy(), 0.8 + 0.2 * x.var(axes, ddof=1))
    assert int(bn.num_batches_tracked.numpy()) == 1
    bn.eval()
    rm, rv = bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()
    y = bn(jitgrad.tensor(x))
    assert_close(y.numpy(), (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5))
    assert np.array_equal(bn.running_mean.numpy(), rm)  # eval never updates
    assert int(bn.num_batches_tracked.numpy()) == 1


def test_batchnorm_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None, affine=False, dtype=np.float64)
    xs = [randn((5, 2), seed=s) for s in range(3)]
    for x in xs:
        bn(jitgrad.tensor(x))
    assert_close(bn.running_mean.numpy(), np.mean([x.mean(0) for x in xs], axis=0))


def test_batchnorm1d_accepts_n_c_l_and_no_tracking_uses_batch_stats_in_eval():
    bn = nn.BatchNorm1d(3, track_running_stats=False, dtype=np.float64).eval()
    x = randn((2, 3, 4), seed=2)
    y = bn(jitgrad.tensor(x)).numpy()
    assert y.shape == (2, 3, 4)
    assert_close(y, (x - x.mean((0, 2), keepdims=True)) / np.sqrt(x.var((0, 2), keepdims=True) + 1e-5))
    assert list(dict(bn.named_buffers())) == [] and "running_mean" not in bn.state_dict()


def test_batchnorm_layer_gradients_reach_weight_and_bias():
    bn = nn.BatchNorm2d(2, dtype=np.float64)
    bn.weight.data[...] = [1.5, -0.5]
    x = jitgrad.tensor(randn((3, 2, 2, 2), seed=3), requires_grad=True)
    assert jitgrad.gradcheck(lambda t, w, b: F.batch_norm(t, None, None, w, b, training=True), x, bn.weight, bn.bias)
    (bn(x) * jitgrad.tensor(randn((3, 2, 2, 2), seed=4))).sum().backward()
    assert bn.weight.grad is not None and bn.bias.grad is not None and x.grad is not None


def test_batchnorm_errors():
    with pytest.raises(ValueError, match="BatchNorm2d: num_features must be a positive int"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\] or None"):
        nn.BatchNorm2d(3, momentum=2)
    with pytest.raises(TypeError, match=r"BatchNorm2d: momentum must be in \[0, 1\] or None"):
        nn.BatchNorm2d(3, momentum="0.1")
    with pytest.raises(TypeError, match="BatchNorm2d: eps must be a positive number, got True"):
        nn.BatchNorm2d(3, eps=True)
    with pytest.raises(ValueError, match="BatchNorm2d: eps must be a positive number, got 0"):
        nn.BatchNorm2d(3, eps=0)
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\) expected input \(N, C, H, W\), got \(2, 3\)"):
        bn(jitgrad.tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"expected 3 channels \(axis 1\)"):
        bn(jitgrad.tensor(np.zeros((2, 4, 2, 2), np.float32)))
    bn.running_mean = None
    with pytest.raises(RuntimeError, match="running_mean buffer is None"):
        bn.eval()(jitgrad.tensor(np.zeros((2, 3, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(jitgrad.tensor(np.zeros((1, 3), np.float32)))


def test_layer_norm_and_group_norm_layers():
    x = randn((2, 4, 3), seed=5)
    ln = nn.LayerNorm((4, 3), dtype=np.float64)
    ref = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + 1e-5)
    assert_close(ln(jitgrad.tensor(x)).numpy(), ref)
    gn = nn.GroupNorm(1, 4, dtype=np.float64)  # one group over (C, L) is that same layer norm
    assert_close(gn(jitgrad.tensor(x)).numpy(), ref)
    assert repr(ln) == "LayerNorm((4, 3))" and repr(gn) == "GroupNorm(1, 4)"
    with pytest.raises(ValueError, match="GroupNorm: num_groups=3 must divide num_channels=4"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match=r"LayerNorm\(5\) expected input \(\.\.\., 5\), got \(2, 4, 3\)"):
        nn.LayerNorm(5)(jitgrad.tensor(x))


# ----------------------------------------------------------------------------- buffers and state dicts

def test_state_dict_has_pytorch_names_and_order():
    keys = list(_bn_model().state_dict())
    assert keys == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                    "1.num_batches_tracked", "4.weight", "4.bias", "5.weight", "5.bias", "5.running_mean",
                    "5.running_var", "5.num_batches_tracked", "6.weight", "6.bias"]
    sd = _bn_model().state_dict()
    assert sd["1.num_batches_tracked"].dtype == np.int64 and sd["1.num_batches_tracked"].shape == ()


def test_register_buffer_rules():
    m = nn.Module()
    m.register_buffer("stat", np.zeros(2, np.float32))
    m.register_buffer("scratch", np.ones(2, np.float32), persistent=False)
    assert isinstance(m.stat, jitgrad.Tensor) and not m.stat.requires_grad
    assert list(m.state_dict()) == ["stat"] and [n for n, _ in m.named_buffers()] == ["stat", "scratch"]
    m.stat = np.full(2, 3.0, np.float32)  # assignment replaces the buffer's value
    assert m.state_dict()["stat"].tolist() == [3.0, 3.0]
    with pytest.raises(KeyError, match="attribute 'training' already exists"):
        m.register_buffer("training", np.zeros(1))
    with pytest.raises(ValueError, match="without '.'"):
        m.register_buffer("a.b", np.zeros(1))
    with pytest.raises(TypeError, match="buffer 'stat' must be a Tensor, an array or None, got list"):
        m.stat = [1.0, 2.0]


def test_load_state_dict_round_trip_and_buffers_move_with_dtype():
    a, b = _bn_model(), _bn_model()
    a(jitgrad.tensor(randn((4, 2, 4, 4), np.float32, seed=6)))  # training step: running stats change
    b.load_state_dict(a.state_dict())
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert np.array_equal(va, vb), k
    b.to(dtype=np.float64)
    assert b[1].running_mean.dtype == np.float64 and b[1].num_batches_tracked.dtype == np.int64


def test_load_state_dict_checks_everything_before_writing_anything():
    model = _bn_model()
    before = model.state_dict()
    good = {k: np.full_like(v, 7) for k, v in before.items()}
    missing = dict(good)
    del missing["1.running_var"]
    with pytest.raises(KeyError, match=r"missing keys \['1.running_var'\]"):
        model.load_state_dict(missing)
    bad = dict(good)
    bad["5.running_mean"] = np.array(["a"] * 5)  # converts last: earlier entries must stay untouched
    with pytest.raises(ValueError, match="5.running_mean has dtype <U1, expected a numeric array"):
        model.load_state_dict(bad)
    bad["5.running_mean"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"shape mismatch for 5.running_mean: checkpoint \(4,\), model \(5,\)"):
        model.load_state_dict(bad)
    for key, value in model.state_dict().items():
        assert np.array_equal(value, before[key]), key


def test_checkpoint_file_round_trip_includes_buffers(tmp_path):
    model = _bn_model()
    model(jitgrad.tensor(randn((4, 2, 4, 4), np.float32, seed=7)))
    jitgrad.save(model.state_dict(), tmp_path / "m.safetensors")
    other = _bn_model()
    other.load_state_dict(jitgrad.load(tmp_path / "m.safetensors"))
    assert int(other[1].num_batches_tracked.numpy()) == 1
    assert np.array_equal(other[5].running_var.numpy(), model[5].running_var.numpy())


def test_model_checkpoint_callback_saves_buffers(tmp_path):
    from jitgrad.nn.training import History, ModelCheckpoint, TrainingState

    model = _bn_model()
    model(jitgrad.tensor(randn((4, 2, 4, 4), np.float32, seed=8)))
    cb = ModelCheckpoint(tmp_path / "ckpt.safetensors", monitor="loss", save_best_only=False)
    cb.on_train_begin(TrainingState(model, None, History(), 1))
    cb.on_epoch_end(TrainingState(model, None, History(), 1), {"loss": 1.0})
    assert "1.running_mean" in jitgrad.load(tmp_path / "ckpt.safetensors")


# ----------------------------------------------------------------------------- freezing, containers, losses

def test_requires_grad_false_freezes_and_optimizer_skips_frozen():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert model[0].requires_grad_(False) is model[0]
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    opt = optim.SGD(model.parameters(), lr=0.1)  # frozen ones are accepted, not refused
    frozen = model[0].weight.numpy().copy()
    model[0].weight.grad = jitgrad.tensor(np.ones((4, 3), np.float32))  # a stale gradient is not applied
    head = model[1].weight.numpy().copy()
    model(jitgrad.tensor(randn((5, 3), np.float32))).sum().backward()
    opt.step()
    assert np.array_equal(model[0].weight.numpy(), frozen)
    assert not np.array_equal(model[1].weight.numpy(), head)
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        model.requires_grad_(0)


def test_module_list_and_dict_register_their_modules():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
            self.heads = nn.ModuleDict({"a": nn.Linear(2, 1)})

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.heads["a"](x)

    net = Net()
    assert list(net.state_dict()) == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
                                      "heads.a.weight", "heads.a.bias"]
    assert net(jitgrad.tensor(np.ones((3, 2), np.float32))).shape == (3, 1)
    net.blocks.append(nn.Linear(2, 2))
    assert len(net.blocks) == 3 and isinstance(net.blocks[-1], nn.Linear) and len(net.blocks[1:]) == 2
    assert "a" in net.heads and net.heads.keys() == ["a"]
    with pytest.raises(TypeError, match="ModuleList.append: module must be a Module, got int"):
        net.blocks.append(3)
    with pytest.raises(KeyError, match="ModuleDict has no key 'b'"):
        net.heads["b"]
    with pytest.raises(IndexError, match="ModuleList index 5 out of range for 3 modules"):
        net.blocks[5]


def test_loss_modules_match_functional():
    logits = jitgrad.tensor(randn((4, 3), np.float32))
    labels = np.array([0, 2, 1, 2])
    assert_close(nn.CrossEntropyLoss(label_smoothing=0.1)(logits, labels).numpy(),
                 F.cross_entropy(logits, labels, label_smoothing=0.1).numpy())
    target = randn((4, 3), np.float32, seed=1)
    assert_close(nn.MSELoss(reduction="sum")(logits, target).numpy(), ((logits.numpy() - target) ** 2).sum())
    prob = (target > 0).astype(np.float32)
    assert_close(nn.BCEWithLogitsLoss()(logits, prob).numpy(),
                 F.binary_cross_entropy_with_logits(logits, prob).numpy())
    with pytest.raises(ValueError, match="MSELoss: reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        nn.MSELoss(reduction="avg")
