"""Data hardening: bounded downloads (deadline, minimum rate, offline hint), IDX headers that lie,
a dataset path that is a directory."""

from __future__ import annotations

import gzip
import http.server
import threading
import time

import numpy as np
import pytest

from jitgrad.data import _download
from jitgrad.data.idx import read_idx


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Declares 1 MB, then sends one byte every 20 ms."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", str(10**6))
        self.end_headers()
        try:
            for _ in range(500):  # bounded: 10 s at most, whatever the client does
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.02)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def trickle_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/train-images-idx3-ubyte.gz"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("limits,message", [
    (dict(DEADLINE=0.5, GRACE=100.0), "deadline 0 s"),
    (dict(DEADLINE=100.0, GRACE=0.3, MIN_RATE=10_000), "too slow"),
])
def test_trickling_download_ends_with_an_offline_hint(tmp_path, monkeypatch, trickle_url, limits, message):
    for name, value in limits.items():
        monkeypatch.setattr(_download, name, value)
    start = time.monotonic()
    with pytest.raises(_download.DownloadError) as info:
        _download.download([trickle_url], tmp_path / "f.gz", "0" * 32, progress=False)
    assert time.monotonic() - start < 5
    text = str(info.value)
    assert message in text and "JITGRAD_DATA" in text and str(tmp_path / "f.gz") in text
    assert not list(tmp_path.iterdir())  # no partial file left


def _header(shape, code=0x08):
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, dtype=">u4").tobytes()


def test_idx_header_with_huge_sizes_names_the_file(tmp_path):
    path = tmp_path / "big-idx3-ubyte"
    path.write_bytes(_header((2**32 - 1, 2**32 - 1, 2**32 - 1)) + b"\0" * 16)
    with pytest.raises(ValueError, match=f"^{path}: truncated IDX data: header declares shape"):
        read_idx(path)


def test_gzipped_idx_declaring_more_than_it_holds_fails_before_decompressing(tmp_path, monkeypatch):
    path = tmp_path / "lie-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(_header((60000, 28, 28)))
        f.write(b"\0" * 100)
    reads = []
    original = gzip.GzipFile.readinto

    def counting(self, b):
        reads.append(len(b))
        return original(self, b)

    monkeypatch.setattr(gzip.GzipFile, "readinto", counting)
    with pytest.raises(ValueError, match=f"^{path}: IDX header declares .* compressed bytes can hold at most"):
        read_idx(path)
    assert not reads  # refused from the header alone


def test_dataset_file_that_is_a_directory_is_an_error_not_a_download(tmp_path, monkeypatch):
    from jitgrad.data import datasets, mnist

    (tmp_path / "mnist" / mnist.FILES["train"][0]).mkdir(parents=True)

    def refuse(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(_download, "download", refuse)
    with pytest.raises(datasets.DatasetNotFoundError, match="is a directory"):
        mnist.load("train", root=tmp_path, download=True)
