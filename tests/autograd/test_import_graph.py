"""The modules of ``jitgrad.autograd`` import without cycles, each in a fresh interpreter.

A small AST scanner reads every module's *module-level* imports (those in
function bodies and under ``if TYPE_CHECKING:`` are not executed at import
time) and checks that, within ``jitgrad.autograd``, they form a graph without
a cycle: a module never needs one that needs it back half-initialised.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import jitgrad.autograd

PACKAGE = "jitgrad.autograd"
ROOT = Path(jitgrad.autograd.__file__).parent
MODULES = sorted(f"{PACKAGE}.{m.name}" for m in pkgutil.iter_modules([str(ROOT)]))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(tree: ast.Module) -> list[ast.stmt]:
    found: list[ast.stmt] = []
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])
    return found


def imports_within_package(module: str) -> set[str]:
    """Modules of ``PACKAGE`` (the package's ``__init__`` aside) that ``module`` imports at module level."""
    tree = ast.parse((ROOT / (module.rsplit(".", 1)[1] + ".py")).read_text())
    deps: set[str] = set()
    for node in _module_level_imports(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[: -node.level] + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        deps.update(n for n in names if n in MODULES)
    deps.discard(module)
    return deps


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of nodes (first repeated last), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_scanner_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_scanner_reads_module_level_imports_only():
    assert f"{PACKAGE}.tensor" in imports_within_package(f"{PACKAGE}.function")
    # Tensor.backward imports the engine inside the method: not an import-time edge.
    assert f"{PACKAGE}.engine" not in imports_within_package(f"{PACKAGE}.tensor")


def test_no_import_cycle_within_autograd():
    graph = {m: imports_within_package(m) for m in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_module_imports_in_a_fresh_interpreter():
    # One interpreter for all modules (each import is cheap once numba is loaded); the CUDA
    # backend imports numba.cuda, which imports without a GPU.
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", code, *MODULES], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
