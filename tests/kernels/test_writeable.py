"""Every argument a kernel writes into must be writeable: a one-line ValueError naming it, never a
segfault (a read-only ``np.memmap`` as ``out=`` ended the process with SIGSEGV) and never a silent
write into an array the caller marked read-only."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jitgrad.kernels.cpu as cpu
import jitgrad.kernels.reference as reference
from tests.hardening_cases import READ_ONLY_OK, WRITING_CASES, read_only

BACKENDS = [cpu, reference]


@pytest.mark.parametrize("K", BACKENDS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
@pytest.mark.parametrize("label,arg,call", WRITING_CASES, ids=[f"{c[0]}-{c[1]}" for c in WRITING_CASES])
def test_read_only_written_argument_is_refused(K, label, arg, call):
    seen = {}

    def make(name, a):
        if name == arg:
            a = seen[name] = read_only(a)
        return a

    with pytest.raises(ValueError, match=rf"^{arg} is read-only") as info:
        call(K, make)
    assert "\n" not in str(info.value)
    before = seen[arg].copy()
    assert np.array_equal(seen[arg], before)


@pytest.mark.parametrize("K", BACKENDS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
@pytest.mark.parametrize("label,arg,call", READ_ONLY_OK, ids=[f"{c[0]}-{c[1]}" for c in READ_ONLY_OK])
def test_read_only_input_is_accepted(K, label, arg, call):
    call(K, lambda name, a: read_only(a) if name == arg else a)


def test_read_only_memmap_out_is_an_error_not_a_segfault(tmp_path):
    # In a subprocess: on the old code this case killed the interpreter.
    code = textwrap.dedent(f"""
        import numpy as np
        import jitgrad.kernels.cpu as K
        path = {str(tmp_path / "out.bin")!r}
        np.zeros((64, 64), np.float32).tofile(path)
        out = np.memmap(path, dtype=np.float32, mode="r", shape=(64, 64))
        a = np.ones((64, 64), np.float32)
        try:
            K.matmul(a, a, out=out)
        except ValueError as e:
            print("ValueError:", e)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ValueError: out is read-only")
