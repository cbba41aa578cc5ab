"""One cache for compiled kernels: jitgrad.config points Numba at it whatever the import order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Prints where Numba's config and one cached jitgrad kernel put their files.
_PROBE = """
import json, sys
{first}
import numba.core.config
from jitgrad.kernels.cpu import optim
from jitgrad import config
print(json.dumps({{"numba": numba.core.config.CACHE_DIR, "jitgrad": str(config.cache_dir()),
                  "digest": config.source_digest(),
                  "kernel": optim._adam_update_kernel._cache._cache_path}}))
"""


def _probe(env_update: dict[str, str | None], first: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "JITGRAD_CACHE_DIR",
                                                              "XDG_CACHE_HOME")}
    env.update({k: v for k, v in env_update.items() if v is not None})
    out = subprocess.run([sys.executable, "-c", _PROBE.format(first=first)], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("first", ["", "import numba"], ids=["jitgrad-first", "numba-first"])
def test_default_location_whatever_the_import_order(tmp_path: Path, first: str) -> None:
    got = _probe({"XDG_CACHE_HOME": str(tmp_path)}, first)
    expected = tmp_path / "jitgrad" / "numba"
    assert got["jitgrad"] == str(expected)
    assert got["numba"] == str(expected / f"kernels-{got['digest']}") == str(Path(got["kernel"]).parent)


@pytest.mark.parametrize("first", ["import numba"], ids=["numba-first"])
def test_numba_cache_dir_and_jitgrad_setting_override(tmp_path: Path, first: str) -> None:
    numba_dir, jitgrad_dir = tmp_path / "numba-dir", tmp_path / "jitgrad-dir"
    got = _probe({"NUMBA_CACHE_DIR": str(numba_dir)}, first)
    versions = numba_dir / f"kernels-{got['digest']}"
    assert got["jitgrad"] == str(numba_dir) and got["numba"] == str(versions) == str(Path(got["kernel"]).parent)
    # The jitgrad setting wins over NUMBA_CACHE_DIR.
    got = _probe({"NUMBA_CACHE_DIR": str(numba_dir), "JITGRAD_CACHE_DIR": str(jitgrad_dir)}, first)
    versions = jitgrad_dir / f"kernels-{got['digest']}"
    assert got["jitgrad"] == str(jitgrad_dir) and got["numba"] == str(versions) == str(Path(got["kernel"]).parent)


def test_cache_dir_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from jitgrad import config

    monkeypatch.delenv("JITGRAD_CACHE_DIR", raising=False)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.cache_dir() == tmp_path / "xdg" / "jitgrad" / "numba"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.cache_dir() == tmp_path / "home" / ".cache" / "jitgrad" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", "~/n")
    assert config.cache_dir() == tmp_path / "home" / "n"
    monkeypatch.setenv("JITGRAD_CACHE_DIR", str(tmp_path / "j"))
    assert config.cache_dir() == tmp_path / "j"


def test_any_kernel_source_edit_changes_the_numba_cache_folder(tmp_path: Path) -> None:
    # Numba re-checks only a cached function's own file: an edited helper in another kernel
    # file left its callers running the old code. The folder is keyed by every kernel source.
    from jitgrad import config

    (tmp_path / "kernels" / "cpu").mkdir(parents=True)
    (tmp_path / "config.py").write_text("FLAGS = 1\n")
    helper = tmp_path / "kernels" / "cpu" / "_rows.py"
    helper.write_text("def f(x):\n    return x\n")
    (tmp_path / "nn.py").write_text("not a kernel\n")
    before = config.source_digest(root=tmp_path)
    assert config.source_digest(root=tmp_path) == before
    (tmp_path / "nn.py").write_text("still not a kernel\n")
    assert config.source_digest(root=tmp_path) == before
    helper.write_text("def f(x):\n    return x + 1\n")
    edited = config.source_digest(root=tmp_path)
    assert edited != before
    (tmp_path / "config.py").write_text("FLAGS = 2\n")
    assert config.source_digest(root=tmp_path) != edited
    assert config.numba_cache_dir() == config.cache_dir() / f"kernels-{config.source_digest()}"


def test_source_digest_trusts_stored_file_digests_only_for_unchanged_settled_files(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    # A warm start looks each kernel file's digest up by its time stamps instead of hashing the sources;
    # an edited file (new mtime/ctime/size) or one changed within the last seconds is read again.
    from jitgrad import config

    monkeypatch.setenv("JITGRAD_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src"
    (src / "kernels").mkdir(parents=True)
    (src / "config.py").write_text("FLAGS = 1\n")
    helper = src / "kernels" / "_rows.py"
    helper.write_text("x = 1\n")
    monkeypatch.setattr(config, "_RECENT_NS", -1)  # every file counts as settled
    before = config.source_digest(root=src)
    store = json.loads((tmp_path / "cache" / "jitgrad-source-digests.json").read_text())
    assert set(store) == {str(src / "config.py"), str(helper)}
    st = helper.stat()
    helper.write_text("x = 2\n")  # same size
    os.utime(helper, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    edited = config.source_digest(root=src)
    assert edited != before
    # A stored entry whose stamps match is used (no read) for a settled file ...
    known = config._FILE_DIGESTS[tmp_path / "cache" / "jitgrad-source-digests.json"]
    known[str(helper)][4] = "0" * 64
    assert config.source_digest(root=src) not in (before, edited)
    # ... and never for a file changed within _RECENT_NS, whatever the store says.
    monkeypatch.setattr(config, "_RECENT_NS", 10**12)
    assert config.source_digest(root=src) == edited
