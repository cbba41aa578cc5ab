"""MNIST / Fashion-MNIST loading: local files, verification, download, and the errors a user sees.

Every test writes tiny fake IDX files itself and points the checksum table at
them; nothing touches the network.
"""

import hashlib
import io
import urllib.error

import numpy as np
import pytest

from jitgrad.data import _download, fashion_mnist, mnist
from jitgrad.data._download import ChecksumError
from jitgrad.data.datasets import DatasetNotFoundError
from jitgrad.data.idx import write_idx

N = {"train": 12, "test": 5}


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_fake(folder, module, seed=0):
    """Write fake train/test IDX files under ``folder`` with ``module``'s names; return md5s and arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    md5, arrays = {}, {}
    for split, (img_name, lbl_name) in module.FILES.items():
        images = rng.integers(0, 256, (N[split], 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, N[split], dtype=np.uint8)
        for name, arr in ((img_name, images), (lbl_name, labels)):
            md5[name] = _md5(write_idx(folder / name, arr))
        arrays[split] = (images, labels)
    return md5, arrays


@pytest.fixture(autouse=True)
def _fresh_md5_cache(monkeypatch):
    monkeypatch.setattr(_download, "_MD5_CACHE", {})
    monkeypatch.delenv("JITGRAD_DATA", raising=False)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(url, timeout):
        raise urllib.error.URLError("no network in tests")
    monkeypatch.setattr(_download, "_open_url", refuse)


@pytest.mark.parametrize("module, subdir", [(mnist, "mnist"), (fashion_mnist, "fashion_mnist")])
def test_loads_verified_local_files(tmp_path, monkeypatch, no_network, module, subdir):
    md5, arrays = _write_fake(tmp_path / subdir, module)
    monkeypatch.setattr(module, "MD5", md5)
    for split in ("train", "test"):
        images, labels = module.load(split, root=tmp_path)
        assert images.dtype == np.uint8 and images.shape == (N[split], 28, 28)
        assert labels.dtype == np.uint8 and labels.shape == (N[split],)
        np.testing.assert_array_equal(images, arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])


def test_data_dir_comes_from_environment(tmp_path, monkeypatch, no_network):
    md5, arrays = _write_fake(tmp_path / "mnist", mnist)
    monkeypatch.setattr(mnist, "MD5", md5)
    monkeypatch.setenv("JITGRAD_DATA", str(tmp_path))
    np.testing.assert_array_equal(mnist.load("test")[1], arrays["test"][1])


def test_local_checksum_mismatch_raises_and_keeps_the_file(tmp_path, monkeypatch, no_network):
    md5, _ = _write_fake(tmp_path / "mnist", mnist)
    md5["train-images-idx3-ubyte.gz"] = "0" * 32
    monkeypatch.setattr(mnist, "MD5", md5)
    with pytest.raises(ChecksumError, match=r"train-images-idx3-ubyte.gz: MD5 [0-9a-f]{32} does not match "
                                            r"the published 0{32}.*Delete it"):
        mnist.load("train", root=tmp_path)
    assert (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_verification_hashes_each_file_once_per_process(tmp_path, monkeypatch, no_network):
    md5, _ = _write_fake(tmp_path / "mnist", mnist)
    monkeypatch.setattr(mnist, "MD5", md5)
    calls = []
    real_md5 = hashlib.md5
    monkeypatch.setattr(_download.hashlib, "md5", lambda **kw: calls.append(1) or real_md5(**kw))
    mnist.load("test", root=tmp_path)
    mnist.load("test", root=tmp_path)
    assert len(calls) == 2  # images and labels, hashed by the first load only


def test_bad_split(tmp_path):
    with pytest.raises(ValueError, match=r"MNIST: split must be one of \['test', 'train'\], got 'val'"):
        mnist.load("val", root=tmp_path)


def test_missing_files_without_download_say_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        mnist.load("train", root=tmp_path, download=False)
    msg = str(info.value)
    assert f"MNIST file train-images-idx3-ubyte.gz not found in {tmp_path / 'mnist'}" in msg
    assert "from the root argument" in msg
    assert "JITGRAD_DATA" in msg and "download=True" in msg


def test_no_network_and_no_files_says_where_and_how(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("JITGRAD_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as info:
        fashion_mnist.load("test")
    msg = str(info.value)
    assert f"not found in {tmp_path / 'fashion_mnist'}" in msg
    assert "from $JITGRAD_DATA" in msg
    assert "the download failed" in msg and "no network in tests" in msg
    assert "fashion-mnist.s3-website" in msg  # the mirror it tried
    assert "set JITGRAD_DATA=" in msg
    assert not any(tmp_path.rglob("*.part"))


def test_download_from_a_file_url_mirror(tmp_path, monkeypatch):
    """urllib serves file:// URLs, so the real fetch path runs end to end without a network."""
    mirror = tmp_path / "mirror"
    md5, arrays = _write_fake(mirror, mnist)
    monkeypatch.setattr(mnist, "MD5", md5)
    monkeypatch.setattr(mnist, "MIRRORS", ("file:///nonexistent-mirror/", mirror.as_uri() + "/"))
    root = tmp_path / "data"
    images, labels = mnist.load("train", root=root, progress=False)
    np.testing.assert_array_equal(images, arrays["train"][0])
    np.testing.assert_array_equal(labels, arrays["train"][1])
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(mnist.FILES["train"])


