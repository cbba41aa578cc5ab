"""Numba options and wrapper helpers the CPU kernel modules share, defined once.

``jitgrad.config.FASTMATH`` is a frozenset of LLVM fast-math flag names; Numba's
``fastmath=`` takes a set. Modules import ``FASTMATH`` from here rather than each
building its own copy.
"""

from __future__ import annotations

import types
from typing import Any

import numba
import numpy as np
from numba import typeof
from numba.core.cpu_options import ParallelOptions

from jitgrad.config import FASTMATH as _CONFIG_FASTMATH

FASTMATH: set[str] = set(_CONFIG_FASTMATH)

#: ``parallel=`` of every parallel CPU kernel: its explicit ``prange`` loops run on the thread pool,
#: nothing else. ``parallel=True`` also turns ``np.zeros``/``np.full``/``np.arange``, array
#: expressions and NumPy reductions into parallel loops, each a parallel region of its own, and each
#: region wakes the pool's threads (~100 us on an idle 2-core VM with passive waiting,
#: ``bench/omp_wait.py``): a LeNet-5 training step ran 26 regions for its 11 kernel launches, the
#: conv weight gradient 5-6 a call around its one prange loop. (A ``ParallelOptions``, not the dict
#: it is built from: Numba consumes that dict.)
PRANGE_ONLY = ParallelOptions({"prange": True, "fusion": True, "comprehension": False, "reduction": False,
                               "inplace_binop": False, "setitem": False, "numpy": False, "stencil": False})


def njit(*args: Any, **options: Any) -> Any:
    """``numba.njit`` for jitgrad's CPU kernels: the same, less the C-callable wrapper Numba compiles
    beside every function for its first-class-function support (``no_cfunc_wrapper``), which no
    kernel uses: they are called from Python (the CPython wrapper) or from other kernels (directly).
    Each wrapper is lowered and compiled with its function (the all-serial first LeNet-5 step on
    Zen 3, four alternating rounds: medians 26.3 -> 25.5 CPU-s). ``@njit`` and ``@njit(...)`` as
    Numba's."""
    options.setdefault("no_cfunc_wrapper", True)
    return numba.njit(*args, **options)


def code_copy(function: Any, name: str, qualname: str, **names: Any) -> Any:
    """``function``'s code as a function of its own, ``name`` and ``qualname``, with ``names`` added to
    its globals: Numba caches a function in files named by its qualified name, so each copy (a tiered
    kernel's serial twin, a recurrent cell's loop, a span job per kernel) is cached apart."""
    namespace = dict(function.__globals__, **names) if names else function.__globals__
    copy = types.FunctionType(function.__code__, namespace, name, function.__defaults__, function.__closure__)
    copy.__qualname__ = qualname
    copy.__module__ = function.__module__
    copy.__doc__ = function.__doc__
    return copy


#: The dtypes a wrapper's fast path accepts (anything else goes through the reference's checks).
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def overlaps(out: np.ndarray | None, *inputs: np.ndarray | None) -> bool:
    """True when ``out`` may share memory with an input: the kernels then write into a temporary first.

    Two arrays that own their data answer at once (~0.1 us against ~0.3 us for
    ``np.may_share_memory``, which a small matmul call notices).
    """
    if out is None:
        return False
    for a in inputs:
        if a is None:
            continue
        if out.base is None and a.base is None:
            if out is a:
                return True
        elif np.may_share_memory(out, a):
            return True
    return False


def entry_point(dispatcher: Any, args: tuple) -> Any:
    """The compiled entry point of ``dispatcher`` for the types of ``args`` (a call with them has
    compiled or loaded it): calling it skips Numba's typing of every argument, ~0.1 us an array,
    which a wrapper's fast path for small arrays notices. Only for arguments of exactly those types."""
    return dispatcher.overloads[tuple(typeof(a) for a in args)].entry_point
