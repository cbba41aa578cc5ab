"""The one decorator behind ``register_converter`` (importer) and ``register_exporter`` (exporter)."""

from __future__ import annotations

from typing import Callable, TypeVar

Fn = TypeVar("Fn", bound=Callable)


def register_in(table: dict[str, Fn], keys: tuple[str, ...]) -> Callable[[Fn], Fn]:
    """A decorator that enters the decorated function in ``table`` under each of ``keys`` and returns it."""
    def deco(fn: Fn) -> Fn:
        for key in keys:
            table[key] = fn
        return fn
    return deco
