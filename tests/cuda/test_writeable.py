"""CUDA kernels refuse a read-only array where they write, through the shared validation, before
any launch or transfer (a read-only host array is the one read-only array a CUDA kernel can get)."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
from tests.cuda.conftest import dev
from tests.hardening_cases import WRITING_CASES, read_only


@pytest.mark.parametrize("label,arg,call", WRITING_CASES, ids=[f"{c[0]}-{c[1]}" for c in WRITING_CASES])
def test_read_only_written_argument_is_refused(label, arg, call):
    seen = {}

    def make(name, a):
        if name == arg:
            seen[name] = read_only(a)
            return seen[name]
        return dev(a)

    with pytest.raises(ValueError, match=rf"^{arg} is read-only"):
        call(kc, make)
    assert not seen[arg].flags.writeable
    assert np.isfinite(seen[arg]).all()
