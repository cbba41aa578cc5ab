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
    assert got["jitgrad"] == got["numba"] == str(expected)
    assert Path(got["kernel"]).parent == expected


@pytest.mark.parametrize("first", ["import numba"], ids=["numba-first"])
def test_numba_cache_dir_and_jitgrad_setting_override(tmp_path: Path, first: str) -> None:
    numba_dir, jitgrad_dir = tmp_path / "numba-dir", tmp_path / "jitgrad-dir"
    got = _probe({"NUMBA_CACHE_DIR": str(numba_dir)}, first)
    assert got["numba"] == str(numba_dir) and Path(got["kernel"]).parent == numba_dir
    # The jitgrad setting wins over NUMBA_CACHE_DIR.
    got = _probe({"NUMBA_CACHE_DIR": str(numba_dir), "JITGRAD_CACHE_DIR": str(jitgrad_dir)}, first)
    assert got["numba"] == got["jitgrad"] == str(jitgrad_dir) and Path(got["kernel"]).parent == jitgrad_dir


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
