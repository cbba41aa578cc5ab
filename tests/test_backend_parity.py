"""The kernel contract: reference, cpu and cuda expose the same modules, names and signatures.

docs/kernel-api.md promises that code written against one backend runs on
another by swapping the import. This test holds every public name of
``jitgrad.kernels.reference`` to that promise. It runs in the CPU pytest
process: ``jitgrad.kernels.cuda`` imports without a GPU (kernels compile on
first launch).
"""

from __future__ import annotations

import importlib
import re
import inspect

import pytest

import jitgrad.kernels.cpu as cpu
import jitgrad.kernels.cuda as cuda
import jitgrad.kernels.reference as ref
from jitgrad.kernels import _contract
from jitgrad.kernels._constants import KERNEL_MODULES, KERNELS, kernel_names

MODULES = list(KERNEL_MODULES)
FAST_BACKENDS = [pytest.param(cpu, id="cpu"), pytest.param(cuda, id="cuda")]
# The autograd's array namespace on the GPU: extra modules, no reference counterpart.
CUDA_EXTRA_MODULES = {"elementwise", "reduction"}


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
    assert cpu_modules == ref_modules == set(MODULES)


# ----------------------------------------------------------------------------- one list of kernels

@pytest.mark.parametrize("backend", [pytest.param(ref, id="reference"), *FAST_BACKENDS])
def test_every_backend_exports_the_one_kernel_list(backend):
    # kernels/_constants.py::KERNELS is the list; a module's literal __all__ must match it.
    for module_name, names in KERNELS.items():
        assert list(_module(backend, module_name).__all__) == list(names), (
            f"{backend.__name__}.{module_name}.__all__ differs from kernels/_constants.py::KERNELS[{module_name!r}]"
        )
    assert backend.__all__ == kernel_names()
    assert all(getattr(backend, name) is getattr(_module(backend, m), name)
               for m, names in KERNELS.items() for name in names)


# ----------------------------------------------------------------------------- docstrings written once

#: Wrappers with a docstring of their own: a note on how *this* backend computes, appended to the
#: contract under "Backend notes". A new note is registered here, deliberately.
BACKEND_NOTES: set[str] = {
    "cpu.pooling.max_pool2d_backward", "cuda.pooling.max_pool2d_backward", "cuda.pooling.avg_pool2d_backward",
    "cuda.pooling_adaptive.adaptive_avg_pool2d_backward", "cuda.pooling_adaptive.adaptive_max_pool2d_backward",
}
#: Wrappers whose own docstring still repeats the contract, in files other branches were editing
#: when the contract decorator came in: delete each docstring (or cut it to a backend note) and its
#: entry here. The test fails both ways.
DUPLICATED_DOCSTRINGS: set[str] = {
    "cpu.matmul.matmul", "cpu.conv.conv2d", "cpu.conv.conv2d_backward_input", "cpu.activations.relu",
    "cpu.activations.relu_backward", "cpu.activations.leaky_relu", "cpu.activations.leaky_relu_backward",
    "cpu.activations.sigmoid", "cpu.activations.sigmoid_backward", "cpu.activations.tanh",
    "cpu.activations.tanh_backward", "cpu.activations.gelu", "cpu.activations.gelu_backward",
    "cpu.activations.elu", "cpu.activations.elu_backward", "cpu.activations.softplus",
    "cpu.activations.softplus_backward", "cpu.softmax.softmax", "cpu.softmax.softmax_backward",
    "cpu.softmax.log_softmax", "cpu.softmax.log_softmax_backward", "cpu.softmax.softmax_cross_entropy",
    "cpu.softmax.softmax_cross_entropy_backward", "cpu.conv_transpose.conv_transpose2d",
    "cpu.conv_transpose.conv_transpose2d_backward_input", "cpu.conv_transpose.conv_transpose2d_backward_weight",
    "cuda.matmul.matmul", "cuda.conv.conv2d", "cuda.conv.conv2d_backward_input",
    "cuda.conv.conv2d_backward_weight", "cuda.activations.relu", "cuda.activations.relu_backward",
    "cuda.activations.leaky_relu", "cuda.activations.leaky_relu_backward", "cuda.activations.sigmoid",
    "cuda.activations.sigmoid_backward", "cuda.activations.tanh", "cuda.activations.tanh_backward",
    "cuda.activations.gelu", "cuda.activations.gelu_backward", "cuda.activations.elu",
    "cuda.activations.elu_backward", "cuda.activations.softplus", "cuda.activations.softplus_backward",
    "cuda.softmax.softmax", "cuda.softmax.softmax_backward", "cuda.softmax.log_softmax",
    "cuda.softmax.log_softmax_backward", "cuda.softmax.softmax_cross_entropy",
    "cuda.softmax.softmax_cross_entropy_backward", "cuda.conv_transpose.conv_transpose2d",
    "cuda.conv_transpose.conv_transpose2d_backward_input", "cuda.conv_transpose.conv_transpose2d_backward_weight",
}


