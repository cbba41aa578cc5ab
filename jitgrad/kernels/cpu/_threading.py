"""Calling the CPU kernels from several Python threads at once, on every Numba threading layer.

Numba's ``tbb`` and ``omp`` layers accept parallel kernels launched from
several threads at once. Its ``workqueue`` layer (the fallback when neither
TBB nor an OpenMP runtime is installed, or ``NUMBA_THREADING_LAYER=workqueue``)
does not: two concurrent launches abort the whole process ("Terminating:
Nested parallel kernel launch detected"). So every public CPU kernel runs
under one process-wide lock *when the layer is workqueue*, and directly
otherwise. Until the first parallel launch the layer is not chosen yet; calls
then take the lock, which makes the choosing launch safe too.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

import numba
from numba.np.ufunc import parallel as _numba_parallel

# kernels/cpu/__init__ imports this module: the one-line notice on a process's first kernel
# compile (see _compile_notice) is installed with it.
from . import _compile_notice  # noqa: F401

_LOCK = threading.RLock()
#: None until Numba has chosen its threading layer; then whether calls must be serialised.
_serialise: bool | None = None


def _layer_needs_lock() -> bool | None:
    # Numba's own flag first: until a parallel kernel runs, numba.threading_layer() raises, and
    # the raise cost more than a (128, 10) relu on every call of a process running only serial twins.
    if not getattr(_numba_parallel, "_is_initialized", True):
        return None
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: the layer is not chosen
        return None
    return layer == "workqueue"


def serialised(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, run under the process-wide lock when Numba's layer is ``workqueue`` (see module doc)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _serialise
        if _serialise is False:
            return fn(*args, **kwargs)
        with _LOCK:
            result = fn(*args, **kwargs)
            if _serialise is None:
                _serialise = _layer_needs_lock()
            return result

    return wrapper


def serialise_module_kernels(namespace: dict[str, Any], modules: list[Any]) -> None:
    """Replace every public kernel of ``modules`` by its serialised form, in its module and in
    ``namespace`` (the package's globals), so both names stay one function."""
    for module in modules:
        for name in module.__all__:
            if getattr(getattr(module, name), "serialises_itself", False):
                continue  # locks its own parallel launches (cpu matmul: its serial kernels need no lock)
            wrapped = serialised(getattr(module, name))
            setattr(module, name, wrapped)
            namespace[name] = wrapped