def test_downloaded_bytes_with_wrong_checksum_are_deleted(tmp_path, monkeypatch):
    fetched = []

    def serve(url, timeout):
        fetched.append(url)
        return io.BytesIO(b"not the file you want")

    monkeypatch.setattr(_download, "_open_url", serve)
    monkeypatch.setattr(mnist, "MIRRORS", ("http://a.example/", "http://b.example/"))
    with pytest.raises(ChecksumError, match=r"downloaded t10k-images-idx3-ubyte.gz did not verify; "
                                            r"the partial download was deleted") as info:
        mnist.load("test", root=tmp_path, progress=False)
    assert "http://a.example/t10k-images-idx3-ubyte.gz: MD5" in str(info.value)
    assert "http://b.example/t10k-images-idx3-ubyte.gz: MD5" in str(info.value)
    assert fetched == ["http://a.example/t10k-images-idx3-ubyte.gz", "http://b.example/t10k-images-idx3-ubyte.gz"]
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_is_cached_and_not_repeated(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    md5, _ = _write_fake(mirror, mnist)
    monkeypatch.setattr(mnist, "MD5", md5)
    fetched = []

    def serve(url, timeout):
        fetched.append(url)
        return open(mirror / url.rsplit("/", 1)[1], "rb")

    monkeypatch.setattr(_download, "_open_url", serve)
    mnist.load("test", root=tmp_path / "data", progress=False)
    mnist.load("test", root=tmp_path / "data", progress=False)
    assert len(fetched) == 2


def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch):
    class Dies(io.BytesIO):
        def read(self, n=-1):
            raise KeyboardInterrupt

    monkeypatch.setattr(_download, "_open_url", lambda url, timeout: Dies())
    with pytest.raises(KeyboardInterrupt):
        mnist.load("test", root=tmp_path, progress=False)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_mismatched_image_and_label_counts(tmp_path, monkeypatch, no_network):
    folder = tmp_path / "mnist"
    md5, _ = _write_fake(folder, mnist)
    md5["t10k-labels-idx1-ubyte.gz"] = _md5(write_idx(folder / "t10k-labels-idx1-ubyte.gz",
                                                      np.zeros(3, np.uint8)))
    monkeypatch.setattr(mnist, "MD5", md5)
    with pytest.raises(ValueError, match=r"MNIST test: 5 images in .* but 3 labels in "):
        mnist.load("test", root=tmp_path)
