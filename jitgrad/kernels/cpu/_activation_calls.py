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


#: ``{serial kernel: (dtype, compiled entry point)}``, filled by :func:`_run`.
_ENTRY_POINTS: dict[Any, tuple[np.dtype, Any]] = {}


def _run(parallel: Any, serial: Any, min_size: int, direct: bool, out: np.ndarray, args: tuple) -> np.ndarray:
    """Run ``parallel(*args)`` from ``min_size`` elements of ``out``, else its serial twin; return ``out``.

    With ``direct`` (every array plain: float32/float64, C-contiguous, aligned ndarrays; scalars
    cast to their dtype) the serial twin runs through its compiled entry point for that dtype,
    remembered once the dispatcher has compiled or loaded it: Numba's type dispatch (the typing
    of each argument) was a tenth of a (128, 10) relu call.
    """
    if out.size >= min_size:
        _launch_parallel(parallel, args)
        return out
    if direct:
        entry = _ENTRY_POINTS.get(serial)
        if entry is not None and entry[0] is out.dtype:
            entry[1](*args)
            return out
        serial(*args)
        _ENTRY_POINTS[serial] = (out.dtype, entry_point(serial, args))
        return out
    serial(*args)
    return out


@serialised
def _launch_parallel(parallel: Any, args: tuple) -> None:
    """``parallel(*args)`` under the workqueue lock: the one launch that needs it (see ``_threading``)."""
    parallel(*args)


def _cast(scalars: tuple, dtype: np.dtype) -> Any:
    """Validated hyper-parameters for a kernel: floats in ``dtype``, a flag (gelu's form, alone) as it is."""
    return scalars if type(scalars[0]) is bool else map(dtype.type, scalars)


def _forward(parallel: Any, serial: Any, min_size: int, x: np.ndarray, *scalars: Any) -> np.ndarray:
    """Check ``x``, allocate the output (``x``'s shape and dtype) and run the kernel on the flat views.

    ``scalars`` (already validated) go between ``x`` and the output, floats cast to ``x``'s dtype
    (a float32 kernel never sees a float64), gelu's flag as it is. A plain ``x`` passes a test of a
    few attribute reads; anything else goes through the reference's checks (which raise, or
    accept a subclass). At (128, 10) the full checks, ``reshape`` and Numba's dispatch took
    longer than the kernel.
    """
    if type(x) is np.ndarray and x.dtype in _FLOATS:
        flags = x.flags
        direct = flags.c_contiguous and flags.aligned
    else:
        direct = False
    if not direct:
        _check_forward(x)
    out = np.empty(x.shape, x.dtype)
    if direct and not scalars and out.size < min_size:  # the commonest call, in the fewest steps
        entry = _ENTRY_POINTS.get(serial)
        if entry is not None and entry[0] is out.dtype:
            entry[1](x.ravel(), out.ravel())
            return out
    if scalars:
        args = (x.ravel(), *_cast(scalars, x.dtype), out.ravel())
    else:
        args = (x.ravel(), out.ravel())
    return _run(parallel, serial, min_size, direct, out, args)


def _backward(parallel: Any, serial: Any, min_size: int, grad_out: np.ndarray, x: np.ndarray,
              *scalars: Any) -> np.ndarray:
    """:func:`_forward` for a backward kernel's ``(grad_out, x)``."""
    direct = False
    if (type(x) is np.ndarray and type(grad_out) is np.ndarray and x.dtype in _FLOATS
            and grad_out.dtype is x.dtype and grad_out.shape == x.shape):
        flags, gflags = x.flags, grad_out.flags
        direct = flags.c_contiguous and gflags.c_contiguous and flags.aligned and gflags.aligned
    if not direct:
        _check_backward(grad_out, x)
    out = np.empty(x.shape, x.dtype)
    if direct and not scalars and out.size < min_size:
        entry = _ENTRY_POINTS.get(serial)
        if entry is not None and entry[0] is out.dtype:
            entry[1](grad_out.ravel(), x.ravel(), out.ravel())
            return out
    if scalars:
        args = (grad_out.ravel(), x.ravel(), *_cast(scalars, x.dtype), out.ravel())
    else:
        args = (grad_out.ravel(), x.ravel(), out.ravel())
    return _run(parallel, serial, min_size, direct, out, args)