def _numpydoc_section(doc: str, title: str) -> str | None:
    """The body of a numpydoc section (``Title`` over a dashed line), or None."""
    m = re.search(rf"^{title}\n-{{{len(title)}}}\n(?P<body>.*?)(?=^\S[^\n]*\n-+\n|\Z)", doc, re.M | re.S)
    return m["body"] if m else None


@pytest.mark.parametrize("name, module_name", REFERENCE_NAMES)
def test_reference_docstring_is_a_contract(name, module_name):
    fn = getattr(_module(ref, module_name), name)
    doc = inspect.getdoc(fn) or ""
    summary = doc.splitlines()[0] if doc else ""
    assert len(summary) > 10 and summary.endswith("."), f"reference.{name}: a one-line summary ending in '.' first"
    params = _numpydoc_section(doc, "Parameters")
    returns = _numpydoc_section(doc, "Returns")
    assert params is not None and returns is not None and returns.strip(), (
        f"reference.{name}'s docstring needs numpydoc 'Parameters' and 'Returns' sections (it is the contract)"
    )
    documented = set(re.findall(r"^(\w[\w, ]*?)\s*:", params, re.M))
    documented = {n.strip() for group in documented for n in group.split(",")}
    missing = [p for p in inspect.signature(fn).parameters if p not in documented]
    assert not missing, f"reference.{name}'s Parameters section does not describe {missing}"


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("name, module_name", REFERENCE_NAMES)
def test_backend_docstring_is_the_references(backend, name, module_name):
    expected = getattr(_module(ref, module_name), name)
    actual = getattr(_module(backend, module_name), name)
    where = f"{backend.__name__}.{module_name}.{name}"
    assert actual.__doc__.startswith(expected.__doc__.rstrip()), f"{where}'s docstring does not start with the contract"
    assert actual.__implements__ is expected
    rest = actual.__doc__[len(expected.__doc__.rstrip()):]
    note = _contract.backend_note(actual)
    if note is None:
        assert not rest.strip(), f"{where}: text after the contract outside a Backend notes section"
    else:
        assert inspect.cleandoc(rest).startswith(f"{_contract.BACKEND_NOTES}\n-------------\n")
        assert inspect.cleandoc(rest).endswith(note)


def test_every_backend_docstring_is_a_registered_note():
    with_note = {f"{backend.__name__.rsplit('.', 1)[-1]}.{module_name}.{name}"
                 for backend in (cpu, cuda) for name, module_name in REFERENCE_NAMES
                 if _contract.backend_note(getattr(_module(backend, module_name), name))}
    assert not BACKEND_NOTES & DUPLICATED_DOCSTRINGS
    assert with_note == BACKEND_NOTES | DUPLICATED_DOCSTRINGS, (
        f"wrappers with an unregistered docstring (the contract is the reference's: delete it, or register a "
        f"genuine backend note in BACKEND_NOTES): {sorted(with_note - BACKEND_NOTES - DUPLICATED_DOCSTRINGS)}; "
        f"registered but without a docstring: {sorted((BACKEND_NOTES | DUPLICATED_DOCSTRINGS) - with_note)}"
    )


@pytest.mark.parametrize("qualname", sorted(BACKEND_NOTES))
def test_backend_note_is_a_note_not_a_second_contract(qualname):
    backend_name, module_name, name = qualname.split(".")
    note = _contract.backend_note(getattr(_module({"cpu": cpu, "cuda": cuda}[backend_name], module_name), name))
    summary = inspect.getdoc(getattr(_module(ref, module_name), name)).splitlines()[0]
    assert note.splitlines()[0] != summary and len(note.splitlines()) <= 6
    assert not re.search(r"^(Parameters|Returns)\n-+$", note, re.M), f"{qualname}: the contract belongs to the reference"


def test_implements_copies_the_contract_and_keeps_a_note():
    def reference_fn(x):
        """Double ``x``.

        Parameters
        ----------
        x : array
        """

    def bare(x):
        pass

    def annotated(x):
        """Uses a shift."""

    def copied(x):
        """Double ``x``.

        Parameters
        ----------
        x : array
        """

    assert _contract.implements(reference_fn)(bare).__doc__ == reference_fn.__doc__
    assert _contract.implements(reference_fn)(copied).__doc__ == reference_fn.__doc__
    doc = _contract.implements(reference_fn)(annotated).__doc__
    assert doc.startswith(reference_fn.__doc__.rstrip())
    assert inspect.getdoc(annotated).endswith("Backend notes\n-------------\nUses a shift.")
    assert _contract.implements(reference_fn)(annotated).__doc__ == doc  # idempotent
    def undocumented(x):
        pass

    with pytest.raises(ValueError, match="has no docstring"):
        _contract.implements(undocumented)
