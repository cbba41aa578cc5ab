"""How the CPU activation kernels are called: argument checks, output allocation, serial or parallel.

Split from :mod:`.activations` (which holds the kernels and re-exports these helpers): a
plain float32/float64 C-contiguous ndarray passes a test of a few attribute reads before the
reference's full checks, and below a kernel's parallel size its serial twin runs through its
compiled entry point (no type dispatch); only a parallel launch takes the workqueue lock
(``_threading``). At (128, 10) the full checks, ``reshape``, Numba's type dispatch and the
parallel launch together took longer than the kernel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jitgrad.kernels.cpu import _team_spans
from jitgrad.kernels.cpu._jit import FLOAT_DTYPES as _FLOATS
from jitgrad.kernels.cpu._jit import entry_point
from jitgrad.kernels.cpu._threading import serialised
from jitgrad.kernels.reference.activations import _check_backward, _check_forward


def _forward_out(x: np.ndarray) -> np.ndarray:
    """Check ``x``; return a new flat output of its size and dtype.

    A plain float32/float64 C-contiguous ndarray passes a short test; anything else goes
    through the reference's checks (which raise, or accept a subclass). At (128, 10) the full
    checks, ``np.empty_like`` and two ``reshape(-1)`` took longer than the kernel.
    """
    if not (type(x) is np.ndarray and x.dtype in _FLOATS and x.flags.c_contiguous):
        _check_forward(x)
    return np.empty(x.size, x.dtype)


def _finite(value: Any, check: Any) -> float:
    """A plain finite float as is (a tenth of the full check's cost), anything else through ``check``."""
    return value if type(value) is float and math.isfinite(value) else check(value)


def _backward_out(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:func:`_forward_out` for a backward kernel's ``(grad_out, x)``."""
    if not (type(x) is np.ndarray and type(grad_out) is np.ndarray and x.dtype in _FLOATS
            and grad_out.dtype is x.dtype and grad_out.shape == x.shape
            and x.flags.c_contiguous and grad_out.flags.c_contiguous):
        _check_backward(grad_out, x)
    return np.empty(x.size, x.dtype)


class Twins:
    """A kernel's parallel version, its serial twin, the size from which the parallel one runs, and
    the serial twin's compiled entry point for the dtype it last ran on (filled by :func:`_run`).

    Held in a slotted object the wrappers pass as one argument: at (128, 10) a relu call is ~1 us,
    and the dictionary of entry points, the argument tuple and the three kernel arguments it
    replaced were a fifth of that.
    """

    __slots__ = ("dtype", "entry", "min_size", "parallel", "serial", "team_min")

    def __init__(self, parallel: Any, serial: Any, min_size: int) -> None:
        self.parallel = parallel
        self.serial = serial
        self.min_size = min_size
        #: From this size the serial twin runs on spans on the GEMM team when it can (``_team_spans``).
        self.team_min = min_size // _team_spans.TEAM_FRACTION
        self.dtype: np.dtype | None = None
        self.entry: Any = None


def _run(k: Twins, direct: bool, out: np.ndarray, args: tuple) -> np.ndarray:
    """Run ``k.parallel(*args)`` from ``k.min_size`` elements of ``out``, else its serial twin; return ``out``.
    From ``k.team_min`` elements, plain arrays (``direct``) run on spans on the GEMM team instead
    when it can take them (``_team_spans``: no OpenMP wake-up, and two threads from a quarter of
    the OpenMP size).

    With ``direct`` (every array plain: float32/float64, C-contiguous, aligned ndarrays; scalars
    cast to their dtype) the serial twin's compiled entry point for that dtype is remembered
    once the dispatcher has compiled or loaded it, for the wrappers' short path: Numba's type
    dispatch (the typing of each argument) was a tenth of a (128, 10) relu call.
    """
    size = out.size
    if size >= k.team_min and direct and _team_spans.usable() and _team_spans.run(k.serial, args, size):
        return out
    if size >= k.min_size:
        _launch_parallel(k.parallel, args)
        return out
    k.serial(*args)
    if direct:
        k.entry = entry_point(k.serial, args)
        k.dtype = out.dtype
    return out


@serialised
def _launch_parallel(parallel: Any, args: tuple) -> None:
    """``parallel(*args)`` under the workqueue lock: the one launch that needs it (see ``_threading``)."""
    parallel(*args)


def _cast(scalars: tuple, dtype: np.dtype) -> Any:
    """Validated hyper-parameters for a kernel: floats in ``dtype``, a flag (gelu's form, alone) as it is."""
    return scalars if type(scalars[0]) is bool else map(dtype.type, scalars)


_NDARRAY = np.ndarray
_empty = np.empty


def _forward(k: Twins, x: np.ndarray, *scalars: Any) -> np.ndarray:
    """Check ``x``, allocate the output (``x``'s shape and dtype) and run the kernel on the flat views.

    ``scalars`` (already validated) go between ``x`` and the output, floats cast to ``x``'s dtype
    (a float32 kernel never sees a float64), gelu's flag as it is. A plain ``x`` passes a test of
    a few attribute reads and, below the team's and the parallel size in the dtype whose entry point ``k``
    holds, runs the compiled serial twin directly; anything else goes through the reference's
    checks (which raise, or accept a subclass).
    """
    # The short path, written out (a call would cost a 1 us relu 0.1 us): the serial twin's entry
    # point below the sizes from which the team or OpenMP may take the work.
    if type(x) is _NDARRAY and x.dtype is k.dtype and (n := x.size) < k.team_min and n < k.min_size:
        flags = x.flags
        if flags.c_contiguous and flags.aligned:
            out = _empty(x.shape, k.dtype)
            if scalars:
                k.entry(x.ravel(), *_cast(scalars, k.dtype), out.ravel())
            else:
                k.entry(x.ravel(), out.ravel())
            return out
    if type(x) is _NDARRAY:
        flags = x.flags
        direct = flags.c_contiguous and flags.aligned and x.dtype in _FLOATS
    else:
        direct = False
    if not direct:
        _check_forward(x)
    out = _empty(x.shape, x.dtype)
    return _run(k, direct, out, (x.ravel(), *(_cast(scalars, x.dtype) if scalars else ()), out.ravel()))


def _backward(k: Twins, grad_out: np.ndarray, x: np.ndarray, *scalars: Any) -> np.ndarray:
    """:func:`_forward` for a backward kernel's ``(grad_out, x)``."""
    direct = False
    if type(x) is _NDARRAY and type(grad_out) is _NDARRAY:
        dtype = x.dtype
        if grad_out.dtype is dtype and grad_out.shape == x.shape:
            flags, gflags = x.flags, grad_out.flags
            direct = (flags.c_contiguous and gflags.c_contiguous and flags.aligned and gflags.aligned
                      and (dtype is k.dtype or dtype in _FLOATS))
            if direct and dtype is k.dtype and (n := x.size) < k.team_min and n < k.min_size:
                out = _empty(x.shape, dtype)
                if scalars:
                    k.entry(grad_out.ravel(), x.ravel(), *_cast(scalars, dtype), out.ravel())
                else:
                    k.entry(grad_out.ravel(), x.ravel(), out.ravel())
                return out
    if not direct:
        _check_backward(grad_out, x)
    out = _empty(x.shape, x.dtype)
    return _run(k, direct, out, (grad_out.ravel(), x.ravel(), *(_cast(scalars, x.dtype) if scalars else ()),
                                 out.ravel()))
