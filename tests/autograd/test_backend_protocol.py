"""Both autograd backends implement the ``Backend`` protocol: every member, with the same signature.

The CUDA backend's class is inspected without a GPU (``numba.cuda`` imports
everywhere); its instance is checked in tests/cuda/test_backend_protocol.py (simulator process).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from jitgrad import config
from jitgrad.autograd import backend as backend_module
from jitgrad.autograd.backend import CPUBackend, cpu, get_backend, register_backend, register_lazy_backend
from jitgrad.autograd.backend_protocol import Backend

ATTRIBUTES = {"name", "array_type", "kernels"}
MEMBERS = sorted(name for name in vars(Backend) if not name.startswith("_") and name not in ATTRIBUTES)


def _cuda_class():
    from jitgrad.autograd.cuda_backend import CUDABackend

    return CUDABackend


def _params(cls, name):
    """A member's parameters (name, kind, default) as seen on an instance: ``self`` dropped."""
    member = inspect.getattr_static(cls, name)
    fn = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
    params = list(inspect.signature(fn).parameters.values())
    if not isinstance(member, staticmethod):
        params = params[1:]
    return [(p.name, p.kind, p.default) for p in params]


def test_the_protocol_lists_what_the_ops_use():
    assert {"add", "getitem_backward", "first_max_mask", "sum_to_shape", "dropout_mask", "zeros"} <= set(MEMBERS)


@pytest.mark.parametrize("cls", [CPUBackend, pytest.param(None, id="CUDABackend")],
                         ids=["CPUBackend", "CUDABackend"])
@pytest.mark.parametrize("name", MEMBERS)
def test_every_member_has_the_protocol_signature(cls, name):
    cls = cls or _cuda_class()
    assert hasattr(cls, name), f"{cls.__name__} lacks {name}"
    assert _params(cls, name) == _params(Backend, name), (
        f"{cls.__name__}.{name}{inspect.signature(getattr(cls, name))} differs from "
        f"Backend.{name}{inspect.signature(getattr(Backend, name))}"
    )


def test_cpu_backend_is_a_backend_with_the_protocol_defaults():
    assert isinstance(cpu, Backend)
    assert cpu.zeros((2,)).dtype == config.default_dtype
    assert cpu.ones((2,)).dtype == config.default_dtype
    assert cpu.full((2,), 3).dtype == config.default_dtype
    assert cpu.zeros((2,), np.float64).dtype == np.float64


def test_get_backend_is_a_registry_without_special_cases(monkeypatch):
    monkeypatch.setattr(backend_module, "_BY_NAME", dict(backend_module._BY_NAME))
    monkeypatch.setattr(backend_module, "_BY_TYPE", dict(backend_module._BY_TYPE))
    monkeypatch.setattr(backend_module, "_LAZY", dict(backend_module._LAZY))

    class Toy(CPUBackend):
        name = "toy"

        class array_type(np.ndarray):  # noqa: N801
            pass

    toy = Toy()
    loaded = []

    class Module:
        @staticmethod
        def register():
            loaded.append(True)
            register_backend(toy)
            return toy

    import sys

    monkeypatch.setitem(sys.modules, "toy_backend_module", Module)
    register_lazy_backend("toy", "toy_backend_module", lambda a: isinstance(a, Toy.array_type))
    assert not loaded
    assert get_backend("toy:1") is toy and loaded == [True]
    assert get_backend("toy") is toy and loaded == [True]
    with pytest.raises(ValueError, match="unknown device 'tpu'; registered devices: .*toy"):
        get_backend("tpu")


def test_import_jitgrad_registers_cuda_lazily():
    import subprocess
    import sys

    code = ("import sys, jitgrad, jitgrad.nn; from jitgrad.autograd import backend; "
            "assert 'numba.cuda' not in sys.modules, 'numba.cuda imported'; "
            "assert 'jitgrad.autograd.cuda_backend' not in sys.modules; "
            "assert 'cuda' in backend._LAZY and 'cuda' not in backend._BY_NAME")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
