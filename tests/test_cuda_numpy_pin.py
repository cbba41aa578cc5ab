"""jitgrad's CUDA kernels name a NumPy that numba-cuda cannot compile kernels with (no GPU needed)."""

from __future__ import annotations

import pytest

import jitgrad.cuda


def test_a_numpy_that_numba_cuda_cannot_compile_with_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import numpy as np

    jitgrad.cuda.check_numpy()  # this environment's NumPy is within the pin: nothing to say
    monkeypatch.delattr(np, "row_stack", raising=False)
    monkeypatch.setitem(sys.modules, "numba.cuda.np.arrayobj", None)  # re-imported: fails as under NumPy 2.5

    def failing_import(name, *args, **kwargs):
        if name == "numba.cuda.np.arrayobj":
            raise AttributeError("module 'numpy' has no attribute 'row_stack'")
        return real_import(name, *args, **kwargs)

    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(ImportError, match=r"cannot compile CUDA kernels with NumPy .*numpy<2\.5") as info:
        jitgrad.cuda.check_numpy()
    assert "\n" not in str(info.value)
