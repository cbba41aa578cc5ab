"""Numba options the CPU kernel modules share, defined once.

``jitgrad.config.FASTMATH`` is a frozenset of LLVM fast-math flag names; Numba's
``fastmath=`` takes a set. Modules import ``FASTMATH`` from here rather than each
building its own copy.
"""

from __future__ import annotations

from jitgrad.config import FASTMATH as _CONFIG_FASTMATH

FASTMATH: set[str] = set(_CONFIG_FASTMATH)
