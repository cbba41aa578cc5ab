"""Checkpoint hardening: reserved keys, file mode, stale temp files, CRC32, hand-edited metadata."""

from __future__ import annotations

import json
import os
import struct
import time

import numpy as np
import pytest

from jitgrad import serialization
from jitgrad.serialization import load, save


def _rewrite_metadata(path, edit):
    """Apply ``edit`` to the parsed header's ``__metadata__`` and write the file back."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    edit(header["__metadata__"])
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def test_reserved_metadata_key_is_refused_at_save(tmp_path):
    target = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match="'__metadata__' is reserved"):
        save({"__metadata__": np.ones(2)}, target)
    with pytest.raises(ValueError, match="reserved"):
        save({"__metadata__": {"a": 1}}, target)
    assert not target.exists()


def test_checkpoint_is_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        save({"w": np.ones(2)}, tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o600


def test_stale_temp_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    stale = tmp_path / ".m.safetensors.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".m.safetensors.def456.tmp"  # a save in progress elsewhere: recent, kept
    fresh.write_bytes(b"being written")
    other = tmp_path / ".other.safetensors.abc.tmp"  # another checkpoint's temp: not ours
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    save({"w": np.ones(2)}, tmp_path / "m.safetensors")
    assert not stale.exists()
    assert fresh.exists() and other.exists()


def test_crc_detects_a_flipped_bit_and_verify_false_skips(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"w": np.arange(8, dtype=np.float32)}, path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # inside the last float's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{path}.*CRC32"):
        load(path)
    loaded = load(path, verify=False)
    assert loaded["w"][-1] != 7.0


def test_crc_is_stored_and_round_trips_empty_and_nested(tmp_path):
    path = tmp_path / "m.safetensors"
    state = {"state": {0: {"exp_avg": np.zeros((0, 3)), "step": 2}}, "b": np.float64(1.0)}
    save(state, path)
    header = serialization._read_header(path.read_bytes(), str(path))
    assert len(header["__metadata__"]["jitgrad.crc32"]) == 8
    assert load(path)["state"][0]["exp_avg"].shape == (0, 3)


@pytest.mark.parametrize("skeleton", [
    '{"__items__": [[1]]}',  # a pair with one element
    '{"__items__": [[[1], 2]]}',  # an unhashable key
    '{"__items__": 5}',
    '{"__tuple__": 5}',
])
def test_hand_edited_metadata_errors_name_the_file(tmp_path, skeleton):
    path = tmp_path / "m.safetensors"
    save({"w": np.ones(2)}, path)
    _rewrite_metadata(path, lambda meta: meta.update({"jitgrad.structure": skeleton}))
    with pytest.raises(ValueError, match=f"load: {path} is corrupt"):
        load(path)
