"""The kernel contract: reference, cpu and cuda expose the same modules, names and signatures.

docs/kernel-api.md promises that code written against one backend runs on
another by swapping the import. This test holds every public name of
``jitgrad.kernels.reference`` to that promise. It runs in the CPU pytest
process: ``jitgrad.kernels.cuda`` imports without a GPU (kernels compile on
first launch).

It also holds the pieces around the kernels to one source each: the kernel
list (``kernels/_constants.py::KERNELS``), the docstrings (written once on the
reference, taken by cpu and cuda through ``kernels/_contract.py``), and the
steps of docs/kernel-authoring.md's checklist that a machine can check.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

import jitgrad.kernels.cpu as cpu
import jitgrad.kernels.cuda as cuda
import jitgrad.kernels.reference as ref
from jitgrad.kernels import _contract
from jitgrad.kernels._constants import KERNEL_MODULES, KERNELS, kernel_names

MODULES = list(KERNEL_MODULES)
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
WRAPPER_NOTES: set[str] = {
    "cpu.pooling.max_pool2d_backward", "cuda.pooling.max_pool2d_backward", "cuda.pooling.avg_pool2d_backward",
    "cuda.pooling_adaptive.adaptive_avg_pool2d_backward", "cuda.pooling_adaptive.adaptive_max_pool2d_backward",
    "cuda.softmax.softmax_cross_entropy", "cuda.softmax.softmax_cross_entropy_backward", "cpu.matmul.matmul",
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
    assert with_note == WRAPPER_NOTES, (
        f"wrappers with an unregistered docstring (the contract is the reference's: delete it, or register a "
        f"genuine backend note in WRAPPER_NOTES): {sorted(with_note - WRAPPER_NOTES)}; "
        f"registered but without a docstring: {sorted(WRAPPER_NOTES - with_note)}"
    )


@pytest.mark.parametrize("qualname", sorted(WRAPPER_NOTES))
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


def test_doc_fragments_fill_placeholder_lines_and_refuse_a_missing_one():
    shared = "x : array\n    The input."

    @_contract.doc_fragments(x=shared)
    def kernel(x, n):
        """Do a thing.

        Parameters
        ----------
        {x}
        n : int
            How often.
        """

    assert kernel.__doc__ == ("Do a thing.\n\nParameters\n----------\nx : array\n    The input.\n"
                              "n : int\n    How often.\n")
    with pytest.raises(ValueError, match=r"no line \{y\}"):
        _contract.doc_fragments(y=shared)(kernel)


@pytest.mark.parametrize("name, module_name", REFERENCE_NAMES)
def test_reference_docstring_has_no_unfilled_fragment(name, module_name):
    doc = getattr(_module(ref, module_name), name).__doc__ or ""
    assert not re.search(r"^\s*\{\w+\}\s*$", doc, re.M), f"reference.{name}: a {{fragment}} line left unfilled"


# ----------------------------------------------------------------------------- the guide's checklist
#
# docs/kernel-authoring.md's numbered checklist, checked where a machine can check it.

ROOT = Path(__file__).resolve().parent.parent


def _api_sections() -> dict[str, str]:
    """docs/kernel-api.md's ``## module`` sections: ``{first word of the heading: text}``."""
    text = (ROOT / "docs" / "kernel-api.md").read_text(encoding="utf-8")
    parts = re.split(r"^## +", text, flags=re.M)[1:]
    return {part.split(None, 1)[0]: part for part in parts}


@pytest.mark.parametrize("name, module_name", REFERENCE_NAMES)
def test_checklist_kernel_api_names_every_kernel(name, module_name):
    # Step 8: every kernel is named, in backticks, in its module's section of the contract page.
    section = _api_sections().get(module_name)
    assert section is not None, f"docs/kernel-api.md has no '## {module_name}' section"
    assert re.search(rf"`{name}[`(]", section), f"docs/kernel-api.md's '## {module_name}' section never names `{name}`"


def _literal(path: Path, variable: str):
    """The value of a module-level ``variable = <literal>`` in ``path`` (without importing the file)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(getattr(t, "id", None) == variable for t in targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path.relative_to(ROOT)} no longer defines {variable}, which the checklist test reads")


#: Step 9: the activation case tables every backend's tests are parametrised over.
ACTIVATION_CASE_TABLES = [("tests/kernels/test_activations.py", "CASES"), ("tests/cuda/test_activations.py", "ACTIVATIONS"),
                          ("tests/autograd/test_ops.py", "ACTIVATIONS")]
ACTIVATIONS = [n for n in KERNELS["activations"] if not n.endswith("_backward")]


@pytest.mark.parametrize("path, variable", ACTIVATION_CASE_TABLES)
def test_checklist_activation_case_tables_cover_every_activation(path, variable):
    names = {row[0] for row in _literal(ROOT / path, variable)}
    assert set(ACTIVATIONS) <= names, f"{path}::{variable} lacks {sorted(set(ACTIVATIONS) - names)}"


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_checklist_activation_reaches_the_user(name):
    # Steps 5-7: the Function, the Tensor method, the functional and the layer export.
    import jitgrad
    from jitgrad import nn
    from jitgrad.autograd import ops
    from jitgrad.nn import functional as F

    assert any(getattr(c, "kernel", None) == name for c in vars(ops).values() if isinstance(c, type)), (
        f"no Function in jitgrad/autograd/ops_nn.py (gathered by ops.py) has kernel = {name!r}")
    assert callable(getattr(jitgrad.Tensor, name, None)), f"jitgrad/autograd/ops_nn.py: TensorActivationMethods gives Tensor no .{name}()"
    assert name in F.__all__, f"jitgrad/nn/functional.py does not export {name}"
    assert any(n.lower() == name.replace("_", "") for n in nn.__all__), (
        f"jitgrad/nn/__init__.py exports no layer named like {name!r} (e.g. nn.SiLU for silu)")


def test_checklist_every_forward_kernel_is_tested_on_both_backends():
    # Step 9, beyond the activations: each forward kernel's name appears in the CPU and the CUDA tests
    # (or in a case table in tests/cases/ that both share).
    def text(*folders):
        return "\n".join(p.read_text(encoding="utf-8") for f in folders for p in sorted((ROOT / f).glob("*.py")))

    cpu_tests, cuda_tests = text("tests/kernels", "tests/cases"), text("tests/cuda", "tests/cases")
    forward = [n for n in kernel_names() if not n.endswith("_backward")]
    assert not [n for n in forward if not re.search(rf"\b{n}\b", cpu_tests)], "forward kernels tests/kernels never names"
    missing = [n for n in forward if not re.search(rf"\b{n}\b", cuda_tests)]
    assert not missing, f"forward kernels tests/cuda never names: {missing}"


@pytest.mark.parametrize("module_name", sorted(REFERENCE_AND_CUDA_MODULES))
def test_cuda_only_modules_match_their_reference(module_name):
    reference, fast = _module(ref, module_name), _module(cuda, module_name)
    assert fast.__all__ == reference.__all__
    for name in reference.__all__:
        expected, actual = getattr(reference, name), getattr(fast, name)
        assert inspect.isfunction(actual) and actual.__module__ == fast.__name__, name
        assert _params(actual) == _params(expected), name
        assert actual.__doc__ == expected.__doc__, name
