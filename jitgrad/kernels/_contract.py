"""One contract per kernel: the reference's docstring is every backend's docstring.

A kernel's docstring (what it computes, shapes, dtypes, errors) is written
once, on its NumPy reference in ``kernels/reference/``. The CPU and CUDA
wrappers take it over: :func:`implements` copies it onto one function, and
:func:`adopt_reference_docs`, called at the end of ``kernels/cpu/__init__.py``
and ``kernels/cuda/__init__.py``, does so for every public kernel of the
backend in one place (so no kernel file needs a decorator, and nobody editing
a kernel file can forget one). ``tests/test_backend_parity.py`` checks the
result.

A backend wrapper normally has no docstring of its own. When it has one (how
*this* backend computes: a layout, a bound, a launch), it is kept, appended to
the contract under a ``Backend notes`` heading; a docstring that merely
repeats the reference's is dropped.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from types import ModuleType
from typing import Any, Callable, Iterable, TypeVar

__all__ = ["BACKEND_NOTES", "implements", "adopt_reference_docs", "backend_note", "doc_fragments"]

F = TypeVar("F", bound=Callable[..., Any])

#: The heading under which a backend's own note follows the reference's docstring.
BACKEND_NOTES = "Backend notes"


def _body_indent(doc: str) -> str:
    """The indentation of a docstring's lines after the first (what ``inspect.cleandoc`` strips)."""
    indents = [len(line) - len(line.lstrip()) for line in doc.expandtabs().splitlines()[1:] if line.strip()]
    return " " * min(indents) if indents else ""


def backend_note(fn: Callable[..., Any]) -> str | None:
    """The backend's own note on ``fn`` (cleaned), or None: what :func:`implements` kept."""
    return getattr(fn, "__backend_note__", None)


def implements(reference_fn: Callable[..., Any]) -> Callable[[F], F]:
    """Decorator: ``fn`` takes ``reference_fn``'s docstring, its own kept as a backend note.

    Parameters
    ----------
    reference_fn : callable
        The NumPy reference kernel whose docstring is the contract.

    Returns
    -------
    decorator
        Sets ``fn.__doc__`` to the reference's docstring, followed by a
        ``Backend notes`` section holding ``fn``'s own docstring when it has one
        that is not a copy of the reference's; records ``fn.__implements__``.
        Applying it again (or to a ``functools.wraps`` wrapper of an adopted
        function) gives the same docstring: the note is read only once.
    """
    contract = reference_fn.__doc__
    if not contract or not contract.strip():
        raise ValueError(f"{reference_fn.__module__}.{reference_fn.__qualname__} has no docstring to implement")

    def decorate(fn: F) -> F:
        if getattr(fn, "__implements__", None) is not None:
            note = backend_note(fn)  # already adopted (maybe by a wrapper's copied __dict__)
        else:
            own = inspect.cleandoc(fn.__doc__) if fn.__doc__ and fn.__doc__.strip() else None
            note = None if own is None or own == inspect.cleandoc(contract) else own
        doc = contract.rstrip()
        if note:
            indent = _body_indent(contract)
            heading = f"{BACKEND_NOTES}\n{'-' * len(BACKEND_NOTES)}\n"
            doc += "\n\n" + textwrap.indent(heading + note, indent) + "\n" + indent
        elif contract != contract.rstrip():
            doc += "\n" + _body_indent(contract)
        fn.__doc__ = doc
        fn.__implements__ = reference_fn  # type: ignore[attr-defined]
        fn.__backend_note__ = note  # type: ignore[attr-defined]
        return fn

    return decorate


def adopt_reference_docs(modules: Iterable[ModuleType]) -> None:
    """Apply :func:`implements` to every public kernel (``__all__``) of a backend's ``modules``.

    Each ``jitgrad.kernels.<backend>.<module>`` is matched with
    ``jitgrad.kernels.reference.<module>``, name by name. A module without a
    reference twin, or a name the reference lacks, is left alone: the parity
    test reports those.
    """
    for module in modules:
        short = module.__name__.rsplit(".", 1)[-1]
        try:
            reference = importlib.import_module(f"jitgrad.kernels.reference.{short}")
        except ModuleNotFoundError:
            continue
        for name in getattr(module, "__all__", ()):
            reference_fn = getattr(reference, name, None)
            fn = getattr(module, name)
            if callable(reference_fn) and reference_fn.__doc__ and inspect.isfunction(fn):
                implements(reference_fn)(fn)


def doc_fragments(**fragments: str) -> Callable[[F], F]:
    """Decorator: each line of ``fn``'s docstring that holds only ``{name}`` becomes ``fragments[name]``.

    Parameter paragraphs that several reference kernels share are written once,
    as a module-level string, and stand in each contract by name (indented as the
    placeholder line is). The docstring comes out cleaned (``inspect.cleandoc``).
    A fragment with no placeholder line is an error, so none goes missing silently.
    """
    texts = {"{" + name + "}": textwrap.dedent(text).strip("\n").splitlines() for name, text in fragments.items()}

    def decorate(fn: F) -> F:
        doc = inspect.cleandoc(fn.__doc__ or "").splitlines()
        missing = sorted(set(texts) - {line.strip() for line in doc})
        if missing:
            raise ValueError(f"{fn.__qualname__}: its docstring has no line {missing[0]} to fill")
        lines: list[str] = []
        for line in doc:
            indent = line[:len(line) - len(line.lstrip())]
            part = texts.get(line.strip())
            lines.extend([line] if part is None else [indent + text if text else "" for text in part])
        fn.__doc__ = "\n".join(lines) + "\n"
        return fn
    return decorate
