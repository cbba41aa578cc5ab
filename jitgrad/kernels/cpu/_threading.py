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
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable

import numba

_LOCK = threading.RLock()
#: None until Numba has chosen its threading layer; then whether calls must be serialised.
_serialise: bool | None = None


def _layer_needs_lock() -> bool | None:
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
            wrapped = serialised(getattr(module, name))
            setattr(module, name, wrapped)
            namespace[name] = wrapped


# ----------------------------------------------------------------------------- chunks on Python threads
#
# The convolution drivers run their (sample, slice) chunks on Python threads
# calling a serial ``@njit(nogil=True)`` chunk function, instead of a
# ``parallel=True`` function with ``prange``: Numba's parfor passes and the
# separately compiled gufunc tripled each driver's compile time (measured:
# 2-4 CPU-s serial against 8-10 CPU-s parallel per driver), and a
# convolution's chunks are few and long (milliseconds), so a thread pool's
# wake-up (tens of microseconds) is as cheap as an OpenMP launch.

_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
_POOL_GUARD = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL, _POOL_PID
    pid = os.getpid()
    if _POOL is None or _POOL_PID != pid:  # a forked child has none of its parent's threads
        with _POOL_GUARD:
            if _POOL is None or _POOL_PID != pid:
                workers = max(1, numba.config.NUMBA_NUM_THREADS - 1)
                _POOL = ThreadPoolExecutor(workers, thread_name_prefix="jitgrad-chunk")
                _POOL_PID = pid
    return _POOL


def run_chunks(fn: Callable[..., Any], nchunks: int, *args: Any) -> None:
    """Call ``fn(ch, nchunks, *args)`` for every ``ch < nchunks``: chunk 0 on this thread, the
    others on the pool's (``fn`` releases the GIL: a ``nogil`` Numba function). Chunks must
    write disjoint memory; the first error raised is re-raised here once every chunk is done."""
    if nchunks <= 1:
        fn(0, nchunks, *args)
        return
    pool = _pool()
    pending = [pool.submit(fn, ch, nchunks, *args) for ch in range(1, nchunks)]
    try:
        fn(0, nchunks, *args)
    finally:
        wait(pending)
    for future in pending:
        future.result()
