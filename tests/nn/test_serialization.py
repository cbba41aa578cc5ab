"""Checkpoints: safetensors round trips, atomic writes, corrupt files rejected."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from jitgrad import serialization
from jitgrad.serialization import load, save


def _state():
    rng = np.random.default_rng(0)
    return {
        "0.weight": rng.standard_normal((3, 4)).astype(np.float32),
        "0.bias": rng.standard_normal(3).astype(np.float32),
        "2.weight": rng.standard_normal((2, 1, 3, 3)),
        "scalar": np.array(1.5),
        "labels": np.arange(5, dtype=np.int64),
    }


def test_flat_state_dict_round_trips_bit_identically(tmp_path):
    state = _state()
    save(state, tmp_path / "m.safetensors")
    loaded = load(tmp_path / "m.safetensors")
    assert list(loaded) == list(state)
    for key in state:
        assert loaded[key].dtype == state[key].dtype and loaded[key].shape == state[key].shape
        assert loaded[key].tobytes() == state[key].tobytes()
        assert loaded[key].flags.writeable and loaded[key].flags.c_contiguous


def test_nested_optimizer_like_state_round_trips(tmp_path):
    state = {
        "state": {0: {"step": 3, "exp_avg": np.ones(2, np.float32), "exp_avg_sq": np.full(2, 0.5, np.float32)},
                  1: {"step": 3, "exp_avg": np.zeros((2, 2)), "exp_avg_sq": np.zeros((2, 2))}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                          "amsgrad": False, "name": None, "params": [0, 1]}],
    }
    save(state, tmp_path / "o.safetensors")
    loaded = load(tmp_path / "o.safetensors")
    assert set(loaded["state"]) == {0, 1}  # int keys survive JSON
    assert loaded["param_groups"] == state["param_groups"]  # tuple stays a tuple
    assert isinstance(loaded["param_groups"][0]["betas"], tuple)
    for i in (0, 1):
        assert loaded["state"][i]["step"] == 3
        for k in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(loaded["state"][i][k], state["state"][i][k])
            assert loaded["state"][i][k].dtype == state["state"][i][k].dtype


def test_file_is_plain_safetensors_with_metadata(tmp_path):
    import jitgrad
    from safetensors import safe_open

    save(_state(), tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), framework="np") as f:
        assert set(f.keys()) == set(_state())
        meta = f.metadata()
    assert meta["format"] == "jitgrad"
    assert meta["jitgrad_version"] == jitgrad.__version__
    assert meta["dtype"] == "float32,float64,int64"


def test_foreign_safetensors_file_loads_flat(tmp_path):
    from safetensors.numpy import save_file

    save_file({"a": np.arange(3.0)}, str(tmp_path / "f.safetensors"))
    loaded = load(tmp_path / "f.safetensors")
    assert list(loaded) == ["a"]
    np.testing.assert_array_equal(loaded["a"], np.arange(3.0))


def test_interrupted_write_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"w": np.zeros(4)}, path)
    before = path.read_bytes()

    def half_write_then_fail(file, data):
        file.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(serialization, "_write_bytes", half_write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save({"w": np.ones(1000)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_overwrite_replaces_file(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save({"w": np.zeros(4)}, path)
    save({"w": np.ones(2)}, path)
    np.testing.assert_array_equal(load(path)["w"], np.ones(2))
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


@pytest.mark.parametrize("cut", [3, 8, 20, -1])
def test_truncated_file_is_rejected_naming_the_file(tmp_path, cut):
    path = tmp_path / "t.safetensors"
    save(_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=r"t\.safetensors.*(truncated|not a safetensors)"):
        load(path)


def test_non_safetensors_file_is_rejected(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"\x80\x04\x95 this is a pickle, not a checkpoint")
    with pytest.raises(ValueError, match=r"x\.pt is not a safetensors file"):
        load(path)


def test_corrupt_header_is_rejected(tmp_path):
    path = tmp_path / "c.safetensors"
    header = b"{not json}"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ValueError, match=r"c\.safetensors is not a safetensors file \(header is not JSON"):
        load(path)


def test_corrupt_offsets_are_rejected(tmp_path):
    path = tmp_path / "o.safetensors"
    header = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(ValueError, match=r"o\.safetensors is corrupt or not a safetensors file"):
        load(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.safetensors")


def test_save_rejects_non_dict_and_unstorable_values(tmp_path):
    with pytest.raises(TypeError, match="save: expected a dict \\(a state_dict\\), got list"):
        save([np.zeros(2)], tmp_path / "a")
    with pytest.raises(TypeError, match="save: cannot store a object at 'x'"):
        save({"x": object()}, tmp_path / "a")
    with pytest.raises(ValueError, match="two entries map to the tensor name 'a.b'"):
        save({"a.b": np.zeros(1), "a": {"b": np.zeros(1)}}, tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_save_never_pickles(tmp_path, monkeypatch):
    import pickle

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "dumps", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    save({"state": {0: {"buf": np.zeros(2)}}}, tmp_path / "p")
    assert load(tmp_path / "p")["state"][0]["buf"].shape == (2,)


def test_training_checkpoint_with_generator_state_and_infinities(tmp_path):
    rng = np.random.default_rng(5)
    ckpt = {
        "epoch": 3,
        "model": {"0.weight": np.ones((2, 2), np.float32)},
        "schedule": {"best": float("inf"), "base_lrs": [0.1], "anneal_strategy": "cos"},
        "history": {"loss": [1.0, 0.5]},
        "rng_state": rng.bit_generator.state,  # 128-bit ints
        "empty": {},
    }
    save(ckpt, tmp_path / "c.safetensors")
    loaded = load(tmp_path / "c.safetensors")
    assert loaded["rng_state"] == rng.bit_generator.state
    assert loaded["schedule"] == ckpt["schedule"] and loaded["empty"] == {} and loaded["epoch"] == 3
    restored = np.random.default_rng()
    restored.bit_generator.state = loaded["rng_state"]
    assert restored.random() == rng.random()
    np.testing.assert_array_equal(loaded["model"]["0.weight"], ckpt["model"]["0.weight"])
