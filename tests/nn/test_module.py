"""Module bookkeeping: registration, names, state dicts, modes, repr."""

from __future__ import annotations

import numpy as np
import pytest

from jitgrad import config
from jitgrad import nn
from jitgrad.autograd.tensor import Tensor


def lenet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(3))
        self.body = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3, bias=False))
        self.not_a_param = np.zeros(3)

    def forward(self, x):
        return self.body(x) * self.scale


def test_named_parameters_follow_pytorch_naming():
    names = [name for name, _ in lenet().named_parameters()]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
                     "9.weight", "9.bias", "11.weight", "11.bias"]
    assert [name for name, _ in Block().named_parameters()] == ["scale", "body.0.weight", "body.0.bias",
                                                                 "body.2.weight"]


def test_parameters_are_tensors_requiring_grad_in_default_dtype():
    params = list(lenet().parameters())
    assert len(params) == 10
    assert all(isinstance(p, nn.Parameter) and isinstance(p, Tensor) for p in params)
    assert all(p.requires_grad and p.dtype == config.default_dtype for p in params)
    assert lenet().num_parameters() == 44426


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3  # Sequential, Linear, ReLU


def test_children_and_modules():
    block = Block()
    assert [type(c).__name__ for c in block.children()] == ["Sequential"]
    assert [n for n, _ in block.named_modules()] == ["", "body", "body.0", "body.1", "body.2"]


def test_reassigning_and_deleting_attributes_updates_registry():
    block = Block()
    block.body = nn.Linear(3, 3)
    assert [n for n, _ in block.named_parameters()] == ["scale", "body.weight", "body.bias"]
    block.body.bias = None
    assert [n for n, _ in block.named_parameters()] == ["scale", "body.weight"]
    del block.scale
    assert [n for n, _ in block.named_parameters()] == ["body.weight"]
    with pytest.raises(TypeError, match="Linear: cannot assign a ndarray to parameter 'weight'; wrap it in nn.Parameter"):
        block.body.weight = np.zeros((3, 3))


def test_forgetting_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match=r"Broken: call super\(\).__init__\(\) before assigning attribute 'w'"):
        Broken()


def test_state_dict_is_a_copy_by_name():
    model = lenet()
    state = model.state_dict()
    assert list(state) == [n for n, _ in model.named_parameters()]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["0.weight"][...] = 0
    assert model[0].weight.numpy().any()


def test_load_state_dict_copies_in_place_keeping_identity():
    a, b = lenet(), lenet()
    weight = b[0].weight
    b.load_state_dict(a.state_dict())
    assert b[0].weight is weight
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_load_state_dict_errors_list_keys_and_shapes_and_leave_model_untouched():
    model = lenet()
    before = model.state_dict()
    state = model.state_dict()
    del state["0.bias"]
    state["extra.weight"] = np.zeros(2)
    with pytest.raises(KeyError, match=r"Sequential.load_state_dict: missing keys \['0.bias'\]; "
                                       r"unexpected keys \['extra.weight'\]"):
        model.load_state_dict(state)
    bad = {k: np.zeros_like(v) for k, v in before.items()}
    bad["7.weight"] = np.zeros((120, 300))
    bad["9.bias"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"shape mismatch for 7.weight: checkpoint \(120, 300\), model \(120, 256\); "
                                         r"9.bias: checkpoint \(3,\), model \(84,\)"):
        model.load_state_dict(bad)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_non_strict_reports_missing_and_unexpected():
    model = nn.Linear(2, 3)
    missing, unexpected = model.load_state_dict({"weight": np.ones((3, 2)), "junk": np.ones(1)}, strict=False)
    assert missing == ["bias"] and unexpected == ["junk"]
    np.testing.assert_array_equal(model.weight.numpy(), np.ones((3, 2), np.float32))


def test_train_eval_propagate():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    assert model.training and model[1][0].training
    assert model.eval() is model
    assert not model.training and not model[1][0].training
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(TypeError, match="Sequential.train: mode must be a bool, got str"):
        model.train("no")


def test_zero_grad_sets_none():
    model = nn.Linear(2, 2)
    for p in model.parameters():
        p.grad = Tensor(np.ones(p.shape, p.dtype))
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_cpu_is_noop_and_dtype_cast_keeps_identity():
    model = nn.Linear(2, 3)
    weight = model.weight
    data = weight.data
    assert model.to("cpu") is model and model.weight.data is data
    model.to(dtype=np.float64)
    assert model.weight is weight and weight.dtype == np.float64 and model.bias.dtype == np.float64
    np.testing.assert_array_equal(weight.numpy(), data.astype(np.float64))
    with pytest.raises(TypeError, match="Linear.to: dtype must be float32 or float64, got int32"):
        model.to(dtype=np.int32)


