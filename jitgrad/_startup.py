"""Start-up helpers: Python's cycle collector paused while a large set of long-lived objects is built.

Importing NumPy, Numba and jitgrad's kernels, and Numba's first set-up of its
typing and target registries, create ~110k objects that live as long as the
process. Python's collector, run by allocation counts, traverses them again
and again meanwhile: ~0.1 s of a 1 s warm start (``import jitgrad`` + a first
training step) on a 2-core machine, all of it finding nothing to free.
:func:`gc_paused` switches automatic collection off for such a block and
back on after it, as it was (a program that disabled the collector keeps it
disabled), and then moves every object to the oldest generation without
traversing them (``gc.freeze()`` then ``gc.unfreeze()``; skipped when the
program froze objects of its own): otherwise the first young collection
after the block would traverse all of them at once. Nothing is exempt from
collection: garbage made in the block goes with the next full collection.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic garbage collection inside the block; the collector's previous state after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():  # a program's own frozen set is left as it is
            # Freeze + unfreeze moves every tracked object to the oldest generation without a
            # traversal: the next young collections then find only what is new, and the objects
            # are collected like any other old object when they become garbage.
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()
