"""Switching graph recording on and off: ``no_grad``, ``enable_grad``.

The flag is one module-level boolean read by every ``Function.apply``: a
thread-local would cost an attribute lookup per op for a feature (autograd in
several threads at once) that jitgrad does not offer.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

__all__ = ["no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled"]

F = TypeVar("F", bound=Callable[..., Any])

_enabled: bool = True


def is_grad_enabled() -> bool:
    """True when new ops record the graph for ``backward``."""
    return _enabled


def set_grad_enabled(mode: bool) -> None:
    """Turn graph recording on or off globally."""
    global _enabled
    _enabled = bool(mode)


class _GradMode:
    """Context manager and decorator that sets the grad mode and restores the old one."""

    _mode: bool = True

    def __new__(cls, func: Callable[..., Any] | None = None) -> Any:
        # ``@no_grad`` (no parentheses) hands us the function: decorate it at once.
        self = super().__new__(cls)
        return self if func is None else self(func)

    def __enter__(self) -> None:
        global _enabled
        # A stack of previous modes makes one instance safe to re-enter (recursion).
        self.__dict__.setdefault("_previous", []).append(_enabled)
        _enabled = self._mode

    def __exit__(self, *exc: object) -> None:
        global _enabled
        _enabled = self._previous.pop()

    def __call__(self, func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.__class__():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """Run without recording the graph: results have ``requires_grad=False``.

    Use as a context manager (``with jitgrad.no_grad(): ...``) or as a
    decorator (``@jitgrad.no_grad`` or ``@jitgrad.no_grad()``); evaluation and optimizer steps need
    no graph, and skipping it saves the memory of every saved activation.
    """

    _mode = False


class enable_grad(_GradMode):
    """Record the graph again inside a ``no_grad`` block (context manager or decorator)."""

    _mode = True