def test_repr_is_flux_style():
    assert repr(lenet()) == (
        "Sequential(\n"
        "  Conv2d(1 => 6, 5×5),\n"
        "  ReLU(),\n"
        "  MaxPool2d(2×2),\n"
        "  Conv2d(6 => 16, 5×5),\n"
        "  ReLU(),\n"
        "  MaxPool2d(2×2),\n"
        "  Flatten(),\n"
        "  Linear(256 => 120),\n"
        "  ReLU(),\n"
        "  Linear(120 => 84),\n"
        "  ReLU(),\n"
        "  Linear(84 => 10),\n"
        ")")
    nested = nn.Chain(nn.Dense(2, 3, bias=False), nn.Chain(nn.Dropout(0.25), nn.GELU(approximate="tanh")))
    assert repr(nested) == ("Sequential(\n  Linear(2 => 3, bias=False),\n  Sequential(\n    Dropout(0.25),\n"
                            '    GELU(approximate="tanh"),\n  ),\n)')
    assert repr(nn.Conv2d(3, 8, (3, 5), stride=2, padding=(1, 2), dilation=2)) == \
        "Conv2d(3 => 8, 3×5, stride=2, padding=(1, 2), dilation=2)"
    assert repr(nn.MaxPool2d(3, stride=2, padding=1)) == "MaxPool2d(3×3, stride=2, padding=1)"
    assert repr(nn.AvgPool2d(2)) == "AvgPool2d(2×2)"
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(0.2)"
    assert repr(nn.Softmax()) == "Softmax(dim=-1)" and repr(nn.LogSoftmax(1)) == "LogSoftmax(dim=1)"
    assert repr(nn.Flatten(2)) == "Flatten(start_dim=2)"


def test_sequential_indexing_slicing_len_iter():
    model = lenet()
    assert len(model) == 12
    assert isinstance(model[0], nn.Conv2d) and model[-1] is list(model)[-1]
    head = model[7:]
    assert isinstance(head, nn.Sequential) and len(head) == 5 and head[0] is model[7]
    assert [n for n, _ in head.named_parameters()][:2] == ["0.weight", "0.bias"]
    with pytest.raises(IndexError, match="Sequential index 12 out of range for 12 layers"):
        model[12]
    with pytest.raises(TypeError, match="Sequential indices must be ints or slices, got str"):
        model["0"]
    with pytest.raises(TypeError, match="Sequential: layer 1 must be a Module, got function"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    assert nn.Chain is nn.Sequential and nn.Dense is nn.Linear


def test_sequential_from_dict_uses_names():
    model = nn.Sequential({"hidden": nn.Linear(2, 3), "act": nn.ReLU()})
    assert [n for n, _ in model.named_parameters()] == ["hidden.weight", "hidden.bias"]
    assert model.hidden is model[0]


def test_default_init_bounds_like_pytorch():
    nn.manual_seed(0)
    layer = nn.Linear(400, 50)
    bound = 1 / np.sqrt(400)
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).max() > 0.99 * bound
    conv = nn.Conv2d(3, 4, 3)
    assert np.abs(conv.weight.numpy()).max() <= 1 / np.sqrt(27)


def test_manual_seed_makes_models_identical():
    nn.manual_seed(42)
    a = lenet().state_dict()
    nn.manual_seed(42)
    b = lenet().state_dict()
    c = lenet().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], c["0.weight"])


@pytest.mark.parametrize("make, error, message", [
    (lambda: nn.Linear(0, 3), ValueError, "Linear: in_features must be a positive int, got 0"),
    (lambda: nn.Linear(2, 3, dtype=np.int64), TypeError, "Linear: dtype must be float32 or float64, got int64"),
    (lambda: nn.Conv2d(1, 2, (3, 0)), ValueError, r"Conv2d: kernel_size must be >= 1, got \(3, 0\)"),
    (lambda: nn.Conv2d(1, 2, 3, padding=-1), ValueError, "Conv2d: padding must be >= 0, got -1"),
    # One exception type per kind of mistake, as in the kernels: a wrong type is a TypeError...
    (lambda: nn.Conv2d(1, 2, 3, stride=1.5), TypeError, "Conv2d: stride must be an int or a pair of ints, got 1.5"),
    (lambda: nn.Linear(2.0, 3), TypeError, "Linear: in_features must be a positive int, got 2.0"),
    # ... and a value of the right type that does not fit is a ValueError (a pair of three).
    (lambda: nn.Conv2d(1, 2, (3, 3, 3)), ValueError, r"Conv2d: kernel_size must be an int or a pair of ints, got \(3, 3, 3\) \(3 values\)"),
    (lambda: nn.MaxPool2d(2, padding=2), ValueError, "MaxPool2d: padding must be at most half the kernel size, got padding=2 for kernel_size=2"),
    (lambda: nn.Dropout(1.0), ValueError, r"Dropout: p must be in \[0, 1\), got 1.0"),
    (lambda: nn.Dropout(True), TypeError, r"Dropout: p must be in \[0, 1\), got True"),
    (lambda: nn.GELU("fast"), ValueError, "GELU: approximate must be 'none' or 'tanh', got 'fast'"),
    (lambda: nn.Flatten(-1), ValueError, "Flatten: start_dim must be an int >= 0, got -1"),
    (lambda: nn.Flatten(1.0), TypeError, "Flatten: start_dim must be an int >= 0, got 1.0"),
])
def test_bad_constructor_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()
