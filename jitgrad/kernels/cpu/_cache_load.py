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

Nor does running a loaded kernel need its LLVM IR. Numba caches a function as
its machine code and, beside it, the bitcode of its module for linking into
later compiles of functions that call it; loading, it parses that bitcode and
walks every symbol of it (a few thousand calls through llvmlite, each taking
and releasing the LLVM lock with two Numba events): ~1 MB of bitcode for the
15 kernels of a first LeNet-5 step. :class:`LazyLinkingLibrary` keeps the bytes
and parses them when a compile first links the library; the machine code is
looked up by name, as Numba does once the symbols are known.

:func:`install` gives every cached dispatcher of the given modules this cache
(``jitgrad.kernels.cpu`` calls it on its modules once they are imported).
Measured on the Zen 3 (10 warm processes each, alternating): import + first
LeNet-5 step, median 0.86 -> 0.73 s. The bitcode left unparsed (eight
alternating pairs of warm processes, the same step timed in each): median
0.88 -> 0.73 s; the parse took 87-96 ms and the symbol walk 45-55 ms of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import llvmlite.binding as ll
from numba import cfunc
from numba.core import codegen as _codegen
from numba.core import sigutils
from numba.core.caching import FunctionCache
from numba.core.ccallback import CFunc
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import rtsys

from ._tier import Tiered


class LazyLinkingLibrary(_codegen.JITCodeLibrary):
    """A code library loaded from the cache whose bitcode for linking is parsed only when a compile
    links it (``_get_module_for_linking``); until then its functions are found by name in the engine."""

    _shared_bitcode: bytes | None = None

    @classmethod
    def _unserialize(cls, codegen: Any, state: Any) -> Any:
        # Numba's CPUCodeLibrary._unserialize for cached machine code, less the parse and the symbol walk.
        name, kind, data = state
        if kind != "object":
            return super()._unserialize(codegen, state)
        object_code, shared_bitcode = data
        self = cls(codegen, name)
        self.enable_object_caching()
        self._set_compiled_object(object_code)
        self._shared_bitcode = shared_bitcode
        self._finalize_final_module()
        return self

    def _get_module_for_linking(self) -> Any:
        if self._shared_bitcode is not None:
            self._shared_module = ll.parse_bitcode(self._shared_bitcode)
            self._codegen._engine._load_defined_symbols(self._shared_module)
            self._shared_bitcode = None
        return super()._get_module_for_linking()

    def get_pointer_to_function(self, name: str) -> int:
        if self._shared_bitcode is None:  # parsed: Numba's check against the known symbols
            return super().get_pointer_to_function(name)
        self._ensure_finalized()
        return self._codegen._engine.get_function_address(name)


def _lazy_linking_supported() -> bool:
    """Whether this Numba loads cached machine code as :class:`LazyLinkingLibrary` assumes (0.61-0.68 do)."""
    library, engine = _codegen.JITCodeLibrary, _codegen.JitEngine
    return (all(hasattr(library, n) for n in ("_unserialize", "enable_object_caching", "_set_compiled_object",
                                                 "_finalize_final_module", "_get_module_for_linking"))
            and all(hasattr(engine, n) for n in ("_load_defined_symbols", "get_function_address")))


_LAZY_LINKING = _lazy_linking_supported()


class LoadingCache(FunctionCache):
    """Numba's ``FunctionCache``, loading without ``target_context.refresh()`` and, where this Numba
    allows, as a :class:`LazyLinkingLibrary` (see the module doc)."""

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        rtsys.initialize(target_context)  # the part of the set-up a loaded function needs; once
        with self._guard_against_spurious_io_errors(), _lazy_libraries(target_context.codegen()):
            return self._load_overload(sig, target_context)


@contextmanager
def _lazy_libraries(codegen: Any) -> Iterator[None]:
    """Libraries unserialised by ``codegen`` are :class:`LazyLinkingLibrary` meanwhile (where this Numba
    allows; Numba holds its compiler lock around a load, so no compile creates a library meanwhile)."""
    if not _LAZY_LINKING:
        yield
        return
    saved = vars(codegen).pop("_library_class", None)
    codegen._library_class = LazyLinkingLibrary
    try:
        yield
    finally:
        if saved is None:
            del codegen._library_class
        else:
            codegen._library_class = saved


#: Whether this Numba's ``FunctionCache`` has the two methods :class:`LoadingCache` uses.
_LOADING_SUPPORTED = hasattr(FunctionCache, "_load_overload") and hasattr(FunctionCache, "_guard_against_spurious_io_errors")


def cached_cfunc(function: Any, signature: Any) -> Any:
    """``numba.cfunc(signature, cache=True, nopython=True)(function)`` (compiled, or loaded from the
    cache), loaded as the kernels are, by a :class:`LoadingCache`: Numba's decorator refreshes the
    target context before it loads, 0.2-0.3 s in a warm process whose kernels loaded without it (the
    GEMM team's product job, the span jobs: ``_team``, ``_team_spans``)."""
    try:
        job = CFunc(function, sigutils.normalize_signature(signature), locals={}, options={"nopython": True})
    except TypeError:  # another Numba's constructor: its decorator
        return cfunc(signature, cache=True, nopython=True)(function)
    job.enable_caching()
    if _LOADING_SUPPORTED and type(job._cache) is FunctionCache:
        job._cache.__class__ = LoadingCache
    job.compile()
    return job


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
    if not _LOADING_SUPPORTED:
        return 0
    changed = 0
    for module in modules:
        for value in list(vars(module).values()):
            for d in _dispatchers(value):
                if isinstance(d, Dispatcher) and type(d._cache) is FunctionCache:
                    d._cache.__class__ = LoadingCache
                    changed += 1
    return changed
