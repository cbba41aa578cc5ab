"""IDX reader and writer: round trips, compression detection, malformed files."""

import gzip

import numpy as np
import pytest

from jitgrad.data.idx import read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (1, 2, 1, 3)])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, dtype, shape, name):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    path = write_idx(tmp_path / name, a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.c_contiguous and b.flags.writeable


def test_compression_follows_suffix_and_flag_and_is_detected_by_content(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "x.gz", a)
    write_idx(tmp_path / "y", a)
    write_idx(tmp_path / "z", a, compress=True)  # gzip without a .gz name
    assert (tmp_path / "x.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "y").read_bytes()[:4] == bytes([0, 0, 0x08, 2])
    assert (tmp_path / "z").read_bytes()[:2] == b"\x1f\x8b"
    for n in ("x.gz", "y", "z"):
        np.testing.assert_array_equal(read_idx(tmp_path / n), a)


def test_plain_layout_is_big_endian_idx(tmp_path):
    write_idx(tmp_path / "f", np.array([[1, 256]], dtype=np.int32))
    raw = (tmp_path / "f").read_bytes()
    assert raw == bytes([0, 0, 0x0C, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 1, 0])


def test_gzip_output_is_reproducible(tmp_path):
    a = np.arange(100, dtype=np.float32)
    write_idx(tmp_path / "a.gz", a)
    write_idx(tmp_path / "b.gz", a)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_writer_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(TypeError, match="dtype int64 has no IDX code"):
        write_idx(tmp_path / "a", np.arange(3))
    with pytest.raises(ValueError, match=r"1 to 255 dimensions, got shape \(\)"):
        write_idx(tmp_path / "a", np.array(1, dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def _header(code, dims):
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()


@pytest.mark.parametrize("payload, message", [
    (b"\x00\x00", r"truncated IDX header: 2 of 4 magic bytes"),
    (b"\x01\x02\x08\x01" + bytes(8), r"not an IDX file: magic bytes 01 02 08 01"),
    (b"\x00\x00\x0a\x01" + bytes(8), r"unknown IDX dtype code 0x0A"),
    (b"\x00\x00\x08\x00", r"declares 0 dimensions"),
    (b"\x00\x00\x08\x03" + bytes(6), r"3 dimensions declared, only 6 of 12 size bytes present"),
    (_header(0x08, [2, 3]) + bytes(5), r"header declares shape \(2, 3\) of u1 = 6 bytes, file holds only 5"),
    (_header(0x0D, [4]) + bytes(16) + b"x", r"trailing bytes after the 16 data bytes"),
])
@pytest.mark.parametrize("gz", [False, True])
def test_malformed_files_are_rejected_with_the_file_named(tmp_path, payload, message, gz):
    path = tmp_path / "bad.idx"
    path.write_bytes(gzip.compress(payload) if gz else payload)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_stream_is_a_value_error(tmp_path):
    a = np.random.default_rng(1).integers(0, 255, (50, 28, 28), dtype=np.uint8)
    good = write_idx(tmp_path / "a.gz", a).read_bytes()
    path = tmp_path / "cut.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated gzip stream") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")
