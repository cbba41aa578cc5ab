"""Kernels loaded from Numba's cache without first setting up Numba's compiler.

Before it loads a function from its cache, Numba refreshes the CPU target
context: it imports and installs every typing and lowering registry (NumPy,
lists, dicts, strings, random, jitclass ...), 0.19-0.25 s on the 2-core Zen 3
VM, a fifth of a warm start (``import jitgrad`` + a first LeNet-5 step). A
cached kernel needs none of it: its machine code is linked already, and what
running it needs of the set-up is Numba's runtime (NRT, the allocator its
arrays use), which :class:`LoadingCache` initialises itself. A compile still
refreshes the context first (Numba's compiler does that on every compile), so
a kernel missing from the cache compiles as before.

:func:`install` gives every cached dispatcher of the given modules this cache
(``jitgrad.kernels.cpu`` calls it on its modules once they are imported).
Measured on the Zen 3 (10 warm processes each, alternating): import + first
LeNet-5 step, median 0.86 -> 0.73 s.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Iterable

from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import rtsys

from ._tier import Tiered


class LoadingCache(FunctionCache):
    """Numba's ``FunctionCache``, loading without ``target_context.refresh()`` (see the module doc)."""

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        rtsys.initialize(target_context)  # the part of the set-up a loaded function needs; once
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


def _dispatchers(value: Any) -> tuple[Any, ...]:
    if isinstance(value, Tiered):
        return value.parallel, value.serial
    return (value,)


def install(modules: Iterable[ModuleType]) -> int:
    """Give the module-level cached dispatchers of ``modules`` (and both versions of their tiered
    kernels) a :class:`LoadingCache`; returns how many were changed.

    Only a plain ``FunctionCache`` is changed (same state, a subclass: the instance keeps its index
    and files), and only where Numba still has the two methods it uses: with another Numba the
    dispatchers keep their cache as it is.
    """
    if not (hasattr(FunctionCache, "_load_overload") and hasattr(FunctionCache, "_guard_against_spurious_io_errors")):
        return 0
    changed = 0
    for module in modules:
        for value in list(vars(module).values()):
            for d in _dispatchers(value):
                if isinstance(d, Dispatcher) and type(d._cache) is FunctionCache:
                    d._cache.__class__ = LoadingCache
                    changed += 1
    return changed
