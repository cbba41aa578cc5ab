"""Numba options and wrapper helpers the CPU kernel modules share, defined once.

``jitgrad.config.FASTMATH`` is a frozenset of LLVM fast-math flag names; Numba's
``fastmath=`` takes a set. Modules import ``FASTMATH`` from here rather than each
building its own copy.
"""

from __future__ import annotations

import numpy as np

from jitgrad.config import FASTMATH as _CONFIG_FASTMATH

FASTMATH: set[str] = set(_CONFIG_FASTMATH)

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
