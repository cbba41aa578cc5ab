"""jitgrad.config's malloc thresholds: freed activations are reused from the heap, not faulted in again.

A training step frees and allocates blocks of megabytes every step; with glibc's dynamic thresholds
the heap's top went back to the kernel each time and the next step page-faulted it in again (8,000
faults a Keras-convnet step). The probe below repeats that pattern and counts the faults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jitgrad import config

# An 8 MiB block by mmap (glibc's dynamic thresholds rise to 8 MiB, and 16 MiB for the trim), then
# rounds of three 7 MiB blocks from the heap, touched and freed: 21 MiB of free top each round.
_PROBE = """
import json, resource
import numpy as np
import jitgrad.config as config
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(8 << 18, np.float32)
counts = []
for _ in range(4):
    f0 = faults()
    blocks = [np.ones(7 << 18, np.float32) for _ in range(3)]
    del blocks
    counts.append(faults() - f0)
print(json.dumps({"tuned": config.malloc_tuned, "faults": counts}))
"""

_GLIBC = sys.platform == "linux" and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")


def _probe(**env_update: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in config._GLIBC_MALLOC_ENV and k not in ("JITGRAD_MALLOC_TUNING", "GLIBC_TUNABLES")}
    env.update(env_update)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not _GLIBC, reason="the thresholds are glibc's (elsewhere malloc is left as it is)")
def test_freed_blocks_are_reused_without_page_faults_and_the_switch_turns_it_off() -> None:
    tuned = _probe()
    assert tuned["tuned"] is True
    assert max(tuned["faults"][1:]) < 64, tuned  # 21 MiB is 5,376 pages: none faulted in again
    plain = _probe(JITGRAD_MALLOC_TUNING="0")
    assert plain["tuned"] is False
    assert min(plain["faults"][1:]) > 1000, plain  # glibc's own thresholds: the pattern does fault


@pytest.mark.skipif(not _GLIBC, reason="the thresholds are glibc's")
def test_a_users_own_glibc_malloc_settings_win() -> None:
    assert _probe(MALLOC_TRIM_THRESHOLD_="1000000")["tuned"] is False
    assert _probe(GLIBC_TUNABLES="glibc.malloc.mmap_threshold=65536")["tuned"] is False


def test_off_glibc_or_switched_off_malloc_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*config._GLIBC_MALLOC_ENV, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JITGRAD_MALLOC_TUNING", "0")
    assert config._tune_malloc() is False
    monkeypatch.delenv("JITGRAD_MALLOC_TUNING")

    def no_glibc(name: str) -> str:
        raise ValueError(f"unrecognized configuration name {name!r}")

    monkeypatch.setattr(os, "confstr", no_glibc)  # macOS, Windows, musl
    assert config._tune_malloc() is False


def test_without_mallopt_in_reach_malloc_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*config._GLIBC_MALLOC_ENV, "GLIBC_TUNABLES", "JITGRAD_MALLOC_TUNING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "confstr", lambda name: "glibc 2.36")

    class NoMallopt:  # glibc's name, but no mallopt to be found
        def __init__(self, name):
            pass

        def __getattr__(self, name):
            raise AttributeError(name)

    monkeypatch.setattr("ctypes.CDLL", NoMallopt)
    assert config._tune_malloc() is False
