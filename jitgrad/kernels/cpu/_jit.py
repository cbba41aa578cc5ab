"""Numba options and wrapper constants the CPU kernel modules share, defined once.

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
