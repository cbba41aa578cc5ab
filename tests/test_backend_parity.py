"""The kernel contract: reference, cpu and cuda expose the same modules, names and signatures.

docs/kernel-api.md promises that code written against one backend runs on
another by swapping the import. This test holds every public name of
``jitgrad.kernels.reference`` to that promise. It runs in the CPU pytest
process: ``jitgrad.kernels.cuda`` imports without a GPU (kernels compile on
first launch).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

import jitgrad.kernels.cpu as cpu
import jitgrad.kernels.cuda as cuda
import jitgrad.kernels.reference as ref

MODULES = ["matmul", "conv", "pooling", "activations", "softmax", "optim", "normalization", "conv_transpose",
           "pooling_adaptive", "recurrent"]
FAST_BACKENDS = [pytest.param(cpu, id="cpu"), pytest.param(cuda, id="cuda")]
# The autograd's array namespace on the GPU: extra modules, no reference counterpart.
CUDA_EXTRA_MODULES = {"elementwise", "reduction", "indexing"}
# CUDA-only modules held to a NumPy reference of their own (the CPU backend needs no twin).
REFERENCE_AND_CUDA_MODULES = {"indexing"}


def _module(backend, name):
    return importlib.import_module(f"{backend.__name__}.{name}")


def _public(backend):
    """``{function name: module name}`` over the backend's kernel modules' ``__all__``."""
    names = {}
    for module_name in MODULES:
        for name in _module(backend, module_name).__all__:
            assert name not in names, f"{name} is exported by both {names[name]} and {module_name}"
            names[name] = module_name
    return names


def _params(fn):
    """What a caller can rely on: each parameter's name, kind and default (annotations aside)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


REFERENCE_NAMES = sorted(_public(ref).items())


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_same_names_in_the_same_modules(backend):
    assert _public(backend) == _public(ref)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("name, module_name", REFERENCE_NAMES)
def test_same_signature(backend, name, module_name):
    expected = getattr(_module(ref, module_name), name)
    actual = getattr(_module(backend, module_name), name)
    assert _params(actual) == _params(expected), (
        f"{backend.__name__}.{module_name}.{name}{inspect.signature(actual)} differs from "
        f"reference{inspect.signature(expected)}"
    )


@pytest.mark.parametrize("backend", [pytest.param(ref, id="reference"), *FAST_BACKENDS])
@pytest.mark.parametrize("name, module_name", REFERENCE_NAMES)
def test_public_name_is_the_validating_wrapper(backend, name, module_name):
    # A numba dispatcher (``@njit`` / ``@cuda.jit``) exported by mistake would skip validation
    # and has no Python signature; the wrapper is a plain function defined in its module.
    fn = getattr(_module(backend, module_name), name)
    assert inspect.isfunction(fn), f"{backend.__name__}.{module_name}.{name} is {type(fn).__name__}"
    assert fn.__module__ == f"{backend.__name__}.{module_name}"
    assert getattr(backend, name) is fn, f"{backend.__name__}.{name} is not {module_name}.{name}"
    assert fn.__doc__, f"{backend.__name__}.{module_name}.{name} has no docstring"


def test_cuda_extra_modules_are_only_the_autograd_helpers():
    import pkgutil

    fast = {m.name for m in pkgutil.iter_modules(cuda.__path__) if not m.name.startswith("_")}
    assert fast - set(MODULES) == CUDA_EXTRA_MODULES
    cpu_modules = {m.name for m in pkgutil.iter_modules(cpu.__path__) if not m.name.startswith("_")}
    ref_modules = {m.name for m in pkgutil.iter_modules(ref.__path__) if not m.name.startswith("_")}
    assert cpu_modules == ref_modules - REFERENCE_AND_CUDA_MODULES == set(MODULES)


@pytest.mark.parametrize("module_name", sorted(REFERENCE_AND_CUDA_MODULES))
def test_cuda_only_modules_match_their_reference(module_name):
    reference, fast = _module(ref, module_name), _module(cuda, module_name)
    assert fast.__all__ == reference.__all__
    for name in reference.__all__:
        expected, actual = getattr(reference, name), getattr(fast, name)
        assert inspect.isfunction(actual) and actual.__module__ == fast.__name__, name
        assert _params(actual) == _params(expected), name
        assert actual.__doc__ == expected.__doc__, name
